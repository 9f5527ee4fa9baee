//! The consume → effect → commit loop.
//!
//! **Guarantee: at-least-once.** A partition's offset advances past a record only after the
//! handler's effect succeeded or the record was safely written to the dead-letter topic. The
//! loop tracks those offsets itself (librdkafka's auto-commit is off) and commits them every
//! `commit_interval`, and synchronously on revocation and shutdown. A crash anywhere
//! redelivers, never loses.
//!
//! **Order:** one worker task per assigned partition handles its records strictly in offset
//! order; retries happen in place, so a key's later event never overtakes an earlier one.
//!
//! **Throughput:** the poll thread drains what librdkafka has ready (up to [`DRAIN_MAX`]
//! records, and at most half the per-partition bound) and hands each partition its records
//! as one batch, so the cost of waking a worker is paid per batch, not per record.
//!
//! **Backpressure:** each partition has a bounded queue (about `max_in_flight_per_partition`
//! records, counted in batches); when it is full the partition is paused (the poll thread keeps polling, so heartbeats and rebalances go on) and resumed
//! when the worker catches up.
//!
//! **Rebalances:** on revocation the loop stops the revoked partitions' workers, lets the
//! record in flight finish (up to `drain_timeout`), commits synchronously, then lets the
//! partitions go; queued records of revoked partitions are dropped uncommitted, so their new
//! owner handles them once. Cooperative-sticky assignment keeps the other partitions running.
//!
//! **Who is at fault** ([`worker`]): a bad record is dead-lettered; a record the app cannot
//! take yet is retried in place a bounded number of times; while the app is unavailable the
//! partition is paused and its records wait, without limit, for the app to answer again.
//! Handlers that batch ([`Handler::max_batch`]) get up to that many records of a partition
//! per call, never two with the same key.
//!
//! The librdkafka consumer is polled on a dedicated blocking thread, because its rebalance
//! callback must be able to wait for the async workers. Layout: this module (the group
//! member and its poll thread), [`worker`] (one partition's records and their failures),
//! [`stats`] (live counters).

mod stats;
mod worker;

pub use stats::{Latency, LatencySnapshot, LoopStats, PartitionLag, LATENCY_BUCKETS};
pub use worker::Handler;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{ConsumerConfig, RetryConfig};
use crate::dlq::DeadLetters;
use crate::error::{BusError, Result};
use crate::record::Record;
use crate::retry::RetryPolicy;
use worker::Worker;

/// What one loop consumes and how.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// The consumer group; instances with the same group share the partitions.
    pub group_id: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Queue, commit and drain settings.
    pub consumer: ConsumerConfig,
    /// Backoff for transient failures.
    pub retry: RetryConfig,
}

/// A consumer-group member that drives a [`Handler`].
pub struct ConsumerLoop<H> {
    client: ClientConfig,
    settings: LoopSettings,
    handler: Arc<H>,
    dead_letters: DeadLetters,
    stats: LoopStats,
}

impl<H: Handler> ConsumerLoop<H> {
    /// A loop over `settings.topics`; `client` carries the cluster and security settings.
    pub fn new(
        client: &ClientConfig,
        settings: LoopSettings,
        handler: Arc<H>,
        dead_letters: DeadLetters,
    ) -> Self {
        ConsumerLoop {
            client: client.clone(),
            settings,
            handler,
            dead_letters,
            stats: LoopStats::default(),
        }
    }

