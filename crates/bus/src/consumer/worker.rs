//! One partition's worker: takes the partition's records in offset order, hands them to the
//! handler (one at a time, or in batches of distinct keys when the handler batches), and
//! sorts each failure by who is at fault:
//! - permanent (the record is bad): dead-lettered at once;
//! - transient (this record, not yet): retried in place with backoff, dead-lettered after
//!   `retry.max_attempts`;
//! - unavailable (the app is down): the partition is marked waiting (the poll thread pauses
//!   it), the handler's probe is asked after each backoff, and the records are retried once it
//!   answers — without limit, never dead-lettered.
//!
//! **Order per key holds under batching and retries**: a batch never holds two records with
//! the same key, and the offset committed is only ever the end of the prefix of finished
//! records, so a record retried after a later one succeeded belongs to another key.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::stats::{Held, Inbox, LoopStats, Waiting};
use super::{Batch, Busy};
use crate::dlq::DeadLetters;
use crate::error::HandlerError;
use crate::record::Record;
use crate::retry::{RetryPolicy, RetrySchedule};

/// The trace ids a log line about a record names: the record's own `traceparent` (its trace,
/// and the span that wrote it), so a line leads to the trace; empty without one.
struct TraceIds(Option<crate::headers::TraceParent>);

impl TraceIds {
    fn of(r: &Record) -> Self {
        TraceIds(crate::trace::parent_of(r))
    }
    fn trace(&self) -> String {
        self.0.map(|tp| tp.trace_id_hex()).unwrap_or_default()
    }
    fn span(&self) -> String {
        self.0
            .map(|tp| tp.span_id.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default()
    }
}

/// The effect of one record on the world (an API call, a database write...).
///
/// Return `Ok` only once the effect is durable. Make the effect idempotent (for example keyed
/// by the event id): after a crash the same record comes again.
pub trait Handler: Send + Sync + 'static {
    /// Applies `record`; the error's kind decides between retry, wait and dead letter.
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Most records one [`Handler::handle_batch`] call takes (the app's batch limit, e.g.
    /// 200 for Salesforce collections). 1, the default, means no batching.
    fn max_batch(&self) -> usize {
        1
    }

    /// Applies several records of one partition, all with distinct keys, in one call where
    /// the app allows it; answers one result per record, in order. The default handles them
    /// one by one.
    fn handle_batch(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Vec<Result<(), HandlerError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(records.len());
            for r in records {
                out.push(self.handle(r).await);
            }
            out
        }
    }

    /// Whether the app answers again, asked while a partition waits after an
    /// [`HandlerError::Unavailable`] (a cheap read, not the write that failed). The default,
    /// `true`, lets the record itself be the probe.
    fn probe(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }
}

pub(super) struct Worker<H> {
    pub(super) handler: Arc<H>,
    pub(super) policy: RetryPolicy,
    pub(super) dead_letters: DeadLetters,
    pub(super) stats: LoopStats,
    /// Next offset to read, as far as effects are done.
    pub(super) done: Arc<AtomicI64>,
    pub(super) cancel: CancellationToken,
    pub(super) busy: Arc<Busy>,
    /// Set while the partition waits for its app; the poll thread pauses it.
    pub(super) waiting: Arc<AtomicBool>,
}

/// The end of the chunk starting at `from`: at most `max` records, no key twice.
fn chunk_end(records: &[Record], from: usize, max: usize) -> usize {
    if max <= 1 {
        // One record per call: nothing to tell apart (and no set to build per record).
        return (from + 1).min(records.len()).max(from);
    }
    let mut keys: HashSet<&[u8]> = HashSet::new();
    let mut end = from;
    while end < records.len() && end - from < max {
        if let Some(k) = records[end].key.as_deref() {
            if !keys.insert(k) {
                break;
            }
        }
        end += 1;
    }
    end.max(from + 1).min(records.len())
}

