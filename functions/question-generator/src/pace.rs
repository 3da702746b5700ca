//! Pacing Gemini calls to the project's per-minute quota (pure: the time is an argument).
//!
//! Gemini's quotas are per project and model (<https://ai.google.dev/gemini-api/docs/rate-limits>),
//! so every execution environment calling at once shares one. The trigger runs at most one
//! invocation per partition of the request topic, each in an execution environment of its own,
//! so each environment takes an equal share: `GEMINI_QUOTA_RPM / GEMINI_QUOTA_INVOCATIONS`
//! calls a minute, evenly spaced. Environments never talk to each other, which costs nothing
//! per call; a partition with nothing to do leaves its share unused (docs/DESIGN.md says why
//! that beats a bucket shared through DynamoDB here).
//!
//! A per-minute 429 from Gemini ([`Pacer::pause_until`]) stops every call of the environment
//! until its `retryDelay` has passed, quota set or not: one 429 costs one wait, not one per
//! request in flight.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When the next Gemini call of this execution environment may go out.
#[derive(Debug)]
pub struct Pacer {
    /// Between two calls: `None` when no quota is set (calls go out at once, but for pauses).
    interval: Option<Duration>,
    /// The earliest the next call may start.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// Paces this environment to its share of `quota_rpm` calls a minute shared by
    /// `invocations` concurrent invocations; `quota_rpm` 0 sets no pace.
    pub fn new(quota_rpm: u32, invocations: u32) -> Self {
        let interval = (quota_rpm > 0)
            .then(|| Duration::from_secs(60).mul_f64(f64::from(invocations.max(1)) / f64::from(quota_rpm)));
        Pacer {
            interval,
            next: Mutex::new(None),
        }
    }

    /// The time between two calls of this environment, when paced.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Takes the next slot for a call if it starts by `limit`, and says when it starts (`now`
    /// or later); `None`, taking nothing, when the next slot is past `limit`.
    pub fn reserve(&self, now: Instant, limit: Instant) -> Option<Instant> {
        let mut next = self.lock();
        let slot = next.map_or(now, |next| next.max(now));
        if slot > limit {
            return None;
        }
        *next = Some(slot + self.interval.unwrap_or_default());
        Some(slot)
    }

    /// Gemini answered a per-minute 429 asking for a wait: no call starts before `until`.
    pub fn pause_until(&self, until: Instant) {
        let mut next = self.lock();
        *next = Some(next.map_or(until, |next| next.max(until)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // A plain value, valid even if a holder panicked.
        self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_quota_shared_by_three_invocations_spaces_each_environments_calls_by_three_shares() {
        // 60 calls a minute over 3 partitions: 20 a minute here, one every 3 s.
        let pacer = Pacer::new(60, 3);
        let now = Instant::now();

        let slots: Vec<Instant> = (0..4)
            .map(|_| pacer.reserve(now, now + 60 * SECOND).unwrap())
            .collect();

        assert_eq!(pacer.interval(), Some(3 * SECOND));
        assert_eq!(slots, [now, now + 3 * SECOND, now + 6 * SECOND, now + 9 * SECOND]);
    }

    #[test]
    fn a_slot_past_the_limit_is_refused_and_not_taken() {
        let pacer = Pacer::new(60, 1);
        let now = Instant::now();
        assert_eq!(pacer.reserve(now, now), Some(now));

        // The next slot is 1 s away: a caller that may wait only half a second gets none...
        assert_eq!(pacer.reserve(now, now + SECOND / 2), None);
        // ...and leaves it to the next caller.
        assert_eq!(pacer.reserve(now, now + SECOND), Some(now + SECOND));
    }

    #[test]
    fn an_idle_pacer_does_not_bank_slots_for_a_burst() {
        let pacer = Pacer::new(60, 1);
        let start = Instant::now();
        pacer.reserve(start, start);
        let later = start + 10 * SECOND;

        assert_eq!(pacer.reserve(later, later), Some(later));
        assert_eq!(pacer.reserve(later, later + 5 * SECOND), Some(later + SECOND));
    }

    #[test]
    fn without_a_quota_calls_go_at_once_but_a_pause_holds_them_all() {
        let pacer = Pacer::new(0, 3);
        let now = Instant::now();
        assert_eq!(pacer.interval(), None);
        assert_eq!(pacer.reserve(now, now), Some(now));
        assert_eq!(pacer.reserve(now, now), Some(now));

        pacer.pause_until(now + 37 * SECOND);
        // A shorter pause never shortens a longer one.
        pacer.pause_until(now + SECOND);

        assert_eq!(pacer.reserve(now, now + 10 * SECOND), None);
        assert_eq!(pacer.reserve(now, now + 60 * SECOND), Some(now + 37 * SECOND));
    }
}
