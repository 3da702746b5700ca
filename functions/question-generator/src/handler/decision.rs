//! The decisions of answering one request, apart from the I/O around them (`answer`): what to do
//! with it from what the idempotency store said, whether a generation that ended is held, and
//! what the store is told afterwards. Pure, so each rule is unit-tested without a store, a
//! model or a broker.

use std::time::SystemTime;

use qgen_contract::events::{Question, ResponseEvent};

use crate::idempotency::Claim;
use crate::source::{Calls, Deadlines, GenerationError};

/// What to do with a request, from the store's [`Claim`] on it.
#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    /// It was answered before: re-publish the stored response.
    Replay(Box<ResponseEvent>),
    /// Another invocation is answering it until `until`: publish nothing, its partition is
    /// redelivered from here.
    LeaveToOther {
        /// When the other invocation's claim expires.
        until: SystemTime,
    },
    /// Its `request_id` belongs to other content: answer `idempotency_conflict`.
    Conflict,
    /// Generate it; `claimed` when this invocation holds the store's claim on it (the store
    /// then hears how it ended), not when there is no store or the store could not be asked.
    Generate {
        /// This invocation holds the claim.
        claimed: bool,
    },
}

/// The decision for the store's `claim`; `None`: no store, or one that did not answer
/// (losing a request is worse than paying for a duplicate generation).
pub(super) fn decide(claim: Option<Claim>) -> Decision {
    match claim {
        Some(Claim::Completed(stored)) => Decision::Replay(stored),
        Some(Claim::InProgress { until }) => Decision::LeaveToOther { until },
        Some(Claim::Conflict) => Decision::Conflict,
        Some(Claim::Acquired) => Decision::Generate { claimed: true },
        None => Decision::Generate { claimed: false },
    }
}

/// What a request comes to before anything is published.
pub(super) enum Answer {
    /// A response to publish, with the model calls made for it now (none for a stored answer,
    /// a conflict or a source that does not count them).
    Publish(Box<ResponseEvent>, Option<Calls>),
    /// Gemini could not answer in time and the request may still wait ([`held`]).
    Held,
    /// Another invocation is answering it.
    InProgress,
}

impl Answer {
    /// The response its duplicates get too, when there is one.
    pub(super) fn response(&self) -> Option<&ResponseEvent> {
        match self {
            Answer::Publish(response, _) => Some(response.as_ref()),
            Answer::Held | Answer::InProgress => None,
        }
    }
}

/// What the store is told once a claimed request's answer is known.
#[derive(Debug, PartialEq)]
pub(super) enum Settlement<'a> {
    /// Keep the `completed` response for duplicates — even when publishing it fails, so the
    /// batch's retry re-publishes it without generating again.
    Keep(&'a ResponseEvent),
    /// Give up the claim so a retry or the redelivery may answer it: the response is `failed`
    /// (a retry may succeed), or nothing was published (held).
    Release,
    /// Nothing: the claim is not this invocation's.
    Nothing,
}

/// The settlement of a generated `answer`; only a `claimed` request has one.
pub(super) fn settlement(claimed: bool, answer: &Answer) -> Settlement<'_> {
    if !claimed {
        return Settlement::Nothing;
    }
    match answer {
        Answer::Publish(response, _) if response.event_data.error.is_none() => Settlement::Keep(response),
        Answer::Publish(..) | Answer::Held => Settlement::Release,
        Answer::InProgress => Settlement::Nothing,
    }
}

/// Whether a request that came to `outcome` is held rather than answered: the source said so,
/// or the invocation's time ran out while the request may still wait. Every other failure is
/// answered, as it always was.
pub(super) fn held(outcome: &Result<Vec<Question>, GenerationError>, deadlines: &Deadlines) -> bool {
    match outcome {
        Err(GenerationError::Held { .. }) => true,
        Err(GenerationError::DeadlineExceeded) => deadlines.holds(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use qgen_contract::events::{ErrorCode, ResponseError};
    use tokio::time::Instant;

    fn completed() -> ResponseEvent {
        ResponseEvent::completed("evt-1", "req-1", Vec::new())
    }

    fn failed() -> ResponseEvent {
        ResponseEvent::failed(
            "evt-1",
            "req-1",
            ResponseError {
                code: ErrorCode::GeminiUnavailable,
                message: "down".into(),
                retryable: true,
            },
        )
    }

    #[test]
    fn each_claim_decides_one_way_and_no_claim_generates_unclaimed() {
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(60);

        let stored = completed();
        assert_eq!(
            decide(Some(Claim::Completed(Box::new(stored.clone())))),
            Decision::Replay(Box::new(stored))
        );
        assert_eq!(
            decide(Some(Claim::InProgress { until })),
            Decision::LeaveToOther { until }
        );
        assert_eq!(decide(Some(Claim::Conflict)), Decision::Conflict);
        assert_eq!(
            decide(Some(Claim::Acquired)),
            Decision::Generate { claimed: true }
        );
        assert_eq!(decide(None), Decision::Generate { claimed: false });
    }

    #[test]
    fn a_claimed_request_keeps_a_completed_answer_and_releases_a_failed_or_held_one() {
        let response = completed();
        let kept = Answer::Publish(Box::new(response.clone()), None);
        assert_eq!(settlement(true, &kept), Settlement::Keep(&response));
        let answers = [
            (Answer::Publish(Box::new(failed()), None), Settlement::Release),
            (Answer::Held, Settlement::Release),
            (Answer::InProgress, Settlement::Nothing),
        ];
        for (answer, settled) in &answers {
            assert_eq!(settlement(true, answer), *settled);
        }
        for answer in answers.iter().map(|(answer, _)| answer).chain([&kept]) {
            assert_eq!(settlement(false, answer), Settlement::Nothing, "unclaimed");
        }
    }

    #[test]
    fn only_a_published_answer_has_a_response_for_the_duplicates() {
        let response = completed();
        assert_eq!(
            Answer::Publish(Box::new(response.clone()), None).response(),
            Some(&response)
        );
        assert_eq!(Answer::Held.response(), None);
        assert_eq!(Answer::InProgress.response(), None);
    }

    #[test]
    fn held_when_the_source_says_so_or_time_ran_out_while_the_request_may_wait() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let may_wait = Deadlines {
            answer_by: now + minute,
            wait_until: now + 30 * minute,
        };
        let no_wait = Deadlines::no_wait(now + minute);
        let said = Err(GenerationError::Held { reason: "x".into() });
        let late = Err(GenerationError::DeadlineExceeded);
        let down = Err(GenerationError::unavailable("x"));

        assert!(held(&said, &no_wait));
        assert!(held(&late, &may_wait));
        assert!(!held(&late, &no_wait));
        assert!(!held(&down, &may_wait));
        assert!(!held(&Ok(Vec::new()), &may_wait));
    }
}
