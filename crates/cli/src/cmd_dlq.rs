//! `l2f dlq list|redrive`: see what failed and why, and send chosen records back once the
//! cause is fixed. Reads without joining a consumer group, so live consumers are undisturbed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use l2f_bus::dlq::{redrive, DeadLetter, RedriveFilter};
use l2f_bus::headers::dlq::ERROR_CLASSES;
use l2f_bus::reader::read_all;
use l2f_bus::Producer;

use crate::cluster::{connect, load};
use crate::ConfigArg;

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// Print every dead letter as a JSON line (position as `redrive --position` takes it, key,
    /// reason, source, attempts).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Dead-letter topic (default: dead_letter.topic from the config).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Send chosen dead letters back to their source topics (the DLQ itself is kept as audit).
    Redrive {
        #[command(flatten)]
        config: ConfigArg,
        /// Dead-letter topic (default: dead_letter.topic from the config).
        #[arg(long)]
        topic: Option<String>,
        /// `PARTITION:OFFSET` of a dead letter to redrive, as `dlq list` prints it (repeatable);
        /// one that no letter has fails the redrive, which then sends nothing.
        #[arg(long = "position", value_parser = parse_position)]
        positions: Vec<(i32, i64)>,
        /// Redrive every dead letter that matches the other filters.
        #[arg(long)]
        all: bool,
        /// Only letters that came from this topic.
        #[arg(long)]
        source_topic: Option<String>,
        /// Only letters of this error class: permanent or transient.
        #[arg(long)]
        error_class: Option<String>,
        /// Show what would be redriven; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_position(s: &str) -> Result<(i32, i64), String> {
    let (p, o) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not PARTITION:OFFSET"))?;
    Ok((
        p.parse()
            .map_err(|_| format!("partition {p:?} is not a number"))?,
        o.parse()
            .map_err(|_| format!("offset {o:?} is not a number"))?,
    ))
}

/// Runs a dlq command; returns the exit code.
pub async fn run(cmd: DlqCmd) -> Result<i32> {
    match cmd {
        DlqCmd::List { config: arg, topic } => {
            let cfg = load(&arg)?.bus;
            let cluster = connect(&cfg, false, "dlq list")?;
            let topic = topic.unwrap_or(cfg.dead_letter.topic);
            for l in letters(&cluster.client, &topic)? {
                println!("{}", l.to_json());
            }
            Ok(0)
        }
        DlqCmd::Redrive {
            config: arg,
            topic,
            positions,
            all,
            source_topic,
            error_class,
            dry_run,
        } => {
            if positions.is_empty() && !all {
                bail!("say which dead letters to redrive: --position PARTITION:OFFSET (repeatable) or --all");
            }
            if let Some(c) = error_class.as_deref() {
                if !ERROR_CLASSES.contains(&c) {
                    bail!(
                        "--error-class {c:?}: no such error class (dead letters are {}; an undecodable record is permanent)",
                        ERROR_CLASSES.join(" or ")
                    );
                }
            }
            let cfg = load(&arg)?.bus;
            let cluster = connect(&cfg, false, "dlq redrive")?;
            let topic = topic.unwrap_or(cfg.dead_letter.topic);
            let letters = letters(&cluster.client, &topic)?;
            let filter = RedriveFilter {
                positions,
                source_topic,
                error_class,
            };
            let missing = filter.missing_positions(&letters);
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                bail!(
                    "no dead letter at position {} in {topic} ({} letter(s) there; `l2f dlq list` prints their positions); nothing redriven",
                    list.join(", "),
                    letters.len()
                );
            }
            if let Some(l) = letters.iter().find(|l| {
                l.from_feed()
                    && filter
                        .positions
                        .contains(&(l.record.partition, l.record.offset))
            }) {
                bail!(
                    "dead letter {} holds a change of the app feed {} (position {}) that never became an event: it cannot be redriven into Kafka; fix it in the app (the change is the letter's value); nothing redriven",
                    l.position(),
                    l.source_topic,
                    l.source_offset
                );
            }
            let from_feeds = letters
                .iter()
                .filter(|l| filter.matches(l) && l.from_feed())
                .count();
            if from_feeds > 0 {
                eprintln!("note: {from_feeds} selected letter(s) hold changes of an app's feed, not records: left out (fix them in the app)");
            }
            let chosen: Vec<&DeadLetter> = letters
                .iter()
                .filter(|l| filter.matches(l) && !l.from_feed())
                .collect();
            if chosen.is_empty() {
                let mut asked = vec![if filter.positions.is_empty() {
                    "--all".to_string()
                } else {
                    "the positions".to_string()
                }];
                if let Some(t) = &filter.source_topic {
                    asked.push(format!("--source-topic {t}"));
                }
                if let Some(c) = &filter.error_class {
                    asked.push(format!("--error-class {c}"));
                }
                bail!(
                    "no dead letter in {topic} matches {} ({} letter(s) there); nothing redriven",
                    asked.join(" "),
                    letters.len()
                );
            }
            if dry_run {
                for l in &chosen {
                    println!("would redrive {}", l.to_json());
                }
                return Ok(0);
            }
            let producer = Producer::new(&cluster.client)?;
            let n = redrive(&producer, &letters, &filter).await?;
            println!("redrove {n} dead letter(s) from {topic}");
            Ok(0)
        }
    }
}

fn letters(client: &rdkafka::ClientConfig, topic: &str) -> Result<Vec<DeadLetter>> {
    Ok(read_all(client, topic, Duration::from_secs(30))
        .with_context(|| format!("reading dead-letter topic {topic}"))?
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect())
}
