//! From configuration to a connected cluster.
//!
//! [`load`] is the one way every command that takes `--config` reads it: defaults, the file,
//! then `L2F_<SECTION>__<KEY>` variables; relative paths resolved against the file's
//! directory; the Kafka settings, the topic catalog, the rule tables and every
//! `[connectors.*]` section checked — so a bad key fails `run`, `demo`, `topics apply` and
//! `dlq list|redrive` alike, with the same one line naming the key and the file it came from.
//! [`connect`] then reaches the configured cluster (checked reachable within
//! `kafka.connect_timeout`) or, when no bootstrap servers are set, the embedded broker.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use l2f_bus::config::{BusConfig, Loaded};
use l2f_bus::embedded::EmbeddedBroker;
use l2f_bus::topics::Catalog;
use l2f_bus::BusError;
use l2f_connector_kit::{Connector, KitError};
use l2f_rules::Rules;
use rdkafka::ClientConfig;
use tracing::warn;

use crate::connectors::build_all;

use crate::ConfigArg;

/// The whole configuration, loaded and checked: what every command starts from.
pub struct LoadedConfig {
    /// The hub's settings, relative paths already resolved.
    pub bus: BusConfig,
    /// The topic catalog: `topics.catalog`, or the one built into the binary.
    pub catalog: Catalog,
    /// The handbook's rule tables: `rules.dir`, or the ones built into the binary.
    pub rules: Rules,
    /// The configuration file, if one was given.
    pub file: Option<PathBuf>,
    /// Every connector configured under `[connectors.*]`, built and checked.
    pub connectors: Vec<Box<dyn Connector>>,
}

/// Loads and checks the configuration named by `arg`. Every error is one line naming the
/// key and where its value came from (`in FILE` or `from environment variable V`).
pub fn load(arg: &ConfigArg) -> Result<LoadedConfig> {
    let loaded = Loaded::<BusConfig>::bus(arg.config.as_deref())?;
    let cfg = &loaded.value;
    let catalog = match &cfg.topics.catalog {
        Some(path) => load_catalog(path).map_err(|e| loaded.locate(e))?,
        None => Catalog::embedded(),
    };
    let rules = match &cfg.rules.dir {
        Some(dir) => Rules::load(dir)
            .map_err(|e| loaded.locate(BusError::key("rules.dir", e.to_string())))?,
        None => Rules::embedded(),
    };
    let connectors = check_connectors(cfg).map_err(|e| loaded.locate(e))?;
    Ok(LoadedConfig {
        connectors,
        file: loaded.file().map(Path::to_path_buf),
        bus: loaded.value,
        catalog,
        rules,
    })
}

/// A catalog named by `topics.catalog`; its errors name the key.
fn load_catalog(path: &Path) -> Result<Catalog, BusError> {
    Catalog::load(path).map_err(|e| match e {
        BusError::Io { path, cause } => BusError::key("topics.catalog", format!("{path}: {cause}")),
        BusError::Catalog { path, reason } => {
            BusError::key("topics.catalog", format!("{path}: {reason}"))
        }
        other => other,
    })
}

/// The hook that checks every `[connectors.*]` section before anything connects: each
/// section built through the registry (parsed with unknown keys refused, values checked,
/// secrets resolved — no I/O).
fn check_connectors(cfg: &BusConfig) -> Result<Vec<Box<dyn Connector>>, BusError> {
    build_all(cfg).map_err(|e| match e {
        KitError::Config { key, message } => BusError::key(key, message),
        other => BusError::Config(other.to_string()),
    })
}

/// A cluster to talk to; keeps the embedded broker alive while it is used.
pub struct Cluster {
    /// Client settings for it, security included.
    pub client: ClientConfig,
    /// The in-process broker, when that is what we run on.
    pub embedded: Option<EmbeddedBroker>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(dir: &tempfile::TempDir, text: &str) -> ConfigArg {
        let path = dir.path().join("l2f.toml");
        std::fs::write(&path, text).unwrap();
        ConfigArg { config: Some(path) }
    }

    #[test]
    fn a_typo_in_a_connector_section_names_the_dotted_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let arg = config_file(
            &dir,
            "[connectors.marketo]\nbase_url = \"http://x\"\nclient_id = \"c\"\nclient_secert = \"s\"\n",
        );
        let err = load(&arg).err().expect("typo refused").to_string();
        assert!(
            err.starts_with("configuration: connectors.marketo.client_secert: unknown key; expected one of: base_url, client_id, client_secret"),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("(in {})", arg.config.unwrap().display())),
            "{err}"
        );
    }

    #[test]
    fn a_missing_connector_key_and_a_bad_value_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let arg = config_file(
            &dir,
            "[connectors.marketo]\nbase_url = \"http://x\"\nclient_id = \"c\"\n",
        );
        let err = load(&arg).err().unwrap().to_string();
        assert!(
            err.contains("connectors.marketo.client_secret: missing"),
            "{err}"
        );
        let arg = config_file(
            &dir,
            "[connectors.marketo]\nbase_url = \"ftp://x\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
        );
        let err = load(&arg).err().unwrap().to_string();
        assert!(
            err.contains("connectors.marketo.base_url: must start with http"),
            "{err}"
        );
        let arg = config_file(
            &dir,
            "[connectors.marketo]\nbase_url = \"http://x\"\nclient_id = \"c\"\nclient_secret = \"s\"\nrate_window = \"soon\"\n",
        );
        let err = load(&arg).err().unwrap().to_string();
        assert!(err.contains("connectors.marketo.rate_window"), "{err}");
    }

    #[test]
    fn an_unknown_connector_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let arg = config_file(&dir, "[connectors.hubspot]\nbase_url = \"x\"\n");
        let err = load(&arg).err().unwrap().to_string();
        assert!(
            err.contains("connectors.hubspot: no such connector (known: ")
                && err.contains("marketo"),
            "{err}"
        );
    }

    #[test]
    fn without_catalog_and_rules_keys_the_built_in_ones_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&config_file(&dir, "")).unwrap();
        assert!(loaded.catalog.get("leads").is_some());
        assert_eq!(loaded.rules, Rules::embedded());
    }

    #[test]
    fn a_bad_catalog_or_rules_dir_names_its_key_and_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("topics.toml"),
            "[[topic]]\nname = \"a b\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let arg = config_file(&dir, "[topics]\ncatalog = \"topics.toml\"\n");
        let err = load(&arg).err().unwrap().to_string();
        assert!(
            err.contains("topics.catalog: ") && err.contains("legal Kafka topic name"),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("(in {})", arg.config.unwrap().display())),
            "{err}"
        );
        let arg = config_file(&dir, "[rules]\ndir = \"rules\"\n");
        let err = load(&arg).err().unwrap().to_string();
        assert!(
            err.contains("rules.dir: ") && err.contains("entity.toml"),
            "{err}"
        );
    }
}
