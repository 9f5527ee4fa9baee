//! `l2f replay --verify FILE`: re-reads the range an export names, with its filters and
//! isolation, and checks it record by record against the file.
//!
//! - *missing*: in the topic's range, not in the export (a line deleted, say);
//! - *extra*: in the export, not in the topic's range (a line added or duplicated, or a
//!   record since removed from the topic by retention or compaction);
//! - *altered*: at the same position in both, with different contents; the fields that
//!   differ are named with both values.
//!
//! Records are compared in the canonical form of [`crate::export::canonical_json`]. Memory:
//! one SHA-256 and one index per exported record (about 70 bytes), not the records.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AuditError, Result};
use crate::export::{canonical_json, ExportReader};
use crate::render::Renderer;
use crate::replay::scan;
use crate::summary::Summary;

/// How many missing, extra and altered records are listed (all are counted).
pub const LISTED: usize = 1000;

/// A record's position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One field that differs between the export and the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Dotted path (`key`, `event.seats`, ...).
    pub field: String,
    /// The export's value.
    pub export: Value,
    /// The topic's value.
    pub topic: Value,
}

/// A record altered in the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Altered {
    /// Where.
    pub at: Pos,
    /// What differs.
    pub fields: Vec<FieldDiff>,
}

/// What `--verify` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The file checked.
    pub file: String,
    /// Records in the export.
    pub export_records: u64,
    /// Records the topic's range gives now (with the export's filters).
    pub topic_records: u64,
    /// Records identical in both.
    pub matching: u64,
    /// How many records are missing from the export.
    pub missing_count: u64,
    /// How many records the export has that the topic does not.
    pub extra_count: u64,
    /// How many records differ.
    pub altered_count: u64,
    /// The first [`LISTED`] missing records.
    pub missing: Vec<Pos>,
    /// The first [`LISTED`] extra records (`offset` -1 when the record had no readable position).
    pub extra: Vec<Pos>,
    /// The first [`LISTED`] altered records.
    pub altered: Vec<Altered>,
    /// The digest in the export's summary line (JSON lines only).
    pub export_digest: Option<String>,
    /// The digest of the range as read now.
    pub topic_digest: String,
    /// The summary of the re-read.
    pub summary: Summary,
}

impl VerifyReport {
    /// Whether the export and the topic agree record for record (and digest for digest,
    /// when the export carries one).
    pub fn ok(&self) -> bool {
        self.missing_count == 0
            && self.extra_count == 0
            && self.altered_count == 0
            && self
                .export_digest
                .as_ref()
                .is_none_or(|d| *d == self.topic_digest)
    }
}

