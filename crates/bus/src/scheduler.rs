//! A keyed scheduler: state per key, changed by records and by time, kept in a compacted
//! changelog topic — what the renewal-notice scheduler runs on.
//!
//! **Guarantee: each output exactly once, across restarts and rebalances**, for
//! `read_committed` readers. Every change of a key's state (a changelog record on the
//! partition of the input partition it belongs to) is committed in one Kafka transaction with
//! the outputs that change caused and the input offsets it consumed — whether a record or the
//! clock caused it. A restarted or new owner of a partition rebuilds that partition's state
//! from its changelog partition before it handles anything, so a notice recorded as sent is
//! never sent again and one not recorded is sent once. It rests on the changelog having as
//! many partitions as the input and on input keys being the state keys.
//!
//! **Zombies are fenced** (KIP-447): every transaction, even one the clock caused, sends the
//! consumer group's metadata with the offsets of every owned partition, so an instance that
//! lost a partition to a rebalance cannot commit for it any more.
//!
//! **It scales as a consumer group**: an instance holds the state and timers of the partitions
//! it owns only; timers sit in a per-partition index by due time, so a tick looks at what is
//! due, not at every key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::SharedClock;
use crate::dlq::letter;
use crate::error::{BusError, HandlerError, Result};
use crate::headers::{TraceParent, TRACEPARENT};
use crate::reader::read_ranges;
use crate::record::{OutRecord, Record};
use crate::transactional::{classify, retrying, send, TxnFailure};

/// How a step changes a key's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<S> {
    /// Leave it as it is.
    Keep,
    /// Replace it.
    Set(S),
    /// Forget the key (a tombstone in the changelog).
    Delete,
}

/// What a record or the clock did to one key: its new state and the records to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<S> {
    /// The state change.
    pub change: Change<S>,
    /// Records to produce with it, in the same transaction.
    pub out: Vec<OutRecord>,
}

impl<S> Step<S> {
    /// Nothing changes.
    pub fn keep() -> Self {
        Step {
            change: Change::Keep,
            out: Vec::new(),
        }
    }
}

/// The logic of a scheduler: pure functions of a key's state, the record or the time.
pub trait Schedule: Send + 'static {
    /// The state kept per key (serialized as JSON in the changelog).
    type State: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// A record for `key` arrived; `now` is the clock's time. A permanent error dead-letters
    /// the record (inside the same transaction); any other error aborts and retries the batch.
    fn on_record(
        &mut self,
        key: &str,
        state: Option<&Self::State>,
        record: &Record,
        now: DateTime<Utc>,
    ) -> Result<Step<Self::State>, HandlerError>;

    /// The key's next due time came (`now` is at or after it).
    fn on_due(&mut self, key: &str, state: &Self::State, now: DateTime<Utc>) -> Step<Self::State>;

    /// When [`Schedule::on_due`] should next be called for this state, if ever.
    fn next_due(&self, state: &Self::State) -> Option<DateTime<Utc>>;
}

/// What a scheduler reads and writes.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Consumer group of the scheduler's instances.
    pub group_id: String,
    /// Input topics (keyed like the state).
    pub input_topics: Vec<String>,
    /// The compacted changelog: as many partitions as the input.
    pub changelog_topic: String,
    /// Transactional id prefix; each instance adds its own suffix (fencing is by group
    /// generation, KIP-447, so ids need not be stable).
    pub transactional_id: String,
    /// Dead-letter topic for records the schedule rejects.
    pub dead_letter_topic: String,
    /// How often the clock is looked at when no record arrives.
    pub tick: Duration,
    /// Most input records in one transaction.
    pub batch_size: usize,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// Broker-side transaction timeout.
    pub transaction_timeout: Duration,
}

