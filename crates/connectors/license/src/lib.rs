//! The license-service connector (handbook rules 6 and 8, flow c).
//!
//! - **Sink** ([`sink`]): Zuora's self-managed `SubscriptionCreated` registers the
//!   subscription with the service (terms accepted at once unless the purchase must wait for
//!   the EULA), `EulaAccepted` from the customers app marks the terms accepted, and
//!   `CommunicationProfileChanged` (from Zuora) holds or releases the account's licenses.
//!   **Guarantee: effectively once**: at-least-once delivery onto idempotent calls — a license
//!   is issued once and its key never changes, a known subscription is never registered again.
//! - **Source** ([`source`]): the service's feed — `LicenseIssued`, `LicenseHeld` — onto the
//!   `licenses` topic. **Guarantee: exactly once** for `read_committed` readers: the events of
//!   a page and the cursor after it are committed in one transaction (the bus's source loop),
//!   and each event's id is derived from the feed's epoch and the change's position, so a
//!   re-read feed yields the same ids. It rests on the service answering the same changes in
//!   the same order for the same cursor.
//!
//! Layout (the kit's shape): [`config`], [`client`] (the only I/O), [`mapping`] (pure),
//! [`verdict`] (the one `match` over the service's answers), [`sink`], [`source`].

pub mod client;
pub mod config;
pub mod mapping;
pub mod sink;
pub mod source;
pub mod verdict;

use std::sync::Arc;

use futures::future::BoxFuture;
use l2f_connector_kit::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Registration,
};

pub use config::LicenseConfig;

use crate::client::LicenseClient;
use crate::sink::LicenseSink;
use crate::source::LicenseSource;

/// The connector's name and `[connectors.license]` section.
pub const NAME: &str = "license";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<LicenseConnector>();

/// The license-service connector: a sink and a source.
pub struct LicenseConnector {
    cfg: LicenseConfig,
    client: Arc<LicenseClient>,
}

impl Configured for LicenseConnector {
    const NAME: &'static str = NAME;
    type Config = LicenseConfig;

    fn build(cfg: LicenseConfig) -> Result<Self, KitError> {
        let client = Arc::new(cfg.client()?);
        Ok(LicenseConnector { cfg, client })
    }
}

impl Connector for LicenseConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.cfg.subscriptions_topic.clone(),
            self.cfg.licenses_topic.clone(),
        ]
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![Endpoint {
            app: "license",
            key: "connectors.license.base_url".into(),
            url: self.cfg.base_url.clone(),
        }]
    }

    fn has_source(&self) -> bool {
        self.cfg.source
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.client.healthcheck().await.map_err(|e| e.to_string()) })
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>> {
        Box::pin(async move {
            let mut tasks = Vec::new();
            if self.cfg.source {
                let source = LicenseSource::new(
                    self.client.clone(),
                    ctx.codec.clone(),
                    &self.cfg.source_name,
                    &self.cfg.licenses_topic,
                    &ctx.dead_letter_topic,
                    self.cfg.page_size,
                );
                let settings = ctx.source_settings(&self.cfg.source_name);
                tasks.push(ctx.source(NAME, settings, source));
            }
            if self.cfg.sink {
                let sink = Arc::new(LicenseSink::new(
                    self.client.clone(),
                    ctx.codec.clone(),
                    ctx.rules.clone(),
                    self.cfg.terms_required_batches.clone(),
                ));
                let topics = vec![
                    self.cfg.subscriptions_topic.clone(),
                    self.cfg.licenses_topic.clone(),
                ];
                tasks.push(ctx.sink(NAME, &self.cfg.group, topics, sink));
            }
            join_all(NAME, ctx.shutdown.clone(), tasks).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_registry_line_builds_it_from_its_section_and_names_a_bad_key() {
        let c = (REGISTRATION.build)(&json!({"base_url": "http://x", "api_token": "t"})).unwrap();
        assert_eq!(c.name(), "license");
        assert_eq!(c.topics(), ["subscriptions", "licenses"]);
        assert!(c.has_source());
        let e = (REGISTRATION.build)(
            &json!({"base_url": "http://x", "api_token": "t", "terms_required_batches": ["BATCH9"]}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("connectors.license.terms_required_batches"),
            "{e}"
        );
    }
}
