//! A Gemini `generateContent` stand-in on a loopback port, for the scripts that run the real
//! function binaries (`scripts/check-invoke`): every call is answered with exactly the questions
//! its [`qgen_contract::prompt::PromptData`] asks for, as a careful model would. It reads the
//! prompt with the generator's own type, so a change of prompt layout breaks its build.

use std::convert::Infallible;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use qgen_contract::prompt::PromptData;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::json;

/// Bodies larger than this are refused: the generator's prompts are a few KiB plus the context.
const MAX_PROMPT_BYTES: usize = 1024 * 1024;

/// Answers `generateContent` calls on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    crate::http::serve_connections(listener, shutdown, service_fn(answer)).await;
}

/// 200 with the questions asked for, for a POST to `…:generateContent` that carries an API key
/// (as Gemini wants one); 404 for anything else, as Gemini answers an unknown route.
async fn answer(request: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let is_call = request.method() == http::Method::POST
        && request.uri().path().ends_with(":generateContent")
        && request.headers().contains_key("x-goog-api-key");
    let body = match Limited::new(request.into_body(), MAX_PROMPT_BYTES)
        .collect()
        .await
    {
        Ok(collected) if is_call => collected.to_bytes(),
        _ => {
            return Ok(json(
                StatusCode::NOT_FOUND,
                b"{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}".to_vec(),
            ));
        }
    };
    let reply = qgen_contract::offline::answer_generate_content(&body);
    // What was asked, for whoever checks that a function called it (scripts/check-invoke).
    let asked = serde_json::from_slice(&body)
        .ok()
        .and_then(|body| PromptData::from_generate_content(&body));
    match asked {
        Some(data) => {
            tracing::info!(topic = %data.topic, num_questions = data.num_questions, "answered generateContent")
        }
        None => tracing::info!("answered generateContent without prompt data"),
    }
    Ok(json(StatusCode::OK, reply.to_string().into_bytes()))
}
