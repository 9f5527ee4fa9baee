//! `l2f demo`: a year of customers through the whole hub, with nothing installed.
//!
//! The embedded broker (librdkafka's mock cluster), the six mock apps in-process on loopback,
//! every connector of the registry built from its configuration section as `l2f run` builds
//! it, and the apps' one simulated clock stepped from 2026-01-01 to 2027-02-01 (the 1st and the
//! 15th of each month), the hub following it. At each step the planned customers
//! ([`scenario`]) act through the apps' own APIs — forms, store purchases, closed-won deals,
//! EULA acceptances, seats added in Zuora, usage reports, auto-renew changes, cancellations, a
//! Silent profile, a declining card, an account that moves country at renewal — and a handful
//! of bad inputs; then the demo waits until the hub is quiet. At the end it reads every app
//! back and accounts for each record ([`report`]), and reconciles the event log against
//! Zuora, Salesforce and the customers app. Anything unaccounted for, or any drift, ends the
//! demo non-zero.

mod apps;
mod drive;
mod report;
pub mod scenario;
pub mod soak;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;
use l2f_bus::clock::ManualClock;
use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::{CancellationToken, Producer};
use l2f_connector_kit::{Context, PipelineView, Pipelines, ViewCounts};
use l2f_contracts::Codec;
use l2f_mocks::customers::Plan;
use l2f_mocks::kit::{FaultAction, FaultRule};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::json;

use crate::cluster::{connect, load, LoadedConfig};
use crate::connectors::build_all;
use crate::ConfigArg;

/// Options of `l2f demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How many customers the year brings.
    #[arg(long, default_value_t = 300)]
    customers: usize,
    /// Seed of the year's plan: the same seed plans the same year and prints the same summary.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Percent of the calls to every app that fail (429 and 503 with Retry-After, 500, a
    /// connection reset, 200 ms of latency, each a fifth of them), spread out: the hub must
    /// still lose and double nothing.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=50))]
    faults: u64,
    /// Takes Marketo down (every call answered 503) for this long, from the first of March
    /// of the simulated year: its sink must wait the outage out and lose nothing.
    #[arg(long, value_parser = humantime::parse_duration)]
    outage: Option<Duration>,
    /// Log lines to stderr (they break the progress display); otherwise to `--log-file`.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Where log lines go without `-v`.
    #[arg(long, default_value = "l2f-demo.log")]
    pub log_file: std::path::PathBuf,
}

/// The mail templates the hub ships (`deploy/templates/mail`), built in so the demo runs
/// from anywhere.
const TEMPLATES: [(&str, &str); 12] = [
    (
        "accept_terms.html",
        include_str!("../../../../deploy/templates/mail/accept_terms.html"),
    ),
    (
        "accept_terms.subject",
        include_str!("../../../../deploy/templates/mail/accept_terms.subject"),
    ),
    (
        "accept_terms.txt",
        include_str!("../../../../deploy/templates/mail/accept_terms.txt"),
    ),
    (
        "license.html",
        include_str!("../../../../deploy/templates/mail/license.html"),
    ),
    (
        "license.subject",
        include_str!("../../../../deploy/templates/mail/license.subject"),
    ),
    (
        "license.txt",
        include_str!("../../../../deploy/templates/mail/license.txt"),
    ),
    (
        "renewal_notice.html",
        include_str!("../../../../deploy/templates/mail/renewal_notice.html"),
    ),
    (
        "renewal_notice.subject",
        include_str!("../../../../deploy/templates/mail/renewal_notice.subject"),
    ),
    (
        "renewal_notice.txt",
        include_str!("../../../../deploy/templates/mail/renewal_notice.txt"),
    ),
    (
        "reseller_notification.html",
        include_str!("../../../../deploy/templates/mail/reseller_notification.html"),
    ),
    (
        "reseller_notification.subject",
        include_str!("../../../../deploy/templates/mail/reseller_notification.subject"),
    ),
    (
        "reseller_notification.txt",
        include_str!("../../../../deploy/templates/mail/reseller_notification.txt"),
    ),
];

/// The Zuora tenant's name in the source's event ids, so the summary can find the event of
/// each notification Zuora sent.
pub const ZUORA_TENANT: &str = "demo";

/// Zuora's callouts to the hub: the credentials both sides are given.
const CALLOUT_USER: &str = "l2f-callouts";
const CALLOUT_PASSWORD: &str = "l2f-callout-secret";

