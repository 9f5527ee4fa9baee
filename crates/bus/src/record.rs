//! Records as the bus hands them to handlers and takes them from producers: owned bytes,
//! so a record can cross tasks and outlive the client's buffers.

use rdkafka::message::{Headers, Message, OwnedHeaders};

/// A record read from Kafka, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// The aggregate key (account, lead, subscription id), if any.
    pub key: Option<Vec<u8>>,
    /// The value bytes (Avro, JSON...), if any.
    pub payload: Option<Vec<u8>>,
    /// Headers in their original order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Create or log-append time in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// Copies a record out of a client message.
    pub fn from_message<M: Message>(m: &M) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        }
    }

    /// The first value of header `name`, as bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The first value of header `name`, as UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The key as UTF-8 text (lossy), for logs and filters.
    pub fn key_str(&self) -> String {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition; `None` lets the key choose (the normal case: order per key).
    pub partition: Option<i32>,
    /// The aggregate key.
    pub key: Option<Vec<u8>>,
    /// The value bytes.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl OutRecord {
    /// A keyed record with no headers yet.
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<Vec<u8>>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        OutRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            payload: Some(payload.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Whether a header of that name is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k == name)
    }

    pub(crate) fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |h, (k, v)| {
                h.insert(rdkafka::message::Header {
                    key: k,
                    value: v.as_deref(),
                })
            },
        )
    }
}
