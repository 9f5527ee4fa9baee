//! `l2f demo`: the bus's guarantees, shown on the embedded broker with nothing installed.
//!
//! Web-form leads flow into the `leads` topic; a stand-in for the Marketo push (rule 2 of the
//! handbook: a lead goes to Marketo only with email, first and last name, company, country and
//! lead source) handles them through the at-least-once loop. Marketo's rate limit answers
//! some pushes with a transient error and a Retry-After hint, which the loop honours; leads
//! missing required fields or carrying a non-ISO country are dead-lettered with the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::consumer::LoopSettings;
use l2f_bus::dlq::{DeadLetter, DeadLetters};
use l2f_bus::headers::EVENT_TYPE;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::topics::Catalog;
use l2f_bus::CancellationToken;
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};

use crate::cluster::{config, connect};
use crate::ConfigArg;

/// Options of `l2f demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How many leads to send.
    #[arg(long, default_value_t = 24)]
    leads: usize,
}

const REQUIRED: [&str; 6] = [
    "email",
    "first_name",
    "last_name",
    "company",
    "country",
    "lead_source",
];

/// The Marketo push, simulated in-process: every 5th first attempt is rate-limited.
struct MarketoPush {
    attempts: Mutex<BTreeMap<String, u32>>,
    pushed: Mutex<Vec<String>>,
}

impl Handler for MarketoPush {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        let lead: serde_json::Value =
            serde_json::from_slice(r.payload.as_deref().unwrap_or_default())
                .map_err(|e| HandlerError::permanent(format!("payload is not a lead: {e}")))?;
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|f| {
                lead.get(f)
                    .and_then(|v| v.as_str())
                    .is_none_or(|v| v.trim().is_empty())
            })
            .collect();
        if !missing.is_empty() {
            return Err(HandlerError::permanent(format!(
                "lead {} is not ready for Marketo: missing required field(s) {}",
                r.key_str(),
                missing.join(", ")
            )));
        }
        let country = lead["country"].as_str().unwrap_or_default();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) || country == "UK"
        {
            return Err(HandlerError::permanent(format!(
                "country: {country:?} is not an ISO 3166-1 alpha-2 code"
            )));
        }
        let n = {
            let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = a.entry(r.key_str()).or_default();
            *n += 1;
            *n
        };
        let idx: usize = r.key_str().trim_start_matches("lead-").parse().unwrap_or(0);
        if n == 1 && idx % 5 == 0 {
            return Err(HandlerError::retry_after(
                "Marketo 606: max rate limit '100' exceeded with in '20' secs",
                Duration::from_millis(500),
            ));
        }
        self.pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.key_str());
        Ok(())
    }
}

const COUNTRIES: [&str; 6] = ["US", "DE", "NL", "GB", "AU", "FR"];
const SOURCES: [&str; 4] = ["trial", "sign-up", "contact sales", "web form"];

fn lead(i: usize) -> serde_json::Value {
    let mut l = serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "email": format!("buyer{i}@example.com"),
        "first_name": "Ada",
        "last_name": format!("Lovelace-{i}"),
        "company": format!("Company {i}"),
        "country": COUNTRIES[i % 6],
        "lead_source": SOURCES[i % 4],
    });
    if i % 11 == 7 {
        l.as_object_mut().map(|o| o.remove("company"));
    }
    if i % 13 == 9 {
        l["country"] = "UK".into();
    }
    l
}

/// Runs the demo; returns the exit code.
pub async fn run(args: DemoArgs) -> Result<i32> {
    let mut cfg = config(&args.config)?;
    if cfg.kafka.bootstrap_servers.is_some() {
        println!("note: the demo runs on the embedded broker; ignoring kafka.bootstrap_servers");
        cfg.kafka.bootstrap_servers = None;
    }
    let catalog = Catalog::load(&cfg.topics.catalog)?;
    let cluster = connect(&cfg, true, "demo")?;
    let broker = cluster.embedded.as_ref().expect("demo runs embedded");
    for t in &catalog.topics {
        broker.create_topic(&t.name, catalog.partitions(t), 1)?;
    }
    println!(
        "embedded broker at {} with the catalog's {} topics",
        broker.bootstrap_servers(),
        catalog.topics.len()
    );

    let producer = Producer::new(&cluster.client)?;
    let records: Vec<OutRecord> = (0..args.leads)
        .map(|i| {
            OutRecord::new("leads", format!("lead-{i}"), lead(i).to_string())
                .with_header(EVENT_TYPE, "LeadCaptured")
        })
        .collect();
    producer.send_all(&records, 64).await?;
    println!(
        "produced {} LeadCaptured events to `leads` (keyed by lead id, idempotent, acks=all)",
        records.len()
    );

    let handler = Arc::new(MarketoPush {
        attempts: Mutex::default(),
        pushed: Mutex::default(),
    });
    let dlq = DeadLetters::new(producer.clone(), &cfg.dead_letter.topic, "l2f-demo-marketo");
    let settings = LoopSettings {
        group_id: "l2f-demo-marketo".into(),
        topics: vec!["leads".into()],
        consumer: ConsumerConfig {
            commit_interval: Duration::from_millis(200),
            ..ConsumerConfig::default()
        },
        retry: RetryConfig {
            initial: Duration::from_millis(100),
            ..RetryConfig::default()
        },
    };
    let lp = ConsumerLoop::new(&cluster.client, settings, handler.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    let start = Instant::now();
    while (stats.handled() + stats.dead_lettered()) < args.leads as u64 {
        if start.elapsed() > Duration::from_secs(60) {
            token.cancel();
            bail!(
                "demo stalled: {} handled, {} dead-lettered of {}",
                stats.handled(),
                stats.dead_lettered(),
                args.leads
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    join.await??;

    let letters: Vec<DeadLetter> = read_all(
        &cluster.client,
        &cfg.dead_letter.topic,
        Duration::from_secs(10),
    )?
    .into_iter()
    .filter_map(DeadLetter::parse)
    .collect();
    println!(
        "pushed {} leads to Marketo; {} retries after rate limits (Retry-After honoured); {} dead-lettered:",
        stats.handled(),
        stats.retries(),
        letters.len()
    );
    for l in &letters {
        println!(
            "  {} from {}[{}]@{}: {} ({} attempt{})",
            l.record.key_str(),
            l.source_topic,
            l.source_partition,
            l.source_offset,
            l.error_message,
            l.attempts,
            if l.attempts == 1 { "" } else { "s" }
        );
    }
    println!(
        "summary: {} produced, {} handled, {} dead-lettered, 0 lost",
        args.leads,
        stats.handled(),
        letters.len()
    );
    if stats.handled() as usize + letters.len() != args.leads {
        bail!("records unaccounted for");
    }
    Ok(0)
}
