//! The topic catalog: every topic the hub uses, declared once (name, partitions, replication,
//! retention, cleanup policy, the events it carries), and `apply`, which creates what is
//! missing and reports drift — it never deletes, never shrinks and never rewrites a config
//! behind an operator's back.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::admin::admin_client;
use crate::error::{BusError, Result};

/// The whole catalog file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Values a topic takes when it does not set its own.
    #[serde(default)]
    pub defaults: TopicDefaults,
    /// The topics.
    #[serde(rename = "topic", default)]
    pub topics: Vec<TopicSpec>,
}

/// Catalog-wide defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    /// Partitions of a topic that does not say.
    pub partitions: i32,
    /// Replication factor of a topic that does not say.
    pub replication_factor: i32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            partitions: 6,
            replication_factor: 3,
        }
    }
}

/// One topic as the hub needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions (the unit of parallelism and of per-key order).
    pub partitions: Option<i32>,
    /// Copies of each partition.
    pub replication_factor: Option<i32>,
    /// How long records are kept: a duration (`30d`) or `forever`.
    pub retention: Option<String>,
    /// `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: Option<String>,
    /// What the record key is (documentation for operators and auditors).
    #[serde(default)]
    pub key: Option<String>,
    /// Event types the topic carries.
    #[serde(default)]
    pub events: Vec<String>,
    /// Further broker-side topic configs, checked for drift like the rest.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// The catalog shipped in `deploy/topics.toml`, compiled into the binary.
const EMBEDDED: &str = include_str!("../../../deploy/topics.toml");

impl Catalog {
    /// The shipped catalog (`deploy/topics.toml`), built in, so an installed binary needs no
    /// copy of the repository; validated by a test.
    pub fn embedded() -> Catalog {
        // A test proves the shipped text parses; a failure here is a build that skipped it.
        Catalog::parse(EMBEDDED, "built-in deploy/topics.toml")
            .unwrap_or_else(|e| panic!("the built-in catalog is invalid: {e}"))
    }

    /// Loads and validates a catalog file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BusError::Io {
            path: path.display().to_string(),
            cause: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let err = |reason: String| BusError::Catalog {
            path: origin.to_string(),
            reason,
        };
        let cat: Catalog = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        let mut seen = HashSet::new();
        for t in &cat.topics {
            if t.name.is_empty()
                || t.name.len() > 249
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(err(format!(
                    "topic name {:?} is not a legal Kafka topic name",
                    t.name
                )));
            }
            if !seen.insert(t.name.clone()) {
                return Err(err(format!("topic {} is declared twice", t.name)));
            }
            if cat.partitions(t) < 1 {
                return Err(err(format!(
                    "topic {}: partitions must be at least 1",
                    t.name
                )));
            }
            if cat.replication(t) < 1 {
                return Err(err(format!(
                    "topic {}: replication_factor must be at least 1",
                    t.name
                )));
            }
            t.desired_configs()
                .map_err(|e| err(format!("topic {}: {e}", t.name)))?;
        }
        Ok(cat)
    }

    /// Partitions of `t`, defaults applied.
    pub fn partitions(&self, t: &TopicSpec) -> i32 {
        t.partitions.unwrap_or(self.defaults.partitions)
    }

    /// Replication factor of `t`, defaults applied.
    pub fn replication(&self, t: &TopicSpec) -> i32 {
        t.replication_factor
            .unwrap_or(self.defaults.replication_factor)
    }

    /// The spec of topic `name`.
    pub fn get(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }
}

