//! Reads fixed offset ranges of topics without joining a consumer group, so operators' tools
//! (dead-letter listing, replay, audits) never disturb the live groups.
//!
//! The reader *assigns* partitions (it never subscribes), so it is no member of any group and
//! triggers no rebalance; its group id is a fresh throwaway and it never commits, so no
//! group's offsets can move. [`RangeReader`] streams: it holds what librdkafka prefetches (bounded by
//! `queued.max.messages.kbytes`) and nothing more, whatever the range.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::admin::watermarks_with;
use crate::error::{BusError, Result};
use crate::record::Record;

/// Which records of transactional producers a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones): what consumers
    /// acting on the data see. Aborted records leave gaps in the offsets.
    #[default]
    ReadCommitted,
    /// Every record written, aborted transactions included (for forensics).
    ReadUncommitted,
}

impl Isolation {
    /// librdkafka's `isolation.level` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// One partition's offsets `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// First offset not to read.
    pub end: i64,
}

/// Prefetch settings of a reader, unless `kafka.properties` sets them. An assign-mode
/// consumer has one queue for all its partitions: past `queued.min.messages` librdkafka
/// backs off fetching for `fetch.queue.backoff.ms` (1 s by default), which left a
/// full-speed reader idle most of the time; 10 ms keeps it fed. The queue is capped at
/// 32 MB whatever the number of partitions, which bounds a reader's memory. (The three
/// properties: librdkafka's CONFIGURATION.md,
/// <https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md>.)
pub const READER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.queue.backoff.ms", "10"),
    ("queued.min.messages", "20000"),
    ("queued.max.messages.kbytes", "32768"),
];

/// A consumer that is no group member and never commits, so reading disturbs nobody.
///
/// librdkafka needs a `group.id` even to assign partitions, so each reader gets a fresh
/// throwaway one (`l2f-reader-<uuid>`) that never joins (no subscribe) and never commits
/// (auto-commit and offset storing off, no commit call): no group by that name ever exists
/// on the brokers. `isolation.level` is as asked.
pub fn reader_consumer(client: &ClientConfig, isolation: Isolation) -> Result<BaseConsumer> {
    let mut c = client.clone();
    c.set("group.id", format!("l2f-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation.as_librdkafka());
    for (key, value) in READER_DEFAULTS {
        if c.get(key).is_none() {
            c.set(*key, *value);
        }
    }
    c.create().map_err(|e| BusError::kafka("create reader", e))
}

/// The first offset of each partition whose timestamp is at or after `ts_ms`
/// (Kafka's ListOffsets by timestamp, as `offsetsForTimes`); `None` where no record is.
/// Semantics as Kafka documents them: "the earliest offset whose timestamp is greater than
/// or equal to the given timestamp in the corresponding partition"
/// (<https://kafka.apache.org/37/javadoc/org/apache/kafka/clients/admin/OffsetSpec.html>).
pub fn offsets_for_time<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    ts_ms: i64,
    timeout: Duration,
) -> Result<HashMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(ts_ms))
            .map_err(|e| BusError::kafka("offsets for times", e))?;
    }
    let got = consumer
        .offsets_for_times(tpl, timeout)
        .map_err(|e| BusError::kafka(format!("offsets for times of {topic}"), e))?;
    let mut out = HashMap::new();
    for e in got.elements() {
        if let Some(err) = e.error().err() {
            return Err(BusError::kafka(
                format!("offsets for times of {topic}/{}", e.partition()),
                err,
            ));
        }
        let o = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        out.insert(e.partition(), o);
    }
    Ok(out)
}

/// Streams the records of several [`Span`]s, each partition in offset order (partitions
/// interleave as the brokers answer), then ends.
///
/// A partition is finished when a record at or past its end arrives or the consumer's
/// position passes its end (transaction markers and compacted-away records occupy offsets
/// but are never delivered); it is then unassigned so nothing past it is fetched.
pub struct RangeReader {
    consumer: BaseConsumer,
    ends: HashMap<String, HashMap<i32, i64>>,
    pending: usize,
    idle_timeout: Duration,
    /// When the reader last went without a record (None while records flow: no clock
    /// read per record).
    idle_since: Option<Instant>,
}

impl RangeReader {
    /// Assigns every non-empty span. `idle_timeout` bounds how long the reader waits with
    /// no record and no position change before failing (not the whole read).
    pub fn new(
        client: &ClientConfig,
        spans: &[Span],
        isolation: Isolation,
        idle_timeout: Duration,
    ) -> Result<Self> {
        let consumer = reader_consumer(client, isolation)?;
        Self::with_consumer(consumer, spans, idle_timeout)
    }

