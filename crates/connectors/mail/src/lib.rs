//! The mail connector: the emails the hub sends through Mailgun (`POST /v3/{domain}/messages`)
//! — the accept-terms email and the license email of the self-managed flow and the reseller
//! notification (rule 8), and the 14-day SaaS renewal notice the customers app sends (rule 7;
//! Zuora sends the others) — rendered from template files ([`templates`]), muted by the Silent
//! profile (rule 6).
//!
//! **No email twice.** Mailgun takes no idempotency key, so every message carries its own as a
//! custom variable (`v:l2f-key` = a key derived from the event id and the template). The loop
//! delivers at least once; before sending, the sink asks Mailgun's events API for an
//! `accepted` event of that recipient with that key, and sends only if there is none — so a
//! record redelivered after a crash between the send and the commit is not sent again. It
//! rests on one condition: an accepted message shows in the events API within
//! `events_settle` (Mailgun's events reach storage late); a miss is trusted only once that
//! long has passed since the process began (every earlier process's sends happened before
//! that), or since this process's last attempt at it that got no answer or a 5xx (Mailgun may
//! have taken it all the same). Every record is checked, not only those that may be
//! redeliveries: a cheap read beside a send, and right whatever the previous owner of a
//! partition did. Mailgun keeps events for days, not forever: a record redelivered after
//! longer than that would be sent again.
//! `EmailSent` (topic `notifications`, key the message id) is produced for every email sent
//! or found already sent, with an event id derived from the key, so a repeat is a duplicate
//! by id.
//!
//! **Silent profile.** The profile that mutes an email arrives on events keyed by account or
//! by subscription, on other topics than the emails it mutes, so the connector keeps an
//! account → profile table in a compacted topic (`profiles_topic`) that every instance reads
//! in full and follows ([`profiles`]); the newest event wins. A muted email is not sent: an
//! `EmailSuppressed` is produced and [`SinkStats::suppressed`] counts it (exported on
//! `/metrics` as `l2f_emails_suppressed_total{connector="mail"}`). Reading Zuora's account at
//! send time was the alternative; the notices carry no Zuora account number, and the table
//! needs no call per email. The table is eventually consistent across topics: an email
//! handled before a profile change reached the table follows the old profile.
//!
//! Who is at fault ([`verdict`]): a bad record (no recipient, a malformed address) or one
//! Mailgun refuses (400) is dead-lettered with the field and value named; Mailgun refusing
//! the key (401) or not answering makes the record wait; 429 and 5xx are retried, honouring
//! `Retry-After`.
//!
//! Layout (the kit's shape): [`config`], [`client`] (the only I/O), [`mapping`] (pure),
//! [`templates`], [`profiles`], [`verdict`], [`sink`].

pub mod client;
pub mod config;
pub mod mapping;
pub mod profiles;
pub mod sink;
pub mod templates;
pub mod verdict;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use l2f_connector_kit::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Registration,
};

pub use client::MailgunClient;
pub use config::{ConfigError, MailConfig};
pub use profiles::ProfileTable;
pub use sink::{Delivered, MailSink, Mailer, SinkOptions, SinkStats};
pub use templates::{Kind, Templates};

/// The connector's name and `[connectors.mail]` section.
pub const NAME: &str = "mail";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<MailConnector>();

/// How long a record waits for the profile table to load before it is handed back.
const TABLE_WAIT: Duration = Duration::from_secs(30);

/// The mail connector: one sink over the subscription, license and notification topics.
pub struct MailConnector {
    cfg: MailConfig,
    client: Arc<MailgunClient>,
    templates: Arc<Templates>,
    stats: SinkStats,
}

fn config_error(e: ConfigError) -> KitError {
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
}

impl MailConnector {
    /// Live counters of its sink.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    /// Its configuration.
    pub fn config(&self) -> &MailConfig {
        &self.cfg
    }
}

impl Configured for MailConnector {
    const NAME: &'static str = NAME;
    type Config = MailConfig;

