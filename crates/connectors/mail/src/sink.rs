//! The sink: subscription, license and notification events → the emails of rules 7 and 8,
//! each sent once, or suppressed by the Silent profile (rule 6).
//!
//! For each email ([`crate::mapping`]): the account's profile ([`ProfileTable`]) mutes it
//! (→ `EmailSuppressed`), or it is rendered ([`Templates`]), looked for among Mailgun's
//! `accepted` events by its idempotency key (an earlier process may have sent it and crashed
//! before committing), sent only if not found, and recorded as `EmailSent` (key = message
//! id). Both outputs have event ids derived from the idempotency key, so producing one again
//! after a crash is a duplicate readers recognise, never a second email.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use l2f_bus::{Handler, HandlerError, Producer, Record};
use l2f_connector_kit::record::{decode_any, event_record};
use l2f_connector_kit::{ClientError, Metric};
use l2f_contracts::events::{
    BillingBatch, CommunicationProfile, EmailSent, EmailSuppressed, Envelope, SourceSystem,
};
use l2f_contracts::record::{derived_id, AnyEvent};
use l2f_contracts::Codec;
use l2f_rules::Rules;
use tracing::{debug, info};

use crate::client::MailgunClient;
use crate::mapping::{self, Email};
use crate::profiles::{ProfileTable, Row};
use crate::templates::Templates;
use crate::verdict::verdict;

/// Counters of the sink's outcomes, readable while it runs (for metrics and tests).
#[derive(Debug, Clone, Default)]
pub struct SinkStats {
    sent: Arc<AtomicU64>,
    already_sent: Arc<AtomicU64>,
    suppressed: Arc<AtomicU64>,
    events_searches: Arc<AtomicU64>,
}

impl SinkStats {
    /// Emails sent through Mailgun.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Emails found already accepted by Mailgun (a redelivery after a crash), not resent.
    pub fn already_sent(&self) -> u64 {
        self.already_sent.load(Ordering::Relaxed)
    }
    /// Emails muted by the account's profile (rule 6), recorded as `EmailSuppressed`.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
    /// Searches of Mailgun's events API.
    pub fn events_searches(&self) -> u64 {
        self.events_searches.load(Ordering::Relaxed)
    }
    /// The counters as `/metrics` exports them (`l2f_emails_<outcome>_total{connector}`).
    pub fn metrics(&self, connector: &'static str) -> Vec<Metric> {
        let m = |name, help, value: &Arc<AtomicU64>| Metric {
            connector,
            name,
            help,
            value: value.clone(),
        };
        vec![
            m("emails_sent", "Emails sent through the app", &self.sent),
            m(
                "emails_already_sent",
                "Emails found already accepted by the app (a redelivery), not sent again",
                &self.already_sent,
            ),
            m(
                "emails_suppressed",
                "Emails muted by the account's communication profile (rule 6)",
                &self.suppressed,
            ),
        ]
    }
}

/// What the sink needs besides its client, templates and table.
#[derive(Clone)]
pub struct SinkOptions {
    /// `From` of every email.
    pub from: String,
    /// Where reseller notifications go.
    pub reseller_to: Option<String>,
    /// Batches whose self-managed subscriptions need the terms.
    pub accept_terms_batches: Vec<BillingBatch>,
    /// Where `EmailSent` and `EmailSuppressed` go.
    pub notifications_topic: String,
    /// See `MailConfig::events_settle`.
    pub events_settle: Duration,
    /// See `MailConfig::events_lookback`.
    pub events_lookback: Duration,
    /// How long a record waits for the profile table to load before it is handed back.
    pub table_wait: Duration,
    /// The hub's clock: Mailgun stamps its events by the time of its own world, which is the
    /// hub's clock, not the broker's (a followed simulated clock runs months from the wall).
    pub clock: l2f_bus::clock::SharedClock,
}

/// What sending one email came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Mailgun's bare message id.
    pub message_id: String,
    /// The rendered subject.
    pub subject: String,
    /// Whether Mailgun had already accepted it (found by its key, not sent again).
    pub already_sent: bool,
}

/// The Mailgun half of the sink, no Kafka: renders an email, looks for an earlier send of it
/// by its key, and sends it only if there is none.
pub struct Mailer {
    client: Arc<MailgunClient>,
    templates: Arc<Templates>,
    from: String,
    events_settle: Duration,
    events_lookback: Duration,
    started: Instant,
    /// Keys whose send ended without Mailgun's word (a timeout, a 5xx): it may have been
    /// accepted, so a miss is trusted only `events_settle` after that attempt.
    uncertain: Mutex<HashMap<uuid::Uuid, Instant>>,
    stats: SinkStats,
}

