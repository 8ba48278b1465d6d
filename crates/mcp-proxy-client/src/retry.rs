//! The retry policy: exponential back-off with jitter, bounded in attempts and total time.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tracing::debug;

use crate::error::Error;

pub use mcp_types::duration::JITTER;

/// When to try a failed call again.
///
/// A call is retried only when the error [is retryable](Error::is_retryable) **and** the
/// call is safe to repeat: reads, `PUT`, `DELETE` and reconnects are; `register` is retried
/// only when the proxy answered that it did nothing (502/503) or was never reached;
/// `call_tool` only when the request never left this process, unless the caller declares
/// the tool idempotent.
///
/// The delay before retry `n` (1-based) is `initial_delay × 2^(n-1)`, capped at
/// `max_delay`, ±[`JITTER`]. No retry starts once `max_elapsed` would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms doubling up to 2 s, 15 s in all.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// A policy; fails when `max_attempts` is 0, a delay is zero or `initial_delay` exceeds
    /// `max_delay`.
    pub fn try_new(
        max_attempts: u32,
        initial_delay: Duration,
        max_delay: Duration,
        max_elapsed: Duration,
    ) -> Result<Self, Error> {
        if max_attempts == 0 {
            return Err(Error::InvalidRetryPolicy("max_attempts must be at least 1"));
        }
        if initial_delay.is_zero() {
            return Err(Error::InvalidRetryPolicy("initial_delay must be positive"));
        }
        if initial_delay > max_delay {
            return Err(Error::InvalidRetryPolicy(
                "initial_delay must not exceed max_delay",
            ));
        }
        Ok(Self {
            max_attempts,
            initial_delay,
            max_delay,
            max_elapsed,
        })
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts at most, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The total time after which no retry starts.
    pub fn max_elapsed(&self) -> Duration {
        self.max_elapsed
    }

    /// The delay before retry `n` (1-based), before jitter.
    pub fn base_delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    fn jittered_delay(&self, n: u32) -> Duration {
        let f = rand::rng().random_range(1.0 - JITTER..=1.0 + JITTER);
        self.base_delay(n).mul_f64(f)
    }
}

/// How safe a call is to repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reads, PUT, DELETE, reconnect: any retryable error.
    Idempotent,
    /// Create: only when the proxy was not reached or answered 502/503 (it did nothing).
    AnsweredOrUnsent,
    /// Tool calls: only when the request never left this process.
    Unsent,
}

impl Safety {
    fn allows(self, err: &Error) -> bool {
        match self {
            Self::Idempotent => err.is_retryable(),
            Self::AnsweredOrUnsent => {
                err.is_connect()
                    || matches!(err, Error::Unavailable { .. } | Error::Upstream { .. })
            }
            Self::Unsent => err.is_connect(),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is exhausted.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    safety: Safety,
    op: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    let mut n = 1;
    loop {
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if n >= policy.max_attempts || !safety.allows(&err) {
            return Err(err);
        }
        let delay = policy.jittered_delay(n);
        if start.elapsed() + delay > policy.max_elapsed {
            return Err(err);
        }
        debug!(op, attempt = n, error = %err, delay_ms = delay.as_millis() as u64, "retrying");
        tokio::time::sleep(delay).await;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn unavailable() -> Error {
        Error::Unavailable {
            op: "GET /x".into(),
            code: "store_unavailable".into(),
            message: "redis down".into(),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_bad_policies_are_refused() {
        let p = RetryPolicy::try_new(
            10,
            Duration::from_millis(100),
            Duration::from_millis(500),
            Duration::from_secs(60),
        )
        .unwrap();
        let delays: Vec<_> = (1..=5).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        for n in 1..50 {
            let d = p.jittered_delay(n);
            assert!(d >= p.base_delay(n).mul_f64(0.8) && d <= p.base_delay(n).mul_f64(1.2));
        }
        let ms = Duration::from_millis;
        assert!(RetryPolicy::try_new(0, ms(1), ms(2), ms(3)).is_err());
        assert!(RetryPolicy::try_new(1, ms(0), ms(2), ms(3)).is_err());
        assert!(RetryPolicy::try_new(1, ms(5), ms(2), ms(3)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_until_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::try_new(
            4,
            Duration::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .unwrap();
        let r: Result<(), _> = run(&p, Safety::Idempotent, "GET /x", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        })
        .await;
        assert!(matches!(r, Err(Error::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_total_time_would_be_exceeded() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::try_new(
            100,
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_millis(3500),
        )
        .unwrap();
        let started = Instant::now();
        let _ = run(&p, Safety::Idempotent, "GET /x", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable())
        })
        .await;
        // 1 s ± JITTER (20 %) per delay, the first attempt at once: at 1.2 s per delay
        // three attempts fit in 3.5 s, at 0.8 s five (0, 0.8, 1.6, 2.4, 3.2), never more.
        let n = calls.load(Ordering::SeqCst);
        assert!((3..=5).contains(&n), "{n} attempts");
        assert!(started.elapsed() <= Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_what_is_unsafe_or_final() {
        for (safety, err) in [
            (Safety::Unsent, unavailable()),
            (
                Safety::Idempotent,
                Error::NotFound {
                    op: "GET /x".into(),
                    code: "mcp_not_found".into(),
                    message: "gone".into(),
                },
            ),
        ] {
            let calls = AtomicU32::new(0);
            let mut err = Some(err);
            let _ = run(&RetryPolicy::default(), safety, "op", || {
                calls.fetch_add(1, Ordering::SeqCst);
                let e = err.take().unwrap_or_else(unavailable);
                async move { Err::<(), _>(e) }
            })
            .await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{safety:?}");
        }
    }
}
