//! Mock enterprise apps for l2f: HTTP servers that speak the shapes of the real
//! Salesforce, Zuora, Marketo and Mailgun APIs, plus the project's own customers app
//! and license service.
//!
//! What the crate guarantees:
//! - each app is one [`axum::Router`] built by `<app>::router(state)`, so tests drive
//!   it without sockets (`tower::ServiceExt::oneshot`) and [`server`] serves it on
//!   loopback over HTTP and HTTPS (certificate generated at start, CA written to a file);
//! - each app has exactly one error type implementing `IntoResponse`, rendering the
//!   real API's error body; a client's mistake never yields a 500 or a panic;
//! - state lives in memory, is inspectable at `/__admin/state`, and survives a restart
//!   when a SQLite file is configured ([`store`]);
//! - every app can be told to misbehave per route (latency, a status with
//!   Retry-After, a dropped connection, only the N-th request) by configuration or by
//!   `POST /__admin/faults` ([`kit::FaultRule`]);

pub mod clock;
pub mod country;
pub mod customers;
pub mod kit;
pub mod license;
pub mod mail;
pub mod marketo;
mod own;
pub mod salesforce;
pub mod server;
pub mod soql;
pub mod store;
pub mod tls;
pub mod zuora;

use serde::{Deserialize, Serialize};

/// The crate's error: what can stop a mock from starting or persisting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite store failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Saved state could not be read back.
    #[error("saved state of {app} is unreadable: {reason}")]
    Corrupt {
        /// The app whose state is bad.
        app: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// Certificate generation or TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Binding a port or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where one app listens. Port 0 picks a free port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Serve this app at all.
    pub enabled: bool,
    /// Plain HTTP port (0 = any free port).
    pub http_port: u16,
    /// HTTPS port (0 = any free port); none disables HTTPS for this app.
    pub https_port: Option<u16>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            enabled: true,
            http_port: 0,
            https_port: Some(0),
        }
    }
}
