//! The one clock every scheduler reads: the wall clock in production, a simulated clock in
//! tests and the demo (so a year of renewals runs in seconds), or another process's clock
//! followed over HTTP by a caller that sets it here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Business time.
pub trait Clock: Send + Sync + 'static {
    /// Now, by this clock.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock set from outside: advanced by a test or the demo, or kept in step with a mock's
/// simulated clock by a poller. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(at.timestamp_millis())))
    }

    /// Moves the clock to `at` (never backwards: a scheduler's "due" must not flicker).
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.fetch_max(at.timestamp_millis(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.0
            .fetch_add(by.num_milliseconds().max(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock, shared.
pub fn wall() -> SharedClock {
    Arc::new(WallClock)
}

/// The time in a mock process's `GET /__admin/clock` answer (`{"now": RFC 3339, "mode"}`),
/// what a follower sets its [`ManualClock`] to.
pub fn time_of_clock_view(body: &[u8]) -> Result<DateTime<Utc>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the clock answer is not JSON: {e}"))?;
    let now = v["now"]
        .as_str()
        .ok_or_else(|| format!("the clock answer has no \"now\" string: {v}"))?;
    DateTime::parse_from_rfc3339(now)
        .map(|t| t.to_utc())
        .map_err(|e| format!("now = {now:?} is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mock_clock_answer_reads_as_its_time() {
        let t = time_of_clock_view(br#"{"now":"2026-03-01T12:00:00.250Z","mode":"simulated"}"#)
            .unwrap();
        assert_eq!(t.timestamp_millis() % 1000, 250);
        assert_eq!(t.to_rfc3339(), "2026-03-01T12:00:00.250+00:00");
        assert!(time_of_clock_view(br#"{"mode":"wall"}"#)
            .unwrap_err()
            .contains("now"));
        assert!(time_of_clock_view(br#"{"now":"yesterday"}"#)
            .unwrap_err()
            .contains("yesterday"));
    }

    #[test]
    fn a_manual_clock_moves_forward_only() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let c = ManualClock::at(t0);
        c.advance(chrono::Duration::days(30));
        assert_eq!(c.now(), t0 + chrono::Duration::days(30));
        c.set(t0);
        assert_eq!(c.now(), t0 + chrono::Duration::days(30), "never backwards");
        c.set(t0 + chrono::Duration::days(365));
        assert_eq!(c.now(), t0 + chrono::Duration::days(365));
    }
}
