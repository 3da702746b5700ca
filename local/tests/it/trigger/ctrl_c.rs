//! The `qgen-local up` binary stopped by Ctrl-C (SIGINT) with a batch in flight.

use std::time::Duration;

use qgen_testkit::produce_request;

use super::wait_for;

/// A child process, killed (by its id) if the test ends before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A one-request Lambda Invoke API: reports the request when it arrives, answers `null` (a
/// complete success) when `release` says so.
fn hold_one_invocation(
    listener: std::net::TcpListener,
    arrived: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
) {
    use std::io::{Read, Write};
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    // Headers, then as many body bytes as Content-Length says.
    let complete = |request: &[u8]| {
        let text = String::from_utf8_lossy(request);
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        request.len() >= end + 4 + length
    };
    while !complete(&request) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = arrived.send(());
    if release.recv_timeout(Duration::from_secs(60)).is_ok() {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull");
    }
}

/// The next line from `lines` that `matches` (within 30 s); every line read is kept in `log`.
fn wait_line(
    lines: &std::sync::mpsc::Receiver<String>,
    log: &mut Vec<String>,
    what: &str,
    matches: &dyn Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                log.push(line.clone());
                if matches(&line) {
                    return line;
                }
            }
            Err(e) => panic!(
                "no stderr line for {what} ({e}); stderr so far:\n{}",
                log.join("\n")
            ),
        }
    }
}

/// Whether process `pid` has a handler installed for SIGINT (Linux: bit 1 of `SigCgt` in
/// `/proc/PID/status`); `None` where there is no `/proc`.
fn catches_sigint(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    Some(u64::from_str_radix(mask.trim(), 16).ok()? & (1 << (2 - 1)) != 0)
}

/// The binary's wiring of Ctrl-C, end to end: `qgen-local up` (its own embedded broker, the
/// function behind `--invoke-url` played by this test) gets SIGINT while its trigger has a batch
/// in flight; it finishes that batch, commits past it, and exits with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_qgen_local_up_after_its_batch_in_flight_finishes_and_commits() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let invoke_url = format!("http://{}", listener.local_addr().unwrap());
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    std::thread::spawn(move || hold_one_invocation(listener, arrived_tx, release_rx));

    let state_file = std::env::temp_dir().join(format!("qgen-local-ctrl-c-{}.json", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_qgen-local"));
    command
        .arg("--state-file")
        .arg(&state_file)
        .args(["up", "--api-addr", "127.0.0.1:0", "--partitions", "1"])
        .args(["--batching-window-ms", "0", "--invoke-url", &invoke_url])
        // The embedded broker and the default topic names, whatever this shell exports.
        .env("RUST_LOG", "warn,qgen_local::esm=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("KAFKA_")) {
        command.env_remove(var);
    }
    let mut child = Child(command.spawn().expect("start qgen-local"));
    let pid = child.0.id();
    let stderr = child.0.stderr.take().unwrap();
    let (line_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log: Vec<String> = Vec::new();

    let broker_line = wait_line(&lines, &mut log, "the broker's address", &|l| {
        l.trim_start().starts_with("broker:")
    });
    let bootstrap = broker_line
        .trim_start()
        .trim_start_matches("broker:")
        .trim()
        .to_owned();
    // The banner's last line: right after it, `up` waits for Ctrl-C.
    wait_line(&lines, &mut log, "the start-up banner", &|l| l.contains("stop:"));
    produce_request(&bootstrap, 0, "ctrl-c", "t", None).await;
    arrived
        .recv_timeout(Duration::from_secs(30))
        .expect("the trigger invokes the function with the record");
    if catches_sigint(pid).is_some() {
        wait_for("qgen-local to handle SIGINT", Duration::from_secs(10), || {
            catches_sigint(pid) == Some(true)
        })
        .await;
    }

    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_line(&lines, &mut log, "the shutdown to begin", &|l| {
        l.contains("shutting down")
    });
    assert!(
        !log.iter().any(|l| l.contains("offsets committed")),
        "nothing is committed while the batch is in flight: {log:?}"
    );
    release.send(()).unwrap();
    let committed = wait_line(&lines, &mut log, "the batch's commit", &|l| {
        l.contains("offsets committed")
    });
    // Under the 30 s that `RunningStack::stop` grants tasks that ignore the shutdown.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "qgen-local still running 20 s after its batch was committed: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert!(
        status.success(),
        "exits cleanly, not killed by the signal: {status:?}"
    );
    assert!(
        committed.contains("0@1"),
        "partition 0 committed past its record (offset 1): {committed}"
    );
    assert!(!state_file.exists(), "the state file is removed on the way out");
    // The rest of stderr, up to its end (the reader stops at the exited child's end of pipe).
    let rest: Vec<String> = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert!(
        !rest.iter().any(|l| l.contains("did not stop")),
        "every task stopped when told: {rest:?}"
    );
}
