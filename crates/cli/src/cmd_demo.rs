//! `l2f demo`: the hub's lead flow, end to end, with nothing installed.
//!
//! Web-form leads with free-text countries are normalised at the edge (handbook rule 1: "UK"
//! becomes GB; a country that cannot be mapped never becomes an event and is reported as
//! rejected, naming the field and the value). The rest become Avro `LeadCaptured` events on the
//! embedded broker's `leads` topic, and the real Marketo connector ([`MarketoSink`]) pushes
//! them through the at-least-once loop, over HTTP, to the Marketo mock served in-process on a
//! free loopback port. The demo spends Marketo's rate window first, so the first pushes are
//! answered 606 and retried after the window; leads missing a required field (rule 2) are
//! dead-lettered with the fields named. The summary accounts for every lead, checked against
//! what the Marketo mock holds; anything unaccounted for ends the demo non-zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{CancellationToken, LoopStats, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Context, Pipelines};
use l2f_contracts::events::{Envelope, LeadCaptured, LeadSource, SourceSystem};
use l2f_contracts::{Codec, CountryCode};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::Value;

use crate::cluster::{connect, load, LoadedConfig};
use crate::connectors::build_all;
use crate::ConfigArg;

/// Options of `l2f demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How many web-form leads to send.
    #[arg(long, default_value_t = 24)]
    leads: usize,
}

/// The Marketo mock's rate limit in the demo: calls per window.
const RATE_CALLS: usize = 50;
/// The Marketo mock's rate window in the demo (Marketo's own is 20 s).
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// The Marketo sink's consumer group in the demo.
const GROUP: &str = "l2f-connector-marketo";
/// How long the demo waits for the loop before it calls the run stalled.
const STALL: Duration = Duration::from_secs(60);

/// What a web form hands the edge: free text, possibly incomplete.
struct Form {
    lead_id: String,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    country: String,
    source: LeadSource,
}

const COUNTRIES: [&str; 6] = ["UK", "Germany", "us", "Holland", "Australia", "France"];

/// The `i`-th form: every 7th from the 4th lacks a company (dead-lettered by the connector),
/// every 20th from the 12th names a country no one can map (rejected at the edge).
fn form(i: usize) -> Form {
    Form {
        lead_id: format!("lead-{i}"),
        email: format!("buyer{i}@example.com"),
        first_name: Some("Ada".into()),
        last_name: Some(format!("Lovelace-{i}")),
        company: (i % 7 != 3).then(|| format!("Company {i}")),
        country: if i % 20 == 11 {
            "Narnia".into()
        } else {
            COUNTRIES[i % COUNTRIES.len()].into()
        },
        source: LeadSource::VARIANTS[i % LeadSource::VARIANTS.len()],
    }
}

/// The edge: a form becomes an event only with a country that maps to an ISO code; the error
/// names the field and the value.
fn edge(f: Form) -> Result<LeadCaptured, String> {
    let country =
        CountryCode::normalise("LeadCaptured.country", &f.country).map_err(|v| v.to_string())?;
    Ok(LeadCaptured {
        envelope: Envelope {
            event_id: uuid::Uuid::new_v4(),
            occurred_at: chrono::Utc::now(),
            source: SourceSystem::CustomersApp,
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: None,
        },
        lead_id: f.lead_id,
        email: f.email,
        first_name: f.first_name,
        last_name: f.last_name,
        company: f.company,
        country: Some(country),
        lead_source: f.source,
        marketing_opt_in: true,
        utm_campaign: None,
    })
}

