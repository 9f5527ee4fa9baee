//! `l2f run`: the long-running hub process on a real cluster (or the embedded broker).
//!
//! It runs, side by side, each as its own consumer group:
//! - the audit-log pipeline: every record of the catalog's event topics, with its position,
//!   key, event type and trace id, as a JSON line — the trail auditors replay;
//! - every connector configured under `[connectors.*]` (today: `marketo`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use l2f_bus::consumer::{shutdown_on_signals, LoopSettings};
use l2f_bus::dlq::DeadLetters;
use l2f_bus::headers::{TraceParent, EVENT_TYPE, TRACEPARENT};
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};
use l2f_connector_marketo::MarketoSink;
use l2f_contracts::Codec;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::cluster::{connect, load, LoadedConfig};
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
pub async fn run(args: RunArgs) -> Result<i32> {
    let LoadedConfig {
        bus: cfg, catalog, ..
    } = load(&args.config)?;
    let marketo = crate::cluster::marketo(&cfg)?;
    let cluster = connect(&cfg, true, "run")?;
    let topics: Vec<String> = if args.topics.is_empty() {
        catalog
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| *t != cfg.dead_letter.topic)
            .collect()
    } else {
        args.topics.clone()
    };
    if let Some(broker) = &cluster.embedded {
        for t in &catalog.topics {
            broker.create_topic(&t.name, catalog.partitions(t), 1)?;
        }
    } else {
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
        let mut needed = topics.clone();
        needed.push(cfg.dead_letter.topic.clone());
        needed.extend(marketo.iter().map(|m| m.topic.clone()));
        let missing: Vec<&String> = needed
            .iter()
            .filter(|t| !present.contains(&t.as_str()))
            .collect();
        if !missing.is_empty() {
            bail!(
                "topics missing on the cluster: {} (run `l2f topics apply`)",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
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
    let producer = Producer::new(&cluster.client)?;
    let settings = |group: &str, topics: Vec<String>| LoopSettings {
        group_id: group.to_string(),
        topics,
        consumer: cfg.consumer.clone(),
        retry: cfg.retry.clone(),
    };
    let dlq = |group: &str| DeadLetters::new(producer.clone(), &cfg.dead_letter.topic, group);
    let audit = ConsumerLoop::new(
        &cluster.client,
        settings(&args.group, topics),
        Arc::new(AuditLog {
            out: Mutex::new(out),
        }),
        dlq(&args.group),
    );
    let mut stats = vec![(args.group.clone(), audit.stats())];
    let shutdown = shutdown_on_signals();
    let mut running = vec![tokio::spawn(audit.run(shutdown.clone()))];
    if let Some(mc) = &marketo {
        let sink =
            MarketoSink::from_config(mc, Arc::new(Codec::new())).context("connectors.marketo")?;
        let lp = ConsumerLoop::new(
            &cluster.client,
            settings(&mc.group, vec![mc.topic.clone()]),
            Arc::new(sink),
            dlq(&mc.group),
        );
        stats.push((mc.group.clone(), lp.stats()));
        running.push(tokio::spawn(lp.run(shutdown.clone())));
    }
    let ops = Ops::new(stats);
    if let Some(addr) = cfg.ops.listen {
        ops.clone().serve(addr).await?;
    }
    ops.set_ready(true);
    // The first pipeline to fail stops the others; all are awaited before exit.
    let mut first_error = None;
    for r in futures::future::join_all(running.into_iter().map(|h| {
        let stop = shutdown.clone();
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
            Ok(Err(e)) => first_error = first_error.or(Some(anyhow::Error::from(e))),
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
