//! Exactly-once sources: an app's change feed read from a cursor into Kafka.
//!
//! **Guarantee: every change of the feed reaches Kafka exactly once for `read_committed`
//! readers**, whatever kills the source and when. Each poll's events *and* the new cursor (a
//! record keyed by the source's name on a compacted offsets topic) are produced in one Kafka
//! transaction, as Kafka Connect's exactly-once sources do (KIP-618): either both are visible
//! or neither, so a restarted source resumes exactly after the last committed change. It rests
//! on one condition: the feed answers the same changes, in the same order, for the same cursor.
//! (Event ids are derived from the source, the feed's epoch and the change's position —
//! [`l2f_contracts`'s `record::event_id`] — so even a feed re-read after a lost cursor yields
//! the same ids, which the sinks' idempotency keys absorb.)
//!
//! **One active poller per source, however many replicas run.** Every instance joins the
//! consumer group `l2f-source-<name>` on the offsets topic; the instance assigned the partition
//! that holds the source's cursor is the active one, the others stand by. When the active
//! instance dies its partition moves to a standby after the group's session timeout. The
//! producer's transactional id is the source's name, the same on every replica, so the new
//! active instance's `init_transactions` fences the old one: a zombie that still thinks it is
//! active can never commit again, and its open transaction is aborted.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::admin::watermarks;
use crate::config::RetryConfig;
use crate::error::{BusError, HandlerError, Result};
use crate::headers::{TraceParent, TRACEPARENT};
use crate::reader::read_ranges;
use crate::record::OutRecord;
use crate::retry::RetryPolicy;
use crate::transactional::{classify, retrying, send, TxnFailure};

/// Header on cursor records naming the source that wrote them.
pub const SOURCE_HEADER: &str = "l2f.source";

/// What one poll of a feed found.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// The events (and dead letters) for the changes read, in feed order.
    pub records: Vec<OutRecord>,
    /// The cursor after those changes; committed with them.
    pub cursor: Value,
    /// The feed has more after this page: poll again at once instead of waiting.
    pub more: bool,
}

/// An app's change feed.
pub trait Source: Send + Sync + 'static {
    /// Reads the changes after `cursor` (`None`: from the feed's beginning) and maps them to
    /// records. Must not change anything in the app: a poll whose transaction is aborted is
    /// simply made again. An error means nothing was read; the loop waits and polls again
    /// (the class says how long: an unavailable app backs off, never gives up).
    fn poll(
        &mut self,
        cursor: Option<&Value>,
    ) -> impl Future<Output = Result<Polled, HandlerError>> + Send;

    /// Called once the records of the last poll and `cursor` are committed in Kafka: a
    /// webhook source answers its callers here (never before), a feed source may forget
    /// what it buffered.
    fn committed(&mut self, cursor: &Value) {
        let _ = cursor;
    }

    /// How many changes the app holds past what the source has committed, when the app says
    /// (a feed's newest position, a webhook's queue): `l2f_source_feed_behind`. Asked after
    /// each successful poll and commit.
    fn behind(&self) -> Option<u64> {
        None
    }
}

/// How a source loop runs.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// The source's stable name (`customers`, `salesforce-opportunities`): its transactional
    /// id, its lease group and its cursor's key. Never change it for a running feed.
    pub name: String,
    /// The compacted topic that keeps every source's cursor.
    pub offsets_topic: String,
    /// Wait between polls when the feed had nothing new.
    pub poll_interval: Duration,
    /// Broker-side transaction timeout: an abandoned transaction is aborted after this.
    pub transaction_timeout: Duration,
    /// Lease group session timeout: how soon a standby takes over from a dead instance.
    pub session_timeout: Duration,
    /// Backoff between failed polls.
    pub retry: RetryConfig,
}

impl SourceSettings {
    /// Defaults: poll every second, 30 s transactions, 10 s session.
    pub fn new(name: impl Into<String>, offsets_topic: impl Into<String>) -> Self {
        SourceSettings {
            name: name.into(),
            offsets_topic: offsets_topic.into(),
            poll_interval: Duration::from_secs(1),
            transaction_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
        }
    }

