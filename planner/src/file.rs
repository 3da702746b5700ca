//! The model file: the constants the sweep fitted, with how well they predicted the points the
//! fit never saw. `qgen-bench capacity` writes it to [`COMMITTED_PATH`]; the build compiles that
//! file in ([`ModelFile::committed`]).

use serde::{Deserialize, Serialize};

use crate::model::Model;

/// Where the sweep writes the model the planner compiles in: `planner/model.json` in the
/// checkout this crate was built from (only the sweep, run from a checkout, writes there).
pub const COMMITTED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/model.json");

/// The model the last sweep committed, as text.
const COMMITTED: &str = include_str!("../model.json");

/// The model as the sweep last fitted it, with how well it predicted what it had not seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    /// The constants.
    pub model: Model,
    /// When the model was fitted (UTC): the sweep's end, or a refit from its points.
    pub fitted_at: String,
    /// Held-out points, and the largest |error| of throughput and of the median on them.
    pub held_out: usize,
    /// Largest |predicted / measured - 1| of throughput on the held-out points.
    pub throughput_error: f64,
    /// The same for the request-to-response median.
    pub p50_error: f64,
}

impl ModelFile {
    /// A model file's text read back.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The model compiled in: `planner/model.json` as the last sweep wrote it.
    pub fn committed() -> Self {
        // A test parses the same text, so a sweep that wrote something unreadable fails there.
        Self::parse(COMMITTED).expect("planner/model.json is a model file")
    }

    /// The file as the sweep writes it: pretty JSON, one field a line, a final newline.
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model file serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TOLERANCE;

    #[test]
    fn the_committed_model_loads_and_met_its_held_out_target() {
        // `recommend` answers from this file; a sweep rewrites it.
        let file = ModelFile::parse(COMMITTED).expect("planner/model.json");
        assert!(file.held_out >= 10, "{file:?}");
        assert!(
            file.throughput_error <= TOLERANCE && file.p50_error <= TOLERANCE,
            "{file:?}"
        );
        assert!(file.model.batch_overhead >= 0.0 && file.model.call_overhead >= 0.0);
        assert_eq!(
            file.to_text(),
            COMMITTED,
            "the sweep writes the file as committed"
        );
    }
}
