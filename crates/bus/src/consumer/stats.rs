//! Live counters of a loop, and the guards that keep the records-in-memory gauge exact
//! whatever way a batch ends.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

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
