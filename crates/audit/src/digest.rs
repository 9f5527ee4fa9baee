//! The replay digest (`sha256-chain-v1`): the same range and filters give the same digest,
//! whatever order the brokers interleave partitions in.
//!
//! Bytes hashed for one record (integers big-endian; a missing timestamp is -1; a missing
//! key, value or header value is length -1 with no bytes):
//!
//! ```text
//! u32 len(topic) | topic | i32 partition | i64 offset | i64 timestamp_ms
//! | i32 len(key) | key | i32 len(value) | value
//! | u32 header count | per header: u32 len(name) | name | i32 len(value) | value
//! ```
//!
//! Per partition, a chain over its exported records in offset order:
//! `c_0 = 32 zero bytes`, `c_i = SHA-256(c_{i-1} || record_i)`. The replay digest is
//! SHA-256 of one line per partition of the range, in (topic, partition) order (topic names
//! compared as bytes), partitions with no exported record included:
//! `"{topic}\t{partition}\t{start}\t{end}\t{records}\t{hex(c_n)}\n"`.
//! The value is the record's raw bytes as stored in Kafka, so the digest proves the log,
//! not a rendering of it; `tools/xlang` recomputes it from an Avro export in Java and Python.

use sha2::{Digest, Sha256};

/// The name written beside every digest.
pub const ALGORITHM: &str = "sha256-chain-v1";

/// A record's parts, as the digest sees them.
pub struct RecordBytes<'a, H> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms), if any.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// Headers in order.
    pub headers: H,
}

fn opt(h: &mut Sha256, b: Option<&[u8]>) {
    match b {
        None => h.update((-1i32).to_be_bytes()),
        Some(b) => {
            h.update((b.len() as i32).to_be_bytes());
            h.update(b);
        }
    }
}

/// One step of a partition's chain: `SHA-256(prev || record bytes)`.
pub fn chain<'a, H>(prev: &[u8; 32], r: RecordBytes<'a, H>) -> [u8; 32]
where
    H: ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let mut h = Sha256::new();
    h.update(prev);
    h.update((r.topic.len() as u32).to_be_bytes());
    h.update(r.topic.as_bytes());
    h.update(r.partition.to_be_bytes());
    h.update(r.offset.to_be_bytes());
    h.update(r.timestamp_ms.unwrap_or(-1).to_be_bytes());
    opt(&mut h, r.key);
    opt(&mut h, r.value);
    h.update((r.headers.len() as u32).to_be_bytes());
    for (name, value) in r.headers {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        opt(&mut h, value);
    }
    h.finalize().into()
}

/// One partition's contribution to the replay digest.
pub struct PartitionChain<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Range start.
    pub start: i64,
    /// Range end (exclusive).
    pub end: i64,
    /// Records exported.
    pub records: u64,
    /// The chain's last value.
    pub chain: [u8; 32],
}

/// The replay digest over every partition of the range (sorted here).
pub fn combine(mut parts: Vec<PartitionChain<'_>>) -> String {
    parts.sort_by(|a, b| (a.topic.as_bytes(), a.partition).cmp(&(b.topic.as_bytes(), b.partition)));
    let mut h = Sha256::new();
    for p in parts {
        h.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                p.topic,
                p.partition,
                p.start,
                p.end,
                p.records,
                hex(&p.chain)
            )
            .as_bytes(),
        );
    }
    hex(&h.finalize())
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(
        offset: i64,
        value: Option<&'a [u8]>,
        headers: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> RecordBytes<'a, impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)>> {
        RecordBytes {
            topic: "orders",
            partition: 1,
            offset,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(b"acct-1"),
            value,
            headers: headers.iter().copied(),
        }
    }

    #[test]
    fn the_chain_of_a_known_record_is_pinned() {
        // Pinned so that the Java and Python re-computations (tools/xlang) and any later
        // change of this code must agree with the documented byte form.
        let c = chain(
            &[0; 32],
            rec(7, Some(b"v"), &[("l2f.event-type", Some(b"OrderPlaced"))]),
        );
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(6u32.to_be_bytes());
        h.update(b"orders");
        h.update(1i32.to_be_bytes());
        h.update(7i64.to_be_bytes());
        h.update(1_700_000_000_000i64.to_be_bytes());
        h.update(6i32.to_be_bytes());
        h.update(b"acct-1");
        h.update(1i32.to_be_bytes());
        h.update(b"v");
        h.update(1u32.to_be_bytes());
        h.update(14u32.to_be_bytes());
        h.update(b"l2f.event-type");
        h.update(11i32.to_be_bytes());
        h.update(b"OrderPlaced");
        assert_eq!(c, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn a_null_value_differs_from_an_empty_one_and_order_matters() {
        let a = chain(&[0; 32], rec(1, None, &[]));
        let b = chain(&[0; 32], rec(1, Some(b""), &[]));
        assert_ne!(a, b);
        let ab = chain(&chain(&[0; 32], rec(1, None, &[])), rec(2, None, &[]));
        let ba = chain(&chain(&[0; 32], rec(2, None, &[])), rec(1, None, &[]));
        assert_ne!(ab, ba);
    }

    #[test]
    fn the_digest_does_not_depend_on_the_order_partitions_are_listed() {
        let p = |partition, records| PartitionChain {
            topic: "t",
            partition,
            start: 0,
            end: 10,
            records,
            chain: [partition as u8; 32],
        };
        assert_eq!(
            combine(vec![p(0, 3), p(1, 4)]),
            combine(vec![p(1, 4), p(0, 3)])
        );
        assert_ne!(
            combine(vec![p(0, 3), p(1, 4)]),
            combine(vec![p(0, 3), p(1, 5)])
        );
    }
}
