//! What each app holds, read over its API with the connectors' own clients (their
//! credentials, token refresh and error shapes), in the fold's canonical field forms.
//!
//! - **Zuora**: for each order no creation names yet, whether a subscription carries its id
//!   (`L2fOrderId__c`, under the account of rule 3's entity); every expected account (`GET /v1/accounts/{n}`: `Entity__c`, `batch`,
//!   `communicationProfileId`), the subscriptions of each (`GET /v1/subscriptions/accounts/{n}`
//!   — what Zuora has under an account the log knows and the log does not is extra), and any
//!   expected subscription not found there (`GET /v1/subscriptions/{n}`).
//! - **Salesforce**: the billing mirror the salesforce connector writes, `Zuora__Subscription__c`
//!   and `Zuora__CustomerAccount__c` by `Zuora__External_Id__c`, every page of a SOQL query.
//! - **Customers app**: its hub mirror of subscriptions (those with a Zuora number), every page
//!   of `GET /api/v1/subscriptions`.
//!
//! Rate limits: a 429 or 5xx (the clients' [`ClientError::Status`]) waits as long as the app
//! asks (`Retry-After` / `RateLimit-Reset`, at most [`MAX_WAIT`]) and tries again, up to
//! [`ATTEMPTS`] times; anything else is an error naming the app and the call.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use l2f_connector_customers::client::CustomersClient;
use l2f_connector_kit::ClientError;
use l2f_connector_salesforce::mapping as sf_mapping;
use l2f_connector_salesforce::SalesforceClient;
use l2f_connector_zuora::client::Call;
use l2f_connector_zuora::mapping::{
    account_number, batch_of, custom_field, entity_of, placement, Profiles, SubscriptionView,
    F_CANCELLATION_REASON, F_ENTITY, F_ORDER_ID,
};
use l2f_connector_zuora::ZuoraClient;
use l2f_rules::Rules;
use reqwest::Method;
use serde_json::{json, Value};

use crate::diff::{Held, HeldSet};
use crate::error::{ReconcileError, Result};
use crate::fold::{field::*, State};

/// Tries of one call that the app answers 429/5xx, or that gets no answer.
pub const ATTEMPTS: u32 = 6;
/// The longest wait between two tries.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Calls `f` until it answers, waiting out rate limits and outages the app announces, and
/// calls that got no answer (a reset connection, a timeout): a read is safe to make again.
pub async fn patiently<T, F, Fut>(app: &'static str, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e @ (ClientError::Status { .. } | ClientError::Transport(_)))
                if attempt < ATTEMPTS =>
            {
                let retry_after = match &e {
                    ClientError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = retry_after
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(MAX_WAIT);
                tracing::info!(
                    app,
                    what,
                    wait_ms = wait.as_millis() as u64,
                    error = %e,
                    "rate limited or unavailable; waiting"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_WAIT);
            }
            Err(e) => {
                return Err(ReconcileError::App {
                    app,
                    message: format!("{what}: {e}"),
                })
            }
        }
    }
    Err(ReconcileError::App {
        app,
        message: format!("{what}: still rate limited after {ATTEMPTS} tries"),
    })
}

fn text(v: &Value) -> Value {
    match v.as_str().filter(|s| !s.is_empty()) {
        Some(s) => json!(s),
        None => Value::Null,
    }
}

fn status(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => json!(s.to_ascii_lowercase()),
        None => Value::Null,
    }
}

/// The Zuora tenant and its profile ids.
pub struct ZuoraApp {
    /// The connector's client.
    pub client: Arc<ZuoraClient>,
    /// Communication profile ids (`[connectors.zuora] communication_profiles`).
    pub profiles: Profiles,
    /// The handbook's rules (rule 3: on which entity's account an order is placed).
    pub rules: Arc<Rules>,
}

/// A Zuora subscription answer in canonical fields.
pub fn zuora_subscription(v: &Value) -> Option<(String, BTreeMap<String, Value>)> {
    let s = SubscriptionView::read(v).ok()?;
    let mut m = BTreeMap::new();
    let st = s.status.to_ascii_lowercase();
    let reason = custom_field(v, F_CANCELLATION_REASON)
        .map(|r| json!(r))
        // Cancelled in Zuora without the hub: the customer's request, as the source says.
        .unwrap_or_else(|| {
            if st == "cancelled" {
                json!("CUSTOMER_REQUEST")
            } else {
                Value::Null
            }
        });
    m.insert(STATUS.into(), json!(st));
    m.insert(SEATS.into(), json!(s.seats));
    m.insert(TERM_START.into(), json!(s.term_start.to_string()));
    m.insert(TERM_END.into(), json!(s.term_end.to_string()));
    m.insert(AUTO_RENEW.into(), json!(s.auto_renew));
    m.insert(ACCOUNT.into(), json!(s.account_number));
    m.insert(CANCELLATION_REASON.into(), reason);
    Some((s.number, m))
}

