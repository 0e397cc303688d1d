//! [`Body`]: the request body the inner service gets, the bytes that were read and checked.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// The body of a request that passed [`OperationScopes`](super::OperationScopes): the bytes
/// the client sent, exactly, read in full and held in one piece.
///
/// The inner service gets `Request<Body>` whatever body the layer was given: an
/// [`http_body::Body`] with `Bytes` data that never fails, one data frame then the end, its
/// exact length in [`size_hint`](http_body::Body::size_hint). rmcp's
/// `StreamableHttpService`, axum's `Router` and anything generic over `http_body::Body`
/// take it. Trailers, which JSON-RPC over HTTP does not use, are not kept.
///
/// ```
/// use bearer_guard::jsonrpc::Body;
/// use bytes::Bytes;
///
/// let body = Body::from(Bytes::from_static(br#"{"jsonrpc":"2.0","method":"ping"}"#));
/// assert_eq!(body.as_bytes(), br#"{"jsonrpc":"2.0","method":"ping"}"#);
/// assert_eq!(http_body::Body::size_hint(&body).exact(), Some(33));
/// ```
#[derive(Clone, Default)]
pub struct Body {
    data: Bytes,
}

impl Body {
    /// The bytes not yet read from the body: all of them until it is polled.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The bytes not yet read from the body, without a copy.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.data
    }
}

impl From<Bytes> for Body {
    fn from(data: Bytes) -> Self {
        Body { data }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let data = std::mem::take(&mut self.get_mut().data);
        Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

impl fmt::Debug for Body {
    /// The length only: a body may carry anything (arguments of a tool, personal data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("len", &self.data.len())
            .finish()
    }
}
