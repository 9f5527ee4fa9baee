//! A Kafka-to-Kafka stage with exactly-once semantics: consume a batch, transform it, produce
//! the results and commit the input offsets **in one transaction**.
//!
//! **Guarantee:** a `read_committed` reader of the output sees each input record's results
//! exactly once, in input order per partition — whatever kills the stage and when. It rests on
//! the transactional id being stable across restarts of the same stage instance: a restarted
//! instance fences its predecessor, whose open transaction the broker then aborts. Records the
//! transform rejects permanently go to the dead-letter topic inside the same transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::dlq::letter;
use crate::error::{BusError, HandlerError, Result};
use crate::record::{OutRecord, Record};

/// A pure mapping from one input record to the records it produces.
pub trait Transform: Send + 'static {
    /// Maps `record`; a permanent error dead-letters it, a transient one aborts the batch and
    /// retries it after a pause.
    fn transform(&mut self, record: &Record) -> Result<Vec<OutRecord>, HandlerError>;
}

impl<F> Transform for F
where
    F: FnMut(&Record) -> Result<Vec<OutRecord>, HandlerError> + Send + 'static,
{
    fn transform(&mut self, record: &Record) -> Result<Vec<OutRecord>, HandlerError> {
        self(record)
    }
}

/// What a stage reads, where it writes its dead letters, and how it batches.
#[derive(Debug, Clone)]
pub struct StageSettings {
    /// Consumer group of the stage's instances.
    pub group_id: String,
    /// Input topics.
    pub input_topics: Vec<String>,
    /// Stable per instance (e.g. `<stage>-<ordinal>`), so a restart fences the old instance.
    pub transactional_id: String,
    /// Dead-letter topic for records the transform rejects.
    pub dead_letter_topic: String,
    /// Most records in one transaction.
    pub batch_size: usize,
    /// Longest wait to fill a batch once its first record arrived.
    pub batch_linger: Duration,
    /// Broker-side transaction timeout: an abandoned transaction is aborted after this.
    pub transaction_timeout: Duration,
    /// Group session timeout: how soon a dead instance's partitions move on.
    pub session_timeout: Duration,
    /// Tries of a record whose transform fails transiently before it is dead-lettered.
    pub max_transform_attempts: u32,
}

impl StageSettings {
    /// Defaults for a stage: batches of up to 500 records or 100 ms, 30 s transactions.
    pub fn new(
        group_id: &str,
        input: &str,
        transactional_id: &str,
        dead_letter_topic: &str,
    ) -> Self {
        StageSettings {
            group_id: group_id.into(),
            input_topics: vec![input.into()],
            transactional_id: transactional_id.into(),
            dead_letter_topic: dead_letter_topic.into(),
            batch_size: 500,
            batch_linger: Duration::from_millis(100),
            transaction_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            max_transform_attempts: 5,
        }
    }
}

/// Counters of a running stage.
#[derive(Debug, Clone, Default)]
pub struct StageStats(Arc<[AtomicU64; 4]>);

impl StageStats {
    /// Transactions committed.
    pub fn committed(&self) -> u64 {
        self.0[0].load(Ordering::Relaxed)
    }
    /// Input records committed.
    pub fn records_in(&self) -> u64 {
        self.0[1].load(Ordering::Relaxed)
    }
    /// Output records committed (dead letters included).
    pub fn records_out(&self) -> u64 {
        self.0[2].load(Ordering::Relaxed)
    }
    /// Transactions aborted and retried.
    pub fn aborted(&self) -> u64 {
        self.0[3].load(Ordering::Relaxed)
    }
    fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Ordering::Relaxed);
    }
}

struct StageCtx {
    rebalances: AtomicU64,
}

impl ClientContext for StageCtx {}

impl ConsumerContext for StageCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

/// A transactional consume-transform-produce stage.
pub struct TransactionalStage<T> {
    client: ClientConfig,
    settings: StageSettings,
    transform: T,
    stats: StageStats,
    transient_failures: HashMap<(String, i32, i64), u32>,
}

pub(crate) enum TxnFailure {
    /// Abort, rewind and try the batch again.
    Abort(String),
    /// The producer is fenced or broken: stop (a restart recovers).
    Fatal(BusError),
}

