//! Integration tests of qgen-adapters: one binary, one module per subject.

mod kafka_auth;
mod publisher;
mod secrets;
mod topics;
