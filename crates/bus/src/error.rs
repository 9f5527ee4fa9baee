//! Errors of the bus, and the error a handler returns to steer retries.

use std::time::Duration;

/// `Result` with [`BusError`] as the default error.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// What went wrong in the plumbing; every variant names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration is invalid; the message names the key and the problem.
    #[error("configuration: {0}")]
    Config(String),
    /// The cluster could not be reached within the deadline.
    #[error("kafka cluster at {bootstrap} unreachable: {reason}")]
    Unreachable {
        /// The bootstrap servers tried (never carries credentials).
        bootstrap: String,
        /// What the client reported.
        reason: String,
    },
    /// A Kafka client call failed.
    #[error("kafka {op}: {cause}")]
    Kafka {
        /// The operation that failed, e.g. "produce to orders".
        op: String,
        /// The client's error (in the message, not chained, so it prints once).
        cause: rdkafka::error::KafkaError,
    },
    /// The topic catalog is invalid.
    #[error("topic catalog {path}: {reason}")]
    Catalog {
        /// The catalog file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The OS error (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
}

impl BusError {
    /// Wraps a client error with the operation that produced it.
    pub fn kafka(op: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        BusError::Kafka {
            op: op.into(),
            cause: source,
        }
    }
}

/// A handler's verdict on a failed record, saying who is at fault:
/// - [`HandlerError::Permanent`]: the record is bad — dead-letter it at once;
/// - [`HandlerError::Unavailable`]: the app is unhealthy (no answer, 5xx, its API allocation
///   spent, our credentials refused) — the partition waits, paused, and the record is retried
///   without limit once a probe says the app is back; never dead-lettered, since a good record
///   must not be lost because its app was down;
/// - [`HandlerError::Transient`]: the app answered that this record cannot be taken *yet* (a
///   lock, an idempotency key in flight, a record it depends on not there yet) — retried in
///   place with backoff, dead-lettered as `transient` after `retry.max_attempts`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying a few times; the record may be at fault if it never succeeds.
    #[error("transient: {message}")]
    Transient {
        /// What failed.
        message: String,
        /// The server's Retry-After hint; the next attempt waits at least this long.
        retry_after: Option<Duration>,
    },
    /// The app cannot take any record now; retried until it can, never dead-lettered.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What failed (never a secret).
        message: String,
        /// The server's Retry-After hint; the next attempt waits at least this long.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: invalid data, a 4xx that is the record's fault.
    #[error("permanent: {message}")]
    Permanent {
        /// What is wrong, naming the field and value where there is one.
        message: String,
    },
}

impl HandlerError {
    /// A transient failure without a retry-after hint.
    pub fn transient(message: impl Into<String>) -> Self {
        HandlerError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A transient failure that the server asked to retry no sooner than `after`.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        HandlerError::Transient {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// The app is down or refuses everyone: wait and retry without limit.
    pub fn unavailable(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        HandlerError::Unavailable {
            message: message.into(),
            retry_after,
        }
    }

    /// A failure that retrying cannot mend.
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError::Permanent {
            message: message.into(),
        }
    }

    /// The error class written to the dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            HandlerError::Transient { .. } => "transient",
            HandlerError::Unavailable { .. } => "unavailable",
            HandlerError::Permanent { .. } => "permanent",
        }
    }

    /// The server's Retry-After hint, if the failure carries one.
    pub fn hint(&self) -> Option<Duration> {
        match self {
            HandlerError::Transient { retry_after, .. }
            | HandlerError::Unavailable { retry_after, .. } => *retry_after,
            HandlerError::Permanent { .. } => None,
        }
    }

    /// The bare message, without the class prefix.
    pub fn message(&self) -> &str {
        match self {
            HandlerError::Transient { message, .. }
            | HandlerError::Unavailable { message, .. }
            | HandlerError::Permanent { message } => message,
        }
    }
}

impl From<l2f_secrets::SecretError> for BusError {
    fn from(e: l2f_secrets::SecretError) -> Self {
        BusError::Config(e.to_string())
    }
}
