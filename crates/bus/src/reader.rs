//! Reads a fixed range of a topic without joining a consumer group, so operators' tools
//! (dead-letter listing, replay, audits) never disturb the live groups.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::admin::watermarks_with;
use crate::error::{BusError, Result};
use crate::record::Record;

/// Every record of `topic` present when the call starts (low to high watermark of each
/// partition), in partition then offset order.
pub fn read_all(client: &ClientConfig, topic: &str, timeout: Duration) -> Result<Vec<Record>> {
    let consumer = reader(client)?;
    let marks = watermarks_with(&consumer, topic, timeout)?;
    let ranges: Vec<(i32, i64, i64)> = marks.into_iter().filter(|(_, lo, hi)| hi > lo).collect();
    read_ranges_with(&consumer, topic, &ranges, timeout)
}

/// A consumer that never joins or commits for a group, so reading disturbs nobody.
fn reader(client: &ClientConfig) -> Result<BaseConsumer> {
    let mut c = client.clone();
    c.set("group.id", format!("l2f-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    c.create().map_err(|e| BusError::kafka("create reader", e))
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
    read_ranges_with(&reader(client)?, topic, ranges, timeout)
}

fn read_ranges_with(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    timeout: Duration,
) -> Result<Vec<Record>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    let mut end: HashMap<i32, i64> = HashMap::new();
    for &(p, from, to) in ranges {
        tpl.add_partition_offset(topic, p, Offset::Offset(from))
            .map_err(|e| BusError::kafka("assign", e))?;
        end.insert(p, to);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| BusError::kafka(format!("assign {topic}"), e))?;
    let mut out: Vec<Record> = Vec::new();
    let mut pending: HashMap<i32, i64> = end.clone();
    let deadline = Instant::now() + timeout;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(BusError::Config(format!(
                "reading {topic}: timed out with partitions {:?} unfinished",
                pending.keys().collect::<Vec<_>>()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                // Transaction markers occupy offsets but are never delivered: a partition is
                // done once the consumer's position has passed its end.
                if let Ok(pos) = consumer.position() {
                    for e in pos.elements() {
                        if let (Offset::Offset(o), Some(&stop)) =
                            (e.offset(), end.get(&e.partition()))
                        {
                            if o >= stop {
                                pending.remove(&e.partition());
                            }
                        }
                    }
                }
            }
            Some(Err(e)) => return Err(BusError::kafka(format!("read {topic}"), e)),
            Some(Ok(m)) => {
                use rdkafka::Message;
                let p = m.partition();
                let Some(&stop) = end.get(&p) else { continue };
                if m.offset() < stop {
                    out.push(Record::from_message(&m));
                }
                if m.offset() + 1 >= stop {
                    pending.remove(&p);
                }
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}
