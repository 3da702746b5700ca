//! The `qgen` binary as an operator runs it, against real brokers: the brokers from the
//! `KAFKA_*` variables or from the local stack's state file, each command's arguments reaching
//! the library, the answer when neither names a broker, and `recommend` printing the planner's
//! answer. The commands' libraries are tested
//! beside the stack they serve: `replay` and `timeline` in `local/tests/it` (against the trigger
//! emulator's given-up records and the whole local stack).

mod cli;
