//! Pure mapping between the hub's events and Zuora's REST bodies, with the handbook's rules
//! applied here and nowhere else (no I/O: every rule is tested without a server):
//!
//! - rule 3, the entity: `PartyKind::of_order(channel, reseller)` and the billing country
//!   decide it; the Zuora account is `<hub account id>-<ENTITY>` on it. AWS Marketplace and
//!   GOV.UK orders count as sales-assisted (what `PartyKind::of_order` says: no reseller,
//!   not the web store) — both are billed to the buyer's own country's entity;
//! - rule 4, the batch: the invoice batch of the order's channel (auto-renewal invoices get
//!   Batch3 when Zuora bills them, not here);
//! - rule 5, auto-renew: `OrderPlaced.auto_renew` as the order says (the customers app's own
//!   flag, or the off of a sales-assisted deal); a cancellation turns it off in Zuora too;
//! - rule 6, the profile: new accounts get `communication.new_account()`;
//! - rule 10, cancellation: the reason kept in `L2fCancellationReason__c`; a renewal whose
//!   entity changed (`cancellation::at_renewal`) cancels and re-creates;
//! - rule 11, SKUs: every line sellable on the day it was ordered.
//!
//! And back: a callout notification with the subscription and account it names → the
//! subscription event (SubscriptionCreated/Amended/Renewed/Cancelled, AutoRenewChanged with
//! flag owner ZUORA, PaymentDeclined), its ids read from the `L2f…__c` custom fields.

use chrono::{DateTime, NaiveDate, Utc};
use l2f_bus::{HandlerError, OutRecord};
use l2f_contracts::events::*;
use l2f_contracts::record::event_id;
use l2f_contracts::{Codec, CountryCode};
use l2f_rules::auto_renew::{self, Change};
use l2f_rules::batch::Invoice;
use l2f_rules::{PartyKind, Rules};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::client::CatalogPlan;

/// Custom field on subscriptions: the hub's order id (web-store subscription id or
/// Salesforce Opportunity Id) — how a redelivered order finds what it created.
pub const F_ORDER_ID: &str = "L2fOrderId__c";
/// Custom field on subscriptions and accounts: the hub's account id.
pub const F_ACCOUNT_ID: &str = "L2fAccountId__c";
/// Custom field on subscriptions: the business flow's correlation id.
pub const F_CORRELATION_ID: &str = "L2fCorrelationId__c";
/// Custom field on subscriptions: the event id of the last hub event that changed it.
pub const F_CAUSATION_ID: &str = "L2fCausationId__c";
/// The W3C `traceparent` of the hub's span that made the change (the causing event's
/// handling), so the event Zuora's notification of it becomes continues that trace.
pub const F_TRACEPARENT: &str = "L2fTraceparent__c";
/// Custom field on subscriptions: why the hub cancelled it (a `CancellationReason` symbol).
pub const F_CANCELLATION_REASON: &str = "L2fCancellationReason__c";
/// Custom field on subscriptions: SAAS or SELF_MANAGED, as the order said.
pub const F_DEPLOYMENT: &str = "L2fDeployment__c";
/// Custom field on accounts: the entity of rule 3 (a `ZuoraEntity` symbol).
pub const F_ENTITY: &str = "Entity__c";

/// Zuora's communication profile ids for the profiles of rule 6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    /// The id of the Default profile.
    pub default: String,
    /// The id of the Silent profile.
    pub silent: String,
}

impl Profiles {
    /// The id of `p`.
    pub fn id(&self, p: CommunicationProfile) -> &str {
        match p {
            CommunicationProfile::Default => &self.default,
            CommunicationProfile::Silent => &self.silent,
        }
    }

    /// The profile whose id (or label) is `id`.
    pub fn of(&self, id: &str) -> Option<CommunicationProfile> {
        CommunicationProfile::VARIANTS.iter().copied().find(|p| {
            self.id(*p) == id || profile_label(*p).eq_ignore_ascii_case(id) || p.symbol() == id
        })
    }
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            default: profile_label(CommunicationProfile::Default).into(),
            silent: profile_label(CommunicationProfile::Silent).into(),
        }
    }
}

/// The profile's name as Zuora shows it (`Default`, `Silent`).
pub fn profile_label(p: CommunicationProfile) -> &'static str {
    match p {
        CommunicationProfile::Default => "Default",
        CommunicationProfile::Silent => "Silent",
    }
}

/// The suffix of an entity's account numbers.
pub fn entity_suffix(e: ZuoraEntity) -> &'static str {
    match e {
        ZuoraEntity::GitlabInc => "INC",
        ZuoraEntity::GitlabBv => "BV",
        ZuoraEntity::GitlabGmbh => "GMBH",
        ZuoraEntity::GitlabLtd => "LTD",
        ZuoraEntity::GitlabPtyLtd => "PTY",
    }
}

/// The deterministic Zuora account number of a hub account on an entity:
/// `<hub account id>-<ENTITY>`, so a redelivery finds the account instead of creating one.
pub fn account_number(account_id: &str, e: ZuoraEntity) -> String {
    format!("{account_id}-{}", entity_suffix(e))
}

/// Zuora's batch name (`Batch1`) of a billing batch.
pub fn batch_name(b: BillingBatch) -> &'static str {
    match b {
        BillingBatch::Batch1 => "Batch1",
        BillingBatch::Batch2 => "Batch2",
        BillingBatch::Batch3 => "Batch3",
        BillingBatch::Batch4 => "Batch4",
        BillingBatch::Batch5 => "Batch5",
    }
}

/// The billing batch Zuora's `Batch1`..`Batch5` stands for.
pub fn batch_of(name: &str) -> Option<BillingBatch> {
    BillingBatch::VARIANTS
        .iter()
        .copied()
        .find(|b| batch_name(*b).eq_ignore_ascii_case(name) || b.symbol() == name)
}

/// The entity a symbol (`GITLAB_LTD`) names.
pub fn entity_of(symbol: &str) -> Option<ZuoraEntity> {
    ZuoraEntity::VARIANTS
        .iter()
        .copied()
        .find(|e| e.symbol() == symbol)
}

/// What rules 3–6 decide for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Who is invoiced.
    pub party: PartyKind,
    /// Rule 3.
    pub entity: ZuoraEntity,
    /// Rule 4.
    pub batch: BillingBatch,
    /// Rule 6 (a new account's profile).
    pub profile: CommunicationProfile,
    /// Rule 5 (as the order says).
    pub auto_renew: bool,
}

/// Rules 3, 4, 5 and 6 for `order`.
pub fn placement(order: &OrderPlaced, rules: &Rules) -> Placement {
    let party = PartyKind::of_order(order.sales_channel, order.reseller.as_ref());
    Placement {
        party,
        entity: rules.entity.entity(party, order.bill_to_country),
        batch: rules.batch.batch(Invoice {
            channel: order.sales_channel,
            auto_renewal: false,
            edu_oss: false,
        }),
        profile: rules.communication.new_account(),
        auto_renew: order.auto_renew,
    }
}

/// The day an order was placed (UTC): what rule 11 and Zuora's `orderDate` use.
pub fn order_date(order: &OrderPlaced) -> NaiveDate {
    order.envelope.occurred_at.date_naive()
}

/// Rule 11: every line sellable on the order's day; otherwise permanent, naming the SKU and
/// why.
pub fn check_skus(order: &OrderPlaced, rules: &Rules) -> Result<(), HandlerError> {
    if order.lines.is_empty() {
        return Err(HandlerError::permanent(format!(
            "order {}: OrderPlaced.lines is empty",
            order.order_id
        )));
    }
    rules
        .skus
        .check_order(&order.lines, order_date(order))
        .map_err(|why| {
            HandlerError::permanent(format!(
                "order {} cannot be sold (handbook rule 11): {why}",
                order.order_id
            ))
        })
}