/// A free loopback port.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The mock apps of the demo: every one, plain HTTP, one simulated clock, Zuora's callouts
/// to the hub, and a store plan whose SKU finance never put in Zuora's catalog (a bad input).
fn mocks_config(callout_port: u16) -> MocksConfig {
    let mut mc = MocksConfig::default();
    mc.without_https();
    mc.clock = l2f_mocks::clock::ClockConfig {
        mode: l2f_mocks::clock::ClockMode::Simulated,
        start: format!("{}T09:00:00Z", scenario::step_date(0)),
        tick_ms: 0,
    };
    mc.zuora.callout_url = Some(format!("http://127.0.0.1:{callout_port}/callouts/zuora"));
    mc.zuora.callout_username = Some(CALLOUT_USER.into());
    mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
    mc.zuora.callout_retry_base_ms = 200;
    mc.customers.plans.insert(
        "enterprise".into(),
        Plan {
            saas_sku: "enterprise-saas-1y".into(),
            self_managed_sku: "enterprise-self-managed-1y".into(),
            unit_price: "199.00".into(),
        },
    );
    mc
}

/// `mc` with every app failing `percent` of its calls ([`fault_rules`]).
fn faulted(mut mc: MocksConfig, percent: u64) -> MocksConfig {
    let faults = fault_rules(percent);
    mc.salesforce.faults = faults.clone();
    mc.zuora.faults = faults.clone();
    mc.marketo.faults = faults.clone();
    mc.mail.faults = faults.clone();
    mc.customers.faults = faults.clone();
    mc.license.faults = faults;
    mc
}

/// The fault rules that fail `percent` of an app's calls: five kinds, each every
/// `500 / percent`-th request at its own phase, so no two in a row.
fn fault_rules(percent: u64) -> Vec<FaultRule> {
    if percent == 0 {
        return vec![];
    }
    let every = (500 / percent).max(5);
    let actions = [
        FaultAction::Status {
            status: 429,
            retry_after: Some(1),
        },
        FaultAction::Status {
            status: 500,
            retry_after: None,
        },
        FaultAction::Status {
            status: 503,
            retry_after: Some(1),
        },
        FaultAction::Reset,
        FaultAction::Latency { ms: 200 },
    ];
    actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| FaultRule {
            every: Some(every),
            phase: (i as u64 * every / 5 + 1) % every,
            ..FaultRule::on("", action)
        })
        .collect()
}

/// Every connector's section, as an operator would write them for these mocks.
fn connector_sections(
    mc: &MocksConfig,
    base: &dyn Fn(&str) -> String,
    callout_port: u16,
    templates: &std::path::Path,
) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "customers",
            json!({"base_url": base("customers"), "api_token": mc.customers.api_token}),
        ),
        (
            "license",
            json!({"base_url": base("license"), "api_token": mc.license.api_token}),
        ),
        (
            "salesforce",
            json!({
                "login_url": base("salesforce"),
                "client_id": mc.salesforce.client_id,
                "client_secret": mc.salesforce.client_secret,
                "username": mc.salesforce.username,
                "password": mc.salesforce.password,
                "usage_topic": "usage",
                "true_up_group": "l2f-connector-salesforce-true-ups",
            }),
        ),
        (
            "zuora",
            json!({
                "base_url": base("zuora"),
                "client_id": mc.zuora.client_id,
                "client_secret": mc.zuora.client_secret,
                "callout_listen": format!("127.0.0.1:{callout_port}"),
                "callout_username": CALLOUT_USER,
                "callout_password": CALLOUT_PASSWORD,
                "history_poll_interval": "5s",
                "tenant": ZUORA_TENANT,
            }),
        ),
        (
            "marketo",
            json!({
                "base_url": base("marketo"),
                "client_id": mc.marketo.client_id,
                "client_secret": mc.marketo.client_secret,
            }),
        ),
        (
            "mail",
            json!({
                "base_url": base("mail"),
                "domain": mc.mail.domains.first().cloned().unwrap_or_else(|| "mg.l2f.example".into()),
                "api_key": mc.mail.api_key,
                "from": "GitLab <noreply@mg.l2f.example>",
                "templates_dir": templates,
                "reseller_notification_to": "partners@l2f.example",
                "events_settle": "1s",
            }),
        ),
        ("notifications", json!({})),
    ]
}

