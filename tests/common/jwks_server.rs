//! A small JWKS / discovery server on 127.0.0.1 for the remote-keys tests, whose behaviour
//! per path can be switched at runtime, and which counts the requests it gets per path.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a path answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with this body (`application/json`).
    Json(String),
    /// This status, empty body.
    Status(u16),
    /// Never answers.
    Hang,
    /// 200 with `bytes` bytes; with `Content-Length` when `declared`, chunked otherwise.
    Huge { bytes: usize, declared: bool },
    /// 302 to this location.
    Redirect(String),
}

#[derive(Clone, Debug)]
struct Route {
    behaviour: Behaviour,
    cache_control: Option<String>,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

impl State {
    fn counter(&self, path: &str) -> Arc<AtomicUsize> {
        Arc::clone(
            self.hits
                .lock()
                .expect("hits lock")
                .entry(path.to_owned())
                .or_default(),
        )
    }
}

/// The server; stops when dropped.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Starts a server that answers 404 everywhere until told otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    /// `http://127.0.0.1:port` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Sets what `path` answers (keeps its `Cache-Control`).
    pub fn set(&self, path: &str, behaviour: Behaviour) {
        let mut routes = self.state.routes.lock().expect("routes lock");
        match routes.get_mut(path) {
            Some(route) => route.behaviour = behaviour,
            None => {
                routes.insert(
                    path.to_owned(),
                    Route {
                        behaviour,
                        cache_control: None,
                    },
                );
            }
        }
    }

    /// Sets the `Cache-Control` header `path` answers with (when it answers 200).
    pub fn set_cache_control(&self, path: &str, value: Option<&str>) {
        let mut routes = self.state.routes.lock().expect("routes lock");
        let route = routes.entry(path.to_owned()).or_insert(Route {
            behaviour: Behaviour::Status(404),
            cache_control: None,
        });
        route.cache_control = value.map(str::to_owned);
    }

    /// Makes `path` answer 404 again.
    pub fn remove(&self, path: &str) {
        self.state.routes.lock().expect("routes lock").remove(path);
    }

    /// Serves JSON text at `path`.
    pub fn json(&self, path: &str, body: impl Into<String>) {
        self.set(path, Behaviour::Json(body.into()));
    }

    /// Serves a discovery document at `path`.
    pub fn discovery(&self, path: &str, issuer: &str, jwks_uri: &str) {
        self.json(
            path,
            serde_json::json!({
                "issuer": issuer,
                "jwks_uri": jwks_uri,
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
            })
            .to_string(),
        );
    }

    /// How many requests `path` got so far.
    pub fn hits(&self, path: &str) -> usize {
        self.state.counter(path).load(Ordering::SeqCst)
    }
}

type ResBody = BoxBody<Bytes, Infallible>;

async fn handle(state: &State, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_owned();
    state.counter(&path).fetch_add(1, Ordering::SeqCst);
    let route = state
        .routes
        .lock()
        .expect("routes lock")
        .get(&path)
        .cloned();
    let Some(route) = route else {
        return status(404);
    };
    let mut res = match route.behaviour {
        Behaviour::Json(body) => {
            let mut res = Response::new(Full::new(Bytes::from(body)).boxed());
            res.headers_mut()
                .insert("content-type", "application/json".parse().expect("header"));
            res
        }
        Behaviour::Status(code) => return status(code),
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
        Behaviour::Huge {
            bytes,
            declared: true,
        } => Response::new(Full::new(Bytes::from(vec![b' '; bytes])).boxed()),
        Behaviour::Huge {
            bytes,
            declared: false,
        } => Response::new(Chunks { remaining: bytes }.boxed()),
        Behaviour::Redirect(location) => {
            let mut res = status(302);
            res.headers_mut()
                .insert("location", location.parse().expect("header"));
            return res;
        }
    };
    if let Some(cc) = route.cache_control {
        res.headers_mut()
            .insert("cache-control", cc.parse().expect("header"));
    }
    res
}

fn status(code: u16) -> Response<ResBody> {
    let mut res = Response::new(Full::new(Bytes::new()).boxed());
    *res.status_mut() = StatusCode::from_u16(code).expect("status");
    res
}

/// A body of `remaining` spaces in 64 KiB frames, without a declared length (chunked).
struct Chunks {
    remaining: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 * 1024);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }
}
