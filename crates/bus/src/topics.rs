//! The topic catalog: every topic the hub uses, declared once (name, partitions, replication,
//! retention, cleanup policy, the events it carries), and `apply`, which creates what is
//! missing and reports drift — it never deletes, never shrinks and never rewrites a config
//! behind an operator's back.
//!
//! The catalog is the one source of the topics' shape: [`Catalog::resolved`] is it with the
//! defaults applied and the broker configs spelt out (`l2f topics export --format json`), and
//! [`Catalog::to_strimzi`] turns it into Strimzi `KafkaTopic` resources
//! (`l2f topics export --format strimzi`) for clusters whose topics a Topic Operator owns.

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

/// A topic with the catalog's defaults applied and its broker configs spelt out as the broker
/// names them: what a cluster should hold, whichever tool creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedTopic {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Broker-side topic configs (`retention.ms`, `cleanup.policy`, and the spec's `config`).
    pub configs: BTreeMap<String, String>,
    /// What the record key is (documentation).
    pub key: Option<String>,
    /// Event types the topic carries (documentation).
    pub events: Vec<String>,
}

impl Catalog {
    /// Every topic, in catalog order, with defaults applied; `replication_factor` forces one
    /// on every topic (as `topics.replication_factor` does for `apply`).
    pub fn resolved(&self, replication_factor: Option<i32>) -> Result<Vec<ResolvedTopic>> {
        self.topics
            .iter()
            .map(|t| {
                Ok(ResolvedTopic {
                    name: t.name.clone(),
                    partitions: self.partitions(t),
                    replication_factor: replication_factor.unwrap_or(self.replication(t)),
                    configs: t
                        .desired_configs()
                        .map_err(|e| BusError::Config(format!("topic {}: {e}", t.name)))?,
                    key: t.key.clone(),
                    events: t.events.clone(),
                })
            })
            .collect()
    }

    /// The catalog as Strimzi `KafkaTopic` resources, one per topic, in catalog order.
    ///
    /// A topic whose name is not a legal Kubernetes resource name (upper case, `_`) gets a
    /// lower-cased, `-`-for-`_` resource name and keeps its own in `spec.topicName`; two
    /// topics that would share a resource name are an error naming both.
    pub fn to_strimzi(&self, opts: &StrimziOptions) -> Result<Vec<KafkaTopic>> {
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        self.resolved(opts.replication_factor)?
            .into_iter()
            .map(|t| {
                let resource = resource_name(&t.name);
                if let Some(other) = names.insert(resource.clone(), t.name.clone()) {
                    return Err(BusError::Config(format!(
                        "topics {other} and {} would both be the KafkaTopic resource {resource}",
                        t.name
                    )));
                }
                Ok(KafkaTopic::from_resolved(t, resource, opts))
            })
            .collect()
    }
}

/// The API version of the `KafkaTopic` resources [`Catalog::to_strimzi`] writes.
pub const STRIMZI_API_VERSION: &str = "kafka.strimzi.io/v1beta2";
/// The label that tells Strimzi's Topic Operator which `Kafka` cluster a topic belongs to.
pub const STRIMZI_CLUSTER_LABEL: &str = "strimzi.io/cluster";
/// Annotation carrying the catalog's `key` (documentation travels with the resource).
pub const KEY_ANNOTATION: &str = "l2f.dev/key";
/// Annotation carrying the catalog's `events`, as a JSON array.
pub const EVENTS_ANNOTATION: &str = "l2f.dev/events";

/// Where the exported resources go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrimziOptions {
    /// The `Kafka` resource's name (the `strimzi.io/cluster` label).
    pub cluster: String,
    /// The namespace of the resources (the Topic Operator's watched namespace); `None` leaves
    /// it to `kubectl apply -n`.
    pub namespace: Option<String>,
    /// Forces this replication factor on every topic.
    pub replication_factor: Option<i32>,
}

/// A Strimzi `KafkaTopic` resource (`kafka.strimzi.io/v1beta2`), the fields l2f sets.
/// See the Strimzi documentation, "Using the Topic Operator" and the KafkaTopic schema
/// reference (<https://strimzi.io/docs/operators/latest/configuring#type-KafkaTopic-reference>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTopic {
    /// `kafka.strimzi.io/v1beta2`.
    pub api_version: String,
    /// `KafkaTopic`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// Partitions, replicas, configs.
    pub spec: KafkaTopicSpec,
}