/// Runs the demo; returns the exit code.
pub async fn run(args: DemoArgs) -> Result<i32> {
    let started = Instant::now();
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
    let plan = scenario::Scenario::plan(args.customers, args.seed);
    println!(
        "l2f demo: {} customers over a simulated year (seed {}), every connector, the embedded broker and the six mock apps in-process; logs in {}",
        args.customers,
        args.seed,
        if args.verbose {
            "stderr".to_string()
        } else {
            args.log_file.display().to_string()
        }
    );

    let cluster = connect(&cfg, true, "demo")?;
    let broker = cluster.embedded.as_ref().context("demo runs embedded")?;
    for t in &catalog.topics {
        broker.create_topic(&t.name, catalog.partitions(t), 1)?;
    }

    let callout_port = free_port()?;
    let mc = faulted(mocks_config(callout_port), args.faults);
    let mocks = server::start(&mc).await?;
    let base = |app: &str| {
        mocks
            .endpoint(app)
            .map(|e| e.http.clone())
            .unwrap_or_default()
    };
    let templates = tempfile_dir()?;
    for (name, text) in TEMPLATES {
        std::fs::write(templates.join(name), text)?;
    }
    for (name, section) in connector_sections(&mc, &base, callout_port, &templates) {
        cfg.connectors.insert(name.to_string(), section);
    }
    let connectors = build_all(&cfg)?;
    crate::connectors::check_pairing(&connectors, &rules)?;
    let rules = Arc::new(rules);
    if args.faults > 0 {
        println!(
            "every app fails {}% of its calls: 429 and 503 with Retry-After, 500, connection resets, 200 ms latency",
            args.faults
        );
    }

    let clock = ManualClock::at(
        chrono::DateTime::parse_from_rfc3339(&mc.clock.start)?.with_timezone(&chrono::Utc),
    );
    let token = CancellationToken::new();
    let producer = Producer::new(&cluster.client)?;
    // Every hop of a flow is a fetch that librdkafka holds up to fetch.wait.max.ms (500 ms)
    // when the partition is idle; on the in-process broker a short wait costs nothing and a
    // purchase crosses its five hops in well under a second.
    let mut kafka = cluster.client.clone();
    kafka.set("fetch.wait.max.ms", "10");
    let ctx = Context {
        kafka,
        consumer: ConsumerConfig {
            commit_interval: Duration::from_millis(200),
            ..ConsumerConfig::default()
        },
        // Quick first retries (the year runs in seconds), but as many as an operator's
        // default gives time for (about half a minute): an EULA acceptance may wait that long
        // for the registration it follows when the apps fail calls (`--faults`).
        retry: RetryConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 20,
            ..RetryConfig::default()
        },
        dead_letter_topic: cfg.dead_letter.topic.clone(),
        sources: l2f_bus::config::SourcesConfig {
            poll_interval: Duration::from_millis(100),
            ..cfg.sources.clone()
        },
        producer,
        codec: Arc::new(Codec::new()),
        rules: rules.clone(),
        shutdown: token.clone(),
        pipelines: Pipelines::default(),
        clock: clock.clone(),
    };
    let mut joins = Vec::new();
    for c in connectors {
        let name = c.name();
        let start = c.start(ctx.clone());
        joins.push(tokio::spawn(async move {
            start.await.with_context(|| format!("connector {name}"))
        }));
    }

    let endpoints = server::APPS
        .iter()
        .map(|a| (a.to_string(), base(a)))
        .collect();
    let apps = apps::AppsHttp::new(endpoints, mc.clone())?;
    let mut driver = drive::Driver::new(&apps, &ctx.pipelines, drive::HubClock::Shared(clock));
    if let Some(d) = args.outage {
        driver.outage(
            "marketo",
            scenario::OUTAGE_STEP,
            d,
            fault_rules(args.faults),
        );
    }
    let outcome = driver.year(&plan).await;
    let ran = started.elapsed();
    let result = match outcome {
        Ok(()) => report::summarise(&cluster.client, &cfg, &apps, &plan, &driver, ran)
            .await
            .map(|s| s.code),
        Err(e) => Err(e),
    };
    token.cancel();
    for j in joins {
        match tokio::time::timeout(Duration::from_secs(20), j).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("error: {e:#}"),
            Ok(Err(e)) => eprintln!("error: connector task: {e}"),
            Err(_) => eprintln!("error: a connector did not stop within 20 s"),
        }
    }
    mocks.shutdown().await;
    let _ = std::fs::remove_dir_all(&templates);
    let code = result?;
    println!("demo took {:.1} s", started.elapsed().as_secs_f64());
    Ok(code)
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("l2f-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What the hub's pipelines have done so far, summed: the demo's idea of "busy".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// Records handled, retried or dead-lettered by the sinks, and made by the sources.
    pub work: u64,
    /// Records held in memory or waiting by the sinks.
    pub pending: i64,
}

/// The sum over every pipeline.
pub fn activity(views: &[PipelineView]) -> Activity {
    let mut a = Activity::default();
    for v in views {
        match v.counts {
            ViewCounts::Sink {
                handled,
                retries,
                dead_lettered,
                in_memory,
                waiting,
                ..
            } => {
                a.work += handled + retries + dead_lettered;
                a.pending += in_memory + waiting;
            }
            ViewCounts::Source {
                records,
                transactions,
                ..
            } => a.work += records + transactions,
        }
    }
    a
}

/// Records handled per connector so far (sinks' records and sources' records).
pub fn per_connector(views: &[PipelineView]) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for v in views {
        let n = match v.counts {
            ViewCounts::Sink { handled, .. } => handled,
            ViewCounts::Source { records, .. } => records,
        };
        *out.entry(v.connector.clone()).or_insert(0) += n;
    }
    out
}
