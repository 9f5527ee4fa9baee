//! Reading the log for a reconciliation, with the audit crate's range reader: every
//! partition of the topics from the low watermark to the high watermark *at start* (so the
//! fold is of a fixed range), `read_committed`, partitions assigned under a throwaway group
//! that never joins and never commits — no consumer group is disturbed.

use std::collections::BTreeMap;
use std::time::Duration;

use l2f_audit::range::{resolve, Bound, PartitionRange};
use l2f_bus::reader::{reader_consumer, Isolation, RangeReader, Span};
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use rdkafka::message::Message;
use rdkafka::ClientConfig;

use crate::error::{ReconcileError, Result};
use crate::fold::{Fold, Origin};

/// The ranges read: every partition of `topics`, beginning to end as they are now.
pub fn ranges(
    client: &ClientConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<PartitionRange>> {
    let consumer = reader_consumer(client, Isolation::ReadCommitted)?;
    Ok(resolve(
        &consumer,
        topics,
        &Bound::Beginning,
        &Bound::End,
        timeout,
    )?)
}

fn origin_of<M: Message>(m: &M, ev: &AnyEvent) -> Origin {
    let env = ev.envelope();
    Origin {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        event_id: env.event_id,
        event_type: ev.name().to_string(),
        occurred_at: env.occurred_at,
        source: env.source,
    }
}

/// Folds `ranges` (one record at a time: only the state is held).
pub fn fold(client: &ClientConfig, ranges: &[PartitionRange], timeout: Duration) -> Result<Fold> {
    let spans: Vec<Span> = ranges.iter().map(PartitionRange::span).collect();
    let mut reader = RangeReader::new(client, &spans, Isolation::ReadCommitted, timeout)?;
    let codec = Codec::new();
    let mut f = Fold::new();
    while let Some(m) = reader.next_record() {
        let m = m?;
        match m.payload().map(|p| AnyEvent::decode(&codec, p)) {
            Some(Ok(ev)) => f.apply(&origin_of(&m, &ev), &ev),
            _ => f.undecodable += 1,
        }
    }
    Ok(f)
}

/// Re-reads the events at `origins` (for a repair), by event id. Each partition is read
/// from its first to its last wanted offset.
pub fn events_at(
    client: &ClientConfig,
    origins: &[Origin],
    timeout: Duration,
) -> Result<BTreeMap<uuid::Uuid, AnyEvent>> {
    let mut bounds: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for o in origins {
        let b = bounds
            .entry((o.topic.clone(), o.partition))
            .or_insert((o.offset, o.offset));
        b.0 = b.0.min(o.offset);
        b.1 = b.1.max(o.offset);
    }
    let spans: Vec<Span> = bounds
        .iter()
        .map(|((topic, partition), (lo, hi))| Span {
            topic: topic.clone(),
            partition: *partition,
            start: *lo,
            end: hi + 1,
        })
        .collect();
    let mut reader = RangeReader::new(client, &spans, Isolation::ReadCommitted, timeout)?;
    let codec = Codec::new();
    let mut out = BTreeMap::new();
    while let Some(m) = reader.next_record() {
        let m = m?;
        let wanted = origins.iter().any(|o| {
            o.topic == m.topic() && o.partition == m.partition() && o.offset == m.offset()
        });
        if !wanted {
            continue;
        }
        if let Some(Ok(ev)) = m.payload().map(|p| AnyEvent::decode(&codec, p)) {
            out.insert(ev.envelope().event_id, ev);
        }
    }
    for o in origins {
        if !out.contains_key(&o.event_id) {
            return Err(ReconcileError::Repair(format!(
                "the event {} at {} is no longer readable (compacted or expired?)",
                o.event_id,
                o.position()
            )));
        }
    }
    Ok(out)
}

/// The ids of the orders whose `OrderPlaced` was dead-lettered on `topic` (each dead letter
/// carries the record it refused); none while the topic does not exist.
pub fn rejected_orders(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeSet<String>> {
    let codec = Codec::new();
    let letters = match l2f_bus::reader::read_all(client, topic, timeout) {
        // No dead-letter topic yet: nothing was refused.
        Err(l2f_bus::BusError::UnknownTopic(_)) => return Ok(Default::default()),
        r => r?,
    };
    Ok(letters
        .into_iter()
        .filter_map(|r| match AnyEvent::decode(&codec, r.payload.as_deref()?) {
            Ok(AnyEvent::OrderPlaced(o)) => Some(o.order_id),
            _ => None,
        })
        .collect())
}
