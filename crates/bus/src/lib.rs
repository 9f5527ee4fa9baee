//! Kafka plumbing for l2f.
//!
//! What this crate guarantees, and the one condition each guarantee rests on:
//! - **At-least-once into an effect** ([`consumer`]): an offset is stored for commit only after
//!   the handler's effect succeeded or the record was written to the dead-letter topic, so a
//!   crash at any point redelivers and never loses a record. Handlers make the effect
//!   idempotent (the event id is the idempotency key) to turn this into effectively-once.
//! - **Per-key order**: records are keyed by their aggregate; one partition is handled by one
//!   worker, strictly in offset order, and retries happen in place.
//! - **Nothing dropped**: permanent failures and exhausted retries land in the dead-letter
//!   topic ([`dlq`]) with the original key, value and headers, plus headers saying why.
//! - **Exactly-once Kafka-to-Kafka** ([`transactional`]): output records and input offsets are
//!   committed in one transaction; a read_committed reader never sees a half-done batch.
//! - **One configuration for every cluster** ([`config`]): a real cluster with optional
//!   SASL/TLS, or the in-process embedded broker ([`embedded`]) when no bootstrap servers are set.

pub mod admin;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod embedded;
pub mod error;
pub mod headers;
pub mod producer;
pub mod reader;
pub mod record;
pub mod retry;
pub mod scheduler;
pub mod source;
pub mod topics;
pub mod trace;
pub mod transactional;

pub use config::{BusConfig, KafkaConfig};
pub use consumer::{ConsumerLoop, Handler, LoopStats};
pub use error::{BusError, HandlerError, Result};
pub use producer::Producer;
pub use record::{OutRecord, Record};
pub use tokio_util::sync::CancellationToken;
