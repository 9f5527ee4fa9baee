//! Errors of the contracts crate: each names the event, the field and the value at fault.

use thiserror::Error;

/// A schema file could not be read or is not a valid Avro schema.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SchemaError {
    /// The text is not JSON.
    #[error("schema is not valid JSON: {0}")]
    Json(String),
    /// A type name refers to nothing defined.
    #[error("unknown type {0:?}")]
    UnknownType(String),
    /// The JSON is not a valid Avro schema.
    #[error("invalid schema: {0}")]
    Invalid(String),
    /// A schema file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A value that breaks a contract: the path of the field, the value, and the rule.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{field}: {reason} (value: {value})")]
pub struct Violation {
    /// Dotted path, starting with the event name (`LeadCaptured.country`).
    pub field: String,
    /// The offending value as text (`"UK"`, `missing`).
    pub value: String,
    /// The rule broken.
    pub reason: String,
}

impl Violation {
    /// Builds a violation.
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Violation {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Everything the codec, validation and registry can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A schema is invalid.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A record breaks the contract; nothing was encoded.
    #[error("invalid event: {}", join(.0))]
    Invalid(Vec<Violation>),
    /// The frame is shorter than its header.
    #[error("frame of {len} bytes is too short for a {format} header of {needed} bytes")]
    ShortFrame {
        /// Framing expected.
        format: &'static str,
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The first bytes are neither single-object (C3 01) nor Confluent (00) magic.
    #[error("unknown frame magic {0:02x?}")]
    BadMagic(Vec<u8>),
    /// No writer schema is known for this fingerprint.
    #[error("no writer schema known for fingerprint {0} (CRC-64-AVRO, signed)")]
    UnknownFingerprint(i64),
    /// No writer schema is known for this registry id.
    #[error("no writer schema known for schema registry id {0}")]
    UnknownSchemaId(u32),
    /// A writer schema was found but the reader cannot read it.
    #[error("{event}: reader cannot read data written with this writer schema: {}", .problems.join("; "))]
    Incompatible {
        /// Reader's event name.
        event: String,
        /// Incompatibilities with their paths.
        problems: Vec<String>,
    },
    /// The bytes decode to another event than the one asked for.
    #[error("expected a {expected} but the writer schema is {found}")]
    WrongEvent {
        /// The type asked for.
        expected: String,
        /// The writer schema's record name.
        found: String,
    },
    /// Avro encoding failed (a value does not fit its schema).
    #[error("avro encoding of {event} failed: {message}")]
    Encode {
        /// Event name.
        event: String,
        /// The Avro library's message.
        message: String,
    },
    /// Avro decoding failed (corrupt or truncated bytes).
    #[error("avro decoding of {event} failed: {message}")]
    Decode {
        /// Event name.
        event: String,
        /// The Avro library's message.
        message: String,
    },
    /// The event name is not in the catalog.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// Schema registry failure.
    #[error("schema registry: {0}")]
    Registry(String),
}

fn join(v: &[Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
