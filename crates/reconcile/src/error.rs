//! Errors of a reconciliation; each names the app, the call or the record at fault.

/// `Result` with [`ReconcileError`] as the default error.
pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// What stopped a reconciliation (drift is not an error: it is the report).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the log failed.
    #[error(transparent)]
    Audit(#[from] l2f_audit::AuditError),
    /// Kafka failed (reading or re-emitting).
    #[error(transparent)]
    Bus(#[from] l2f_bus::BusError),
    /// An app could not be read.
    #[error("{app}: {message}")]
    App {
        /// The app.
        app: &'static str,
        /// The call and what went wrong.
        message: String,
    },
    /// An event to re-emit could not be found or framed.
    #[error("repair: {0}")]
    Repair(String),
}
