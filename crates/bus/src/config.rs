//! Configuration shared by every l2f process: which cluster, how to authenticate, how to
//! retry, where dead letters go.
//!
//! Loaded in layers — defaults, then a TOML file, then environment variables named
//! `L2F_<SECTION>__<KEY>` (for example `L2F_KAFKA__BOOTSTRAP_SERVERS`) — with unknown keys
//! rejected, so a typo is an error that names the key rather than a silently ignored setting.
//! Secrets are never written inline in logs: a [`SecretRef`] names an environment variable or
//! a file, and the resolved [`Secret`] prints as `***`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rdkafka::ClientConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{BusError, Result};

/// Loads `T` from defaults, an optional TOML file and `L2F_*__*` environment variables.
///
/// Only variables with a `__` after the prefix are read, so unrelated `L2F_` variables
/// (build folders, test switches) can never be mistaken for configuration.
pub fn load<T: DeserializeOwned + Serialize + Default>(file: Option<&Path>) -> Result<T> {
    Ok(load_with_origins(file)?.value)
}

/// Like [`load`], keeping the record of where each value came from, so that later checks
/// can name the file (or environment variable) of the key at fault and relative paths can
/// be resolved against the file that holds them.
pub fn load_with_origins<T: DeserializeOwned + Serialize + Default>(
    file: Option<&Path>,
) -> Result<Loaded<T>> {
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(BusError::Config(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(
        Env::prefixed(ENV_PREFIX)
            .filter(|k| k.as_str().contains(ENV_SEPARATOR))
            .split(ENV_SEPARATOR),
    );
    let value = fig.extract().map_err(|e| from_figment(&e))?;
    Ok(Loaded {
        value,
        figment: fig,
        file: file.map(Path::to_path_buf),
    })
}

const ENV_PREFIX: &str = "L2F_";
const ENV_SEPARATOR: &str = "__";

/// The environment variable that sets `key` (`kafka.bootstrap_servers` →
/// `L2F_KAFKA__BOOTSTRAP_SERVERS`).
pub fn env_var_of(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join(ENV_SEPARATOR)
    )
}

/// Where a value came from, as an error names it: `in FILE` or `from environment variable V`;
/// `None` for built-in defaults.
fn describe_origin(md: &figment::Metadata, key: &str) -> Option<String> {
    match &md.source {
        Some(figment::Source::File(p)) => Some(format!("in {}", p.display())),
        Some(_) => None,
        None if md.name.contains("environment") => {
            Some(format!("from environment variable {}", env_var_of(key)))
        }
        None => None,
    }
}

/// One line per figment error: `configuration: KEY: WHAT (in FILE)`.
fn from_figment(e: &figment::Error) -> BusError {
    use figment::error::Kind;
    let one_of = |exp: &[&str]| exp.join(", ");
    let mut errors: Vec<BusError> = e
        .clone()
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let reason = match &e.kind {
                Kind::UnknownField(field, exp) => {
                    if e.path.last() != Some(field) {
                        key = join_key(&key, field);
                    }
                    if exp.is_empty() {
                        "unknown key (this section takes none)".to_string()
                    } else {
                        format!("unknown key; expected one of: {}", one_of(exp))
                    }
                }
                Kind::UnknownVariant(v, exp) => {
                    format!("{v:?} is not one of: {}", one_of(exp))
                }
                Kind::MissingField(field) => {
                    key = join_key(&key, field);
                    "missing (this key is required)".to_string()
                }
                Kind::InvalidType(actual, exp) => format!("found {actual}, expected {exp}"),
                Kind::InvalidValue(actual, exp) => format!("found {actual}, expected {exp}"),
                Kind::Message(m) => m.replace('\n', " "),
                other => other.to_string().replace('\n', " "),
            };
            let origin = e.metadata.as_ref().and_then(|md| describe_origin(md, &key));
            BusError::Key {
                key: if key.is_empty() {
                    "(top level)".into()
                } else {
                    key
                },
                reason,
                origin,
            }
        })
        .collect();
    if errors.len() == 1 {
        return errors.remove(0);
    }
    BusError::Config(
        errors
            .iter()
            .map(|e| {
                e.to_string()
                    .trim_start_matches("configuration: ")
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn join_key(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// A loaded configuration and the record of where each of its values came from.
pub struct Loaded<T> {
    /// The configuration.
    pub value: T,
    figment: Figment,
    file: Option<PathBuf>,
}

impl<T> Loaded<T> {
    /// The configuration file, if one was given.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Where the value of `key` (or, if unset, of its nearest set parent) came from:
    /// `in FILE`, `from environment variable V`; `None` for a built-in default.
    pub fn origin(&self, key: &str) -> Option<String> {
        let mut k = key;
        loop {
            if let Some(md) = self.figment.find_metadata(k) {
                return describe_origin(md, key);
            }
            k = k.rsplit_once('.')?.0;
        }
    }

    /// Adds the origin of its key to a [`BusError::Key`] that has none yet.
    pub fn locate(&self, e: BusError) -> BusError {
        match e {
            BusError::Key {
                key,
                reason,
                origin: None,
            } => {
                let origin = self.origin(&key);
                BusError::Key {
                    key,
                    reason,
                    origin,
                }
            }
            other => other,
        }
    }

    /// `path`, the value of `key`, resolved as the configuration means it: a relative path
    /// written in the file is relative to the file's directory (as in Kafka Connect's and
    /// Prometheus's configurations); one from the environment is relative to the working
    /// directory.
    pub fn resolve(&self, key: &str, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self
            .figment
            .find_metadata(key)
            .and_then(|md| md.source.as_ref())
        {
            Some(figment::Source::File(file)) => file
                .parent()
                .map_or_else(|| path.to_path_buf(), |dir| dir.join(path)),
            _ => path.to_path_buf(),
        }
    }

    /// Resolves a secret read from a file (`{ file = "..." }`) at `key` like [`Self::resolve`].
    pub fn resolve_secret(&self, key: &str, secret: &mut SecretRef) {
        if let SecretRef::File { file } = secret {
            *file = self.resolve(&format!("{key}.file"), file);
        }
    }

    /// Resolves every `{ file = "..." }` object (a secret from a file) and every string under
    /// a key ending in `_file` or `_dir` (a TLS certificate, a templates directory) inside a raw
    /// section, such as a connector's, at `key`.
    pub fn resolve_secrets_in(&self, key: &str, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if map.len() == 1 {
                    if let Some(serde_json::Value::String(file)) = map.get_mut("file") {
                        let file_key = format!("{key}.file");
                        *file = self
                            .resolve(&file_key, Path::new(file.as_str()))
                            .display()
                            .to_string();
                        return;
                    }
                }
                for (k, v) in map.iter_mut() {
                    let at = join_key(key, k);
                    match v {
                        serde_json::Value::String(path)
                            if k.ends_with("_file") || k.ends_with("_dir") =>
                        {
                            *path = self
                                .resolve(&at, Path::new(path.as_str()))
                                .display()
                                .to_string();
                        }
                        _ => self.resolve_secrets_in(&at, v),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.resolve_secrets_in(&format!("{key}.{i}"), v);
                }
            }
            _ => {}
        }
    }
}

impl Loaded<BusConfig> {
    /// Loads the hub's configuration (defaults, file, environment), resolves its relative
    /// paths against the file, and checks the Kafka settings and the topic and rule keys.
    /// Every error names the key and where its value came from.
    ///
    /// Paths resolved against the file: `topics.catalog`, `rules.dir`,
    /// `kafka.tls.ca_location`, `kafka.tls.certificate_location`, `kafka.tls.key_location`,
    /// every secret given as `{ file = "..." }` (`kafka.sasl.password`,
    /// `kafka.tls.key_password`, and those inside `[connectors.*]` sections), and every
    /// `*_file` and `*_dir` key of a connector section (`connectors.zuora.callout_tls.cert_file`,
    /// `connectors.mail.templates_dir`).
    pub fn bus(file: Option<&Path>) -> Result<Self> {
        let mut loaded: Loaded<BusConfig> = load_with_origins(file)?;
        loaded.resolve_paths();
        loaded.value.validate().map_err(|e| loaded.locate(e))?;
        Ok(loaded)
    }

    fn resolve_paths(&mut self) {
        let mut cfg = std::mem::take(&mut self.value);
        let rebase = |key: &str, p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                *path = self.resolve(key, path);
            }
        };
        rebase("topics.catalog", &mut cfg.topics.catalog);
        rebase("rules.dir", &mut cfg.rules.dir);
        if let Some(tls) = &mut cfg.kafka.tls {
            rebase("kafka.tls.ca_location", &mut tls.ca_location);
            rebase(
                "kafka.tls.certificate_location",
                &mut tls.certificate_location,
            );
            rebase("kafka.tls.key_location", &mut tls.key_location);
            if let Some(k) = &mut tls.key_password {
                self.resolve_secret("kafka.tls.key_password", k);
            }
        }
        if let Some(sasl) = &mut cfg.kafka.sasl {
            self.resolve_secret("kafka.sasl.password", &mut sasl.password);
        }
        for (name, section) in &mut cfg.connectors {
            self.resolve_secrets_in(&format!("connectors.{name}"), section);
        }
        self.value = cfg;
    }
}

/// Everything the bus needs: the cluster, consumer behaviour, retries and dead letters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// Which cluster and how to reach it.
    pub kafka: KafkaConfig,
    /// Consumer-group behaviour.
    pub consumer: ConsumerConfig,
    /// Backoff for transient failures.
    pub retry: RetryConfig,
    /// Where records that cannot be handled go.
    pub dead_letter: DeadLetterConfig,
    /// The topic catalog.
    pub topics: TopicsConfig,
    /// The handbook's rule tables.
    pub rules: RulesConfig,
    /// The operations endpoint (metrics, health, readiness).
    pub ops: OpsConfig,
    /// Where spans are exported (OTLP), if anywhere.
    pub traces: TracesConfig,
    /// How source connectors keep their cursors and share their feeds.
    pub sources: SourcesConfig,
    /// The one clock every scheduler reads (the wall clock, or the mocks' simulated clock).
    pub clock: ClockConfig,
    /// One section per connector `l2f run` starts (`[connectors.marketo]`, ...), kept raw
    /// here because the bus knows no connector: each connector parses its own section,
    /// refusing unknown keys, at start.
    pub connectors: BTreeMap<String, serde_json::Value>,
}