    /// Live counters of this loop.
    pub fn stats(&self) -> LoopStats {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled, then finishes the records in flight, commits and
    /// leaves the group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let cc = &self.settings.consumer;
        let mut c = self.client.clone();
        c.set("group.id", &self.settings.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                cc.session_timeout.as_millis().to_string(),
            )
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false");
        for (key, value) in PREFETCH_DEFAULTS.iter().chain(STATISTICS_DEFAULTS) {
            if c.get(key).is_none() {
                c.set(*key, *value);
            }
        }
        let shared = Arc::new(Shared {
            parts: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
            drain_timeout: cc.drain_timeout,
            commit_interval: cc.commit_interval,
        });
        let consumer: BaseConsumer<Ctx> = c
            .create_with_context(Ctx {
                shared: shared.clone(),
                stats: self.stats.clone(),
            })
            .map_err(|e| BusError::kafka("create consumer", e))?;
        let topics: Vec<&str> = self.settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| BusError::kafka(format!("subscribe to {topics:?}"), e))?;
        info!(group = %self.settings.group_id, topics = ?self.settings.topics, "consumer loop started");
        let worker = WorkerKit {
            handler: self.handler,
            policy: RetryPolicy::new(self.settings.retry.clone()),
            dead_letters: self.dead_letters,
            stats: self.stats,
            drain: drain_and_queue(cc.max_in_flight_per_partition).0,
            queue: drain_and_queue(cc.max_in_flight_per_partition).1,
            rt: Handle::current(),
        };
        // If this future is dropped (its task aborted, the runtime shut down, a test failed),
        // the poll thread must not live on as a zombie group member: stop it.
        let _stop_on_drop = shutdown.clone().drop_guard();
        tokio::task::spawn_blocking(move || poll_loop(consumer, shared, worker, shutdown))
            .await
            .map_err(|e| BusError::Config(format!("consumer poll thread failed: {e}")))?
    }
}

/// Prefetch settings of the loop's consumer, unless `kafka.properties` sets them. Once its
/// queue passes `queued.min.messages` or `queued.max.messages.kbytes`, librdkafka postpones
/// the partition's next fetch by `fetch.queue.backoff.ms` — 1 s by default, which left the
/// loop idle most of the time once the workers had drained the queue (1M records: 215k ->
/// 390k rec/s). 10 ms keeps it fed; memory stays bounded by the same two
/// thresholds. (librdkafka's CONFIGURATION.md,
/// <https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md>.)
pub const PREFETCH_DEFAULTS: &[(&str, &str)] = &[("fetch.queue.backoff.ms", "10")];

/// librdkafka reports each assigned partition's committed offset, high watermark and lag this
/// often; the loop keeps the last report for `/metrics` (`l2f_consumer_lag`). A client setting
/// of its own wins.
pub const STATISTICS_DEFAULTS: &[(&str, &str)] = &[("statistics.interval.ms", "5000")];

/// What the poll thread needs to start a partition worker.
struct WorkerKit<H> {
    handler: Arc<H>,
    policy: RetryPolicy,
    dead_letters: DeadLetters,
    stats: LoopStats,
    /// Most records taken from librdkafka per dispatch.
    drain: usize,
    /// Batches a partition's queue holds.
    queue: usize,
    rt: Handle,
}

type Tp = (String, i32);

/// Most records the poll thread takes from librdkafka before dispatching them. A drain is
/// also at most half of `max_in_flight_per_partition`, so a partition's queue always holds
/// at least two batches and the bound stays what it says (128 records in flight: drains of
/// 64, as before). 512 rather than 64 at large bounds: the dispatch (lock, partition scan,
/// a worker wake-up per batch) is paid a fraction as often — 1M records consumed at 0.67 and
/// 0.81 of kcat's rate against 0.52 and 0.58, alternated runs on this machine.
pub const DRAIN_MAX: usize = 512;

/// The drain size and the per-partition queue length, in batches, for a bound of
/// `max_in_flight` records per partition.
fn drain_and_queue(max_in_flight: usize) -> (usize, usize) {
    let drain = (max_in_flight / 2).clamp(1, DRAIN_MAX);
    (drain, (max_in_flight / drain).max(2))
}

/// Records of one partition handed to its worker at once, in offset order.
type Batch = Vec<Record>;

struct Partition {
    stats: LoopStats,
    tx: mpsc::Sender<Batch>,
    /// Next offset to read, as far as effects are done (-1: nothing done yet).
    done: Arc<AtomicI64>,
    /// What was last committed for this partition.
    committed: i64,
    cancel: CancellationToken,
    busy: Arc<Busy>,
    stash: VecDeque<Batch>,
    paused: bool,
    /// Why it is paused, as last told to the stats.
    paused_for: Option<&'static str>,
    /// Set by the worker while the partition's app is unavailable: paused until it clears.
    waiting: Arc<AtomicBool>,
    join: tokio::task::JoinHandle<()>,
}

