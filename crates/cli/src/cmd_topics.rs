//! `l2f topics apply`: create what the catalog has and the cluster lacks; report drift.
//! `l2f topics export`: the catalog as Strimzi `KafkaTopic` resources or as resolved JSON, for
//! clusters whose topics another tool creates — so the catalog stays the one source.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::{Subcommand, ValueEnum};
use l2f_bus::topics::{apply, strimzi_yaml, ApplyOptions, Catalog, Outcome, StrimziOptions};
use l2f_bus::BusError;

use crate::cluster::{connect, load};
use crate::ConfigArg;

/// Topic catalog commands.
#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// Create missing topics and report drift (exit 0 in sync, 2 on drift); never deletes.
    Apply {
        #[command(flatten)]
        config: ConfigArg,
        /// Catalog file, relative to the working directory (default: topics.catalog from the
        /// config, else the catalog built into l2f).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Report only; create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Force this replication factor (1 on a one-broker development cluster).
        #[arg(long)]
        replication_factor: Option<i32>,
    },
    /// Print the catalog for another tool: Strimzi KafkaTopic resources (one YAML document
    /// per topic) or the catalog as resolved (JSON). Connects to nothing.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Catalog file, relative to the working directory (default: topics.catalog from the
        /// config, else the catalog built into l2f).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// What to print.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Namespace of the KafkaTopic resources (the Topic Operator's); unset: none written.
        #[arg(long)]
        namespace: Option<String>,
        /// The Strimzi Kafka cluster (the `strimzi.io/cluster` label).
        #[arg(long, default_value = "l2f")]
        cluster: String,
        /// Force this replication factor (default: topics.replication_factor, else the catalog's).
        #[arg(long)]
        replication_factor: Option<i32>,
    },
}

/// Output formats of `topics export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Strimzi `KafkaTopic` resources (`kafka.strimzi.io/v1beta2`), one YAML document each.
    Strimzi,
    /// The catalog as resolved: defaults applied, broker configs spelt out.
    Json,
}

/// Runs a topics command; returns the exit code.
pub async fn run(cmd: TopicsCmd) -> Result<i32> {
    match cmd {
        TopicsCmd::Export {
            config,
            catalog,
            format,
            namespace,
            cluster,
            replication_factor,
        } => {
            let loaded = load(&config)?;
            let from_file = catalog.is_some();
            let catalog = match catalog {
                Some(path) => Catalog::load(&path)?,
                None => loaded.catalog,
            };
            let rf = replication_factor.or(loaded.bus.topics.replication_factor);
            let text = match format {
                ExportFormat::Json => serde_json::to_string_pretty(&catalog.resolved(rf)?)? + "\n",
                ExportFormat::Strimzi => {
                    let opts = StrimziOptions {
                        cluster,
                        namespace,
                        replication_factor: rf,
                    };
                    let header =
                        export_header(&opts, from_file || loaded.bus.topics.catalog.is_some());
                    strimzi_yaml(&catalog.to_strimzi(&opts)?, &header)?
                }
            };
            print!("{text}");
            Ok(0)
        }
        TopicsCmd::Apply {
            config: arg,
            catalog,
            dry_run,
            replication_factor,
        } => {
            let loaded = load(&arg)?;
            let cfg = loaded.bus;
            let catalog = match catalog {
                Some(path) => Catalog::load(&path)?,
                None => loaded.catalog,
            };
            let cluster = connect(&cfg, false, "topics apply")?;
            let opts = ApplyOptions {
                dry_run,
                replication_factor: replication_factor.or(cfg.topics.replication_factor),
                timeout: Some(
                    cfg.kafka
                        .connect_timeout
                        .max(std::time::Duration::from_secs(10)),
                ),
            };
            let outcomes = apply(&cluster.client, &catalog, &opts)
                .await
                .map_err(|e| match e {
                    BusError::ReplicationFactor { brokers, .. } => anyhow!(
                        "{e}: pass --replication-factor {brokers}, or set topics.replication_factor = {brokers} in the config"
                    ),
                    BusError::CreateTopic { ref reason, .. }
                        if reason.starts_with("InvalidReplicationFactor") =>
                    {
                        anyhow!("{e}: pass --replication-factor N, or set topics.replication_factor in the config")
                    }
                    other => other.into(),
                })?;
            for o in &outcomes {
                println!("{o}");
            }
            let drift = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Drifted { .. }))
                .count();
            Ok(if drift > 0 { 2 } else { 0 })
        }
    }
}

/// The comment above exported resources: where they come from and how to make them again.
fn export_header(opts: &StrimziOptions, own_catalog: bool) -> Vec<String> {
    let mut cmd = String::from("l2f topics export --format strimzi");
    if let Some(ns) = &opts.namespace {
        cmd.push_str(&format!(" --namespace {ns}"));
    }
    cmd.push_str(&format!(" --cluster {}", opts.cluster));
    if let Some(rf) = opts.replication_factor {
        cmd.push_str(&format!(" --replication-factor {rf}"));
    }
    let source = if own_catalog {
        "a topic catalog given to it"
    } else {
        "the catalog built into l2f (deploy/topics.toml)"
    };
    vec![
        format!("Strimzi KafkaTopic resources generated by `{cmd}`"),
        format!("from {source}. Do not edit: change the catalog and generate again."),
    ]
}