/// How source connectors run: where their cursors are kept (committed in one transaction with
/// the events they read), how often they poll, how soon a standby takes over.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// The compacted topic of source cursors (one record per source, keyed by its name).
    pub offsets_topic: String,
    /// Wait between two polls of a feed that had nothing new.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Session timeout of a source's lease group: how soon a standby replica takes over
    /// from one that died.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            offsets_topic: "source-offsets".into(),
            poll_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// Which clock the hub's schedulers read (DESIGN "Time").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockSource {
    /// The wall clock (production).
    #[default]
    Wall,
    /// A simulated clock followed from a mock process's `GET /__admin/clock` (tests, demo).
    Follow,
}

/// `[clock]`: `source = "wall"` (default), or `source = "follow"` with the `url` of any mock
/// app of an `l2f mocks` process (its `/__admin/clock` is polled every `poll_interval`), so
/// the hub's schedulers and the mocks read one simulated time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// `wall` or `follow`.
    pub source: ClockSource,
    /// Base URL of the mock app whose clock is followed (`http://127.0.0.1:18001`); required
    /// by `follow`.
    pub url: Option<String>,
    /// How often a followed clock is read.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            source: ClockSource::Wall,
            url: None,
            poll_interval: Duration::from_millis(200),
        }
    }
}

