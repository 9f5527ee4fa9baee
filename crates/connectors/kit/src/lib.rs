//! What every l2f connector shares, so that each connector is a copy of one shape:
//!
//! - [`connector`]: the [`Connector`] trait (name, topics, endpoints, healthcheck, start),
//!   [`Registration`] — one line per connector in the registry `l2f run` and `l2f demo` walk —
//!   and the [`Context`] a connector starts its sinks and sources in;
//! - [`clock`]: the hub's one clock (`[clock]`: the wall clock or the mocks' simulated one),
//!   which every scheduler reads through [`Context::clock`];
//! - [`http`]: the clients' plumbing — tokens that refresh themselves, Retry-After, error
//!   bodies kept verbatim, and the one rule for failures that say nothing about the record:
//!   the app is unavailable, the record waits (never dead-lettered);
//! - [`record`]: events to records and back (the format itself is `l2f_contracts::record`),
//!   with the trace context carried from cause to effect.
//!
//! A connector crate keeps the same files: `config.rs` (its section), `client.rs` (its only
//! I/O), `mapping.rs` (pure: event ⇄ API body, the handbook's rules applied), `verdict.rs`
//! (the one `match` that sorts the app's answers), `sink.rs` and/or `source.rs`;
//! `tests/http.rs` against its mock and `tests/e2e.rs` on the real broker.

pub mod calls;
pub mod clock;
pub mod connector;
pub mod http;
pub mod record;

pub use connector::{
    join_all, Configured, Connector, Context, Endpoint, KitError, Metric, Pipeline, PipelineStats,
    PipelineView, Pipelines, Registration, Task, ViewCounts,
};
pub use http::ClientError;
