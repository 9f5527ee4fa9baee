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
    /// One configuration key has a value l2f cannot use: names the key, what is wrong, and
    /// (once known) where the value came from, so the operator knows which line to fix.
    #[error("configuration: {key}: {reason}{}", origin.as_ref().map(|o| format!(" ({o})")).unwrap_or_default())]
    Key {
        /// The dotted key, e.g. `kafka.bootstrap_servers`.
        key: String,
        /// What is wrong with it (never a secret's value).
        reason: String,
        /// Where the value came from (`in /etc/l2f/l2f.toml`, `from environment variable ...`).
        origin: Option<String>,
    },
    /// `apply` would create a topic with more replicas than the cluster has brokers.
    #[error("replication factor {wanted} is more than the {brokers} broker(s) of the cluster, for topic(s) {topics}")]
    ReplicationFactor {
        /// The topics concerned, comma-separated.
        topics: String,
        /// The replication factor asked for.
        wanted: i32,
        /// Brokers the cluster reports.
        brokers: usize,
    },
    /// The topic does not exist on the cluster.
    #[error("topic {0} does not exist on the cluster")]
    UnknownTopic(String),
    /// The cluster refused to create a topic.
    #[error("creating topic {topic}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code and what it means.
        reason: String,
    },
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
    /// An error about one configuration key; the origin is added by the loader, which knows it.
    pub fn key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        BusError::Key {
            key: key.into(),
            reason: reason.into(),
            origin: None,
        }
    }

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

    /// The error class: for a dead letter, one of [`crate::headers::dlq::ERROR_CLASSES`]
    /// (written to its headers); `unavailable` otherwise (such a record is never dead-lettered).
    pub fn class(&self) -> &'static str {
        use crate::headers::dlq::ERROR_CLASSES;
        match self {
            HandlerError::Permanent { .. } => ERROR_CLASSES[0],
            HandlerError::Transient { .. } => ERROR_CLASSES[1],
            // Never dead-lettered: an unavailable app makes the record wait.
            HandlerError::Unavailable { .. } => "unavailable",
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
        use l2f_secrets::SecretError as S;
        match e {
            S::Env { field, var, state } => {
                BusError::key(field, format!("environment variable {var} is {state}"))
            }
            S::File { field, path, cause } => {
                BusError::key(field, format!("cannot read secret file {path}: {cause}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_error_class_is_a_documented_class() {
        use crate::headers::dlq::ERROR_CLASSES;
        assert_eq!(HandlerError::permanent("x").class(), "permanent");
        assert_eq!(HandlerError::transient("x").class(), "transient");
        assert!(ERROR_CLASSES.contains(&HandlerError::permanent("x").class()));
        assert!(ERROR_CLASSES.contains(&HandlerError::transient("x").class()));
    }

    #[test]
    fn a_secret_error_becomes_a_key_error_naming_the_variable() {
        let e: BusError = l2f_secrets::SecretRef::Env {
            env: "L2F_TEST_NOT_SET_XYZ".into(),
        }
        .resolve("kafka.sasl.password")
        .unwrap_err()
        .into();
        assert_eq!(
            e.to_string(),
            "configuration: kafka.sasl.password: environment variable L2F_TEST_NOT_SET_XYZ is not set"
        );
    }
}
