//! A loopback HTTP/1.1 server answering every request with one canned response (after an
//! optional delay) and keeping the request heads: for tests of what a client does with odd
//! answers (slow, oversized, redirects, bad JSON) and of what it sends where.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stub answers.
#[derive(Clone)]
pub struct Reply {
    delay: Duration,
    bytes: Vec<u8>,
}

impl Reply {
    /// `status` with a JSON `body` and its `Content-Length`.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::raw(format!(
            "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    /// `status` with `headers` (each `name: value`) and no body.
    pub fn empty(status: u16, headers: &[&str]) -> Reply {
        let mut head =
            format!("HTTP/1.1 {status} Stub\r\ncontent-length: 0\r\nconnection: close\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        Reply::raw(head)
    }

    /// `200` with a chunked body of `len` bytes and no `Content-Length`.
    pub fn chunked(len: usize) -> Reply {
        let mut raw = String::from(
            "HTTP/1.1 200 Stub\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n",
        );
        let mut left = len;
        while left > 0 {
            let n = left.min(8192);
            raw.push_str(&format!("{n:x}\r\n{}\r\n", "a".repeat(n)));
            left -= n;
        }
        raw.push_str("0\r\n\r\n");
        Reply::raw(raw)
    }

    /// These exact bytes.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            delay: Duration::ZERO,
            bytes: bytes.into(),
        }
    }

    /// The same reply, sent `delay` after the request was read.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A running stub on a free loopback port.
pub struct Stub {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    pub async fn start(reply: Reply) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, reply.clone(), Arc::clone(&seen)));
            }
        });
        Stub { addr, heads }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The heads of the requests received so far, lower-cased.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

/// Reads one request (head, and a body by `Content-Length`), then answers and closes.
async fn answer(mut stream: TcpStream, reply: Reply, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + body_len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    heads.lock().expect("lock").push(head);
    tokio::time::sleep(reply.delay).await;
    let _ = stream.write_all(&reply.bytes).await;
    let _ = stream.shutdown().await;
}
