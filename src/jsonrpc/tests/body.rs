//! The body limit: a `Content-Length` over it is refused before a byte is read, a chunked
//! body as soon as it grows past it; failed and encoded bodies.

use super::*;

/// A body of `chunks` frames of `chunk` bytes each, of unknown length (as a chunked one),
/// counting the frames it gives; `fail` makes the frame after the last an error.
struct Chunks {
    chunk: usize,
    chunks: usize,
    fail: bool,
    given: Arc<AtomicUsize>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let given = self.given.fetch_add(1, Ordering::SeqCst);
        if given < self.chunks {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; self.chunk])))))
        } else if self.fail {
            Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
        } else {
            Poll::Ready(None)
        }
    }
}

/// `body` with a token of every scope through `RequireScope` and a layer with a limit of
/// `max` bytes.
async fn send_body<B>(max: usize, req: Request<B>) -> (Response<String>, Vec<Bytes>)
where
    B: http_body::Body + Send + 'static,
{
    let seen = Seen::default();
    let svc = ServiceBuilder::new()
        .layer(RequireScope::authenticated(&mint::validator()))
        .layer(operations().max_body(max).build().expect("layer"))
        .service(seen.handler());
    let res = svc.oneshot(req).await.expect("infallible");
    (res, seen.bodies())
}

fn chunks(chunk: usize, chunks: usize, fail: bool) -> (Chunks, Arc<AtomicUsize>) {
    let given = Arc::new(AtomicUsize::new(0));
    let body = Chunks {
        chunk,
        chunks,
        fail,
        given: Arc::clone(&given),
    };
    (body, given)
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_a_byte_is_read() {
    let (body, given) = chunks(10, 10, false);
    let mut req = post(Some(&bearer("mcp:admin")), body);
    req.headers_mut().insert(CONTENT_LENGTH, 100.into());
    let (res, seen) = send_body(99, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(kind(&res), None, "not a refusal of the token");
    assert_eq!(given.load(Ordering::SeqCst), 0, "not read");
    assert!(seen.is_empty());

    // At the limit, read and passed on.
    let (body, _) = chunks(10, 10, false);
    let mut req = post(Some(&bearer("mcp:admin")), body);
    req.headers_mut().insert(CONTENT_LENGTH, 100.into());
    let (res, seen) = send_body(100, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen, [Bytes::from(vec![b' '; 100])]);

    // An exact size hint (hyper's, from Content-Length) says the same.
    let req = post(
        Some(&bearer("mcp:admin")),
        Full::new(Bytes::from(call("echo"))),
    );
    let (res, seen) = send_body(10, req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_413_and_never_read_beyond_it() {
    // 10-byte frames against a 64-byte limit: six are kept, the seventh would pass the
    // limit and ends the reading; the rest of the body (10 kB) is never asked for.
    let (body, given) = chunks(10, 1000, false);
    let (res, seen) = send_body(64, post(Some(&bearer("mcp:admin")), body)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(given.load(Ordering::SeqCst), 7);
    assert!(seen.is_empty());

    // Several frames within the limit are joined, byte for byte.
    let (body, given) = chunks(10, 6, false);
    let (res, seen) = send_body(64, post(Some(&bearer("mcp:admin")), body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(given.load(Ordering::SeqCst), 7, "six frames and the end");
    assert_eq!(seen, [Bytes::from(vec![b' '; 60])]);
}

#[tokio::test]
async fn a_body_that_fails_is_400_and_an_encoded_one_415() {
    let (body, _) = chunks(10, 2, true);
    let (res, seen) = send_body(64, post(Some(&bearer("mcp:admin")), body)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(seen.is_empty());

    for (encoding, status) in [
        ("gzip", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("br, identity", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("Identity", StatusCode::OK),
    ] {
        let mut req = post(
            Some(&bearer("mcp:admin")),
            Full::new(Bytes::from(call("echo"))),
        );
        req.headers_mut()
            .insert(CONTENT_ENCODING, encoding.parse().expect("header"));
        let (res, seen) = send_body(1024, req).await;
        assert_eq!(res.status(), status, "{encoding}");
        assert_eq!(seen.len(), usize::from(status == StatusCode::OK));
    }
}
