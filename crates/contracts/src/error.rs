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
    #[error("unknown frame magic {}: not an Avro frame (single-object encoding starts c3 01, Confluent framing 00)", magic(.0))]
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

/// The bytes in hex (`4a 44`), and as text when they are printable (`"JD"`): a producer
/// that wrote JSON or plain text is recognised at a glance.
fn magic(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hex = hex.join(" ");
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{hex} ({:?} as text)", String::from_utf8_lossy(bytes))
    } else {
        hex
    }
}

fn join(v: &[Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_magic_prints_hex_and_the_text_it_reads_as() {
        assert_eq!(
            Error::BadMagic(vec![0x7b, 0x22]).to_string(),
            "unknown frame magic 7b 22 (\"{\\\"\" as text): not an Avro frame (single-object encoding starts c3 01, Confluent framing 00)"
        );
        assert!(Error::BadMagic(vec![0xc3, 0x02])
            .to_string()
            .starts_with("unknown frame magic c3 02: "));
    }
}