fn hash(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn pos_of(canonical: &[u8]) -> Option<Pos> {
    serde_json::from_slice::<Pos>(canonical).ok()
}

fn push<T>(v: &mut Vec<T>, count: &mut u64, x: T) {
    *count += 1;
    if v.len() < LISTED {
        v.push(x);
    }
}

/// Checks the export at `path` against its topics.
pub fn verify(
    client: &ClientConfig,
    path: &Path,
    idle_timeout: Duration,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport> {
    let mut file = ExportReader::open(path)?;
    let header = file.header.clone();
    let format = file.format;
    let mut report = VerifyReport {
        file: path.display().to_string(),
        ..VerifyReport::default()
    };
    // Pass 1: what the export holds, by position.
    let mut held: HashMap<Pos, ([u8; 32], u64)> = HashMap::new();
    let mut index: u64 = 0;
    while let Some(rec) = file.next_record()? {
        report.export_records += 1;
        match pos_of(&rec) {
            None => push(
                &mut report.extra,
                &mut report.extra_count,
                Pos {
                    topic: String::new(),
                    partition: -1,
                    offset: -1,
                },
            ),
            Some(p) => {
                use std::collections::hash_map::Entry;
                match held.entry(p) {
                    Entry::Occupied(o) => {
                        let dup = o.key().clone();
                        push(&mut report.extra, &mut report.extra_count, dup);
                    }
                    Entry::Vacant(v) => {
                        v.insert((hash(&rec), index));
                    }
                }
            }
        }
        index += 1;
    }
    report.export_digest = file.summary.as_ref().map(|s| s.digest.clone());
    // Pass 2: the topic's range, compared as it streams.
    let mut renderer = Renderer::new(format);
    let mut altered: HashMap<u64, (Pos, Vec<u8>)> = HashMap::new();
    let summary = scan(
        client,
        &header.ranges,
        &header.filters,
        header.isolation(),
        &mut renderer,
        idle_timeout,
        progress,
        |pos, view| {
            let canonical = canonical_json(format, view.bytes)?;
            let p = Pos {
                topic: pos.topic.to_string(),
                partition: pos.partition,
                offset: pos.offset,
            };
            match held.remove(&p) {
                None => push(&mut report.missing, &mut report.missing_count, p),
                Some((h, _)) if h == hash(&canonical) => report.matching += 1,
                Some((_, i)) => {
                    report.altered_count += 1;
                    if altered.len() < LISTED {
                        altered.insert(i, (p, canonical));
                    }
                }
            }
            Ok(())
        },
    )?;
    report.topic_records = summary.records;
    let mut left: Vec<Pos> = held.into_keys().collect();
    left.sort();
    for p in left {
        push(&mut report.extra, &mut report.extra_count, p);
    }
    // Pass 3, only when something was altered: the export's side of each, to name fields.
    if !altered.is_empty() {
        let mut file = ExportReader::open(path)?;
        let mut i: u64 = 0;
        while let Some(rec) = file.next_record()? {
            if let Some((p, topic)) = altered.remove(&i) {
                report.altered.push(Altered {
                    at: p,
                    fields: diff(&rec, &topic)?,
                });
            }
            i += 1;
        }
        report.altered.sort_by(|a, b| a.at.cmp(&b.at));
    }
    report.topic_digest = summary.digest.clone();
    report.summary = summary;
    Ok(report)
}

fn diff(export: &[u8], topic: &[u8]) -> Result<Vec<FieldDiff>> {
    let parse = |b: &[u8]| -> Result<Value> {
        serde_json::from_slice(b).map_err(|e| AuditError::Range(format!("unreadable record: {e}")))
    };
    let (e, t) = (parse(export)?, parse(topic)?);
    let mut out = Vec::new();
    walk("", &e, &t, 0, &mut out);
    Ok(out)
}

fn walk(path: &str, e: &Value, t: &Value, depth: usize, out: &mut Vec<FieldDiff>) {
    if e == t {
        return;
    }
    match (e, t) {
        (Value::Object(a), Value::Object(b)) if depth < 3 => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &sub,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    depth + 1,
                    out,
                );
            }
        }
        _ => out.push(FieldDiff {
            field: if path.is_empty() {
                "(record)".into()
            } else {
                path.into()
            },
            export: e.clone(),
            topic: t.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_names_the_nested_field_and_both_values() {
        let e = br#"{"topic":"t","key":"a","event":{"seats":30,"envelope":{"source":"ZUORA"}}}"#;
        let t = br#"{"topic":"t","key":"a","event":{"seats":25,"envelope":{"source":"ZUORA"}}}"#;
        let d = diff(e, t).unwrap();
        assert_eq!(
            d,
            vec![FieldDiff {
                field: "event.seats".into(),
                export: 30.into(),
                topic: 25.into()
            }]
        );
    }

    #[test]
    fn a_report_with_a_different_digest_is_not_ok() {
        let r = VerifyReport {
            export_digest: Some("a".into()),
            topic_digest: "b".into(),
            ..VerifyReport::default()
        };
        assert!(!r.ok());
        let r = VerifyReport {
            topic_digest: "b".into(),
            ..VerifyReport::default()
        };
        assert!(r.ok());
    }
}