/// The Kubernetes object metadata of an exported resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    /// The resource name (the topic's, when legal).
    pub name: String,
    /// The namespace, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `strimzi.io/cluster` and `app.kubernetes.io/part-of`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The catalog's documentation of the topic (key, events).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The `spec` of a `KafkaTopic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTopicSpec {
    /// The Kafka topic's name when it differs from the resource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replicas: i32,
    /// Topic configs, as Strimzi's examples write them (numbers as numbers).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

/// A topic config value: a number where the broker's value is one, text otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// `retention.ms: 2592000000`.
    Number(i64),
    /// `cleanup.policy: delete` (and booleans, which YAML reads back as text here).
    Text(String),
}

impl ConfigValue {
    fn of(value: &str) -> ConfigValue {
        match value.parse::<i64>() {
            // Only when printing the number gives back the same text ("007" stays text).
            Ok(n) if n.to_string() == value => ConfigValue::Number(n),
            _ => ConfigValue::Text(value.to_string()),
        }
    }
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Number(n) => write!(f, "{n}"),
            ConfigValue::Text(t) => f.write_str(t),
        }
    }
}

/// A legal Kubernetes resource name (RFC 1123 subdomain) for topic `name`.
fn resource_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    // A resource name starts and ends with an alphanumeric character.
    while out.starts_with(['-', '.']) {
        out.remove(0);
    }
    while out.ends_with(['-', '.']) {
        out.pop();
    }
    out.truncate(253);
    out
}

impl KafkaTopic {
    fn from_resolved(t: ResolvedTopic, resource: String, opts: &StrimziOptions) -> KafkaTopic {
        let mut labels = BTreeMap::new();
        labels.insert(STRIMZI_CLUSTER_LABEL.to_string(), opts.cluster.clone());
        labels.insert("app.kubernetes.io/part-of".to_string(), "l2f".to_string());
        let mut annotations = BTreeMap::new();
        if let Some(k) = &t.key {
            annotations.insert(KEY_ANNOTATION.to_string(), k.clone());
        }
        if !t.events.is_empty() {
            annotations.insert(
                EVENTS_ANNOTATION.to_string(),
                serde_json::to_string(&t.events).expect("a list of strings serialises"),
            );
        }
        KafkaTopic {
            api_version: STRIMZI_API_VERSION.to_string(),
            kind: "KafkaTopic".to_string(),
            metadata: ObjectMeta {
                name: resource.clone(),
                namespace: opts.namespace.clone(),
                labels,
                annotations,
            },
            spec: KafkaTopicSpec {
                topic_name: (resource != t.name).then(|| t.name.clone()),
                partitions: t.partitions,
                replicas: t.replication_factor,
                config: t
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), ConfigValue::of(v)))
                    .collect(),
            },
        }
    }

    /// The Kafka topic this resource makes: `spec.topicName`, else the resource's name.
    pub fn topic(&self) -> &str {
        self.spec
            .topic_name
            .as_deref()
            .unwrap_or(&self.metadata.name)
    }

    /// The topic as the catalog resolves it, read back from the resource (the inverse of
    /// [`Catalog::to_strimzi`], so a test can prove the export loses nothing).
    pub fn to_resolved(&self) -> std::result::Result<ResolvedTopic, String> {
        let events = match self.metadata.annotations.get(EVENTS_ANNOTATION) {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                format!(
                    "{}: annotation {EVENTS_ANNOTATION}: {e}",
                    self.metadata.name
                )
            })?,
            None => Vec::new(),
        };
        Ok(ResolvedTopic {
            name: self.topic().to_string(),
            partitions: self.spec.partitions,
            replication_factor: self.spec.replicas,
            configs: self
                .spec
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            key: self.metadata.annotations.get(KEY_ANNOTATION).cloned(),
            events,
        })
    }
}

/// The resources as one YAML stream, one document per topic, after `header` (comment lines,
/// each written with a leading `# `).
pub fn strimzi_yaml(topics: &[KafkaTopic], header: &[String]) -> Result<String> {
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for t in topics {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(t).map_err(|e| {
            BusError::Config(format!("writing KafkaTopic {}: {e}", t.metadata.name))
        })?);
    }
    Ok(out)
}