/// Spends what is left of the mock's rate window with reads, as a busy Marketo instance
/// would have, so the next pushes are answered 606. Returns the reads made.
async fn spend_rate_window(http: &reqwest::Client, base: &str, cfg: &MocksConfig) -> Result<usize> {
    let t: Value = http
        .get(format!("{base}/identity/oauth/token"))
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", cfg.marketo.client_id.as_str()),
            ("client_secret", cfg.marketo.client_secret.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = t["access_token"]
        .as_str()
        .context("the Marketo mock issued no token")?;
    let mut reads = 0;
    loop {
        let v: Value = http
            .get(format!("{base}/rest/v1/leads.json"))
            .query(&[
                ("filterType", "email"),
                ("filterValues", "nobody@example.com"),
            ])
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if v["success"] != true {
            return Ok(reads);
        }
        reads += 1;
        if reads > RATE_CALLS {
            bail!("the Marketo mock's rate limit did not engage after {reads} reads");
        }
    }
}

/// Marketo's leads as its admin API shows them.
async fn marketo_leads(http: &reqwest::Client, base: &str) -> Result<Vec<Value>> {
    let state: Value = http
        .get(format!("{base}/__admin/state"))
        .send()
        .await?
        .json()
        .await?;
    Ok(state["leads"]
        .as_object()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default())
}

/// Waits until the loop has finished `n` records (handled or dead-lettered).
async fn wait_for(stats: &LoopStats, n: u64, token: &CancellationToken) -> Result<()> {
    let start = Instant::now();
    while stats.handled() + stats.dead_lettered() < n {
        if start.elapsed() > STALL {
            token.cancel();
            bail!(
                "demo stalled: {} pushed, {} dead-lettered of {n}",
                stats.handled(),
                stats.dead_lettered()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the demo; returns the exit code.
pub async fn run(args: DemoArgs) -> Result<i32> {
    let LoadedConfig {
        bus: mut cfg,
        catalog,
        rules,
        ..
    } = load(&args.config)?;
    if cfg.kafka.bootstrap_servers.is_some() {
        println!("note: the demo runs on the embedded broker; ignoring kafka.bootstrap_servers");
        cfg.kafka.bootstrap_servers = None;
    }
    let cluster = connect(&cfg, true, "demo")?;
    let broker = cluster.embedded.as_ref().context("demo runs embedded")?;
    for t in &catalog.topics {
        broker.create_topic(&t.name, catalog.partitions(t), 1)?;
    }
    println!(
        "embedded broker at {} with the catalog's {} topics",
        broker.bootstrap_servers(),
        catalog.topics.len()
    );

    let mut mocks_cfg = MocksConfig::default();
    mocks_cfg.only(&["marketo".to_string()])?;
    mocks_cfg.without_https();
    mocks_cfg.marketo.rate_limit_calls = RATE_CALLS;
    mocks_cfg.marketo.rate_window_secs = RATE_WINDOW.as_secs();
    let mocks = server::start(&mocks_cfg).await?;
    let base = mocks
        .endpoint("marketo")
        .context("the Marketo mock did not start")?
        .http
        .clone();
    println!(
        "Marketo mock at {base} (rate limit {RATE_CALLS} calls per {} s window)",
        RATE_WINDOW.as_secs()
    );

    // The edge: free-text forms → events, or a rejection naming field and value.
    let codec = Arc::new(Codec::new());
    println!(
        "edge: {} web-form leads; free-text countries normalised to ISO 3166-1 alpha-2 (rule 1), e.g.:",
        args.leads
    );
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for i in 0..args.leads {
        let f = form(i);
        let (id, text) = (f.lead_id.clone(), f.country.clone());
        match edge(f).and_then(|l| {
            event_record(&codec, "leads", &l, None)
                .map(|r| (l, r))
                .map_err(|e| e.message().to_string())
        }) {
            Ok((l, r)) => {
                if i < COUNTRIES.len() {
                    println!(
                        "  {id}: country {text:?} → {}",
                        l.country.map_or("", |c| c.as_str())
                    );
                }
                events.push(r);
            }
            Err(e) => rejected.push((id, e)),
        }
    }
    println!("edge: {} rejected, never made into events:", rejected.len());
    for (id, e) in &rejected {
        println!("  {id}: {e}");
    }

    // The real connector, built through the registry from its configuration section, as
    // `l2f run` builds it from a file.
    cfg.connectors.insert(
        "marketo".into(),
        serde_json::json!({
            "base_url": base,
            "client_id": mocks_cfg.marketo.client_id,
            "client_secret": mocks_cfg.marketo.client_secret,
            "rate_window": format!("{}s", RATE_WINDOW.as_secs()),
            "group": GROUP,
        }),
    );
    let producer = Producer::new(&cluster.client)?;
    let token = CancellationToken::new();
    let ctx = Context {
        kafka: cluster.client.clone(),
        consumer: ConsumerConfig {
            commit_interval: Duration::from_millis(200),
            ..ConsumerConfig::default()
        },
        retry: RetryConfig {
            initial: Duration::from_millis(100),
            ..RetryConfig::default()
        },
        dead_letter_topic: cfg.dead_letter.topic.clone(),
        sources: cfg.sources.clone(),
        producer: producer.clone(),
        codec: codec.clone(),
        rules: std::sync::Arc::new(rules),
        shutdown: token.clone(),
        pipelines: Pipelines::default(),
        clock: l2f_bus::clock::wall(),
    };
    let mut joins = Vec::new();
    for c in build_all(&cfg)? {
        joins.push(tokio::spawn(c.start(ctx.clone())));
    }
    let stats = ctx
        .pipelines
        .wait_sink(GROUP, Duration::from_secs(10))
        .await
        .context("the Marketo sink did not start")?;

    // The first event alone, so the group has joined before Marketo's window is spent.
    let (first, rest): (&[OutRecord], &[OutRecord]) = events.split_at(events.len().min(1));
    producer.send_all(first, 1).await?;
    wait_for(&stats, first.len() as u64, &token).await?;
    let http = reqwest::Client::new();
    let reads = spend_rate_window(&http, &base, &mocks_cfg).await?;
    println!(
        "Marketo's rate window spent by {reads} other reads: the next pushes are answered 606"
    );
    producer.send_all(rest, 64).await?;
    println!(
        "produced {} LeadCaptured events to `leads` (Avro single-object, l2f.event-type and l2f.schema-id headers, keyed by lead id, idempotent, acks=all)",
        events.len(),
    );
    wait_for(&stats, events.len() as u64, &token).await?;
    token.cancel();
    for j in joins {
        j.await??;
    }

    let letters: Vec<DeadLetter> = read_all(
        &cluster.client,
        &cfg.dead_letter.topic,
        Duration::from_secs(10),
    )?
    .into_iter()
    .filter_map(DeadLetter::parse)
    .collect();
    println!(
        "pushed {} leads to Marketo in {} calls (up to 300 leads a call); {} pushes answered 606 and waited for the {} s window ({} retries in all); {} dead-lettered:",
        stats.handled(),
        stats.calls(),
        stats.unavailable(),
        RATE_WINDOW.as_secs(),
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
    let in_marketo = marketo_leads(&http, &base).await?.len();
    mocks.shutdown().await;
    println!("Marketo holds {in_marketo} leads (read back over its API)");
    let accounted = rejected.len() + in_marketo + letters.len();
    let unaccounted = args.leads as i64 - accounted as i64;
    println!(
        "summary: {} leads: {} rejected at the edge, {} produced, {} in Marketo, {} dead-lettered, {} unaccounted",
        args.leads,
        rejected.len(),
        events.len(),
        in_marketo,
        letters.len(),
        unaccounted
    );
    if unaccounted != 0 || stats.handled() as usize != in_marketo {
        bail!(
            "leads unaccounted for: {} from the forms, {} rejected, {} in Marketo ({} pushes), {} dead-lettered",
            args.leads,
            rejected.len(),
            in_marketo,
            stats.handled(),
            letters.len()
        );
    }
    Ok(0)
}
