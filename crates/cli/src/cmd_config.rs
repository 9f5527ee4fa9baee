//! `l2f config check`: load and check a configuration exactly as `l2f run` does — every key,
//! the topic catalog, the rule tables, every `[connectors.*]` section with its secrets
//! resolved, the sandbox pairing of rule 12 — without connecting to anything, and print what
//! it would run. For CI of a deployment repository, an init container, or a test of the
//! shipped manifests.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use crate::cluster::{load, LoadedConfig};
use crate::connectors::check_pairing;
use crate::ConfigArg;

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Load and check the configuration as `l2f run` would, connect to nothing, and print a
    /// JSON summary (cluster, ops.listen, connectors and their topics); exit 1 on the first
    /// problem, with the one line `run` would print.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Runs a config command; returns the exit code.
pub fn run(cmd: ConfigCmd) -> Result<i32> {
    match cmd {
        ConfigCmd::Check { config } => {
            let loaded = load(&config)?;
            check_pairing(&loaded.connectors, &loaded.rules)?;
            println!("{}", serde_json::to_string_pretty(&summary(&loaded))?);
            Ok(0)
        }
    }
}

/// What a loaded configuration would run, as `config check` prints it.
fn summary(loaded: &LoadedConfig) -> serde_json::Value {
    let cfg = &loaded.bus;
    let connectors: Vec<_> = loaded
        .connectors
        .iter()
        .map(|c| {
            json!({
                "name": c.name(),
                "topics": c.topics(),
                "source": c.has_source(),
                "endpoints": c.endpoints().iter().map(|e| json!({
                    "app": e.app, "key": e.key, "url": e.url,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "file": loaded.file.as_ref().map(|p| p.display().to_string()),
        "kafka": {
            "bootstrap_servers": cfg.kafka.bootstrap_servers,
            "security_protocol": cfg.kafka.security_protocol,
            "sasl_mechanism": cfg.kafka.sasl.as_ref().map(|s| s.mechanism),
        },
        "ops_listen": cfg.ops.listen.map(|a| a.to_string()),
        "dead_letter_topic": cfg.dead_letter.topic,
        "offsets_topic": cfg.sources.offsets_topic,
        "catalog_topics": loaded.catalog.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "connectors": connectors,
    })
}