/// Whole months from `start` to `end` (at least 1): the initial term of the order — the
/// fewest months from `start` that reach `end`, so a term ending on the same day of the month
/// or the day before (2026-12-01 .. 2027-11-30) is 12 months.
pub fn term_months(start: NaiveDate, end: NaiveDate) -> u32 {
    (1..=1200u32)
        .find(|m| {
            start
                .checked_add_months(chrono::Months::new(*m))
                .is_none_or(|d| d >= end)
        })
        .unwrap_or(1200)
}

/// A Salesforce record id (15 or 18 alphanumeric characters) of an Account (`001` prefix):
/// the CRM id a sales-assisted Zuora account carries.
pub fn crm_account_id(account_id: &str) -> Option<&str> {
    let ok = (account_id.len() == 15 || account_id.len() == 18)
        && account_id.starts_with("001")
        && account_id.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(account_id)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The bill-to contact's first and last names. Orders carry no person's name, only the
/// buyer's email: `ada.lovelace@` gives Ada / Lovelace, a single word is both.
pub fn contact_names(email: &str) -> (String, String) {
    let local = email.split('@').next().unwrap_or(email);
    let local = local.split('+').next().unwrap_or(local);
    let parts: Vec<String> = local
        .split(['.', '_', '-'])
        .filter(|p| !p.is_empty())
        .map(capitalised)
        .collect();
    match parts.as_slice() {
        [] => ("Customer".into(), "Customer".into()),
        [one] => (one.clone(), one.clone()),
        [first, rest @ ..] => (first.clone(), rest.join(" ")),
    }
}

/// The ids of the business flow, written on the subscription so the source can read them
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The hub's order id.
    pub order_id: String,
    /// The hub's account id.
    pub account_id: String,
    /// The flow.
    pub correlation_id: Uuid,
    /// The event that makes this change.
    pub causation_id: Uuid,
}

impl Trace {
    /// The trace of an order event.
    pub fn of(order: &OrderPlaced) -> Self {
        Trace {
            order_id: order.order_id.clone(),
            account_id: order.account_id.clone(),
            correlation_id: order.envelope.correlation_id,
            causation_id: order.envelope.event_id,
        }
    }

    fn fields(&self, deployment: Deployment) -> Value {
        json!({
            F_ORDER_ID: self.order_id,
            F_ACCOUNT_ID: self.account_id,
            F_CORRELATION_ID: self.correlation_id.to_string(),
            F_CAUSATION_ID: self.causation_id.to_string(),
            F_DEPLOYMENT: deployment.symbol(),
        })
    }
}

/// The `newAccount` of an order: `<account>-<ENTITY>` on the entity of rule 3, in the batch
/// of rule 4, with the profile of rule 6, the hub's ids as custom fields.
pub fn new_account(order: &OrderPlaced, p: &Placement, profiles: &Profiles) -> Value {
    let (first, last) = contact_names(&order.sold_to_email);
    let name = order
        .reseller
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| order.sold_to_email.clone());
    let mut a = json!({
        "accountNumber": account_number(&order.account_id, p.entity),
        "name": name,
        "currency": order.total.currency,
        "billCycleDay": 0,
        "autoPay": false,
        "batch": batch_name(p.batch),
        "communicationProfileId": profiles.id(p.profile),
        "billToContact": {
            "firstName": first,
            "lastName": last,
            "workEmail": order.sold_to_email,
            "country": order.bill_to_country.as_str(),
        },
        F_ENTITY: p.entity.symbol(),
        F_ACCOUNT_ID: order.account_id,
    });
    if let Some(crm) = crm_account_id(&order.account_id) {
        a["crmId"] = json!(crm);
    }
    a
}

/// The account an order is placed under.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderAccount {
    /// An account that exists (its number).
    Existing(String),
    /// A new one, created inside the order (`newAccount`).
    New(Value),
}

/// One rate plan to subscribe to: the catalog's plan for a line, and its quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// The catalog entry of the line's SKU.
    pub plan: CatalogPlan,
    /// Seats or units.
    pub quantity: i32,
}

fn date_triggers(day: NaiveDate) -> Value {
    json!([
        {"name": "ContractEffective", "triggerDate": day.to_string()},
        {"name": "ServiceActivation", "triggerDate": day.to_string()},
        {"name": "CustomerAcceptance", "triggerDate": day.to_string()},
    ])
}

fn order_shell(day: NaiveDate, account: OrderAccount, subscription: Value) -> Value {
    let mut o = json!({
        "orderDate": day.to_string(),
        "subscriptions": [subscription],
        "processingOptions": {"runBilling": false, "collectPayment": false},
    });
    match account {
        OrderAccount::Existing(n) => o["existingAccountNumber"] = json!(n),
        OrderAccount::New(a) => o["newAccount"] = a,
    }
    o
}

/// `POST /v1/orders` creating the order's subscription: initial term = the order's months
/// from its term start, renewal term 12 months, auto-renew as rule 5 says, one rate plan per
/// line with its quantity, the flow's ids as custom fields.
pub fn create_subscription(
    order: &OrderPlaced,
    p: &Placement,
    account: OrderAccount,
    plans: &[Subscribe],
    trace: &Trace,
) -> Value {
    let rate_plans: Vec<Value> = plans
        .iter()
        .map(|s| {
            let mut rp = json!({"productRatePlanId": s.plan.product_rate_plan_id});
            let mut o = json!({"pricing": {"recurringPerUnit": {"quantity": s.quantity}}});
            if let Some(c) = &s.plan.charge_id {
                o["productRatePlanChargeId"] = json!(c);
            }
            rp["chargeOverrides"] = json!([o]);
            rp
        })
        .collect();
    let action = json!({
        "type": "CreateSubscription",
        "createSubscription": {
            "terms": {
                "initialTerm": {
                    "startDate": order.term_start.to_string(),
                    "period": term_months(order.term_start, order.term_end),
                    "periodType": "Month",
                    "termType": "TERMED",
                },
                "renewalSetting": "RENEW_WITH_SPECIFIC_TERM",
                "renewalTerms": [{"period": 12, "periodType": "Month"}],
                "autoRenew": p.auto_renew,
            },
            "subscribeToRatePlans": rate_plans,
        },
    });
    order_shell(
        order_date(order),
        account,
        json!({"orderActions": [action], "customFields": trace.fields(order.deployment)}),
    )
}

/// `POST /v1/orders` renewing `subscription` for another term, the renewal order's ids
/// written on it (so a redelivery sees it done).
pub fn renew_subscription(
    order: &OrderPlaced,
    account_number: &str,
    subscription: &str,
    trace: &Trace,
) -> Value {
    let day = order_date(order);
    order_shell(
        day,
        OrderAccount::Existing(account_number.into()),
        json!({
            "subscriptionNumber": subscription,
            "orderActions": [{"type": "RenewSubscription", "triggerDates": date_triggers(day)}],
            "customFields": {
                F_ORDER_ID: trace.order_id,
                F_CORRELATION_ID: trace.correlation_id.to_string(),
                F_CAUSATION_ID: trace.causation_id.to_string(),
            },
        }),
    )
}