impl TopicSpec {
    /// The broker configs this spec pins, as the broker spells them.
    pub fn desired_configs(&self) -> std::result::Result<BTreeMap<String, String>, String> {
        let mut out = self.config.clone();
        if let Some(r) = &self.retention {
            let ms = if r == "forever" {
                "-1".to_string()
            } else {
                humantime::parse_duration(r)
                    .map_err(|e| format!("retention {r:?}: {e} (use e.g. 7d, 12h or forever)"))?
                    .as_millis()
                    .to_string()
            };
            out.insert("retention.ms".into(), ms);
        }
        if let Some(p) = &self.cleanup_policy {
            match p.as_str() {
                "delete" | "compact" | "compact,delete" | "delete,compact" => {
                    out.insert("cleanup.policy".into(), p.clone());
                }
                other => {
                    return Err(format!(
                        "cleanup_policy {other:?} is not delete, compact or compact,delete"
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// One difference between the catalog and the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The partition count differs.
    Partitions {
        /// On the cluster.
        actual: i32,
        /// In the catalog.
        wanted: i32,
    },
    /// The replication factor differs.
    ReplicationFactor {
        /// On the cluster.
        actual: i32,
        /// In the catalog.
        wanted: i32,
    },
    /// A topic config differs.
    Config {
        /// The config key.
        key: String,
        /// On the cluster (`None` if unset).
        actual: Option<String>,
        /// In the catalog.
        wanted: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Partitions { actual, wanted } => {
                write!(
                    f,
                    "partitions {actual} on the cluster, {wanted} in the catalog"
                )
            }
            Drift::ReplicationFactor { actual, wanted } => write!(
                f,
                "replication factor {actual} on the cluster, {wanted} in the catalog"
            ),
            Drift::Config {
                key,
                actual,
                wanted,
            } => write!(
                f,
                "{key} {} on the cluster, {wanted} in the catalog",
                actual.as_deref().unwrap_or("unset")
            ),
        }
    }
}

/// What `apply` did or found for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Missing; a dry run created nothing.
    WouldCreate {
        /// Topic.
        topic: String,
        /// Partitions it would be created with.
        partitions: i32,
        /// Replication factor it would be created with.
        replication_factor: i32,
    },
    /// Created now.
    Created {
        /// Topic.
        topic: String,
        /// Partitions it was created with.
        partitions: i32,
        /// Replication factor it was created with.
        replication_factor: i32,
    },
    /// Present and as the catalog says.
    InSync {
        /// Topic.
        topic: String,
    },
    /// Present but different; nothing was changed.
    Drifted {
        /// Topic.
        topic: String,
        /// The differences.
        drift: Vec<Drift>,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::WouldCreate {
                topic,
                partitions,
                replication_factor,
            } => write!(
                f,
                "would create {topic} (partitions {partitions}, replication {replication_factor})"
            ),
            Outcome::Created {
                topic,
                partitions,
                replication_factor,
            } => write!(
                f,
                "created  {topic} (partitions {partitions}, replication {replication_factor})"
            ),
            Outcome::InSync { topic } => write!(f, "in sync  {topic}"),
            Outcome::Drifted { topic, drift } => {
                let d: Vec<String> = drift.iter().map(ToString::to_string).collect();
                write!(f, "DRIFT    {topic}: {}", d.join("; "))
            }
        }
    }
}

/// How `apply` behaves.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Report only; create nothing.
    pub dry_run: bool,
    /// Use this replication factor for every topic (a one-broker development cluster).
    pub replication_factor: Option<i32>,
    /// How long to wait for the cluster.
    pub timeout: Option<Duration>,
}

/// Creates the catalog's missing topics and reports drift of the existing ones, in catalog order.
///
/// A missing topic whose replication factor is more than the cluster's brokers fails the
/// whole call before anything is created ([`BusError::ReplicationFactor`]), dry run or not.
pub async fn apply(
    client: &ClientConfig,
    catalog: &Catalog,
    opts: &ApplyOptions,
) -> Result<Vec<Outcome>> {
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(10));
    let admin = admin_client(client)?;
    let md = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| BusError::kafka("fetch metadata", e))?;
    let existing: BTreeMap<String, (i32, i32)> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| {
            let rf = t
                .partitions()
                .first()
                .map_or(0, |p| p.replicas().len() as i32);
            (t.name().to_string(), (t.partitions().len() as i32, rf))
        })
        .collect();
    let brokers = md.brokers().len();
    let rf_for = |t: &TopicSpec| opts.replication_factor.unwrap_or(catalog.replication(t));
    let admin_opts = AdminOptions::new().operation_timeout(Some(timeout));
    let mut outcomes = Vec::new();
    let mut to_create = Vec::new();
    for t in &catalog.topics {
        let wanted_configs = t.desired_configs().map_err(BusError::Config)?;
        match existing.get(&t.name) {
            None => {
                let (topic, partitions, replication_factor) =
                    (t.name.clone(), catalog.partitions(t), rf_for(t));
                outcomes.push(if opts.dry_run {
                    Outcome::WouldCreate {
                        topic,
                        partitions,
                        replication_factor,
                    }
                } else {
                    Outcome::Created {
                        topic,
                        partitions,
                        replication_factor,
                    }
                });
                to_create.push((t, wanted_configs));
            }
            Some(&(parts, rf)) => {
                let mut drift = Vec::new();
                if parts != catalog.partitions(t) {
                    drift.push(Drift::Partitions {
                        actual: parts,
                        wanted: catalog.partitions(t),
                    });
                }
                if rf != rf_for(t) {
                    drift.push(Drift::ReplicationFactor {
                        actual: rf,
                        wanted: rf_for(t),
                    });
                }
                if !wanted_configs.is_empty() {
                    let res = admin
                        .describe_configs([&ResourceSpecifier::Topic(&t.name)], &admin_opts)
                        .await
                        .map_err(|e| {
                            BusError::kafka(format!("describe configs of {}", t.name), e)
                        })?;
                    let resource = res
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            BusError::Config(format!("no configs returned for {}", t.name))
                        })?
                        .map_err(|e| {
                            BusError::Config(format!("describe configs of {}: {e}", t.name))
                        })?;
                    for (key, wanted) in &wanted_configs {
                        let actual = resource.get(key).and_then(|e| e.value.clone());
                        if actual.as_deref() != Some(wanted.as_str()) {
                            drift.push(Drift::Config {
                                key: key.clone(),
                                actual,
                                wanted: wanted.clone(),
                            });
                        }
                    }
                }
                outcomes.push(if drift.is_empty() {
                    Outcome::InSync {
                        topic: t.name.clone(),
                    }
                } else {
                    Outcome::Drifted {
                        topic: t.name.clone(),
                        drift,
                    }
                });
            }
        }
    }
    let too_many: Vec<(&str, i32)> = to_create
        .iter()
        .map(|(t, _)| (t.name.as_str(), rf_for(t)))
        .filter(|(_, rf)| brokers > 0 && *rf as usize > brokers)
        .collect();
    if let Some(wanted) = too_many.iter().map(|(_, rf)| *rf).max() {
        return Err(BusError::ReplicationFactor {
            topics: too_many
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
                .join(", "),
            wanted,
            brokers,
        });
    }
    if !opts.dry_run && !to_create.is_empty() {
        let new: Vec<NewTopic<'_>> = to_create
            .iter()
            .map(|(t, cfg)| {
                cfg.iter().fold(
                    NewTopic::new(
                        &t.name,
                        catalog.partitions(t),
                        TopicReplication::Fixed(rf_for(t)),
                    ),
                    |nt, (k, v)| nt.set(k, v),
                )
            })
            .collect();
        let results = admin
            .create_topics(new.iter(), &admin_opts)
            .await
            .map_err(|e| BusError::kafka("create topics", e))?;
        for r in results {
            if let Err((topic, code)) = r {
                use rdkafka::types::RDKafkaErrorCode as Code;
                let reason = match code {
                    Code::TopicAlreadyExists => continue,
                    Code::InvalidReplicationFactor => format!(
                        "{code:?}: the cluster has fewer live brokers ({brokers} known) than the replication factor"
                    ),
                    Code::PolicyViolation | Code::InvalidConfig => {
                        format!("{code:?}: the broker refused the topic's settings ({code})")
                    }
                    Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed => {
                        format!("{code:?}: this client may not create topics (grant CREATE or create them by hand)")
                    }
                    other => format!("{other:?}: {other}"),
                };
                return Err(BusError::CreateTopic { topic, reason });
            }
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_defaults_and_configs() {
        let cat = Catalog::parse(
            "[defaults]\npartitions = 3\nreplication_factor = 1\n[[topic]]\nname = \"leads\"\nretention = \"7d\"\ncleanup_policy = \"delete\"\n[[topic]]\nname = \"accounts\"\npartitions = 12\nretention = \"forever\"\ncleanup_policy = \"compact\"\n",
            "t",
        )
        .unwrap();
        let leads = cat.get("leads").unwrap();
        assert_eq!(cat.partitions(leads), 3);
        assert_eq!(
            leads.desired_configs().unwrap()["retention.ms"],
            "604800000"
        );
        let acc = cat.get("accounts").unwrap();
        assert_eq!(cat.partitions(acc), 12);
        assert_eq!(acc.desired_configs().unwrap()["retention.ms"], "-1");
    }

    #[test]
    fn bad_catalogs_name_the_topic_and_the_problem() {
        for (text, needle) in [
            (
                "[[topic]]\nname = \"a\"\n[[topic]]\nname = \"a\"\n",
                "declared twice",
            ),
            ("[[topic]]\nname = \"a b\"\n", "legal Kafka topic name"),
            ("[[topic]]\nname = \"a\"\npartitions = 0\n", "partitions"),
            (
                "[[topic]]\nname = \"a\"\nretention = \"soon\"\n",
                "retention",
            ),
            (
                "[[topic]]\nname = \"a\"\ncleanup_policy = \"shred\"\n",
                "shred",
            ),
            ("[[topic]]\nname = \"a\"\npartition = 3\n", "partition"),
        ] {
            let err = Catalog::parse(text, "cat.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn the_built_in_catalog_is_the_shipped_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/topics.toml");
        let shipped = Catalog::load(&path).unwrap();
        let built_in = Catalog::embedded();
        let names = |c: &Catalog| c.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&built_in), names(&shipped));
        assert!(built_in.get("dead-letters").is_some());
    }

    #[test]
    fn a_dry_run_says_would_create() {
        let o = Outcome::WouldCreate {
            topic: "leads".into(),
            partitions: 6,
            replication_factor: 1,
        };
        assert_eq!(
            o.to_string(),
            "would create leads (partitions 6, replication 1)"
        );
    }

    #[test]
    fn the_shipped_catalog_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/topics.toml");
        let cat = Catalog::load(&path).unwrap();
        for t in [
            "leads",
            "orders",
            "subscriptions",
            "licenses",
            "notifications",
            "usage",
            "dead-letters",
        ] {
            assert!(cat.get(t).is_some(), "{t} missing from the catalog");
        }
    }
}