impl Mailer {
    /// A mailer; its `events_settle` counts from now (when this process began mailing).
    pub fn new(
        client: Arc<MailgunClient>,
        templates: Arc<Templates>,
        from: impl Into<String>,
        events_settle: Duration,
        events_lookback: Duration,
        stats: SinkStats,
    ) -> Self {
        Mailer {
            client,
            templates,
            from: from.into(),
            events_settle,
            events_lookback,
            started: Instant::now(),
            uncertain: Mutex::default(),
            stats,
        }
    }

    /// Live counters.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    fn uncertain(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Instant>> {
        self.uncertain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Since when a miss of `key` in the events could still be a send not shown yet: this
    /// process's start, or this process's last send of it that got no answer.
    fn doubt_since(&self, key: uuid::Uuid) -> Instant {
        self.uncertain()
            .get(&key)
            .copied()
            .map_or(self.started, |t| t.max(self.started))
    }

    /// An earlier send of `email` (whose record was written at `at_ms`), waiting out
    /// `events_settle` since start before trusting a miss (an earlier process's send may not
    /// show yet).
    async fn earlier_send(
        &self,
        email: &Email,
        at_ms: i64,
    ) -> Result<Option<String>, HandlerError> {
        let from = (at_ms - self.events_lookback.as_millis() as i64) / 1000;
        let key = email.key.to_string();
        loop {
            self.stats.events_searches.fetch_add(1, Ordering::Relaxed);
            let found = self
                .client
                .accepted(&email.recipient, &key, from)
                .await
                .map_err(|e| verdict(&e))?;
            if found.is_some() {
                return Ok(found);
            }
            let since = self.doubt_since(email.key).elapsed();
            if since >= self.events_settle {
                return Ok(None);
            }
            tokio::time::sleep((self.events_settle - since).min(Duration::from_millis(500))).await;
        }
    }

    /// Renders `email` and sends it unless Mailgun already accepted it.
    pub async fn send_once(&self, email: &Email, at_ms: i64) -> Result<Delivered, HandlerError> {
        let rendered = self
            .templates
            .render(email.kind, &email.vars)
            .map_err(|e| HandlerError::permanent(e.to_string()))?;
        if let Some(id) = self.earlier_send(email, at_ms).await? {
            self.uncertain().remove(&email.key);
            self.stats.already_sent.fetch_add(1, Ordering::Relaxed);
            info!(key = %email.key, message_id = %id, "email already accepted by mailgun; not sent again");
            return Ok(Delivered {
                message_id: id,
                subject: rendered.subject,
                already_sent: true,
            });
        }
        let form = mapping::form(email, &rendered, &self.from);
        let id = match self.client.send(&form).await {
            Ok(id) => id,
            Err(e) => {
                // No answer, or a 5xx: Mailgun may have taken it all the same.
                let unknown = match &e {
                    ClientError::Transport(_) => true,
                    ClientError::Status { status, .. } => *status >= 500,
                    _ => false,
                };
                if unknown {
                    self.uncertain().insert(email.key, Instant::now());
                }
                return Err(verdict(&e));
            }
        };
        self.uncertain().remove(&email.key);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        debug!(key = %email.key, message_id = %id, template = email.kind.name(), "email sent");
        Ok(Delivered {
            message_id: id,
            subject: rendered.subject,
            already_sent: false,
        })
    }
}

/// The mail sink as an [`l2f_bus::Handler`].
pub struct MailSink {
    mailer: Mailer,
    client: Arc<MailgunClient>,
    codec: Arc<Codec>,
    rules: Arc<Rules>,
    producer: Producer,
    table: ProfileTable,
    opts: SinkOptions,
    stats: SinkStats,
}

