//! The two sinks, both batch handlers over sObject Collections (up to 200 records a call,
//! [`l2f_bus::Handler::handle_batch`]), each record's own result sorted by [`verdict`]:
//! - [`LeadSink`]: `LeadCaptured` → `Lead` upserted by `L2f_Lead_Id__c`;
//! - [`MirrorSink`]: Zuora's subscription events → `Zuora__CustomerAccount__c` then
//!   `Zuora__Subscription__c`, each upserted by `Zuora__External_Id__c`;
//! - [`TrueUpSink`]: `UsageReported` above the seats bought (rule 9) → `L2f_True_Up__c`
//!   upserted by `L2f_True_Up_Id__c` = `<subscription>:<YYYY-MM>`; a report within the seats
//!   writes nothing.
//!
//! **Effectively-once**: an upsert by external id makes a redelivered record an update of
//! the record it created the first time. Within one call every external id is sent once
//! (Salesforce fails all records sharing a value with `DUPLICATE_VALUE`): records that share
//! one get the same outcome.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::{decode, decode_any};
use l2f_contracts::events::{LeadCaptured, SourceSystem};
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use serde_json::{json, Value};
use tracing::debug;

use crate::client::{SalesforceClient, MAX_RECORDS_PER_CALL};
use crate::mapping::{self, CUSTOMER_ACCOUNT, LEAD, SUBSCRIPTION, TRUE_UP};
use crate::verdict::{verdict, Answer, Upserted};

/// Counters of a sink's outcomes, readable while it runs (for the demo, metrics, tests).
#[derive(Debug, Clone, Default)]
pub struct SinkStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    updated: AtomicU64,
    skipped: AtomicU64,
    unavailable: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
    calls: AtomicU64,
}

impl SinkStats {
    /// Records Salesforce created.
    pub fn created(&self) -> u64 {
        self.0.created.load(Ordering::Relaxed)
    }
    /// Records Salesforce updated (already known by their external id).
    pub fn updated(&self) -> u64 {
        self.0.updated.load(Ordering::Relaxed)
    }
    /// Events the sink had nothing to write for (not its events).
    pub fn skipped(&self) -> u64 {
        self.0.skipped.load(Ordering::Relaxed)
    }
    /// Records handed back to wait because Salesforce was unavailable.
    pub fn unavailable(&self) -> u64 {
        self.0.unavailable.load(Ordering::Relaxed)
    }
    /// Records handed back for a bounded retry.
    pub fn transient(&self) -> u64 {
        self.0.transient.load(Ordering::Relaxed)
    }
    /// Records handed back for the dead-letter topic.
    pub fn permanent(&self) -> u64 {
        self.0.permanent.load(Ordering::Relaxed)
    }
    /// Collections calls made.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::Relaxed)
    }

    fn count<T>(&self, r: &Result<T, HandlerError>, done: impl Fn(&T) -> Option<bool>) {
        let c = &self.0;
        let counter = match r {
            Ok(t) => match done(t) {
                Some(true) => &c.created,
                Some(false) => &c.updated,
                None => &c.skipped,
            },
            Err(HandlerError::Transient { .. }) => &c.transient,
            Err(HandlerError::Unavailable { .. }) => &c.unavailable,
            Err(HandlerError::Permanent { .. }) => &c.permanent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn created(u: &Upserted) -> Option<bool> {
    Some(matches!(u, Upserted::Created(_)))
}

/// Upserts `bodies` (`(caller's index, record)`) of `sobject` by `field`, each external id
/// once per call and at most `batch` records a call; one outcome per caller's index.
async fn upsert_distinct(
    client: &SalesforceClient,
    stats: &SinkStats,
    (sobject, field): (&str, &str),
    bodies: Vec<(usize, Value)>,
    batch: usize,
) -> Vec<(usize, Result<Upserted, HandlerError>)> {
    // The last body of each external id wins; every index sharing it shares its outcome.
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, (Value, Vec<usize>)> = HashMap::new();
    let mut out = Vec::with_capacity(bodies.len());
    for (i, body) in bodies {
        let Some(key) = body[field].as_str().map(str::to_string) else {
            out.push((
                i,
                Err(HandlerError::permanent(format!(
                    "{sobject} record has no {field} to upsert by"
                ))),
            ));
            continue;
        };
        match by_key.get_mut(&key) {
            Some((b, idx)) => {
                *b = body;
                idx.push(i);
            }
            None => {
                order.push(key.clone());
                by_key.insert(key, (body, vec![i]));
            }
        }
    }
    for keys in order.chunks(batch.clamp(1, MAX_RECORDS_PER_CALL)) {
        let records: Vec<Value> = keys.iter().map(|k| by_key[k].0.clone()).collect();
        stats.0.calls.fetch_add(1, Ordering::Relaxed);
        let result = client.upsert_collection(sobject, field, &records).await;
        for (n, k) in keys.iter().enumerate() {
            let v = verdict(Answer::of(&result, n));
            if let Err(e) = &v {
                debug!(sobject, external_id = %k, error = %e, "Salesforce upsert failed");
            }
            for &i in &by_key[k].1 {
                out.push((i, v.clone()));
            }
        }
    }
    out
}

fn collect<T>(
    n: usize,
    parts: Vec<(usize, Result<T, HandlerError>)>,
) -> Vec<Result<T, HandlerError>> {
    let mut out: Vec<Option<Result<T, HandlerError>>> = (0..n).map(|_| None).collect();
    for (i, r) in parts {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(HandlerError::permanent(
                    "record not handled (a bug in the sink)",
                ))
            })
        })
        .collect()
}

