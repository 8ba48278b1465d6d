//! Reconnect back-off and health-check thresholds: small validated types, tested with
//! paused time.

use std::time::Duration;

/// Longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
pub use mcp_types::duration::JITTER;

/// Exponential back-off: `base`, ×2 per attempt, capped at [`MAX_BACKOFF`], ±20 % jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max_attempts: u32,
}

impl Backoff {
    /// `base` is the first delay (clamped to at least 1 ms); `max_attempts` is how many
    /// consecutive failures are allowed before giving up (0 = never give up).
    pub fn new(base: Duration, max_attempts: u32) -> Self {
        Self {
            base: base.max(Duration::from_millis(1)),
            max_attempts,
        }
    }

    /// The delay before attempt number `failures + 1`, without jitter: `base × 2^(failures-1)`
    /// for `failures ≥ 1`, capped.
    pub fn nominal(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }

    /// The delay with jitter; `unit` is a uniform sample in `[0, 1)`.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        self.nominal(failures).mul_f64(factor).min(MAX_BACKOFF)
    }

    /// The delay with random jitter.
    pub fn delay_random(&self, failures: u32) -> Duration {
        self.delay(failures, rand::random::<f64>())
    }

    /// Whether `failures` consecutive failures exhaust the attempts.
    pub fn is_exhausted(&self, failures: u32) -> bool {
        self.max_attempts != 0 && failures >= self.max_attempts
    }
}

/// Consecutive failed health checks that count as a lost connection.
pub const HEALTH_FAILURES_FOR_LOSS: u32 = 2;

/// Counts consecutive health-check failures.
#[derive(Debug, Default, Clone, Copy)]
pub struct HealthCounter {
    failures: u32,
}

impl HealthCounter {
    /// Records a result; returns `true` when the connection should be considered lost.
    pub fn record(&mut self, ok: bool) -> bool {
        if ok {
            self.failures = 0;
            false
        } else {
            self.failures += 1;
            self.failures >= HEALTH_FAILURES_FOR_LOSS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_and_caps_at_a_minute() {
        let b = Backoff::new(Duration::from_secs(1), 5);
        let secs: Vec<u64> = (1..=8).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.nominal(10_000), MAX_BACKOFF);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let b = Backoff::new(Duration::from_secs(10), 0);
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(8));
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(10));
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(12));
        for _ in 0..100 {
            let d = b.delay_random(1);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
        // the cap holds after jitter too
        assert!(b.delay(9, 1.0) <= MAX_BACKOFF);
    }

    #[test]
    fn attempts_are_bounded_unless_zero() {
        let b = Backoff::new(Duration::from_secs(1), 3);
        assert!(!b.is_exhausted(2) && b.is_exhausted(3));
        assert!(!Backoff::new(Duration::from_secs(1), 0).is_exhausted(u32::MAX));
    }

    #[test]
    fn two_consecutive_health_failures_mean_loss() {
        let mut h = HealthCounter::default();
        assert!(!h.record(false));
        assert!(!h.record(true), "a success resets the count");
        assert!(!h.record(false));
        assert!(h.record(false));
    }
}
