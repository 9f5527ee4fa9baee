//! How long to wait before the next attempt at a transient failure: exponential backoff with
//! jitter (the `backoff` crate), except that a server's Retry-After hint is obeyed as given.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use rand::Rng;

use crate::config::RetryConfig;

/// The longest Retry-After l2f will honour; a larger hint is treated as this (a server that
/// asks for an hour is better answered by the dead-letter topic's redrive than a stuck partition).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A retry policy; [`RetryPolicy::schedule`] starts the schedule of one record.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    cfg: RetryConfig,
}

impl RetryPolicy {
    /// A policy from configuration.
    pub fn new(cfg: RetryConfig) -> Self {
        RetryPolicy { cfg }
    }

    /// Attempts allowed before giving up (at least one).
    pub fn max_attempts(&self) -> u32 {
        self.cfg.max_attempts.max(1)
    }

    /// A fresh schedule for one record.
    pub fn schedule(&self) -> RetrySchedule {
        let b = ExponentialBackoffBuilder::new()
            .with_initial_interval(self.cfg.initial)
            .with_multiplier(self.cfg.multiplier)
            .with_randomization_factor(self.cfg.jitter.clamp(0.0, 1.0))
            .with_max_interval(self.cfg.max)
            .with_max_elapsed_time(None)
            .build();
        RetrySchedule { backoff: b }
    }
}

/// The waits of one record's retries.
#[derive(Debug)]
pub struct RetrySchedule {
    backoff: ExponentialBackoff,
}

impl RetrySchedule {
    /// The wait before the next attempt: the server's hint (plus up to 10 % jitter, so a
    /// crowd of clients does not return at the same instant) when there is one, else the
    /// next exponential step.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self
            .backoff
            .next_backoff()
            .unwrap_or(self.backoff.max_interval);
        match retry_after {
            Some(hint) => {
                let hint = hint.min(MAX_RETRY_AFTER);
                let jitter = rand::thread_rng().gen_range(0.0..=0.1);
                hint + hint.mul_f64(jitter)
            }
            None => step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter,
            max_attempts: 5,
        })
    }

    #[test]
    fn grows_exponentially_and_caps() {
        let mut s = policy(0.0).schedule();
        let waits: Vec<u128> = (0..6).map(|_| s.next_delay(None).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let mut s = policy(0.5).schedule();
        let first = s.next_delay(None);
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(150),
            "{first:?}"
        );
    }

    #[test]
    fn retry_after_is_honoured_even_above_the_cap() {
        let mut s = policy(0.0).schedule();
        let d = s.next_delay(Some(Duration::from_secs(3)));
        assert!(
            d >= Duration::from_secs(3) && d <= Duration::from_millis(3300),
            "{d:?}"
        );
        let d = s.next_delay(Some(Duration::from_secs(10_000)));
        assert!(d <= MAX_RETRY_AFTER.mul_f64(1.1));
    }
}
