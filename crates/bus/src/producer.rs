//! The one way l2f writes to Kafka: idempotent, acks=all, keyed, with trace context, and
//! every send awaited until the broker has it.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;

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

/// An idempotent producer (no duplicates or reordering from its own retries) whose sends
/// resolve only once every in-sync replica has the record.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    timeout: Duration,
}

impl Producer {
    /// Creates a producer from a client configuration (see [`crate::KafkaConfig::client_config`]).
    pub fn new(client: &ClientConfig) -> Result<Self> {
        let mut c = client.clone();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "60000");
        let inner: FutureProducer = c
            .create()
            .map_err(|e| BusError::kafka("create producer", e))?;
        Ok(Producer {
            inner,
            timeout: Duration::from_secs(60),
        })
    }

    /// Sends one record and waits for the broker's acknowledgement. A `traceparent` header is
    /// added when the record has none, starting a new trace.
    pub async fn send(&self, record: &OutRecord) -> Result<Delivered> {
        let trace;
        let mut headers = record.owned_headers();
        if !record.has_header(TRACEPARENT) {
            trace = TraceParent::new_root().to_string();
            headers = headers.insert(rdkafka::message::Header {
                key: TRACEPARENT,
                value: Some(trace.as_bytes()),
            });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic).headers(headers);
        if let Some(k) = &record.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(p) = &record.payload {
            fr = fr.payload(p.as_slice());
        }
        if let Some(p) = record.partition {
            fr = fr.partition(p);
        }
        match self.inner.send(fr, self.timeout).await {
            Ok(d) => Ok(Delivered {
                partition: d.partition,
                offset: d.offset,
            }),
            Err((e, _)) => Err(BusError::kafka(format!("produce to {}", record.topic), e)),
        }
    }

    /// Sends many records with up to `window` in flight, keeping per-partition order (the
    /// idempotent producer never reorders); returns the deliveries in input order.
    pub async fn send_all(&self, records: &[OutRecord], window: usize) -> Result<Vec<Delivered>> {
        let mut out = vec![
            Delivered {
                partition: -1,
                offset: -1
            };
            records.len()
        ];
        let mut pending = FuturesUnordered::new();
        let mut next = 0;
        while next < records.len() || !pending.is_empty() {
            while next < records.len() && pending.len() < window.max(1) {
                let i = next;
                let fut = self.send(&records[i]);
                pending.push(async move { (i, fut.await) });
                next += 1;
            }
            if let Some((i, r)) = pending.next().await {
                out[i] = r?;
            }
        }
        Ok(out)
    }

    /// Waits until every queued record is delivered (or the timeout passes).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner
            .flush(timeout)
            .map_err(|e| BusError::kafka("flush producer", e))
    }
}
