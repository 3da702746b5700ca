//! A circuit breaker in front of Gemini, one per execution environment, shared by every
//! invocation of a warm function.
//!
//! Closed: calls go through; `failure_threshold` consecutive failures open it. Open: calls are
//! refused without touching the network until `cooldown` has passed. Then one probe call is let
//! through (half-open): its success closes the circuit, its failure opens it for another
//! cool-down. A probe that never reports (its invocation ended) is replaced after a cool-down.
//!
//! A used-up per-day quota trips it at once ([`CircuitBreaker::trip`]): no call before the next
//! probe could succeed, so the window costs one call, not one per request, and every refusal
//! names the quota.
//!
//! A used-up prepaid credit (HTTP 402) trips it the same way, under the label
//! [`PREPAID_CREDIT`].
//!
//! Requests that may wait for Gemini ([`CircuitBreaker::wait_for_admission`]) sleep until the
//! next probe is due, and wake at once when another request's probe closes the circuit: the
//! cool-down costs one call per execution environment, not one per waiting request.
//!
//! Time comes from a [`Clock`], so tests move it by hand instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::BreakerConfig;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The label of a trip for a used-up prepaid credit (HTTP 402), in place of a quota's id.
pub const PREPAID_CREDIT: &str = "PrepaidCredit";

/// The state of the circuit, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe call is in flight; the others are refused.
    HalfOpen,
}

impl State {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// The quota that tripped the breaker, when one did.
type Quota = Option<Arc<str>>;

#[derive(Debug, Clone)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant, quota: Quota },
    HalfOpen { probe_since: Instant, quota: Quota },
}

/// The call was refused: the circuit is open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: gemini failed repeatedly; retry after {retry_in:?}")]
pub struct Refused {
    /// How long until a probe may be let through.
    pub retry_in: Duration,
    /// The used-up quota that opened the circuit ([`CircuitBreaker::trip`]), if that was why.
    pub quota: Option<Arc<str>>,
}

