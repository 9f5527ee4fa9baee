//! The Zuora connector: orders, auto-renew toggles and cancellations written to Zuora through
//! its Orders API, and Zuora's subscription changes read back from its callout notifications.
//!
//! - **Sink** (topics `orders`, `subscriptions`; [`sink`]): `OrderPlaced` → an account on the
//!   entity of handbook rule 3 (batch of rule 4, profile of rule 6) and a subscription with
//!   the auto-renew of rule 5; renewals, with the cancel-and-re-create of rule 10 when the
//!   entity changes; the customers app's `AutoRenewChanged` and `SubscriptionCancelled`
//!   followed in Zuora; SKUs checked by rule 11. **Effectively once**: the loop delivers at
//!   least once, every write carries `Idempotency-Key` = the event id (or a `derived_id` per
//!   step), and before writing the sink looks for the effect itself — deterministic account
//!   numbers `<hub account>-<ENTITY>`, the subscription's `L2fOrderId__c` — so a redelivery
//!   past Zuora's 24-hour key window changes nothing either. It rests on one condition: no one
//!   else writes the `L2f…__c` custom fields.
//! - **Source** ([`source`], [`callout`]): an HTTP endpoint of the hub receives Zuora's callout
//!   notifications (basic auth, bounded strict bodies, TLS when configured) and answers 200
//!   only once the event is committed in Kafka; a periodic read of the callout history
//!   catches a notification that never arrived. **Exactly once** for `read_committed`
//!   readers: events and the window of committed notification ids go to Kafka in one
//!   transaction, so a notification delivered twice yields one event; one active replica
//!   takes callouts, a standby answers 503.
//!
//! Who is at fault ([`verdict`]): a record Zuora refuses for its data (or a SKU rule 11
//! refuses) is dead-lettered with the reason; Zuora unavailable — no answer, 5xx, 429,
//! credentials refused — makes the record wait with its partition paused, never dead-lettered.
//!
//! Layout (the kit's shape): [`config`], [`client`] (the only I/O), [`mapping`] (pure, the
//! rules applied), [`verdict`], [`sink`], [`source`] and its endpoint [`callout`].

pub mod callout;
pub mod client;
pub mod config;
pub mod mapping;
pub mod sink;
pub mod source;
pub mod verdict;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use l2f_bus::source::SourceStats;
use l2f_connector_kit::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Registration, Task,
};
use l2f_secrets::Secret;

pub use client::ZuoraClient;
pub use config::{CalloutTls, ConfigError, ZuoraConfig};
pub use sink::{Applied, SinkStats, ZuoraSink};
pub use source::{SourceCounters, SourceOptions, ZuoraSource};

/// The connector's name and `[connectors.zuora]` section.
pub const NAME: &str = "zuora";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<ZuoraConnector>();

/// How long one poll waits for a callout when there is nothing else to do (bounds how soon
/// the source notices a lost lease or a shutdown).
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// The Zuora connector: the sink, and the source when a callout listener is configured.
pub struct ZuoraConnector {
    cfg: ZuoraConfig,
    client: Arc<ZuoraClient>,
    callout: Option<(String, Secret)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    sink_stats: SinkStats,
    source_counters: SourceCounters,
}

fn config_error(e: ConfigError) -> KitError {
    match e {
        ConfigError::Invalid { key, reason } => KitError::config(NAME, key, reason),
        ConfigError::Secret(m) => {
            let key = [config::CALLOUT_SECRET_KEY, config::SECRET_KEY]
                .into_iter()
                .find(|k| m.starts_with(k))
                .unwrap_or(config::SECRET_KEY);
            KitError::Config {
                key: key.into(),
                message: m
                    .trim_start_matches(key)
                    .trim_start_matches(": ")
                    .to_string(),
            }
        }
        other => KitError::config(NAME, "", other),
    }
}

impl ZuoraConnector {
    /// Live counters of its sink.
    pub fn sink_stats(&self) -> SinkStats {
        self.sink_stats.clone()
    }

    /// Live counters of its source.
    pub fn source_counters(&self) -> SourceCounters {
        self.source_counters.clone()
    }

    /// Its configuration.
    pub fn config(&self) -> &ZuoraConfig {
        &self.cfg
    }
}

impl Configured for ZuoraConnector {
    const NAME: &'static str = NAME;
    type Config = ZuoraConfig;

    fn build(cfg: ZuoraConfig) -> Result<Self, KitError> {
        let client = cfg.client().map_err(config_error)?;
        let callout = cfg.callout_credentials().map_err(config_error)?;
        let tls = match &cfg.callout_tls {
            Some(t) => Some(
                callout::tls_config(&t.cert_file, &t.key_file)
                    .map_err(|e| KitError::config(NAME, "callout_tls", e))?,
            ),
            None => None,
        };
        Ok(ZuoraConnector {
            cfg,
            client: Arc::new(client),
            callout,
            tls,
            sink_stats: SinkStats::default(),
            source_counters: SourceCounters::default(),
        })
    }
}

