//! The connector's configuration: where Marketo is, the LaunchPoint credentials (the secret
//! from the environment or a file, never printed), how leads are matched, and which topic
//! and consumer group feed it. Unknown keys are refused, so a typo is an error, not a default.

use std::time::Duration;

use crate::client::{MarketoClient, MAX_LEADS_PER_CALL};
use l2f_bus::config::SecretRef;
use serde::{Deserialize, Serialize};

/// The full key of the client secret, as errors name it.
pub const SECRET_KEY: &str = "connectors.marketo.client_secret";

/// Why the connector cannot start; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value the connector cannot use.
    #[error("marketo.{key}: {reason}")]
    Invalid {
        /// The key, relative to the `marketo` section.
        key: &'static str,
        /// What is wrong with it (never the secret's value).
        reason: String,
    },
    /// The client secret could not be resolved (unset variable, unreadable file).
    #[error("{0}")]
    Secret(String),
    /// The HTTP client could not be built (TLS backend).
    #[error("marketo HTTP client: {0}")]
    Http(String),
}

/// `[marketo]`: one Marketo instance and the topic whose leads it receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketoConfig {
    /// The instance's REST base, e.g. `https://123-ABC-456.mktorest.com` (no `/rest` suffix).
    pub base_url: String,
    /// LaunchPoint client id.
    pub client_id: String,
    /// LaunchPoint client secret: `{ env = "VAR" }`, `{ file = "/path" }` or (discouraged)
    /// inline; resolved at start and printed as `***`.
    pub client_secret: SecretRef,
    /// The lead field Marketo matches on; `email` makes a redelivered lead an update.
    #[serde(default = "default_lookup_field")]
    pub lookup_field: String,
    /// The topic of `LeadCaptured` events.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The consumer group; instances with the same group share the topic's partitions.
    #[serde(default = "default_group")]
    pub group: String,
    /// Deadline of one HTTP call; a timeout is retried as transient.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Marketo's rate window (100 calls per 20 s): how long a 606 asks the loop to wait.
    #[serde(default = "default_rate_window", with = "humantime_serde")]
    pub rate_window: Duration,
    /// Most leads pushed in one call (Marketo takes up to 300).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    MAX_LEADS_PER_CALL
}

fn default_lookup_field() -> String {
    "email".into()
}
fn default_topic() -> String {
    "leads".into()
}
fn default_group() -> String {
    "l2f-connector-marketo".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_rate_window() -> Duration {
    Duration::from_secs(20)
}

impl MarketoConfig {
    /// A configuration with every optional key at its default.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretRef,
    ) -> Self {
        MarketoConfig {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            lookup_field: default_lookup_field(),
            topic: default_topic(),
            group: default_group(),
            request_timeout: default_request_timeout(),
            rate_window: default_rate_window(),
            batch_size: default_batch_size(),
        }
    }

    /// Checks the values hang together, so a bad one stops the start rather than every push.
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
        if self.base_url.trim_end_matches('/').ends_with("/rest") {
            return invalid("base_url", "give the instance base, without /rest");
        }
        if self.client_id.trim().is_empty() {
            return invalid("client_id", "is empty");
        }
        if self.lookup_field.trim().is_empty() {
            return invalid("lookup_field", "is empty");
        }
        if self.topic.trim().is_empty() {
            return invalid("topic", "is empty");
        }
        if self.group.trim().is_empty() {
            return invalid("group", "is empty");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero");
        }
        if self.rate_window.is_zero() {
            return invalid("rate_window", "must be more than zero");
        }
        if !(1..=MAX_LEADS_PER_CALL).contains(&self.batch_size) {
            return invalid("batch_size", "must be 1 to 300 (Marketo's limit per call)");
        }
        Ok(())
    }

    /// Validates, resolves the secret and builds the Marketo client (token fetched lazily).
    pub fn client(&self) -> Result<MarketoClient, ConfigError> {
        self.validate()?;
        let secret = self
            .client_secret
            .resolve(SECRET_KEY)
            .map_err(|e| ConfigError::Secret(e.to_string()))?;
        let http = l2f_connector_kit::http::http_client(self.request_timeout)
            .map_err(ConfigError::Http)?;
        Ok(MarketoClient::new(
            http,
            self.base_url.clone(),
            self.client_id.clone(),
            secret,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "do-not-print-me";

    fn parse(text: &str) -> Result<MarketoConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_the_optional_keys() {
        let c = parse(
            "base_url = \"https://1-a.mktorest.com\"\nclient_id = \"id\"\nclient_secret = { env = \"MKTO_SECRET\" }\n",
        )
        .unwrap();
        assert_eq!(c.lookup_field, "email");
        assert_eq!(c.topic, "leads");
        assert_eq!(c.group, "l2f-connector-marketo");
        assert_eq!(c.rate_window, Duration::from_secs(20));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = parse(
            "base_url = \"https://x\"\nclient_id = \"id\"\nclient_secret = \"s\"\nlookup = \"email\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lookup"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = MarketoConfig::new("ftp://x", "id", SecretRef::Inline(SECRET.into()));
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://x.mktorest.com/rest".into();
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://x.mktorest.com".into();
        c.lookup_field = " ".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("lookup_field"));
    }

    #[test]
    fn a_missing_secret_variable_is_named_and_the_secret_never_printed() {
        let c = MarketoConfig::new(
            "https://x.mktorest.com",
            "id",
            SecretRef::Env {
                env: "L2F_TEST_MARKETO_SECRET_UNSET".into(),
            },
        );
        let e = c.client().err().expect("unset variable").to_string();
        assert!(e.contains("L2F_TEST_MARKETO_SECRET_UNSET"), "{e}");
        assert!(e.contains("connectors.marketo.client_secret"), "{e}");
        let inline = MarketoConfig::new("https://x", "id", SecretRef::Inline(SECRET.into()));
        assert!(!format!("{inline:?}").contains(SECRET));
    }
}
