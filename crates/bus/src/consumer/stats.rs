//! Live counters of a loop, and the guards that keep the records-in-memory gauge exact
//! whatever way a batch ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Batch;

/// Counters of a running loop, readable while it runs (for metrics and tests).
#[derive(Debug, Clone, Default)]
pub struct LoopStats(Arc<StatsInner>);

#[derive(Debug, Default)]
struct StatsInner {
    handled: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    abandoned: AtomicU64,
    unavailable: AtomicU64,
    in_memory: AtomicI64,
    waiting: AtomicI64,
    calls: AtomicU64,
    assigned: AtomicI64,
    joined: std::sync::atomic::AtomicBool,
    latency: Latency,
    lag: Mutex<BTreeMap<(String, i32), PartitionLag>>,
    paused: Mutex<BTreeMap<(String, i32), &'static str>>,
}

/// Upper bounds (seconds) of the handler-latency buckets: from a cached no-op to an app call
/// that waited out a slow answer.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of call durations kept in atomics, so callers record without a lock: the
/// handler calls of a loop, and the connectors' calls to their apps.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Latency {
    /// Counts one call that took `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The histogram as the exposition wants it (cumulative buckets, `+Inf` last).
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(le, n)| (*le, n.load(Ordering::Relaxed)))
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let mut total = 0;
        for b in &mut buckets {
            total += b.1;
            b.1 = total;
        }
        buckets.push((f64::INFINITY, count.max(total)));
        LatencySnapshot {
            buckets,
            count: count.max(total),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A snapshot of the handler-latency histogram, for the exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, calls at or under it)`, cumulative, the last one `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Calls observed.
    pub count: u64,
    /// Their total duration in seconds.
    pub sum: f64,
}

/// Where one assigned partition stands, from librdkafka's statistics: how far the group's
/// committed offset is behind the partition's end, which is what an operator's lag alert
/// watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The group's committed offset (-1 when none yet).
    pub committed: i64,
    /// The high watermark (end of the log, or last stable offset under read_committed).
    pub high: i64,
    /// Records between the committed offset and the end (librdkafka's `consumer_lag`; -1 while
    /// unknown).
    pub lag: i64,
}

