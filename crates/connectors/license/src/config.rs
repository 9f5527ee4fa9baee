//! `[connectors.license]`: where the license service is, its API token (from the environment
//! or a file, never printed), which purchases need their terms accepted first, the feed's page
//! size and the topics and group of each pipeline. Unknown keys are refused, so a typo is an
//! error, not a default.

use std::time::Duration;

use l2f_connector_kit::http::http_client;
use l2f_connector_kit::KitError;
use l2f_contracts::events::BillingBatch;
use l2f_secrets::SecretRef;
use serde::{Deserialize, Serialize};

use crate::client::LicenseClient;
use crate::NAME;

/// `[connectors.license]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseConfig {
    /// The service's base URL (`https://license.example.com`).
    pub base_url: String,
    /// The bearer token: `{ env = "VAR" }`, `{ file = "/path" }` or (discouraged) inline.
    pub api_token: SecretRef,
    /// Deadline of one HTTP call.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Rule 8: the billing batches whose self-managed purchases need the EULA accepted in the
    /// customers app before the license is issued (web direct and reseller deals by default;
    /// a sales-assisted or marketplace deal has its terms signed with the deal).
    #[serde(default = "default_terms_batches")]
    pub terms_required_batches: Vec<BillingBatch>,
    /// The source's name: its cursor's key, transactional id and lease group. Never change
    /// it for a running feed.
    #[serde(default = "default_source")]
    pub source_name: String,
    /// Feed events read per poll (the service answers at most 1000).
    #[serde(default = "default_page")]
    pub page_size: usize,
    /// The sink's consumer group.
    #[serde(default = "default_group")]
    pub group: String,
    /// Run the source (the service's feed into Kafka).
    #[serde(default = "yes")]
    pub source: bool,
    /// Run the sink (subscriptions, acceptances and profile changes into the service).
    #[serde(default = "yes")]
    pub sink: bool,
    /// The topic of `SubscriptionCreated`.
    #[serde(default = "default_subscriptions")]
    pub subscriptions_topic: String,
    /// The topic of `EulaAccepted`, `CommunicationProfileChanged` (read) and `LicenseIssued`,
    /// `LicenseHeld` (written).
    #[serde(default = "default_licenses")]
    pub licenses_topic: String,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_terms_batches() -> Vec<BillingBatch> {
    vec![BillingBatch::Batch1, BillingBatch::Batch4]
}
fn default_source() -> String {
    "license".into()
}
fn default_page() -> usize {
    500
}
fn default_group() -> String {
    "l2f-connector-license".into()
}
fn default_subscriptions() -> String {
    "subscriptions".into()
}
fn default_licenses() -> String {
    "licenses".into()
}
fn yes() -> bool {
    true
}

/// The full key of the API token, as errors name it.
pub const TOKEN_KEY: &str = "connectors.license.api_token";

impl LicenseConfig {
    /// A configuration with every optional key at its default.
    pub fn new(base_url: impl Into<String>, api_token: SecretRef) -> Self {
        LicenseConfig {
            base_url: base_url.into(),
            api_token,
            request_timeout: default_timeout(),
            terms_required_batches: default_terms_batches(),
            source_name: default_source(),
            page_size: default_page(),
            group: default_group(),
            source: true,
            sink: true,
            subscriptions_topic: default_subscriptions(),
            licenses_topic: default_licenses(),
        }
    }

    /// Checks the values and builds the client (the token resolved now, so a missing variable
    /// stops the start).
    pub fn client(&self) -> Result<LicenseClient, KitError> {
        let bad = |key: &str, why: &str| Err(KitError::config(NAME, key, why));
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return bad("base_url", "must start with http:// or https://");
        }
        if !(1..=1000).contains(&self.page_size) {
            return bad("page_size", "must be 1 to 1000 (the feed's limit)");
        }
        for (key, v) in [
            ("source_name", &self.source_name),
            ("group", &self.group),
            ("subscriptions_topic", &self.subscriptions_topic),
            ("licenses_topic", &self.licenses_topic),
        ] {
            if v.trim().is_empty() {
                return bad(key, "is empty");
            }
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
        Ok(LicenseClient::new(http, &self.base_url, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_the_optional_keys_and_typos_are_refused() {
        let c: LicenseConfig = serde_json::from_value(
            serde_json::json!({"base_url": "http://x", "api_token": "t", "terms_required_batches": ["BATCH1"]}),
        )
        .unwrap();
        assert_eq!(c.source_name, "license");
        assert_eq!(c.licenses_topic, "licenses");
        assert_eq!(c.terms_required_batches, [BillingBatch::Batch1]);
        assert!(c.client().is_ok());
        let e = serde_json::from_value::<LicenseConfig>(
            serde_json::json!({"base_url": "http://x", "api_token": "t", "page": 3}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("page"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_the_token_never_prints() {
        let mut c = LicenseConfig::new("ftp://x", SecretRef::Inline("sekrit-token".into()));
        let e = c.client().err().unwrap().to_string();
        assert!(e.contains("connectors.license.base_url"), "{e}");
        c.base_url = "http://x".into();
        c.licenses_topic = " ".into();
        let e = c.client().err().unwrap().to_string();
        assert!(e.contains("connectors.license.licenses_topic"), "{e}");
        assert!(!format!("{c:?}").contains("sekrit-token"));
    }
}