impl ClockConfig {
    /// Checks the settings hang together; errors name the key at fault.
    pub fn validate(&self) -> Result<()> {
        match (self.source, &self.url) {
            (ClockSource::Follow, None) => Err(BusError::key(
                "clock.url",
                "missing: clock.source = \"follow\" needs the base URL of a mock app (http://127.0.0.1:18001)",
            )),
            (ClockSource::Follow, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                Err(BusError::key(
                    "clock.url",
                    format!("{u:?} must start with http:// or https://"),
                ))
            }
            (ClockSource::Wall, Some(_)) => Err(BusError::key(
                "clock.url",
                "is set but clock.source is \"wall\" (set source = \"follow\" to follow it)",
            )),
            _ if self.poll_interval.is_zero() => {
                Err(BusError::key("clock.poll_interval", "must be more than zero"))
            }
            _ => Ok(()),
        }
    }
}

/// Where `l2f run` serves `/metrics` (Prometheus text format), `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Address to listen on, e.g. `0.0.0.0:9464`; unset serves nothing.
    pub listen: Option<std::net::SocketAddr>,
}

/// Where each record's spans go: an OpenTelemetry collector over OTLP/HTTP. Unset keys fall
/// back to the standard variables (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`), as every
/// OpenTelemetry SDK does; with neither an endpoint nor a variable, no span is made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// The collector's base URL (`http://otel-collector:4318`; spans go to `/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (the default) or `http/json`.
    pub protocol: Option<OtlpProtocol>,
    /// The `service.name` resource attribute (default `l2f`).
    pub service_name: Option<String>,
    /// The share of traces exported, 0.0–1.0, chosen by trace id so every connector keeps the
    /// same whole traces (default 1.0; unset: `OTEL_TRACES_SAMPLER_ARG` with
    /// `OTEL_TRACES_SAMPLER` = `traceidratio` or `parentbased_traceidratio`).
    pub sample_ratio: Option<f64>,
}

