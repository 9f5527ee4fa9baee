//! `l2f run`: the long-running hub process on a real cluster (or the embedded broker).
//!
//! It runs, side by side, each as its own consumer group:
//! - the audit-log pipeline: every record of the catalog's event topics, with its position,
//!   key, event type and trace id, as a JSON line — the trail auditors replay;
//! - every connector configured under `[connectors.*]`, built through the registry
//!   ([`crate::connectors::REGISTRY`]), each pipeline its own consumer group or source.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use l2f_bus::consumer::shutdown_on_signals;
use l2f_bus::headers::{TraceParent, EVENT_TYPE, TRACEPARENT};
use l2f_bus::topics::{apply, ApplyOptions, Outcome};
use l2f_bus::{Handler, HandlerError, Producer, Record};
use l2f_connector_kit::{Context, Pipelines};
use l2f_contracts::Codec;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::cluster::{connect, load, LoadedConfig};
use crate::connectors::check_pairing;
use crate::ops::Ops;
use crate::ConfigArg;

/// Options of `l2f run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Consumer group of the audit-log pipeline.
    #[arg(long, default_value = "l2f-audit-log")]
    group: String,
    /// Where audit lines go: a file (appended) or `-` for stdout.
    #[arg(long, default_value = "-")]
    audit_out: String,
    /// Topics to follow (default: every catalog topic but the dead letters).
    #[arg(long, value_delimiter = ',')]
    topics: Vec<String>,
}

struct AuditLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Handler for AuditLog {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        let trace = r.header_str(TRACEPARENT).and_then(TraceParent::parse);
        let line = serde_json::json!({
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "timestamp_ms": r.timestamp_ms,
            "key": r.key_str(),
            "event_type": r.header_str(EVENT_TYPE),
            "trace_id": trace.map(|t| t.trace_id_hex()),
            "payload_bytes": r.payload.as_ref().map_or(0, Vec::len),
        });
        let mut out = self
            .out
            .lock()
            .map_err(|_| HandlerError::permanent("audit output poisoned"))?;
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| HandlerError::transient(format!("writing audit line: {e}")))
    }
}

/// Runs until SIGINT/SIGTERM; returns the exit code.
impl RunArgs {
    /// The `[traces]` section, read before anything else so the exporter is in place when the
    /// first span is made; `None` when the configuration does not load (`run` then reports why).
    pub fn traces(&self) -> Option<l2f_bus::config::TracesConfig> {
        l2f_bus::config::load::<l2f_bus::BusConfig>(self.config.config.as_deref())
            .ok()
            .map(|c| c.traces)
    }
}

