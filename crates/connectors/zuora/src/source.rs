//! The source: Zuora's subscription changes → the `subscriptions` topic, exactly once.
//!
//! An `AccountUpdated` notification carrying the account's communication profile becomes
//! `CommunicationProfileChanged` on the licenses topic (rule 6), read from the account over
//! REST, so the license service releases a held license when Silent is lifted.
//!
//! Two inputs feed one [`Source`]: the callout notifications the endpoint
//! ([`crate::callout`]) receives, and — every `history_poll_interval`, and at once when this
//! replica becomes active — Zuora's callout history
//! (`GET /v1/notification-history/callout?failedOnly=false&startTime=…`), so a callout that
//! never reached the hub (the hub down, every retry refused) is caught. For each notification
//! not seen before, the subscription and its account are read over REST and mapped
//! ([`crate::mapping::to_event`]); one that cannot be mapped becomes a dead letter instead —
//! never a half event.
//!
//! **Guarantee: one event per notification for `read_committed` readers.** The events, the
//! dead letters and the cursor — the window of notification ids already committed and how far
//! the history has been read — go to Kafka in one transaction (the bus's source loop). A
//! notification delivered twice, by a retry, by the history or across a restart, finds its id
//! in the committed window and produces nothing. Its event id is
//! `event_id("zuora", tenant, notification id)`, the same whichever input brought it, so even
//! a notification older than the window is absorbed by the sinks' idempotency. A callout is
//! answered 200 only in [`Source::committed`], after the transaction.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use futures::StreamExt;
use l2f_bus::source::{Polled, Source};
use l2f_bus::{HandlerError, OutRecord, Record};
use l2f_contracts::Codec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::{debug, info, warn};

use crate::callout::{CalloutInbox, Inbound};
use crate::client::{Call, ZuoraClient};
use crate::mapping::{
    profile_changed, seats_of, to_event, FromZuora, Notification, Profiles, Snapshot,
    SubscriptionView,
};
use crate::verdict::judge;

/// The `source-topic` header of a notification's dead letter.
pub const DEAD_LETTER_ORIGIN: &str = "zuora:callout";

/// Zuora's history time format.
const HISTORY_TIME: &str = "%Y-%m-%dT%H:%M:%S";

/// Most notifications mapped in one poll (one transaction).
const BATCH: usize = 200;

/// REST reads made at once while mapping a batch (order is kept).
const FETCHES_AT_ONCE: usize = 8;

/// The committed state: the notification ids already turned into events (a bounded window,
/// oldest first) and the latest history row read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Notification ids committed, oldest first.
    pub seen: VecDeque<String>,
    /// The latest `createTime` read from the history (`yyyy-MM-ddTHH:mm:ss`, UTC).
    #[serde(default)]
    pub history_from: Option<String>,
}

impl Cursor {
    /// The cursor a poll was given (`None`: nothing committed yet); an unreadable one is an
    /// error naming it.
    pub fn read(v: Option<&Value>) -> Result<Cursor, HandlerError> {
        match v {
            None => Ok(Cursor::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                HandlerError::permanent(format!("zuora source cursor {v} is unreadable: {e}"))
            }),
        }
    }

    fn remember(&mut self, id: &str, window: usize) {
        self.seen.push_back(id.to_string());
        while self.seen.len() > window {
            self.seen.pop_front();
        }
    }
}

/// How the source runs.
#[derive(Clone)]
pub struct SourceOptions {
    /// The subscriptions topic.
    pub topic: String,
    /// The topic of `CommunicationProfileChanged` (rule 6: the license service learns of a
    /// lifted Silent profile).
    pub licenses_topic: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The source's name (the dead letters' consumer-group header).
    pub name: String,
    /// The tenant's name in event ids.
    pub tenant: String,
    /// How often the history is read.
    pub history_every: Duration,
    /// How far each history read reaches back before the latest row read.
    pub history_overlap: Duration,
    /// Ids the cursor keeps.
    pub window: usize,
    /// Longest wait for a callout within one poll when there is nothing to do.
    pub idle_wait: Duration,
    /// Zuora's profile ids.
    pub profiles: Profiles,
    /// The hub's clock: the first history read reaches one day back from it, as Zuora
    /// stamps its history on the same time (a simulated clock in tests and the demo).
    pub clock: l2f_bus::clock::SharedClock,
}

