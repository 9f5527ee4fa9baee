//! From events to Kafka records and back, for connectors: the record format itself is
//! defined once in `l2f_contracts::record`; here it meets the bus's record types, the trace
//! context is carried from cause to effect, and a record that cannot be read becomes a
//! permanent failure that names where it sits.

use l2f_bus::headers::{TraceParent, TRACEPARENT};
use l2f_bus::{HandlerError, OutRecord, Record};
use l2f_contracts::record::{frame_to, AnyEvent, Framed, Keyed};
use l2f_contracts::{Codec, Event};

/// Header of a record `l2f reconcile --fix` re-emitted to repair an app's drift (value
/// `reconcile`): a copy of an event already in the log, for the sinks to apply its state
/// again. A sink whose effect is not state (an email) skips it, so a repair never repeats a
/// message to a person.
pub const REPAIR_HEADER: &str = "l2f.repair";

/// Whether `record` is a repair re-emitted by `l2f reconcile --fix` ([`REPAIR_HEADER`]).
pub fn is_repair(record: &Record) -> bool {
    record.header_str(REPAIR_HEADER).is_some()
}

/// `topic[partition]@offset`, how logs and dead letters name a record's place.
pub fn position(record: &Record) -> String {
    format!("{}[{}]@{}", record.topic, record.partition, record.offset)
}

/// A framed event as a record for the bus's producers.
pub fn out_record(f: Framed) -> OutRecord {
    let mut r = OutRecord::new(f.topic, f.key.into_bytes(), f.value);
    for (k, v) in f.headers {
        r = r.with_header(k, v);
    }
    r
}

/// The record of `event` on `topic`; with a `cause`, the record continues the cause's trace
/// (a child span of its `traceparent`), so one trace follows a customer across connectors.
/// A contract breach is a permanent failure naming the field and the value.
pub fn event_record<E: Keyed>(
    codec: &Codec,
    topic: &str,
    event: &E,
    cause: Option<&Record>,
) -> Result<OutRecord, HandlerError> {
    let framed = frame_to(codec, topic, event)
        .map_err(|e| HandlerError::permanent(format!("{} breaks its contract: {e}", E::NAME)))?;
    let mut r = out_record(framed);
    let caused_by = cause
        .and_then(|c| c.header_str(TRACEPARENT))
        .and_then(TraceParent::parse);
    // Inside an exported span of the cause's trace, that span is the parent (the next
    // connector's span becomes its child); otherwise a child id in the cause's trace.
    let parent = match (l2f_bus::trace::current(), caused_by) {
        (Some(span), Some(cause)) if span.trace_id == cause.trace_id => Some(span),
        (_, Some(cause)) => Some(cause.child()),
        (span, None) => span,
    };
    if let Some(tp) = parent {
        r = r.with_header(TRACEPARENT, tp.to_string());
    }
    Ok(r)
}

/// The partition a feed's dead letters name as their source: none (a feed is not a topic),
/// so `l2f dlq redrive` knows such a letter goes back to its app, not to Kafka.
pub const FEED_PARTITION: i32 = -1;

/// A dead letter for a change of an app's feed that cannot become an event: the raw change as
/// the value, the `l2f.dlq.*` headers naming why, and where it sits (`feed` as the source,
/// partition [`FEED_PARTITION`], the feed position as offset). A source writes it in the same
/// transaction as the events around it, so its cursor moves past the change only once the
/// letter is safe.
pub fn feed_letter(
    dead_letter_topic: &str,
    source: &str,
    feed: &str,
    position: i64,
    key: &str,
    raw: &serde_json::Value,
    reason: &str,
) -> OutRecord {
    let change = Record {
        topic: feed.to_string(),
        partition: FEED_PARTITION,
        offset: position,
        key: Some(key.as_bytes().to_vec()),
        payload: Some(serde_json::to_vec(raw).unwrap_or_default()),
        headers: vec![],
        timestamp_ms: None,
    };
    l2f_bus::dlq::letter(
        &change,
        &HandlerError::permanent(reason),
        1,
        dead_letter_topic,
        source,
    )
}

