//! What one `generateContent` call came to, read from what came back alone: a [`Verdict`] for
//! the retry policy and a [`Signal`] for the circuit breaker. Pure, so every status Gemini
//! documents (<https://ai.google.dev/gemini-api/docs/troubleshooting>) is pinned by a unit test
//! without a server; [`super::call`] sends the call before and acts on both after.

use std::time::Duration;

use qgen_contract::events::Question;

use super::error_body::ErrorBody;
use crate::breaker::PREPAID_CREDIT;
use crate::source::{Cause, GenerationError};

/// How long a used-up prepaid credit (402) stops the calls of an execution environment: one
/// call per five minutes notices a top-up soon enough without spending a call per request.
pub(super) const CREDIT_RECHECK: Duration = Duration::from_secs(300);

/// What a call tells the circuit breaker about Gemini.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signal {
    /// Gemini answered, whatever it thought of the call: it is up.
    Up,
    /// Gemini was unreachable, overloaded or too slow.
    Down,
    /// Nothing can succeed for a while (a per-day quota, the prepaid credit): open the circuit
    /// now for at least `at_least`, under `label`.
    Trip {
        /// Gemini's `retryDelay`, or how long until the credit is checked again.
        at_least: Duration,
        /// The quota's id, or [`PREPAID_CREDIT`].
        label: String,
    },
    /// A per-minute quota: a pacing signal, the breaker is left alone.
    Quiet,
}

/// What a call came to, for the retry policy.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Valid questions.
    Questions(Vec<Question>),
    /// The model answered, but the answer is unusable: worth one repair call.
    Unusable(GenerationError),
    /// Worth the same call again after a wait: 408, 429 (but a per-day quota), 500, 503, 504,
    /// timeouts, connection errors.
    Transient {
        /// What failed, in a few words.
        reason: String,
        /// The transport error, when the call itself failed.
        source: Option<Cause>,
        /// How long the server asked us to wait: Gemini's `RetryInfo.retryDelay`, or a proxy's
        /// `Retry-After`. It wins over the computed backoff.
        retry_after: Option<Duration>,
    },
    /// A per-minute quota is used up (429 with `RetryInfo`, no per-day quota).
    Throttled {
        /// What Gemini said, in a few words.
        reason: String,
        /// Gemini's `retryDelay`.
        retry_after: Duration,
    },
    /// 402: the prepaid credit is used up.
    CreditExhausted,
    /// 429 naming a per-day quota: waiting cannot help before it resets.
    QuotaExhausted {
        /// The quota's id.
        quota: String,
    },
    /// 404: Gemini does not serve the model (the next of `GEMINI_MODEL`, if any, is called).
    NotServed {
        /// Gemini's explanation.
        message: String,
    },
    /// Final: another call would get the same answer.
    Final(GenerationError),
}

/// A 200: the reply read ([`super::reply::read_reply`]) gave questions or why there are none.
pub(super) fn answered(outcome: Result<Vec<Question>, GenerationError>) -> (Verdict, Signal) {
    let verdict = match outcome {
        Ok(questions) => Verdict::Questions(questions),
        Err(error) => Verdict::Unusable(error),
    };
    (verdict, Signal::Up)
}

/// The call itself failed (timeout, connection): `reason` in a few words, the error as `source`.
pub(super) fn failed(reason: &str, source: Cause) -> (Verdict, Signal) {
    let verdict = Verdict::Transient {
        reason: reason.to_owned(),
        source: Some(source),
        retry_after: None,
    };
    (verdict, Signal::Down)
}