/// One notification to turn into an event.
struct Candidate {
    notification: Notification,
    raw: Value,
    /// Found in the history, not received as a callout.
    from_history: bool,
    /// Why its merge fields cannot be read (it becomes a dead letter).
    unreadable: Option<String>,
}

/// Why a notification yields no event now.
enum Miss {
    /// It never will: a dead letter, with the reason.
    DeadLetter(String),
    /// Zuora cannot answer now: the poll is made again.
    Retry(HandlerError),
}

impl From<HandlerError> for Miss {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Permanent { message } => Miss::DeadLetter(message),
            other => Miss::Retry(other),
        }
    }
}

/// Counters of the source, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct SourceCounters(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    callouts: std::sync::atomic::AtomicU64,
    from_history: std::sync::atomic::AtomicU64,
    duplicates: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
    dead_letters: std::sync::atomic::AtomicU64,
    history_reads: std::sync::atomic::AtomicU64,
    failed_history_reads: std::sync::atomic::AtomicU64,
}

impl SourceCounters {
    fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn bump(c: &std::sync::atomic::AtomicU64, n: u64) {
        c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    /// Notifications taken from the callout endpoint and committed.
    pub fn callouts(&self) -> u64 {
        Self::get(&self.0.callouts)
    }
    /// Notifications found only in the history (callouts that never arrived), committed.
    pub fn from_history(&self) -> u64 {
        Self::get(&self.0.from_history)
    }
    /// Notifications dropped as already committed.
    pub fn duplicates(&self) -> u64 {
        Self::get(&self.0.duplicates)
    }
    /// Events committed.
    pub fn events(&self) -> u64 {
        Self::get(&self.0.events)
    }
    /// Notifications dead-lettered (committed).
    pub fn dead_letters(&self) -> u64 {
        Self::get(&self.0.dead_letters)
    }
    /// History reads made.
    pub fn history_reads(&self) -> u64 {
        Self::get(&self.0.history_reads)
    }
    /// History reads that failed.
    pub fn failed_history_reads(&self) -> u64 {
        Self::get(&self.0.failed_history_reads)
    }
}

/// The Zuora source: callouts plus the history poll.
pub struct ZuoraSource {
    client: Arc<ZuoraClient>,
    codec: Arc<Codec>,
    opts: SourceOptions,
    inbox: CalloutInbox,
    /// Callouts taken from the inbox and not yet committed (answered in `committed`).
    waiting: Vec<Inbound>,
    /// The cursor the shared window was last set from.
    window_of: Option<Value>,
    last_history: Option<Instant>,
    counters: SourceCounters,
    /// What the last poll mapped, counted when it is committed.
    pending: Pending,
}

#[derive(Debug, Default)]
struct Pending {
    callouts: u64,
    from_history: u64,
    events: u64,
    dead_letters: u64,
}

fn parse_history_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

impl ZuoraSource {
    /// A source reading the callouts of `inbox` and Zuora's history through `client`.
    pub fn new(
        client: Arc<ZuoraClient>,
        codec: Arc<Codec>,
        opts: SourceOptions,
        inbox: CalloutInbox,
    ) -> Self {
        ZuoraSource {
            client,
            codec,
            opts,
            inbox,
            waiting: Vec::new(),
            window_of: None,
            last_history: None,
            counters: SourceCounters::default(),
            pending: Pending::default(),
        }
    }

    /// Counting into `counters` (created before the source).
    pub fn with_counters(mut self, counters: SourceCounters) -> Self {
        self.counters = counters;
        self
    }

    /// Live counters.
    pub fn counters(&self) -> SourceCounters {
        self.counters.clone()
    }

    fn history_due(&self) -> bool {
        self.last_history
            .is_none_or(|t| t.elapsed() >= self.opts.history_every)
    }

