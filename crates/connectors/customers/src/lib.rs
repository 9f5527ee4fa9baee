//! The customers-app connector.
//!
//! - **Source** ([`source`]): the app's outbox feed — leads from its forms, web-store orders,
//!   EULA acceptances, auto-renew toggles, cancellations, usage reports — into the catalog's
//!   topics. **Guarantee: exactly once** for `read_committed` readers: the events of a page
//!   and the cursor after it are committed in one transaction (the bus's source loop), and
//!   each event's id is derived from the feed's epoch and the change's position, so a re-read
//!   feed yields the same ids. Free-text countries are normalised here, at the edge (rule 1);
//!   a change that cannot become an event is a dead letter in the same transaction, naming the
//!   field and the value. The hub's own writes never come back (origin `hub` is dropped).
//! - **Sink** ([`sink`]): Zuora's subscription events mirrored into the app, the accounts
//!   of sales-assisted deals created there, the licenses the license service issued, and the
//!   renewal notices the app sends (rule 7's 14-day one, `RenewalNoticeDue` with sender
//!   `CUSTOMERS_APP`) recorded in it. **Guarantee: effectively once**: at-least-once
//!   delivery onto idempotent upserts.
//!
//! Layout (the kit's shape): [`config`], [`client`] (the only I/O), [`mapping`] (pure),
//! [`verdict`] (the one `match` over the app's answers), [`source`], [`sink`].

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

pub use config::CustomersConfig;

use crate::client::CustomersClient;
use crate::sink::MirrorSink;
use crate::source::CustomersSource;

/// The connector's name and `[connectors.customers]` section.
pub const NAME: &str = "customers";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<CustomersConnector>();

/// The customers-app connector: a source and a sink.
pub struct CustomersConnector {
    cfg: CustomersConfig,
    client: Arc<CustomersClient>,
}

impl Configured for CustomersConnector {
    const NAME: &'static str = NAME;
    type Config = CustomersConfig;

    fn build(cfg: CustomersConfig) -> Result<Self, KitError> {
        let client = Arc::new(cfg.client()?);
        Ok(CustomersConnector { cfg, client })
    }
}

impl Connector for CustomersConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        // `notifications` is read only by the mirror (the 14-day notice it records).
        let mut topics = self.cfg.topics.all();
        if !self.cfg.mirror {
            topics.retain(|t| *t != self.cfg.topics.notifications);
        }
        topics
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![Endpoint {
            app: "customers",
            key: "connectors.customers.base_url".into(),
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
                let source = CustomersSource::new(
                    self.client.clone(),
                    ctx.codec.clone(),
                    &self.cfg.source_name,
                    self.cfg.topics.clone(),
                    &ctx.dead_letter_topic,
                    self.cfg.page_size,
                )
                .with_rules(&ctx.rules);
                let settings = ctx.source_settings(&self.cfg.source_name);
                tasks.push(ctx.source(NAME, settings, source));
            }
            if self.cfg.mirror {
                let sink = Arc::new(MirrorSink::new(self.client.clone(), ctx.codec.clone()));
                let topics = vec![
                    self.cfg.topics.subscriptions.clone(),
                    self.cfg.topics.orders.clone(),
                    self.cfg.topics.licenses.clone(),
                    self.cfg.topics.notifications.clone(),
                ];
                tasks.push(ctx.sink(NAME, &self.cfg.mirror_group, topics, sink));
            }
            join_all(NAME, ctx.shutdown.clone(), tasks).await
        })
    }
}
