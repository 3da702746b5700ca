//! The `publish` benchmark on a second broker: tansu (an independent Kafka-protocol implementation) as a
//! separate process on loopback with SQLite storage, so the produce crosses a real socket to a
//! broker that writes to disk, as the mock cluster's does not. Optional: skipped, with the
//! reason printed, when the binary is absent (`$TANSU_BIN`, else `tansu` on the `PATH`;
//! `ensure_tansu` in scripts/deps.sh installs it, once, in about 16 minutes).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qgen_adapters::kafka::{TopicSpec, ensure_topics};
use rdkafka::ClientConfig;

use crate::fixtures::REQUEST_TOPIC;
use crate::publish::{PublishPair, print_comparison};
use crate::{BenchError, Mode, fail};

/// A tansu broker process with its data in a directory of its own; killed, reaped and its data
/// removed on drop.
struct Tansu {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
}

impl Tansu {
    /// Starts `binary` on a free loopback port, waits until it listens, and creates the request
    /// topic (three partitions, as on the mock cluster).
    async fn start(binary: &Path) -> Result<Self, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail("free port", e))?
            .port();
        let data = std::env::temp_dir().join(format!("qgen-bench-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data).map_err(|e| fail("tansu data directory", e))?;
        let log = std::fs::File::create(data.join("tansu.log")).map_err(|e| fail("tansu log", e))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu puts the SQLite file at its working directory + the URL's host and path.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let mut broker = Tansu {
            child: None,
            port,
            data,
        };
        broker.child = Some(child.map_err(|e| fail(&format!("start {}", binary.display()), e))?);
        broker.wait_until_listening(Duration::from_secs(20)).await?;
        let mut admin = ClientConfig::new();
        admin.set("bootstrap.servers", broker.bootstrap_servers());
        ensure_topics(&admin, &[TopicSpec::new(REQUEST_TOPIC, 3)])
            .await
            .map_err(|e| fail("create the topic on tansu", e))?;
        Ok(broker)
    }

    fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn wait_until_listening(&mut self, limit: Duration) -> Result<(), BenchError> {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.data.join("tansu.log")).unwrap_or_default();
                return Err(BenchError(format!(
                    "tansu exited with {status} before listening: {log}"
                )));
            }
            if started.elapsed() > limit {
                return Err(BenchError(format!("tansu did not listen within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `$TANSU_BIN`, else `tansu` on the `PATH`; `None` when there is neither.
fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("tansu"))
        .find(|path| path.is_file())
}

/// The `publish` benchmark's interleaved comparison on tansu, printed under it; a broker that is
/// absent or does not start is reported, not an error, so the other benchmarks still run.
pub(crate) async fn on_tansu(mode: Mode) {
    let (warmup, n) = match mode {
        Mode::Quick => (50, 500),
        Mode::Full => (100, 2_000),
    };
    println!("    on tansu (a broker process on loopback, SQLite storage), {n} each, interleaved:");
    let Some(binary) = tansu_binary() else {
        println!(
            "      skipped: no tansu (optional: set TANSU_BIN, or run ensure_tansu from scripts/deps.sh)"
        );
        return;
    };
    let measured = async {
        let broker = Tansu::start(&binary).await?;
        let pair = PublishPair::new(&broker.bootstrap_servers())?;
        let (handler, produce) = pair.interleaved(warmup, n).await?;
        drop(pair);
        drop(broker);
        Ok::<_, BenchError>((handler, produce))
    };
    match measured.await {
        Ok((handler, produce)) => print_comparison(&handler, &produce, "      "),
        Err(error) => println!("      not measured: {error}"),
    }
}