    /// Takes the callouts that arrived, waiting up to the idle wait for a first one when there
    /// is nothing else to do.
    async fn take_callouts(&mut self) {
        if self.waiting.is_empty() && !self.history_due() {
            let until_history = self
                .last_history
                .map(|t| self.opts.history_every.saturating_sub(t.elapsed()))
                .unwrap_or_default();
            let wait = self.opts.idle_wait.min(until_history);
            if let Ok(Some(first)) = tokio::time::timeout(wait, self.inbox.rx.recv()).await {
                self.waiting.push(first);
            }
        }
        while self.waiting.len() < BATCH {
            match self.inbox.rx.try_recv() {
                Ok(i) => self.waiting.push(i),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    /// The history rows since the cursor's mark (minus the overlap), as candidates.
    async fn read_history(&self, cursor: &mut Cursor) -> Result<Vec<Candidate>, HandlerError> {
        let mark = cursor
            .history_from
            .as_deref()
            .and_then(parse_history_time)
            .map(|t| t.and_utc())
            // Nothing read yet: Zuora's own default window, one day back.
            .unwrap_or_else(|| self.opts.clock.now() - chrono::Duration::days(1));
        let overlap = chrono::Duration::from_std(self.opts.history_overlap).unwrap_or_default();
        let start = (mark - overlap).format(HISTORY_TIME).to_string();
        let rows = self
            .client
            .callout_history(&start)
            .await
            .map_err(|e| judge(&e, "reading Zuora's callout notification history"))?;
        SourceCounters::bump(&self.counters.0.history_reads, 1);
        let mut latest = cursor.history_from.as_deref().and_then(parse_history_time);
        let mut out = Vec::new();
        for row in rows {
            if let Some(t) = row["createTime"].as_str().and_then(parse_history_time) {
                latest = Some(latest.map_or(t, |l| l.max(t)));
            }
            let Some(id) = row["notificationId"].as_str() else {
                continue;
            };
            let raw = row["eventContext"].clone();
            match Notification::parse(id, &raw) {
                Ok(n) if !n.mapped() => {}
                Ok(notification) => out.push(Candidate {
                    notification,
                    raw,
                    from_history: true,
                    unreadable: None,
                }),
                Err(why) => {
                    // Seen by Zuora, refused by the endpoint: a dead letter, with the reason.
                    out.push(Candidate {
                        from_history: true,
                        unreadable: Some(why),
                        notification: Notification {
                            id: id.to_string(),
                            event_type: row["notification"].as_str().unwrap_or("?").to_string(),
                            subscription_number: None,
                            account_number: None,
                            order_number: None,
                            event_time: None,
                            invoice_number: None,
                            amount: None,
                            gateway_response_code: None,
                            communication_profile_id: None,
                        },
                        raw,
                    });
                }
            }
        }
        cursor.history_from = latest
            .map(|t| t.format(HISTORY_TIME).to_string())
            .or_else(|| Some(mark.format(HISTORY_TIME).to_string()));
        Ok(out)
    }

    /// The dead letter of a notification that cannot become an event.
    fn dead_letter(&self, c: &Candidate, why: String) -> OutRecord {
        let rec = Record {
            topic: DEAD_LETTER_ORIGIN.into(),
            partition: 0,
            offset: 0,
            key: Some(
                c.notification
                    .subscription_number
                    .clone()
                    .unwrap_or_else(|| c.notification.id.clone())
                    .into_bytes(),
            ),
            payload: Some(c.raw.to_string().into_bytes()),
            headers: vec![(
                "zuora.notification-id".into(),
                Some(c.notification.id.clone().into_bytes()),
            )],
            timestamp_ms: Some(Utc::now().timestamp_millis()),
        };
        let err = HandlerError::permanent(format!(
            "Zuora notification {} ({}) cannot become an event: {why}",
            c.notification.id, c.notification.event_type
        ));
        l2f_bus::dlq::letter(&rec, &err, 1, &self.opts.dead_letter_topic, &self.opts.name)
    }

    /// The record of one candidate: its event, or its dead letter; an outage is an error (the
    /// whole poll is made again).
    async fn map_one(&self, c: &Candidate) -> Result<OutRecord, HandlerError> {
        match self.event_of(c).await {
            Ok(r) => Ok(r),
            Err(Miss::DeadLetter(why)) => Ok(self.dead_letter(c, why)),
            Err(Miss::Retry(e)) => Err(e),
        }
    }

    async fn event_of(&self, c: &Candidate) -> Result<OutRecord, Miss> {
        if let Some(why) = &c.unreadable {
            return Err(Miss::DeadLetter(why.clone()));
        }
        let n = &c.notification;
        let what = format!("notification {} ({})", n.id, n.event_type);
        let zuora = |e: l2f_connector_kit::ClientError| Miss::from(judge(&e, &what));
        let call = Call::default();
        if n.profile_change() {
            let number = n.account_number.clone().unwrap_or_default();
            let account = self
                .client
                .account(&number, call)
                .await
                .map_err(zuora)?
                .ok_or_else(|| Miss::DeadLetter(format!("account {number} is not in Zuora")))?;
            let event = profile_changed(
                n,
                &account,
                &self.opts.tenant,
                Utc::now(),
                &self.opts.profiles,
            )
            .map_err(Miss::DeadLetter)?;
            return FromZuora::Profile(event)
                .record(&self.codec, &self.opts.licenses_topic)
                .map_err(|e| Miss::DeadLetter(e.message().to_string()));
        }
        let number = n.subscription_number.clone().unwrap_or_default();
        let sub = self
            .client
            .subscription(&number, call)
            .await
            .map_err(zuora)?
            .ok_or_else(|| Miss::DeadLetter(format!("subscription {number} is not in Zuora")))?;
        let view = SubscriptionView::read(&sub).map_err(Miss::DeadLetter)?;
        let account = self
            .client
            .account(&view.account_number, call)
            .await
            .map_err(zuora)?
            .ok_or_else(|| {
                Miss::DeadLetter(format!("account {} is not in Zuora", view.account_number))
            })?;
        let plan = match &view.product_rate_plan_id {
            Some(prp) => self.client.catalog_rate_plan(prp).await.map_err(zuora)?,
            None => None,
        };
        let previous_seats = if n.event_type == "SubscriptionAmended" && view.version > 1 {
            self.client
                .subscription_version(&number, view.version - 1, call)
                .await
                .map_err(zuora)?
                .as_ref()
                .and_then(seats_of)
        } else {
            None
        };
        let snapshot = Snapshot {
            notification: n,
            subscription: &sub,
            account: &account,
            plan: plan.as_ref(),
            previous_seats,
            tenant: &self.opts.tenant,
            now: Utc::now(),
            profiles: &self.opts.profiles,
        };
        let event = to_event(&snapshot)
            .map_err(Miss::DeadLetter)?
            .ok_or_else(|| Miss::DeadLetter("not a mapped event type".into()))?;
        let record = event
            .record(&self.codec, &self.opts.topic)
            .map_err(|e| Miss::DeadLetter(e.message().to_string()))?;
        // The change the hub made continues the trace of the span that made it.
        Ok(match crate::mapping::traceparent_of(&sub) {
            Some(tp) => record.with_header(l2f_bus::headers::TRACEPARENT, tp.to_string()),
            None => record,
        })
    }

    /// Answers the callouts whose ids are committed in `cursor` (`seen`).
    fn answer_committed(&mut self, seen: &HashSet<&str>) {
        let waiting = std::mem::take(&mut self.waiting);
        for w in waiting {
            if seen.contains(w.notification.id.as_str()) {
                let _ = w.reply.send(());
            } else {
                self.waiting.push(w);
            }
        }
    }

    fn share_window(&mut self, cursor: Option<&Value>, parsed: &Cursor) {
        if self.window_of.as_ref() != cursor {
            self.inbox.seen.replace(parsed.seen.iter().cloned());
            self.window_of = cursor.cloned();
        }
    }
}

impl Source for ZuoraSource {
    async fn poll(&mut self, cursor: Option<&Value>) -> Result<Polled, HandlerError> {
        let mut cur = Cursor::read(cursor)?;
        self.share_window(cursor, &cur);
        self.take_callouts().await;
        // Retries of notifications committed before are answered at once.
        {
            let seen: HashSet<&str> = cur.seen.iter().map(String::as_str).collect();
            let before = self.waiting.len();
            self.answer_committed(&seen);
            SourceCounters::bump(
                &self.counters.0.duplicates,
                (before - self.waiting.len()) as u64,
            );
        }
        let mut candidates: Vec<Candidate> = self
            .waiting
            .iter()
            .map(|w| Candidate {
                notification: w.notification.clone(),
                raw: w.raw.clone(),
                from_history: false,
                unreadable: None,
            })
            .collect();
        let mut history_cursor = cur.clone();
        let mut history_read = false;
        if self.history_due() {
            match self.read_history(&mut history_cursor).await {
                Ok(rows) => {
                    history_read = true;
                    candidates.extend(rows);
                }
                // Callouts that arrived are not held back by the history (a tenant may not
                // grant its API): read again at the next interval. An outage fails the
                // callouts' own reads below anyway.
                Err(e) if !candidates.is_empty() => {
                    warn!(error = %e, "callout history not read; the callouts go on");
                    SourceCounters::bump(&self.counters.0.failed_history_reads, 1);
                }
                Err(e) => {
                    SourceCounters::bump(&self.counters.0.failed_history_reads, 1);
                    self.last_history = Some(Instant::now());
                    return Err(e);
                }
            }
            self.last_history = Some(Instant::now());
        }
        // Each notification once: not committed before, not twice in this batch.
        let mut taken: HashSet<String> = cur.seen.iter().cloned().collect();
        candidates.retain(|c| taken.insert(c.notification.id.clone()));
        let mut records = Vec::with_capacity(candidates.len());
        let mut pending = Pending::default();
        // The batch is committed up to the first notification Zuora could not answer for;
        // that one and the rest wait for the next poll (their reads still in flight are
        // dropped). Were a failed read to cost the whole batch, a Zuora failing one call in
        // ten would fail nearly every batch of more than a few notifications, and the source
        // would stall while callouts piled up.
        let mut cut_short = None;
        {
            let fetches: Vec<_> = candidates.iter().map(|c| self.map_one(c)).collect();
            let mut fetched = futures::stream::iter(fetches).buffered(FETCHES_AT_ONCE);
            let mut each = candidates.iter();
            while let (Some(r), Some(c)) = (fetched.next().await, each.next()) {
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        cut_short = Some(e);
                        break;
                    }
                };
                if r.topic == self.opts.dead_letter_topic {
                    warn!(notification_id = %c.notification.id, "Zuora notification dead-lettered");
                    pending.dead_letters += 1;
                } else {
                    pending.events += 1;
                }
                if c.from_history {
                    pending.from_history += 1;
                } else {
                    pending.callouts += 1;
                }
                cur.remember(&c.notification.id, self.opts.window);
                records.push(r);
            }
        }
        if let Some(e) = cut_short {
            if records.is_empty() {
                return Err(e);
            }
            warn!(error = %e, committed = records.len(), left = candidates.len() - records.len(), "Zuora did not answer for a notification; the batch is committed up to it");
            // History rows past the cut are read again, at the next poll: the mark stays.
            if history_read && candidates[records.len()..].iter().any(|c| c.from_history) {
                self.last_history = None;
            }
            history_read = false;
        }
        if pending.from_history > 0 {
            info!(
                count = pending.from_history,
                "callouts caught by the history poll"
            );
        }
        // Counted once committed: a poll made again after an aborted transaction replaces it.
        self.pending = pending;
        if history_read {
            cur.history_from = history_cursor.history_from;
        }
        debug!(
            records = records.len(),
            waiting = self.waiting.len(),
            "zuora poll"
        );
        let cursor = serde_json::to_value(&cur).map_err(|e| {
            HandlerError::permanent(format!("zuora source cursor cannot be written: {e}"))
        })?;
        Ok(Polled {
            records,
            cursor,
            more: true,
        })
    }

    fn committed(&mut self, cursor: &Value) {
        let Ok(cur) = Cursor::read(Some(cursor)) else {
            return;
        };
        self.share_window(Some(cursor), &cur);
        let seen: HashSet<&str> = cur.seen.iter().map(String::as_str).collect();
        self.answer_committed(&seen);
        let p = std::mem::take(&mut self.pending);
        let c = &self.counters.0;
        SourceCounters::bump(&c.callouts, p.callouts);
        SourceCounters::bump(&c.from_history, p.from_history);
        SourceCounters::bump(&c.events, p.events);
        SourceCounters::bump(&c.dead_letters, p.dead_letters);
    }

    /// The callouts Zuora sent that are not committed yet (the rest of a batch cut at a read
    /// Zuora could not answer).
    fn behind(&self) -> Option<u64> {
        Some(self.waiting.len() as u64)
    }
}