impl MailSink {
    /// A sink; `started` is when this process began (see `events_settle`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<MailgunClient>,
        templates: Arc<Templates>,
        codec: Arc<Codec>,
        rules: Arc<Rules>,
        producer: Producer,
        table: ProfileTable,
        opts: SinkOptions,
        stats: SinkStats,
    ) -> Self {
        let mailer = Mailer::new(
            client.clone(),
            templates,
            opts.from.clone(),
            opts.events_settle,
            opts.events_lookback,
            stats.clone(),
        );
        MailSink {
            mailer,
            client,
            codec,
            rules,
            producer,
            table,
            opts,
            stats,
        }
    }

    /// Live counters.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    async fn produce(&self, out: l2f_bus::OutRecord) -> Result<(), HandlerError> {
        self.producer
            .send(&out)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::transient(format!("produce to {}: {e}", out.topic)))
    }

    /// Records a profile-carrying event in the table (and its changelog) if it is news.
    async fn note_profile(
        &self,
        account: &str,
        profile: CommunicationProfile,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let row = Row {
            profile,
            at_ms: cause.occurred_at.timestamp_millis(),
        };
        if self.table.is_news(account, row) {
            self.produce(self.table.record(account, row)).await?;
            self.table.apply(account, row);
        }
        Ok(())
    }

    async fn profile(&self, account: &str) -> Result<CommunicationProfile, HandlerError> {
        if !self.table.wait_ready(self.opts.table_wait).await {
            return Err(HandlerError::unavailable(
                "the communication profile table is not loaded yet",
                None,
            ));
        }
        Ok(self
            .table
            .get(account)
            .unwrap_or_else(|| self.rules.communication.new_account()))
    }

    fn envelope(key: uuid::Uuid, step: &str, cause: &Envelope) -> Envelope {
        Envelope {
            event_id: derived_id(key, step),
            occurred_at: Utc::now(),
            source: SourceSystem::L2fHub,
            correlation_id: cause.correlation_id,
            causation_id: Some(cause.event_id),
        }
    }

    /// Sends (or suppresses, or finds already sent) one email.
    async fn deliver(
        &self,
        email: Email,
        record: &Record,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let profile = self.profile(&email.account_id).await?;
        if self.rules.communication.effects(profile).mute_notifications {
            let ev = EmailSuppressed {
                envelope: Self::envelope(email.key, "suppressed", cause),
                account_id: email.account_id.clone(),
                subscription_id: email.subscription_id.clone(),
                template: email.kind.name().into(),
                recipient_email: email.recipient.clone(),
                communication_profile: profile,
            };
            let out = event_record(
                &self.codec,
                &self.opts.notifications_topic,
                &ev,
                Some(record),
            )?;
            self.produce(out).await?;
            self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
            info!(account_id = %email.account_id, template = email.kind.name(), profile = profile.symbol(), "email suppressed by the communication profile");
            return Ok(());
        }
        // The earliest of the record's time, its cause's and the hub's clock now: an earlier
        // send was accepted after the first of them by Mailgun's clock, whichever clock the
        // broker and the causing connector kept (a redelivery missed with the broker's time
        // alone when the hub follows a simulated clock, and sent the email twice).
        let at_ms = record
            .timestamp_ms
            .unwrap_or(i64::MAX)
            .min(cause.occurred_at.timestamp_millis())
            .min(self.opts.clock.now().timestamp_millis());
        let d = self.mailer.send_once(&email, at_ms).await?;
        let ev = EmailSent {
            envelope: Self::envelope(email.key, "sent", cause),
            message_id: d.message_id,
            recipient_email: email.recipient.clone(),
            template: email.kind.name().into(),
            subject: d.subject,
            subscription_id: email.subscription_id.clone(),
        };
        let out = event_record(
            &self.codec,
            &self.opts.notifications_topic,
            &ev,
            Some(record),
        )?;
        self.produce(out).await
    }
}

impl Handler for MailSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let event = decode_any(&self.codec, record)?;
        let emails = match &event {
            AnyEvent::SubscriptionCreated(s) => {
                self.note_profile(&s.account_id, s.communication_profile, &s.envelope)
                    .await?;
                mapping::accept_terms(s, &self.opts.accept_terms_batches)?
                    .into_iter()
                    .collect()
            }
            AnyEvent::LicenseHeld(h) => {
                self.note_profile(&h.account_id, h.communication_profile, &h.envelope)
                    .await?;
                Vec::new()
            }
            AnyEvent::CommunicationProfileChanged(c) => {
                self.note_profile(&c.account_id, c.communication_profile, &c.envelope)
                    .await?;
                Vec::new()
            }
            AnyEvent::LicenseIssued(l) => mapping::license(l, self.opts.reseller_to.as_deref())?,
            AnyEvent::RenewalNoticeDue(n) => mapping::renewal_notice(n)?.into_iter().collect(),
            _ => Vec::new(),
        };
        if l2f_connector_kit::record::is_repair(record) {
            // A copy `l2f reconcile --fix` re-emitted to repair an app's state: the profile
            // is noted above, but the emails of the original were the original's to send.
            debug!(emails = emails.len(), "repair record: no email sent");
            return Ok(());
        }
        for email in emails {
            self.deliver(email, record, event.envelope()).await?;
        }
        Ok(())
    }

    async fn probe(&self) -> bool {
        self.client.ping().await.is_ok()
    }
}
