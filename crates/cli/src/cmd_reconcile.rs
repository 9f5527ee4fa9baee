//! `l2f reconcile`: the event log folded into the expected state of every account and
//! subscription, compared with what Zuora, Salesforce's billing mirror and the customers app
//! hold; drift reported as a table or JSON; `--fix` re-emits the events that repair it
//! through the normal connectors. Reads the log like `l2f replay` (no consumer group, no
//! commit). Exit code: 0 no drift, 1 drift, 2 error.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use l2f_connector_customers::CustomersConfig;
use l2f_connector_kit::connector::parse_section;
use l2f_connector_salesforce::SalesforceConfig;
use l2f_connector_zuora::ZuoraConfig;
use l2f_reconcile::{Apps, Options, ZuoraApp};
use std::sync::Arc;

use crate::cluster::{connect, load};
use crate::ConfigArg;

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document for tools.
    Json,
}

/// `l2f reconcile` arguments.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Re-emit the events that repair the drift (dry by default: the report says what
    /// would be re-emitted).
    #[arg(long)]
    fix: bool,
    /// Topics folded (repeatable or comma separated; default: the Zuora connector's orders
    /// and subscriptions topics, and `licenses` when the catalog has it).
    #[arg(long = "topic", short = 't', value_delimiter = ',')]
    topics: Vec<String>,
    /// Apps compared (zuora, salesforce, customers; default: every one configured).
    #[arg(long = "app", value_delimiter = ',')]
    apps: Vec<String>,
}

/// Runs `l2f reconcile`; an error is reported here and exits 2 (1 means drift).
pub async fn run(args: ReconcileArgs) -> Result<i32> {
    match reconcile(args).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            Ok(2)
        }
    }
}

/// The topics on the cluster.
fn existing(client: &rdkafka::ClientConfig, timeout: Duration) -> Result<Vec<String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client.create().context("metadata client")?;
    let md = consumer
        .fetch_metadata(None, timeout.max(Duration::from_secs(5)))
        .context("reading the cluster's topics")?;
    Ok(md.topics().iter().map(|t| t.name().to_string()).collect())
}

const APPS: [&str; 3] = ["zuora", "salesforce", "customers"];

async fn reconcile(args: ReconcileArgs) -> Result<i32> {
    for a in &args.apps {
        if !APPS.contains(&a.as_str()) {
            bail!(
                "--app {a}: not an app reconcile reads (known: {})",
                APPS.join(", ")
            );
        }
    }
    let loaded = load(&args.config)?;
    let cfg = loaded.bus;
    let rules = Arc::new(loaded.rules);
    let (apps, orders, subscriptions) = apps_of(&cfg, &rules, &args.apps)?;
    let cluster = connect(&cfg, false, "reconcile")?;
    let topics = if args.topics.is_empty() {
        let mut t = vec![orders, subscriptions.clone()];
        if loaded.catalog.topics.iter().any(|c| c.name == "licenses") {
            t.push("licenses".into());
        }
        // A default topic not created yet holds no events (a topic named with --topic must
        // exist).
        let present = existing(&cluster.client, cfg.kafka.connect_timeout)?;
        t.retain(|name| {
            let there = present.iter().any(|p| p == name);
            if !there {
                eprintln!("note: topic {name} does not exist yet: no events to fold from it");
            }
            there
        });
        t
    } else {
        args.topics.clone()
    };
    let opts = Options {
        topics,
        timeout: cfg.kafka.connect_timeout.max(Duration::from_secs(10)),
        dead_letters: Some(cfg.dead_letter.topic.clone()),
    };
    let run = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let report = l2f_reconcile::reconcile(
        &cluster.client,
        &apps,
        &opts,
        args.fix.then_some(run.as_str()),
        &subscriptions,
    )
    .await?;
    match args.format {
        OutputFormat::Table => print!("{}", report.table()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.drifted() { 1 } else { 0 })
}

/// The apps to compare, built from their connectors' sections (only `only`, or every one
/// configured), and the orders and subscriptions topics the Zuora connector uses.
pub fn apps_of(
    cfg: &l2f_bus::BusConfig,
    rules: &Arc<l2f_rules::Rules>,
    only: &[String],
) -> Result<(Apps, String, String)> {
    let section = |name: &str| cfg.connectors.get(name);
    let wanted = |name: &str| only.is_empty() || only.iter().any(|a| a == name);
    let zuora_cfg: Option<ZuoraConfig> = match section("zuora") {
        Some(s) => Some(parse_section("zuora", s)?),
        None => None,
    };
    let mut apps = Apps::default();
    for name in APPS.iter().filter(|n| wanted(n)) {
        let Some(s) = section(name) else {
            if !only.is_empty() {
                bail!("--app {name}: [connectors.{name}] is not configured");
            }
            continue;
        };
        match *name {
            "zuora" => {
                let z = zuora_cfg.as_ref().context("zuora section")?;
                apps.zuora = Some(ZuoraApp {
                    client: Arc::new(
                        z.client()
                            .map_err(|e| anyhow::anyhow!("connectors.zuora: {e}"))?,
                    ),
                    profiles: z.profiles(),
                    rules: rules.clone(),
                });
            }
            "salesforce" => {
                let c: SalesforceConfig = parse_section("salesforce", s)?;
                apps.salesforce =
                    Some(Arc::new(c.client().map_err(|e| {
                        anyhow::anyhow!("connectors.salesforce: {e}")
                    })?));
            }
            _ => {
                let c: CustomersConfig = parse_section("customers", s)?;
                apps.customers = Some(Arc::new(c.client()?));
            }
        }
    }
    if apps.zuora.is_none() && apps.salesforce.is_none() && apps.customers.is_none() {
        bail!("no app to compare: configure [connectors.zuora], [connectors.salesforce] or [connectors.customers]");
    }
    let (orders, subscriptions) = zuora_cfg.as_ref().map_or_else(
        || ("orders".to_string(), "subscriptions".to_string()),
        |z| (z.orders_topic.clone(), z.subscriptions_topic.clone()),
    );
    Ok((apps, orders, subscriptions))
}
