//! Log capture: everything the code under test logs on this thread, as text to assert on.

use std::sync::Mutex;

/// Everything logged on this thread while the guard lives, at every level down to TRACE
/// (librdkafka's own messages included, through rdkafka's `tracing` feature). `#[tokio::test]`
/// runs a current-thread runtime, so that is everything the code under test logs.
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
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The lines captured by [`capture_logs`].
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
