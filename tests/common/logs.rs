//! A `tracing` writer into memory, for tests that read what was logged.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything written to it, shared between clones.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Everything this test binary logs, from every test: one global subscriber, installed
    /// by the first call (each test calls it before it starts, so that no log site is ever
    /// registered without it: a per-test `set_default` loses events to other threads'
    /// registrations). Tests tell their own lines apart by a key prefix or a client id of
    /// their own.
    pub fn global() -> &'static LogBuffer {
        static LOGS: OnceLock<LogBuffer> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = LogBuffer::default();
            tracing::subscriber::set_global_default(logs.subscriber()).expect("one subscriber");
            logs
        })
    }

    /// A subscriber writing every event, at every level and without colours, here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}