    fn transactional_id(&self) -> String {
        format!("l2f-source-{}", self.name)
    }

    fn lease_group(&self) -> String {
        format!("l2f-source-{}", self.name)
    }
}

/// Counters of a running source, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct SourceStats(Arc<SourceCounters>);

#[derive(Debug, Default)]
struct SourceCounters {
    polls: AtomicU64,
    failed_polls: AtomicU64,
    transactions: AtomicU64,
    records: AtomicU64,
    aborted: AtomicU64,
    activations: AtomicU64,
    active: AtomicBool,
    backing_off: AtomicBool,
    /// Unix millis when the last poll that read the feed to its end began (its changes
    /// committed); the activation time until then.
    caught_up_ms: AtomicI64,
    /// What [`Source::behind`] last said; -1 when the app does not say.
    behind: AtomicI64,
}

impl SourceStats {
    /// Polls made while active.
    pub fn polls(&self) -> u64 {
        self.0.polls.load(Ordering::Relaxed)
    }
    /// Polls that failed (the app did not answer or answered an error).
    pub fn failed_polls(&self) -> u64 {
        self.0.failed_polls.load(Ordering::Relaxed)
    }
    /// Transactions committed (records + cursor).
    pub fn transactions(&self) -> u64 {
        self.0.transactions.load(Ordering::Relaxed)
    }
    /// Records committed (events and dead letters, not cursors).
    pub fn records(&self) -> u64 {
        self.0.records.load(Ordering::Relaxed)
    }
    /// Transactions aborted (and their poll made again).
    pub fn aborted(&self) -> u64 {
        self.0.aborted.load(Ordering::Relaxed)
    }
    /// Times this instance became the active poller.
    pub fn activations(&self) -> u64 {
        self.0.activations.load(Ordering::Relaxed)
    }
    /// Whether this instance is the active poller now.
    pub fn active(&self) -> bool {
        self.0.active.load(Ordering::Relaxed)
    }
    /// Whether the last poll or commit failed and the source is waiting to try again: work
    /// is owed even though no counter moves (a stalled source, not an idle one).
    pub fn backing_off(&self) -> bool {
        self.0.backing_off.load(Ordering::Relaxed)
    }
    /// How far behind its app's feed the source is in time: since the start of the last poll
    /// that read the feed to its end and committed what it found. About the poll interval
    /// while it keeps up; rising while it drains a backlog page by page, or while its polls
    /// fail (a stalled source). `None` while not the active poller.
    pub fn feed_lag(&self) -> Option<Duration> {
        if !self.active() {
            return None;
        }
        let since = self.0.caught_up_ms.load(Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis();
        Some(Duration::from_millis(
            now.saturating_sub(since).max(0) as u64
        ))
    }
    /// How many changes the app holds past the committed cursor, when the app says.
    pub fn behind(&self) -> Option<u64> {
        u64::try_from(self.0.behind.load(Ordering::Relaxed)).ok()
    }
    fn bump(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The cursor record's value.
#[derive(Debug, Serialize, Deserialize)]
struct CursorRecord {
    source: String,
    cursor: Value,
    committed_at: String,
}

/// The partition of the offsets topic that holds `name`'s cursor: a stable hash, written
/// explicitly, so every client agrees whatever its partitioner.
fn cursor_partition(name: &str, partitions: i32) -> i32 {
    // FNV-1a, 32 bit.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % partitions.max(1) as u32) as i32
}

struct LeaseCtx {
    topic: String,
    partition: i32,
    active: watch::Sender<bool>,
}

impl LeaseCtx {
    fn holds(&self, tpl: &TopicPartitionList) -> bool {
        tpl.elements()
            .iter()
            .any(|e| e.topic() == self.topic && e.partition() == self.partition)
    }
}

impl ClientContext for LeaseCtx {}

impl ConsumerContext for LeaseCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if self.holds(tpl) {
                self.active.send_replace(false);
            }
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // The lease consumer never reads: it only holds the partition.
            let _ = base.pause(tpl);
            if let Ok(all) = base.assignment() {
                self.active.send_replace(self.holds(&all));
            }
        }
    }
}

