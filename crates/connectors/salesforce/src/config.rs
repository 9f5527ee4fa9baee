//! `[connectors.salesforce]`: where the org logs in, the connected app's credentials (secrets
//! from the environment or a file, never printed), which topics and consumer groups feed the
//! sinks, what the source is called and how large a collections call may be. Unknown keys are
//! refused, so a typo is an error, not a default.

use std::time::Duration;

use l2f_secrets::SecretRef;
use serde::{Deserialize, Serialize};

use crate::client::{SalesforceClient, User, MAX_RECORDS_PER_CALL, MIN_API_VERSION};

/// Why the connector cannot start; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value the connector cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, relative to the `salesforce` section.
        key: &'static str,
        /// What is wrong with it (never a secret's value).
        reason: String,
    },
    /// A secret could not be resolved (unset variable, unreadable file).
    #[error("{key}: {message}")]
    Secret {
        /// The key, relative to the section.
        key: &'static str,
        /// What failed (names the variable or file, never the value).
        message: String,
    },
    /// The HTTP client could not be built (TLS backend).
    #[error("salesforce HTTP client: {0}")]
    Http(String),
}

/// `[connectors.salesforce]`: one org, the source of closed-won deals and the two sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// Where the integration user logs in: `https://login.salesforce.com`,
    /// `https://test.salesforce.com` for a sandbox, or the org's My Domain.
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret: `{ env = "VAR" }`, `{ file = "/path" }` or
    /// (discouraged) inline; printed as `***`.
    pub client_secret: SecretRef,
    /// The integration user, for the OAuth username-password flow; without it the connector
    /// uses the client-credentials flow (the connected app's run-as user).
    #[serde(default)]
    pub username: Option<String>,
    /// The integration user's password (with its security token appended when the org asks
    /// for one); required with `username`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The REST API version, `vNN.0`; collections upserts need v46.0 or later.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Deadline of one HTTP call; a timeout makes the record wait (the app is unavailable).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Wait between two polls of the Opportunities that found nothing new; unset: the hub's
    /// `sources.poll_interval`.
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// The source's stable name: its cursor's key, transactional id and lease group. Never
    /// change it for a running org (the cursor would start over).
    #[serde(default = "default_source")]
    pub source: String,
    /// The topic the closed-won deals are written to as `OrderPlaced`.
    #[serde(default = "default_orders_topic")]
    pub orders_topic: String,
    /// The topic of `LeadCaptured` events upserted as Leads.
    #[serde(default = "default_leads_topic")]
    pub leads_topic: String,
    /// The topic of subscription events mirrored into the Zuora objects.
    #[serde(default = "default_subscriptions_topic")]
    pub subscriptions_topic: String,
    /// The topic of `UsageReported` events checked for true-ups (rule 9).
    #[serde(default = "default_usage_topic")]
    pub usage_topic: String,
    /// The topic of Zuora's `CommunicationProfileChanged` (the license service's topic): the
    /// billing mirror applies a profile finance changed in Zuora to the customer accounts.
    #[serde(default = "default_licenses_topic")]
    pub licenses_topic: String,
    /// The consumer group of the leads sink.
    #[serde(default = "default_leads_group")]
    pub leads_group: String,
    /// The consumer group of the billing-mirror sink.
    #[serde(default = "default_mirror_group")]
    pub mirror_group: String,
    /// The consumer group of the true-up sink.
    #[serde(default = "default_true_up_group")]
    pub true_up_group: String,
    /// Most records in one sObject Collections call (Salesforce takes up to 200).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The org's currency (ISO 4217): the currency of the deals' `Amount` (single-currency
    /// orgs do not expose `CurrencyIsoCode`).
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_api_version() -> String {
    "v62.0".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_source() -> String {
    "salesforce-opportunities".into()
}
fn default_orders_topic() -> String {
    "orders".into()
}
fn default_leads_topic() -> String {
    "leads".into()
}
fn default_subscriptions_topic() -> String {
    "subscriptions".into()
}
fn default_licenses_topic() -> String {
    "licenses".into()
}
fn default_usage_topic() -> String {
    "usage".into()
}
fn default_true_up_group() -> String {
    "l2f-connector-salesforce-true-ups".into()
}
fn default_leads_group() -> String {
    "l2f-connector-salesforce-leads".into()
}
fn default_mirror_group() -> String {
    "l2f-connector-salesforce-mirror".into()
}
fn default_batch_size() -> usize {
    MAX_RECORDS_PER_CALL
}
fn default_currency() -> String {
    "USD".into()
}

/// The `vNN.0` version's major number, if well formed.
pub fn api_major(version: &str) -> Option<u32> {
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    (minor == "0").then_some(())?;
    major.parse().ok()
}

impl SalesforceConfig {
    /// A configuration with every optional key at its default (client-credentials flow).
    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretRef,
    ) -> Self {
        SalesforceConfig {
            login_url: login_url.into(),
            client_id: client_id.into(),
            client_secret,
            username: None,
            password: None,
            api_version: default_api_version(),
            request_timeout: default_request_timeout(),
            poll_interval: None,
            source: default_source(),
            orders_topic: default_orders_topic(),
            leads_topic: default_leads_topic(),
            subscriptions_topic: default_subscriptions_topic(),
            usage_topic: default_usage_topic(),
            licenses_topic: default_licenses_topic(),
            leads_group: default_leads_group(),
            mirror_group: default_mirror_group(),
            true_up_group: default_true_up_group(),
            batch_size: default_batch_size(),
            currency: default_currency(),
        }
    }

    /// The same with the username-password flow.
    pub fn with_user(mut self, username: impl Into<String>, password: SecretRef) -> Self {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }

    /// Checks the values hang together, so a bad one stops the start rather than every call.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if !(self.login_url.starts_with("http://") || self.login_url.starts_with("https://")) {
            return invalid("login_url", "must start with http:// or https://");
        }
        if self.login_url.contains("/services/") {
            return invalid(
                "login_url",
                "give the login host only (https://login.salesforce.com), without /services/...",
            );
        }
        if self.client_id.trim().is_empty() {
            return invalid("client_id", "is empty");
        }
        match (&self.username, &self.password) {
            (Some(u), _) if u.trim().is_empty() => return invalid("username", "is empty"),
            (Some(_), None) => {
                return invalid("password", "is required with username (password grant)")
            }
            (None, Some(_)) => {
                return invalid("username", "is required with password (password grant)")
            }
            _ => {}
        }
        match api_major(&self.api_version) {
            Some(v) if v >= MIN_API_VERSION => {}
            Some(_) => {
                return invalid(
                    "api_version",
                    "must be v46.0 or later (sObject Collections upsert)",
                )
            }
            None => return invalid("api_version", "must look like v62.0"),
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero");
        }
        if self.poll_interval.is_some_and(|d| d.is_zero()) {
            return invalid("poll_interval", "must be more than zero");
        }
        for (key, v) in [
            ("source", &self.source),
            ("orders_topic", &self.orders_topic),
            ("leads_topic", &self.leads_topic),
            ("subscriptions_topic", &self.subscriptions_topic),
            ("leads_group", &self.leads_group),
            ("mirror_group", &self.mirror_group),
            ("usage_topic", &self.usage_topic),
            ("licenses_topic", &self.licenses_topic),
            ("true_up_group", &self.true_up_group),
        ] {
            if v.trim().is_empty() {
                return invalid(key, "is empty");
            }
        }
        if self.leads_group == self.mirror_group {
            return invalid("mirror_group", "must differ from leads_group");
        }
        if self.true_up_group == self.leads_group || self.true_up_group == self.mirror_group {
            return invalid(
                "true_up_group",
                "must differ from leads_group and mirror_group",
            );
        }
        if !(1..=MAX_RECORDS_PER_CALL).contains(&self.batch_size) {
            return invalid(
                "batch_size",
                "must be 1 to 200 (Salesforce's limit per collections call)",
            );
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return invalid("currency", "must be an ISO 4217 code such as USD");
        }
        Ok(())
    }

    /// Validates, resolves the secrets and builds the client (no I/O: it logs in lazily).
    pub fn client(&self) -> Result<SalesforceClient, ConfigError> {
        self.validate()?;
        let resolve = |key: &'static str, s: &SecretRef| {
            s.resolve(&format!("connectors.salesforce.{key}"))
                .map_err(|e| ConfigError::Secret {
                    key,
                    message: e.to_string(),
                })
        };
        let secret = resolve("client_secret", &self.client_secret)?;
        let user = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some(User {
                username: u.clone(),
                password: resolve("password", p)?,
            }),
            _ => None,
        };
        let http = l2f_connector_kit::http::http_client(self.request_timeout)
            .map_err(ConfigError::Http)?;
        Ok(SalesforceClient::new(
            http,
            self.login_url.clone(),
            self.client_id.clone(),
            secret,
            user,
        )
        .with_version(self.api_version.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "do-not-print-me";

    fn parse(text: &str) -> Result<SalesforceConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_the_optional_keys() {
        let c = parse(
            "login_url = \"https://login.salesforce.com\"\nclient_id = \"id\"\nclient_secret = { env = \"SF_SECRET\" }\n",
        )
        .unwrap();
        assert_eq!(c.api_version, "v62.0");
        assert_eq!(c.source, "salesforce-opportunities");
        assert_eq!(
            (
                c.orders_topic.as_str(),
                c.leads_topic.as_str(),
                c.subscriptions_topic.as_str()
            ),
            ("orders", "leads", "subscriptions")
        );
        assert_eq!(c.leads_group, "l2f-connector-salesforce-leads");
        assert_eq!(c.mirror_group, "l2f-connector-salesforce-mirror");
        assert_eq!(c.usage_topic, "usage");
        assert_eq!(c.true_up_group, "l2f-connector-salesforce-true-ups");
        assert_eq!(c.batch_size, 200);
        assert_eq!(c.poll_interval, None);
        assert_eq!(c.currency, "USD");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = parse(
            "login_url = \"https://x\"\nclient_id = \"id\"\nclient_secret = \"s\"\nbatch = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("batch"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = || SalesforceConfig::new("https://x", "id", SecretRef::Inline(SECRET.into()));
        let key_of = |c: SalesforceConfig| match c.validate().unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        };
        let mut c = base();
        c.login_url = "ftp://x".into();
        assert_eq!(key_of(c), "login_url");
        let mut c = base();
        c.login_url = "https://x/services/data".into();
        assert_eq!(key_of(c), "login_url");
        let mut c = base();
        c.api_version = "v45.0".into();
        assert_eq!(key_of(c), "api_version");
        let mut c = base();
        c.api_version = "62".into();
        assert_eq!(key_of(c), "api_version");
        let mut c = base();
        c.batch_size = 201;
        assert_eq!(key_of(c), "batch_size");
        let mut c = base();
        c.username = Some("u".into());
        assert_eq!(key_of(c), "password");
        let mut c = base();
        c.password = Some(SecretRef::Inline("p".into()));
        assert_eq!(key_of(c), "username");
        let mut c = base();
        c.mirror_group = c.leads_group.clone();
        assert_eq!(key_of(c), "mirror_group");
        let mut c = base();
        c.true_up_group = c.mirror_group.clone();
        assert_eq!(key_of(c), "true_up_group");
        let mut c = base();
        c.currency = "usd".into();
        assert_eq!(key_of(c), "currency");
    }

    #[test]
    fn a_missing_secret_variable_is_named_and_the_secret_never_printed() {
        let c = SalesforceConfig::new(
            "https://login.salesforce.com",
            "id",
            SecretRef::Inline(SECRET.into()),
        )
        .with_user(
            "integration@example.com",
            SecretRef::Env {
                env: "L2F_TEST_SALESFORCE_PASSWORD_UNSET".into(),
            },
        );
        let e = c.client().err().expect("unset variable");
        assert!(
            matches!(
                e,
                ConfigError::Secret {
                    key: "password",
                    ..
                }
            ),
            "{e}"
        );
        let m = e.to_string();
        assert!(m.contains("L2F_TEST_SALESFORCE_PASSWORD_UNSET"), "{m}");
        assert!(!format!("{c:?}").contains(SECRET));
    }
}