/// The leads sink as an [`l2f_bus::Handler`]: decode, map (rule 2), upsert, classify.
pub struct LeadSink {
    client: Arc<SalesforceClient>,
    codec: Arc<Codec>,
    batch: usize,
    stats: SinkStats,
}

impl LeadSink {
    /// A sink over `client`; `batch` is the most leads per call (at most 200).
    pub fn new(client: Arc<SalesforceClient>, codec: Arc<Codec>, batch: usize) -> Self {
        LeadSink {
            client,
            codec,
            batch: batch.clamp(1, MAX_RECORDS_PER_CALL),
            stats: SinkStats::default(),
        }
    }

    /// Live counters of this sink.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    /// Decodes and upserts `records` (those that decode and are ready), one call per 200;
    /// one outcome per record, in order.
    pub async fn push(&self, records: &[Record]) -> Vec<Result<Upserted, HandlerError>> {
        let mut parts = Vec::new();
        let mut bodies = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match decode::<LeadCaptured>(&self.codec, r).and_then(|l| mapping::lead(&l)) {
                Ok(body) => bodies.push((i, body)),
                Err(e) => parts.push((i, Err(e))),
            }
        }
        parts.extend(upsert_distinct(&self.client, &self.stats, LEAD, bodies, self.batch).await);
        let out = collect(records.len(), parts);
        out.iter().for_each(|r| self.stats.count(r, created));
        out
    }
}

impl Handler for LeadSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(record))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandlerError>> {
        self.push(records)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect()
    }

    async fn probe(&self) -> bool {
        self.client.limits().await.is_ok()
    }
}

/// What the mirror did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirrored {
    /// Not an event the mirror writes (not from Zuora, or nothing to mirror).
    Skipped,
    /// The subscription record was upserted.
    Upserted(Upserted),
}

/// The billing mirror as an [`l2f_bus::Handler`]: Zuora's subscription events upserted into
/// the Zuora objects of Salesforce, customer accounts first (their ids are the
/// subscriptions' lookups).
pub struct MirrorSink {
    client: Arc<SalesforceClient>,
    codec: Arc<Codec>,
    batch: usize,
    stats: SinkStats,
}

