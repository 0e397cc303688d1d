//! [`HttpService`]: what the layer needs of the client it wraps, said once.

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::error::BoxError;

/// An HTTP client that [`AddAccessTokenLayer`](super::AddAccessTokenLayer) can wrap: a
/// `tower::Service<http::Request<B>>` that answers `http::Response`s with an
/// [`http_body::Body`], is `Clone + Send + 'static` (token requests run through clones of
/// it, in their own tasks), and has `Send` futures and errors that convert into
/// [`BoxError`].
///
/// Every such service implements it (hyper-util's `Client`, a `tower::service_fn`, a
/// reqwest adapter ...); it cannot be implemented by hand. It only gathers these bounds, so
/// that they are written once.
pub trait HttpService<B>:
    Service<
        Request<B>,
        Response = Response<Self::ResBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    >
    + Clone
    + Send
    + 'static
    + sealed::Sealed<B>
{
    /// The body of its responses.
    type ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B, ResBody> HttpService<B> for S
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type ResBody = ResBody;
}

mod sealed {
    pub trait Sealed<B> {}
    impl<S, B> Sealed<B> for S {}
}

/// The boxed, rare branch of a call: waiting for a token, or the retry after a 401.
pub(crate) type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;