/// Decodes one event type; anything else, or bytes that do not decode, is a permanent failure
/// naming the record's position.
pub fn decode<E: Event>(codec: &Codec, record: &Record) -> Result<E, HandlerError> {
    let bytes = payload(record)?;
    codec.decode::<E>(bytes).map_err(|e| {
        HandlerError::permanent(format!(
            "record {} is not a decodable {}: {e}",
            position(record),
            E::NAME
        ))
    })
}

/// Decodes an event of any type (for topics that carry several).
pub fn decode_any(codec: &Codec, record: &Record) -> Result<AnyEvent, HandlerError> {
    let bytes = payload(record)?;
    AnyEvent::decode(codec, bytes).map_err(|e| {
        HandlerError::permanent(format!(
            "record {} is not a decodable event: {e}",
            position(record)
        ))
    })
}

fn payload(record: &Record) -> Result<&[u8], HandlerError> {
    record
        .payload
        .as_deref()
        .ok_or_else(|| HandlerError::permanent(format!("record {} has no value", position(record))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples;
    use l2f_contracts::record::{EVENT_TYPE_HEADER, SCHEMA_ID_HEADER};

    fn as_read(r: &OutRecord) -> Record {
        Record {
            topic: r.topic.clone(),
            partition: 0,
            offset: 7,
            key: r.key.clone(),
            payload: r.payload.clone(),
            headers: r.headers.clone(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn an_effect_continues_the_trace_of_its_cause() {
        let codec = Codec::new();
        let mut cause =
            as_read(&event_record(&codec, "orders", &examples::order_placed(), None).unwrap());
        let root = TraceParent::new_root();
        cause
            .headers
            .push((TRACEPARENT.into(), Some(root.to_string().into_bytes())));
        let effect = event_record(
            &codec,
            "subscriptions",
            &examples::subscription_created(),
            Some(&cause),
        )
        .unwrap();
        let tp = TraceParent::parse(
            std::str::from_utf8(
                effect
                    .headers
                    .iter()
                    .find(|(k, _)| k == TRACEPARENT)
                    .unwrap()
                    .1
                    .as_ref()
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(tp.trace_id, root.trace_id);
        assert_ne!(tp.span_id, root.span_id);
        assert!(effect.has_header(EVENT_TYPE_HEADER) && effect.has_header(SCHEMA_ID_HEADER));
        assert_eq!(
            effect.key.as_deref(),
            Some(examples::subscription_created().subscription_id.as_bytes())
        );
    }

    #[test]
    fn a_feed_letter_names_its_feed_position_and_reason() {
        let raw = serde_json::json!({"seq": 17, "type": "LeadCaptured"});
        let out = feed_letter(
            "dead-letters",
            "customers",
            "customers-outbox",
            17,
            "lead_1",
            &raw,
            "LeadCaptured.country: no (value: \"Narnia\")",
        );
        let read = Record {
            partition: 0,
            offset: 3,
            ..as_read(&out)
        };
        let l = l2f_bus::dlq::DeadLetter::parse(read).unwrap();
        assert_eq!(
            (l.source_topic.as_str(), l.source_partition, l.source_offset),
            ("customers-outbox", FEED_PARTITION, 17)
        );
        assert_eq!(l.error_class, "permanent");
        assert!(l.error_message.contains("Narnia"));
        assert_eq!(l.consumer_group, "customers");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(l.record.payload.as_deref().unwrap())
                .unwrap(),
            raw
        );
    }

    #[test]
    fn an_unreadable_record_is_permanent_and_named() {
        let codec = Codec::new();
        let mut r =
            as_read(&event_record(&codec, "leads", &examples::lead_captured(), None).unwrap());
        let e = decode::<l2f_contracts::events::OrderPlaced>(&codec, &r).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("leads[0]@7"), "{e}");
        r.payload = Some(b"garbage".to_vec());
        assert!(decode_any(&codec, &r)
            .unwrap_err()
            .message()
            .contains("leads[0]@7"));
        r.payload = None;
        assert!(decode_any(&codec, &r)
            .unwrap_err()
            .message()
            .contains("no value"));
    }
}