impl MirrorSink {
    /// A sink over `client`; `batch` is the most records per call (at most 200).
    pub fn new(client: Arc<SalesforceClient>, codec: Arc<Codec>, batch: usize) -> Self {
        MirrorSink {
            client,
            codec,
            batch: batch.clamp(1, MAX_RECORDS_PER_CALL),
            stats: SinkStats::default(),
        }
    }

    /// Live counters of this sink (created/updated count subscription records).
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    /// Decodes and mirrors `records`: one call for their customer accounts (when any), one
    /// for their subscriptions; one outcome per record, in order. A subscription whose
    /// account failed gets the account's outcome and is not sent.
    pub async fn push(&self, records: &[Record]) -> Vec<Result<Mirrored, HandlerError>> {
        let mut parts: Vec<(usize, Result<Mirrored, HandlerError>)> = Vec::new();
        let mut mirrors = Vec::new();
        let mut profiles = Vec::new();
        let mut profile_idx = std::collections::HashSet::new();
        for (i, r) in records.iter().enumerate() {
            match decode_any(&self.codec, r) {
                Ok(AnyEvent::CommunicationProfileChanged(c))
                    if c.envelope.source == SourceSystem::Zuora =>
                {
                    profiles.push((i, c))
                }
                Ok(e) => match mapping::mirror(&e) {
                    Some(m) => mirrors.push((i, m)),
                    None => parts.push((i, Ok(Mirrored::Skipped))),
                },
                Err(e) => parts.push((i, Err(e))),
            }
        }
        let mut accounts: Vec<(usize, Value)> = mirrors
            .iter()
            .filter_map(|(i, m)| m.account.clone().map(|a| (*i, a)))
            .collect();
        // Finance changed a profile in Zuora: every customer account of that hub account
        // (one per entity) takes it. A record with no account mirrored yet changes nothing;
        // its SubscriptionCreated brings the profile Zuora holds then.
        for (i, c) in profiles {
            let soql = format!(
                "SELECT {} FROM {} WHERE L2f_Account_Id__c = '{}'",
                CUSTOMER_ACCOUNT.1,
                CUSTOMER_ACCOUNT.0,
                c.account_id.replace('\\', "\\\\").replace('\'', "\\'")
            );
            self.stats.0.calls.fetch_add(1, Ordering::Relaxed);
            match self.client.query_all(&soql).await {
                Err(e) => parts.push((i, verdict(Answer::call(&e)).map(|_| Mirrored::Skipped))),
                Ok(found) => {
                    let keys: Vec<&str> = found
                        .iter()
                        .filter_map(|a| a[CUSTOMER_ACCOUNT.1].as_str())
                        .collect();
                    if keys.is_empty() {
                        parts.push((i, Ok(Mirrored::Skipped)));
                    }
                    for key in keys {
                        profile_idx.insert(i);
                        accounts.push((
                            i,
                            json!({
                                "attributes": { "type": CUSTOMER_ACCOUNT.0 },
                                CUSTOMER_ACCOUNT.1: key,
                                "Communication_Profile__c": c.communication_profile.symbol(),
                            }),
                        ));
                    }
                }
            }
        }
        let mut account_of: HashMap<usize, Result<Upserted, HandlerError>> = HashMap::new();
        let mut profile_out: HashMap<usize, Result<Upserted, HandlerError>> = HashMap::new();
        if !accounts.is_empty() {
            account_of = upsert_distinct(
                &self.client,
                &self.stats,
                CUSTOMER_ACCOUNT,
                accounts,
                self.batch,
            )
            .await
            .into_iter()
            .filter_map(|(i, r)| {
                if !profile_idx.contains(&i) {
                    return Some((i, r));
                }
                // A profile change's outcome: every account of it done, or its first error.
                match profile_out.get(&i) {
                    Some(Err(_)) => {}
                    _ => {
                        profile_out.insert(i, r);
                    }
                }
                None
            })
            .collect();
        }
        parts.extend(
            profile_out
                .into_iter()
                .map(|(i, r)| (i, r.map(Mirrored::Upserted))),
        );
        let mut subs = Vec::new();
        for (i, mut m) in mirrors {
            match account_of.remove(&i) {
                Some(Err(e)) => parts.push((i, Err(e))),
                Some(Ok(a)) => {
                    m.subscription["Zuora__CustomerAccount__c"] = json!(a.id());
                    subs.push((i, m.subscription));
                }
                None => subs.push((i, m.subscription)),
            }
        }
        parts.extend(
            upsert_distinct(&self.client, &self.stats, SUBSCRIPTION, subs, self.batch)
                .await
                .into_iter()
                .map(|(i, r)| (i, r.map(Mirrored::Upserted))),
        );
        let out = collect(records.len(), parts);
        out.iter().for_each(|r| {
            self.stats.count(r, |m| match m {
                Mirrored::Skipped => None,
                Mirrored::Upserted(u) => created(u),
            })
        });
        out
    }
}

