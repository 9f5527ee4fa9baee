//! The dead-letter topic: where a record goes when it cannot be handled, unchanged, with
//! headers that say why, where from and after how many attempts — and the way back
//! (redrive) once the cause is fixed.

use chrono::{SecondsFormat, Utc};

use crate::error::{HandlerError, Result};
use crate::headers::dlq as h;
use crate::producer::{Delivered, Producer};
use crate::record::{OutRecord, Record};

/// Writes dead letters for one consumer group.
#[derive(Clone)]
pub struct DeadLetters {
    producer: Producer,
    topic: String,
    group: String,
}

impl DeadLetters {
    /// Dead letters of `group`, written to `topic`.
    pub fn new(producer: Producer, topic: impl Into<String>, group: impl Into<String>) -> Self {
        DeadLetters {
            producer,
            topic: topic.into(),
            group: group.into(),
        }
    }

    /// The consumer group whose letters these are.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The dead letter for `record`.
    pub fn letter_for(&self, record: &Record, err: &HandlerError, attempts: u32) -> OutRecord {
        letter(record, err, attempts, &self.topic, &self.group)
    }

    /// Writes the dead letter and waits until the broker has it.
    pub async fn send(
        &self,
        record: &Record,
        err: &HandlerError,
        attempts: u32,
    ) -> Result<Delivered> {
        self.producer
            .send(&self.letter_for(record, err, attempts))
            .await
    }
}

/// The dead letter for `record`, bound for `topic`: same key, value and headers, plus the
/// `l2f.dlq.*` headers naming the error, the source position, the attempts and the group.
pub fn letter(
    record: &Record,
    err: &HandlerError,
    attempts: u32,
    topic: &str,
    group: &str,
) -> OutRecord {
    let mut headers = record.headers.clone();
    let mut add = |k: &str, v: String| headers.push((k.to_string(), Some(v.into_bytes())));
    add(h::ERROR_CLASS, err.class().to_string());
    add(h::ERROR_MESSAGE, err.message().to_string());
    add(h::SOURCE_TOPIC, record.topic.clone());
    add(h::SOURCE_PARTITION, record.partition.to_string());
    add(h::SOURCE_OFFSET, record.offset.to_string());
    add(h::ATTEMPTS, attempts.to_string());
    add(
        h::FAILED_AT,
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    add(h::CONSUMER_GROUP, group.to_string());
    OutRecord {
        topic: topic.to_string(),
        partition: None,
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers,
    }
}

/// A record read back from the dead-letter topic, with its reason decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter record itself (its own topic, partition and offset).
    pub record: Record,
    /// `permanent` or `transient`.
    pub error_class: String,
    /// Why it failed.
    pub error_message: String,
    /// Where it came from.
    pub source_topic: String,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// Attempts made.
    pub attempts: u32,
    /// When it failed.
    pub failed_at: String,
    /// The consumer group that failed it.
    pub consumer_group: String,
}

impl DeadLetter {
    /// Decodes the dead-letter headers; `None` if the record is not an l2f dead letter.
    pub fn parse(record: Record) -> Option<Self> {
        let s = |k: &str| record.header_str(k).map(str::to_string);
        Some(DeadLetter {
            error_class: s(h::ERROR_CLASS)?,
            error_message: s(h::ERROR_MESSAGE).unwrap_or_default(),
            source_topic: s(h::SOURCE_TOPIC)?,
            source_partition: s(h::SOURCE_PARTITION)?.parse().ok()?,
            source_offset: s(h::SOURCE_OFFSET)?.parse().ok()?,
            attempts: s(h::ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
            failed_at: s(h::FAILED_AT).unwrap_or_default(),
            consumer_group: s(h::CONSUMER_GROUP).unwrap_or_default(),
            record,
        })
    }

    /// Whether the letter holds a change of an app's feed that a source could not turn into an
    /// event (its source partition is negative): it cannot be redriven into Kafka, the fix
    /// belongs in the app.
    pub fn from_feed(&self) -> bool {
        self.source_partition < 0
    }

    /// The record to send back to its source topic: original key, value and headers, the
    /// dead-letter headers removed and the redrive count raised by one.
    pub fn redrive_record(&self) -> OutRecord {
        let count: u32 = self
            .record
            .header_str(h::REDRIVE_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers: Vec<_> = self
            .record
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with(h::PREFIX) && k != h::REDRIVE_COUNT)
            .cloned()
            .collect();
        headers.push((
            h::REDRIVE_COUNT.into(),
            Some((count + 1).to_string().into_bytes()),
        ));
        OutRecord {
            topic: self.source_topic.clone(),
            partition: None,
            key: self.record.key.clone(),
            payload: self.record.payload.clone(),
            headers,
        }
    }

    /// Where the letter sits in the dead-letter topic, as `PARTITION:OFFSET` — the form
    /// `l2f dlq redrive --position` takes.
    pub fn position(&self) -> String {
        format!("{}:{}", self.record.partition, self.record.offset)
    }

    /// A JSON line for `l2f dlq list`: position, key, reason, source, attempts and the payload's
    /// size (not its bytes, which may be Avro or hold personal data).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "position": self.position(),
            "dlq_partition": self.record.partition,
            "dlq_offset": self.record.offset,
            "key": self.record.key_str(),
            "error_class": self.error_class,
            "error_message": self.error_message,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
            "consumer_group": self.consumer_group,
            "payload_bytes": self.record.payload.as_ref().map_or(0, Vec::len),
        })
    }
}