impl LoopStats {
    /// Records whose effect succeeded.
    pub fn handled(&self) -> u64 {
        self.0.handled.load(Ordering::Relaxed)
    }
    /// Retries of failed records (transient or unavailable), counted per record.
    pub fn retries(&self) -> u64 {
        self.0.retries.load(Ordering::Relaxed)
    }
    /// Records written to the dead-letter topic.
    pub fn dead_lettered(&self) -> u64 {
        self.0.dead_lettered.load(Ordering::Relaxed)
    }
    /// Records left uncommitted because their partition was revoked or the loop stopped
    /// while they waited for a retry (they will be delivered again).
    pub fn abandoned(&self) -> u64 {
        self.0.abandoned.load(Ordering::Relaxed)
    }
    /// Times a partition started waiting for its app to come back (an outage seen).
    pub fn unavailable(&self) -> u64 {
        self.0.unavailable.load(Ordering::Relaxed)
    }
    /// Records taken from librdkafka and not yet finished or dropped: what the loop holds in
    /// its own queues. Backpressure keeps it near `max_in_flight_per_partition` per partition.
    pub fn in_memory(&self) -> i64 {
        self.0.in_memory.load(Ordering::Relaxed)
    }
    /// Partitions paused right now because their app is unavailable.
    pub fn waiting(&self) -> i64 {
        self.0.waiting.load(Ordering::Relaxed)
    }
    /// Calls made to the handler (a batch call counts once), so batching is visible.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::Relaxed)
    }
    /// Partitions the group has assigned to this loop right now: 0 until it has joined (or
    /// while a rebalance has taken them away), so readiness can be told from it.
    pub fn assigned(&self) -> i64 {
        self.0.assigned.load(Ordering::Relaxed)
    }
    /// Sets [`LoopStats::assigned`] (the rebalance callbacks and the schedulers call it).
    pub fn set_assigned(&self, n: i64) {
        self.0.assigned.store(n, Ordering::Relaxed);
    }
    /// Whether the loop is a member of its group's current generation (an assignment was
    /// received, possibly empty: a standby member is joined and idle) — its readiness.
    pub fn joined(&self) -> bool {
        self.0.joined.load(Ordering::Relaxed)
    }
    /// Sets [`LoopStats::joined`].
    pub fn set_joined(&self, joined: bool) {
        self.0.joined.store(joined, Ordering::Relaxed);
    }
    /// The handler-call duration histogram.
    pub fn latency(&self) -> LatencySnapshot {
        self.0.latency.snapshot()
    }
    /// Lag of every partition this loop holds, by `(topic, partition)`, as of librdkafka's last
    /// statistics report (`consumer.statistics_interval`).
    pub fn lag(&self) -> BTreeMap<(String, i32), PartitionLag> {
        self.0.lag.lock().map(|m| m.clone()).unwrap_or_default()
    }
    pub(super) fn observe_call(&self, took: Duration) {
        self.0.latency.observe(took);
    }
    /// The partitions the loop has paused, each with why: `app_unavailable` (its app is down,
    /// the records wait) or `backpressure` (its queue is full, the workers are behind).
    pub fn paused(&self) -> BTreeMap<(String, i32), &'static str> {
        self.0.paused.lock().map(|m| m.clone()).unwrap_or_default()
    }
    /// Notes that `tp` is paused for `why`, or (`None`) fetched again.
    pub fn set_paused(&self, tp: &(String, i32), why: Option<&'static str>) {
        if let Ok(mut m) = self.0.paused.lock() {
            match why {
                Some(w) => {
                    m.insert(tp.clone(), w);
                }
                None => {
                    m.remove(tp);
                }
            }
        }
    }
    /// Replaces the lag table with the partitions of one statistics report (the consumer's
    /// statistics callback calls it; public so an exposition can be checked without a broker).
    pub fn set_lag(&self, lag: BTreeMap<(String, i32), PartitionLag>) {
        if let Ok(mut m) = self.0.lag.lock() {
            *m = lag;
        }
    }
    pub(super) fn add_handled(&self, n: u64) {
        self.0.handled.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn add_retries(&self, n: u64) {
        self.0.retries.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn bump_dead_lettered(&self) {
        self.0.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn bump_abandoned(&self) {
        self.0.abandoned.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn bump_calls(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn wait_started(&self) {
        self.0.unavailable.fetch_add(1, Ordering::Relaxed);
        self.0.waiting.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn wait_ended(&self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
    pub(super) fn held(&self, n: usize) {
        self.0.in_memory.fetch_add(n as i64, Ordering::Relaxed);
    }
    pub(super) fn released(&self, n: usize) {
        self.0.in_memory.fetch_sub(n as i64, Ordering::Relaxed);
    }
}

/// Releases, when dropped, the records of a batch not yet marked finished — whether the batch
/// ran to its end, was cut short, or its task was aborted.
pub(super) struct Held<'a> {
    pub(super) stats: &'a LoopStats,
    pub(super) left: usize,
}

impl Held<'_> {
    pub(super) fn finished(&mut self, n: usize) {
        self.left -= n;
        self.stats.released(n);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.stats.released(self.left);
    }
}

/// A worker's queue: when the worker ends (stopped or aborted), the batches still in it are
/// dropped uncommitted — the partition's next owner reads them again — and released.
pub(super) struct Inbox {
    pub(super) rx: mpsc::Receiver<Batch>,
    pub(super) stats: LoopStats,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(batch) = self.rx.try_recv() {
            self.stats.released(batch.len());
        }
    }
}

/// Marks a partition as waiting for its app while alive, so the poll thread pauses it and the
/// gauge counts it; cleared on every way out (recovered, revoked, aborted).
pub(super) struct Waiting<'a> {
    flag: &'a std::sync::atomic::AtomicBool,
    stats: &'a LoopStats,
}

impl<'a> Waiting<'a> {
    pub(super) fn start(flag: &'a std::sync::atomic::AtomicBool, stats: &'a LoopStats) -> Self {
        flag.store(true, Ordering::SeqCst);
        stats.wait_started();
        Waiting { flag, stats }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::SeqCst);
        self.stats.wait_ended();
    }
}