/// Runs a [`Source`] with exactly-once delivery and one active poller per name.
pub struct SourceLoop<S> {
    client: ClientConfig,
    settings: SourceSettings,
    source: S,
    stats: SourceStats,
}

impl<S: Source> SourceLoop<S> {
    /// A source loop on the cluster of `client`.
    pub fn new(client: &ClientConfig, settings: SourceSettings, source: S) -> Self {
        SourceLoop {
            client: client.clone(),
            settings,
            source,
            stats: SourceStats::default(),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> SourceStats {
        self.stats.clone()
    }

    /// Runs until `shutdown`: stands by until this instance holds the lease, then polls.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let s = self.settings.clone();
        let _stop_on_drop = shutdown.clone().drop_guard();
        let marks = {
            let (c, t) = (self.client.clone(), s.offsets_topic.clone());
            tokio::task::spawn_blocking(move || watermarks(&c, &t, Duration::from_secs(10)))
                .await
                .map_err(|e| BusError::Config(format!("source {}: {e}", s.name)))??
        };
        let partition = cursor_partition(&s.name, marks.len() as i32);
        let (tx, mut active) = watch::channel(false);
        let lease = self.lease(partition, tx, shutdown.clone())?;
        info!(source = %s.name, offsets_topic = %s.offsets_topic, partition, "source started; waiting for the lease");
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            if !*active.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => break Ok(()),
                    changed = active.changed() => {
                        if changed.is_err() { break Ok(()) }
                        continue;
                    }
                }
            }
            match self.lead(partition, &mut active, &shutdown).await {
                Ok(()) => {}
                Err(e) => {
                    warn!(source = %s.name, error = %e, "active source stopped; standing by");
                    self.stats.0.active.store(false, Ordering::Relaxed);
                    tokio::select! {
                        _ = shutdown.cancelled() => break Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        shutdown.cancel();
        let _ = lease.await;
        info!(source = %s.name, "source stopped");
        result
    }

    /// The lease: a group member on the offsets topic, polled on its own thread.
    fn lease(
        &self,
        partition: i32,
        tx: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let s = &self.settings;
        let mut c = self.client.clone();
        c.set("group.id", s.lease_group())
            .set("enable.auto.commit", "false")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                s.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (s.session_timeout.as_millis() / 4).max(100).to_string(),
            );
        let consumer: BaseConsumer<LeaseCtx> = c
            .create_with_context(LeaseCtx {
                topic: s.offsets_topic.clone(),
                partition,
                active: tx,
            })
            .map_err(|e| BusError::kafka("create source lease consumer", e))?;
        consumer
            .subscribe(&[&s.offsets_topic])
            .map_err(|e| BusError::kafka(format!("subscribe to {}", s.offsets_topic), e))?;
        Ok(tokio::task::spawn_blocking(move || {
            while !shutdown.is_cancelled() {
                if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                    debug!(error = %e, "source lease consumer");
                }
            }
            consumer.context().active.send_replace(false);
            consumer.unsubscribe();
        }))
    }

