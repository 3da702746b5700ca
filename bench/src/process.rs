//! A release binary started as Lambda starts it, for benchmarks 3 and 4: the environment Lambda
//! gives a function (pointed at the stand-ins), the binary's path, and a child process that is
//! killed and reaped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{BenchError, fail};

/// The environment Lambda gives a function, pointed at the stand-ins.
pub(crate) fn lambda_env(
    runtime_api: &str,
    function: &str,
    bootstrap: &str,
    gemini: &str,
) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_REGION", "eu-west-1"),
        // boto3 reads the region from this one; Lambda sets both.
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap),
        ("GOOGLE_API_KEY", "bench-key"),
        ("GEMINI_BASE_URL", gemini),
        ("GENERATION_CONCURRENCY", "16"),
        ("AWS_LAMBDA_LOG_LEVEL", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A child process killed and reaped on drop, so no benchmark leaves one behind.
pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` with `args` and nothing in its environment but `PATH` and `env`.
pub(crate) fn spawn(program: &str, args: &[&str], env: &[(String, String)]) -> Result<Reaped, BenchError> {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .map_err(|e| fail(&format!("start {program}"), e))
}

/// The path of the release binary `name` in `target_dir`, or how to build it.
pub(crate) fn binary(target_dir: &Path, name: &str) -> Result<String, BenchError> {
    let path = target_dir.join("release").join(name);
    if !path.is_file() {
        return Err(BenchError(format!(
            "{} is missing: build with `cargo build --release -p {name}` (scripts/bench does)",
            path.display()
        )));
    }
    Ok(path.to_string_lossy().into_owned())
}