/// An error status, its `Retry-After` header and its body.
pub(super) fn status(status: u16, retry_after: Option<Duration>, error: ErrorBody) -> (Verdict, Signal) {
    if status == 402 {
        // Prepaid credit used up: nothing succeeds until someone tops it up, so stop every
        // call of the environment for a while instead of spending one per request.
        let signal = Signal::Trip {
            at_least: CREDIT_RECHECK,
            label: PREPAID_CREDIT.to_owned(),
        };
        return (Verdict::CreditExhausted, signal);
    }
    if let (429, Some(quota)) = (status, &error.daily_quota) {
        // Waiting cannot help before the quota resets: stop every call of this environment
        // for a window instead of spending one call per request.
        let signal = Signal::Trip {
            at_least: error.retry_delay.unwrap_or_default(),
            label: quota.clone(),
        };
        return (Verdict::QuotaExhausted { quota: quota.clone() }, signal);
    }
    if let (429, Some(retry_after)) = (status, error.retry_delay) {
        // A per-minute quota: Gemini is up and says when to come back.
        let verdict = Verdict::Throttled {
            reason: format!("status 429: {}", error.message),
            retry_after,
        };
        return (verdict, Signal::Quiet);
    }
    // 408: a proxy or front end gave up waiting for the request; RFC 9110 §15.5.9 lets the
    // client repeat it. Google does not list it for Gemini; we treat it as a timeout.
    if matches!(status, 408 | 429 | 500 | 503 | 504) {
        let verdict = Verdict::Transient {
            reason: format!("status {status}: {}", error.message),
            source: None,
            retry_after: error.retry_delay.or(retry_after),
        };
        return (verdict, Signal::Down);
    }
    // Any other 4xx: Gemini is up, whatever it thinks of the call.
    let signal = if status >= 500 { Signal::Down } else { Signal::Up };
    let verdict = match status {
        404 => Verdict::NotServed {
            message: error.message,
        },
        400 | 401 | 403 => Verdict::Final(GenerationError::Rejected {
            status,
            message: error.message,
        }),
        _ => Verdict::Final(GenerationError::unavailable(format!(
            "status {status}: {}",
            error.message
        ))),
    };
    (verdict, signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::cause;

    fn body(message: &str, retry_delay: Option<u64>, daily_quota: Option<&str>) -> ErrorBody {
        ErrorBody {
            message: message.into(),
            retry_delay: retry_delay.map(Duration::from_secs),
            daily_quota: daily_quota.map(str::to_owned),
        }
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    /// The verdict in a few words, for tables.
    fn kind(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Questions(q) => format!("questions {}", q.len()),
            Verdict::Unusable(e) => format!("unusable {}", e.code().as_str()),
            Verdict::Transient {
                reason,
                source,
                retry_after,
            } => format!(
                "transient {reason:?} source={} after={retry_after:?}",
                source.is_some()
            ),
            Verdict::Throttled { reason, retry_after } => {
                format!("throttled {reason:?} after={retry_after:?}")
            }
            Verdict::CreditExhausted => "credit".into(),
            Verdict::QuotaExhausted { quota } => format!("quota {quota}"),
            Verdict::NotServed { message } => format!("not served {message:?}"),
            Verdict::Final(e) => format!("final {} {:?}", e.code().as_str(), e.message()),
        }
    }

    #[test]
    fn each_error_status_has_its_verdict_and_its_signal_to_the_breaker() {
        let cases: Vec<(u16, Option<Duration>, ErrorBody, &str, Signal)> = vec![
            (
                402,
                None,
                body("billing", None, None),
                "credit",
                Signal::Trip {
                    at_least: Duration::from_secs(300),
                    label: "PrepaidCredit".into(),
                },
            ),
            (
                429,
                secs(1),
                body("day", Some(40), Some("PerDay")),
                "quota PerDay",
                Signal::Trip {
                    at_least: Duration::from_secs(40),
                    label: "PerDay".into(),
                },
            ),
            (
                429,
                None,
                body("day", None, Some("PerDay")),
                "quota PerDay",
                Signal::Trip {
                    at_least: Duration::ZERO,
                    label: "PerDay".into(),
                },
            ),
            (
                429,
                secs(1),
                body("minute", Some(7), None),
                "throttled \"status 429: minute\" after=7s",
                Signal::Quiet,
            ),
            (
                429,
                secs(2),
                body("busy", None, None),
                "transient \"status 429: busy\" source=false after=Some(2s)",
                Signal::Down,
            ),
            (
                503,
                secs(2),
                body("overloaded", Some(5), None),
                "transient \"status 503: overloaded\" source=false after=Some(5s)",
                Signal::Down,
            ),
            (
                408,
                None,
                body("slow", None, None),
                "transient \"status 408: slow\" source=false after=None",
                Signal::Down,
            ),
            (
                500,
                None,
                body("oops", None, None),
                "transient \"status 500: oops\" source=false after=None",
                Signal::Down,
            ),
            (
                504,
                None,
                body("late", None, None),
                "transient \"status 504: late\" source=false after=None",
                Signal::Down,
            ),
            (
                502,
                None,
                body("gateway", None, None),
                "final gemini_unavailable \"gemini unavailable: status 502: gateway\"",
                Signal::Down,
            ),
            (
                404,
                None,
                body("no such model", None, None),
                "not served \"no such model\"",
                Signal::Up,
            ),
            (
                400,
                None,
                body("bad", None, None),
                "final gemini_rejected \"gemini rejected the call with status 400: bad\"",
                Signal::Up,
            ),
            (
                401,
                None,
                body("who", None, None),
                "final gemini_rejected \"gemini rejected the call with status 401: who\"",
                Signal::Up,
            ),
            (
                403,
                None,
                body("denied", None, None),
                "final gemini_rejected \"gemini rejected the call with status 403: denied\"",
                Signal::Up,
            ),
            (
                418,
                None,
                body("teapot", None, None),
                "final gemini_unavailable \"gemini unavailable: status 418: teapot\"",
                Signal::Up,
            ),
        ];
        for (code, retry_after, error, verdict, signal) in cases {
            let (got, got_signal) = status(code, retry_after, error);

            assert_eq!(
                (kind(&got).as_str(), got_signal),
                (verdict, signal),
                "status {code}"
            );
        }
    }

    #[test]
    fn an_answer_is_up_whatever_it_holds_and_a_failed_call_is_down() {
        let (verdict, signal) = answered(Ok(Vec::new()));
        assert_eq!((kind(&verdict), signal), ("questions 0".to_owned(), Signal::Up));

        let (verdict, signal) = answered(Err(GenerationError::invalid_output("bad", None)));
        assert_eq!(
            (kind(&verdict), signal),
            ("unusable invalid_model_output".to_owned(), Signal::Up)
        );

        let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let (verdict, signal) = failed("timed out", cause(error));
        assert_eq!(
            (kind(&verdict), signal),
            (
                "transient \"timed out\" source=true after=None".to_owned(),
                Signal::Down
            )
        );
    }
}
