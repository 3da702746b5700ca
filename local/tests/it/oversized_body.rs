//! A body over the API server's 1 MiB read limit is answered with the contract's 413 that the
//! client can read, though the client was still sending when the server decided: the server
//! reads the rest (up to 8 MiB) before it answers, so the connection ends with the answer and
//! a clean close, not a reset. Driven over a raw socket, as a client that sends its whole body
//! before it reads does.
//!
//! Both ends get small kernel buffers, as over a real network, where most of a large body is
//! still to be sent when the server answers. On loopback the kernel's own buffers (several MiB,
//! grown as the server reads) would take the whole body before the server decided, and the
//! client would never find out that the server had stopped reading.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use qgen_adapters::config::ApiConfig;
use qgen_adapters::kafka::KafkaPublisher;
use qgen_testkit::{MockBroker, env_lookup};
use question_api::Api;
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// The kernel buffer each end gets for what it has yet to read or send.
const SMALL_BUFFER: u32 = 64 * 1024;

/// The API served over HTTP on a loopback port, publishing to `broker`.
async fn serve(broker: &MockBroker) -> (SocketAddr, CancellationToken) {
    let bootstrap = broker.bootstrap_servers();
    let config = ApiConfig::from_lookup(env_lookup(&[("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)])).unwrap();
    let api = Arc::new(Api::new(KafkaPublisher::new(&config.kafka).unwrap(), &config));
    let socket = TcpSocket::new_v4().unwrap();
    // Inherited by the accepted connections; fixed, so the kernel does not grow it.
    socket.set_recv_buffer_size(SMALL_BUFFER).unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(qgen_local::http::serve(listener, api, shutdown.clone()));
    (addr, shutdown)
}

/// What a client that sends its whole request before it reads saw: whether the body was all
/// sent, and the bytes read until the server closed the connection, or the error that ended
/// the reading (a reset).
struct Exchange {
    sent: std::io::Result<()>,
    received: std::io::Result<Vec<u8>>,
}

/// POSTs `body` to the API at `addr` with a `Content-Length` of `declared`, then reads.
async fn post(addr: SocketAddr, declared: usize, body: Vec<u8>) -> Exchange {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(SMALL_BUFFER).unwrap();
    let mut stream = socket.connect(addr).await.unwrap().into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    tokio::task::spawn_blocking(move || {
        // Only a guard against a server that never answers: the exchange takes milliseconds.
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {declared}\r\nconnection: close\r\n\r\n",
            question_api::ROUTE
        );
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(&body));
        let mut received = Vec::new();
        let received = stream.read_to_end(&mut received).map(|_| received);
        Exchange { sent, received }
    })
    .await
    .unwrap()
}

/// The status, the headers (lowercased names) and the JSON body of an HTTP/1.1 response.
fn parse(response: &[u8]) -> (u16, Vec<(String, String)>, Value) {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_body_over_1_mib_reads_the_413_and_a_clean_close() {
    let broker = MockBroker::with_service_topics();
    let (addr, shutdown) = serve(&broker).await;
    let body = vec![b' '; 6 * 1024 * 1024];

    let exchange = post(addr, body.len(), body).await;
    shutdown.cancel();

    assert!(
        exchange.sent.is_ok(),
        "the server stopped reading the body: {:?}",
        exchange.sent
    );
    let response = exchange
        .received
        .expect("the answer, then a clean close (not a reset)");
    let (status, _headers, body) = parse(&response);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(body["error"]["field"], "body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_over_8_mib_is_refused_before_it_is_sent() {
    let broker = MockBroker::with_service_topics();
    let (addr, shutdown) = serve(&broker).await;

    // Only the head: a client that waits for the answer before it sends 16 MiB.
    let exchange = post(addr, 16 * 1024 * 1024, Vec::new()).await;
    shutdown.cancel();

    let (status, headers, body) = parse(&exchange.received.unwrap());
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        headers.contains(&("connection".to_owned(), "close".to_owned())),
        "{headers:?}"
    );
}
