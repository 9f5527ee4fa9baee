//! The replay summary: counts per event type and partition, offset gaps, first and last
//! offsets and timestamps, and the digest ([`crate::digest`]).
//!
//! A *gap* is a run of offsets inside the range that the broker did not deliver: records
//! removed by compaction or retention, transaction markers (one offset after each
//! transaction) and, under read_committed, records of aborted transactions. Filtered-out
//! records were delivered, so they are counted as `skipped`, not as gaps. At most
//! [`GAPS_LISTED`] gaps are listed per partition; all are counted.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::digest::{self, PartitionChain, RecordBytes};
use crate::range::PartitionRange;

/// How many gaps are listed per partition (all are counted).
pub const GAPS_LISTED: usize = 100;

/// What a replay read and exported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records exported.
    pub records: u64,
    /// Records the broker delivered in the range (exported or skipped).
    pub read: u64,
    /// Records delivered but left out by the filters.
    pub skipped: u64,
    /// Exported records whose value did not decode (exported raw, with the error).
    pub undecodable: u64,
    /// Exported records per event type (`(none)` for a record without a value,
    /// `(undecodable)` for one whose writer schema is unknown).
    pub event_types: BTreeMap<String, u64>,
    /// Per partition, in (topic, partition) order.
    pub partitions: Vec<PartitionSummary>,
    /// Offsets of the range the broker did not deliver, over all partitions.
    pub gap_offsets: u64,
    /// The replay digest (hex).
    pub digest: String,
    /// [`digest::ALGORITHM`].
    pub digest_algorithm: String,
    /// Wall time of the replay (not part of the digest).
    pub elapsed_ms: u64,
}

/// One partition's part of a [`Summary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Range start.
    pub start: i64,
    /// Range end (exclusive).
    pub end: i64,
    /// Records exported.
    pub records: u64,
    /// Records delivered.
    pub read: u64,
    /// Offset of the first record exported.
    pub first_offset: Option<i64>,
    /// Offset of the last record exported.
    pub last_offset: Option<i64>,
    /// Timestamp (ms) of the first record exported.
    pub first_timestamp: Option<i64>,
    /// Timestamp (ms) of the last record exported.
    pub last_timestamp: Option<i64>,
    /// Gaps: `[from, to)` offset runs not delivered, the first [`GAPS_LISTED`] of them.
    pub gaps: Vec<[i64; 2]>,
    /// How many gaps there are.
    pub gap_count: u64,
    /// How many offsets they cover.
    pub gap_offsets: u64,
    /// This partition's chain (hex).
    pub chain: String,
}

struct Part {
    s: PartitionSummary,
    next: i64,
    chain: [u8; 32],
}

impl Part {
    fn gap(&mut self, from: i64, to: i64) {
        if to <= from {
            return;
        }
        self.s.gap_count += 1;
        self.s.gap_offsets += (to - from) as u64;
        if self.s.gaps.len() < GAPS_LISTED {
            self.s.gaps.push([from, to]);
        }
    }
}

/// Builds a [`Summary`] as records stream by, holding a few counters per partition.
pub struct Tracker {
    parts: Vec<Part>,
    index: HashMap<String, HashMap<i32, usize>>,
    last: usize,
    sum: Summary,
}

impl Tracker {
    /// A tracker for the partitions of a range.
    pub fn new(ranges: &[PartitionRange]) -> Self {
        let mut index: HashMap<String, HashMap<i32, usize>> = HashMap::new();
        let mut parts = Vec::with_capacity(ranges.len());
        for r in ranges {
            index
                .entry(r.topic.clone())
                .or_default()
                .insert(r.partition, parts.len());
            let mut p = Part {
                s: PartitionSummary {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    start: r.start,
                    end: r.end,
                    ..PartitionSummary::default()
                },
                next: r.start,
                chain: [0; 32],
            };
            if let Some(from) = r.expired_from {
                p.gap(from, r.start);
            }
            parts.push(p);
        }
        Tracker {
            parts,
            index,
            last: 0,
            sum: Summary::default(),
        }
    }

    fn part(&mut self, topic: &str, partition: i32) -> Option<&mut Part> {
        // Records come in runs from one partition: check the last one first.
        let last = self.last;
        let hit = self
            .parts
            .get(last)
            .is_some_and(|p| p.s.partition == partition && p.s.topic == topic);
        let i = if hit {
            last
        } else {
            *self.index.get(topic)?.get(&partition)?
        };
        self.last = i;
        self.parts.get_mut(i)
    }

