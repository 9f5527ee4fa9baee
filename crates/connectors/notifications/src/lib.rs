//! The renewal-notice scheduler (handbook rule 7).
//!
//! From the subscription events (created, amended, renewed, cancelled, Zuora's auto-renew
//! flag) it keeps, per subscription, the term, the auto-renew flag, the deployment, the seats
//! bought and whether they increased, the recipient and the account; and emits
//! `RenewalNoticeDue` on the notifications topic on each day of the cadence the rules crate
//! computes (90, 45, 15 and 0 days before the term ends always; 21 and 3 with auto-renew on;
//! 14 for SaaS with auto-renew on and a seat increase), sent by the customers app for the
//! 14-day one and by Zuora for the others. A cancellation stops the notices; a renewal starts
//! the next term's cadence. The pure part is [`schedule`] and [`mapping`].
//!
//! **Guarantee: each notice exactly once per subscription and term, across restarts and
//! rebalances**, for `read_committed` readers. It runs on the bus's
//! [`KeyedScheduler`](l2f_bus::scheduler::KeyedScheduler): every change of a subscription's
//! state goes to a compacted changelog in the same Kafka transaction as the notices it
//! caused and the input offsets it consumed, and a new owner of a partition rebuilds its
//! state from the changelog first. It rests on the changelog having as many partitions as
//! the subscriptions topic and on every subscription event being keyed by subscription id.
//!
//! **Time** is the hub's one clock ([`Context::clock`]): the wall clock, or the mocks'
//! simulated clock followed (`[clock]`), so a year of notices runs in seconds.

pub mod config;
pub mod mapping;
pub mod schedule;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use l2f_bus::scheduler::{
    Change, KeyedScheduler, Schedule, SchedulerSettings, SchedulerStats, Step,
};
use l2f_bus::{HandlerError, Record};
use l2f_connector_kit::record::{decode_any, event_record};
use l2f_connector_kit::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Registration,
};
use l2f_contracts::Codec;
use l2f_rules::notices::NoticeTable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tracing::error;

pub use config::NotificationsConfig;
pub use schedule::Tracked;

/// The connector's name and `[connectors.notifications]` section.
pub const NAME: &str = "notifications";

/// The registry's line for this connector.
pub const REGISTRATION: Registration = Registration::of::<NotificationsConnector>();

/// Rule 7 as a [`Schedule`]: subscription events in, `RenewalNoticeDue` out.
pub struct NoticeSchedule {
    table: NoticeTable,
    codec: Arc<Codec>,
    topic: String,
}

impl NoticeSchedule {
    /// Rule 7's `table`, notices framed by `codec` onto `topic`.
    pub fn new(table: NoticeTable, codec: Arc<Codec>, topic: &str) -> Self {
        NoticeSchedule {
            table,
            codec,
            topic: topic.to_string(),
        }
    }
}

impl Schedule for NoticeSchedule {
    type State = Tracked;

