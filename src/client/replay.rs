//! [`Replay`]: which requests are sent again, with a new token, after a 401; and the
//! policies [`CloneBody`] and [`NoReplay`].

use http::Request;

/// Makes the copy of a request that is sent again, with a new token, when the upstream
/// answered the first one with 401. See
/// [`AddAccessTokenLayerBuilder::replay`](super::AddAccessTokenLayerBuilder::replay).
pub trait Replay<B> {
    /// A copy of `request` (taken before the token is added), or `None` when it cannot be
    /// sent twice.
    fn replay(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Replays every request by cloning it (method, URI, headers, extensions and body); needs
/// `B: Clone`. The default policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> Replay<B> for CloneBody {
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

/// Never replays: a 401 is returned as it is (the token is still dropped).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<B> Replay<B> for NoReplay {
    fn replay(&self, _request: &Request<B>) -> Option<Request<B>> {
        None
    }
}

impl<B, F> Replay<B> for F
where
    F: Fn(&Request<B>) -> Option<Request<B>>,
{
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        self(request)
    }
}
