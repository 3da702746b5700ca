//! End-to-end tests, both functions and real brokers: one binary (one link of librdkafka and the
//! AWS SDK), one module per subject. `cargo test -p qgen-tests --test e2e <module>` runs one.

mod bad_input;
mod faults;
mod pipeline;
mod queued;
