//! `qgen-standins`: the stand-ins as commands, for scripts that run the real binaries.
//!
//! - `runtime-api [OPTIONS] BINARY [VAR=VALUE …]`: runs a Lambda bootstrap binary against the
//!   Runtime API stand-in and checks what it did ([`qgen_standins::smoke`]); exit status 0 when
//!   every expectation held.
//!
//! The Gemini stand-in runs as `qgen-local gemini-stand-in`, beside the local stack.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qgen_standins::smoke::{self, Smoke};

#[derive(Parser)]
#[command(
    name = "qgen-standins",
    about = "Runs a Lambda bootstrap binary against the Runtime API stand-in"
)]
struct Cli {
    #[command(subcommand)]
    command: Stand,
}

#[derive(Subcommand)]
enum Stand {
    /// Runs a Lambda bootstrap binary against the Runtime API stand-in and checks it.
    RuntimeApi(Smoke),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Stand::RuntimeApi(run) => match smoke::run(&run).await {
            Ok(summary) => {
                eprintln!("{summary}");
                ExitCode::SUCCESS
            }
            Err(failures) => {
                for failure in failures {
                    eprintln!("FAIL {}: {failure}", run.binary.display());
                }
                ExitCode::FAILURE
            }
        },
    }
}
