//! The one way l2f writes to Kafka: idempotent, acks=all, keyed, with trace context, and
//! every send awaited until the broker has it.
//!
//! **How it stays fast:** records go straight into librdkafka's queue (a
//! [`ThreadedProducer`], whose own thread serves the delivery reports); each record carries
//! a small ticket that the delivery callback resolves. [`Producer::send_all`] keeps one
//! shared window per call instead of a future and a channel per record, and wakes its caller
//! only when room appears or the last record is in. Batching is librdkafka's own (`linger.ms`,
//! `batch.size`, left at their defaults as kcat uses them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::{oneshot, Notify};

use crate::error::{BusError, Result};
use crate::headers::{TraceParent, TRACEPARENT};
use crate::record::OutRecord;

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition the key mapped to.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

const UNDELIVERED: Delivered = Delivered {
    partition: -1,
    offset: -1,
};

/// What the delivery callback resolves for one record.
enum Ticket {
    /// A lone [`Producer::send`]: its caller awaits the answer.
    One(oneshot::Sender<Result<Delivered, KafkaError>>),
    /// Record `index` of a [`Producer::send_all`] call.
    Many { window: Arc<Window>, index: usize },
}

/// The state one `send_all` call shares with the delivery callback.
struct Window {
    /// Records handed to librdkafka and not yet reported.
    in_flight: AtomicUsize,
    /// Where each record landed, by input position.
    delivered: Mutex<Vec<Delivered>>,
    /// The first failure, by input position.
    failed: Mutex<Option<(usize, KafkaError)>>,
    /// The caller waits until no more than this many are in flight.
    wake_at: AtomicUsize,
    /// Woken when the reports bring `in_flight` down to `wake_at`.
    room: Notify,
}

impl Window {
    fn report(&self, index: usize, result: Result<Delivered, KafkaError>) {
        match result {
            Ok(d) => {
                if let Some(slot) = lock(&self.delivered).get_mut(index) {
                    *slot = d;
                }
            }
            Err(e) => {
                let mut failed = lock(&self.failed);
                if failed.as_ref().is_none_or(|(i, _)| index < *i) {
                    *failed = Some((index, e));
                }
            }
        }
        let left = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        // Woken once the window has drained to the mark, not on every report: a wake-up per
        // record (a futex call each) was most of what a full window cost.
        if left <= self.wake_at.load(Ordering::SeqCst) {
            self.room.notify_one();
        }
    }

    /// Waits until at most `mark` records are in flight.
    async fn drained_to(&self, mark: usize) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Stored before the check: a report either sees the mark or is seen by the check.
            self.wake_at.store(mark, Ordering::SeqCst);
            if self.in_flight.load(Ordering::SeqCst) <= mark {
                return;
            }
            notified.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The producer's context: turns librdkafka's delivery reports into answers for the callers.
struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let answer = match result {
            Ok(m) => Ok(Delivered {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        match *ticket {
            Ticket::One(tx) => {
                let _ = tx.send(answer);
            }
            Ticket::Many { window, index } => window.report(index, answer),
        }
    }
}

/// An idempotent producer (no duplicates or reordering from its own retries) whose sends
/// resolve only once every in-sync replica has the record.
#[derive(Clone)]
pub struct Producer {
    inner: ThreadedProducer<Reports>,
    timeout: Duration,
}

/// Pause before offering a record again while librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(2);

impl Producer {
    /// Creates a producer from a client configuration (see [`crate::KafkaConfig::client_config`]).
    pub fn new(client: &ClientConfig) -> Result<Self> {
        let mut c = client.clone();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "60000");
        let inner: ThreadedProducer<Reports> = c
            .create_with_context(Reports)
            .map_err(|e| BusError::kafka("create producer", e))?;
        Ok(Producer {
            inner,
            timeout: Duration::from_secs(60),
        })
    }

    /// Hands `record` to librdkafka with `ticket`, waiting (up to the producer's timeout)
    /// while its queue is full.
    async fn enqueue(&self, record: &OutRecord, ticket: Box<Ticket>) -> Result<()> {
        let trace;
        let mut headers = record.owned_headers();
        if !record.has_header(TRACEPARENT) {
            trace = TraceParent::new_root().to_bytes();
            headers = headers.insert(rdkafka::message::Header {
                key: TRACEPARENT,
                value: Some(&trace[..]),
            });
        }
        let mut br: BaseRecord<'_, [u8], [u8], Box<Ticket>> =
            BaseRecord::with_opaque_to(&record.topic, ticket).headers(headers);
        if let Some(k) = &record.key {
            br = br.key(k.as_slice());
        }
        if let Some(p) = &record.payload {
            br = br.payload(p.as_slice());
        }
        if let Some(p) = record.partition {
            br = br.partition(p);
        }
        let mut deadline: Option<Instant> = None;
        loop {
            match self.inner.send(br) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    let until = *deadline.get_or_insert_with(|| Instant::now() + self.timeout);
                    if Instant::now() >= until {
                        return Err(BusError::kafka(
                            format!("produce to {}", record.topic),
                            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        ));
                    }
                    br = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => {
                    return Err(BusError::kafka(format!("produce to {}", record.topic), e))
                }
            }
        }
    }