    /// While this instance holds the lease: fence older instances, read the cursor, poll and
    /// commit. Returns when the lease is lost or on shutdown; an error when fenced or broken.
    async fn lead(
        &mut self,
        partition: i32,
        active: &mut watch::Receiver<bool>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let s = self.settings.clone();
        let producer = {
            let mut pc = self.client.clone();
            pc.set("transactional.id", s.transactional_id())
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set(
                    "transaction.timeout.ms",
                    s.transaction_timeout.as_millis().to_string(),
                );
            let timeout = s.transaction_timeout;
            let name = s.name.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let p: ThreadedProducer<DefaultProducerContext> = pc
                    .create()
                    .map_err(|e| BusError::kafka("create source producer", e))?;
                // Fences every older instance of this source and aborts its open transaction.
                p.init_transactions(timeout).map_err(|e| {
                    BusError::kafka(format!("init transactions for source {name}"), e)
                })?;
                Ok(Arc::new(p))
            })
            .await
            .map_err(|e| BusError::Config(format!("source {}: {e}", s.name)))??
        };
        let mut cursor = self.read_cursor(partition).await?;
        self.stats
            .0
            .caught_up_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.stats.0.behind.store(-1, Ordering::Relaxed);
        self.stats.0.active.store(true, Ordering::Relaxed);
        SourceStats::bump(&self.stats.0.activations, 1);
        info!(source = %s.name, cursor = %cursor.as_ref().map_or("none".to_string(), |c| c.to_string()), "source active");
        let policy = RetryPolicy::new(s.retry.clone());
        let mut backoff = policy.schedule();
        loop {
            if shutdown.is_cancelled() || !*active.borrow() {
                break;
            }
            SourceStats::bump(&self.stats.0.polls, 1);
            let began = chrono::Utc::now().timestamp_millis();
            let polled = match self.source.poll(cursor.as_ref()).await {
                Ok(p) => {
                    backoff = policy.schedule();
                    self.stats.0.backing_off.store(false, Ordering::Relaxed);
                    p
                }
                Err(e) => {
                    SourceStats::bump(&self.stats.0.failed_polls, 1);
                    self.stats.0.backing_off.store(true, Ordering::Relaxed);
                    warn!(source = %s.name, error = %e, "poll failed; retrying");
                    let wait = backoff.next_delay(e.hint());
                    if !pause(wait, active, shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let unchanged = polled.records.is_empty() && Some(&polled.cursor) == cursor.as_ref();
            if !unchanged {
                let n = polled.records.len() as u64;
                match self.commit(&producer, partition, &polled).await? {
                    true => {
                        SourceStats::bump(&self.stats.0.transactions, 1);
                        SourceStats::bump(&self.stats.0.records, n);
                        self.source.committed(&polled.cursor);
                        cursor = Some(polled.cursor.clone());
                    }
                    false => {
                        SourceStats::bump(&self.stats.0.aborted, 1);
                        self.stats.0.backing_off.store(true, Ordering::Relaxed);
                        if !pause(backoff.next_delay(None), active, shutdown).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            // Read to the end and committed: caught up as of the poll's start.
            if !polled.more {
                self.stats.0.caught_up_ms.store(began, Ordering::Relaxed);
            }
            let behind = self
                .source
                .behind()
                .map_or(-1, |n| n.min(i64::MAX as u64) as i64);
            self.stats.0.behind.store(behind, Ordering::Relaxed);
            if !polled.more && !pause(s.poll_interval, active, shutdown).await {
                break;
            }
        }
        self.stats.0.active.store(false, Ordering::Relaxed);
        self.stats.0.backing_off.store(false, Ordering::Relaxed);
        info!(source = %s.name, "source no longer active");
        Ok(())
    }

    /// The last committed cursor of this source, read from its partition of the offsets topic.
    async fn read_cursor(&self, partition: i32) -> Result<Option<Value>> {
        let client = self.client.clone();
        let s = self.settings.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<Value>> {
            let marks = watermarks(&client, &s.offsets_topic, Duration::from_secs(10))?;
            let Some(&(_, lo, hi)) = marks.iter().find(|(p, _, _)| *p == partition) else {
                return Ok(None);
            };
            if hi <= lo {
                return Ok(None);
            }
            let records = read_ranges(
                &client,
                &s.offsets_topic,
                &[(partition, lo, hi)],
                s.transaction_timeout * 2,
            )?;
            let mut last = None;
            for r in records {
                if r.key.as_deref() != Some(s.name.as_bytes()) {
                    continue;
                }
                match r
                    .payload
                    .as_deref()
                    .map(serde_json::from_slice::<CursorRecord>)
                {
                    Some(Ok(c)) => last = Some(c.cursor),
                    None => last = None, // a tombstone: the cursor was reset on purpose
                    Some(Err(e)) => {
                        return Err(BusError::Config(format!(
                            "source {}: unreadable cursor at {}[{}]@{}: {e}",
                            s.name, r.topic, r.partition, r.offset
                        )))
                    }
                }
            }
            Ok(last)
        })
        .await
        .map_err(|e| BusError::Config(format!("source {}: {e}", self.settings.name)))?
    }

    /// One transaction: the poll's records and the new cursor. `Ok(false)` when it had to be
    /// aborted (the poll is made again); an error when the producer is fenced or broken.
    async fn commit(
        &self,
        producer: &Arc<ThreadedProducer<DefaultProducerContext>>,
        partition: i32,
        polled: &Polled,
    ) -> Result<bool> {
        let s = self.settings.clone();
        let producer = producer.clone();
        let mut records = polled.records.clone();
        for r in &mut records {
            // A record continues the trace its app's change names (the hub's own write read
            // back), else starts one; with spans exported, its `<topic> create` span.
            let i = r.headers.iter().position(|(k, _)| k == TRACEPARENT);
            let parent = i
                .and_then(|i| r.headers[i].1.as_deref())
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(TraceParent::parse);
            let key = r.key.as_deref().map(String::from_utf8_lossy);
            let tp = crate::trace::create_span(
                &s.name,
                &r.topic,
                key.as_deref().unwrap_or_default(),
                parent.as_ref(),
            )
            .or(parent)
            .unwrap_or_else(TraceParent::new_root);
            let value = Some(tp.to_string().into_bytes());
            match i {
                Some(i) => r.headers[i].1 = value,
                None => r.headers.push((TRACEPARENT.into(), value)),
            }
        }
        let cursor = CursorRecord {
            source: s.name.clone(),
            cursor: polled.cursor.clone(),
            committed_at: chrono::Utc::now().to_rfc3339(),
        };
        let cursor = OutRecord {
            topic: s.offsets_topic.clone(),
            partition: Some(partition),
            key: Some(s.name.clone().into_bytes()),
            payload: Some(serde_json::to_vec(&cursor).unwrap_or_default()),
            headers: vec![(SOURCE_HEADER.into(), Some(s.name.clone().into_bytes()))],
        };
        tokio::task::spawn_blocking(move || -> Result<bool> {
            let timeout = s.transaction_timeout;
            let attempt = || -> Result<(), TxnFailure> {
                producer
                    .begin_transaction()
                    .map_err(|e| TxnFailure::Fatal(BusError::kafka("begin transaction", e)))?;
                for r in records.iter().chain(std::iter::once(&cursor)) {
                    send(&producer, r).map_err(classify)?;
                }
                retrying(|| crate::transactional::commit(&producer, timeout))
            };
            match attempt() {
                Ok(()) => Ok(true),
                Err(TxnFailure::Abort(why)) => {
                    warn!(source = %s.name, reason = %why, "source transaction aborted; polling again");
                    producer
                        .abort_transaction(timeout)
                        .map_err(|e| BusError::kafka("abort transaction", e))?;
                    Ok(false)
                }
                Err(TxnFailure::Fatal(e)) => Err(e),
            }
        })
        .await
        .map_err(|e| BusError::Config(format!("source {}: {e}", self.settings.name)))?
    }
}

/// Waits `wait`, cut short by shutdown or the loss of the lease; `false` if cut short.
async fn pause(
    wait: Duration,
    active: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> bool {
    let lost = async {
        loop {
            if !*active.borrow() {
                return;
            }
            if active.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
        _ = lost => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_always_lands_on_the_same_partition() {
        assert_eq!(cursor_partition("customers", 1), 0);
        let p = cursor_partition("customers", 25);
        assert!((0..25).contains(&p));
        assert_eq!(p, cursor_partition("customers", 25));
        assert_ne!(
            (0..8)
                .map(|i| cursor_partition(&format!("s{i}"), 25))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1,
            "names spread over partitions"
        );
    }
}