impl<T: Transform> TransactionalStage<T> {
    /// A stage on the cluster of `client`.
    pub fn new(client: &ClientConfig, settings: StageSettings, transform: T) -> Self {
        TransactionalStage {
            client: client.clone(),
            settings,
            transform,
            stats: StageStats::default(),
            transient_failures: HashMap::new(),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> StageStats {
        self.stats.clone()
    }

    /// Runs until `shutdown`; the open transaction (if any) is finished first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        // A dropped future stops the stage thread instead of leaving it running.
        let _stop_on_drop = shutdown.clone().drop_guard();
        tokio::task::spawn_blocking(move || self.run_blocking(shutdown))
            .await
            .map_err(|e| BusError::Config(format!("stage thread failed: {e}")))?
    }

    fn run_blocking(mut self, shutdown: CancellationToken) -> Result<()> {
        let s = self.settings.clone();
        let timeout = s.transaction_timeout;
        let mut pc = self.client.clone();
        pc.set("transactional.id", &s.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("transaction.timeout.ms", timeout.as_millis().to_string());
        let producer: ThreadedProducer<DefaultProducerContext> = pc
            .create()
            .map_err(|e| BusError::kafka("create transactional producer", e))?;
        producer.init_transactions(timeout).map_err(|e| {
            BusError::kafka(format!("init transactions for {}", s.transactional_id), e)
        })?;
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
        for (key, value) in crate::consumer::PREFETCH_DEFAULTS {
            if cc.get(key).is_none() {
                cc.set(*key, *value);
            }
        }
        let consumer: BaseConsumer<StageCtx> = cc
            .create_with_context(StageCtx {
                rebalances: AtomicU64::new(0),
            })
            .map_err(|e| BusError::kafka("create stage consumer", e))?;
        let topics: Vec<&str> = s.input_topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| BusError::kafka(format!("subscribe to {topics:?}"), e))?;
        info!(transactional_id = %s.transactional_id, "transactional stage started");
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let generation = consumer.context().rebalances.load(Ordering::SeqCst);
            let batch = collect(&consumer, &s, &shutdown)?;
            if batch.is_empty() {
                continue;
            }
            if consumer.context().rebalances.load(Ordering::SeqCst) != generation {
                // Partitions moved while the batch filled: start over from the new assignment.
                rewind(&consumer, &batch);
                continue;
            }
            match self.transact(&producer, &consumer, &batch, timeout) {
                Ok(out) => {
                    self.stats.add(0, 1);
                    self.stats.add(1, batch.len() as u64);
                    self.stats.add(2, out);
                    pause = Duration::from_millis(100);
                }
                Err(TxnFailure::Abort(why)) => {
                    warn!(reason = %why, records = batch.len(), "transaction aborted; retrying the batch");
                    if let Err(e) = producer.abort_transaction(timeout) {
                        return Err(BusError::kafka("abort transaction", e));
                    }
                    self.stats.add(3, 1);
                    rewind(&consumer, &batch);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(TxnFailure::Fatal(e)) => return Err(e),
            }
        }
        info!("transactional stage stopped");
        Ok(())
    }

    /// One transaction over `batch`; returns the number of records produced.
    fn transact(
        &mut self,
        producer: &ThreadedProducer<DefaultProducerContext>,
        consumer: &BaseConsumer<StageCtx>,
        batch: &[Record],
        timeout: Duration,
    ) -> Result<u64, TxnFailure> {
        producer
            .begin_transaction()
            .map_err(|e| TxnFailure::Fatal(BusError::kafka("begin transaction", e)))?;
        let mut produced = 0u64;
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for rec in batch {
            let outs = match self.transform.transform(rec) {
                Ok(outs) => outs,
                Err(e @ HandlerError::Permanent { .. }) => vec![letter(
                    rec,
                    &e,
                    1,
                    &self.settings.dead_letter_topic,
                    &self.settings.group_id,
                )],
                Err(e @ HandlerError::Unavailable { .. }) => {
                    // The app the transform consults is down: never dead-letter for that;
                    // abort and retry the batch after the pause, without limit.
                    return Err(TxnFailure::Abort(e.to_string()));
                }
                Err(e) => {
                    // A record that keeps failing transiently must not stall its partition
                    // forever: after `max_transform_attempts` it is dead-lettered like a
                    // permanent failure.
                    let pos = (rec.topic.clone(), rec.partition, rec.offset);
                    let n = self.transient_failures.entry(pos.clone()).or_default();
                    *n += 1;
                    if *n < self.settings.max_transform_attempts {
                        return Err(TxnFailure::Abort(e.to_string()));
                    }
                    let attempts = *n;
                    self.transient_failures.remove(&pos);
                    vec![letter(
                        rec,
                        &e,
                        attempts,
                        &self.settings.dead_letter_topic,
                        &self.settings.group_id,
                    )]
                }
            };
            for out in &outs {
                send(producer, out).map_err(classify)?;
                produced += 1;
            }
            next.insert((rec.topic.clone(), rec.partition), rec.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((t, p), o) in &next {
            offsets
                .add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| TxnFailure::Fatal(BusError::kafka("offsets", e)))?;
        }
        let meta = consumer
            .group_metadata()
            .ok_or_else(|| TxnFailure::Abort("no group metadata yet".into()))?;
        retrying(|| producer.send_offsets_to_transaction(&offsets, &meta, timeout))?;
        retrying(|| commit(producer, timeout))?;
        self.transient_failures.clear();
        Ok(produced)
    }
}

/// Sorts a client error: fatal (fenced, broken producer) stops the stage; one that requires
/// an abort aborts and retries the batch; any other transaction error — a retriable one that
/// kept failing, whose outcome librdkafka will not let us abort — stops the stage too, and the
/// restart's fencing settles it. Errors outside the transaction API (a rejected send) abort.
pub(crate) fn classify(e: KafkaError) -> TxnFailure {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => {
            TxnFailure::Fatal(BusError::kafka("transaction", e))
        }
        KafkaError::Transaction(t) if t.txn_requires_abort() => TxnFailure::Abort(e.to_string()),
        KafkaError::Transaction(_) => TxnFailure::Fatal(BusError::kafka("transaction", e)),
        _ => TxnFailure::Abort(e.to_string()),
    }
}

/// Commits the open transaction once [`crate::producer::flush`] has seen every record
/// delivered (see there for why not rust-rdkafka's `commit_transaction` alone).
pub(crate) fn commit(
    producer: &ThreadedProducer<DefaultProducerContext>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    crate::producer::flush(producer, timeout)?;
    producer.commit_transaction(timeout)
}

/// Calls a transaction API again while librdkafka says the same call may be retried
/// (a coordinator timeout, say), as its documentation asks; aborting then would conflict.
pub(crate) fn retrying(mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), TxnFailure> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        match call() {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(t))
                if t.is_retriable() && !t.txn_requires_abort() && attempt < ATTEMPTS =>
            {
                warn!(error = %t, attempt, "transaction call failed transiently; retrying it");
                std::thread::sleep(Duration::from_millis(200) * attempt);
            }
            Err(e) => return Err(classify(e)),
        }
    }
    Err(TxnFailure::Abort("unreachable: retries exhausted".into()))
}

