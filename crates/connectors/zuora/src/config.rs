//! The connector's configuration, `[connectors.zuora]`: where Zuora's REST API is and the
//! OAuth client that calls it (the secret from the environment or a file, never printed);
//! the topics and consumer group of the sink; the callout listener Zuora's notifications
//! arrive on (address, path, basic-auth credentials, optional TLS, body limit) and how often
//! the notification history is polled. Unknown keys are refused, so a typo is an error, not a
//! default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use l2f_bus::config::SecretRef;
use l2f_contracts::events::CommunicationProfile;
use serde::{Deserialize, Serialize};

use crate::client::ZuoraClient;

/// Why the connector cannot start; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value the connector cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, relative to the `zuora` section.
        key: &'static str,
        /// What is wrong with it (never a secret's value).
        reason: String,
    },
    /// A secret could not be resolved (unset variable, unreadable file); names its full key.
    #[error("{0}")]
    Secret(String),
    /// The HTTP client could not be built (TLS backend).
    #[error("zuora HTTP client: {0}")]
    Http(String),
}

/// The TLS certificate the callout listener serves (PEM files; paths as written, relative
/// to the working directory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CalloutTls {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[connectors.zuora]`: one Zuora tenant, the topics it is fed from and the listener its
/// callout notifications arrive on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZuoraConfig {
    /// The tenant's REST base, e.g. `https://rest.apisandbox.zuora.com` (no `/v1`).
    pub base_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret: `{ env = "VAR" }`, `{ file = "/path" }` or (discouraged) inline.
    pub client_secret: SecretRef,
    /// Deadline of one HTTP call; a timeout means Zuora is unavailable (the record waits).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The topic of `OrderPlaced` events.
    #[serde(default = "default_orders_topic")]
    pub orders_topic: String,
    /// The topic of subscription events: the sink reads the customers app's toggles and
    /// cancellations from it, the source writes Zuora's changes to it.
    #[serde(default = "default_subscriptions_topic")]
    pub subscriptions_topic: String,
    /// The topic the source writes `CommunicationProfileChanged` to (an account's profile
    /// changed in Zuora, rule 6).
    #[serde(default = "default_licenses_topic")]
    pub licenses_topic: String,
    /// The sink's consumer group; instances with the same group share the partitions.
    #[serde(default = "default_group")]
    pub group: String,
    /// Where the callout listener binds, e.g. `0.0.0.0:8443`; unset runs no source (the
    /// sink alone).
    #[serde(default)]
    pub callout_listen: Option<SocketAddr>,
    /// The path Zuora's callout notifications are POSTed to.
    #[serde(default = "default_callout_path")]
    pub callout_path: String,
    /// The basic-auth user name the callout notification is configured with.
    #[serde(default)]
    pub callout_username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub callout_password: Option<SecretRef>,
    /// Serve the listener over TLS with this certificate.
    #[serde(default)]
    pub callout_tls: Option<CalloutTls>,
    /// The largest callout body accepted (413 past it).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a callout waits for its event to be committed before it is answered 503
    /// (Zuora retries it; the event is deduplicated). Keep it under the callout timeout
    /// configured in Zuora.
    #[serde(default = "default_callout_answer_timeout", with = "humantime_serde")]
    pub callout_answer_timeout: Duration,
    /// How often the notification history is read for callouts that never arrived.
    #[serde(default = "default_history_poll_interval", with = "humantime_serde")]
    pub history_poll_interval: Duration,
    /// How far back each history read overlaps the previous one (history rows are stamped
    /// with their first attempt, which may be written late).
    #[serde(default = "default_history_overlap", with = "humantime_serde")]
    pub history_overlap: Duration,
    /// How many notification ids the cursor remembers for deduplication.
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window: usize,
    /// The source's stable name: its cursor's key and lease group.
    #[serde(default = "default_source_name")]
    pub source: String,
    /// The tenant's name in event ids (`event_id("zuora", tenant, notification id)`);
    /// defaults to the base URL. Never change it for a running tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Zuora's communication profile id for each profile of rule 6.
    #[serde(default = "default_profiles")]
    pub communication_profiles: BTreeMap<String, String>,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_orders_topic() -> String {
    "orders".into()
}
fn default_subscriptions_topic() -> String {
    "subscriptions".into()
}
fn default_licenses_topic() -> String {
    "licenses".into()
}
fn default_group() -> String {
    "l2f-connector-zuora".into()
}
fn default_callout_path() -> String {
    "/callouts/zuora".into()
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_callout_answer_timeout() -> Duration {
    Duration::from_secs(8)
}
fn default_history_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_history_overlap() -> Duration {
    Duration::from_secs(300)
}
fn default_dedupe_window() -> usize {
    1024
}
fn default_source_name() -> String {
    "zuora-subscriptions".into()
}
fn default_profiles() -> BTreeMap<String, String> {
    CommunicationProfile::VARIANTS
        .iter()
        .map(|p| {
            (
                p.symbol().to_string(),
                crate::mapping::profile_label(*p).into(),
            )
        })
        .collect()
}

/// The key of the OAuth client secret, as errors name it.
pub const SECRET_KEY: &str = "connectors.zuora.client_secret";
/// The key of the callout password, as errors name it.
pub const CALLOUT_SECRET_KEY: &str = "connectors.zuora.callout_password";

impl ZuoraConfig {
    /// A configuration with every optional key at its default (no callout listener).
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretRef,
    ) -> Self {
        ZuoraConfig {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            request_timeout: default_request_timeout(),
            orders_topic: default_orders_topic(),
            subscriptions_topic: default_subscriptions_topic(),
            licenses_topic: default_licenses_topic(),
            group: default_group(),
            callout_listen: None,
            callout_path: default_callout_path(),
            callout_username: None,
            callout_password: None,
            callout_tls: None,
            max_body_bytes: default_max_body_bytes(),
            callout_answer_timeout: default_callout_answer_timeout(),
            history_poll_interval: default_history_poll_interval(),
            history_overlap: default_history_overlap(),
            dedupe_window: default_dedupe_window(),
            source: default_source_name(),
            tenant: None,
            communication_profiles: default_profiles(),
        }
    }

    /// The tenant's name in event ids.
    pub fn tenant(&self) -> String {
        self.tenant
            .clone()
            .unwrap_or_else(|| self.base_url.trim_end_matches('/').to_string())
    }

    /// Checks the values hang together, so a bad one stops the start rather than every call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return invalid("base_url", "must start with http:// or https://");
        }
        if self.base_url.trim_end_matches('/').ends_with("/v1") {
            return invalid("base_url", "give the REST base, without /v1");
        }
        if self.client_id.trim().is_empty() {
            return invalid("client_id", "is empty");
        }
        for (key, v) in [
            ("orders_topic", &self.orders_topic),
            ("subscriptions_topic", &self.subscriptions_topic),
            ("licenses_topic", &self.licenses_topic),
            ("group", &self.group),
            ("source", &self.source),
        ] {
            if v.trim().is_empty() {
                return invalid(key, "is empty");
            }
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero");
        }
        if !self.callout_path.starts_with('/') || self.callout_path.contains(['?', '#', ' ']) {
            return invalid("callout_path", "must be a path starting with / (no query)");
        }
        if self.callout_listen.is_some() {
            match (&self.callout_username, &self.callout_password) {
                (Some(u), Some(_)) if !u.is_empty() && !u.contains(':') => {}
                (Some(_), Some(_)) => {
                    return invalid(
                        "callout_username",
                        "must be non-empty, without ':' (basic auth)",
                    )
                }
                _ => {
                    return invalid(
                        "callout_username",
                        "callout_username and callout_password are required with callout_listen: every callout is authenticated",
                    )
                }
            }
        }
        if !(1024..=16 << 20).contains(&self.max_body_bytes) {
            return invalid("max_body_bytes", "must be 1 KiB to 16 MiB");
        }
        if self.callout_answer_timeout.is_zero() {
            return invalid("callout_answer_timeout", "must be more than zero");
        }
        if self.history_poll_interval < Duration::from_secs(1) {
            return invalid("history_poll_interval", "must be at least 1s");
        }
        if !(16..=100_000).contains(&self.dedupe_window) {
            return invalid("dedupe_window", "must be 16 to 100000 ids");
        }
        for p in CommunicationProfile::VARIANTS {
            match self.communication_profiles.get(p.symbol()) {
                Some(id) if !id.trim().is_empty() => {}
                _ => {
                    return invalid(
                        "communication_profiles",
                        &format!("needs a non-empty id for {}", p.symbol()),
                    )
                }
            }
        }
        if let Some(k) = self
            .communication_profiles
            .keys()
            .find(|k| !CommunicationProfile::SYMBOLS.contains(&k.as_str()))
        {
            return invalid(
                "communication_profiles",
                &format!(
                    "{k} is not a profile (known: {})",
                    CommunicationProfile::SYMBOLS.join(", ")
                ),
            );
        }
        Ok(())
    }

    /// Validates, resolves the secret and builds the Zuora client (token fetched lazily).
    pub fn client(&self) -> Result<ZuoraClient, ConfigError> {
        self.validate()?;
        let secret = self
            .client_secret
            .resolve(SECRET_KEY)
            .map_err(|e| ConfigError::Secret(e.to_string()))?;
        let http = l2f_connector_kit::http::http_client(self.request_timeout)
            .map_err(ConfigError::Http)?;
        Ok(ZuoraClient::new(
            http,
            self.base_url.clone(),
            self.client_id.clone(),
            secret,
        ))
    }

    /// The callout credentials, resolved (`None` without a listener).
    pub fn callout_credentials(
        &self,
    ) -> Result<Option<(String, l2f_secrets::Secret)>, ConfigError> {
        match (&self.callout_username, &self.callout_password) {
            (Some(u), Some(p)) => {
                let p = p
                    .resolve(CALLOUT_SECRET_KEY)
                    .map_err(|e| ConfigError::Secret(e.to_string()))?;
                Ok(Some((u.clone(), p)))
            }
            _ => Ok(None),
        }
    }

    /// The communication profile ids, by profile.
    pub fn profiles(&self) -> crate::mapping::Profiles {
        let id = |p: CommunicationProfile| {
            self.communication_profiles
                .get(p.symbol())
                .cloned()
                .unwrap_or_else(|| crate::mapping::profile_label(p).into())
        };
        crate::mapping::Profiles {
            default: id(CommunicationProfile::Default),
            silent: id(CommunicationProfile::Silent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "do-not-print-me";

    fn parse(text: &str) -> Result<ZuoraConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_the_optional_keys() {
        let c = parse(
            "base_url = \"https://rest.apisandbox.zuora.com\"\nclient_id = \"id\"\nclient_secret = { env = \"ZUORA_SECRET\" }\n",
        )
        .unwrap();
        assert_eq!(c.orders_topic, "orders");
        assert_eq!(c.subscriptions_topic, "subscriptions");
        assert_eq!(c.group, "l2f-connector-zuora");
        assert_eq!(c.callout_path, "/callouts/zuora");
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.history_poll_interval, Duration::from_secs(30));
        assert_eq!(c.source, "zuora-subscriptions");
        assert_eq!(c.tenant(), "https://rest.apisandbox.zuora.com");
        assert_eq!(c.profiles().default, "Default");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = parse(
            "base_url = \"https://x\"\nclient_id = \"id\"\nclient_secret = \"s\"\ncallout_pass = \"p\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("callout_pass"), "{e}");
    }

    #[test]
    fn a_listener_without_credentials_is_refused() {
        let mut c = ZuoraConfig::new("https://x", "id", SecretRef::Inline(SECRET.into()));
        c.callout_listen = Some("127.0.0.1:0".parse().unwrap());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("callout_username"), "{e}");
        c.callout_username = Some("zuora".into());
        c.callout_password = Some(SecretRef::Inline("pw".into()));
        assert!(c.validate().is_ok());
        c.callout_path = "callouts".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("callout_path"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = ZuoraConfig::new("ftp://x", "id", SecretRef::Inline(SECRET.into()));
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://rest.zuora.com/v1".into();
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://rest.zuora.com".into();
        c.max_body_bytes = 10;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_body_bytes"));
        c.max_body_bytes = 65536;
        c.communication_profiles.insert("LOUD".into(), "x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("LOUD is not a profile"));
    }

    #[test]
    fn a_missing_secret_variable_is_named_and_the_secret_never_printed() {
        let c = ZuoraConfig::new(
            "https://rest.zuora.com",
            "id",
            SecretRef::Env {
                env: "L2F_TEST_ZUORA_SECRET_UNSET".into(),
            },
        );
        let e = c.client().err().expect("unset variable").to_string();
        assert!(e.contains("L2F_TEST_ZUORA_SECRET_UNSET"), "{e}");
        assert!(e.contains(SECRET_KEY), "{e}");
        let inline = ZuoraConfig::new("https://x", "id", SecretRef::Inline(SECRET.into()));
        assert!(!format!("{inline:?}").contains(SECRET));
    }
}