impl Handler for MirrorSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(record))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandlerError>> {
        self.push(records)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect()
    }

    async fn probe(&self) -> bool {
        self.client.limits().await.is_ok()
    }
}

/// What the true-up sink did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrueUp {
    /// Nothing to flag: billable users within the seats bought, or not a usage report.
    Nothing,
    /// The period's true-up record was upserted: `Created` the first time the subscription's
    /// period goes above its seats, `Updated` for a later report of the same period.
    Flagged(Upserted),
}

/// The true-up sink as an [`l2f_bus::Handler`]: usage reports above the seats bought
/// flagged in Salesforce, once per subscription and reporting period (rule 9).
pub struct TrueUpSink {
    client: Arc<SalesforceClient>,
    codec: Arc<Codec>,
    batch: usize,
    stats: SinkStats,
}

impl TrueUpSink {
    /// A sink over `client`; `batch` is the most records per call (at most 200).
    pub fn new(client: Arc<SalesforceClient>, codec: Arc<Codec>, batch: usize) -> Self {
        TrueUpSink {
            client,
            codec,
            batch: batch.clamp(1, MAX_RECORDS_PER_CALL),
            stats: SinkStats::default(),
        }
    }

    /// Live counters (created: new true-ups; updated: a period flagged again; skipped:
    /// reports within the seats).
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    /// Decodes `records` and upserts the true-ups they flag, one call per 200; one outcome
    /// per record, in order. Two reports of one period in one batch send the later one.
    pub async fn push(&self, records: &[Record]) -> Vec<Result<TrueUp, HandlerError>> {
        let mut parts: Vec<(usize, Result<TrueUp, HandlerError>)> = Vec::new();
        let mut bodies = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match decode_any(&self.codec, r) {
                Ok(AnyEvent::UsageReported(u)) => match mapping::true_up(&u) {
                    Ok(Some(body)) => bodies.push((i, body)),
                    Ok(None) => parts.push((i, Ok(TrueUp::Nothing))),
                    Err(e) => parts.push((i, Err(e))),
                },
                Ok(_) => parts.push((i, Ok(TrueUp::Nothing))),
                Err(e) => parts.push((i, Err(e))),
            }
        }
        parts.extend(
            upsert_distinct(&self.client, &self.stats, TRUE_UP, bodies, self.batch)
                .await
                .into_iter()
                .map(|(i, r)| (i, r.map(TrueUp::Flagged))),
        );
        let out = collect(records.len(), parts);
        out.iter().for_each(|r| {
            self.stats.count(r, |t| match t {
                TrueUp::Nothing => None,
                TrueUp::Flagged(u) => created(u),
            })
        });
        out
    }
}

impl Handler for TrueUpSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(record))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandlerError>> {
        self.push(records)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect()
    }

    async fn probe(&self) -> bool {
        self.client.limits().await.is_ok()
    }
}
