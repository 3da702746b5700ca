//! Integration tests of qgen-contract: one binary, one module per subject.

mod contracts;
