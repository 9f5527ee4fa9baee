//! The Marketo connector: `LeadCaptured` events from the `leads` topic pushed to Marketo's
//! `POST /rest/v1/leads.json`, up to 300 leads a call.
//!
//! **Guarantee: effectively-once.** The bus's loop delivers at least once (an offset is
//! committed only after Marketo answered `created`/`updated` for the lead or the lead reached
//! the dead-letter topic); the push is `createOrUpdate` with lookup field `email`, so a
//! redelivered lead matches the lead it created the first time and becomes an update, never a
//! duplicate. It rests on one condition: the lookup field (email) identifies the person.
//!
//! **Nothing dropped, no half leads.** A lead missing a field Marketo requires (handbook
//! rule 2), an undecodable record, or a lead Marketo skips is a permanent failure whose
//! message names the fields or Marketo's reasons; it goes to the dead-letter topic. When
//! Marketo is unavailable — its rate limit (606), daily quota (607), concurrency limit
//! (615), 429/5xx, no answer, credentials refused — the lead waits with its partition paused
//! and is never dead-lettered.
//!
//! Layout (the kit's shape): [`config`], [`client`] (the only I/O), [`mapping`] (pure event →
//! Marketo lead), [`verdict`] (the one `match` over Marketo's answers), [`sink`].

pub mod client;
pub mod config;
pub mod mapping;
pub mod sink;
pub mod verdict;

use std::sync::Arc;

use futures::future::BoxFuture;
use l2f_connector_kit::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Registration,
};

pub use config::{ConfigError, MarketoConfig};
pub use sink::{MarketoSink, SinkStats};
pub use verdict::Pushed;

/// The connector's name and `[connectors.marketo]` section.
pub const NAME: &str = "marketo";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<MarketoConnector>();

/// The Marketo connector: one sink.
pub struct MarketoConnector {
    cfg: MarketoConfig,
    sink: Arc<MarketoSink>,
}

impl MarketoConnector {
    /// Live counters of its sink.
    pub fn stats(&self) -> SinkStats {
        self.sink.stats()
    }
}

impl Configured for MarketoConnector {
    const NAME: &'static str = NAME;
    type Config = MarketoConfig;

    fn build(cfg: MarketoConfig) -> Result<Self, KitError> {
        let sink =
            MarketoSink::from_config(&cfg, Arc::new(l2f_contracts::Codec::new())).map_err(|e| {
                match e {
                    ConfigError::Invalid { key, reason } => KitError::config(NAME, key, reason),
                    ConfigError::Secret(m) => KitError::Config {
                        key: config::SECRET_KEY.into(),
                        message: m
                            .trim_start_matches(config::SECRET_KEY)
                            .trim_start_matches(": ")
                            .to_string(),
                    },
                    other => KitError::config(NAME, "", other),
                }
            })?;
        Ok(MarketoConnector {
            cfg,
            sink: Arc::new(sink),
        })
    }
}

impl Connector for MarketoConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        vec![self.cfg.topic.clone()]
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![Endpoint {
            app: "marketo",
            key: "connectors.marketo.base_url".into(),
            url: self.cfg.base_url.clone(),
        }]
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            use l2f_bus::Handler;
            if self.sink.probe().await {
                Ok(())
            } else {
                Err("Marketo's identity service granted no token (down, or the credentials are refused)".into())
            }
        })
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>> {
        Box::pin(async move {
            let sink = ctx.sink(
                NAME,
                &self.cfg.group,
                vec![self.cfg.topic.clone()],
                self.sink.clone(),
            );
            join_all(NAME, ctx.shutdown.clone(), vec![sink]).await
        })
    }
}