/// `POST /v1/orders` cancelling `subscription` at the end of its term, in one order with
/// auto-renew turned off first (rule 5: a cancellation turns it off), the reason (rule 10)
/// and the causing event kept on it.
pub fn cancel_subscription(
    day: NaiveDate,
    account_number: &str,
    subscription: &str,
    reason: CancellationReason,
    causation_id: Uuid,
) -> Value {
    order_shell(
        day,
        OrderAccount::Existing(account_number.into()),
        json!({
            "subscriptionNumber": subscription,
            "orderActions": [
                {
                    "type": "TermsAndConditions",
                    "triggerDates": date_triggers(day),
                    "termsAndConditions": {"autoRenew": auto_renew::after(Change::Cancelled)},
                },
                {
                    "type": "CancelSubscription",
                    "triggerDates": date_triggers(day),
                    "cancelSubscription": {"cancellationPolicy": "EndOfCurrentTerm"},
                },
            ],
            "customFields": {
                F_CANCELLATION_REASON: reason.symbol(),
                F_CAUSATION_ID: causation_id.to_string(),
            },
        }),
    )
}

/// `PUT /v1/subscriptions/{n}`: Zuora's auto-renew flag follows the customers app's (rule 5).
pub fn auto_renew_update(auto_renew: bool, causation_id: Uuid) -> Value {
    json!({"autoRenew": auto_renew, F_CAUSATION_ID: causation_id.to_string()})
}

/// `body` with `traceparent` written beside each causing event it names (`L2fCausationId__c`),
/// so the change's notification continues the trace of the span that made it.
pub fn with_traceparent(body: &Value, traceparent: &str) -> Value {
    fn stamp(v: &mut Value, tp: &str) {
        match v {
            Value::Object(m) => {
                if m.contains_key(F_CAUSATION_ID) {
                    m.insert(F_TRACEPARENT.into(), Value::String(tp.into()));
                }
                m.values_mut().for_each(|v| stamp(v, tp));
            }
            Value::Array(a) => a.iter_mut().for_each(|v| stamp(v, tp)),
            _ => {}
        }
    }
    let mut body = body.clone();
    stamp(&mut body, traceparent);
    body
}

/// The `traceparent` a subscription's last change was made under, if it names a valid one.
pub fn traceparent_of(subscription: &Value) -> Option<l2f_bus::headers::TraceParent> {
    custom_field(subscription, F_TRACEPARENT).and_then(l2f_bus::headers::TraceParent::parse)
}

/// A custom field of a Zuora object: top-level (`X__c`, as Zuora renders them), or inside
/// `customFields` / `basicInfo`.
pub fn custom_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    [&v[name], &v["customFields"][name], &v["basicInfo"][name]]
        .into_iter()
        .find_map(|x| x.as_str())
        .filter(|s| !s.is_empty())
}

/// What the subscription says about itself, as the mapping needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionView {
    /// `A-S00000001`.
    pub number: String,
    /// The owning Zuora account.
    pub account_number: String,
    /// `Active`, `Cancelled`, ...
    pub status: String,
    /// Zuora's flag.
    pub auto_renew: bool,
    /// Current term.
    pub term_start: NaiveDate,
    /// Current term end.
    pub term_end: NaiveDate,
    /// Current term in months.
    pub current_term: u32,
    /// Version (1 at creation).
    pub version: u64,
    /// Effective cancellation day.
    pub cancelled_date: Option<NaiveDate>,
    /// The first rate plan's product rate plan id.
    pub product_rate_plan_id: Option<String>,
    /// Its quantity.
    pub seats: i32,
}

fn date_field(v: &Value, name: &str) -> Result<NaiveDate, String> {
    let s = v[name]
        .as_str()
        .ok_or_else(|| format!("subscription.{name} is missing"))?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("subscription.{name} {s:?} is not a yyyy-MM-dd date"))
}

fn quantity_of(rate_plan: &Value) -> Option<f64> {
    rate_plan["quantity"]
        .as_f64()
        .or_else(|| rate_plan["ratePlanCharges"][0]["quantity"].as_f64())
}

impl SubscriptionView {
    /// Reads `GET /v1/subscriptions/{key}`'s answer; an error names the field.
    pub fn read(v: &Value) -> Result<Self, String> {
        let s = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("subscription.{name} is missing"))
        };
        let plan = &v["ratePlans"][0];
        Ok(SubscriptionView {
            number: s("subscriptionNumber")?,
            account_number: s("accountNumber")?,
            status: s("status")?,
            auto_renew: v["autoRenew"].as_bool().unwrap_or(false),
            term_start: date_field(v, "termStartDate")?,
            term_end: date_field(v, "termEndDate")?,
            current_term: v["currentTerm"].as_u64().unwrap_or(12) as u32,
            version: v["version"].as_u64().unwrap_or(1),
            cancelled_date: v["cancelledDate"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            product_rate_plan_id: plan["productRatePlanId"].as_str().map(str::to_string),
            seats: quantity_of(plan).unwrap_or(0.0).round() as i32,
        })
    }

    /// Whether it is active (not cancelled, not expired).
    pub fn active(&self) -> bool {
        self.status == "Active"
    }
}

/// The seats of a subscription answer's first rate plan.
pub fn seats_of(v: &Value) -> Option<i32> {
    quantity_of(&v["ratePlans"][0]).map(|q| q.round() as i32)
}

/// A callout notification's merge fields, as the connector reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// `Zuora-Notification-Id` (the same on every retry, and in the history).
    pub id: String,
    /// The event type (`SubscriptionCreated`, ...).
    pub event_type: String,
    /// The subscription it is about.
    pub subscription_number: Option<String>,
    /// Its account.
    pub account_number: Option<String>,
    /// The Zuora order that made the change (none for a PUT or a payment).
    pub order_number: Option<String>,
    /// When Zuora raised it.
    pub event_time: Option<DateTime<Utc>>,
    /// PaymentDeclined: the unpaid invoice.
    pub invoice_number: Option<String>,
    /// PaymentDeclined: its amount.
    pub amount: Option<f64>,
    /// PaymentDeclined: the gateway's code.
    pub gateway_response_code: Option<String>,
    /// AccountUpdated: the account's communication profile id (rule 6).
    pub communication_profile_id: Option<String>,
}

/// The subscription event types that become hub events; besides them only an
/// [`ACCOUNT_UPDATED`] carrying a profile id does ([`Notification::profile_change`]); any other
/// is acknowledged and produces nothing.
pub const MAPPED_EVENTS: [&str; 6] = [
    "SubscriptionCreated",
    "SubscriptionAmended",
    "SubscriptionRenewed",
    "SubscriptionCancelled",
    "AutoRenewChanged",
    "PaymentDeclined",
];

/// The account notification that tells the hub an account's communication profile may have
/// changed (it becomes `CommunicationProfileChanged`, so a lifted Silent profile releases the
/// account's licenses).
pub const ACCOUNT_UPDATED: &str = "AccountUpdated";

