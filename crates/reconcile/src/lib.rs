//! Reconciliation: the event log folded into the expected state of every account and
//! subscription, compared with what the apps hold, and the drift repaired by re-emitting
//! events through the normal connectors.
//!
//! - [`log`]: the topics read like `l2f replay` reads them (the audit crate's ranges and
//!   range reader): beginning to the high watermarks at start, `read_committed`, no consumer
//!   group joined, nothing committed.
//! - [`fold`] (pure): events → expected fields, each with the event that set it.
//! - [`apps`]: what Zuora, Salesforce's billing mirror and the customers app hold, over their
//!   APIs with the connectors' clients, paged, waiting out rate limits.
//! - [`diff`] (pure): drift per field, missing and extra records.
//! - [`fix`]: the events that repair it, and their re-emission (never a write to an app).
//! - [`report`]: table and JSON.

pub mod apps;
pub mod diff;
pub mod error;
pub mod fix;
pub mod fold;
pub mod log;
pub mod report;

use std::sync::Arc;
use std::time::Duration;

use l2f_connector_customers::client::CustomersClient;
use l2f_connector_salesforce::SalesforceClient;
use rdkafka::ClientConfig;

pub use apps::ZuoraApp;
pub use diff::{Drift, DriftKind, Held, Kind};
pub use error::{ReconcileError, Result};
pub use fix::{Emitted, Plan};
pub use fold::{Fold, Origin, State};
pub use report::Report;

/// The apps to compare (those configured).
#[derive(Default)]
pub struct Apps {
    /// Zuora.
    pub zuora: Option<ZuoraApp>,
    /// Salesforce (its billing mirror).
    pub salesforce: Option<Arc<SalesforceClient>>,
    /// The customers app (its hub mirror).
    pub customers: Option<Arc<CustomersClient>>,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// Topics folded.
    pub topics: Vec<String>,
    /// How long a read of the log may wait without progress.
    pub timeout: Duration,
    /// The dead-letter topic: an order dead-lettered there was refused on purpose (a SKU not
    /// in the catalog, a bad field) and is not expected in Zuora. `None` reads none.
    pub dead_letters: Option<String>,
}

/// Folds the log and compares every configured app: the report (with the repair plan, not
/// yet emitted) and the expected state.
pub async fn check(client: &ClientConfig, apps: &Apps, opts: &Options) -> Result<(Report, State)> {
    let (c, topics, timeout) = (client.clone(), opts.topics.clone(), opts.timeout);
    let dlq = opts.dead_letters.clone();
    let (ranges, fold, rejected) = tokio::task::spawn_blocking(move || -> Result<_> {
        let ranges = log::ranges(&c, &topics, timeout)?;
        let fold = log::fold(&c, &ranges, timeout)?;
        let rejected = match &dlq {
            Some(t) => log::rejected_orders(&c, t, timeout)?,
            None => Default::default(),
        };
        Ok((ranges, fold, rejected))
    })
    .await
    .map_err(|e| ReconcileError::Repair(format!("log reader task: {e}")))??;
    let (folded, ignored, undecodable) = (fold.folded, fold.ignored, fold.undecodable);
    let mut state = fold.finish();
    let mut refused = Vec::new();
    for id in &rejected {
        if state.orders.remove(id).is_some() {
            state.placed.remove(id);
            refused.push(id.clone());
        }
    }
    let mut held = Vec::new();
    if let Some(z) = &apps.zuora {
        held.push(apps::read_zuora(z, &state).await?);
    }
    if let Some(sf) = &apps.salesforce {
        held.push(apps::read_salesforce(sf).await?);
    }
    if let Some(c) = &apps.customers {
        held.push(apps::read_customers(c).await?);
    }
    let mut drift = Vec::new();
    for h in &held {
        drift.extend(diff::diff(&state, h));
    }
    let plan = fix::plan(&drift, &state);
    let report = Report {
        ranges,
        folded,
        ignored,
        undecodable,
        subscriptions: state.subscriptions.len(),
        accounts: state.accounts.len(),
        pending: state.pending.clone(),
        refused,
        apps: held.iter().map(|h| h.app.to_string()).collect(),
        drift,
        plan,
        fixed: false,
        emitted: vec![],
    };
    Ok((report, state))
}

/// [`check`], then (with `fix`) the repairs re-emitted: the report says what was.
pub async fn reconcile(
    client: &ClientConfig,
    apps: &Apps,
    opts: &Options,
    fix: Option<&str>,
    subscriptions_topic: &str,
) -> Result<Report> {
    let (mut report, _) = check(client, apps, opts).await?;
    if let Some(run) = fix {
        report.emitted =
            fix::emit(client, &report.plan, subscriptions_topic, run, opts.timeout).await?;
        report.fixed = true;
    }
    Ok(report)
}
