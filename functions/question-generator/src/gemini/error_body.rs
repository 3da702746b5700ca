//! Gemini's error bodies. Every error is `{"error": {"code", "message", "status", "details"}}`
//! (<https://ai.google.dev/gemini-api/docs/troubleshooting>); a 429 (`RESOURCE_EXHAUSTED`) lists
//! in `details` the quota it hit (`google.rpc.QuotaFailure`, whose `quotaId` names the period:
//! `…PerMinute…` or `…PerDay…`) and how long to wait (`google.rpc.RetryInfo.retryDelay`, a
//! protobuf `Duration` such as `"37s"`). Quotas and their reset times:
//! <https://ai.google.dev/gemini-api/docs/rate-limits>. The types are Google's:
//! <https://github.com/googleapis/googleapis/blob/master/google/rpc/error_details.proto>.

use std::time::Duration;

use serde::Deserialize;

/// What an error body says, as far as the client acts on it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct ErrorBody {
    /// `error.message`, or the start of a body that is not Gemini's JSON.
    pub message: String,
    /// `RetryInfo.retryDelay`: how long Gemini asks us to wait.
    pub retry_delay: Option<Duration>,
    /// The `quotaId` of a `QuotaFailure` violation on a per-day quota: a retry within the
    /// invocation cannot succeed.
    pub daily_quota: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Status,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Detail>,
}

/// One `google.protobuf.Any` of `details`; only the fields of the two types read here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(default)]
    retry_delay: Option<String>,
    #[serde(default)]
    violations: Vec<Violation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Violation {
    #[serde(default)]
    quota_id: String,
}

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";
const QUOTA_FAILURE: &str = "type.googleapis.com/google.rpc.QuotaFailure";

/// Reads an error body; never fails (a proxy's HTML page still gives a message).
pub(super) fn read_error(body: &[u8]) -> ErrorBody {
    let Ok(Envelope { error }) = serde_json::from_slice::<Envelope>(body) else {
        return ErrorBody {
            message: or_no_details(String::from_utf8_lossy(&body[..body.len().min(200)]).trim()),
            ..ErrorBody::default()
        };
    };
    let retry_delay = error
        .details
        .iter()
        .filter(|d| d.kind == RETRY_INFO)
        .find_map(|d| d.retry_delay.as_deref().and_then(parse_duration));
    let daily_quota = error
        .details
        .iter()
        .filter(|d| d.kind == QUOTA_FAILURE)
        .flat_map(|d| &d.violations)
        .find(|v| v.quota_id.contains("PerDay"))
        .map(|v| v.quota_id.clone());
    ErrorBody {
        message: or_no_details(error.message.trim()),
        retry_delay,
        daily_quota,
    }
}

fn or_no_details(message: &str) -> String {
    if message.is_empty() {
        "no details".into()
    } else {
        message.to_owned()
    }
}

/// A protobuf `Duration` in its JSON form: seconds with up to nine decimals and an `s`
/// (<https://protobuf.dev/reference/protobuf/google.protobuf/#duration>).
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qgen_testkit::gemini_error;

    #[test]
    fn a_per_minute_429_gives_its_retry_delay_and_no_daily_quota() {
        let body = gemini_error::per_minute_quota("37s").to_string();

        let error = read_error(body.as_bytes());

        assert_eq!(error.retry_delay, Some(Duration::from_secs(37)));
        assert_eq!(error.daily_quota, None);
        assert!(
            error.message.starts_with("You exceeded your current quota"),
            "{error:?}"
        );
    }

    #[test]
    fn a_per_day_429_names_the_quota() {
        let body = gemini_error::per_day_quota("2.5s").to_string();

        let error = read_error(body.as_bytes());

        assert_eq!(
            error.daily_quota.as_deref(),
            Some("GenerateRequestsPerDayPerProjectPerModel")
        );
        assert_eq!(error.retry_delay, Some(Duration::from_millis(2_500)));
    }

    #[test]
    fn durations_in_protobuf_json_form() {
        assert_eq!(parse_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration("0.250s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        for bad in ["37", "s", "-1s", "soon", "1e400s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_that_are_not_gemini_json_still_give_a_message() {
        assert_eq!(
            read_error(b"<html>Bad Gateway</html>").message,
            "<html>Bad Gateway</html>"
        );
        assert_eq!(read_error(b"").message, "no details");
        assert_eq!(
            read_error(br#"{"error": {"message": "  "}}"#).message,
            "no details"
        );
        let plain = read_error(br#"{"error": {"code": 503, "message": "The model is overloaded."}}"#);
        assert_eq!(
            plain,
            ErrorBody {
                message: "The model is overloaded.".into(),
                retry_delay: None,
                daily_quota: None,
            }
        );
    }
}