/// Which dead letters to redrive.
#[derive(Debug, Clone, Default)]
pub struct RedriveFilter {
    /// Only these `(dlq partition, dlq offset)` pairs; empty means all.
    pub positions: Vec<(i32, i64)>,
    /// Only letters from this source topic.
    pub source_topic: Option<String>,
    /// Only letters whose error class is this.
    pub error_class: Option<String>,
}

impl RedriveFilter {
    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        (self.positions.is_empty()
            || self
                .positions
                .contains(&(letter.record.partition, letter.record.offset)))
            && self
                .source_topic
                .as_ref()
                .is_none_or(|t| *t == letter.source_topic)
            && self
                .error_class
                .as_ref()
                .is_none_or(|c| *c == letter.error_class)
    }
}

impl RedriveFilter {
    /// The requested positions no letter of `letters` has (a typo, or a letter in another
    /// dead-letter topic): a redrive that names them must fail rather than do less than asked.
    pub fn missing_positions(&self, letters: &[DeadLetter]) -> Vec<(i32, i64)> {
        self.positions
            .iter()
            .filter(|p| {
                !letters
                    .iter()
                    .any(|l| (l.record.partition, l.record.offset) == **p)
            })
            .copied()
            .collect()
    }
}

/// Sends the selected letters back to their source topics, in dead-letter order; returns how
/// many were redriven. Letters from an app's feed ([`DeadLetter::from_feed`]) are never sent. The dead-letter topic itself is left as it is (it is an audit trail).
pub async fn redrive(
    producer: &Producer,
    letters: &[DeadLetter],
    filter: &RedriveFilter,
) -> Result<usize> {
    let chosen: Vec<OutRecord> = letters
        .iter()
        .filter(|l| filter.matches(l) && !l.from_feed())
        .map(DeadLetter::redrive_record)
        .collect();
    producer.send_all(&chosen, 1).await?;
    Ok(chosen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(partition: i32, offset: i64) -> DeadLetter {
        let source = Record {
            topic: "leads".into(),
            partition: 0,
            offset: 7,
            key: Some(b"lead-1".to_vec()),
            payload: Some(b"x".to_vec()),
            headers: vec![],
            timestamp_ms: None,
        };
        let mut out = letter(&source, &HandlerError::permanent("bad"), 1, "dlq", "g");
        let record = Record {
            topic: out.topic.clone(),
            partition,
            offset,
            key: out.key.take(),
            payload: out.payload.take(),
            headers: out.headers,
            timestamp_ms: None,
        };
        DeadLetter::parse(record).expect("an l2f dead letter")
    }

    #[test]
    fn the_listed_position_is_what_redrive_position_takes() {
        let l = dead_letter(2, 5);
        assert_eq!(l.position(), "2:5");
        assert_eq!(l.to_json()["position"], "2:5");
    }

    #[test]
    fn positions_no_letter_has_are_reported() {
        let letters = [dead_letter(0, 1), dead_letter(0, 2)];
        let filter = RedriveFilter {
            positions: vec![(0, 2), (2, 5)],
            ..RedriveFilter::default()
        };
        assert_eq!(filter.missing_positions(&letters), vec![(2, 5)]);
    }

    #[test]
    fn a_letter_from_an_apps_feed_is_known_as_such() {
        let change = Record {
            topic: "customers-outbox".into(),
            partition: -1,
            offset: 17,
            key: Some(b"lead_1".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: vec![],
            timestamp_ms: None,
        };
        let out = letter(
            &change,
            &HandlerError::permanent("no"),
            1,
            "dlq",
            "customers",
        );
        let read = Record {
            topic: out.topic.clone(),
            partition: 0,
            offset: 0,
            key: out.key.clone(),
            payload: out.payload.clone(),
            headers: out.headers.clone(),
            timestamp_ms: None,
        };
        let l = DeadLetter::parse(read).unwrap();
        assert!(l.from_feed());
        assert!(!dead_letter(0, 1).from_feed());
    }
}