    /// Validates, resolves the key, and loads and checks every template (a missing file or
    /// variable stops the start, naming the template and the variable).
    fn build(cfg: MailConfig) -> Result<Self, KitError> {
        let client = cfg.client().map_err(config_error)?;
        let templates = Templates::load(&cfg.templates_dir)
            .map_err(|e| KitError::config(NAME, "templates_dir", e))?;
        Ok(MailConnector {
            cfg,
            client: Arc::new(client),
            templates: Arc::new(templates),
            stats: SinkStats::default(),
        })
    }
}

impl Connector for MailConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.cfg.subscriptions_topic.clone(),
            self.cfg.licenses_topic.clone(),
            self.cfg.notifications_topic.clone(),
            self.cfg.profiles_topic.clone(),
        ]
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![Endpoint {
            app: "mail",
            key: "connectors.mail.base_url".into(),
            url: self.cfg.base_url.clone(),
        }]
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .ping()
                .await
                .map_err(|e| format!("Mailgun does not answer with this key: {e}"))
        })
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>> {
        Box::pin(async move {
            let cfg = self.cfg.clone();
            for m in self.stats.metrics(NAME) {
                ctx.pipelines.add_metric(m);
            }
            let table = ProfileTable::new(cfg.profiles_topic.clone());
            let follower = table.follow(&ctx.kafka, ctx.shutdown.clone());
            let sink = MailSink::new(
                self.client.clone(),
                self.templates.clone(),
                ctx.codec.clone(),
                ctx.rules.clone(),
                ctx.producer.clone(),
                table,
                SinkOptions {
                    from: cfg.from.clone(),
                    reseller_to: Some(cfg.reseller_notification_to.clone()),
                    accept_terms_batches: cfg.accept_terms_batches.clone(),
                    notifications_topic: cfg.notifications_topic.clone(),
                    events_settle: cfg.events_settle,
                    events_lookback: cfg.events_lookback,
                    table_wait: TABLE_WAIT,
                    clock: ctx.clock.clone(),
                },
                self.stats.clone(),
            );
            let tasks = vec![
                ctx.sink(
                    NAME,
                    &cfg.group,
                    vec![
                        cfg.subscriptions_topic.clone(),
                        cfg.licenses_topic.clone(),
                        cfg.notifications_topic.clone(),
                    ],
                    Arc::new(sink),
                ),
                follower,
            ];
            join_all(NAME, ctx.shutdown.clone(), tasks).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates() -> String {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../deploy/templates/mail"
        )
        .to_string()
    }

    #[test]
    fn the_registry_line_builds_it_from_its_section() {
        let c = (REGISTRATION.build)(&json!({
            "base_url": "https://api.mailgun.net",
            "domain": "mg.example.com",
            "api_key": "k",
            "from": "GitLab <noreply@mg.example.com>",
            "templates_dir": templates(),
            "reseller_notification_to": "partners@example.com",
        }))
        .unwrap();
        assert_eq!(c.name(), "mail");
        assert_eq!(
            c.topics(),
            [
                "subscriptions",
                "licenses",
                "notifications",
                "mail-profiles"
            ]
        );
        assert_eq!(c.endpoints()[0].key, "connectors.mail.base_url");
    }

    #[test]
    fn a_template_problem_stops_the_start_naming_template_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(templates()).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
        std::fs::write(
            dir.path().join("renewal_notice.txt"),
            "{{ days_before_term_end }} days; {{ seats }} seats",
        )
        .unwrap();
        let e = (REGISTRATION.build)(&json!({
            "base_url": "https://api.mailgun.net",
            "domain": "mg.example.com",
            "api_key": "k",
            "from": "noreply@mg.example.com",
            "templates_dir": dir.path(),
            "reseller_notification_to": "partners@example.com",
        }))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("connectors.mail.templates_dir: template renewal_notice.txt: variable seats is not provided"),
            "{e}"
        );
    }
}
