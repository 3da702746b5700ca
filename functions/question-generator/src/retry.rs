//! When to call Gemini again after a transient failure (pure: no I/O, no tokio).
//!
//! Waits grow exponentially with *full jitter* (a uniformly random wait between zero and the
//! cap), so that the many requests of a batch that failed together do not retry together. A
//! `Retry-After` from the server wins over the computed wait.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;

/// The cap of the wait before retry number `retry` (1 for the first retry): `base · 2^(retry-1)`,
/// at most `max`.
pub fn backoff_cap(config: &RetryConfig, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
    config
        .base_delay
        .saturating_mul(factor)
        .min(config.max_delay.max(config.base_delay))
}

/// The wait before retry number `retry`: `unit` (in `[0, 1]`) of the cap. Callers pass
/// [`jitter`]; tests pass fixed values.
pub fn backoff(config: &RetryConfig, retry: u32, unit: f64) -> Duration {
    backoff_cap(config, retry).mul_f64(unit.clamp(0.0, 1.0))
}

/// A uniformly distributed number in `[0, 1)`. Not cryptographic, and does not need to be: it
/// only spreads retries. `RandomState` is randomly keyed per instance, so no extra dependency.
pub fn jitter() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    // The top 53 bits make an exactly representable fraction.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means "now"; anything unreadable is ignored (`None`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_ms: u64, max_ms: u64) -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn the_cap_doubles_with_every_retry_up_to_the_maximum() {
        let c = config(100, 1_000);
        let caps: Vec<u128> = (1..=6).map(|n| backoff_cap(&c, n).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff_cap(&c, 200), Duration::from_millis(1_000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_cap() {
        let c = config(100, 1_000);
        assert_eq!(backoff(&c, 3, 0.0), Duration::ZERO);
        assert_eq!(backoff(&c, 3, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(&c, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&c, 3, 7.0), Duration::from_millis(400));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_varies() {
        let samples: Vec<f64> = (0..200).map(|_| jitter()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let distinct: std::collections::HashSet<u64> = samples.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() > 190, "{}", distinct.len());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Fri, 27 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 10:00:12 GMT", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 09:59:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