/// Counts consecutive failures and decides whether a call may go out.
pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Box<dyn Clock>,
    inner: Mutex<Inner>,
    /// Calls Gemini answered, ever: a request compares it before and after its own failures to
    /// tell "Gemini is down" from "this request keeps failing".
    successes: AtomicU64,
    /// Wakes the requests waiting for admission when the circuit closes.
    closed: Notify,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, clock: impl Clock + 'static) -> Self {
        CircuitBreaker {
            config,
            clock: Box::new(clock),
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            successes: AtomicU64::new(0),
            closed: Notify::new(),
        }
    }

    /// How many calls Gemini has answered since the breaker was built (see
    /// [`CircuitBreaker::record_success`]).
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::SeqCst)
    }

    /// Waits until a call may go out, or `limit`: admitted at once when the circuit is closed;
    /// otherwise woken when the next probe is due or when another call closes the circuit.
    /// A trip for a quota or the credit ([`CircuitBreaker::trip`]) is not waited for: no probe
    /// could succeed before it ends. The refusal comes back when `limit` is reached first.
    pub async fn wait_for_admission(&self, limit: Instant) -> Result<(), Refused> {
        loop {
            // Registered before the state is read, so a close in between is not missed.
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            let refused = match self.admit() {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            };
            let now = Instant::now();
            if refused.quota.is_some() || now >= limit {
                return Err(refused);
            }
            tokio::select! {
                () = tokio::time::sleep_until((now + refused.retry_in).min(limit)) => {}
                () = &mut closed => {}
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        match *self.lock() {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Whether a call may go out now. When the cool-down is over, the caller's call becomes the
    /// probe.
    pub fn admit(&self) -> Result<(), Refused> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match &*inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until, quota } if now < *until => Err(Refused {
                retry_in: *until - now,
                quota: quota.clone(),
            }),
            Inner::HalfOpen { probe_since, quota } if now < *probe_since + self.config.cooldown => {
                Err(Refused {
                    retry_in: *probe_since + self.config.cooldown - now,
                    quota: quota.clone(),
                })
            }
            Inner::Open { quota, .. } | Inner::HalfOpen { quota, .. } => {
                *inner = Inner::HalfOpen {
                    probe_since: now,
                    quota: quota.clone(),
                };
                tracing::info!(
                    breaker_state = State::HalfOpen.as_str(),
                    "gemini circuit breaker letting a probe through"
                );
                Ok(())
            }
        }
    }

    /// Gemini answered (whatever it said, it is up).
    pub fn record_success(&self) {
        self.successes.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.lock();
        let was_closed = matches!(*inner, Inner::Closed { .. });
        *inner = Inner::Closed { failures: 0 };
        drop(inner);
        if !was_closed {
            tracing::info!(
                breaker_state = State::Closed.as_str(),
                "gemini circuit breaker closed"
            );
            self.closed.notify_waiters();
        }
    }

    /// Gemini was unreachable, overloaded or too slow.
    pub fn record_failure(&self) {
        let now = self.clock.now();
        let mut inner = self.lock();
        let failures = match *inner {
            Inner::Closed { failures } => failures.saturating_add(1),
            // A failed probe, or a late report from a call admitted before the circuit opened.
            Inner::HalfOpen { .. } | Inner::Open { .. } => self.config.failure_threshold,
        };
        if failures < self.config.failure_threshold {
            *inner = Inner::Closed { failures };
            return;
        }
        // A late report never shortens a window, nor hides the quota that opened it.
        if let Inner::Open { until, .. } = &mut *inner {
            *until = (*until).max(now + self.config.cooldown);
            return;
        }
        *inner = Inner::Open {
            until: now + self.config.cooldown,
            quota: None,
        };
        tracing::warn!(
            breaker_state = State::Open.as_str(),
            failures,
            cooldown_ms = self.config.cooldown.as_millis() as u64,
            "gemini circuit breaker opened"
        );
    }

    /// Gemini's `quota` is used up for longer than a retry could wait: open the circuit now,
    /// whatever the count, for `at_least` (Gemini's `retryDelay`) or a cool-down if longer.
    /// Returns how long it stays open.
    pub fn trip(&self, at_least: Duration, quota: &str) -> Duration {
        let now = self.clock.now();
        let until = now + at_least.max(self.config.cooldown);
        let mut inner = self.lock();
        let until = match &*inner {
            Inner::Open {
                until: open_until, ..
            } => until.max(*open_until),
            _ => until,
        };
        *inner = Inner::Open {
            until,
            quota: Some(quota.into()),
        };
        let open_for = until - now;
        tracing::warn!(
            breaker_state = State::Open.as_str(),
            quota,
            open_ms = open_for.as_millis() as u64,
            "gemini circuit breaker opened: a quota is used up"
        );
        open_for
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain value, valid even if a holder panicked.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cooldown_ms: u64) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let config = BreakerConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_millis(cooldown_ms),
        };
        (CircuitBreaker::new(config, clock.clone()), clock)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_and_refuses_calls() {
        let (breaker, _clock) = breaker(3, 1_000);

        breaker.record_failure();
        breaker.record_failure();
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.admit().is_ok());
        breaker.record_failure();

        assert_eq!(breaker.state(), State::Open);
        assert_eq!(
            breaker.admit(),
            Err(Refused {
                retry_in: Duration::from_millis(1_000),
                quota: None,
            })
        );
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let (breaker, _clock) = breaker(3, 1_000);

        breaker.record_failure();
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        breaker.record_failure();

        assert_eq!(breaker.state(), State::Closed);
    }

    #[test]
    fn lets_one_probe_through_after_the_cooldown_and_closes_when_it_succeeds() {
        let (breaker, clock) = breaker(1, 1_000);
        breaker.record_failure();
        clock.advance(Duration::from_millis(999));
        assert!(breaker.admit().is_err(), "still cooling down");

        clock.advance(Duration::from_millis(1));
        let probe = breaker.admit();
        let other = breaker.admit();

        assert!(probe.is_ok());
        assert!(other.is_err(), "only one probe at a time");
        clock.advance(Duration::from_millis(400));
        assert_eq!(
            breaker.admit().unwrap_err().retry_in,
            Duration::from_millis(600),
            "until the probe's own cool-down ends"
        );
        assert_eq!(breaker.state(), State::HalfOpen);
        breaker.record_success();
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_for_another_cooldown() {
        let (breaker, clock) = breaker(2, 1_000);
        breaker.record_failure();
        breaker.record_failure();
        clock.advance(Duration::from_millis(1_000));
        assert!(breaker.admit().is_ok());

        breaker.record_failure();

        assert_eq!(breaker.state(), State::Open);
        clock.advance(Duration::from_millis(999));
        assert!(breaker.admit().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn a_used_up_quota_opens_at_once_for_the_longer_of_its_delay_and_the_cooldown() {
        let (breaker, clock) = breaker(5, 1_000);

        let open_for = breaker.trip(Duration::from_millis(3_000), "PerDay");

        assert_eq!(open_for, Duration::from_millis(3_000));
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(
            breaker.admit(),
            Err(Refused {
                retry_in: Duration::from_millis(3_000),
                quota: Some("PerDay".into()),
            })
        );
        // A late failure report neither shortens the window nor forgets the quota.
        breaker.record_failure();
        clock.advance(Duration::from_millis(2_999));
        assert_eq!(breaker.admit().unwrap_err().quota.as_deref(), Some("PerDay"));
        clock.advance(Duration::from_millis(1));
        assert!(breaker.admit().is_ok(), "the probe");
        assert_eq!(breaker.admit().unwrap_err().quota.as_deref(), Some("PerDay"));
        breaker.record_success();
        assert!(breaker.admit().is_ok());

        assert_eq!(
            breaker.trip(Duration::from_millis(10), "PerDay"),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            breaker.admit().unwrap_err().retry_in,
            Duration::from_millis(1_000)
        );
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_cooldown() {
        let (breaker, clock) = breaker(1, 1_000);
        breaker.record_failure();
        clock.advance(Duration::from_millis(1_000));
        assert!(breaker.admit().is_ok());

        clock.advance(Duration::from_millis(1_000));

        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.state(), State::HalfOpen);
    }

    #[test]
    fn a_late_failure_extends_the_window_and_a_shorter_trip_never_shortens_it() {
        let (breaker, clock) = breaker(1, 1_000);
        breaker.record_failure();
        clock.advance(Duration::from_millis(500));

        // A call admitted before the circuit opened reports its failure now.
        breaker.record_failure();

        clock.advance(Duration::from_millis(999));
        assert!(breaker.admit().is_err(), "open until 1 500 ms, not 1 000");
        clock.advance(Duration::from_millis(1));
        assert!(breaker.admit().is_ok());

        let (breaker, clock) = breaker_tripped_for(10_000);
        breaker.trip(Duration::from_millis(1), "PerDay");
        clock.advance(Duration::from_millis(5_000));
        assert_eq!(
            breaker.admit().unwrap_err().retry_in,
            Duration::from_millis(5_000)
        );
    }

    fn breaker_tripped_for(ms: u64) -> (CircuitBreaker, Arc<ManualClock>) {
        let (breaker, clock) = breaker(5, 1_000);
        breaker.trip(Duration::from_millis(ms), "PerDay");
        (breaker, clock)
    }

    #[test]
    fn states_are_named_in_logs_and_a_close_is_logged_once() {
        assert_eq!(
            [State::Closed, State::Open, State::HalfOpen].map(State::as_str),
            ["closed", "open", "half_open"]
        );
        let (logs, _guard) = qgen_testkit::capture_logs();
        let (breaker, _clock) = breaker(1, 1_000);

        breaker.record_success();
        assert!(
            !logs.text().contains("closed"),
            "nothing to close: {}",
            logs.text()
        );
        breaker.record_failure();
        breaker.record_success();

        assert_eq!(
            logs.text().matches("gemini circuit breaker closed").count(),
            1,
            "{}",
            logs.text()
        );
    }
}
