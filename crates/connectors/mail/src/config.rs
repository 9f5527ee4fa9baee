//! The connector's configuration, `[connectors.mail]`: where Mailgun's API is, the sending
//! domain and its private API key (from the environment or a file, never printed), the sender
//! address, the directory of the email templates, the topics it reads and writes, and how long
//! Mailgun's events take to be trusted. Unknown keys are refused, so a typo is an error, not
//! a default.

use std::path::PathBuf;
use std::time::Duration;

use l2f_bus::config::SecretRef;
use l2f_contracts::events::BillingBatch;
use serde::{Deserialize, Serialize};

use crate::client::MailgunClient;

/// Why the connector cannot start; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value the connector cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, relative to the `mail` section.
        key: &'static str,
        /// What is wrong with it (never a secret's value).
        reason: String,
    },
    /// A secret could not be resolved (unset variable, unreadable file); names its full key.
    #[error("{0}")]
    Secret(String),
    /// The HTTP client could not be built (TLS backend).
    #[error("mail HTTP client: {0}")]
    Http(String),
}

/// `[connectors.mail]`: one Mailgun sending domain, the templates and the topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// Mailgun's API base, e.g. `https://api.mailgun.net` or `https://api.eu.mailgun.net`
    /// (no `/v3`).
    pub base_url: String,
    /// The sending domain, e.g. `mg.example.com`.
    pub domain: String,
    /// The domain's private API key (basic auth `api:<key>`): `{ env = "VAR" }`,
    /// `{ file = "/path" }` or (discouraged) inline.
    pub api_key: SecretRef,
    /// The `From` of every email, e.g. `GitLab <noreply@mg.example.com>`.
    pub from: String,
    /// The directory of the templates (`<kind>.subject`, `<kind>.txt`, `<kind>.html` for each
    /// kind); relative to the config file.
    pub templates_dir: PathBuf,
    /// Where reseller notifications go (the partner desk that forwards them to the reseller;
    /// the events carry no reseller address). Required, so that a reseller deal's license
    /// email never waits on a missing setting.
    pub reseller_notification_to: String,
    /// Billing batches (rule 4) whose self-managed subscriptions need the terms accepted
    /// before the license (rule 8): web direct and reseller.
    #[serde(default = "default_accept_terms_batches")]
    pub accept_terms_batches: Vec<BillingBatch>,
    /// Deadline of one HTTP call; a timeout means Mailgun is unavailable (the record waits).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The topic of `SubscriptionCreated` (accept-terms emails, profiles).
    #[serde(default = "default_subscriptions_topic")]
    pub subscriptions_topic: String,
    /// The topic of `LicenseIssued`, `LicenseHeld` and `CommunicationProfileChanged`.
    #[serde(default = "default_licenses_topic")]
    pub licenses_topic: String,
    /// The topic of `RenewalNoticeDue`, and where `EmailSent`/`EmailSuppressed` go.
    #[serde(default = "default_notifications_topic")]
    pub notifications_topic: String,
    /// The compacted topic of the account → communication profile table.
    #[serde(default = "default_profiles_topic")]
    pub profiles_topic: String,
    /// The sink's consumer group; instances with the same group share the partitions.
    #[serde(default = "default_group")]
    pub group: String,
    /// How long after it happened an `accepted` event surely shows in Mailgun's events API
    /// (its events reach storage late): a record that may have been sent by an earlier
    /// process is only taken as unsent once this long has passed since this process began.
    #[serde(default = "default_events_settle", with = "humantime_serde")]
    pub events_settle: Duration,
    /// How far before a record's timestamp its email may have been accepted (clock skew
    /// between Kafka and Mailgun); bounds the events search.
    #[serde(default = "default_events_lookback", with = "humantime_serde")]
    pub events_lookback: Duration,
}