/// Reads back a YAML stream of `KafkaTopic` resources (every document must be one).
pub fn parse_strimzi_yaml(text: &str) -> std::result::Result<Vec<KafkaTopic>, String> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| {
            KafkaTopic::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))
        })
        .collect()
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

    fn shipped() -> Catalog {
        Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/topics.toml"))
            .unwrap()
    }

    fn opts() -> StrimziOptions {
        StrimziOptions {
            cluster: "l2f".into(),
            namespace: Some("kafka".into()),
            replication_factor: None,
        }
    }

    #[test]
    fn the_strimzi_export_parses_as_yaml_and_round_trips_the_shipped_catalog() {
        let cat = shipped();
        let yaml = strimzi_yaml(&cat.to_strimzi(&opts()).unwrap(), &["header".into()]).unwrap();
        assert!(yaml.starts_with("# header\n---\n"), "{yaml}");
        // Read with a YAML parser that knows nothing of our types first: every document is a
        // KafkaTopic of the v1beta2 API, labelled with its cluster.
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), cat.topics.len());
        for d in &docs {
            assert_eq!(d["apiVersion"], "kafka.strimzi.io/v1beta2");
            assert_eq!(d["kind"], "KafkaTopic");
            assert_eq!(d["metadata"]["labels"]["strimzi.io/cluster"], "l2f");
            assert_eq!(d["metadata"]["namespace"], "kafka");
        }
        // Then back into the catalog's terms: every topic, partitions, replicas, configs,
        // key and events, in order, exactly.
        let back: Vec<ResolvedTopic> = parse_strimzi_yaml(&yaml)
            .unwrap()
            .iter()
            .map(|t| t.to_resolved().unwrap())
            .collect();
        assert_eq!(back, cat.resolved(None).unwrap());
        let leads = &back[0];
        assert_eq!(leads.name, "leads");
        assert_eq!(
            (leads.partitions, leads.replication_factor),
            (6, 3),
            "defaults applied"
        );
        assert_eq!(leads.configs["retention.ms"], "7776000000");
        assert_eq!(leads.configs["cleanup.policy"], "delete");
        let offsets = back.iter().find(|t| t.name == "source-offsets").unwrap();
        assert_eq!(offsets.configs["cleanup.policy"], "compact");
        assert_eq!(offsets.configs["retention.ms"], "-1");
    }

    #[test]
    fn numbers_are_written_as_numbers_and_text_as_text() {
        let yaml = strimzi_yaml(&shipped().to_strimzi(&opts()).unwrap(), &[]).unwrap();
        assert!(yaml.contains("    retention.ms: 7776000000\n"), "{yaml}");
        assert!(yaml.contains("    cleanup.policy: delete\n"), "{yaml}");
        assert_eq!(ConfigValue::of("007"), ConfigValue::Text("007".into()));
        assert_eq!(ConfigValue::of("-1"), ConfigValue::Number(-1));
    }

    #[test]
    fn a_forced_replication_factor_and_no_namespace_are_honoured() {
        let topics = shipped()
            .to_strimzi(&StrimziOptions {
                cluster: "dev".into(),
                namespace: None,
                replication_factor: Some(1),
            })
            .unwrap();
        assert!(topics.iter().all(|t| t.spec.replicas == 1));
        let yaml = strimzi_yaml(&topics, &[]).unwrap();
        assert!(!yaml.contains("namespace:"), "{yaml}");
        assert!(yaml.contains("strimzi.io/cluster: dev"), "{yaml}");
    }

    #[test]
    fn a_topic_name_kubernetes_refuses_keeps_its_name_in_topic_name() {
        let cat = Catalog::parse(
            "[[topic]]\nname = \"Billing_Events\"\n[[topic]]\nname = \"plain\"\n",
            "t",
        )
        .unwrap();
        let topics = cat.to_strimzi(&opts()).unwrap();
        assert_eq!(topics[0].metadata.name, "billing-events");
        assert_eq!(topics[0].spec.topic_name.as_deref(), Some("Billing_Events"));
        assert_eq!(topics[0].topic(), "Billing_Events");
        assert_eq!(topics[1].spec.topic_name, None);
        let back = parse_strimzi_yaml(&strimzi_yaml(&topics, &[]).unwrap()).unwrap();
        assert_eq!(back, topics);

        let clash = Catalog::parse(
            "[[topic]]\nname = \"a_b\"\n[[topic]]\nname = \"a-b\"\n",
            "t",
        )
        .unwrap();
        let err = clash.to_strimzi(&opts()).unwrap_err().to_string();
        assert!(err.contains("a_b and a-b") && err.contains("a-b"), "{err}");
    }
}
