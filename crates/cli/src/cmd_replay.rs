//! `l2f replay`: export an exact time or offset range of topics as JSON lines or an Avro
//! container file, with a verifiable summary; `l2f replay --verify FILE` checks an export
//! against its topics. Never joins a consumer group, never commits (see `l2f_audit`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use l2f_audit::export::Format;
use l2f_audit::range::{Bound, Filters};
use l2f_audit::replay::{export, plan};
use l2f_audit::verify::{verify, VerifyReport};
use l2f_audit::Summary;
use l2f_bus::reader::Isolation;
use l2f_contracts::events::EVENT_NAMES;
use uuid::Uuid;

use crate::cluster::{connect, load};
use crate::ConfigArg;

/// Export format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutFormat {
    /// JSON lines: a header line, one line per record, a summary line.
    Json,
    /// Avro object container file (schema dev.l2f.replay.ReplayRecord).
    Avro,
}

/// `l2f replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Topic to replay (repeatable, or comma separated).
    #[arg(
        long = "topic",
        short = 't',
        value_delimiter = ',',
        required_unless_present = "verify"
    )]
    topics: Vec<String>,
    /// Start: `beginning`, an RFC 3339 time (first record at or after it, per partition), or
    /// `[TOPIC:]PARTITION:OFFSET[,...]`.
    #[arg(long, default_value = "beginning", allow_hyphen_values = true)]
    from: Bound,
    /// End: `end` (the high watermark when the replay starts), an RFC 3339 time (no record
    /// after it), or `[TOPIC:]PARTITION:OFFSET[,...]` (inclusive).
    #[arg(long, default_value = "end", allow_hyphen_values = true)]
    to: Bound,
    /// Only records with this key (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Only events of this type, e.g. OrderPlaced (repeatable).
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    /// Only events of this business flow (envelope correlation id; repeatable).
    #[arg(long = "correlation-id")]
    correlation_ids: Vec<Uuid>,
    /// Export format.
    #[arg(long, value_enum, default_value_t = OutFormat::Json)]
    format: OutFormat,
    /// Export file (default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Also write the summary (or, with --verify, the report) to this file as JSON.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Read records of open and aborted transactions too (default: read_committed).
    #[arg(long)]
    read_uncommitted: bool,
    /// Check an export against the range it names: missing, extra and altered records
    /// (exit 2 on any).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["topics", "keys", "event_types", "correlation_ids", "output"])]
    verify: Option<PathBuf>,
    /// Print no summary on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Readers (threads, each with its own consumer over a share of the partitions);
    /// default: one per core, at most 4.
    #[arg(long)]
    readers: Option<usize>,
    /// Give up when the cluster sends nothing for this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
}

fn progress_bar(total: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} offsets  {rate}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} rec/s", s.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    bar
}

/// Runs `l2f replay`; returns the exit code.
pub async fn run(args: ReplayArgs) -> Result<i32> {
    let cfg = load(&args.config)?.bus;
    let cluster = connect(&cfg, false, "replay")?;
    let client = cluster.client.clone();
    let timeout = cfg.kafka.connect_timeout.max(Duration::from_secs(10));
    if let Some(file) = args.verify.clone() {
        return verify_file(client, file, args).await;
    }
    for e in &args.event_types {
        if !EVENT_NAMES.contains(&e.as_str()) {
            bail!(
                "--event-type {e}: no such event (one of {})",
                EVENT_NAMES.join(", ")
            );
        }
    }
    let filters = Filters {
        keys: args.keys.clone(),
        event_types: args.event_types.clone(),
        correlation_ids: args.correlation_ids.clone(),
        ..Filters::default()
    };
    let isolation = if args.read_uncommitted {
        Isolation::ReadUncommitted
    } else {
        Isolation::ReadCommitted
    };
    let format = match args.format {
        OutFormat::Json => Format::Json,
        OutFormat::Avro => Format::Avro,
    };
    let readers = args
        .readers
        .unwrap_or_else(l2f_audit::replay::default_readers)
        .max(1);
    let (topics, from, to, output, idle) = (
        args.topics.clone(),
        args.from.clone(),
        args.to.clone(),
        args.output.clone(),
        args.idle_timeout,
    );
    let summary: Summary = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let header = plan(&client, &topics, &from, &to, filters, isolation, timeout)?;
        let bar = progress_bar(header.offsets());
        let s = export(
            &client,
            &header,
            format,
            output.as_deref(),
            idle,
            readers,
            &mut |n| bar.set_position(n),
        )?;
        bar.finish_and_clear();
        Ok(s)
    })
    .await
    .context("replay task")??;
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if !args.quiet {
        eprint!("{}", describe(&summary));
    }
    Ok(0)
}

fn describe(s: &Summary) -> String {
    let mut out = format!(
        "replayed {} record(s) of {} read ({} skipped by filters, {} undecodable) from {} partition(s) in {:.1} s\n",
        s.records,
        s.read,
        s.skipped,
        s.undecodable,
        s.partitions.len(),
        s.elapsed_ms as f64 / 1000.0
    );
    for (t, n) in &s.event_types {
        out += &format!("  {t:<24} {n}\n");
    }
    for p in &s.partitions {
        out += &format!(
            "  {}[{}] offsets {}..{}: {} record(s){}\n",
            p.topic,
            p.partition,
            p.start,
            p.end,
            p.records,
            if p.gap_count > 0 {
                format!(
                    ", {} gap(s) of {} offset(s), first {:?}",
                    p.gap_count, p.gap_offsets, p.gaps[0]
                )
            } else {
                String::new()
            }
        );
    }
    out += &format!("digest {} {}\n", s.digest_algorithm, s.digest);
    out
}

async fn verify_file(
    client: rdkafka::ClientConfig,
    file: PathBuf,
    args: ReplayArgs,
) -> Result<i32> {
    let idle = args.idle_timeout;
    let report: VerifyReport = tokio::task::spawn_blocking(move || -> Result<VerifyReport> {
        let bar = progress_bar(0);
        let r = verify(&client, &file, idle, &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
        Ok(r)
    })
    .await
    .context("verify task")??;
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "{}: {} record(s) in the export, {} in the topics' range: {} matching, {} missing, {} extra, {} altered",
        report.file,
        report.export_records,
        report.topic_records,
        report.matching,
        report.missing_count,
        report.extra_count,
        report.altered_count
    );
    for m in &report.missing {
        println!(
            "missing  {}[{}]@{}: in the topic, not in the export",
            m.topic, m.partition, m.offset
        );
    }
    for e in &report.extra {
        println!(
            "extra    {}[{}]@{}: in the export, not in the topic",
            e.topic, e.partition, e.offset
        );
    }
    for a in &report.altered {
        for f in &a.fields {
            println!(
                "altered  {}[{}]@{}: {}: export has {}, topic has {}",
                a.at.topic, a.at.partition, a.at.offset, f.field, f.export, f.topic
            );
        }
    }
    if let Some(d) = &report.export_digest {
        if *d != report.topic_digest {
            println!(
                "digest   the export's summary says {d}, the topics give {}",
                report.topic_digest
            );
        }
    }
    if report.ok() {
        println!(
            "verified: the export matches the topics (digest {})",
            report.topic_digest
        );
        Ok(0)
    } else {
        Ok(2)
    }
}