pub(crate) fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    out: &OutRecord,
) -> Result<(), KafkaError> {
    let headers = out.owned_headers();
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&out.topic).headers(headers);
    if let Some(k) = &out.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(p) = &out.payload {
        rec = rec.payload(p.as_slice());
    }
    if let Some(p) = out.partition {
        rec = rec.partition(p);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn collect(
    consumer: &BaseConsumer<StageCtx>,
    s: &StageSettings,
    shutdown: &CancellationToken,
) -> Result<Vec<Record>> {
    let mut batch = Vec::new();
    let mut first: Option<Instant> = None;
    while batch.len() < s.batch_size && !shutdown.is_cancelled() {
        let wait = match first {
            None => Duration::from_millis(100),
            Some(t) => match s.batch_linger.checked_sub(t.elapsed()) {
                Some(left) => left,
                None => break,
            },
        };
        match consumer.poll(wait) {
            None if first.is_none() => return Ok(batch),
            None => {}
            Some(Err(e)) => warn!(error = %e, "stage consumer error"),
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                batch.push(Record::from_message(&m));
            }
        }
    }
    Ok(batch)
}

/// Moves each partition of `batch` back to the batch's first offset on it, so an aborted or
/// discarded batch is read again.
fn rewind(consumer: &BaseConsumer<StageCtx>, batch: &[Record]) {
    let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for r in batch {
        first
            .entry((r.topic.clone(), r.partition))
            .or_insert(r.offset);
    }
    for ((t, p), o) in first {
        if let Err(e) = consumer.seek(&t, p, Offset::Offset(o), Duration::from_secs(5)) {
            // Not assigned any more: its new owner reads from the committed offset.
            warn!(topic = %t, partition = p, error = %e, "rewind skipped");
        }
    }
}
