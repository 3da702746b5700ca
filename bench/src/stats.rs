//! Order statistics for the benchmarks: percentiles by nearest rank and ratios of medians.
//!
//! Nearest rank, not interpolation: every figure printed is a latency that was actually
//! observed, which is what a reader comparing two runs expects.

use std::time::Duration;

/// The `p`-th percentile (0 < `p` ≤ 100) of `samples` by nearest rank; zero when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (50th percentile by nearest rank).
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// `a / b` as a float; infinite when `b` is zero, so a broken baseline never reads as "met".
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        return f64::INFINITY;
    }
    a.as_secs_f64() / b.as_secs_f64()
}

/// `met` or `NOT MET`, printed beside every figure.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// A duration in milliseconds with three decimals, the unit every latency is printed in.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_on_unsorted_samples() {
        let mut samples = millis(1..=100);
        samples.reverse();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&samples, 0.1), Duration::from_millis(1));
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(&millis([30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(&millis([7])), Duration::from_millis(7));
    }

    #[test]
    fn no_samples_give_zero_and_a_zero_baseline_gives_an_infinite_ratio() {
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert!(ratio(Duration::from_millis(1), Duration::ZERO).is_infinite());
        assert!((ratio(Duration::from_millis(3), Duration::from_millis(2)) - 1.5).abs() < 1e-9);
    }
}