impl<H: Handler> Worker<H> {
    pub(super) async fn run(self, rx: mpsc::Receiver<Batch>) {
        let mut rx = Inbox {
            rx,
            stats: self.stats.clone(),
        };
        let rx = &mut rx.rx;
        let max = self.handler.max_batch().max(1);
        loop {
            let mut batch = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                b = rx.recv() => match b { Some(b) => b, None => break },
            };
            // A batching handler takes what is already queued, up to its limit.
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.busy.set(true);
            let mut held = Held {
                stats: &self.stats,
                left: batch.len(),
            };
            let mut at = 0;
            while at < batch.len() && !self.cancel.is_cancelled() {
                let end = chunk_end(&batch, at, max);
                let finished = self.process(&batch[at..end]).await;
                if finished > 0 {
                    self.done
                        .store(batch[at + finished - 1].offset + 1, Ordering::SeqCst);
                }
                at += finished;
                // Stopped (revoked, shutting down): the rest is left uncommitted.
                if at < end {
                    break;
                }
            }
            // Released from the gauge once per batch, not per record (the counter is shared by
            // every worker); whatever was not finished is released by the guard all the same.
            held.finished(at);
            drop(held);
            self.busy.set(false);
            if self.cancel.is_cancelled() {
                break;
            }
        }
    }

    /// Calls the handler on `records`, catching a panic as a permanent failure of each.
    async fn call(&self, records: &[Record]) -> Vec<Result<(), HandlerError>> {
        self.stats.bump_calls();
        let n = records.len();
        let started = std::time::Instant::now();
        let handled = self.handler.handle_batch(records);
        let handled = match crate::trace::process_context(self.dead_letters.group(), records) {
            Some(cx) => futures::future::Either::Left(
                opentelemetry::trace::FutureExt::with_context(handled, cx),
            ),
            None => futures::future::Either::Right(handled),
        };
        let results = AssertUnwindSafe(handled)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic".into());
                vec![Err(HandlerError::permanent(format!("handler panicked: {what}"))); n]
            });
        self.stats.observe_call(started.elapsed());
        if results.len() == n {
            results
        } else {
            let msg = format!(
                "handler answered {} results for {n} records (a bug in the handler)",
                results.len()
            );
            vec![Err(HandlerError::permanent(msg)); n]
        }
    }

    /// Handles `records` (distinct keys, offset order) to the end: effect or dead letter.
    /// Returns how many of them, as a prefix, are finished: all of them, unless the worker was
    /// stopped while some waited for a retry.
    async fn process(&self, records: &[Record]) -> usize {
        let n = records.len();
        let first = self.call(records).await;
        // The common case, kept free of bookkeeping: every effect succeeded at once.
        if first.iter().all(Result::is_ok) {
            self.stats.add_handled(n as u64);
            return n;
        }
        let mut first = Some(first);
        let mut finished = vec![false; n];
        let mut attempts = vec![0u32; n];
        let mut pending: Vec<usize> = (0..n).collect();
        let mut backoff = self.policy.schedule();
        loop {
            let results = match first.take() {
                Some(results) => results,
                None => {
                    let again: Vec<Record> = pending.iter().map(|&i| records[i].clone()).collect();
                    self.call(&again).await
                }
            };
            let mut still = Vec::new();
            let mut hint: Option<Duration> = None;
            let mut outage: Option<String> = None;
            for (&i, result) in pending.iter().zip(results) {
                attempts[i] += 1;
                let rec = &records[i];
                let err = match result {
                    Ok(()) => {
                        self.stats.add_handled(1);
                        finished[i] = true;
                        continue;
                    }
                    Err(e) => e,
                };
                let give_up = match &err {
                    HandlerError::Permanent { .. } => true,
                    HandlerError::Transient { .. } => attempts[i] >= self.policy.max_attempts(),
                    HandlerError::Unavailable { .. } => false,
                };
                if give_up {
                    if !self.dead_letter(rec, &err, attempts[i]).await {
                        return prefix(&finished);
                    }
                    finished[i] = true;
                    continue;
                }
                hint = hint.max(err.hint());
                if let HandlerError::Unavailable { message, .. } = &err {
                    outage.get_or_insert_with(|| message.clone());
                } else {
                    let ids = TraceIds::of(rec);
                    warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, key = %rec.key_str(), trace_id = %ids.trace(), span_id = %ids.span(), attempt = attempts[i], error = %err, "transient failure; retrying");
                }
                still.push(i);
            }
            if still.is_empty() {
                return n;
            }
            self.stats.add_retries(still.len() as u64);
            pending = still;
            let waited = match outage {
                Some(why) => self.wait_for_app(&records[pending[0]], &why, hint).await,
                None => self.sleep(backoff.next_delay(hint)).await,
            };
            if !waited {
                self.stats.bump_abandoned();
                return prefix(&finished);
            }
        }
    }

    /// Sleeps `wait`; `false` if the worker was stopped meanwhile.
    async fn sleep(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    /// The app is down: mark the partition waiting (paused by the poll thread), back off, and
    /// ask the handler's probe until the app answers. `false` if the worker was stopped.
    async fn wait_for_app(&self, rec: &Record, why: &str, hint: Option<Duration>) -> bool {
        let _waiting = Waiting::start(&self.waiting, &self.stats);
        let ids = TraceIds::of(rec);
        warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, key = %rec.key_str(), trace_id = %ids.trace(), span_id = %ids.span(), error = %why, "app unavailable; partition paused until it answers");
        let mut schedule: RetrySchedule = self.policy.schedule();
        let mut hint = hint;
        let mut probes = 0u32;
        loop {
            if !self.sleep(schedule.next_delay(hint.take())).await {
                return false;
            }
            probes += 1;
            if self.handler.probe().await {
                info!(topic = %rec.topic, partition = rec.partition, probes, "app answers again; resuming");
                return true;
            }
        }
    }

    /// Writes the dead letter, retrying the write itself until it succeeds: a record is
    /// committed past only once it is safe somewhere.
    async fn dead_letter(&self, rec: &Record, err: &HandlerError, attempts: u32) -> bool {
        let mut schedule = self.policy.schedule();
        loop {
            match self.dead_letters.send(rec, err, attempts).await {
                Ok(d) => {
                    self.stats.bump_dead_lettered();
                    let ids = TraceIds::of(rec);
                    warn!(topic = %rec.topic, partition = rec.partition, offset = rec.offset, key = %rec.key_str(), trace_id = %ids.trace(), span_id = %ids.span(), dlq_partition = d.partition, dlq_offset = d.offset, class = err.class(), error = %err.message(), "record dead-lettered");
                    return true;
                }
                Err(e) => {
                    tracing::error!(topic = %rec.topic, offset = rec.offset, error = %e, "dead-letter write failed; retrying");
                    if !self.sleep(schedule.next_delay(None)).await {
                        self.stats.bump_abandoned();
                        return false;
                    }
                }
            }
        }
    }
}

/// How many of `finished`, from the start, are done.
fn prefix(finished: &[bool]) -> usize {
    finished.iter().take_while(|f| **f).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64, key: &str) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            key: Some(key.as_bytes().to_vec()),
            payload: None,
            headers: vec![],
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_chunk_never_holds_a_key_twice_and_respects_the_limit() {
        let recs: Vec<Record> = ["a", "b", "a", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, k)| rec(i as i64, k))
            .collect();
        assert_eq!(chunk_end(&recs, 0, 10), 2, "stops before the second a");
        assert_eq!(chunk_end(&recs, 2, 10), 6);
        assert_eq!(chunk_end(&recs, 2, 3), 5);
        assert_eq!(chunk_end(&recs, 0, 1), 1);
    }

    #[test]
    fn only_the_finished_prefix_counts() {
        assert_eq!(prefix(&[true, true, false, true]), 2);
        assert_eq!(prefix(&[false, true]), 0);
        assert_eq!(prefix(&[true, true]), 2);
    }
}
