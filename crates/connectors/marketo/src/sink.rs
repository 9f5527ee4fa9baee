//! The sink: `LeadCaptured` records → Marketo's createOrUpdate, up to 300 leads a call
//! ([`l2f_bus::Handler::handle_batch`]), each lead's own result sorted by [`verdict`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::decode;
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::Codec;
use tracing::debug;

use crate::client::{MarketoClient, MAX_LEADS_PER_CALL};
use crate::config::{ConfigError, MarketoConfig};
use crate::mapping::to_marketo;
use crate::verdict::{verdict, Answer, Pushed};

/// Counters of the sink's outcomes, readable while it runs (for the demo, metrics, tests).
#[derive(Debug, Clone, Default)]
pub struct SinkStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    updated: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
    calls: AtomicU64,
}

impl SinkStats {
    /// Leads Marketo created.
    pub fn created(&self) -> u64 {
        self.0.created.load(Ordering::Relaxed)
    }
    /// Leads Marketo updated (already known by the lookup field).
    pub fn updated(&self) -> u64 {
        self.0.updated.load(Ordering::Relaxed)
    }
    /// Leads answered 606 (rate limit); each is also counted as unavailable.
    pub fn rate_limited(&self) -> u64 {
        self.0.rate_limited.load(Ordering::Relaxed)
    }
    /// Leads handed back to wait because Marketo was unavailable.
    pub fn unavailable(&self) -> u64 {
        self.0.unavailable.load(Ordering::Relaxed)
    }
    /// Leads handed back for a bounded retry.
    pub fn transient(&self) -> u64 {
        self.0.transient.load(Ordering::Relaxed)
    }
    /// Leads handed back for the dead-letter topic.
    pub fn permanent(&self) -> u64 {
        self.0.permanent.load(Ordering::Relaxed)
    }
    /// Calls made to Marketo's leads endpoint.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::Relaxed)
    }
}

/// The Marketo push as an [`l2f_bus::Handler`]: decode, map, push, classify.
pub struct MarketoSink {
    client: MarketoClient,
    codec: Arc<Codec>,
    lookup_field: String,
    rate_window: Duration,
    batch: usize,
    stats: SinkStats,
}

impl MarketoSink {
    /// A sink over an existing client; `rate_window` is the wait a 606 asks for, `batch` the
    /// most leads per call (at most 300).
    pub fn new(
        client: MarketoClient,
        codec: Arc<Codec>,
        lookup_field: impl Into<String>,
        rate_window: Duration,
        batch: usize,
    ) -> Self {
        MarketoSink {
            client,
            codec,
            lookup_field: lookup_field.into(),
            rate_window,
            batch: batch.clamp(1, MAX_LEADS_PER_CALL),
            stats: SinkStats::default(),
        }
    }

    /// A sink from configuration (validated, secret resolved).
    pub fn from_config(cfg: &MarketoConfig, codec: Arc<Codec>) -> Result<Self, ConfigError> {
        Ok(MarketoSink::new(
            cfg.client()?,
            codec,
            cfg.lookup_field.clone(),
            cfg.rate_window,
            cfg.batch_size,
        ))
    }

    /// Live counters of this sink.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    fn count(&self, r: &Result<Pushed, HandlerError>) {
        let c = &self.stats.0;
        let counter = match r {
            Ok(Pushed::Created(_)) => &c.created,
            Ok(Pushed::Updated(_)) => &c.updated,
            Err(HandlerError::Transient { .. }) => &c.transient,
            Err(HandlerError::Unavailable { message, .. }) => {
                if message.contains("606") {
                    c.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                &c.unavailable
            }
            Err(HandlerError::Permanent { .. }) => &c.permanent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Decodes and pushes `records` in one call (those that decode and are ready for
    /// Marketo); one outcome per record, in order.
    pub async fn push(&self, records: &[Record]) -> Vec<Result<Pushed, HandlerError>> {
        let mut out: Vec<Option<Result<Pushed, HandlerError>>> = vec![None; records.len()];
        let mut bodies = Vec::new();
        let mut sent = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match decode::<LeadCaptured>(&self.codec, r).and_then(|l| to_marketo(&l)) {
                Ok(body) => {
                    bodies.push(body);
                    sent.push(i);
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if !bodies.is_empty() {
            self.stats.0.calls.fetch_add(1, Ordering::Relaxed);
            let result = self.client.push_leads(&bodies, &self.lookup_field).await;
            for (n, &i) in sent.iter().enumerate() {
                let v = verdict(Answer::of(&result, n), self.rate_window);
                if let Err(e) = &v {
                    debug!(lead = %records[i].key_str(), error = %e, "Marketo push failed");
                }
                out[i] = Some(v);
            }
        }
        let out: Vec<Result<Pushed, HandlerError>> = out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(HandlerError::permanent("lead not pushed"))))
            .collect();
        out.iter().for_each(|r| self.count(r));
        out
    }
}

impl Handler for MarketoSink {
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
        self.client.healthcheck().await.is_ok()
    }
}