    /// A record the broker delivered (exported or not): advances the gap tracking.
    pub fn delivered(&mut self, topic: &str, partition: i32, offset: i64) {
        self.sum.read += 1;
        if let Some(p) = self.part(topic, partition) {
            p.s.read += 1;
            let next = p.next;
            p.gap(next, offset);
            p.next = offset + 1;
        }
    }

    /// A delivered record the filters left out.
    pub fn skipped(&mut self) {
        self.sum.skipped += 1;
    }

    /// An exported record: counts, first/last, and the digest chain.
    pub fn exported<'a, H>(
        &mut self,
        event_type: Option<&str>,
        decoded: bool,
        r: RecordBytes<'a, H>,
    ) where
        H: ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        self.sum.records += 1;
        let kind = match (event_type, r.value.is_some()) {
            (Some(e), _) => e,
            (None, false) => "(none)",
            (None, true) => "(undecodable)",
        };
        if !decoded && r.value.is_some() {
            self.sum.undecodable += 1;
        }
        match self.sum.event_types.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.sum.event_types.insert(kind.to_string(), 1);
            }
        }
        let (offset, ts) = (r.offset, r.timestamp_ms);
        if let Some(p) = self.part(r.topic, r.partition) {
            p.s.records += 1;
            p.s.first_offset.get_or_insert(offset);
            p.s.last_offset = Some(offset);
            if p.s.first_timestamp.is_none() {
                p.s.first_timestamp = ts;
            }
            p.s.last_timestamp = ts;
            p.chain = digest::chain(&p.chain, r);
        }
    }

    /// Takes in another tracker's partitions and counts (the trackers of parallel readers
    /// over disjoint partitions).
    pub fn absorb(&mut self, other: Tracker) {
        for p in other.parts {
            self.index
                .entry(p.s.topic.clone())
                .or_default()
                .insert(p.s.partition, self.parts.len());
            self.parts.push(p);
        }
        let (a, b) = (&mut self.sum, other.sum);
        a.records += b.records;
        a.read += b.read;
        a.skipped += b.skipped;
        a.undecodable += b.undecodable;
        for (k, n) in b.event_types {
            *a.event_types.entry(k).or_default() += n;
        }
    }

    /// The summary, once every partition is read.
    pub fn finish(mut self, elapsed_ms: u64) -> Summary {
        for p in &mut self.parts {
            let (next, end) = (p.next, p.s.end);
            p.gap(next, end);
            p.s.chain = digest::hex(&p.chain);
        }
        self.sum.digest = digest::combine(
            self.parts
                .iter()
                .map(|p| PartitionChain {
                    topic: &p.s.topic,
                    partition: p.s.partition,
                    start: p.s.start,
                    end: p.s.end,
                    records: p.s.records,
                    chain: p.chain,
                })
                .collect(),
        );
        self.sum.gap_offsets = self.parts.iter().map(|p| p.s.gap_offsets).sum();
        let mut parts: Vec<PartitionSummary> = self.parts.into_iter().map(|p| p.s).collect();
        parts.sort_by(|a, b| {
            (a.topic.as_bytes(), a.partition).cmp(&(b.topic.as_bytes(), b.partition))
        });
        self.sum.partitions = parts;
        self.sum.digest_algorithm = digest::ALGORITHM.into();
        self.sum.elapsed_ms = elapsed_ms;
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, expired_from: Option<i64>) -> PartitionRange {
        PartitionRange {
            topic: "t".into(),
            partition: 0,
            start,
            end,
            expired_from,
        }
    }

    #[test]
    fn gaps_are_the_offsets_never_delivered_including_expired_and_trailing_ones() {
        let mut t = Tracker::new(&[range(10, 20, Some(4))]);
        for o in [10, 11, 14, 15, 18] {
            t.delivered("t", 0, o);
        }
        let s = t.finish(0);
        let p = &s.partitions[0];
        assert_eq!(p.gaps, vec![[4, 10], [12, 14], [16, 18], [19, 20]]);
        assert_eq!((p.gap_count, p.gap_offsets, s.gap_offsets), (4, 11, 11));
        assert_eq!(p.read, 5);
    }

    #[test]
    fn only_the_first_gaps_are_listed_but_all_are_counted() {
        let mut t = Tracker::new(&[range(0, 1000, None)]);
        for o in (1..1000).step_by(2) {
            t.delivered("t", 0, o);
        }
        let s = t.finish(0);
        assert_eq!(s.partitions[0].gaps.len(), GAPS_LISTED);
        assert_eq!(s.partitions[0].gap_count, 500);
    }
}
