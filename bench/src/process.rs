//! A release binary started as Lambda starts it, for the `cold-start` and `memory` benchmarks: the environment Lambda
//! gives a function (pointed at the stand-ins), the binary's path, and a child process that is
//! killed and reaped on drop, or reaped with `wait4` for the CPU time it used; for the `memory` benchmark,
//! a binary run under the Runtime API stand-in and what some of its invocations cost it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::stand_ins::RuntimeApi;
use crate::stats::median;
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

/// What a child used over its whole life, from `wait4`'s `rusage`: CPU time in microseconds
/// (`/proc/<pid>/stat` counts 10 ms ticks) and its peak resident set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// CPU time in user mode, every thread.
    pub(crate) user: Duration,
    /// CPU time in the kernel on its behalf, every thread.
    pub(crate) system: Duration,
    /// `ru_maxrss`: the peak resident set, in kB.
    pub(crate) max_rss_kb: u64,
}

impl Usage {
    /// User + system.
    pub(crate) fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

impl Reaped {
    /// Kills the child and reaps it with `wait4`, returning what it used. The child is not
    /// touched again afterwards: once reaped, its pid may belong to another process.
    pub(crate) fn kill_and_usage(mut self) -> Result<Usage, BenchError> {
        let _ = self.0.kill();
        let pid = self.0.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is plain old data, for which all zeroes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = loop {
            // SAFETY: `pid` is our own child, not yet reaped (std only reaps it in `wait`, which
            // has not run); both pointers are to live locals of the right types.
            let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if reaped == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break reaped;
        };
        if reaped != pid {
            // Not reaped: the drop below kills and reaps it as usual.
            return Err(fail("wait4", std::io::Error::last_os_error()));
        }
        // Reaped: the drop must neither signal nor wait for this pid again. A `Child` spawned
        // with null stdio holds no pipes, so forgetting it leaks nothing.
        std::mem::forget(self);
        Ok(Usage {
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
            max_rss_kb: usage.ru_maxrss.max(0) as u64,
        })
    }
}

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

/// The `VmHWM:` value of a `/proc/<pid>/status` text, in kB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `VmHWM` (peak resident set) of `pid`, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

/// One process's life under the Runtime API stand-in.
pub(crate) struct Run {
    /// `VmHWM` once every invocation was answered, in kB.
    pub(crate) peak_kb: u64,
    /// What it used, from `wait4`.
    pub(crate) usage: Usage,
    /// From exec to the last invocation's answer.
    pub(crate) wall: Duration,
}

/// Runs `function` under the Runtime API stand-in with `events`; once every invocation has been
/// answered, reads its peak RSS, then kills and reaps it for the CPU it used.
pub(crate) async fn run(
    program: &str,
    function: &str,
    events: Vec<Bytes>,
    bootstrap: &str,
    gemini: &str,
) -> Result<Run, BenchError> {
    let count = events.len();
    let mut runtime = RuntimeApi::start(events)
        .await
        .map_err(|e| fail("runtime api", e))?;
    let env = lambda_env(&runtime.address(), function, bootstrap, gemini);
    let started = Instant::now();
    let child = spawn(program, &[], &env)?;
    for _ in 0..count {
        let completion = runtime
            .completion(Duration::from_secs(120))
            .await
            .ok_or_else(|| BenchError(format!("{function} did not answer an invocation")))?;
        if completion.kind != "response" {
            return Err(BenchError(format!(
                "{function} reported {}: {}",
                completion.kind,
                String::from_utf8_lossy(&completion.body)
            )));
        }
    }
    let wall = started.elapsed();
    let peak_kb = peak_rss_kb(child.0.id()).ok_or_else(|| BenchError("no /proc status".into()))?;
    let usage = child.kill_and_usage()?;
    Ok(Run { peak_kb, usage, wall })
}

/// CPU per unit of work, the run's peak RSS and the wall time per measured invocation.
pub(crate) struct Marginal {
    /// User + system per unit. Only the sum is precise: Linux splits a thread's exact run time
    /// into user and system by 10 ms tick samples, which over a few ms of CPU is noise.
    pub(crate) cpu: Duration,
    /// The highest `VmHWM` of every run, in kB.
    pub(crate) peak_kb: u64,
    /// Wall time per measured invocation.
    pub(crate) wall: Duration,
    /// CPU of the warm-up run alone: start-up and the warm-up invocations.
    pub(crate) start: Duration,
}

/// What `measured` costs beyond `warm`: a process given `warm` then `measured` against one
/// given `warm` alone (start-up, first connections), over `units`; medians of `reps` pairs,
/// the two sides taking turns going first.
pub(crate) async fn marginal(
    program: &str,
    function: &str,
    (warm, measured): (&[Bytes], &[Bytes]),
    units: usize,
    reps: usize,
    (bootstrap, gemini): (&str, &str),
) -> Result<Marginal, BenchError> {
    let all: Vec<Bytes> = warm.iter().chain(measured).cloned().collect();
    let (mut cpu, mut wall, mut start) = (vec![], vec![], vec![]);
    let mut peak_kb = 0;
    for rep in 0..reps {
        let (base, full) = if rep % 2 == 0 {
            let base = run(program, function, warm.to_vec(), bootstrap, gemini).await?;
            (
                base,
                run(program, function, all.clone(), bootstrap, gemini).await?,
            )
        } else {
            let full = run(program, function, all.clone(), bootstrap, gemini).await?;
            (
                run(program, function, warm.to_vec(), bootstrap, gemini).await?,
                full,
            )
        };
        cpu.push(full.usage.cpu().saturating_sub(base.usage.cpu()) / units as u32);
        wall.push(full.wall.saturating_sub(base.wall) / measured.len() as u32);
        start.push(base.usage.cpu());
        peak_kb = peak_kb.max(full.peak_kb).max(base.peak_kb);
    }
    Ok(Marginal {
        cpu: median(&cpu),
        peak_kb,
        wall: median(&wall),
        start: median(&start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait4_reports_the_cpu_a_child_burned() {
        // A shell busy for about 50 ms of CPU: far above /proc's 10 ms tick, well below a second.
        let child = spawn(
            "sh",
            &["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 5"],
            &[],
        )
        .expect("sh starts");
        std::thread::sleep(Duration::from_millis(1500));
        let usage = child.kill_and_usage().expect("reaped");
        assert!(usage.cpu() > Duration::ZERO, "{usage:?}");
        assert!(usage.cpu() < Duration::from_secs(5), "{usage:?}");
        assert!(usage.max_rss_kb > 0, "{usage:?}");
        // Microseconds, not ticks: a figure of whole 10 ms ticks would be a suspicious coincidence.
        assert_ne!(usage.cpu().as_micros() % 10_000, 0, "{usage:?}");
    }

    #[test]
    fn reads_the_peak_rss_from_proc_status() {
        let status = "Name:\tbootstrap\nVmPeak:\t  200000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(23_456));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
