//! Range bounds as operators write them (`beginning`, `end`, an RFC 3339 time, `P:O`
//! offsets) and their resolution, per partition, into offsets `[start, end)`.
//!
//! - `--from TIME`: the first offset whose timestamp is at or after TIME (Kafka's
//!   ListOffsets by timestamp); `--to TIME`: the first offset whose timestamp is *after*
//!   TIME is the end, and records inside the offset range whose own timestamp lies outside
//!   `[from, to]` (possible with producer CreateTime out of order) are skipped, so none
//!   before `--from` or after `--to` is exported. A record stamped inside the times but
//!   written after the end offset is outside the range by this definition.
//! - `--from P:O`: start at offset O of partition P; `--to P:O`: up to and including O.
//!   `TOPIC:P:O` names the topic when several are replayed; several entries are comma
//!   separated. An offsets bound names the partitions read: partitions it does not name
//!   are left out (both bounds' partitions when both are offsets).
//! - `beginning` / `end`: the low / high watermark when the replay starts, so the range is
//!   fixed and records produced during the replay are not part of it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use l2f_bus::admin::watermarks_with;
use l2f_bus::reader::{offsets_for_time, Span};
use rdkafka::consumer::BaseConsumer;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AuditError, Result};

/// One end of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// The low watermark (the oldest record still kept).
    Beginning,
    /// The high watermark when the replay starts.
    End,
    /// A point in time (record timestamps).
    Time(DateTime<Utc>),
    /// Explicit offsets per partition.
    Offsets(Vec<OffsetAt>),
}