impl Notification {
    /// Reads a callout body (or a history row's `eventContext`): a JSON object with a string
    /// `eventType`, and a string `subscriptionNumber` for the mapped types; merge fields of
    /// the wrong type are refused, extra ones ignored. The error names the field.
    pub fn parse(id: &str, body: &Value) -> Result<Self, String> {
        let o = body
            .as_object()
            .ok_or_else(|| "the body is not a JSON object".to_string())?;
        let text = |name: &str| -> Result<Option<String>, String> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) if name == "gatewayResponseCode" => Ok(Some(n.to_string())),
                Some(other) => Err(format!("merge field {name} must be a string, not {other}")),
            }
        };
        let event_type = text("eventType")?.ok_or("merge field eventType is missing")?;
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("Zuora-Notification-Id {id:?} is not an id"));
        }
        let event_time = match text("eventTime")? {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(&t)
                    .map_err(|_| format!("merge field eventTime {t:?} is not an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
        };
        let amount = match o.get("amount") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => Some(
                s.parse::<f64>()
                    .map_err(|_| format!("merge field amount {s:?} is not a number"))?,
            ),
            Some(other) => return Err(format!("merge field amount must be a number, not {other}")),
        };
        let n = Notification {
            id: id.to_string(),
            event_type,
            subscription_number: text("subscriptionNumber")?,
            account_number: text("accountNumber")?,
            order_number: text("orderNumber")?,
            event_time,
            invoice_number: text("invoiceNumber")?,
            amount,
            gateway_response_code: text("gatewayResponseCode")?,
            communication_profile_id: text("communicationProfileId")?,
        };
        if n.profile_change() && n.account_number.is_none() {
            return Err(format!(
                "merge field accountNumber is required for {ACCOUNT_UPDATED}"
            ));
        }
        if MAPPED_EVENTS.contains(&n.event_type.as_str()) && n.subscription_number.is_none() {
            return Err(format!(
                "merge field subscriptionNumber is required for {}",
                n.event_type
            ));
        }
        Ok(n)
    }

    /// Whether this notification becomes a hub event.
    pub fn mapped(&self) -> bool {
        MAPPED_EVENTS.contains(&self.event_type.as_str()) || self.profile_change()
    }

    /// Whether it is an account update carrying the account's communication profile.
    pub fn profile_change(&self) -> bool {
        self.event_type == ACCOUNT_UPDATED && self.communication_profile_id.is_some()
    }
}

/// Everything the reverse mapping reads: the notification, the subscription and account it
/// names (fetched over REST), the catalog entry of its plan and, for an amendment, the seats
/// before.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// The notification.
    pub notification: &'a Notification,
    /// `GET /v1/subscriptions/{n}`.
    pub subscription: &'a Value,
    /// `GET /v1/accounts/{n}`.
    pub account: &'a Value,
    /// The catalog entry of the subscription's first rate plan.
    pub plan: Option<&'a CatalogPlan>,
    /// Seats of the version before (an amendment); `None`: unknown, taken as unchanged.
    pub previous_seats: Option<i32>,
    /// The tenant's name in event ids.
    pub tenant: &'a str,
    /// Now, for an event without `eventTime`.
    pub now: DateTime<Utc>,
    /// The profile ids.
    pub profiles: &'a Profiles,
}

/// A hub event made from a Zuora notification.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum FromZuora {
    /// A subscription was created.
    Created(SubscriptionCreated),
    /// It was amended.
    Amended(SubscriptionAmended),
    /// It entered a new term.
    Renewed(SubscriptionRenewed),
    /// It was cancelled.
    Cancelled(SubscriptionCancelled),
    /// Zuora's auto-renew flag changed.
    AutoRenew(AutoRenewChanged),
    /// A payment was declined.
    Declined(PaymentDeclined),
    /// An account's communication profile is (now) this one.
    Profile(CommunicationProfileChanged),
}

impl FromZuora {
    /// The event's record on `topic`.
    pub fn record(&self, codec: &Codec, topic: &str) -> Result<OutRecord, HandlerError> {
        use l2f_connector_kit::record::event_record;
        match self {
            FromZuora::Created(e) => event_record(codec, topic, e, None),
            FromZuora::Amended(e) => event_record(codec, topic, e, None),
            FromZuora::Renewed(e) => event_record(codec, topic, e, None),
            FromZuora::Cancelled(e) => event_record(codec, topic, e, None),
            FromZuora::AutoRenew(e) => event_record(codec, topic, e, None),
            FromZuora::Declined(e) => event_record(codec, topic, e, None),
            FromZuora::Profile(e) => event_record(codec, topic, e, None),
        }
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        match self {
            FromZuora::Created(e) => &e.envelope,
            FromZuora::Amended(e) => &e.envelope,
            FromZuora::Renewed(e) => &e.envelope,
            FromZuora::Cancelled(e) => &e.envelope,
            FromZuora::AutoRenew(e) => &e.envelope,
            FromZuora::Declined(e) => &e.envelope,
            FromZuora::Profile(e) => &e.envelope,
        }
    }
}

/// Money in whole cents from a float amount.
fn money(amount: f64, currency: &str) -> Money {
    Money {
        amount: Decimal::new((amount.max(0.0) * 100.0).round() as i64, 2),
        currency: currency.to_string(),
    }
}

/// The deployment a subscription is for: `L2fDeployment__c`, else read from the SKU.
fn deployment_of(sub: &Value, sku: &str) -> Deployment {
    match custom_field(sub, F_DEPLOYMENT) {
        Some("SELF_MANAGED") => Deployment::SelfManaged,
        Some("SAAS") => Deployment::Saas,
        _ if sku.contains("self-managed") => Deployment::SelfManaged,
        _ => Deployment::Saas,
    }
}

/// The `CommunicationProfileChanged` of an [`ACCOUNT_UPDATED`] notification: the profile the
/// account has now (read over REST as `account`, else the merge field), mapped through the
/// configured profile ids, keyed by the hub's account id. Its event id is the notification's,
/// like every Zuora event's.
pub fn profile_changed(
    n: &Notification,
    account: &Value,
    tenant: &str,
    now: DateTime<Utc>,
    profiles: &Profiles,
) -> Result<CommunicationProfileChanged, String> {
    let id = account["basicInfo"]["communicationProfileId"]
        .as_str()
        .or(n.communication_profile_id.as_deref())
        .ok_or("account.communicationProfileId is missing")?;
    let communication_profile = profiles.of(id).ok_or_else(|| {
        format!("account.communicationProfileId {id:?} is not a configured profile")
    })?;
    let account_id = custom_field(account, F_ACCOUNT_ID)
        .or(n.account_number.as_deref())
        .ok_or("account.L2fAccountId__c is missing")?
        .to_string();
    Ok(CommunicationProfileChanged {
        envelope: Envelope {
            event_id: event_id("zuora", tenant, &n.id),
            occurred_at: n.event_time.unwrap_or(now),
            source: SourceSystem::Zuora,
            correlation_id: event_id("l2f", "correlation", &format!("account:{account_id}")),
            causation_id: None,
        },
        account_id,
        communication_profile,
    })
}