impl Partition {
    /// Drops the stashed records (the partition is going), releasing them from the gauge.
    fn stash_release(&mut self) {
        self.stats
            .released(self.stash.iter().map(Vec::len).sum::<usize>());
        self.stash.clear();
    }
}

/// Whether a worker is inside a record, so a revocation can wait for it.
#[derive(Default)]
struct Busy {
    inside: Mutex<bool>,
    cv: Condvar,
}

impl Busy {
    fn set(&self, v: bool) {
        *self.inside.lock().unwrap_or_else(|p| p.into_inner()) = v;
        self.cv.notify_all();
    }

    fn wait_idle(&self, deadline: Instant) -> bool {
        let mut g = self.inside.lock().unwrap_or_else(|p| p.into_inner());
        while *g {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

struct Shared {
    parts: Mutex<HashMap<Tp, Partition>>,
    /// Revocations so far: the poll thread checks it to drop records of partitions that were
    /// revoked between their fetch and their dispatch.
    revocations: AtomicU64,
    drain_timeout: Duration,
    commit_interval: Duration,
}

/// The offsets of `parts` that advanced since their last commit (marked as committed).
///
/// With `all`, every partition with finished work is included whatever was committed before:
/// an asynchronous interval commit may have failed during a rebalance (librdkafka does not
/// retry those), and the final commit must not trust it.
fn advanced<'a>(
    parts: impl Iterator<Item = (&'a Tp, &'a mut Partition)>,
    all: bool,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (tp, p) in parts {
        let done = p.done.load(Ordering::SeqCst);
        if (done > p.committed || (all && done >= 0))
            && tpl
                .add_partition_offset(&tp.0, tp.1, rdkafka::Offset::Offset(done))
                .is_ok()
        {
            p.committed = done;
        }
    }
    tpl
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Tp, Partition>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the workers of `parts`: the record in flight finishes (or its retry wait is cut
    /// short), queued records are dropped uncommitted. Returns the workers' join handles.
    /// Also returns the offsets to commit for them: what their workers finished, including
    /// the record that was in flight.
    ///
    /// A worker still inside a record at the deadline is aborted (at its next await), so it
    /// can never run beside a new worker of the same partition; that record is not committed
    /// and goes to the partition's next owner, while everything finished before it is.
    fn retire(
        &self,
        mut parts: Vec<(Tp, Partition)>,
    ) -> (TopicPartitionList, Vec<tokio::task::JoinHandle<()>>) {
        let deadline = Instant::now() + self.drain_timeout;
        for (_, p) in &mut parts {
            p.cancel.cancel();
            p.stash_release();
        }
        let mut joins = Vec::new();
        for (tp, p) in &parts {
            if !p.busy.wait_idle(deadline) {
                warn!(topic = %tp.0, partition = tp.1, "in-flight record did not finish within the drain timeout; it will be redelivered");
                p.join.abort();
            }
        }
        let tpl = advanced(parts.iter_mut().map(|(tp, p)| (&*tp, p)), true);
        joins.extend(parts.into_iter().map(|(_, p)| p.join));
        (tpl, joins)
    }
}

struct Ctx {
    shared: Arc<Shared>,
    stats: LoopStats,
}

impl ClientContext for Ctx {
    /// Keeps each assigned partition's lag from librdkafka's report (partition -1 is its
    /// internal unassigned queue, skipped).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = std::collections::BTreeMap::new();
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition < 0 || !p.desired {
                    continue;
                }
                lag.insert(
                    (topic.clone(), partition),
                    PartitionLag {
                        committed: p.committed_offset,
                        high: p.hi_offset,
                        lag: p.consumer_lag,
                    },
                );
            }
        }
        self.stats.set_lag(lag);
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<(Tp, Partition)> = {
                let mut parts = self.shared.lock();
                tpl.elements()
                    .iter()
                    .filter_map(|e| {
                        let tp = (e.topic().to_string(), e.partition());
                        self.stats.set_paused(&tp, None);
                        parts.remove(&tp).map(|p| (tp, p))
                    })
                    .collect()
            };
            self.shared.revocations.fetch_add(1, Ordering::SeqCst);
            info!(partitions = tpl.count(), "partitions revoked; draining");
            self.stats.set_assigned(0);
            self.stats.set_joined(false);
            let (offsets, _joins) = self.shared.retire(revoked);
            commit(base, &offsets, CommitMode::Sync, "revocation");
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = tpl.count(), "partitions assigned");
            self.stats.set_assigned(tpl.count() as i64);
            self.stats.set_joined(true);
            // A partition paused under a previous assignment must not stay paused.
            if let Err(e) = base.resume(tpl) {
                debug!(error = %e, "resume after assignment");
            }
        }
    }
}

fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
    mode: CommitMode,
    why: &str,
) {
    if offsets.count() == 0 {
        return;
    }
    match consumer.commit(offsets, mode) {
        Ok(()) => debug!(why, partitions = offsets.count(), "offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            warn!(why, error = %e, "offset commit failed; records since the last commit will be redelivered")
        }
    }
}

fn one_partition(tp: &Tp) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.0, tp.1);
    tpl
}

fn poll_loop<H: Handler>(
    consumer: BaseConsumer<Ctx>,
    shared: Arc<Shared>,
    kit: WorkerKit<H>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut last_commit = Instant::now();
    while !shutdown.is_cancelled() {
        if last_commit.elapsed() >= shared.commit_interval {
            let offsets = advanced(shared.lock().iter_mut(), false);
            commit(&consumer, &offsets, CommitMode::Async, "interval");
            last_commit = Instant::now();
        }
        // Hand stashed records of paused partitions to their workers as room appears.
        {
            let mut parts = shared.lock();
            for (tp, p) in parts.iter_mut() {
                while let Some(rec) = p.stash.pop_front() {
                    match p.tx.try_send(rec) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(rec)) => {
                            p.stash.push_front(rec);
                            break;
                        }
                        Err(mpsc::error::TrySendError::Closed(batch)) => {
                            kit.stats.released(
                                batch.len() + p.stash.iter().map(Vec::len).sum::<usize>(),
                            );
                            p.stash.clear();
                            break;
                        }
                    }
                }
                let waiting = p.waiting.load(Ordering::SeqCst);
                // An app that is down: stop fetching for the partition until it answers.
                if waiting && !p.paused {
                    match consumer.pause(&one_partition(tp)) {
                        Ok(()) => p.paused = true,
                        Err(e) => debug!(error = %e, "pause"),
                    }
                }
                if p.paused {
                    let why = if waiting {
                        "app_unavailable"
                    } else {
                        "backpressure"
                    };
                    if p.paused_for != Some(why) {
                        p.paused_for = Some(why);
                        kit.stats.set_paused(tp, Some(why));
                    }
                }
                // Resume only with room for half a queue: librdkafka drops its prefetched
                // records on every pause, so resuming into a full queue would thrash.
                if p.paused
                    && !waiting
                    && p.stash.is_empty()
                    && p.tx.capacity() >= p.tx.max_capacity() / 2
                {
                    match consumer.resume(&one_partition(tp)) {
                        Ok(()) => {
                            p.paused = false;
                            p.paused_for = None;
                            kit.stats.set_paused(tp, None);
                        }
                        Err(e) => debug!(error = %e, "resume"),
                    }
                }
            }
        }
        // The rebalance callback runs inside poll and takes the lock: never hold it here.
        let first = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                warn!(error = %e, "consumer error");
                continue;
            }
            Some(Ok(m)) => Record::from_message(&m),
        };
        let generation = shared.revocations.load(Ordering::SeqCst);
        let mut fetched = Vec::with_capacity(kit.drain);
        fetched.push(first);
        while fetched.len() < kit.drain {
            match consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => fetched.push(Record::from_message(&m)),
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
        }
        if shared.revocations.load(Ordering::SeqCst) != generation {
            // A rebalance ran inside one of those polls: keep only what is still ours.
            let assigned: std::collections::HashSet<Tp> = consumer
                .assignment()
                .map(|tpl| {
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            fetched.retain(|r| assigned.contains(&(r.topic.clone(), r.partition)));
        }
        kit.stats.held(fetched.len());
        let mut batches: Vec<(Tp, Batch)> = Vec::new();
        for rec in fetched {
            // Compared in place: a topic name is cloned once per batch, not once per record.
            match batches
                .iter_mut()
                .find(|(t, _)| t.1 == rec.partition && t.0 == rec.topic)
            {
                Some((_, b)) => b.push(rec),
                None => batches.push(((rec.topic.clone(), rec.partition), vec![rec])),
            }
        }
        let mut parts = shared.lock();
        for (tp, batch) in batches {
            let p = parts
                .entry(tp.clone())
                .or_insert_with(|| spawn_worker(&kit));
            if !p.stash.is_empty() {
                p.stash.push_back(batch);
                continue;
            }
            match p.tx.try_send(batch) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    p.stash.push_back(batch);
                    if !p.paused {
                        match consumer.pause(&one_partition(&tp)) {
                            Ok(()) => {
                                p.paused = true;
                                p.paused_for = Some("backpressure");
                                kit.stats.set_paused(&tp, Some("backpressure"));
                            }
                            Err(e) => debug!(error = %e, "pause"),
                        }
                    }
                }
                Err(mpsc::error::TrySendError::Closed(batch)) => kit.stats.released(batch.len()),
            }
        }
    }
    info!("shutting down: finishing records in flight");
    let all: Vec<(Tp, Partition)> = shared.lock().drain().collect();
    let (offsets, joins) = shared.retire(all);
    for join in joins {
        // Aborted workers end at their next await; one stuck in blocking code is not waited for.
        match kit
            .rt
            .block_on(tokio::time::timeout(Duration::from_secs(5), join))
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_cancelled() => {}
            Ok(Err(e)) => error!(error = %e, "partition worker failed"),
            Err(_) => warn!("a partition worker did not stop within 5 s of being aborted"),
        }
    }
    commit(&consumer, &offsets, CommitMode::Sync, "shutdown");
    consumer.unsubscribe();
    drop(consumer); // closes the consumer: leaves the group
    info!("consumer loop stopped");
    Ok(())
}