    /// Sends one record and waits for the broker's acknowledgement. A `traceparent` header is
    /// added when the record has none, starting a new trace.
    pub async fn send(&self, record: &OutRecord) -> Result<Delivered> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, Box::new(Ticket::One(tx))).await?;
        match rx.await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(BusError::kafka(format!("produce to {}", record.topic), e)),
            // The report is always sent, even for purged records; a lost one is a client bug.
            Err(_) => Err(BusError::kafka(
                format!("produce to {}", record.topic),
                KafkaError::Canceled,
            )),
        }
    }

    /// Sends many records with up to `window` in flight, keeping per-partition order (the
    /// idempotent producer never reorders); returns the deliveries in input order.
    ///
    /// Every record handed to the client is reported before this returns: on a failure no
    /// further record is sent, the ones in flight are waited for, and the error of the
    /// earliest failed record is returned.
    pub async fn send_all(&self, records: &[OutRecord], window: usize) -> Result<Vec<Delivered>> {
        let limit = window.max(1);
        let shared = Arc::new(Window {
            in_flight: AtomicUsize::new(0),
            delivered: Mutex::new(vec![UNDELIVERED; records.len()]),
            failed: Mutex::new(None),
            wake_at: AtomicUsize::new(0),
            room: Notify::new(),
        });
        let mut refused = None;
        for (index, record) in records.iter().enumerate() {
            if shared.in_flight.load(Ordering::SeqCst) >= limit {
                // A full window refills once half of it is delivered (one wake-up per half
                // window); a window of one still sends one record at a time.
                shared.drained_to(limit / 2).await;
            }
            if lock(&shared.failed).is_some() {
                break;
            }
            shared.in_flight.fetch_add(1, Ordering::SeqCst);
            let ticket = Box::new(Ticket::Many {
                window: shared.clone(),
                index,
            });
            if let Err(e) = self.enqueue(record, ticket).await {
                // Not handed over: no report will come for it.
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                refused = Some((index, e));
                break;
            }
        }
        shared.drained_to(0).await;
        let failed = lock(&shared.failed).take();
        match (failed, refused) {
            (Some((i, e)), r) if r.as_ref().is_none_or(|(j, _)| i < *j) => Err(BusError::kafka(
                format!("produce to {}", records[i].topic),
                e,
            )),
            (_, Some((_, e))) => Err(e),
            _ => Ok(std::mem::take(&mut *lock(&shared.delivered))),
        }
    }

    /// Waits until every queued record is delivered (or the timeout passes).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        flush(&self.inner, timeout).map_err(|e| BusError::kafka("flush producer", e))
    }
}

/// Waits until every record the producer holds is delivered. rust-rdkafka's `flush` (and so
/// its `commit_transaction`, which flushes first) polls the producer's event queue in 100 ms
/// steps, and a `ThreadedProducer`'s own thread takes the delivery reports from under it — so
/// every transaction waited out a whole step: ~100 ms per transaction whatever its size, the
/// floor of every exactly-once hop. Here a zero-timeout flush wakes the brokers to send what is
/// lingering, then the count of undelivered records is watched every half millisecond; the
/// commit's own flush then finds nothing left and returns at once. (librdkafka's `rd_kafka_flush`
/// with a timeout would wait on its condition variable, but the workspace forbids `unsafe`.)
pub(crate) fn flush<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    // Times out at once by design: it only cuts `linger.ms` short for what is queued.
    let _ = producer.flush(Duration::ZERO);
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}