/// A Zuora account answer in canonical fields.
pub fn zuora_account(v: &Value, profiles: &Profiles) -> BTreeMap<String, Value> {
    let info = &v["basicInfo"];
    let mut m = BTreeMap::new();
    let entity = custom_field(v, F_ENTITY);
    m.insert(
        ENTITY.into(),
        match entity.and_then(entity_of) {
            Some(e) => json!(e.symbol()),
            None => entity.map_or(Value::Null, |e| json!(e)),
        },
    );
    let batch = info["batch"].as_str();
    m.insert(
        BATCH.into(),
        match batch.and_then(batch_of) {
            Some(b) => json!(b.symbol()),
            None => batch.map_or(Value::Null, |b| json!(b)),
        },
    );
    let profile = info["communicationProfileId"].as_str();
    m.insert(
        COMMUNICATION_PROFILE.into(),
        match profile.and_then(|p| profiles.of(p)) {
            Some(p) => json!(p.symbol()),
            None => profile.map_or(Value::Null, |p| json!(p)),
        },
    );
    m
}

/// What Zuora holds of the accounts and subscriptions `state` expects.
pub async fn read_zuora(z: &ZuoraApp, state: &State) -> Result<Held> {
    let mut accounts = BTreeMap::new();
    let mut subs = BTreeMap::new();
    for number in state.accounts.keys() {
        let what = format!("GET /v1/accounts/{number}");
        if let Some(a) =
            patiently("zuora", &what, || z.client.account(number, Call::default())).await?
        {
            accounts.insert(number.clone(), zuora_account(&a, &z.profiles));
        }
        let what = format!("GET /v1/subscriptions/accounts/{number}");
        let listed = patiently("zuora", &what, || {
            z.client.account_subscriptions(number, Call::default())
        })
        .await?;
        for s in listed.into_iter().flatten() {
            if let Some((n, m)) = zuora_subscription(&s) {
                subs.insert(n, m);
            }
        }
    }
    // Orders no creation names yet: does Zuora hold a subscription for them (the sink's own
    // check: `L2fOrderId__c` under the account of rule 3's entity)?
    let mut orders = BTreeMap::new();
    for (id, order) in &state.placed {
        let number = account_number(&order.account_id, placement(order, &z.rules).entity);
        let what = format!("GET /v1/subscriptions/accounts/{number}");
        let listed = patiently("zuora", &what, || {
            z.client.account_subscriptions(&number, Call::default())
        })
        .await?;
        if let Some(s) = listed
            .into_iter()
            .flatten()
            .find(|s| custom_field(s, F_ORDER_ID) == Some(id.as_str()))
        {
            let mut m = BTreeMap::new();
            m.insert(
                crate::fold::field::SUBSCRIPTION.to_string(),
                json!("created"),
            );
            m.insert(ACCOUNT.to_string(), s["subscriptionNumber"].clone());
            orders.insert(id.clone(), m);
        }
    }
    for number in state.subscriptions.keys() {
        if subs.contains_key(number) {
            continue;
        }
        let what = format!("GET /v1/subscriptions/{number}");
        if let Some(s) = patiently("zuora", &what, || {
            z.client.subscription(number, Call::default())
        })
        .await?
        {
            if let Some((n, m)) = zuora_subscription(&s) {
                subs.insert(n, m);
            }
        }
    }
    Ok(Held {
        app: "zuora",
        subscriptions: Some(HeldSet {
            records: subs,
            fields: vec![
                STATUS,
                SEATS,
                TERM_START,
                TERM_END,
                AUTO_RENEW,
                ACCOUNT,
                CANCELLATION_REASON,
            ],
            // Every subscription under the accounts the log knows.
            listed: true,
        }),
        accounts: Some(HeldSet {
            records: accounts,
            fields: vec![ENTITY, BATCH, COMMUNICATION_PROFILE],
            listed: false,
        }),
        orders: Some(HeldSet {
            records: orders,
            fields: vec![],
            listed: false,
        }),
    })
}