/// `[TOPIC:]PARTITION:OFFSET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAt {
    /// The topic, when the bound names one.
    pub topic: Option<String>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl FromStr for Bound {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        match s {
            "beginning" | "start" | "earliest" => return Ok(Bound::Beginning),
            "end" | "latest" | "now" => return Ok(Bound::End),
            _ => {}
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Bound::Time(t.with_timezone(&Utc)));
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let bits: Vec<&str> = part.trim().rsplitn(3, ':').collect();
            let (offset, partition, topic) = match bits.as_slice() {
                [o, p] => (*o, *p, None),
                [o, p, t] if !t.is_empty() => (*o, *p, Some((*t).to_string())),
                _ => {
                    return Err(format!(
                        "{s:?} is not `beginning`, `end`, an RFC 3339 time (2026-01-31T00:00:00Z) or [TOPIC:]PARTITION:OFFSET[,...]"
                    ))
                }
            };
            let partition: i32 = partition
                .parse()
                .map_err(|_| format!("{part:?}: partition {partition:?} is not a number"))?;
            let offset: i64 = offset
                .parse()
                .ok()
                .filter(|o| *o >= 0)
                .ok_or_else(|| format!("{part:?}: offset {offset:?} is not a number ≥ 0"))?;
            out.push(OffsetAt {
                topic,
                partition,
                offset,
            });
        }
        Ok(Bound::Offsets(out))
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Beginning => f.write_str("beginning"),
            Bound::End => f.write_str("end"),
            Bound::Time(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            Bound::Offsets(v) => {
                let parts: Vec<String> = v
                    .iter()
                    .map(|o| match &o.topic {
                        Some(t) => format!("{t}:{}:{}", o.partition, o.offset),
                        None => format!("{}:{}", o.partition, o.offset),
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Bound {
    fn offset_for(&self, topic: &str, partition: i32) -> Option<i64> {
        match self {
            Bound::Offsets(v) => v
                .iter()
                .filter(|o| o.partition == partition)
                .find(|o| o.topic.as_deref().is_none_or(|t| t == topic))
                .map(|o| o.offset),
            _ => None,
        }
    }

    fn names(&self, topic: &str) -> Option<BTreeSet<i32>> {
        match self {
            Bound::Offsets(v) => Some(
                v.iter()
                    .filter(|o| o.topic.as_deref().is_none_or(|t| t == topic))
                    .map(|o| o.partition)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The time in milliseconds, for a time bound.
    pub fn time_ms(&self) -> Option<i64> {
        match self {
            Bound::Time(t) => Some(t.timestamp_millis()),
            _ => None,
        }
    }
}

/// One partition's resolved range, as written into an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// First offset not read (exclusive).
    pub end: i64,
    /// Set when the requested start lay below the oldest record kept: offsets
    /// `[expired_from, start)` are gone (retention or deletion) and reported as a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_from: Option<i64>,
}

impl PartitionRange {
    /// The reader's view of it.
    pub fn span(&self) -> Span {
        Span {
            topic: self.topic.clone(),
            partition: self.partition,
            start: self.start,
            end: self.end,
        }
    }
}

/// Which records of the range are exported. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Record keys (exact, UTF-8).
    pub keys: Vec<String>,
    /// Event types (the writer schema's record name, e.g. `OrderPlaced`).
    pub event_types: Vec<String>,
    /// Envelope correlation ids.
    pub correlation_ids: Vec<Uuid>,
    /// Skip records whose timestamp is before this (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_from_ms: Option<i64>,
    /// Skip records whose timestamp is after this (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_ms: Option<i64>,
}

impl Filters {
    /// Whether a correlation-id filter needs every record decoded before choosing.
    pub fn needs_envelope(&self) -> bool {
        !self.correlation_ids.is_empty()
    }

    /// Whether the record's key passes.
    pub fn key_passes(&self, key: Option<&[u8]>) -> bool {
        self.keys.is_empty() || key.is_some_and(|k| self.keys.iter().any(|f| f.as_bytes() == k))
    }

    /// Whether the record's timestamp passes.
    pub fn time_passes(&self, ts: Option<i64>) -> bool {
        let Some(ts) = ts else { return true };
        self.time_from_ms.is_none_or(|f| ts >= f) && self.time_to_ms.is_none_or(|t| ts <= t)
    }

    /// Whether the event type passes (`None`: not decodable, passes only without the filter).
    pub fn event_type_passes(&self, event_type: Option<&str>) -> bool {
        self.event_types.is_empty()
            || event_type.is_some_and(|e| self.event_types.iter().any(|f| f == e))
    }

    /// Whether the correlation id passes.
    pub fn correlation_passes(&self, id: Option<&Uuid>) -> bool {
        self.correlation_ids.is_empty() || id.is_some_and(|c| self.correlation_ids.contains(c))
    }
}

/// Resolves `from`/`to` on every partition of `topics`, in (topic, partition) order.
pub fn resolve(
    consumer: &BaseConsumer,
    topics: &[String],
    from: &Bound,
    to: &Bound,
    timeout: Duration,
) -> Result<Vec<PartitionRange>> {
    if let (Some(f), Some(t)) = (from.time_ms(), to.time_ms()) {
        if f > t {
            return Err(AuditError::Range(format!(
                "--from {from} is after --to {to}"
            )));
        }
    }
    for b in [from, to] {
        if let Bound::Offsets(v) = b {
            for o in v {
                if let Some(t) = &o.topic {
                    if !topics.contains(t) {
                        return Err(AuditError::Range(format!(
                            "{b} names topic {t}, which is not replayed (add --topic {t})"
                        )));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for topic in topics {
        let marks = watermarks_with(consumer, topic, timeout)?;
        let named: Option<BTreeSet<i32>> = match (from.names(topic), to.names(topic)) {
            (Some(a), Some(b)) => Some(a.union(&b).copied().collect()),
            (a, b) => a.or(b),
        };
        let marks: Vec<(i32, i64, i64)> = marks
            .into_iter()
            .filter(|(p, _, _)| named.as_ref().is_none_or(|n| n.contains(p)))
            .collect();
        if let Some(n) = &named {
            for p in n {
                if !marks.iter().any(|(q, _, _)| q == p) {
                    return Err(AuditError::Range(format!("{topic} has no partition {p}")));
                }
            }
        }
        let parts: Vec<i32> = marks.iter().map(|m| m.0).collect();
        let at = |ms: i64| offsets_for_time(consumer, topic, &parts, ms, timeout);
        let from_at = match from.time_ms() {
            Some(ms) => Some(at(ms)?),
            None => None,
        };
        // The end of `--to T` is the first record *after* T.
        let to_at = match to.time_ms() {
            Some(ms) => Some(at(ms.saturating_add(1))?),
            None => None,
        };
        for (p, lo, hi) in marks {
            let start = match from {
                Bound::Beginning => lo,
                Bound::End => hi,
                Bound::Time(_) => from_at
                    .as_ref()
                    .and_then(|m| m.get(&p).copied().flatten())
                    .unwrap_or(hi),
                Bound::Offsets(_) => from.offset_for(topic, p).unwrap_or(lo),
            };
            let end = match to {
                Bound::Beginning => lo,
                Bound::End => hi,
                Bound::Time(_) => to_at
                    .as_ref()
                    .and_then(|m| m.get(&p).copied().flatten())
                    .unwrap_or(hi),
                Bound::Offsets(_) => to.offset_for(topic, p).map_or(hi, |o| o + 1),
            };
            let expired_from = (start < lo).then_some(start);
            let start = start.clamp(lo, hi);
            let end = end.clamp(start, hi);
            out.push(PartitionRange {
                topic: topic.clone(),
                partition: p,
                start,
                end,
                expired_from,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_in_every_form_operators_write() {
        assert_eq!("beginning".parse::<Bound>(), Ok(Bound::Beginning));
        assert_eq!("end".parse::<Bound>(), Ok(Bound::End));
        let t: Bound = "2026-01-31T12:00:00+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-31T11:00:00.000Z");
        assert_eq!(
            "0:5,orders:1:7".parse::<Bound>(),
            Ok(Bound::Offsets(vec![
                OffsetAt {
                    topic: None,
                    partition: 0,
                    offset: 5
                },
                OffsetAt {
                    topic: Some("orders".into()),
                    partition: 1,
                    offset: 7
                },
            ]))
        );
        assert_eq!(
            "0:5,orders:1:7".parse::<Bound>().unwrap().to_string(),
            "0:5,orders:1:7"
        );
    }

    #[test]
    fn malformed_bounds_say_what_is_accepted() {
        for bad in ["yesterday", "0:-1", "x:1", "2026-13-01T00:00:00Z"] {
            let err = bad.parse::<Bound>().unwrap_err();
            assert!(
                err.contains(bad) || err.contains("RFC 3339"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn an_offsets_bound_picks_the_topic_it_names() {
        let b: Bound = "0:5,orders:0:9".parse().unwrap();
        assert_eq!(b.offset_for("leads", 0), Some(5));
        assert_eq!(
            b.offset_for("orders", 0),
            Some(5),
            "the first matching entry"
        );
        let b: Bound = "orders:0:9,0:5".parse().unwrap();
        assert_eq!(b.offset_for("orders", 0), Some(9));
        assert_eq!(b.names("leads"), Some([0].into()));
    }

    #[test]
    fn filters_pass_what_they_name_and_everything_when_empty() {
        let none = Filters::default();
        assert!(none.key_passes(None) && none.event_type_passes(None));
        let f = Filters {
            keys: vec!["acct-1".into()],
            event_types: vec!["OrderPlaced".into()],
            time_from_ms: Some(10),
            time_to_ms: Some(20),
            ..Filters::default()
        };
        assert!(f.key_passes(Some(b"acct-1")) && !f.key_passes(Some(b"acct-2")));
        assert!(!f.key_passes(None));
        assert!(f.event_type_passes(Some("OrderPlaced")) && !f.event_type_passes(None));
        assert!(f.time_passes(Some(10)) && f.time_passes(Some(20)));
        assert!(!f.time_passes(Some(9)) && !f.time_passes(Some(21)));
    }
}
