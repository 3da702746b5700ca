//! What the integration tests share, written once: the Gemini client's settings and scripted
//! stand-in (`gemini`), the handler's settings and batches (`batches`), the idempotency table and
//! its records (`store`).

pub mod batches;
pub mod gemini;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

/// A deadline a minute from now: later than any test here runs.
pub fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Lets a test keep a handle on a responder the stand-in owns.
pub struct Shared<R>(pub Arc<R>);

impl<R: Respond> Respond for Shared<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}