fn spawn_worker<H: Handler>(kit: &WorkerKit<H>) -> Partition {
    let (tx, rx) = mpsc::channel(kit.queue);
    let cancel = CancellationToken::new();
    let busy = Arc::new(Busy::default());
    let done = Arc::new(AtomicI64::new(-1));
    let waiting = Arc::new(AtomicBool::new(false));
    let w = Worker {
        handler: kit.handler.clone(),
        policy: kit.policy.clone(),
        dead_letters: kit.dead_letters.clone(),
        stats: kit.stats.clone(),
        done: done.clone(),
        cancel: cancel.clone(),
        busy: busy.clone(),
        waiting: waiting.clone(),
    };
    let join = kit.rt.spawn(w.run(rx));
    Partition {
        stats: kit.stats.clone(),
        tx,
        done,
        committed: -1,
        cancel,
        busy,
        stash: VecDeque::new(),
        paused: false,
        paused_for: None,
        waiting,
        join,
    }
}

/// A token cancelled on SIGINT or SIGTERM: the graceful-shutdown trigger of every l2f process.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutdown signal received");
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_is_at_most_half_the_bound_and_a_queue_holds_two_batches() {
        assert_eq!(drain_and_queue(128), (64, 2));
        assert_eq!(drain_and_queue(256), (128, 2));
        assert_eq!(drain_and_queue(4096), (512, 8));
        assert_eq!(drain_and_queue(1), (1, 2));
        for bound in [2, 3, 100, 128, 1000, 5000] {
            let (drain, queue) = drain_and_queue(bound);
            assert!(drain <= bound / 2, "{bound}");
            assert!(queue >= 2, "{bound}");
        }
    }
}