    /// [`RangeReader::new`] over a consumer from [`reader_consumer`].
    pub fn with_consumer(
        consumer: BaseConsumer,
        spans: &[Span],
        idle_timeout: Duration,
    ) -> Result<Self> {
        let mut tpl = TopicPartitionList::new();
        let mut ends: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        let mut pending = 0;
        for s in spans.iter().filter(|s| s.end > s.start) {
            tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(s.start))
                .map_err(|e| BusError::kafka("assign", e))?;
            if ends
                .entry(s.topic.clone())
                .or_default()
                .insert(s.partition, s.end)
                .is_none()
            {
                pending += 1;
            }
        }
        if pending > 0 {
            consumer
                .assign(&tpl)
                .map_err(|e| BusError::kafka("assign ranges", e))?;
        }
        Ok(RangeReader {
            consumer,
            ends,
            pending,
            idle_timeout,
            idle_since: None,
        })
    }

    /// Partitions not yet finished.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The next record of the ranges, `None` once every partition is finished.
    pub fn next_record(&mut self) -> Option<Result<BorrowedMessage<'_>>> {
        let RangeReader {
            consumer,
            ends,
            pending,
            idle_timeout,
            idle_since,
        } = self;
        loop {
            if *pending == 0 {
                return None;
            }
            if idle_since.is_some_and(|t| t.elapsed() > *idle_timeout) {
                let mut left: Vec<String> = ends
                    .iter()
                    .flat_map(|(t, ps)| ps.keys().map(move |p| format!("{t}/{p}")))
                    .collect();
                left.sort();
                *pending = 0;
                return Some(Err(BusError::Config(format!(
                    "reading ranges: no progress for {idle_timeout:?} with partitions {} unfinished",
                    left.join(", ")
                ))));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {
                    if finish_by_position(consumer, ends, pending) {
                        *idle_since = None;
                    } else {
                        idle_since.get_or_insert_with(Instant::now);
                    }
                }
                Some(Err(e)) => return Some(Err(BusError::kafka("read ranges", e))),
                Some(Ok(m)) => {
                    let Some(&stop) = ends.get(m.topic()).and_then(|p| p.get(&m.partition()))
                    else {
                        continue;
                    };
                    *idle_since = None;
                    if m.offset() + 1 >= stop {
                        finish(consumer, ends, pending, m.topic(), m.partition());
                    }
                    if m.offset() < stop {
                        return Some(Ok(m));
                    }
                }
            }
        }
    }
}

type Ends = HashMap<String, HashMap<i32, i64>>;

/// Marks a partition finished and unassigns it, so nothing past its end is fetched.
fn finish(consumer: &BaseConsumer, ends: &mut Ends, pending: &mut usize, topic: &str, p: i32) {
    if let Some(parts) = ends.get_mut(topic) {
        if parts.remove(&p).is_some() {
            *pending -= 1;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, p);
            // Only saves fetching; the read is correct without it.
            let _ = consumer.incremental_unassign(&tpl);
        }
    }
}

/// Finishes the partitions whose position passed their end; whether any did.
fn finish_by_position(consumer: &BaseConsumer, ends: &mut Ends, pending: &mut usize) -> bool {
    let Ok(pos) = consumer.position() else {
        return false;
    };
    let mut done = Vec::new();
    for e in pos.elements() {
        if let (Offset::Offset(o), Some(&stop)) = (
            e.offset(),
            ends.get(e.topic()).and_then(|p| p.get(&e.partition())),
        ) {
            if o >= stop {
                done.push((e.topic().to_string(), e.partition()));
            }
        }
    }
    for (t, p) in &done {
        finish(consumer, ends, pending, t, *p);
    }
    !done.is_empty()
}

/// Every record of `topic` present when the call starts (low to high watermark of each
/// partition), in partition then offset order. `timeout` bounds a wait with no progress.
pub fn read_all(client: &ClientConfig, topic: &str, timeout: Duration) -> Result<Vec<Record>> {
    let consumer = reader_consumer(client, Isolation::ReadCommitted)?;
    let marks = watermarks_with(&consumer, topic, timeout)?;
    let spans: Vec<Span> = marks
        .into_iter()
        .filter(|(_, lo, hi)| hi > lo)
        .map(|(partition, start, end)| Span {
            topic: topic.to_string(),
            partition,
            start,
            end,
        })
        .collect();
    collect(RangeReader::with_consumer(consumer, &spans, timeout)?)
}

/// Records of `topic` in `[from, to)` for each `(partition, from, to)`.
pub fn read_ranges(
    client: &ClientConfig,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    timeout: Duration,
) -> Result<Vec<Record>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let spans: Vec<Span> = ranges
        .iter()
        .map(|&(partition, start, end)| Span {
            topic: topic.to_string(),
            partition,
            start,
            end,
        })
        .collect();
    collect(RangeReader::new(
        client,
        &spans,
        Isolation::ReadCommitted,
        timeout,
    )?)
}

fn collect(mut reader: RangeReader) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    while let Some(m) = reader.next_record() {
        out.push(Record::from_message(&m?));
    }
    out.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    Ok(out)
}
