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
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(BusError::Config(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(
        Env::prefixed("L2F_")
            .filter(|k| k.as_str().contains("__"))
            .split("__"),
    );
    fig.extract().map_err(|e| BusError::Config(one_line(&e)))
}

fn one_line(e: &figment::Error) -> String {
    // figment's Display spans several lines for nested errors; operators want one.
    e.clone()
        .into_iter()
        .map(|e| e.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ")
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
    /// The operations endpoint (metrics, health, readiness).
    pub ops: OpsConfig,
    /// How source connectors keep their cursors and share their feeds.
    pub sources: SourcesConfig,
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

/// Where `l2f run` serves `/metrics` (Prometheus text format), `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Address to listen on, e.g. `0.0.0.0:9464`; unset serves nothing.
    pub listen: Option<std::net::SocketAddr>,
}

/// Where the topic catalog is and how it is applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// The catalog file.
    pub catalog: PathBuf,
    /// Replication factor forced on every topic (set 1 on a one-broker development cluster).
    pub replication_factor: Option<i32>,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            catalog: PathBuf::from("deploy/topics.toml"),
            replication_factor: None,
        }
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
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
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

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl SecurityProtocol {
    fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL mechanisms l2f supports (GSSAPI and OAUTHBEARER are not built in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// Username and password in the clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
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

impl KafkaConfig {
    /// Checks the settings hang together; errors name the key at fault.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = &self.bootstrap_servers {
            if b.trim().is_empty() {
                return Err(BusError::Config(
                    "kafka.bootstrap_servers is empty (leave it unset for the embedded broker)"
                        .into(),
                ));
            }
            for server in b.split(',') {
                let server = server.trim();
                let port = server.rsplit_once(':').map(|(_, p)| p);
                if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                    return Err(BusError::Config(format!(
                        "kafka.bootstrap_servers: {server:?} is not host:port"
                    )));
                }
            }
        }
        match (&self.sasl, self.security_protocol.uses_sasl()) {
            (None, true) => {
                return Err(BusError::Config(format!(
                    "kafka.security_protocol is {} but kafka.sasl (mechanism, username, password) is missing",
                    self.security_protocol.as_librdkafka()
                )))
            }
            (Some(_), false) => {
                return Err(BusError::Config(format!(
                    "kafka.sasl is set but kafka.security_protocol is {} (use sasl_ssl or sasl_plaintext)",
                    self.security_protocol.as_librdkafka()
                )))
            }
            _ => {}
        }
        if let Some(sasl) = &self.sasl {
            if sasl.username.trim().is_empty() {
                return Err(BusError::Config("kafka.sasl.username is empty".into()));
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
                        return Err(BusError::Config(format!(
                            "{key}: file {} does not exist",
                            p.display()
                        )));
                    }
                }
            }
            if let Some(k) = &tls.key_password {
                k.resolve("kafka.tls.key_password")?;
            }
        }
        for key in self.properties.keys() {
            if SECRET_PROPERTIES.contains(&key.as_str()) {
                return Err(BusError::Config(format!(
                    "kafka.properties.{key}: secrets go in kafka.sasl.password or kafka.tls.key_password, as {{ env = \"VAR\" }}"
                )));
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
            .set("security.protocol", self.security_protocol.as_librdkafka());
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
