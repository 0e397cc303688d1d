//! [`HttpService`]: the one HTTP client abstraction of every outgoing call, said once.

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::error::BoxError;

/// An HTTP client, for every outgoing call of the crate: a `tower::Service<http::Request<B>>`
/// that answers `http::Response`s with an [`http_body::Body`], is `Clone + Send + 'static`
/// (calls run through clones of it, in their own tasks), and has `Send` futures and errors
/// that convert into a boxed error.
///
/// - The outgoing client's layer wraps one
///   (`client::AddAccessTokenLayer`, feature `client`), and sends its token requests through it.
/// - Key sets, discovery and introspection (feature `remote`) take one with a
///   `Full<Bytes>` body (`RemoteKeys::http_client`, `IntrospectionBuilder::http_client`):
///   a proxy-aware client, reqwest behind an adapter, a test double. The default is hyper
///   over rustls.
///
/// Every such service implements it (hyper-util's `Client`, a `tower::service_fn`, a
/// `tower::ServiceBuilder` stack ...); it cannot be implemented by hand. It only gathers
/// these bounds, so that they are written once. Whatever the service, the crate applies its
/// own timeouts and body-size caps around it, and never follows a redirect.
///
/// ```
/// use bearer_guard::fetch::HttpService;
/// use http_body_util::Full;
/// use hyper::body::Bytes;
///
/// fn takes<S: HttpService<Full<Bytes>>>(_: S) {}
/// // A stub that answers every request with an empty key set.
/// takes(tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from(r#"{"keys":[]}"#)))
/// }));
/// ```
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