/// The OTLP encodings l2f exports in (gRPC is not built in: every collector takes HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP, OTLP's default.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON over HTTP.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// Where the topic catalog is and how it is applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// The catalog file (relative to the config file); unset: the catalog built into the
    /// binary (`deploy/topics.toml` as shipped), so an installed `l2f` needs no repository.
    pub catalog: Option<PathBuf>,
    /// Replication factor forced on every topic (set 1 on a one-broker development cluster).
    pub replication_factor: Option<i32>,
    /// `l2f run` creates the catalog's missing topics at start, as `l2f topics apply` would
    /// (never changing an existing one) — like Kafka Connect's `topic.creation.enable`. Off by
    /// default: in production the catalog is applied on purpose.
    pub create_missing: bool,
}

/// Where the handbook's rule tables are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of the rule tables (relative to the config file), for finance's own edits;
    /// unset: the tables built into the binary (`deploy/rules/*.toml` as shipped).
    pub dir: Option<PathBuf>,
}

impl BusConfig {
    /// Checks every key the bus itself owns; errors name the key (see [`Loaded::locate`]).
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate()?;
        self.clock.validate()?;
        if let Some(rf) = self.topics.replication_factor {
            if rf < 1 {
                return Err(BusError::key(
                    "topics.replication_factor",
                    format!("{rf} must be at least 1"),
                ));
            }
        }
        if self.dead_letter.topic.trim().is_empty() {
            return Err(BusError::key("dead_letter.topic", "is empty"));
        }
        for (key, path) in [
            ("topics.catalog", &self.topics.catalog),
            ("rules.dir", &self.rules.dir),
        ] {
            if let Some(p) = path {
                if !p.exists() {
                    return Err(BusError::key(
                        key,
                        format!(
                            "{} does not exist (relative paths are read from the config file's directory; leave {key} unset for the built-in one)",
                            p.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How to reach the cluster. No `bootstrap_servers` means the in-process embedded broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`; unset runs on the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// Client id reported to the brokers, for quotas and broker-side logs.
    pub client_id: String,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's spelling; any case).
    pub security_protocol: SecurityProtocol,
    /// SASL credentials; required by the sasl_* protocols.
    pub sasl: Option<SaslConfig>,
    /// TLS material; used by the ssl and sasl_ssl protocols.
    pub tls: Option<TlsConfig>,
    /// How long start-up waits for the cluster to answer before giving up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Extra librdkafka properties passed through unchanged (e.g. `linger.ms`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: None,
            client_id: "l2f".into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            properties: BTreeMap::new(),
        }
    }
}

/// Kafka's `security.protocol`, spelt as Kafka spells it (`SASL_SSL`) or in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no SASL (loopback and trusted networks only).
    Plaintext,
    /// TLS without SASL (optionally mutual TLS).
    Ssl,
    /// SASL over plaintext.
    SaslPlaintext,
    /// SASL over TLS: the usual choice for managed clusters.
    SaslSsl,
}

/// Parses a Kafka enumerated setting as Kafka does (case-insensitively), refusing anything
/// else with the list of Kafka's own spellings.
fn kafka_enum<'de, D, T>(d: D, all: &[T], name: impl Fn(&T) -> &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Copy,
{
    let s = String::deserialize(d)?;
    all.iter()
        .find(|v| name(v).eq_ignore_ascii_case(s.trim()))
        .copied()
        .ok_or_else(|| {
            // serde wants a 'static list; these lists are fixed and tiny.
            let expected: Vec<&'static str> = all.iter().map(name).collect();
            serde::de::Error::custom(format!(
                "{s:?} is not one of: {} (Kafka's spelling, any case)",
                expected.join(", ")
            ))
        })
}

impl Serialize for SecurityProtocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_kafka())
    }
}

impl<'de> Deserialize<'de> for SecurityProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        kafka_enum(d, &SecurityProtocol::ALL, |p| p.as_kafka())
    }
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// The name as Kafka writes it (`security.protocol=SASL_SSL`).
    pub fn as_kafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanisms l2f supports (GSSAPI and OAUTHBEARER are not built in), spelt as Kafka's
/// `sasl.mechanism` spells them (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password in the clear (use with TLS).
    Plain,
    /// Salted challenge-response with SHA-256.
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
}

impl Serialize for SaslMechanism {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_librdkafka())
    }
}

impl<'de> Deserialize<'de> for SaslMechanism {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        kafka_enum(d, &SaslMechanism::ALL, |m| m.as_librdkafka())
    }
}

impl SaslMechanism {
    /// Every mechanism l2f supports.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: SaslMechanism,
    /// The SASL user name.
    pub username: String,
    /// The password: `{ env = "VAR" }`, `{ file = "/path" }` or (discouraged) inline.
    pub password: SecretRef,
}

/// TLS material for the ssl and sasl_ssl protocols.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that signed the brokers' certificates.
    pub ca_location: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    pub certificate_location: Option<PathBuf>,
    /// PEM client key, for mutual TLS.
    pub key_location: Option<PathBuf>,
    /// Password of the client key, if it is encrypted.
    pub key_password: Option<SecretRef>,
    /// Check that the broker's certificate names the host (on unless explicitly disabled).
    pub verify_hostname: Option<bool>,
}

pub use l2f_secrets::{Secret, SecretError, SecretRef};

/// librdkafka properties that carry secrets and so must come through [`SecretRef`]s.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
];

/// librdkafka properties l2f sets from its own keys: a passthrough copy would silently win
/// over (or lose to) the key, so it is refused with the key to use.
const OWN_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.bootstrap_servers"),
    ("metadata.broker.list", "kafka.bootstrap_servers"),
    ("client.id", "kafka.client_id"),
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl.mechanism"),
    ("sasl.mechanisms", "kafka.sasl.mechanism"),
    ("sasl.username", "kafka.sasl.username"),
    ("ssl.ca.location", "kafka.tls.ca_location"),
    ("ssl.certificate.location", "kafka.tls.certificate_location"),
    ("ssl.key.location", "kafka.tls.key_location"),
    (
        "ssl.endpoint.identification.algorithm",
        "kafka.tls.verify_hostname",
    ),
];

impl KafkaConfig {
    /// Checks the settings hang together; errors name the key at fault.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = &self.bootstrap_servers {
            if b.trim().is_empty() {
                return Err(BusError::key(
                    "kafka.bootstrap_servers",
                    "is empty (leave it unset for the embedded broker)",
                ));
            }
            for server in b.split(',') {
                let server = server.trim();
                let port = server.rsplit_once(':').map(|(_, p)| p);
                if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                    return Err(BusError::key(
                        "kafka.bootstrap_servers",
                        format!("{server:?} is not host:port"),
                    ));
                }
            }
        }
        match (&self.sasl, self.security_protocol.uses_sasl()) {
            (None, true) => {
                return Err(BusError::key(
                    "kafka.security_protocol",
                    format!(
                        "is {} but kafka.sasl (mechanism, username, password) is missing",
                        self.security_protocol.as_kafka()
                    ),
                ))
            }
            (Some(_), false) => {
                return Err(BusError::key(
                    "kafka.sasl",
                    format!(
                        "is set but kafka.security_protocol is {} (use SASL_SSL or SASL_PLAINTEXT)",
                        self.security_protocol.as_kafka()
                    ),
                ))
            }
            _ => {}
        }
        if let Some(sasl) = &self.sasl {
            if sasl.username.trim().is_empty() {
                return Err(BusError::key("kafka.sasl.username", "is empty"));
            }
            sasl.password.resolve("kafka.sasl.password")?;
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("kafka.tls.ca_location", &tls.ca_location),
                ("kafka.tls.certificate_location", &tls.certificate_location),
                ("kafka.tls.key_location", &tls.key_location),
            ] {
                if let Some(p) = path {
                    if !p.exists() {
                        return Err(BusError::key(
                            key,
                            format!(
                                "file {} does not exist (relative paths are read from the config file's directory)",
                                p.display()
                            ),
                        ));
                    }
                }
            }
            if let Some(k) = &tls.key_password {
                k.resolve("kafka.tls.key_password")?;
            }
        }
        for key in self.properties.keys() {
            let at = format!("kafka.properties.{key}");
            if SECRET_PROPERTIES.contains(&key.as_str()) {
                return Err(BusError::key(
                    at,
                    "secrets go in kafka.sasl.password or kafka.tls.key_password, as { env = \"VAR\" } or { file = \"PATH\" }",
                ));
            }
            if let Some((_, own)) = OWN_PROPERTIES.iter().find(|(p, _)| p == key) {
                return Err(BusError::key(
                    at,
                    format!("set {own} instead (l2f sets {key} from it)"),
                ));
            }
        }
        Ok(())
    }

    /// The librdkafka client configuration for `bootstrap` (the configured servers, or the
    /// embedded broker's). Secrets are resolved here and go nowhere but the client.
    pub fn client_config(&self, bootstrap: &str) -> Result<ClientConfig> {
        self.validate()?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("client.id", &self.client_id)
            .set("security.protocol", self.security_protocol.as_kafka());
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanism", sasl.mechanism.as_librdkafka())
                .set("sasl.username", &sasl.username)
                .set(
                    "sasl.password",
                    sasl.password.resolve("kafka.sasl.password")?.expose(),
                );
        }
        if let Some(tls) = &self.tls {
            let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
            if let Some(p) = path(&tls.ca_location) {
                c.set("ssl.ca.location", p);
            }
            if let Some(p) = path(&tls.certificate_location) {
                c.set("ssl.certificate.location", p);
            }
            if let Some(p) = path(&tls.key_location) {
                c.set("ssl.key.location", p);
            }
            if let Some(k) = &tls.key_password {
                c.set(
                    "ssl.key.password",
                    k.resolve("kafka.tls.key_password")?.expose(),
                );
            }
            if tls.verify_hostname == Some(false) {
                c.set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        Ok(c)
    }
}

/// Consumer-group behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Records fetched but not yet handled, per partition; past it the partition is paused.
    pub max_in_flight_per_partition: usize,
    /// How often stored offsets are committed in the background.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// How long a rebalance or shutdown waits for in-flight work before giving it up.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Group session timeout: how fast a dead member's partitions move on.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_in_flight_per_partition: 256,
            commit_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(8),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// Exponential backoff with jitter for transient failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// The first wait.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// The longest wait between two attempts (a Retry-After hint may ask for more).
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Growth factor of the wait.
    pub multiplier: f64,
    /// Jitter: each wait is drawn from ±this fraction around its nominal value.
    pub jitter: f64,
    /// Attempts before a transient failure is given up and dead-lettered.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.3,
            max_attempts: 8,
        }
    }
}

/// Where records that cannot be handled go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// The dead-letter topic.
    pub topic: String,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            topic: "dead-letters".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<BusConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l2f.toml");
        std::fs::write(&path, toml).unwrap();
        load(Some(&path))
    }

    #[test]
    fn the_clock_section_defaults_to_the_wall_and_refuses_typos_and_a_follow_without_url() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.clock, ClockConfig::default());
        assert_eq!(cfg.clock.source, ClockSource::Wall);
        let cfg = parse(
            "[clock]\nsource = \"follow\"\nurl = \"http://127.0.0.1:18001\"\npoll_interval = \"50ms\"\n",
        )
        .unwrap();
        assert_eq!(cfg.clock.source, ClockSource::Follow);
        assert_eq!(cfg.clock.poll_interval, Duration::from_millis(50));
        cfg.validate().unwrap();
        let err = parse("[clock]\nsorce = \"wall\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clock.sorce") && err.contains("unknown key"),
            "{err}"
        );
        let err = parse("[clock]\nsource = \"simulated\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("simulated") && err.contains("follow"), "{err}");
        let cfg = parse("[clock]\nsource = \"follow\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("clock.url"), "{err}");
        let cfg = parse("[clock]\nurl = \"http://x:1\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("clock.url") && err.contains("wall"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[kafka]\nbootstrap_server = \"x:1\"\n").unwrap_err();
        assert!(err.to_string().contains("bootstrap_server"), "{err}");
    }

    #[test]
    fn missing_secret_variable_is_named_and_not_leaked() {
        let cfg = parse(
            "[kafka]\nbootstrap_servers = \"h:9092\"\nsecurity_protocol = \"sasl_ssl\"\n\
             [kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\npassword = { env = \"L2F_TEST_NO_SUCH_VAR_1\" }\n",
        )
        .unwrap();
        let err = cfg.kafka.validate().unwrap_err().to_string();
        assert!(err.contains("L2F_TEST_NO_SUCH_VAR_1"), "{err}");
        assert!(err.contains("kafka.sasl.password"), "{err}");
    }

    #[test]
    fn malformed_sasl_mechanism_is_rejected() {
        let err = parse(
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-1\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SCRAM-SHA-1"), "{err}");
    }

    #[test]
    fn sasl_protocol_without_credentials_is_rejected() {
        let cfg = parse("[kafka]\nsecurity_protocol = \"sasl_plaintext\"\n").unwrap();
        let err = cfg.kafka.validate().unwrap_err().to_string();
        assert!(err.contains("kafka.sasl"), "{err}");
    }

    #[test]
    fn inline_secret_never_prints() {
        let cfg = parse(
            "[kafka]\nsecurity_protocol = \"sasl_plaintext\"\n[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"hunter2-secret\"\n",
        )
        .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let secret = cfg.kafka.sasl.unwrap().password.resolve("x").unwrap();
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2-secret");
    }

    #[test]
    fn secret_in_passthrough_properties_is_refused() {
        let cfg = parse("[kafka.properties]\n\"sasl.password\" = \"p\"\n").unwrap();
        let err = cfg.kafka.validate().unwrap_err().to_string();
        assert!(
            err.contains("sasl.password") && !err.contains("\"p\""),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_names_the_dotted_key_and_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l2f.toml");
        std::fs::write(&path, "[kafka]\nbootstrap_server = \"x:1\"\n").unwrap();
        let err = load::<BusConfig>(Some(&path)).unwrap_err().to_string();
        assert!(
            err.starts_with("configuration: kafka.bootstrap_server: unknown key; expected one of: bootstrap_servers, client_id,"),
            "{err}"
        );
        assert!(err.ends_with(&format!("(in {})", path.display())), "{err}");
        assert!(!err.contains("``") && !err.contains("default."), "{err}");
    }

    #[test]
    fn kafka_spellings_of_the_security_protocol_are_accepted() {
        for (text, want) in [
            ("PLAINTEXT", SecurityProtocol::Plaintext),
            ("plaintext", SecurityProtocol::Plaintext),
            ("SSL", SecurityProtocol::Ssl),
            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
            ("SASL_SSL", SecurityProtocol::SaslSsl),
            ("sasl_ssl", SecurityProtocol::SaslSsl),
        ] {
            let cfg = parse(&format!("[kafka]\nsecurity_protocol = \"{text}\"\n")).unwrap();
            assert_eq!(cfg.kafka.security_protocol, want, "{text}");
        }
        let err = parse("[kafka]\nsecurity_protocol = \"TLS\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kafka.security_protocol")
                && err.contains("PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
            "{err}"
        );
    }

    #[test]
    fn sasl_mechanisms_are_read_in_any_case() {
        let cfg = parse(
            "[kafka]\nsecurity_protocol = \"SASL_SSL\"\n[kafka.sasl]\nmechanism = \"scram-sha-256\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.kafka.sasl.unwrap().mechanism,
            SaslMechanism::ScramSha256
        );
    }

    #[test]
    fn a_passthrough_property_l2f_sets_itself_names_the_key_to_use() {
        let cfg = parse("[kafka.properties]\n\"security.protocol\" = \"SSL\"\n").unwrap();
        let err = cfg.kafka.validate().unwrap_err().to_string();
        assert!(err.contains("kafka.security_protocol"), "{err}");
    }

    #[test]
    fn relative_paths_in_the_file_resolve_against_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etc");
        std::fs::create_dir_all(conf.join("rules")).unwrap();
        std::fs::write(conf.join("topics.toml"), "").unwrap();
        std::fs::write(conf.join("ca.pem"), "").unwrap();
        let path = conf.join("l2f.toml");
        std::fs::write(
            &path,
            "[kafka]\nsecurity_protocol = \"SASL_SSL\"\n[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = { file = \"secrets/pw\" }\n\
             [kafka.tls]\nca_location = \"ca.pem\"\n[topics]\ncatalog = \"topics.toml\"\n[rules]\ndir = \"rules\"\n\
             [connectors.x]\nsecret = { file = \"x.secret\" }\ntemplates_dir = \"templates/mail\"\n[connectors.x.tls]\ncert_file = \"tls/cert.pem\"\n",
        )
        .unwrap();
        let mut loaded: Loaded<BusConfig> = load_with_origins(Some(&path)).unwrap();
        loaded.resolve_paths();
        let cfg = &loaded.value;
        assert_eq!(
            cfg.topics.catalog.as_deref(),
            Some(&*conf.join("topics.toml"))
        );
        assert_eq!(cfg.rules.dir.as_deref(), Some(&*conf.join("rules")));
        let tls = cfg.kafka.tls.as_ref().unwrap();
        assert_eq!(tls.ca_location.as_deref(), Some(&*conf.join("ca.pem")));
        match &cfg.kafka.sasl.as_ref().unwrap().password {
            SecretRef::File { file } => assert_eq!(file, &conf.join("secrets/pw")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cfg.connectors["x"]["secret"]["file"],
            conf.join("x.secret").display().to_string()
        );
        assert_eq!(
            cfg.connectors["x"]["tls"]["cert_file"],
            conf.join("tls/cert.pem").display().to_string()
        );
        assert_eq!(
            cfg.connectors["x"]["templates_dir"],
            conf.join("templates/mail").display().to_string()
        );
    }

    #[test]
    fn a_missing_file_names_the_key_and_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l2f.toml");
        std::fs::write(&path, "[topics]\ncatalog = \"deploy/topics.toml\"\n").unwrap();
        let err = Loaded::<BusConfig>::bus(Some(&path))
            .err()
            .expect("missing catalog")
            .to_string();
        assert!(err.contains("topics.catalog"), "{err}");
        assert!(
            err.contains(&dir.path().join("deploy/topics.toml").display().to_string()),
            "{err}"
        );
        assert!(err.ends_with(&format!("(in {})", path.display())), "{err}");
    }

    #[test]
    fn the_environment_variable_of_a_bad_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l2f.toml");
        std::fs::write(&path, "").unwrap();
        let loaded: Loaded<BusConfig> = load_with_origins(Some(&path)).unwrap();
        // Nothing set: a default has no origin to name.
        assert_eq!(loaded.origin("kafka.client_id"), None);
        assert_eq!(
            env_var_of("kafka.bootstrap_servers"),
            "L2F_KAFKA__BOOTSTRAP_SERVERS"
        );
    }

    #[test]
    fn bootstrap_without_port_is_rejected() {
        let cfg = parse("[kafka]\nbootstrap_servers = \"localhost\"\n").unwrap();
        assert!(cfg
            .kafka
            .validate()
            .unwrap_err()
            .to_string()
            .contains("host:port"));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/l2f.example.toml");
        let cfg: BusConfig = load(Some(&path)).unwrap();
        assert_eq!(cfg.kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(cfg.retry.max_attempts, 8);
        assert_eq!(
            cfg.kafka.sasl.unwrap().mechanism,
            SaslMechanism::ScramSha512
        );
    }
}