/// The SOQL of the mirror's subscriptions.
pub const SF_SUBSCRIPTIONS: &str = "SELECT Id, Zuora__External_Id__c, Zuora__Status__c, Zuora__AutoRenew__c, Zuora__TermStartDate__c, Zuora__TermEndDate__c, Seats__c, Plan_Sku__c, Entity__c, Cancellation_Reason__c FROM Zuora__Subscription__c";
/// The SOQL of the mirror's customer accounts.
pub const SF_ACCOUNTS: &str = "SELECT Id, Zuora__External_Id__c, Entity__c, Billing_Batch__c, Communication_Profile__c FROM Zuora__CustomerAccount__c";

/// A `Zuora__Subscription__c` row in canonical fields.
pub fn salesforce_subscription(r: &Value) -> Option<(String, BTreeMap<String, Value>)> {
    let id = r[sf_mapping::SUBSCRIPTION.1].as_str()?.to_string();
    let mut m = BTreeMap::new();
    m.insert(STATUS.into(), status(&r["Zuora__Status__c"]));
    m.insert(AUTO_RENEW.into(), r["Zuora__AutoRenew__c"].clone());
    m.insert(TERM_START.into(), text(&r["Zuora__TermStartDate__c"]));
    m.insert(TERM_END.into(), text(&r["Zuora__TermEndDate__c"]));
    m.insert(SEATS.into(), r["Seats__c"].clone());
    m.insert(PLAN_SKU.into(), text(&r["Plan_Sku__c"]));
    m.insert(ENTITY.into(), text(&r["Entity__c"]));
    m.insert(
        CANCELLATION_REASON.into(),
        text(&r["Cancellation_Reason__c"]),
    );
    Some((id, m))
}

/// A `Zuora__CustomerAccount__c` row in canonical fields.
pub fn salesforce_account(r: &Value) -> Option<(String, BTreeMap<String, Value>)> {
    let id = r[sf_mapping::CUSTOMER_ACCOUNT.1].as_str()?.to_string();
    let mut m = BTreeMap::new();
    m.insert(ENTITY.into(), text(&r["Entity__c"]));
    m.insert(BATCH.into(), text(&r["Billing_Batch__c"]));
    m.insert(
        COMMUNICATION_PROFILE.into(),
        text(&r["Communication_Profile__c"]),
    );
    Some((id, m))
}

/// What Salesforce's billing mirror holds: every row of both objects.
pub async fn read_salesforce(sf: &SalesforceClient) -> Result<Held> {
    let subs = patiently("salesforce", "query Zuora__Subscription__c", || {
        sf.query_all(SF_SUBSCRIPTIONS)
    })
    .await?;
    let accounts = patiently("salesforce", "query Zuora__CustomerAccount__c", || {
        sf.query_all(SF_ACCOUNTS)
    })
    .await?;
    Ok(Held {
        app: "salesforce",
        subscriptions: Some(HeldSet {
            records: subs.iter().filter_map(salesforce_subscription).collect(),
            fields: vec![
                STATUS,
                AUTO_RENEW,
                TERM_START,
                TERM_END,
                SEATS,
                PLAN_SKU,
                ENTITY,
                CANCELLATION_REASON,
            ],
            listed: true,
        }),
        accounts: Some(HeldSet {
            records: accounts.iter().filter_map(salesforce_account).collect(),
            fields: vec![ENTITY, BATCH, COMMUNICATION_PROFILE],
            listed: true,
        }),
        orders: None,
    })
}

/// The customers app's cancellation reason name → the symbol.
fn customers_reason(v: &Value) -> Value {
    let symbol = match v.as_str() {
        Some("customer_request") => "CUSTOMER_REQUEST",
        Some("wrong_seat_count") => "WRONG_SEAT_COUNT",
        Some("entity_change") => "ENTITY_CHANGE_AT_RENEWAL",
        Some("card_declined") => "CARD_DECLINED_ON_AUTO_RENEWAL",
        Some(other) if !other.is_empty() => return json!(other),
        _ => return Value::Null,
    };
    json!(symbol)
}

/// A customers-app subscription in canonical fields (`None` until Zuora's number is on it).
pub fn customers_subscription(s: &Value) -> Option<(String, BTreeMap<String, Value>)> {
    let id = s["zuora_subscription_number"].as_str()?.to_string();
    let mut m = BTreeMap::new();
    m.insert(STATUS.into(), status(&s["status"]));
    m.insert(SEATS.into(), s["seats"].clone());
    m.insert(TERM_START.into(), text(&s["term_start"]));
    m.insert(TERM_END.into(), text(&s["term_end"]));
    m.insert(AUTO_RENEW.into(), s["auto_renew"].clone());
    m.insert(PLAN_SKU.into(), text(&s["plan_sku"]));
    m.insert(
        CANCELLATION_REASON.into(),
        customers_reason(&s["cancellation_reason"]),
    );
    Some((id, m))
}

