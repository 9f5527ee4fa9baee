//! `l2f topics apply`: create what the catalog has and the cluster lacks; report drift.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use l2f_bus::topics::{apply, ApplyOptions, Catalog, Outcome};
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
}

/// Runs a topics command; returns the exit code.
pub async fn run(cmd: TopicsCmd) -> Result<i32> {
    match cmd {
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
