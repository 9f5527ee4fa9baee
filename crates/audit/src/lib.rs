//! Replay for audits: read an exact time or offset range of one or more topics without
//! disturbing anyone, export it, prove the export complete, and tell one customer's story.
//!
//! What this crate guarantees, and what each guarantee rests on:
//! - **Disturbs no consumer group** ([`l2f_bus::reader`]): partitions are *assigned*
//!   (never subscribed) under a fresh throwaway group id, and nothing is ever committed, so no group's offsets move and no
//!   rebalance happens.
//! - **Exact ranges** ([`range`]): a time bound is resolved per partition with Kafka's
//!   ListOffsets-by-timestamp (`offsetsForTimes`): the first record at or after `--from`,
//!   none after `--to`; the resolved offsets are written into the export, so it can be
//!   re-read record for record ([`verify`]).
//! - **Bounded memory** ([`replay::scan`]): records are streamed one at a time from the
//!   client's bounded prefetch queue to the output; nothing is collected, whatever the range.
//! - **Same range, same digest** ([`digest`]): a SHA-256 chain per partition over a defined
//!   byte form of each exported record, combined in (topic, partition) order, so the
//!   interleaving of partitions on the wire cannot change it.

pub mod digest;
pub mod error;
pub mod export;
pub mod history;
pub mod range;
pub mod render;
pub mod replay;
pub mod summary;
pub mod verify;

pub use error::{AuditError, Result};
pub use export::{ExportHeader, Format};
pub use range::{Bound, Filters, PartitionRange};
pub use summary::Summary;
