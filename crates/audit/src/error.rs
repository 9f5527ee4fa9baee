//! Errors of replay, export, verification and history; each names the thing at fault.

/// `Result` with [`AuditError`] as the default error.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading from Kafka failed.
    #[error(transparent)]
    Bus(#[from] l2f_bus::BusError),
    /// A range bound could not be parsed or resolved.
    #[error("range: {0}")]
    Range(String),
    /// Writing or reading an export file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file (`-` for standard output).
        path: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// An export file is not what `l2f replay` writes.
    #[error("{path}: not an l2f replay export: {reason}")]
    NotAnExport {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Avro container encoding failed.
    #[error("avro export: {0}")]
    Avro(String),
}

impl AuditError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<String>, cause: std::io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            cause,
        }
    }
}
