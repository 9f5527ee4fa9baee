//! One clock for all mocks of a process: the wall clock, or a simulated clock that stands
//! still until it is advanced (`POST /__admin/clock`, [`Clock::advance`]), so a year of
//! renewals, invoices and notices runs in seconds (DESIGN "Time").
//!
//! What it guarantees:
//! - every app of a process reads the same `now` (they share one `Arc<Clock>`);
//! - the simulated clock only moves forward, and only when told to;
//! - an advance is synchronous: when [`Clock::advance`] (or [`Clock::set`]) returns, every
//!   app registered as [`DueWork`] has applied what became due up to the new `now`, in
//!   the order it became due (and queued the callouts it causes);
//! - with a store, the simulated `now` survives a restart (a restarted mock never sees
//!   its own records from the future).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The two kinds of clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Real time; cannot be advanced.
    #[default]
    Wall,
    /// Stands still until advanced or set.
    Simulated,
}

/// `clock = { mode = "wall" | "simulated", start = "2026-01-01T00:00:00Z", tick_ms = 1000 }`
/// at the top of the mocks' configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// Wall or simulated.
    pub mode: ClockMode,
    /// Where a simulated clock starts (RFC 3339); ignored by the wall clock.
    pub start: String,
    /// How often a served process runs what became due by itself (the wall clock moves
    /// on its own), in ms; 0 never does (only advances run due work).
    pub tick_ms: u64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            mode: ClockMode::Wall,
            start: "2026-01-01T00:00:00Z".into(),
            tick_ms: 1000,
        }
    }
}

/// Why the clock refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The wall clock cannot be moved.
    #[error("the clock is the wall clock; only a simulated clock (clock.mode = \"simulated\") can be advanced or set")]
    Wall,
    /// A simulated clock only moves forward.
    #[error("the clock only moves forward: {asked} is before now ({now})")]
    Backwards {
        /// The time asked for.
        asked: String,
        /// The clock's time.
        now: String,
    },
    /// A duration or time that does not parse.
    #[error("{0}")]
    Invalid(String),
}

/// An app with work that falls due with time (term ends, notices, bill runs).
pub trait DueWork: Send + Sync {
    /// Applies, in order, everything due at or before `now_ms` that was not applied yet.
    fn run_due(&self, now_ms: i64);
}

struct State {
    mode: ClockMode,
    /// The simulated time (ms since the epoch); unused by the wall clock.
    sim_ms: i64,
}

/// The clock of one process's mocks.
pub struct Clock {
    state: Mutex<State>,
    apps: Mutex<Vec<Weak<dyn DueWork>>>,
    /// Held while due work runs, so ticks and advances never interleave.
    running: Mutex<()>,
    store: Option<Arc<Store>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("mode", &self.mode())
            .field("now", &self.rfc3339())
            .finish()
    }
}

const STORE_KEY: &str = "__clock";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses RFC 3339 into ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, ClockError> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| ClockError::Invalid(format!("{s:?} is not an RFC 3339 time: {e}")))
}