    fn on_record(
        &mut self,
        key: &str,
        state: Option<&Tracked>,
        record: &Record,
        now: DateTime<Utc>,
    ) -> Result<Step<Tracked>, HandlerError> {
        let event = decode_any(&self.codec, record)?;
        let o = schedule::apply(key, state, &event, now, &self.table)
            .map_err(|r| HandlerError::permanent(r.0))?;
        let out = o
            .notices
            .iter()
            .map(|n| event_record(&self.codec, &self.topic, n, Some(record)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Step {
            change: o.state.map_or(Change::Keep, Change::Set),
            out,
        })
    }

    fn on_due(&mut self, key: &str, state: &Tracked, now: DateTime<Utc>) -> Step<Tracked> {
        let (next, notices) = schedule::fire(key, state, now, &self.table);
        if notices.is_empty() {
            return Step::keep();
        }
        let out = notices
            .iter()
            .filter_map(|n| match event_record(&self.codec, &self.topic, n, None) {
                Ok(r) => Some(r),
                Err(e) => {
                    // Unreachable for a state built from valid events; never a busy loop.
                    error!(subscription = key, days_before = n.days_before_term_end, error = %e, "a due notice cannot be framed; it is not sent");
                    None
                }
            })
            .collect();
        Step {
            change: Change::Set(next),
            out,
        }
    }

    fn next_due(&self, state: &Tracked) -> Option<DateTime<Utc>> {
        schedule::next_due(state, &self.table)
    }
}

/// The changelog must have as many partitions as the subscriptions topic (a key's state sits
/// on the changelog partition of its input partition): refused at start otherwise, naming
/// the key and both counts.
async fn check_partitions(kafka: &ClientConfig, c: &NotificationsConfig) -> Result<(), KitError> {
    let (kafka, input, changelog) = (
        kafka.clone(),
        c.subscriptions_topic.clone(),
        c.changelog_topic.clone(),
    );
    let counted = tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = kafka.create().map_err(|e| e.to_string())?;
        let count = |topic: &str| -> Result<usize, String> {
            let md = probe
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| format!("metadata of {topic}: {e}"))?;
            Ok(md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len()))
        };
        Ok::<_, String>((count(&input)?, count(&changelog)?))
    })
    .await
    .map_err(|e| KitError::Start {
        connector: NAME,
        message: format!("partition check failed: {e}"),
    })?;
    let (input, changelog) = counted.map_err(|message| KitError::Start {
        connector: NAME,
        message,
    })?;
    if input != changelog {
        return Err(KitError::config(
            NAME,
            "changelog_topic",
            format!(
                "{} has {changelog} partitions but {} has {input}: the changelog needs as many as its input",
                c.changelog_topic, c.subscriptions_topic
            ),
        ));
    }
    Ok(())
}

/// The notifications connector: one keyed scheduler.
pub struct NotificationsConnector {
    cfg: NotificationsConfig,
    stats: Arc<Mutex<Option<SchedulerStats>>>,
}

impl NotificationsConnector {
    /// The scheduler's live counters, once it started.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.stats.clone())
    }
}

/// Where the scheduler's counters appear when it starts.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Mutex<Option<SchedulerStats>>>);

impl StatsHandle {
    /// The counters, if the scheduler started.
    pub fn get(&self) -> Option<l2f_bus::scheduler::Counts> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(SchedulerStats::get)
    }
}

impl Configured for NotificationsConnector {
    const NAME: &'static str = NAME;
    type Config = NotificationsConfig;

    fn build(cfg: NotificationsConfig) -> Result<Self, KitError> {
        cfg.validate()?;
        Ok(NotificationsConnector {
            cfg,
            stats: Arc::default(),
        })
    }
}

impl Connector for NotificationsConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.cfg.subscriptions_topic.clone(),
            self.cfg.notifications_topic.clone(),
            self.cfg.changelog_topic.clone(),
        ]
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        Vec::new()
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>> {
        Box::pin(async move {
            let c = &self.cfg;
            check_partitions(&ctx.kafka, c).await?;
            let mut settings = SchedulerSettings::new(
                &c.group,
                &c.subscriptions_topic,
                &c.changelog_topic,
                &ctx.dead_letter_topic,
            );
            settings.tick = c.tick;
            settings.batch_size = c.batch_size;
            settings.transaction_timeout = c.transaction_timeout;
            settings.session_timeout = ctx.consumer.session_timeout;
            let logic = NoticeSchedule::new(
                ctx.rules.notices.clone(),
                ctx.codec.clone(),
                &c.notifications_topic,
            );
            let scheduler = KeyedScheduler::new(&ctx.kafka, settings, logic, ctx.clock.clone());
            *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(scheduler.stats());
            let task = tokio::spawn(scheduler.run(ctx.shutdown.clone()));
            join_all(NAME, ctx.shutdown.clone(), vec![task]).await
        })
    }
}
