//! Brokers that speak the real Kafka protocol over TCP: [`MockBroker`] (librdkafka's mock
//! cluster, in-process) and [`TansuBroker`] (an independent broker process), with the service's
//! topics and a [`free_port`] to put servers on.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use qgen_adapters::kafka::{TopicSpec, ensure_topics};

/// The topics of the service with the partition counts the tests use.
pub const SERVICE_TOPICS: [(&str, i32); 4] = [
    ("question.request", 3),
    ("question.response", 3),
    ("question.request.dlq", 1),
    ("question.request.failed", 1),
];

/// librdkafka's mock cluster: a Kafka-protocol broker in this process, on a real TCP port.
/// Fast to start; supports groups and commits, not CreateTopics (topics are made here).
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker cluster with `topics` (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Self {
        let cluster = MockCluster::new(1).expect("start librdkafka mock cluster");
        for (name, partitions) in topics {
            cluster
                .create_topic(name, *partitions, 1)
                .expect("create mock topic");
        }
        MockBroker { cluster }
    }

    /// Starts one with the service's topics.
    pub fn with_service_topics() -> Self {
        Self::start(&SERVICE_TOPICS)
    }

    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Makes the broker drop its connections and refuse new ones, keeping its data.
    pub fn go_down(&self) {
        self.cluster.broker_down(1).expect("mock broker down");
    }

    /// Makes the broker accept connections again.
    pub fn come_up(&self) {
        self.cluster.broker_up(1).expect("mock broker up");
    }

    /// Leaves the first `partitions` partitions of `topic` without a leader: producing to them
    /// waits, then fails at the message timeout, while every other topic works. Only before a
    /// producer has written to them: librdkafka 2.12's mock broker crashes (a null leader) when
    /// it refuses a Produce from a producer that still takes it for the leader.
    pub fn make_unwritable(&self, topic: &str, partitions: i32) {
        for partition in 0..partitions {
            self.cluster
                .partition_leader(topic, partition, None)
                .expect("mock partition leaderless");
        }
    }

    /// Gives the partitions of `topic` their leader back.
    pub fn make_writable(&self, topic: &str, partitions: i32) {
        for partition in 0..partitions {
            self.cluster
                .partition_leader(topic, partition, Some(1))
                .expect("mock partition leader");
        }
    }

    /// Answers the next `errors.len()` requests of kind `api` with `errors`, one each, in order;
    /// the requests after them are served as usual. How a test makes the broker say what a
    /// client must survive (a Produce refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`, say).
    pub fn fail_requests(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        self.cluster.request_errors(api, errors);
    }
}

/// A tansu broker process (an independent Kafka-protocol implementation) with SQLite storage in
/// a temporary directory, on a free loopback port. Killed on drop.
///
/// The binary is `$TANSU_BIN`, else `tansu` on the `PATH`; `scripts/test` installs it when
/// missing. Tests that need it fail, loudly, when it is absent: they are never skipped.
pub struct TansuBroker {
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
    /// Whether clients must authenticate (`--authentication`: SASL/SCRAM).
    authentication: bool,
}

impl TansuBroker {
    /// Starts the broker and creates `topics` (name, partitions) through the admin API.
    pub async fn start(topics: &[(&str, i32)]) -> Self {
        let mut broker = TansuBroker {
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("temporary directory for tansu"),
            authentication: false,
        };
        broker.restart().await;
        let specs: Vec<TopicSpec> = topics
            .iter()
            .map(|(name, partitions)| TopicSpec::new(name, *partitions))
            .collect();
        let mut admin = ClientConfig::new();
        admin.set("bootstrap.servers", broker.bootstrap_servers());
        ensure_topics(&admin, &specs)
            .await
            .expect("create topics on tansu");
        broker
    }

    /// Starts one with the service's topics.
    pub async fn with_service_topics() -> Self {
        Self::start(&SERVICE_TOPICS).await
    }

    /// Starts one with the service's topics that admits only clients authenticating with
    /// SASL/SCRAM-SHA-512 as `user` (`SASL_PLAINTEXT`). The user is created with `tansu user
    /// create` while the broker is open, then it restarts with `--authentication` on the same data.
    pub async fn with_scram_user(user: &str, password: &str) -> Self {
        let mut broker = Self::with_service_topics().await;
        let created = Command::new(tansu_binary())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", broker.port))
            .args([user, password, "--mechanism", "scram512"])
            .output()
            .expect("run tansu user create");
        assert!(
            created.status.success(),
            "tansu user create failed: {}\n{}",
            created.status,
            String::from_utf8_lossy(&created.stderr)
        );
        broker.authentication = true;
        broker.restart().await;
        broker
    }

    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker process (SIGKILL, as a crash would); its data stays for
    /// [`Self::restart`]. Not SIGTERM: tansu 0.6 then stops its storage at once but keeps
    /// answering open connections with errors for 5 s, which is a different fault.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port with the same data, and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let binary = tansu_binary();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(self.authentication.then_some("--authentication"))
            // tansu puts the SQLite file at its working directory + the URL's host and path.
            .current_dir(self.data.path())
            .args(["--storage-engine", "sqlite://tansu.db"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(self.data.path()))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({}): {e}. Run scripts/test, which installs it, or set TANSU_BIN",
                    binary.display()
                )
            });
        self.child = Some(child);
        self.wait_until_listening(Duration::from_secs(20)).await;
    }

    async fn wait_until_listening(&mut self, limit: Duration) {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.data.path().join("tansu.log")).unwrap_or_default();
                panic!("tansu exited with {status} before listening:\n{log}");
            }
            assert!(
                start.elapsed() < limit,
                "tansu did not listen on port {} within {limit:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `$TANSU_BIN`, else `tansu` on the `PATH`.
fn tansu_binary() -> PathBuf {
    std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tansu"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn log_file(dir: &std::path::Path) -> Stdio {
    std::fs::File::create(dir.join("tansu.log")).map_or_else(|_| Stdio::null(), Stdio::from)
}
