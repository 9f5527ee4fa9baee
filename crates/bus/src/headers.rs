//! Header names l2f writes, and W3C trace context so one trace follows a customer from the
//! web form to the license email across every topic.

use rand::Rng;

/// W3C Trace Context header (`00-<trace-id>-<parent-id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context vendor state, carried unchanged.
pub const TRACESTATE: &str = "tracestate";
/// The event's type name, e.g. `LeadCaptured`, so readers can route without decoding.
pub const EVENT_TYPE: &str = "l2f.event-type";
/// The id (registry) or fingerprint (single-object encoding) of the writer schema.
pub const SCHEMA_ID: &str = "l2f.schema-id";

/// Dead-letter headers, modelled on Kafka Connect's `__connect.errors.*`.
pub mod dlq {
    /// One of [`ERROR_CLASSES`]: `permanent` (the record is at fault: invalid, undecodable,
    /// refused by the app) or `transient` (retries exhausted).
    pub const ERROR_CLASS: &str = "l2f.dlq.error-class";
    /// Every value [`ERROR_CLASS`] takes. A record that cannot be decoded is `permanent`:
    /// there is no separate class for it (its message says `avro decoding ...` or
    /// `unknown frame magic ...`).
    pub const ERROR_CLASSES: [&str; 2] = ["permanent", "transient"];
    /// The handler's message, naming the field and value where there is one.
    pub const ERROR_MESSAGE: &str = "l2f.dlq.error-message";
    /// Topic the record was read from (where redrive sends it back).
    pub const SOURCE_TOPIC: &str = "l2f.dlq.source-topic";
    /// Partition it was read from.
    pub const SOURCE_PARTITION: &str = "l2f.dlq.source-partition";
    /// Offset it was read from.
    pub const SOURCE_OFFSET: &str = "l2f.dlq.source-offset";
    /// Attempts made before giving up.
    pub const ATTEMPTS: &str = "l2f.dlq.attempts";
    /// When it was dead-lettered (RFC 3339, UTC).
    pub const FAILED_AT: &str = "l2f.dlq.failed-at";
    /// The consumer group that failed it.
    pub const CONSUMER_GROUP: &str = "l2f.dlq.consumer-group";
    /// Prefix shared by all of the above; redrive strips these.
    pub const PREFIX: &str = "l2f.dlq.";
    /// How many times a record has been redriven (kept across redrives, for loop detection).
    pub const REDRIVE_COUNT: &str = "l2f.redrive-count";
}

/// A parsed W3C `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id shared by every span of the flow.
    pub trace_id: [u8; 16],
    /// 8-byte id of the span that produced the record.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// A new trace (a flow's first event), sampled.
    pub fn new_root() -> Self {
        let mut rng = rand::thread_rng();
        let mut t = TraceParent {
            trace_id: rng.gen(),
            span_id: rng.gen(),
            flags: 1,
        };
        if t.trace_id == [0; 16] {
            t.trace_id[15] = 1;
        }
        if t.span_id == [0; 8] {
            t.span_id[7] = 1;
        }
        t
    }

    /// A child span in the same trace: what a stage writes on the records it derives.
    pub fn child(&self) -> Self {
        let mut span_id: [u8; 8] = rand::thread_rng().gen();
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        TraceParent { span_id, ..*self }
    }

    /// Parses version 00 of the header; `None` for anything malformed (the W3C rule:
    /// an invalid traceparent is ignored and a new trace started).
    pub fn parse(s: &str) -> Option<Self> {
        // Version 00 is exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase: read in place, as
        // every consumed record's header is (no allocation on the loop's path).
        let b = s.trim().as_bytes();
        if b.len() != 55 || &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace = unhex::<16>(&b[3..35])?;
        let span = unhex::<8>(&b[36..52])?;
        let [flags] = unhex::<1>(&b[53..55])?;
        if trace == [0; 16] || span == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id: trace,
            span_id: span,
            flags,
        })
    }

    /// The header value (`00-<trace-id>-<span-id>-<flags>`) as bytes, without allocating:
    /// the producer writes one for every record that arrives without trace context.
    pub fn to_bytes(&self) -> [u8; 55] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        let mut put = |at: usize, bytes: &[u8]| {
            for (i, &x) in bytes.iter().enumerate() {
                out[at + 2 * i] = DIGITS[usize::from(x >> 4)];
                out[at + 2 * i + 1] = DIGITS[usize::from(x & 0x0f)];
            }
        };
        put(3, &self.trace_id);
        put(36, &self.span_id);
        put(53, &[self.flags]);
        out
    }

    /// The trace id as 32 lowercase hex digits (what log lines and trace UIs show).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.to_bytes();
        f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?)
    }
}

/// Lowercase hex of `b`, written in one allocation (the producer formats a trace id for every
/// record that has none, so this runs once per record).
fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 0x0f)] as char);
    }
    s
}

/// `2 * N` lowercase hex digits as bytes (W3C trace context allows no other case).
fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(s[2 * i])? << 4 | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_w3c_example() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(s).unwrap();
        assert_eq!(t.to_string(), s);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn rejects_malformed_and_all_zero_ids() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn child_keeps_trace_and_changes_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(root.trace_id, child.trace_id);
        assert_ne!(root.span_id, child.span_id);
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
    }
}