impl Connector for ZuoraConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        let mut topics = vec![
            self.cfg.orders_topic.clone(),
            self.cfg.subscriptions_topic.clone(),
        ];
        if self.has_source() {
            topics.push(self.cfg.licenses_topic.clone());
        }
        topics
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![Endpoint {
            app: "zuora",
            key: "connectors.zuora.base_url".into(),
            url: self.cfg.base_url.clone(),
        }]
    }

    fn has_source(&self) -> bool {
        self.cfg.callout_listen.is_some() && self.callout.is_some()
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .ping()
                .await
                .map_err(|e| format!("Zuora does not answer with these credentials: {e}"))
        })
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>> {
        Box::pin(async move {
            let cfg = self.cfg.clone();
            let sink = ZuoraSink::with_stats(
                self.client.clone(),
                ctx.codec.clone(),
                ctx.rules.clone(),
                cfg.profiles(),
                self.sink_stats.clone(),
            );
            let mut tasks: Vec<Task> = vec![ctx.sink(
                NAME,
                &cfg.group,
                vec![cfg.orders_topic.clone(), cfg.subscriptions_topic.clone()],
                Arc::new(sink),
            )];
            if let (Some(addr), Some((username, password))) = (cfg.callout_listen, self.callout) {
                let listener = callout::Listener::bind(addr, self.tls.clone())
                    .await
                    .map_err(|e| KitError::Start {
                        connector: NAME,
                        message: e.to_string(),
                    })?;
                let stats: Arc<OnceLock<SourceStats>> = Arc::new(OnceLock::new());
                let gate_stats = stats.clone();
                let (state, inbox) = callout::channel(
                    callout::CalloutSettings {
                        username,
                        password,
                        max_body: cfg.max_body_bytes,
                        answer_timeout: cfg.callout_answer_timeout,
                    },
                    Arc::new(move || gate_stats.get().is_some_and(SourceStats::active)),
                );
                let source = ZuoraSource::new(
                    self.client.clone(),
                    ctx.codec.clone(),
                    SourceOptions {
                        topic: cfg.subscriptions_topic.clone(),
                        licenses_topic: cfg.licenses_topic.clone(),
                        dead_letter_topic: ctx.dead_letter_topic.clone(),
                        name: cfg.source.clone(),
                        tenant: cfg.tenant(),
                        history_every: cfg.history_poll_interval,
                        history_overlap: cfg.history_overlap,
                        window: cfg.dedupe_window,
                        idle_wait: IDLE_WAIT,
                        profiles: cfg.profiles(),
                        clock: ctx.clock.clone(),
                    },
                    inbox,
                )
                .with_counters(self.source_counters.clone());
                tasks.push(ctx.source(NAME, ctx.source_settings(&cfg.source), source));
                if let Some(s) = ctx.pipelines.source(&cfg.source) {
                    let _ = stats.set(s);
                }
                tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), path = %cfg.callout_path, tls = self.tls.is_some(), "Zuora callout endpoint listening");
                let served = listener.serve(
                    callout::router(&cfg.callout_path, state),
                    ctx.shutdown.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let _ = served.await;
                    Ok(())
                }));
            }
            join_all(NAME, ctx.shutdown.clone(), tasks).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(section: serde_json::Value) -> Result<Box<dyn Connector>, KitError> {
        (REGISTRATION.build)(&section)
    }

    #[test]
    fn the_registry_line_builds_it_from_its_section() {
        let c = build(json!({
            "base_url": "https://rest.apisandbox.zuora.com",
            "client_id": "id",
            "client_secret": "s",
            "callout_listen": "127.0.0.1:0",
            "callout_username": "zuora",
            "callout_password": {"env": "PATH"},
            "history_poll_interval": "10s",
        }))
        .unwrap();
        assert_eq!(c.name(), "zuora");
        assert_eq!(c.topics(), ["orders", "subscriptions", "licenses"]);
        let e = &c.endpoints()[0];
        assert_eq!(
            (e.app, e.key.as_str()),
            ("zuora", "connectors.zuora.base_url")
        );
    }

    #[test]
    fn a_bad_section_names_the_dotted_key() {
        let base = json!({"base_url": "https://x", "client_id": "id", "client_secret": "s"});
        let mut typo = base.clone();
        typo["callout_pasword"] = json!("p");
        let e = build(typo).err().unwrap().to_string();
        assert!(
            e.starts_with("connectors.zuora.callout_pasword: unknown key"),
            "{e}"
        );
        let mut listener = base.clone();
        listener["callout_listen"] = json!("127.0.0.1:0");
        let e = build(listener).err().unwrap().to_string();
        assert!(e.starts_with("connectors.zuora.callout_username"), "{e}");
        let mut tls = base.clone();
        tls["callout_tls"] =
            json!({"cert_file": "/nonexistent/cert.pem", "key_file": "/nonexistent/key.pem"});
        let e = build(tls).err().unwrap().to_string();
        assert!(
            e.contains("connectors.zuora.callout_tls") && e.contains("/nonexistent/cert.pem"),
            "{e}"
        );
        let mut secret = base;
        secret["callout_listen"] = json!("127.0.0.1:0");
        secret["callout_username"] = json!("zuora");
        secret["callout_password"] = json!({"env": "L2F_TEST_ZUORA_CALLOUT_UNSET"});
        let e = build(secret).err().unwrap().to_string();
        assert!(e.starts_with("connectors.zuora.callout_password: environment variable L2F_TEST_ZUORA_CALLOUT_UNSET is not set"), "{e}");
    }
}
