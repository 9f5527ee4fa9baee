//! `l2f topics apply`: create what the catalog has and the cluster lacks; report drift.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use l2f_bus::topics::{apply, ApplyOptions, Catalog, Outcome};

use crate::cluster::{config, connect};
use crate::ConfigArg;

/// Topic catalog commands.
#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// Create missing topics and report drift (exit 0 in sync, 2 on drift); never deletes.
    Apply {
        #[command(flatten)]
        config: ConfigArg,
        /// Catalog file (default: topics.catalog from the config, deploy/topics.toml).
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
            let cfg = config(&arg)?;
            let catalog = Catalog::load(catalog.as_ref().unwrap_or(&cfg.topics.catalog))?;
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
            let outcomes = apply(&cluster.client, &catalog, &opts).await?;
            for o in &outcomes {
                println!("{}{o}", if dry_run { "(dry run) " } else { "" });
            }
            let drift = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Drifted { .. }))
                .count();
            Ok(if drift > 0 { 2 } else { 0 })
        }
    }
}
