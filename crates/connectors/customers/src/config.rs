//! `[connectors.customers]`: where the customers app is, its API token (from the environment
//! or a file, never printed), the feed's page size and the topics and group of each pipeline.
//! Unknown keys are refused, so a typo is an error, not a default.

use std::time::Duration;

use l2f_connector_kit::http::http_client;
use l2f_connector_kit::KitError;
use l2f_secrets::SecretRef;
use serde::{Deserialize, Serialize};

use crate::client::CustomersClient;
use crate::NAME;

/// The topics the connector reads and writes (the catalog's names by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// `LeadCaptured`.
    pub leads: String,
    /// `OrderPlaced`.
    pub orders: String,
    /// Subscription events.
    pub subscriptions: String,
    /// `EulaAccepted`.
    pub licenses: String,
    /// `UsageReported`.
    pub usage: String,
    /// `RenewalNoticeDue` (the customers app's 14-day notices are recorded from it).
    pub notifications: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            leads: "leads".into(),
            orders: "orders".into(),
            subscriptions: "subscriptions".into(),
            licenses: "licenses".into(),
            usage: "usage".into(),
            notifications: "notifications".into(),
        }
    }
}

impl Topics {
    /// The configured name of catalog topic `catalog`.
    pub fn named(&self, catalog: &str) -> String {
        match catalog {
            "leads" => self.leads.clone(),
            "orders" => self.orders.clone(),
            "subscriptions" => self.subscriptions.clone(),
            "licenses" => self.licenses.clone(),
            "usage" => self.usage.clone(),
            "notifications" => self.notifications.clone(),
            other => other.to_string(),
        }
    }

    /// Every topic.
    pub fn all(&self) -> Vec<String> {
        vec![
            self.leads.clone(),
            self.orders.clone(),
            self.subscriptions.clone(),
            self.licenses.clone(),
            self.usage.clone(),
            self.notifications.clone(),
        ]
    }
}

/// `[connectors.customers]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomersConfig {
    /// The app's base URL (`https://customers.example.com`).
    pub base_url: String,
    /// The bearer token: `{ env = "VAR" }`, `{ file = "/path" }` or (discouraged) inline.
    pub api_token: SecretRef,
    /// Deadline of one HTTP call.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The source's name: its cursor's key, transactional id and lease group. Never change
    /// it for a running feed.
    #[serde(default = "default_source")]
    pub source_name: String,
    /// Feed events read per poll (the app answers at most 1000).
    #[serde(default = "default_page")]
    pub page_size: usize,
    /// The mirror's consumer group.
    #[serde(default = "default_group")]
    pub mirror_group: String,
    /// Run the source (the outbox feed into Kafka).
    #[serde(default = "yes")]
    pub source: bool,
    /// Run the mirror (Zuora's subscriptions into the app).
    #[serde(default = "yes")]
    pub mirror: bool,
    /// Topic names.
    #[serde(default)]
    pub topics: Topics,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_source() -> String {
    "customers".into()
}
fn default_page() -> usize {
    500
}
fn default_group() -> String {
    "l2f-connector-customers".into()
}
fn yes() -> bool {
    true
}

/// The full key of the API token, as errors name it.
pub const TOKEN_KEY: &str = "connectors.customers.api_token";

impl CustomersConfig {
    /// A configuration with every optional key at its default.
    pub fn new(base_url: impl Into<String>, api_token: SecretRef) -> Self {
        CustomersConfig {
            base_url: base_url.into(),
            api_token,
            request_timeout: default_timeout(),
            source_name: default_source(),
            page_size: default_page(),
            mirror_group: default_group(),
            source: true,
            mirror: true,
            topics: Topics::default(),
        }
    }

    /// Checks the values and builds the client (the token resolved now, so a missing variable
    /// stops the start).
    pub fn client(&self) -> Result<CustomersClient, KitError> {
        let bad = |key: &str, why: &str| Err(KitError::config(NAME, key, why));
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return bad("base_url", "must start with http:// or https://");
        }
        if !(1..=1000).contains(&self.page_size) {
            return bad("page_size", "must be 1 to 1000 (the feed's limit)");
        }
        if self.source_name.trim().is_empty() {
            return bad("source_name", "is empty");
        }
        if self.mirror_group.trim().is_empty() {
            return bad("mirror_group", "is empty");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be more than zero");
        }
        let token = self
            .api_token
            .resolve(TOKEN_KEY)
            .map_err(|e| KitError::Config {
                key: TOKEN_KEY.into(),
                message: e
                    .to_string()
                    .trim_start_matches(TOKEN_KEY)
                    .trim_start_matches(": ")
                    .to_string(),
            })?;
        let http = http_client(self.request_timeout).map_err(|e| KitError::config(NAME, "", e))?;
        Ok(CustomersClient::new(http, &self.base_url, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_the_optional_keys_and_typos_are_refused() {
        let c: CustomersConfig =
            serde_json::from_value(serde_json::json!({"base_url": "http://x", "api_token": "t"}))
                .unwrap();
        assert_eq!(c.source_name, "customers");
        assert_eq!(c.topics, Topics::default());
        assert!(c.client().is_ok());
        let e = serde_json::from_value::<CustomersConfig>(
            serde_json::json!({"base_url": "http://x", "api_token": "t", "page": 3}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("page"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_the_token_never_prints() {
        let mut c = CustomersConfig::new("ftp://x", SecretRef::Inline("sekrit-token".into()));
        assert!(c
            .client()
            .err()
            .unwrap()
            .to_string()
            .contains("connectors.customers.base_url"));
        c.base_url = "http://x".into();
        c.page_size = 0;
        assert!(c.client().err().unwrap().to_string().contains("page_size"));
        assert!(!format!("{c:?}").contains("sekrit-token"));
        let c = CustomersConfig::new(
            "http://x",
            SecretRef::Env {
                env: "L2F_TEST_CUSTOMERS_TOKEN_UNSET".into(),
            },
        );
        let e = c.client().err().unwrap().to_string();
        assert!(
            e.contains(TOKEN_KEY) && e.contains("L2F_TEST_CUSTOMERS_TOKEN_UNSET"),
            "{e}"
        );
    }
}