fn default_accept_terms_batches() -> Vec<BillingBatch> {
    vec![BillingBatch::Batch1, BillingBatch::Batch4]
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_subscriptions_topic() -> String {
    "subscriptions".into()
}
fn default_licenses_topic() -> String {
    "licenses".into()
}
fn default_notifications_topic() -> String {
    "notifications".into()
}
fn default_profiles_topic() -> String {
    "mail-profiles".into()
}
fn default_group() -> String {
    "l2f-connector-mail".into()
}
fn default_events_settle() -> Duration {
    Duration::from_secs(30)
}
fn default_events_lookback() -> Duration {
    Duration::from_secs(3600)
}

/// The key of the API key, as errors name it.
pub const SECRET_KEY: &str = "connectors.mail.api_key";

impl MailConfig {
    /// A configuration with every optional key at its default.
    pub fn new(
        base_url: impl Into<String>,
        domain: impl Into<String>,
        api_key: SecretRef,
        from: impl Into<String>,
        templates_dir: impl Into<PathBuf>,
        reseller_notification_to: impl Into<String>,
    ) -> Self {
        MailConfig {
            base_url: base_url.into(),
            domain: domain.into(),
            api_key,
            from: from.into(),
            templates_dir: templates_dir.into(),
            reseller_notification_to: reseller_notification_to.into(),
            accept_terms_batches: default_accept_terms_batches(),
            request_timeout: default_request_timeout(),
            subscriptions_topic: default_subscriptions_topic(),
            licenses_topic: default_licenses_topic(),
            notifications_topic: default_notifications_topic(),
            profiles_topic: default_profiles_topic(),
            group: default_group(),
            events_settle: default_events_settle(),
            events_lookback: default_events_lookback(),
        }
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
        if self.base_url.trim_end_matches('/').ends_with("/v3") {
            return invalid("base_url", "give the API base, without /v3");
        }
        if self.domain.trim().is_empty() || self.domain.contains(['/', ' ', '?']) {
            return invalid("domain", "must be a domain name such as mg.example.com");
        }
        if crate::mapping::check_address("from", &self.from).is_err() {
            return invalid("from", "must be an email address (Name <a@b> or a@b)");
        }
        if crate::mapping::check_address("reseller_notification_to", &self.reseller_notification_to)
            .is_err()
        {
            return invalid("reseller_notification_to", "must be an email address");
        }
        for (key, v) in [
            ("subscriptions_topic", &self.subscriptions_topic),
            ("licenses_topic", &self.licenses_topic),
            ("notifications_topic", &self.notifications_topic),
            ("profiles_topic", &self.profiles_topic),
            ("group", &self.group),
        ] {
            if v.trim().is_empty() {
                return invalid(key, "is empty");
            }
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero");
        }
        Ok(())
    }

    /// Validates, resolves the API key and builds the Mailgun client.
    pub fn client(&self) -> Result<MailgunClient, ConfigError> {
        self.validate()?;
        let key = self
            .api_key
            .resolve(SECRET_KEY)
            .map_err(|e| ConfigError::Secret(e.to_string()))?;
        let http = l2f_connector_kit::http::http_client(self.request_timeout)
            .map_err(ConfigError::Http)?;
        Ok(MailgunClient::new(
            http,
            self.base_url.clone(),
            self.domain.clone(),
            key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "do-not-print-me";

    #[test]
    fn defaults_fill_the_optional_keys_and_unknown_keys_are_refused() {
        let c: MailConfig = toml::from_str(
            "base_url = \"https://api.mailgun.net\"\ndomain = \"mg.x\"\napi_key = { env = \"MG\" }\nfrom = \"a@mg.x\"\ntemplates_dir = \"t\"\nreseller_notification_to = \"p@mg.x\"\n",
        )
        .unwrap();
        assert_eq!(c.notifications_topic, "notifications");
        assert_eq!(c.profiles_topic, "mail-profiles");
        assert_eq!(c.events_settle, Duration::from_secs(30));
        assert_eq!(
            c.accept_terms_batches,
            [BillingBatch::Batch1, BillingBatch::Batch4]
        );
        assert!(c.validate().is_ok());
        let e = toml::from_str::<MailConfig>(
            "base_url = \"x\"\ndomain = \"d\"\napi_key = \"k\"\nfrom = \"a@b\"\ntemplates_dir = \"t\"\napi_kee = \"k\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api_kee"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_the_secret_is_never_printed() {
        let mut c = MailConfig::new(
            "ftp://x",
            "mg.x",
            SecretRef::Inline(SECRET.into()),
            "a@mg.x",
            "t",
            "partners@mg.x",
        );
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://api.mailgun.net/v3".into();
        assert!(c.validate().unwrap_err().to_string().contains("base_url"));
        c.base_url = "https://api.mailgun.net".into();
        c.from = "nobody".into();
        assert!(c.validate().unwrap_err().to_string().contains("from"));
        c.from = "a@mg.x".into();
        c.reseller_notification_to = "desk".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("reseller_notification_to"));
        assert!(!format!("{c:?}").contains(SECRET));
        c.reseller_notification_to = "partners@mg.x".into();
        c.api_key = SecretRef::Env {
            env: "L2F_TEST_MAIL_KEY_UNSET".into(),
        };
        let e = c.client().err().unwrap().to_string();
        assert!(
            e.contains("L2F_TEST_MAIL_KEY_UNSET") && e.contains(SECRET_KEY),
            "{e}"
        );
    }
}
