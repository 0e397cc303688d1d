//! Captures what `tracing` logs on the current thread, through one process-wide subscriber,
//! for tests that read what was logged while other tests of the binary run in parallel.
//!
//! Why not `tracing::subscriber::set_default` with a buffer: tracing caches, process-wide,
//! whether a callsite is enabled (its "interest") when the callsite is first hit, and while
//! only one dispatcher exists it asks the *current thread's* default. A thread-local
//! default therefore loses every event whose callsite another test's thread (no subscriber
//! there) hits first: the callsite is cached as "never" for all threads. `tests/client.rs`
//! missed "access token obtained" so, about one run in six, and a rate-limit unit test its
//! `rate_limited` event.
//!
//! Here one global subscriber is installed once; its filter is dynamic
//! (`dynamic_filter_fn`: a plain `filter_fn` is taken as cacheable and would be asked once
//! per callsite, again on whichever thread comes first), so every callsite's interest is
//! "sometimes" and each event asks, on the thread that logs it, whether that thread is
//! capturing. Call [`install`] before a test logs anything (the shared harness
//! entry points do), so that no callsite is first registered while it is being installed.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;

type Sink = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Installs the process-wide subscriber (once; later calls return at once).
///
/// # Panics
/// If another global subscriber was installed in this test binary.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(|| ThreadWriter)
            .with_ansi(false)
            .with_filter(dynamic_filter_fn(|_, _| capturing()));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global tracing subscriber in this test binary");
    });
}

/// Captures every event logged on this thread, at every level, until dropped. On a
/// current-thread Tokio runtime (`#[tokio::test]`), that is every task's event.
#[must_use]
pub fn capture() -> Capture {
    install();
    let sink = Sink::default();
    let previous = SINK.with(|s| s.replace(Some(Arc::clone(&sink))));
    Capture { sink, previous }
}

/// What was logged on this thread since [`capture`].
#[derive(Debug)]
pub struct Capture {
    sink: Sink,
    previous: Option<Sink>,
}

impl Capture {
    /// The text logged so far.
    pub fn text(&self) -> String {
        let bytes = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = SINK.try_with(|s| s.replace(previous));
    }
}

fn capturing() -> bool {
    SINK.try_with(|s| s.borrow().is_some()).unwrap_or(false)
}

/// Writes into the current thread's capture, or nowhere.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = SINK.try_with(|s| {
            if let Some(sink) = &*s.borrow() {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
