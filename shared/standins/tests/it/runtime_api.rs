//! The Lambda Runtime API stand-in, polled and answered as the runtime client does.

use std::time::Duration;

use bytes::Bytes;
use qgen_standins::RuntimeApi;

const NEXT: &str = "2018-06-01/runtime/invocation/next";

#[tokio::test]
async fn events_are_handed_out_in_order_with_lambdas_headers() {
    let api = RuntimeApi::start_for("fn", vec![Bytes::from("{\"n\":1}"), Bytes::from("{\"n\":2}")])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let next = format!("http://{}/{NEXT}", api.address());

    let first = http.get(&next).send().await.unwrap();
    let headers = first.headers().clone();
    let first_body = first.text().await.unwrap();
    let second = http.get(&next).send().await.unwrap();
    let second_id = second.headers()["lambda-runtime-aws-request-id"].clone();

    assert_eq!(headers["lambda-runtime-aws-request-id"], "fn-1");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:eu-west-1:000000000000:function:fn"
    );
    let deadline: u128 = headers["lambda-runtime-deadline-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(deadline > now, "the deadline is in the future");
    assert!(headers.contains_key("lambda-runtime-trace-id"));
    assert_eq!(first_body, "{\"n\":1}");
    assert_eq!(second_id, "fn-2");
    assert_eq!(second.text().await.unwrap(), "{\"n\":2}");
    assert!(api.first_poll(Duration::ZERO).await.is_some());
    assert_eq!((api.polls(), api.held_polls()), (2, 0));
}

#[tokio::test]
async fn with_nothing_to_hand_out_the_poll_is_held_open() {
    let api = RuntimeApi::start(Vec::new()).await.unwrap();
    let next = format!("http://{}/{NEXT}", api.address());

    let poll = tokio::time::timeout(Duration::from_millis(500), reqwest::get(&next)).await;

    assert!(poll.is_err(), "the poll was answered: {poll:?}");
    assert_eq!((api.polls(), api.held_polls()), (1, 1));
}

#[tokio::test]
async fn responses_errors_and_init_errors_are_reported_in_order() {
    let mut api = RuntimeApi::start(Vec::new()).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}/2018-06-01/runtime", api.address());

    for (path, body) in [
        ("invocation/bench-1/response", "ok"),
        ("invocation/bench-2/error", "bad"),
        ("init/error", "no config"),
    ] {
        let posted = http
            .post(format!("{base}/{path}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
    }
    let unknown = http
        .post(format!("{base}/invocation/bench-3"))
        .send()
        .await
        .unwrap();

    let mut seen = Vec::new();
    while let Some(completion) = api.completion(Duration::from_millis(200)).await {
        seen.push((
            completion.kind,
            String::from_utf8_lossy(&completion.body).into_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("response".to_owned(), "ok".to_owned()),
            ("error".to_owned(), "bad".to_owned()),
            ("init-error".to_owned(), "no config".to_owned())
        ]
    );
    assert_eq!(unknown.status(), 404);
}
