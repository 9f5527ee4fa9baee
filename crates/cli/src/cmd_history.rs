//! `l2f history KEY`: one customer's, lead's or subscription's whole story across topics,
//! in the order things happened, each event indented under the event that caused it.
//! Reads like `l2f replay`: no consumer group, no commit.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget};
use l2f_audit::history::{history, HistoryEvent, HistoryQuery};
use l2f_bus::reader::Isolation;
use l2f_contracts::schema::{Logical, Named, Node};

use crate::cluster::{connect, load};
use crate::ConfigArg;

/// `l2f history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// A record key (lead, account or subscription id) or a correlation id.
    key: String,
    /// Topics to search (repeatable, or comma separated; default: every catalog topic but
    /// the dead letters).
    #[arg(long = "topic", short = 't', value_delimiter = ',')]
    topics: Vec<String>,
    /// Only events keyed by KEY, not the rest of their flows.
    #[arg(long)]
    key_only: bool,
    /// One JSON line per event (with depth and cause) instead of the indented list.
    #[arg(long)]
    json: bool,
    /// Read records of open and aborted transactions too.
    #[arg(long)]
    read_uncommitted: bool,
}

/// Runs `l2f history`; returns the exit code (1 when nothing is found).
pub async fn run(args: HistoryArgs) -> Result<i32> {
    let loaded = load(&args.config)?;
    let cfg = loaded.bus;
    let topics = if args.topics.is_empty() {
        loaded
            .catalog
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| *t != cfg.dead_letter.topic && *t != cfg.sources.offsets_topic)
            .collect()
    } else {
        args.topics.clone()
    };
    let cluster = connect(&cfg, false, "history")?;
    let client = cluster.client.clone();
    let timeout = cfg.kafka.connect_timeout.max(Duration::from_secs(10));
    let query = HistoryQuery {
        key: args.key.clone(),
        topics,
        key_only: args.key_only,
        isolation: if args.read_uncommitted {
            Isolation::ReadUncommitted
        } else {
            Isolation::ReadCommitted
        },
    };
    let events = tokio::task::spawn_blocking(move || {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let r = history(&client, &query, timeout, &mut |n| bar.set_position(n));
        bar.finish_and_clear();
        r
    })
    .await
    .context("history task")??;
    if events.is_empty() {
        eprintln!("no event has key or correlation id {}", args.key);
        return Ok(1);
    }
    for e in &events {
        if args.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", line(e));
        }
    }
    Ok(0)
}

fn line(e: &HistoryEvent) -> String {
    let when = e
        .occurred_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "(no envelope)".into());
    let tree = if e.depth == 0 {
        String::new()
    } else {
        format!("{}└─ ", "   ".repeat(e.depth - 1))
    };
    let cause = match (&e.causation_id, &e.caused_by) {
        (_, Some(t)) => format!("  ← {t}"),
        (Some(c), None) => format!("  ← {c} (not among these events)"),
        (None, None) => String::new(),
    };
    format!(
        "{when}  {tree}{}  {}[{}]@{}  key {}  from {}  event {}{cause}{}",
        e.event_type.as_deref().unwrap_or("(undecodable)"),
        e.topic,
        e.partition,
        e.offset,
        e.key.as_deref().unwrap_or("-"),
        e.source.as_deref().unwrap_or("-"),
        e.event_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
        detail(e.event_type.as_deref(), &e.event),
    )
}

/// The logical type of a top-level field of an event's schema (dates and timestamps are
/// numbers in the event JSON, shown as dates here).
fn logical(event_type: &str, field: &str) -> Option<Logical> {
    let schema = l2f_contracts::Catalog::embedded().get(event_type)?;
    let Some(Named::Record(r)) = schema.root_named() else {
        return None;
    };
    let f = r.fields.iter().find(|f| f.name == field)?;
    match &f.node {
        Node::Primitive(_, l) => l.clone(),
        _ => None,
    }
}

/// What the event told its readers, in brief: its plain fields (not the envelope, not the
/// ids shown elsewhere) as `name=value`, cut at 160 characters.
fn detail(event_type: Option<&str>, event: &serde_json::Value) -> String {
    let Some(fields) = event.as_object() else {
        return String::new();
    };
    let number = |k: &str, n: &serde_json::Number| {
        let l = event_type.and_then(|t| logical(t, k));
        match (l, n.as_i64()) {
            (Some(Logical::Date), Some(d)) => {
                l2f_contracts::events::avro_date::from_days(d as i32).map(|d| d.to_string())
            }
            (Some(Logical::TimestampMillis), Some(ms)) => {
                chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
            _ => None,
        }
        .unwrap_or_else(|| n.to_string())
    };
    let parts: Vec<String> = fields
        .iter()
        .filter(|(k, _)| *k != "envelope" && !k.ends_with("_id"))
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some(format!("{k}={s}")),
            serde_json::Value::Number(n) => Some(format!("{k}={}", number(k, n))),
            serde_json::Value::Bool(b) => Some(format!("{k}={b}")),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let mut s = format!("  | {}", parts.join(" "));
    if s.chars().count() > 160 {
        s = s.chars().take(159).collect::<String>() + "…";
    }
    s
}