impl SchedulerSettings {
    /// Defaults: a 200 ms tick, batches of up to 500 records, 10 s session, 30 s transactions.
    pub fn new(group_id: &str, input: &str, changelog: &str, dead_letter_topic: &str) -> Self {
        SchedulerSettings {
            group_id: group_id.into(),
            input_topics: vec![input.into()],
            changelog_topic: changelog.into(),
            transactional_id: group_id.into(),
            dead_letter_topic: dead_letter_topic.into(),
            tick: Duration::from_millis(200),
            batch_size: 500,
            session_timeout: Duration::from_secs(10),
            transaction_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of a running scheduler.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStats(Arc<Mutex<Counts>>);

/// A snapshot of [`SchedulerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Input records handled.
    pub records: u64,
    /// Timers that fired.
    pub fired: u64,
    /// Records produced (outputs, not changelog).
    pub produced: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions aborted.
    pub aborted: u64,
    /// Keys whose state this instance holds now.
    pub keys: u64,
    /// Partitions restored from the changelog.
    pub restored_partitions: u64,
}

impl SchedulerStats {
    /// The counters now.
    pub fn get(&self) -> Counts {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

type Tp = (String, i32);

#[derive(Default)]
struct Pending {
    assigned: Vec<Tp>,
    revoked: Vec<Tp>,
}

struct Ctx {
    pending: Mutex<Pending>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.revoked.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.assigned.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
        }
    }
}

/// The state and timers of one owned input partition.
struct Part<S> {
    states: HashMap<String, S>,
    /// (due millis, key)
    timers: BTreeSet<(i64, String)>,
    due_of: HashMap<String, i64>,
    /// Next input offset to consume (committed with every transaction), if known.
    next_offset: Option<i64>,
}

impl<S> Default for Part<S> {
    fn default() -> Self {
        Part {
            states: HashMap::new(),
            timers: BTreeSet::new(),
            due_of: HashMap::new(),
            next_offset: None,
        }
    }
}

impl<S: Clone> Part<S> {
    fn set(&mut self, key: &str, state: Option<S>, due: Option<DateTime<Utc>>) {
        if let Some(old) = self.due_of.remove(key) {
            self.timers.remove(&(old, key.to_string()));
        }
        match state {
            Some(s) => {
                self.states.insert(key.to_string(), s);
                if let Some(d) = due {
                    let d = d.timestamp_millis();
                    self.timers.insert((d, key.to_string()));
                    self.due_of.insert(key.to_string(), d);
                }
            }
            None => {
                self.states.remove(key);
            }
        }
    }
}

/// A keyed scheduler on the cluster of `client`.
pub struct KeyedScheduler<L: Schedule> {
    client: ClientConfig,
    settings: SchedulerSettings,
    logic: L,
    clock: SharedClock,
    stats: SchedulerStats,
    parts: BTreeMap<Tp, Part<L::State>>,
}

impl<L: Schedule> KeyedScheduler<L> {
    /// A scheduler running `logic` on `clock`'s time.
    pub fn new(
        client: &ClientConfig,
        settings: SchedulerSettings,
        logic: L,
        clock: SharedClock,
    ) -> Self {
        KeyedScheduler {
            client: client.clone(),
            settings,
            logic,
            clock,
            stats: SchedulerStats::default(),
            parts: BTreeMap::new(),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> SchedulerStats {
        self.stats.clone()
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let _stop_on_drop = shutdown.clone().drop_guard();
        tokio::task::spawn_blocking(move || self.run_blocking(shutdown))
            .await
            .map_err(|e| BusError::Config(format!("scheduler thread failed: {e}")))?
    }

    fn run_blocking(mut self, shutdown: CancellationToken) -> Result<()> {
        let s = self.settings.clone();
        let timeout = s.transaction_timeout;
        let mut pc = self.client.clone();
        pc.set(
            "transactional.id",
            format!("{}-{}", s.transactional_id, uuid::Uuid::new_v4().simple()),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("transaction.timeout.ms", timeout.as_millis().to_string());
        let producer: ThreadedProducer<DefaultProducerContext> = pc
            .create()
            .map_err(|e| BusError::kafka("create scheduler producer", e))?;
        producer
            .init_transactions(timeout)
            .map_err(|e| BusError::kafka("init scheduler transactions", e))?;
        let mut cc = self.client.clone();
        cc.set("group.id", &s.group_id)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                s.session_timeout.as_millis().to_string(),
            );
        let consumer: BaseConsumer<Ctx> = cc
            .create_with_context(Ctx {
                pending: Mutex::new(Pending::default()),
            })
            .map_err(|e| BusError::kafka("create scheduler consumer", e))?;
        let topics: Vec<&str> = s.input_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| BusError::kafka(format!("subscribe to {topics:?}"), e))?;
        info!(group = %s.group_id, changelog = %s.changelog_topic, "scheduler started");
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let mut batch = self.collect(&consumer, &shutdown);
            self.apply_rebalances(&consumer, &mut batch)?;
            let now = self.clock.now();
            let due = self.has_due(now);
            if batch.is_empty() && !due {
                continue;
            }
            match self.transact(&producer, &consumer, &batch, now, timeout) {
                Ok(()) => pause = Duration::from_millis(100),
                Err(TxnFailure::Abort(why)) => {
                    warn!(reason = %why, records = batch.len(), "scheduler transaction aborted; retrying");
                    producer
                        .abort_transaction(timeout)
                        .map_err(|e| BusError::kafka("abort transaction", e))?;
                    self.stats.update(|c| c.aborted += 1);
                    // The in-memory state ran ahead of the aborted transaction: rebuild it.
                    let owned: Vec<Tp> = self.parts.keys().cloned().collect();
                    for tp in owned {
                        self.restore(&consumer, &tp)?;
                    }
                    rewind(&consumer, &batch);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(TxnFailure::Fatal(e)) => return Err(e),
            }
        }
        info!(group = %s.group_id, "scheduler stopped");
        Ok(())
    }

    fn has_due(&self, now: DateTime<Utc>) -> bool {
        let now = now.timestamp_millis();
        self.parts
            .values()
            .any(|p| p.timers.first().is_some_and(|(d, _)| *d <= now))
    }

    fn collect(&self, consumer: &BaseConsumer<Ctx>, shutdown: &CancellationToken) -> Vec<Record> {
        let mut batch = Vec::new();
        let deadline = Instant::now() + self.settings.tick;
        while batch.len() < self.settings.batch_size && !shutdown.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match consumer.poll(left) {
                None => break,
                Some(Err(e)) => warn!(error = %e, "scheduler consumer error"),
                Some(Ok(m)) => batch.push(Record::from_message(&m)),
            }
        }
        batch
    }

    /// Drops the state of revoked partitions (and their records from `batch`), rebuilds the
    /// state of newly assigned ones from the changelog.
    fn apply_rebalances(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        batch: &mut Vec<Record>,
    ) -> Result<()> {
        let Pending { assigned, revoked } = std::mem::take(
            &mut *consumer
                .context()
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for tp in &revoked {
            self.parts.remove(tp);
        }
        if !revoked.is_empty() {
            let owned: BTreeSet<Tp> = consumer
                .assignment()
                .map(|t| {
                    t.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            batch.retain(|r| owned.contains(&(r.topic.clone(), r.partition)));
            info!(
                partitions = revoked.len(),
                "scheduler partitions revoked; their state dropped"
            );
        }
        for tp in assigned {
            self.restore(consumer, &tp)?;
        }
        self.stats
            .update(|c| c.keys = self.parts.values().map(|p| p.states.len() as u64).sum());
        Ok(())
    }

    /// Rebuilds one partition's state and timers from its changelog partition.
    fn restore(&mut self, consumer: &BaseConsumer<Ctx>, tp: &Tp) -> Result<()> {
        let s = &self.settings;
        let changelog = &s.changelog_topic;
        let (lo, hi) =
            crate::admin::partition_watermarks(consumer, changelog, tp.1, Duration::from_secs(10))?;
        let mut part: Part<L::State> = Part::default();
        if hi > lo {
            for r in read_ranges(
                &self.client,
                changelog,
                &[(tp.1, lo, hi)],
                s.transaction_timeout * 2,
            )? {
                let key = r.key_str();
                let state = match r.payload.as_deref() {
                    None => None,
                    Some(bytes) => {
                        Some(serde_json::from_slice::<L::State>(bytes).map_err(|e| {
                            BusError::Config(format!(
                                "changelog {changelog}[{}]@{}: unreadable state for key {key}: {e}",
                                r.partition, r.offset
                            ))
                        })?)
                    }
                };
                let due = state.as_ref().and_then(|st| self.logic.next_due(st));
                part.set(&key, state, due);
            }
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.0, tp.1);
        let c = crate::admin::committed_offsets(consumer, tpl, Duration::from_secs(30))?;
        part.next_offset = c.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        });
        info!(topic = %tp.0, partition = tp.1, keys = part.states.len(), "scheduler state restored from the changelog");
        self.parts.insert(tp.clone(), part);
        self.stats.update(|c| c.restored_partitions += 1);
        Ok(())
    }

    fn changelog_record(&self, partition: i32, key: &str, state: Option<&L::State>) -> OutRecord {
        OutRecord {
            topic: self.settings.changelog_topic.clone(),
            partition: Some(partition),
            key: Some(key.as_bytes().to_vec()),
            payload: state.map(|s| serde_json::to_vec(s).unwrap_or_default()),
            headers: vec![],
        }
    }

    /// Applies a step to a key: the in-memory state and timer, and the records to produce.
    fn apply(
        &mut self,
        tp: &Tp,
        key: &str,
        step: Step<L::State>,
        out: &mut Vec<OutRecord>,
    ) -> usize {
        let produced = step.out.len();
        let new = match step.change {
            Change::Keep => {
                out.extend(step.out);
                return produced;
            }
            Change::Set(s) => Some(s),
            Change::Delete => None,
        };
        let due = new.as_ref().and_then(|s| self.logic.next_due(s));
        out.push(self.changelog_record(tp.1, key, new.as_ref()));
        out.extend(step.out);
        if let Some(p) = self.parts.get_mut(tp) {
            p.set(key, new, due);
        }
        produced
    }

    fn transact(
        &mut self,
        producer: &ThreadedProducer<DefaultProducerContext>,
        consumer: &BaseConsumer<Ctx>,
        batch: &[Record],
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<(), TxnFailure> {
        producer
            .begin_transaction()
            .map_err(|e| TxnFailure::Fatal(BusError::kafka("begin transaction", e)))?;
        let mut out = Vec::new();
        let (mut produced, mut fired) = (0u64, 0u64);
        for rec in batch {
            let tp = (rec.topic.clone(), rec.partition);
            if !self.parts.contains_key(&tp) {
                continue;
            }
            let key = rec.key_str();
            let state = self.parts[&tp].states.get(&key).cloned();
            match self.logic.on_record(&key, state.as_ref(), rec, now) {
                Ok(step) => produced += self.apply(&tp, &key, step, &mut out) as u64,
                Err(e @ HandlerError::Permanent { .. }) => out.push(letter(
                    rec,
                    &e,
                    1,
                    &self.settings.dead_letter_topic,
                    &self.settings.group_id,
                )),
                Err(e) => return Err(TxnFailure::Abort(e.to_string())),
            }
            if let Some(p) = self.parts.get_mut(&tp) {
                p.next_offset = Some(rec.offset + 1);
            }
        }
        let now_ms = now.timestamp_millis();
        let owned: Vec<Tp> = self.parts.keys().cloned().collect();
        for tp in owned {
            while let Some((due, key)) = self.parts[&tp].timers.first().cloned() {
                if due > now_ms {
                    break;
                }
                let Some(state) = self.parts[&tp].states.get(&key).cloned() else {
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.timers.remove(&(due, key.clone()));
                        p.due_of.remove(&key);
                    }
                    continue;
                };
                let step = self.logic.on_due(&key, &state, now);
                fired += 1;
                let unchanged = matches!(step.change, Change::Keep);
                produced += self.apply(&tp, &key, step, &mut out) as u64;
                // A step that keeps the state must still move its timer past now: to the
                // state's next due time if that is later, else nowhere (no busy loop).
                if unchanged {
                    let next = self
                        .logic
                        .next_due(&state)
                        .map(|d| d.timestamp_millis())
                        .filter(|d| *d > now_ms);
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.timers.remove(&(due, key.clone()));
                        p.due_of.remove(&key);
                        if let Some(d) = next {
                            p.timers.insert((d, key.clone()));
                            p.due_of.insert(key.clone(), d);
                        }
                    }
                }
            }
        }
        for r in &mut out {
            if r.topic != self.settings.changelog_topic && !r.has_header(TRACEPARENT) {
                r.headers.push((
                    TRACEPARENT.into(),
                    Some(TraceParent::new_root().to_string().into_bytes()),
                ));
            }
            send(producer, r).map_err(classify)?;
        }
        // Every owned partition's position goes with every transaction: the group generation
        // check fences an instance that lost its partitions (KIP-447).
        let mut offsets = TopicPartitionList::new();
        for ((t, p), part) in &self.parts {
            if let Some(o) = part.next_offset {
                offsets
                    .add_partition_offset(t, *p, Offset::Offset(o))
                    .map_err(|e| TxnFailure::Fatal(BusError::kafka("offsets", e)))?;
            }
        }
        if offsets.count() > 0 {
            let meta = consumer
                .group_metadata()
                .ok_or_else(|| TxnFailure::Abort("no group metadata yet".into()))?;
            retrying(|| producer.send_offsets_to_transaction(&offsets, &meta, timeout))?;
        }
        retrying(|| crate::transactional::commit(producer, timeout))?;
        let keys = self.parts.values().map(|p| p.states.len() as u64).sum();
        let records = batch.len() as u64;
        self.stats.update(|c| {
            c.records += records;
            c.fired += fired;
            c.produced += produced;
            c.transactions += 1;
            c.keys = keys;
        });
        Ok(())
    }
}

/// Moves each partition of `batch` back to its first offset in the batch, so an aborted
/// batch is read again.
fn rewind<C: ConsumerContext>(consumer: &BaseConsumer<C>, batch: &[Record]) {
    let mut first: BTreeMap<Tp, i64> = BTreeMap::new();
    for r in batch {
        first
            .entry((r.topic.clone(), r.partition))
            .or_insert(r.offset);
    }
    for ((t, p), o) in first {
        if let Err(e) = consumer.seek(&t, p, Offset::Offset(o), Duration::from_secs(5)) {
            warn!(topic = %t, partition = p, error = %e, "rewind skipped");
        }
    }
}
