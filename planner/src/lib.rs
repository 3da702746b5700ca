//! `qgen-planner`: how many partitions of `question.request`, what `BatchSize` and
//! `GENERATION_CONCURRENCY`, which `Timeout` and pollers for a request rate, from a model of the
//! MSK trigger fitted to measurements.
//!
//! The model is the trigger emulator's rules simulated, with two constants (per invocation, per
//! call) that `qgen-bench capacity` fits to a sweep through the local stack and writes to
//! `planner/model.json`; that file is compiled in, so an installed binary answers with no file
//! around. Pure: arithmetic and a seeded random generator, no I/O, no async runtime, no network.
//!
//! ```
//! let answer = qgen_planner::recommend(&qgen_planner::Options::for_rate(50.0)).unwrap();
//! assert!(answer.recommendation.utilisation <= qgen_planner::recommend::UTILISATION);
//! println!("{answer}");
//! ```
//!
//! # Layout
//!
//! - this file: the template's figures recommendations are made for, and the re-exports.
//! - [`model`]: the model's terms (latency, shape, constants, figures).
//! - [`sim`]: the trigger simulated, and what [`Model`] predicts with it.
//! - [`fit`]: the sweep's points, the constants fitted to them, the predictions checked on them.
//! - [`recommend`]: the search for a shape, the `Timeout` and the retries that go with it.
//! - [`file`]: the model file the sweep writes, and the one compiled in.
//! - [`answer`]: what an operator asks ([`Options`]) and is told ([`Answer`]), as text too.

pub mod answer;
pub mod file;
pub mod fit;
pub mod model;
pub mod recommend;
pub mod sim;

pub use answer::{Answer, InvalidOption, Options, recommend, recommend_with, table};
pub use file::ModelFile;
pub use model::{Figures, Latency, Model, Shape};
pub use recommend::Recommendation;

/// The question the sizing answers by default: Gemini at 4 s median, 12 s p99.
pub const PRODUCTION_LATENCY: Latency = Latency { p50: 4.0, p99: 12.0 };
/// The template's `RequestToResponseP99AlarmMs` default, in seconds: the p99 a recommendation
/// must stay under unless told otherwise.
pub const P99_TARGET: f64 = 60.0;
/// The template's `MaximumBatchingWindowInSeconds` (the emulator's default, which a test in
/// `qgen-bench` keeps equal to the template's), seconds: the window recommendations are made for.
pub const TEMPLATE_BATCHING_WINDOW: f64 = 1.0;
/// Largest prediction error allowed on the sweep's held-out points.
pub const TOLERANCE: f64 = 0.15;

/// `model` with the batching window of the trigger it is to predict (the sweep runs a shorter
/// one, so that a point takes seconds; the fitted constants do not depend on it).
pub fn deployed(model: &Model, batching_window: f64) -> Model {
    Model {
        batching_window,
        ..*model
    }
}