/// The hub event a notification stands for (`Ok(None)` for a type the hub does not map);
/// an error names what Zuora's answer lacks, for the dead letters.
pub fn to_event(s: &Snapshot<'_>) -> Result<Option<FromZuora>, String> {
    let n = s.notification;
    if !MAPPED_EVENTS.contains(&n.event_type.as_str()) {
        return Ok(None);
    }
    let sub = SubscriptionView::read(s.subscription)?;
    let account_info = &s.account["basicInfo"];
    let hub_account = custom_field(s.subscription, F_ACCOUNT_ID)
        .or_else(|| custom_field(s.account, F_ACCOUNT_ID))
        .unwrap_or(&sub.account_number)
        .to_string();
    let parse_uuid = |name: &str| -> Result<Option<Uuid>, String> {
        custom_field(s.subscription, name)
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| format!("subscription.{name} {v:?} is not a uuid"))
            })
            .transpose()
    };
    let correlation_id = parse_uuid(F_CORRELATION_ID)?
        .unwrap_or_else(|| event_id("l2f", "correlation", &format!("account:{hub_account}")));
    let envelope = Envelope {
        event_id: event_id("zuora", s.tenant, &n.id),
        occurred_at: n.event_time.unwrap_or(s.now),
        source: SourceSystem::Zuora,
        correlation_id,
        causation_id: parse_uuid(F_CAUSATION_ID)?,
    };
    let currency = s
        .plan
        .map(|p| p.currency.clone())
        .or_else(|| {
            s.account["billingAndPayment"]["currency"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "USD".into());
    let unit = s.plan.map_or(0.0, |p| p.unit_price);
    let term_value =
        |seats: i32| unit * f64::from(seats.max(0)) * f64::from(sub.current_term) / 12.0;
    let sku = s
        .plan
        .map(|p| p.sku.clone())
        .or_else(|| sub.product_rate_plan_id.clone())
        .ok_or("subscription.ratePlans is empty")?;
    let deployment = deployment_of(s.subscription, &sku);
    let subscription_id = sub.number.clone();
    let event = match n.event_type.as_str() {
        "SubscriptionCreated" => {
            let entity_symbol =
                custom_field(s.account, F_ENTITY).ok_or("account.Entity__c is missing")?;
            let zuora_entity = entity_of(entity_symbol)
                .ok_or_else(|| format!("account.Entity__c {entity_symbol:?} is not an entity"))?;
            let batch_name = account_info["batch"]
                .as_str()
                .ok_or("account.batch is missing")?;
            let billing_batch = batch_of(batch_name)
                .ok_or_else(|| format!("account.batch {batch_name:?} is not Batch1..Batch5"))?;
            let profile_id = account_info["communicationProfileId"]
                .as_str()
                .ok_or("account.communicationProfileId is missing")?;
            let communication_profile = s.profiles.of(profile_id).ok_or_else(|| {
                format!("account.communicationProfileId {profile_id:?} is not a configured profile")
            })?;
            let country = s.account["billToContact"]["country"]
                .as_str()
                .ok_or("account.billToContact.country is missing")?;
            let bill_to_country = CountryCode::normalise("account.billToContact.country", country)
                .map_err(|v| v.to_string())?;
            FromZuora::Created(SubscriptionCreated {
                envelope,
                subscription_id,
                account_id: hub_account,
                order_id: custom_field(s.subscription, F_ORDER_ID)
                    .map(str::to_string)
                    .or_else(|| n.order_number.clone())
                    .unwrap_or_else(|| sub.number.clone()),
                zuora_entity,
                billing_batch,
                deployment,
                plan_sku: sku,
                seats: sub.seats,
                term_start: sub.term_start,
                term_end: sub.term_end,
                auto_renew: sub.auto_renew,
                bill_to_country,
                amount: money(term_value(sub.seats), &currency),
                communication_profile,
                bill_to_email: s.account["billToContact"]["workEmail"]
                    .as_str()
                    .filter(|e| !e.trim().is_empty())
                    .map(str::to_string),
            })
        }
        "SubscriptionAmended" => {
            let previous = s.previous_seats.unwrap_or(sub.seats);
            FromZuora::Amended(SubscriptionAmended {
                envelope,
                subscription_id,
                account_id: hub_account,
                previous_seats: previous,
                seats: sub.seats,
                effective_date: n.event_time.unwrap_or(s.now).date_naive(),
                amount: money(unit * f64::from((sub.seats - previous).max(0)), &currency),
            })
        }
        "SubscriptionRenewed" => FromZuora::Renewed(SubscriptionRenewed {
            envelope,
            subscription_id,
            account_id: hub_account,
            seats: sub.seats,
            term_start: sub.term_start,
            term_end: sub.term_end,
            amount: money(term_value(sub.seats), &currency),
            // A renewal an order asked for (the hub's, or a person's) is not automatic.
            auto_renewed: n.order_number.is_none(),
        }),
        "SubscriptionCancelled" => {
            let reason = match custom_field(s.subscription, F_CANCELLATION_REASON) {
                Some(r) => CancellationReason::VARIANTS
                    .iter()
                    .copied()
                    .find(|c| c.symbol() == r)
                    .ok_or_else(|| {
                        format!("subscription.{F_CANCELLATION_REASON} {r:?} is not a reason")
                    })?,
                // Cancelled in Zuora itself, without the hub: the customer's request.
                None => CancellationReason::CustomerRequest,
            };
            FromZuora::Cancelled(SubscriptionCancelled {
                envelope,
                subscription_id,
                account_id: hub_account,
                reason,
                effective_date: sub.cancelled_date.unwrap_or(sub.term_end),
                refund: None,
            })
        }
        "AutoRenewChanged" => FromZuora::AutoRenew(AutoRenewChanged {
            envelope,
            subscription_id,
            account_id: hub_account,
            flag_owner: SourceSystem::Zuora,
            auto_renew: sub.auto_renew,
        }),
        "PaymentDeclined" => FromZuora::Declined(PaymentDeclined {
            envelope,
            subscription_id,
            account_id: hub_account,
            invoice_id: n
                .invoice_number
                .clone()
                .ok_or("merge field invoiceNumber is missing")?,
            amount: money(n.amount.unwrap_or(0.0), &currency),
            decline_code: n
                .gateway_response_code
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            on_auto_renewal: sub.auto_renew && deployment == Deployment::Saas,
        }),
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// The custom fields object of a subscription answer, for logs.
pub fn l2f_fields(v: &Value) -> Map<String, Value> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("L2f"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /v1/orders` cancelling `subscription` for a card declined on its auto-renewal
/// (rule 10): auto-renew off and the cancellation in one order, as for any cancellation, but
/// effective on `effective` — the first day of the term the card did not pay for — rather
/// than at the end of that term; the reason and the causing event kept.
pub fn cancel_for_declined_card(
    day: NaiveDate,
    account_number: &str,
    subscription: &str,
    effective: NaiveDate,
    causation_id: Uuid,
) -> Value {
    let mut body = cancel_subscription(
        day,
        account_number,
        subscription,
        CancellationReason::CardDeclinedOnAutoRenewal,
        causation_id,
    );
    body["subscriptions"][0]["orderActions"][1]["cancelSubscription"] = json!({
        "cancellationPolicy": "SpecificDate",
        "cancellationEffectiveDate": effective.to_string(),
    });
    body
}

/// The deployment a subscription answer names in `L2fDeployment__c`, if any.
pub fn deployment_field(sub: &Value) -> Option<Deployment> {
    match custom_field(sub, F_DEPLOYMENT) {
        Some("SELF_MANAGED") => Some(Deployment::SelfManaged),
        Some("SAAS") => Some(Deployment::Saas),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples;

    fn rules() -> Rules {
        Rules::embedded()
    }

    fn country(c: &str) -> CountryCode {
        CountryCode::from_code(c).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A web-store SaaS purchase, as the customers app emits it.
    fn web_order() -> OrderPlaced {
        let mut o = examples::order_placed();
        o.envelope.source = SourceSystem::CustomersApp;
        o.sales_channel = SalesChannel::WebStore;
        o.reseller = None;
        o.deployment = Deployment::Saas;
        o.bill_to_country = country("DE");
        o.auto_renew = true;
        o.account_id = "cust_000001".into();
        o.order_id = "sub_000001".into();
        o.lines.truncate(1);
        o.lines[0].sku = "premium-saas-1y".into();
        o
    }

    fn deal(country_code: &str, party: Option<bool>) -> OrderPlaced {
        let mut o = examples::order_placed();
        o.sales_channel = if party.is_some() {
            SalesChannel::Reseller
        } else {
            SalesChannel::SalesAssisted
        };
        o.reseller = party.map(|authorized| Reseller {
            name: "Partner".into(),
            authorized,
        });
        o.bill_to_country = country(country_code);
        o.account_id = "001000000000001AAA".into();
        o
    }

    #[test]
    fn rule_3_web_direct_purchases_are_always_gitlab_inc() {
        // "web-direct purchases: always GitLab Inc. (US) at first purchase", whatever the
        // country.
        let p = placement(&web_order(), &rules());
        assert_eq!(p.entity, ZuoraEntity::GitlabInc);
        assert_eq!(p.party, PartyKind::WebDirect);
    }

    #[test]
    fn rule_3_sales_assisted_unauthorized_and_authorized_resellers_by_country() {
        // "sales-assisted customers and unauthorized resellers: NL → BV, DE → GmbH, GB → Ltd,
        //  AU → Pty Ltd, any other → Inc; authorized resellers: DE → GmbH, GB → Ltd,
        //  US → Inc, AU → Pty Ltd, any other → BV."
        use ZuoraEntity::*;
        let table = [
            ("NL", GitlabBv, GitlabBv, GitlabBv),
            ("DE", GitlabGmbh, GitlabGmbh, GitlabGmbh),
            ("GB", GitlabLtd, GitlabLtd, GitlabLtd),
            ("AU", GitlabPtyLtd, GitlabPtyLtd, GitlabPtyLtd),
            ("US", GitlabInc, GitlabInc, GitlabInc),
            ("JP", GitlabInc, GitlabInc, GitlabBv),
        ];
        let r = rules();
        for (c, direct, unauthorized, authorized) in table {
            assert_eq!(placement(&deal(c, None), &r).entity, direct, "{c} direct");
            assert_eq!(
                placement(&deal(c, Some(false)), &r).entity,
                unauthorized,
                "{c} unauthorized"
            );
            assert_eq!(
                placement(&deal(c, Some(true)), &r).entity,
                authorized,
                "{c} authorized"
            );
        }
    }

    #[test]
    fn marketplace_orders_are_placed_as_sales_assisted() {
        let mut o = deal("GB", None);
        o.sales_channel = SalesChannel::GovukDigitalMarketplace;
        let p = placement(&o, &rules());
        assert_eq!(p.party, PartyKind::SalesAssisted);
        assert_eq!(p.entity, ZuoraEntity::GitlabLtd);
        assert_eq!(p.batch, BillingBatch::Batch2);
    }

    #[test]
    fn rule_4_batches_web_direct_1_sales_assisted_2_reseller_4() {
        // "Batch1 web direct, Batch2 sales-assisted, ... Batch4 reseller".
        let r = rules();
        assert_eq!(placement(&web_order(), &r).batch, BillingBatch::Batch1);
        assert_eq!(placement(&deal("NL", None), &r).batch, BillingBatch::Batch2);
        assert_eq!(
            placement(&deal("NL", Some(true)), &r).batch,
            BillingBatch::Batch4
        );
        assert_eq!(
            placement(&deal("NL", Some(false)), &r).batch,
            BillingBatch::Batch4
        );
        assert_eq!(batch_name(BillingBatch::Batch4), "Batch4");
        assert_eq!(batch_of("Batch4"), Some(BillingBatch::Batch4));
        assert_eq!(batch_of("Batch9"), None);
    }

    #[test]
    fn rule_5_and_6_the_order_s_flag_and_the_default_profile() {
        // "SaaS purchases in the customers app default to on ... sales-assisted deals start
        //  off"; "new accounts get the Default profile".
        let r = rules();
        let web = placement(&web_order(), &r);
        assert!(web.auto_renew);
        assert_eq!(web.profile, CommunicationProfile::Default);
        let sa = placement(&deal("DE", None), &r);
        assert!(!sa.auto_renew);
        let order = create_subscription(
            &deal("DE", None),
            &sa,
            OrderAccount::Existing("x".into()),
            &[],
            &Trace::of(&deal("DE", None)),
        );
        assert_eq!(
            order["subscriptions"][0]["orderActions"][0]["createSubscription"]["terms"]
                ["autoRenew"],
            false
        );
    }

    #[test]
    fn rule_11_an_unknown_sku_and_one_not_yet_sellable_are_permanent_and_named() {
        let mut o = web_order();
        o.lines[0].sku = "platinum-saas-1y".into();
        let e = check_skus(&o, &rules()).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("platinum-saas-1y"), "{e}");
        assert!(e.message().contains("rule 11"), "{e}");
        let mut o = web_order();
        o.envelope.occurred_at = DateTime::parse_from_rfc3339("2025-01-20T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // premium-saas-1y is announced 2025-01-02 and sellable from 2025-02-03.
        let e = check_skus(&o, &rules()).unwrap_err();
        assert!(e.message().contains("2025-02-03"), "{e}");
        assert!(check_skus(&web_order(), &rules()).is_ok());
    }

    #[test]
    fn account_numbers_are_the_hub_account_on_its_entity() {
        assert_eq!(
            account_number("cust_000001", ZuoraEntity::GitlabInc),
            "cust_000001-INC"
        );
        assert_eq!(
            account_number("001A", ZuoraEntity::GitlabPtyLtd),
            "001A-PTY"
        );
        let suffixes: std::collections::HashSet<_> = ZuoraEntity::VARIANTS
            .iter()
            .map(|e| entity_suffix(*e))
            .collect();
        assert_eq!(suffixes.len(), 5);
    }

    #[test]
    fn a_new_account_carries_entity_batch_profile_contact_and_crm_id() {
        let o = deal("GB", None);
        let p = placement(&o, &rules());
        let a = new_account(&o, &p, &Profiles::default());
        assert_eq!(a["accountNumber"], "001000000000001AAA-LTD");
        assert_eq!(a["batch"], "Batch2");
        assert_eq!(a["communicationProfileId"], "Default");
        assert_eq!(a["Entity__c"], "GITLAB_LTD");
        assert_eq!(a["L2fAccountId__c"], "001000000000001AAA");
        assert_eq!(a["crmId"], "001000000000001AAA");
        assert_eq!(a["billToContact"]["country"], "GB");
        assert_eq!(a["billToContact"]["workEmail"], "buyer@example.de");
        assert_eq!(a["currency"], "USD");
        let web = new_account(
            &web_order(),
            &placement(&web_order(), &rules()),
            &Profiles::default(),
        );
        assert!(
            web.get("crmId").is_none(),
            "a web-store account has no CRM id"
        );
    }

    #[test]
    fn contact_names_come_from_the_email() {
        assert_eq!(
            contact_names("ada.lovelace@example.co.uk"),
            ("Ada".into(), "Lovelace".into())
        );
        assert_eq!(
            contact_names("buyer@x.de"),
            ("Buyer".into(), "Buyer".into())
        );
        assert_eq!(
            contact_names("jean-luc.van_damme+shop@x"),
            ("Jean".into(), "Luc Van Damme".into())
        );
    }

    #[test]
    fn terms_are_counted_in_whole_months() {
        assert_eq!(term_months(day(2026, 12, 1), day(2027, 11, 30)), 12);
        assert_eq!(term_months(day(2026, 12, 1), day(2027, 12, 1)), 12);
        assert_eq!(term_months(day(2026, 1, 15), day(2026, 4, 14)), 3);
        assert_eq!(term_months(day(2026, 1, 15), day(2026, 1, 20)), 1);
        assert_eq!(term_months(day(2026, 1, 31), day(2027, 1, 30)), 12);
    }

    #[test]
    fn the_subscription_order_has_every_line_and_the_flow_s_ids() {
        let o = examples::order_placed();
        let p = placement(&o, &rules());
        let plan = |sku: &str, id: &str| CatalogPlan {
            sku: sku.into(),
            product_rate_plan_id: id.into(),
            charge_id: Some(format!("{id}-charge")),
            unit_price: 29.0,
            currency: "USD".into(),
        };
        let body = create_subscription(
            &o,
            &p,
            OrderAccount::New(new_account(&o, &p, &Profiles::default())),
            &[
                Subscribe {
                    plan: plan("premium-self-managed-1y", "prp-1"),
                    quantity: 25,
                },
                Subscribe {
                    plan: plan("ci-minutes-1000", "prp-2"),
                    quantity: 2,
                },
            ],
            &Trace::of(&o),
        );
        assert_eq!(body["orderDate"], "2025-11-24");
        assert_eq!(body["newAccount"]["accountNumber"], "acct-1001-GMBH");
        let s = &body["subscriptions"][0];
        let cs = &s["orderActions"][0]["createSubscription"];
        assert_eq!(cs["terms"]["initialTerm"]["period"], 12);
        assert_eq!(cs["terms"]["initialTerm"]["startDate"], "2026-12-01");
        assert_eq!(cs["terms"]["renewalTerms"][0]["period"], 12);
        assert_eq!(cs["subscribeToRatePlans"][1]["productRatePlanId"], "prp-2");
        assert_eq!(
            cs["subscribeToRatePlans"][0]["chargeOverrides"][0]["pricing"]["recurringPerUnit"]
                ["quantity"],
            25
        );
        assert_eq!(s["customFields"][F_ORDER_ID], "ord-2026-0042");
        assert_eq!(s["customFields"][F_ACCOUNT_ID], "acct-1001");
        assert_eq!(
            s["customFields"][F_CAUSATION_ID],
            o.envelope.event_id.to_string()
        );
        assert_eq!(s["customFields"][F_DEPLOYMENT], "SELF_MANAGED");
    }

    #[test]
    fn rule_10_a_cancellation_turns_auto_renew_off_and_keeps_the_reason() {
        // "a cancellation turns it off"; the reason is kept.
        let id = Uuid::from_u128(7);
        let body = cancel_subscription(
            day(2026, 3, 1),
            "cust_1-INC",
            "A-S00000001",
            CancellationReason::CustomerRequest,
            id,
        );
        let s = &body["subscriptions"][0];
        assert_eq!(s["orderActions"][0]["type"], "TermsAndConditions");
        assert_eq!(
            s["orderActions"][0]["termsAndConditions"]["autoRenew"],
            false
        );
        assert_eq!(s["orderActions"][1]["type"], "CancelSubscription");
        assert_eq!(
            s["orderActions"][1]["cancelSubscription"]["cancellationPolicy"],
            "EndOfCurrentTerm"
        );
        assert_eq!(s["customFields"][F_CANCELLATION_REASON], "CUSTOMER_REQUEST");
        assert_eq!(s["customFields"][F_CAUSATION_ID], id.to_string());
        assert_eq!(body["existingAccountNumber"], "cust_1-INC");
        // "entity change at renewal (cancel and re-create under the new entity's account)"
        assert_eq!(
            l2f_rules::cancellation::at_renewal(ZuoraEntity::GitlabLtd, ZuoraEntity::GitlabGmbh),
            Some(CancellationReason::EntityChangeAtRenewal)
        );
    }

    fn sub_json() -> Value {
        json!({
            "success": true,
            "subscriptionNumber": "A-S00000007",
            "accountNumber": "cust_000001-INC",
            "status": "Active",
            "autoRenew": true,
            "termStartDate": "2026-01-01",
            "termEndDate": "2027-01-01",
            "currentTerm": 12,
            "version": 2,
            "ratePlans": [{"productRatePlanId": "prp-premium-saas", "quantity": 10.0}],
            "L2fOrderId__c": "sub_000001",
            "L2fAccountId__c": "cust_000001",
            "L2fCorrelationId__c": "7c4a1d2e-0000-4000-8000-000000000001",
            "L2fCausationId__c": "5f0e8a9c-0000-4000-8000-000000000002",
            "L2fDeployment__c": "SAAS",
        })
    }

    fn account_json() -> Value {
        json!({
            "success": true,
            "basicInfo": {"accountNumber": "cust_000001-INC", "batch": "Batch1",
                          "communicationProfileId": "Default", "Entity__c": "GITLAB_INC"},
            "billingAndPayment": {"currency": "USD"},
            "billToContact": {"country": "US"},
            "customFields": {"Entity__c": "GITLAB_INC", "L2fAccountId__c": "cust_000001"},
        })
    }

    fn plan() -> CatalogPlan {
        CatalogPlan {
            sku: "premium-saas-1y".into(),
            product_rate_plan_id: "prp-premium-saas".into(),
            charge_id: None,
            unit_price: 29.0,
            currency: "USD".into(),
        }
    }

    fn map(event_type: &str, sub: &Value, extra: Value) -> Result<Option<FromZuora>, String> {
        let mut body = json!({"eventType": event_type, "subscriptionNumber": "A-S00000007",
                              "accountNumber": "cust_000001-INC", "orderNumber": "O-1",
                              "eventTime": "2026-01-01T10:00:00.000Z"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let n = Notification::parse("n-1", &body).unwrap();
        let (account, plan, profiles) = (account_json(), plan(), Profiles::default());
        to_event(&Snapshot {
            notification: &n,
            subscription: sub,
            account: &account,
            plan: Some(&plan),
            previous_seats: Some(8),
            tenant: "https://rest.test.zuora.com",
            now: Utc::now(),
            profiles: &profiles,
        })
    }

    #[test]
    fn a_created_notification_becomes_subscription_created_with_the_flow_s_ids() {
        let Some(FromZuora::Created(e)) =
            map("SubscriptionCreated", &sub_json(), json!({})).unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(e.subscription_id, "A-S00000007");
        assert_eq!(e.account_id, "cust_000001");
        assert_eq!(e.order_id, "sub_000001");
        assert_eq!(e.zuora_entity, ZuoraEntity::GitlabInc);
        assert_eq!(e.billing_batch, BillingBatch::Batch1);
        assert_eq!(e.communication_profile, CommunicationProfile::Default);
        assert_eq!(e.plan_sku, "premium-saas-1y");
        assert_eq!(e.seats, 10);
        assert!(e.auto_renew);
        assert_eq!(e.amount.amount, Decimal::new(29000, 2));
        assert_eq!(e.envelope.source, SourceSystem::Zuora);
        assert_eq!(
            e.envelope.event_id,
            event_id("zuora", "https://rest.test.zuora.com", "n-1")
        );
        assert_eq!(
            e.envelope.causation_id.unwrap().to_string(),
            "5f0e8a9c-0000-4000-8000-000000000002"
        );
        assert_eq!(
            e.envelope.occurred_at.to_rfc3339(),
            "2026-01-01T10:00:00+00:00"
        );
        // The event keeps its contract.
        assert!(FromZuora::Created(e)
            .record(&Codec::new(), "subscriptions")
            .is_ok());
    }

    #[test]
    fn the_other_notifications_map_to_their_events() {
        let mut sub = sub_json();
        sub["status"] = json!("Cancelled");
        sub["autoRenew"] = json!(false);
        sub["cancelledDate"] = json!("2027-01-01");
        sub[F_CANCELLATION_REASON] = json!("ENTITY_CHANGE_AT_RENEWAL");
        let Some(FromZuora::Cancelled(c)) = map("SubscriptionCancelled", &sub, json!({})).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.reason, CancellationReason::EntityChangeAtRenewal);
        assert_eq!(c.effective_date, day(2027, 1, 1));
        let Some(FromZuora::AutoRenew(a)) =
            map("AutoRenewChanged", &sub, json!({"orderNumber": null})).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.flag_owner, SourceSystem::Zuora);
        assert!(!a.auto_renew);
        let Some(FromZuora::Amended(m)) =
            map("SubscriptionAmended", &sub_json(), json!({})).unwrap()
        else {
            panic!()
        };
        assert_eq!((m.previous_seats, m.seats), (8, 10));
        assert_eq!(m.amount.amount, Decimal::new(5800, 2));
        let Some(FromZuora::Renewed(r)) =
            map("SubscriptionRenewed", &sub_json(), json!({})).unwrap()
        else {
            panic!()
        };
        assert!(!r.auto_renewed, "a renewal order is not automatic");
        let Some(FromZuora::Declined(d)) = map(
            "PaymentDeclined",
            &sub_json(),
            json!({"invoiceNumber": "INV00000009", "amount": 290.5, "gatewayResponseCode": "05", "orderNumber": null}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(d.invoice_id, "INV00000009");
        assert_eq!(d.amount.amount, Decimal::new(29050, 2));
        assert!(d.on_auto_renewal);
        assert_eq!(map("AccountUpdated", &sub_json(), json!({})).unwrap(), None);
    }

    #[test]
    fn what_cannot_be_mapped_is_named() {
        let mut sub = sub_json();
        sub[F_CANCELLATION_REASON] = json!("BORED");
        let e = map("SubscriptionCancelled", &sub, json!({})).unwrap_err();
        assert!(e.contains("BORED"), "{e}");
        let mut sub = sub_json();
        sub["termEndDate"] = json!("next year");
        let e = map("SubscriptionCreated", &sub, json!({})).unwrap_err();
        assert!(e.contains("termEndDate"), "{e}");
    }

    #[test]
    fn notifications_are_parsed_strictly() {
        let ok =
            json!({"eventType": "SubscriptionCreated", "subscriptionNumber": "A-S1", "extra": 1});
        assert!(Notification::parse("abc", &ok).is_ok());
        for (body, field) in [
            (json!([1]), "JSON object"),
            (json!({"subscriptionNumber": "A-S1"}), "eventType"),
            (json!({"eventType": 7}), "eventType"),
            (
                json!({"eventType": "SubscriptionCreated"}),
                "subscriptionNumber",
            ),
            (
                json!({"eventType": "AutoRenewChanged", "subscriptionNumber": "A", "eventTime": "noon"}),
                "eventTime",
            ),
            (
                json!({"eventType": "PaymentDeclined", "subscriptionNumber": "A", "amount": "lots"}),
                "amount",
            ),
        ] {
            let e = Notification::parse("abc", &body).unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        }
        assert!(Notification::parse("", &ok).is_err());
        let other = json!({"eventType": "AccountUpdated", "accountNumber": "A1"});
        assert!(!Notification::parse("x", &other).unwrap().mapped());
        let profile = json!({"eventType": "AccountUpdated", "communicationProfileId": "Silent"});
        let e = Notification::parse("x", &profile).unwrap_err();
        assert!(e.contains("accountNumber"), "{e}");
    }

    #[test]
    fn rule_6_an_account_update_with_its_profile_becomes_communication_profile_changed() {
        let body = json!({"eventType": "AccountUpdated", "accountNumber": "cust_000001-INC",
            "accountId": "2c9", "batch": "Batch1", "communicationProfileId": "prof-default-id"});
        let n = Notification::parse("n-9", &body).unwrap();
        assert!(n.mapped() && n.profile_change());
        let profiles = Profiles {
            default: "prof-default-id".into(),
            silent: "prof-silent-id".into(),
        };
        let now = Utc::now();
        let mut account = account_json();
        account["basicInfo"]["communicationProfileId"] = json!("prof-default-id");
        let e = profile_changed(&n, &account, "t", now, &profiles).unwrap();
        assert_eq!(e.communication_profile, CommunicationProfile::Default);
        assert_eq!(e.account_id, "cust_000001");
        assert_eq!(e.envelope.event_id, event_id("zuora", "t", "n-9"));
        assert_eq!(e.envelope.source, SourceSystem::Zuora);
        account["basicInfo"]["communicationProfileId"] = json!("prof-silent-id");
        let e = profile_changed(&n, &account, "t", now, &profiles).unwrap();
        assert_eq!(e.communication_profile, CommunicationProfile::Silent);
        account["basicInfo"]["communicationProfileId"] = json!("prof-unknown");
        let e = profile_changed(&n, &account, "t", now, &profiles).unwrap_err();
        assert!(e.contains("prof-unknown"), "{e}");
        // Not a subscription event: the subscription mapping leaves it alone.
        assert_eq!(
            map(
                "AccountUpdated",
                &sub_json(),
                json!({"communicationProfileId": "Default"})
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn rule_10_a_declined_card_cancels_from_the_unpaid_term_with_auto_renew_off() {
        let id = Uuid::from_u128(9);
        let body = cancel_for_declined_card(
            day(2027, 1, 2),
            "cust_1-INC",
            "A-S00000001",
            day(2027, 1, 1),
            id,
        );
        let s = &body["subscriptions"][0];
        assert_eq!(
            s["orderActions"][0]["termsAndConditions"]["autoRenew"],
            false
        );
        let c = &s["orderActions"][1]["cancelSubscription"];
        assert_eq!(c["cancellationPolicy"], "SpecificDate");
        assert_eq!(c["cancellationEffectiveDate"], "2027-01-01");
        assert_eq!(
            s["customFields"][F_CANCELLATION_REASON],
            "CARD_DECLINED_ON_AUTO_RENEWAL"
        );
        assert_eq!(s["customFields"][F_CAUSATION_ID], id.to_string());
        assert_eq!(
            deployment_field(&json!({F_DEPLOYMENT: "SELF_MANAGED"})),
            Some(Deployment::SelfManaged)
        );
        assert_eq!(deployment_field(&json!({})), None);
    }

    #[test]
    fn a_write_keeps_its_traceparent_beside_each_causing_event_and_reads_it_back() {
        let tp = l2f_bus::headers::TraceParent::new_root().to_string();
        let id = Uuid::new_v4();
        let cancel = cancel_subscription(
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            "A00000001",
            "A-S00000001",
            CancellationReason::CustomerRequest,
            id,
        );
        let stamped = with_traceparent(&cancel, &tp);
        let fields = &stamped["subscriptions"][0]["customFields"];
        assert_eq!(fields[F_TRACEPARENT], tp.as_str());
        assert_eq!(fields[F_CAUSATION_ID], id.to_string());
        let update = with_traceparent(&auto_renew_update(true, id), &tp);
        assert_eq!(
            update[F_TRACEPARENT],
            tp.as_str(),
            "a top-level custom field"
        );
        // Nothing names a cause: nothing is stamped.
        assert_eq!(with_traceparent(&json!({"a": 1}), &tp), json!({"a": 1}));
        // Read back from Zuora's answer (custom fields at the top level).
        let answer = json!({"subscriptionNumber": "A-S00000001", F_TRACEPARENT: tp});
        assert_eq!(traceparent_of(&answer).map(|t| t.to_string()), Some(tp));
        assert_eq!(traceparent_of(&json!({F_TRACEPARENT: "garbage"})), None);
    }
}
