//! Log capture: what the code under test logs, as text to assert on.

use std::sync::{Mutex, OnceLock};

/// Everything logged on this thread while the guard lives, at every level down to TRACE.
/// `#[tokio::test]` runs a current-thread runtime, so that is everything the test's own code
/// logs — but not librdkafka's messages, which its log callback emits on the client's own
/// threads: use [`capture_every_thread`] to see those.
pub fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    // tracing-core treats a process with one registered dispatcher as if that one were everyone's
    // (`has_just_one`): a callsite another test thread of this binary reaches first while this
    // capture is the only one is then asked of that thread's default — nobody — and cached as
    // unwanted, so the capture misses it (the API's secrets_in_logs lost "request not persisted"
    // in 6 runs of 8 beside the API tests). A second dispatcher, kept for the whole process,
    // makes tracing ask every live dispatcher instead.
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    let logs = LogBuffer::default();
    (
        logs.clone(),
        tracing::subscriber::set_default(subscriber_into(logs)),
    )
}

/// Everything logged on any thread of this process from now on, at every level down to TRACE:
/// the code under test, tokio's workers, and librdkafka's own threads (rdkafka's `tracing`
/// feature logs from the client's threads). It is the process's global subscriber, installed by
/// the first call; later calls get the same buffer. A thread inside [`capture_logs`] logs there
/// instead. The buffer also holds the lines of other tests of the same binary running alongside:
/// assert on what must be absent, or on text only this test causes.
pub fn capture_every_thread() -> LogBuffer {
    static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let logs = LogBuffer::default();
            tracing::subscriber::set_global_default(subscriber_into(logs.clone()))
                .expect("capture_every_thread installs the process's only global subscriber");
            logs
        })
        .clone()
}

/// A subscriber writing every event, down to TRACE, into `logs`.
fn subscriber_into(logs: LogBuffer) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || logs.clone())
        .finish()
}

/// The lines captured by [`capture_logs`] or [`capture_every_thread`].
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// All of it, as text.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