pub async fn run(args: RunArgs) -> Result<i32> {
    let LoadedConfig {
        bus: cfg,
        catalog,
        rules,
        connectors,
        ..
    } = load(&args.config)?;
    let rules = Arc::new(rules);
    check_pairing(&connectors, &rules)?;
    let cluster = connect(&cfg, true, "run")?;
    let topics: Vec<String> = if args.topics.is_empty() {
        catalog
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| *t != cfg.dead_letter.topic && *t != cfg.sources.offsets_topic)
            .collect()
    } else {
        args.topics.clone()
    };
    if let Some(broker) = &cluster.embedded {
        for t in &catalog.topics {
            broker.create_topic(&t.name, catalog.partitions(t), 1)?;
        }
    } else {
        if cfg.topics.create_missing {
            let opts = ApplyOptions {
                dry_run: false,
                replication_factor: cfg.topics.replication_factor,
                timeout: Some(cfg.kafka.connect_timeout.max(Duration::from_secs(10))),
            };
            for outcome in apply(&cluster.client, &catalog, &opts).await? {
                if let Outcome::Created { topic, .. } = &outcome {
                    tracing::info!(%topic, "topic created (topics.create_missing)");
                }
            }
        }
        let mut needed = topics.clone();
        needed.push(cfg.dead_letter.topic.clone());
        needed.extend(connectors.iter().flat_map(|c| c.topics()));
        if connectors.iter().any(|c| c.has_source()) {
            needed.push(cfg.sources.offsets_topic.clone());
        }
        check_topics(&cluster, &needed)?;
    }
    let out: Box<dyn Write + Send> = if args.audit_out == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args.audit_out)
                .with_context(|| format!("opening audit output {}", args.audit_out))?,
        )
    };
    let shutdown = shutdown_on_signals();
    let clock = l2f_connector_kit::clock::from_config(&cfg.clock, &shutdown).await?;
    let ctx = Context {
        kafka: cluster.client.clone(),
        consumer: cfg.consumer.clone(),
        retry: cfg.retry.clone(),
        dead_letter_topic: cfg.dead_letter.topic.clone(),
        sources: cfg.sources.clone(),
        producer: Producer::new(&cluster.client)?,
        codec: Arc::new(Codec::new()),
        rules,
        shutdown,
        pipelines: Pipelines::default(),
        clock,
    };
    let audit = ctx.sink(
        "audit",
        &args.group,
        topics,
        Arc::new(AuditLog {
            out: Mutex::new(out),
        }),
    );
    let mut running: Vec<tokio::task::JoinHandle<Result<()>>> = vec![tokio::spawn(async move {
        Ok(audit
            .await
            .map_err(|e| anyhow!("audit log task failed: {e}"))??)
    })];
    for c in connectors {
        let name = c.name();
        let start = c.start(ctx.clone());
        running.push(tokio::spawn(async move {
            start.await.with_context(|| format!("connector {name}"))
        }));
    }
    // Instances of the connectors for `/healthz/<connector>` only (never started).
    let ops = Ops::with_health(ctx.pipelines.clone(), crate::connectors::build_all(&cfg)?);
    if let Some(addr) = cfg.ops.listen {
        ops.clone().serve(addr).await?;
    }
    ops.set_ready(true);
    // The first pipeline to fail stops the others; all are awaited before exit.
    let mut first_error = None;
    for r in futures::future::join_all(running.into_iter().map(|h| {
        let stop = ctx.shutdown.clone();
        async move {
            let r = h.await;
            if !matches!(r, Ok(Ok(()))) {
                stop.cancel();
            }
            r
        }
    }))
    .await
    {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(e) => first_error = first_error.or(Some(anyhow!("pipeline task failed: {e}"))),
        }
    }
    ops.set_ready(false);
    if let Some(e) = first_error {
        return Err(e);
    }
    drop(cluster);
    Ok(0)
}

/// Fails, naming them, when topics the pipelines need are missing on the cluster.
fn check_topics(cluster: &crate::cluster::Cluster, needed: &[String]) -> Result<()> {
    let probe: BaseConsumer = cluster.client.create().context("metadata client")?;
    let md = probe
        .fetch_metadata(None, Duration::from_secs(10))
        .context("fetching topic metadata")?;
    let present: Vec<&str> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    let mut missing: Vec<&str> = needed
        .iter()
        .map(String::as_str)
        .filter(|t| !present.contains(t))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        bail!(
            "topics missing on the cluster: {} (run `l2f topics apply`)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_example_config_declares_a_valid_marketo_connector() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/l2f.example.toml");
        let cfg: l2f_bus::BusConfig = l2f_bus::config::load(Some(&path)).unwrap();
        let err = crate::connectors::build_all(&cfg)
            .err()
            .expect("its secret variable is unset")
            .to_string();
        assert!(err.contains("L2F_MARKETO_CLIENT_SECRET"), "{err}");
        // Only this test reads the variable.
        std::env::set_var("L2F_MARKETO_CLIENT_SECRET", "from-the-environment");
        let built = crate::connectors::build_all(&cfg).unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].name(), "marketo");
        assert_eq!(built[0].topics(), vec!["leads".to_string()]);
    }

    #[test]
    fn an_unknown_key_in_a_connector_section_is_named() {
        let mut cfg = l2f_bus::BusConfig::default();
        cfg.connectors.insert(
            "marketo".into(),
            serde_json::json!({"base_url": "http://x", "client_id": "c", "client_secret": "s", "lookup": "email"}),
        );
        let err = crate::connectors::build_all(&cfg)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("connectors.marketo") && err.contains("lookup"),
            "{err}"
        );
        cfg.connectors.clear();
        cfg.connectors
            .insert("markteo".into(), serde_json::json!({}));
        let err = crate::connectors::build_all(&cfg)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("connectors.markteo: no such connector (known: ")
                && err.contains("marketo"),
            "{err}"
        );
    }
}
