//! How an invocation's time is spent: the deadline the runtime sends, read as an instant; the
//! part of it kept back to publish the outcome; and how long a claim on a request lasts. Pure
//! (the clocks are arguments), so the boundaries are tested without a runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// 2001-01-01T00:00:00Z in milliseconds since the epoch: a deadline below it cannot be a date.
pub const YEAR_2001_MS: u64 = 978_307_200_000;

/// What is kept after generation, on top of the producer's `message.timeout.ms`, for the rest
/// of the publish (serializing, the DLQ, the runtime's answer).
pub const PUBLISH_MARGIN: Duration = Duration::from_millis(500);

/// The time left before `deadline_ms`, the invocation deadline as the runtime sends it, when
/// the wall clock reads `now_ms` (both in milliseconds since the epoch). Lambda sends a date;
/// `cargo lambda watch` sends the timeout itself (600000), so a value too small to be a date
/// after 2001 is read as the time left. A deadline already past leaves nothing.
pub fn time_left(deadline_ms: u64, now_ms: u64) -> Duration {
    let remaining_ms = if deadline_ms < YEAR_2001_MS {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(now_ms)
    };
    Duration::from_millis(remaining_ms)
}

/// The invocation deadline as a monotonic instant, reading the wall clock and the monotonic one
/// now (see [`time_left`]).
pub fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Instant::now() + time_left(deadline_ms, now_ms)
}

/// The time kept back from generation so the outcome can still be published within the
/// invocation: a whole producer `message_timeout` and [`PUBLISH_MARGIN`].
pub fn publish_reserve(message_timeout: Duration) -> Duration {
    message_timeout + PUBLISH_MARGIN
}

/// When generation must stop: `reserve` before the invocation `deadline`, or at once when the
/// deadline is closer than that.
pub fn generation_deadline(deadline: Instant, reserve: Duration) -> Instant {
    deadline.checked_sub(reserve).unwrap_or_else(Instant::now)
}

/// Until when this invocation's claim on a request holds, on the wall clock the idempotency
/// store compares: the invocation deadline (after it, a retry may take over). `now` and
/// `wall_now` are the same moment on the two clocks.
pub fn claim_until(deadline: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now + deadline.saturating_duration_since(now)
}

/// Until when a request may wait for Gemini, on the monotonic clock: `max_wait` after its
/// request event's `timestamp` (`requested_at`). A request with no readable timestamp, or one
/// already past its wait, gets `now`: it is answered, never held. `now` and `wall_now` are the
/// same moment on the two clocks.
pub fn wait_until(
    requested_at: Option<SystemTime>,
    max_wait: Duration,
    now: Instant,
    wall_now: SystemTime,
) -> Instant {
    let Some(requested_at) = requested_at else {
        return now;
    };
    let until = requested_at + max_wait;
    now + until.duration_since(wall_now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_750_000_000_000;

    #[test]
    fn a_lambda_deadline_is_a_date_and_leaves_the_time_until_it() {
        assert_eq!(time_left(NOW_MS + 30_000, NOW_MS), Duration::from_secs(30));
        assert_eq!(time_left(NOW_MS + 1, NOW_MS), Duration::from_millis(1));
    }

    #[test]
    fn a_deadline_already_past_leaves_nothing() {
        assert_eq!(time_left(NOW_MS, NOW_MS), Duration::ZERO);
        assert_eq!(time_left(NOW_MS - 1, NOW_MS), Duration::ZERO);
    }

    #[test]
    fn a_value_too_small_to_be_a_date_after_2001_is_the_time_left_itself() {
        // What `cargo lambda watch` sends: the function's timeout.
        assert_eq!(time_left(600_000, NOW_MS), Duration::from_secs(600));
        assert_eq!(
            time_left(YEAR_2001_MS - 1, NOW_MS),
            Duration::from_millis(YEAR_2001_MS - 1)
        );
    }

    #[test]
    fn the_first_millisecond_of_2001_is_already_a_date() {
        assert_eq!(
            time_left(YEAR_2001_MS, YEAR_2001_MS - 5),
            Duration::from_millis(5)
        );
        // 31 years of 365 days and the 8 leap days of 1972 to 2000.
        assert_eq!(YEAR_2001_MS, (31 * 365 + 8) * 86_400_000);
    }

    #[test]
    fn the_instant_of_a_deadline_is_that_far_from_now() {
        let before = Instant::now();
        let deadline = instant_of(600_000);
        let after = Instant::now();

        assert!(deadline >= before + Duration::from_secs(600));
        assert!(deadline <= after + Duration::from_secs(600));
    }

    #[test]
    fn publishing_keeps_the_message_timeout_and_half_a_second() {
        assert_eq!(
            publish_reserve(Duration::from_secs(5)),
            Duration::from_millis(5_500)
        );
        assert_eq!(publish_reserve(Duration::ZERO), Duration::from_millis(500));
    }

    #[test]
    fn generation_stops_the_reserve_before_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(30);

        assert_eq!(
            generation_deadline(deadline, Duration::from_millis(5_500)),
            deadline - Duration::from_millis(5_500)
        );
        assert_eq!(generation_deadline(deadline, Duration::ZERO), deadline);
    }

    #[test]
    fn generation_stops_at_once_when_the_reserve_reaches_back_before_the_clock_began() {
        let before = Instant::now();
        let deadline = before + Duration::from_secs(30);

        let stop = generation_deadline(deadline, Duration::MAX);

        assert!(stop >= before && stop <= Instant::now(), "{stop:?} is not now");
    }

    #[test]
    fn a_claim_holds_until_the_deadline_on_the_wall_clock() {
        let now = Instant::now();
        let wall_now = UNIX_EPOCH + Duration::from_millis(NOW_MS);

        assert_eq!(
            claim_until(now + Duration::from_secs(30), now, wall_now),
            wall_now + Duration::from_secs(30)
        );
        assert_eq!(claim_until(now, now, wall_now), wall_now);
    }

    #[test]
    fn a_claim_for_a_deadline_already_past_ends_now() {
        let now = Instant::now() + Duration::from_secs(60);
        let wall_now = UNIX_EPOCH + Duration::from_millis(NOW_MS);

        assert_eq!(claim_until(now - Duration::from_secs(1), now, wall_now), wall_now);
    }

    #[test]
    fn a_request_may_wait_its_maximum_from_its_own_timestamp() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(NOW_MS);
        let max = Duration::from_secs(1_800);

        // Sent 10 minutes ago: 20 minutes left.
        let ten_minutes_ago = wall - Duration::from_secs(600);
        assert_eq!(
            wait_until(Some(ten_minutes_ago), max, now, wall),
            now + Duration::from_secs(1_200)
        );
        // Past its wait, or with no timestamp: none left.
        let an_hour_ago = wall - Duration::from_secs(3_600);
        assert_eq!(wait_until(Some(an_hour_ago), max, now, wall), now);
        assert_eq!(wait_until(None, max, now, wall), now);
        // A clock ahead of ours does not shorten the wait.
        let ahead = wall + Duration::from_secs(5);
        assert_eq!(
            wait_until(Some(ahead), max, now, wall),
            now + Duration::from_secs(1_805)
        );
    }
}
