//! [`MotoServer`]: real AWS APIs (Secrets Manager, DynamoDB) from a local moto process, and
//! SDK clients pointed at it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::brokers::free_port;

/// A moto server process: real AWS APIs (Secrets Manager, DynamoDB, …) on a loopback port, so
/// tests drive the real SDK over HTTP. Started with `python3 -m moto.server`; killed on drop.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts the server and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (pip install 'moto[server]'; scripts/test does it)");
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto exited with {status}: is moto[server] installed?");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A Secrets Manager client for this server, with dummy credentials.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// Creates the secret `name` holding `value`; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        self.secrets_manager()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create a secret in moto")
            .arn()
            .expect("moto returns the secret's ARN")
            .to_owned()
    }

    /// A DynamoDB client for this server, with dummy credentials.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        dynamodb_client(&self.endpoint)
    }

    /// Creates the idempotency table `name` as `template.yaml` declares it (partition key `id`,
    /// on demand); returns a client for it.
    pub async fn idempotency_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let client = self.dynamodb();
        client
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create the idempotency table in moto");
        client
    }
}

/// A DynamoDB client for `endpoint` (`http://host:port`), with dummy credentials.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
