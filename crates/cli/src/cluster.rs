//! From configuration to a connected cluster: the configured one (checked reachable within
//! `kafka.connect_timeout`) or, when no bootstrap servers are set, the embedded broker.

use anyhow::{bail, Context, Result};
use l2f_bus::config::{load, BusConfig};
use l2f_bus::embedded::EmbeddedBroker;
use rdkafka::ClientConfig;
use tracing::warn;

use crate::ConfigArg;

/// A cluster to talk to; keeps the embedded broker alive while it is used.
pub struct Cluster {
    /// Client settings for it, security included.
    pub client: ClientConfig,
    /// The in-process broker, when that is what we run on.
    pub embedded: Option<EmbeddedBroker>,
}

/// Loads the configuration named by `arg` (defaults, file, environment).
pub fn config(arg: &ConfigArg) -> Result<BusConfig> {
    let cfg: BusConfig = load(arg.config.as_deref())?;
    cfg.kafka.validate()?;
    Ok(cfg)
}

/// Connects as the configuration says. `embedded_ok` is false for commands that would be
/// meaningless on a throw-away broker (managing a real cluster's topics or dead letters).
pub fn connect(cfg: &BusConfig, embedded_ok: bool, what: &str) -> Result<Cluster> {
    match &cfg.kafka.bootstrap_servers {
        Some(b) => {
            let client = cfg.kafka.client_config(b)?;
            l2f_bus::admin::check_reachable(&client, cfg.kafka.connect_timeout)?;
            Ok(Cluster {
                client,
                embedded: None,
            })
        }
        None if embedded_ok => {
            warn!("kafka.bootstrap_servers is not set: using the embedded broker (in memory, gone on exit)");
            let broker = EmbeddedBroker::start(1)?;
            let client = cfg
                .kafka
                .client_config(&broker.bootstrap_servers())
                .context("embedded broker")?;
            Ok(Cluster {
                client,
                embedded: Some(broker),
            })
        }
        None => bail!(
            "{what} needs a real cluster: set kafka.bootstrap_servers in the config file or L2F_KAFKA__BOOTSTRAP_SERVERS"
        ),
    }
}