/// Largest page asked of the customers app.
const CUSTOMERS_PAGE: usize = 100;
/// Pages read at most (a runaway listing cannot loop forever).
const MAX_PAGES: usize = 10_000;

/// What the customers app's hub mirror holds: every page of its subscriptions.
pub async fn read_customers(c: &CustomersClient) -> Result<Held> {
    let mut records = BTreeMap::new();
    for page in 1..=MAX_PAGES {
        let path = format!("/api/v1/subscriptions?page={page}&per_page={CUSTOMERS_PAGE}");
        let v = patiently("customers", &format!("GET {path}"), || {
            c.call(Method::GET, &path, None)
        })
        .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        records.extend(items.iter().filter_map(customers_subscription));
        let total = v["total"].as_u64().unwrap_or(0) as usize;
        if items.is_empty() || page * CUSTOMERS_PAGE >= total {
            break;
        }
    }
    Ok(Held {
        app: "customers",
        subscriptions: Some(HeldSet {
            records,
            fields: vec![
                STATUS,
                SEATS,
                TERM_START,
                TERM_END,
                AUTO_RENEW,
                PLAN_SKU,
                CANCELLATION_REASON,
            ],
            listed: true,
        }),
        accounts: None,
        orders: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_got_no_answer_is_made_again_and_a_refusal_is_not() {
        // A port nothing listens on: the first call gets no answer, the second succeeds.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let mut calls = 0;
        let got = patiently("test", "a read", || {
            calls += 1;
            let (n, url) = (calls, url.clone());
            async move {
                if n == 1 {
                    Err(ClientError::Transport(reqwest::get(url).await.unwrap_err()))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
        let mut calls = 0;
        let refused: Result<()> = patiently("test", "a read", || {
            calls += 1;
            async { Err(ClientError::Auth("bad key".into())) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(refused.unwrap_err().to_string().contains("bad key"));
    }

    #[test]
    fn a_zuora_subscription_reads_into_canonical_fields() {
        let v = json!({
            "subscriptionNumber": "A-S1", "accountNumber": "acct-INC", "status": "Cancelled",
            "autoRenew": false, "termStartDate": "2026-01-01", "termEndDate": "2027-01-01",
            "ratePlans": [{"productRatePlanId": "p", "ratePlanCharges": [{"quantity": 12.0}]}],
        });
        let (n, m) = zuora_subscription(&v).unwrap();
        assert_eq!(n, "A-S1");
        assert_eq!(m[SEATS], json!(12));
        assert_eq!(m[STATUS], json!("cancelled"));
        assert_eq!(m[CANCELLATION_REASON], json!("CUSTOMER_REQUEST"));
        assert_eq!(m[ACCOUNT], json!("acct-INC"));
    }

    #[test]
    fn a_zuora_account_reads_entity_batch_and_profile_symbols() {
        let v = json!({"basicInfo": {"batch": "Batch2", "communicationProfileId": "Silent"},
                       "customFields": {"Entity__c": "GITLAB_BV"}});
        let m = zuora_account(&v, &Profiles::default());
        assert_eq!(m[ENTITY], json!("GITLAB_BV"));
        assert_eq!(m[BATCH], json!("BATCH2"));
        assert_eq!(m[COMMUNICATION_PROFILE], json!("SILENT"));
    }

    #[test]
    fn mirrors_read_their_own_names_into_the_same_forms() {
        let (id, m) = customers_subscription(&json!({
            "zuora_subscription_number": "A-S1", "status": "cancelled", "seats": 3,
            "term_start": "2026-01-01", "term_end": "2027-01-01", "auto_renew": false,
            "plan_sku": "premium-saas-1y", "cancellation_reason": "entity_change"}))
        .unwrap();
        assert_eq!(id, "A-S1");
        assert_eq!(m[CANCELLATION_REASON], json!("ENTITY_CHANGE_AT_RENEWAL"));
        assert!(customers_subscription(&json!({"zuora_subscription_number": null})).is_none());
        let (_, m) = salesforce_subscription(&json!({
            "Zuora__External_Id__c": "A-S1", "Zuora__Status__c": "Active", "Seats__c": 3.0,
            "Cancellation_Reason__c": null}))
        .unwrap();
        assert_eq!(m[STATUS], json!("active"));
        assert_eq!(m[CANCELLATION_REASON], Value::Null);
    }
}