/// Parses `30d`, `6h`, `90m`, `45s`, `250ms`, `2w` and sums like `1d12h` into ms.
pub fn parse_duration(s: &str) -> Result<i64, ClockError> {
    let bad = || {
        ClockError::Invalid(format!(
            "{s:?} is not a duration like 30d, 6h, 15m, 45s, 1d12h"
        ))
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms = match unit {
            "w" => 7 * 86_400_000,
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1000,
            "ms" => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

impl Clock {
    /// The wall clock.
    pub fn wall() -> Arc<Self> {
        Arc::new(Self::make(ClockMode::Wall, 0, None))
    }

    /// A simulated clock standing at `start_ms`.
    pub fn simulated(start_ms: i64) -> Arc<Self> {
        Arc::new(Self::make(ClockMode::Simulated, start_ms, None))
    }

    /// A simulated clock standing at an RFC 3339 time (`2026-01-01T00:00:00Z`).
    pub fn simulated_at(start: &str) -> Result<Arc<Self>, ClockError> {
        Ok(Self::simulated(parse_rfc3339(start)?))
    }

    /// The clock a configuration asks for; a simulated clock resumes from the time saved
    /// in `store` when that is later than `start`.
    pub fn from_config(cfg: &ClockConfig, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        let start = match cfg.mode {
            ClockMode::Wall => 0,
            ClockMode::Simulated => {
                let start = parse_rfc3339(&cfg.start)
                    .map_err(|e| crate::Error::Config(format!("clock.start: {e}")))?;
                let saved = match &store {
                    Some(s) => s
                        .load(STORE_KEY)?
                        .and_then(|j| serde_json::from_str::<i64>(&j).ok()),
                    None => None,
                };
                saved.map_or(start, |s| s.max(start))
            }
        };
        Ok(Arc::new(Self::make(cfg.mode, start, store)))
    }

    fn make(mode: ClockMode, sim_ms: i64, store: Option<Arc<Store>>) -> Self {
        Self {
            state: Mutex::new(State { mode, sim_ms }),
            apps: Mutex::new(Vec::new()),
            running: Mutex::new(()),
            store,
        }
    }

    /// Wall or simulated.
    pub fn mode(&self) -> ClockMode {
        lock(&self.state).mode
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        let s = lock(&self.state);
        match s.mode {
            ClockMode::Wall => chrono::Utc::now().timestamp_millis(),
            ClockMode::Simulated => s.sim_ms,
        }
    }

    /// Now.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }

    /// Today's date (UTC).
    pub fn today(&self) -> chrono::NaiveDate {
        self.now().date_naive()
    }

    /// Now as RFC 3339 with milliseconds.
    pub fn rfc3339(&self) -> String {
        crate::kit::rfc3339(self.now_ms())
    }

    /// Registers an app whose due work runs on every advance and tick.
    pub fn register(&self, app: Weak<dyn DueWork>) {
        let mut apps = lock(&self.apps);
        apps.retain(|a| a.strong_count() > 0);
        apps.push(app);
    }

    /// Runs every registered app's due work up to now.
    pub fn run_due(&self) {
        let _running = lock(&self.running);
        let now = self.now_ms();
        let apps: Vec<Arc<dyn DueWork>> =
            lock(&self.apps).iter().filter_map(Weak::upgrade).collect();
        for app in apps {
            app.run_due(now);
        }
    }

    /// Moves a simulated clock forward by `ms` and runs what became due; answers the new now.
    pub fn advance_ms(&self, ms: i64) -> Result<i64, ClockError> {
        if ms < 0 {
            return Err(ClockError::Invalid("an advance is not negative".into()));
        }
        let now = self.now_ms();
        self.set_ms(now.saturating_add(ms))
    }

    /// Moves a simulated clock forward by a duration like `30d` and runs what became due.
    pub fn advance(&self, by: &str) -> Result<i64, ClockError> {
        self.advance_ms(parse_duration(by)?)
    }

    /// Sets a simulated clock to `at_ms` (not before now) and runs what became due.
    pub fn set_ms(&self, at_ms: i64) -> Result<i64, ClockError> {
        {
            let mut s = lock(&self.state);
            if s.mode == ClockMode::Wall {
                return Err(ClockError::Wall);
            }
            if at_ms < s.sim_ms {
                return Err(ClockError::Backwards {
                    asked: crate::kit::rfc3339(at_ms),
                    now: crate::kit::rfc3339(s.sim_ms),
                });
            }
            s.sim_ms = at_ms;
        }
        if let Some(store) = &self.store {
            if let Err(e) = store.save(STORE_KEY, &at_ms.to_string()) {
                tracing::error!(error = %e, "cannot persist the simulated clock");
            }
        }
        self.run_due();
        Ok(at_ms)
    }

    /// Sets a simulated clock to an RFC 3339 time and runs what became due.
    pub fn set(&self, at: &str) -> Result<i64, ClockError> {
        self.set_ms(parse_rfc3339(at)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration("6h"), Ok(6 * 3_600_000));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3_600_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("-1d").is_err());
    }

    #[test]
    fn simulated_clock_stands_still_and_only_moves_forward() {
        let c = Clock::simulated_at("2026-01-01T00:00:00Z").expect("clock");
        let t0 = c.now_ms();
        assert_eq!(c.now_ms(), t0);
        assert_eq!(c.advance("1d"), Ok(t0 + 86_400_000));
        assert!(matches!(
            c.set("2025-12-31T00:00:00Z"),
            Err(ClockError::Backwards { .. })
        ));
        assert_eq!(c.rfc3339(), "2026-01-02T00:00:00.000Z");
    }

    #[test]
    fn wall_clock_refuses_to_move() {
        let c = Clock::wall();
        assert_eq!(c.advance("1d"), Err(ClockError::Wall));
        assert!((c.now_ms() - chrono::Utc::now().timestamp_millis()).abs() < 5_000);
    }

    struct Counter(Mutex<Vec<i64>>);
    impl DueWork for Counter {
        fn run_due(&self, now_ms: i64) {
            lock(&self.0).push(now_ms);
        }
    }

    #[test]
    fn an_advance_runs_registered_due_work_at_the_new_time_before_returning() {
        let c = Clock::simulated(0);
        let app = Arc::new(Counter(Mutex::new(Vec::new())));
        let weak: Weak<dyn DueWork> = Arc::downgrade(&(app.clone() as Arc<dyn DueWork>));
        c.register(weak);
        c.advance("1h").expect("advance");
        assert_eq!(*lock(&app.0), vec![3_600_000]);
    }
}
