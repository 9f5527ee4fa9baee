//! The report: what was read, every drift, and what `--fix` re-emitted (or would), as a
//! table for people and as JSON for tools.

use l2f_audit::range::PartitionRange;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{Drift, DriftKind};
use crate::fix::{Emitted, Plan};

/// One reconciliation's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The ranges folded (fixed at start).
    pub ranges: Vec<PartitionRange>,
    /// Events folded.
    pub folded: u64,
    /// Records read that carry no account or subscription state.
    pub ignored: u64,
    /// Records that are not events of the catalog.
    pub undecodable: u64,
    /// Subscriptions expected.
    pub subscriptions: usize,
    /// Zuora accounts expected.
    pub accounts: usize,
    /// Subscriptions with events but not yet created in Zuora (not compared).
    pub pending: Vec<String>,
    /// Orders dead-lettered (refused on purpose), not expected in Zuora.
    #[serde(default)]
    pub refused: Vec<String>,
    /// Apps compared.
    pub apps: Vec<String>,
    /// Every drift.
    pub drift: Vec<Drift>,
    /// The repairs of the drift.
    pub plan: Plan,
    /// Whether the repairs were re-emitted (`--fix`) or only planned.
    pub fixed: bool,
    /// What was re-emitted.
    pub emitted: Vec<Emitted>,
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let n = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl Report {
    /// Whether any app drifted.
    pub fn drifted(&self) -> bool {
        !self.drift.is_empty()
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let partitions = self.ranges.len();
        let records: i64 = self.ranges.iter().map(|r| r.end - r.start).sum();
        let mut out = format!(
            "folded {} events ({} records on {} partitions; {} without state, {} undecodable): {} subscriptions, {} accounts expected{}; compared with {}\n",
            self.folded,
            records,
            partitions,
            self.ignored,
            self.undecodable,
            self.subscriptions,
            self.accounts,
            if self.pending.is_empty() {
                String::new()
            } else {
                format!(", {} not yet in Zuora", self.pending.len())
            } + &if self.refused.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} order(s) dead-lettered and not expected in Zuora",
                    self.refused.len()
                )
            },
            self.apps.join(", ")
        );
        if self.drift.is_empty() {
            out.push_str("no drift\n");
            return out;
        }
        out.push_str(&format!("{} drift:\n", self.drift.len()));
        let mut rows = vec![vec![
            "APP".to_string(),
            "RECORD".into(),
            "FIELD".into(),
            "EXPECTED".into(),
            "HELD".into(),
            "SET BY".into(),
        ]];
        for d in &self.drift {
            let field = match d.drift {
                DriftKind::Field => d.field.clone(),
                DriftKind::Missing => "(missing)".into(),
                DriftKind::Extra => "(extra)".into(),
            };
            rows.push(vec![
                d.app.clone(),
                format!("{} {}", d.kind.name(), d.record),
                field,
                show(&d.expected),
                show(&d.held),
                d.set_by
                    .as_ref()
                    .map_or_else(|| "-".into(), |o| o.to_string()),
            ]);
        }
        out.push_str(&table(&rows));
        if !self.plan.repairs.is_empty() {
            if self.fixed {
                out.push_str(&format!("re-emitted {} events:\n", self.emitted.len()));
                let mut rows = vec![vec![
                    "AT".to_string(),
                    "EVENT".into(),
                    "EVENT ID".into(),
                    "REPAIR OF".into(),
                ]];
                for e in &self.emitted {
                    rows.push(vec![
                        format!("{}:{}:{}", e.topic, e.partition, e.offset),
                        e.event_type.clone(),
                        e.event_id.to_string(),
                        e.repair_of.clone(),
                    ]);
                }
                out.push_str(&table(&rows));
            } else {
                out.push_str(&format!(
                    "--fix would re-emit {} events:\n",
                    self.plan.repairs.len()
                ));
                for r in &self.plan.repairs {
                    let what = match &r.action {
                        crate::fix::Action::Copy => format!("copy of {}", r.origin),
                        crate::fix::Action::SetAutoRenew { auto_renew, .. } => format!(
                            "AutoRenewChanged (customers app flag = {auto_renew}) caused by {}",
                            r.origin
                        ),
                    };
                    out.push_str(&format!("  {what}  (for {})\n", r.repairs.join("; ")));
                }
            }
        }
        for u in &self.plan.unrepairable {
            out.push_str(&format!("not repairable: {}: {}\n", u.drift, u.reason));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Kind;
    use serde_json::json;

    #[test]
    fn the_table_lines_up_one_row_per_drift_and_says_none_when_clean() {
        let mut r = Report {
            apps: vec!["zuora".into()],
            ..Report::default()
        };
        assert!(r.table().ends_with("no drift\n"));
        r.drift.push(Drift {
            app: "zuora".into(),
            kind: Kind::Subscription,
            record: "A-S1".into(),
            drift: DriftKind::Field,
            field: "auto_renew".into(),
            expected: json!(true),
            held: json!(false),
            set_by: None,
        });
        let t = r.table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "1 drift:");
        assert!(lines[2].starts_with("APP    RECORD"), "{t}");
        assert!(
            lines[3].contains("subscription A-S1  auto_renew  true      false"),
            "{t}"
        );
    }
}
