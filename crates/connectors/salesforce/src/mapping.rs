//! Pure mappings between the hub's events and Salesforce records — no I/O, so the rules that
//! decide what reaches Salesforce, and what a deal becomes, are tested without a server.
//!
//! - [`lead`]: `LeadCaptured` → a `Lead` upserted by `L2f_Lead_Id__c`; handbook rule 2 as
//!   for Marketo (a lead without email, first and last name, company and country is a
//!   permanent failure naming the fields, so it reaches neither app).
//! - [`order_placed`]: a closed-won `Opportunity` row of [`DEALS_SOQL`] → `OrderPlaced`, with
//!   rule 5 (sales-assisted and reseller deals start with auto-renew off); a deal the contract
//!   cannot map is [`Unmappable`], naming the field and the value — never a half event.
//! - [`mirror`]: a subscription event from Zuora → the `Zuora__CustomerAccount__c` and
//!   `Zuora__Subscription__c` records of the billing mirror.
//! - [`true_up`]: a `UsageReported` whose billable users exceed the seats bought (rule 9,
//!   `l2f_rules::billable::true_up`) → an `L2f_True_Up__c` upserted by
//!   `L2f_True_Up_Id__c` = `<subscription>:<reporting period>`, so one subscription's period
//!   is flagged once however often it is reported.
//!
//! The Salesforce admin contract these read and write is documented in the README
//! ("Salesforce contract").

use chrono::{DateTime, NaiveDate, Utc};
use l2f_bus::HandlerError;
use l2f_contracts::events::{
    Deployment, Envelope, LeadCaptured, LeadSource, Money, OrderLine, OrderPlaced, OrderType,
    Reseller, SalesChannel, SourceSystem, UsageReported, ZuoraEntity,
};
use l2f_contracts::record::{event_id, AnyEvent};
use l2f_contracts::CountryCode;
use l2f_rules::Rules;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};

/// The sObject the leads sink writes, and the External ID field it upserts by.
pub const LEAD: (&str, &str) = ("Lead", "L2f_Lead_Id__c");
/// The billing mirror's account object and its External ID field (the Zuora account number).
pub const CUSTOMER_ACCOUNT: (&str, &str) = ("Zuora__CustomerAccount__c", "Zuora__External_Id__c");
/// The billing mirror's subscription object and its External ID field (the subscription number).
pub const SUBSCRIPTION: (&str, &str) = ("Zuora__Subscription__c", "Zuora__External_Id__c");
/// The true-up object and its External ID field (`<subscription>:<YYYY-MM>`).
pub const TRUE_UP: (&str, &str) = ("L2f_True_Up__c", "L2f_True_Up_Id__c");
/// The status every new Lead gets.
pub const LEAD_STATUS: &str = "Open - Not Contacted";
/// The `source` of the source's event ids (`record::event_id("salesforce", <org id>, …)`).
pub const EVENT_SOURCE: &str = "salesforce";

/// The fields the source reads of every closed-won deal, in the order of the query.
pub const DEAL_FIELDS: &str = "Id, AccountId, Account.Name, Account.BillingCountryCode, Amount, CloseDate, Type, Deployment__c, Sku__c, Seats__c, Term_Months__c, Party__c, Reseller_Name__c, Sold_To_Email__c, SystemModstamp";

/// The query of the closed-won deals, without a cursor (`{WHERE}` filled by [`deals_soql`]).
pub const DEALS_SOQL: &str =
    "SELECT {FIELDS} FROM Opportunity WHERE {WHERE} ORDER BY SystemModstamp ASC, Id ASC";

/// The source's position in the Opportunities: the last deal read, by `SystemModstamp` and
/// then `Id` (several deals share a second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The deal's `SystemModstamp`, as Salesforce wrote it (`2026-05-01T12:34:56.000+0000`).
    pub modstamp: String,
    /// The deal's Id.
    pub id: String,
}

impl Cursor {
    /// The cursor as the source loop keeps it: `{"modstamp","id"}`.
    pub fn to_value(&self) -> Value {
        json!({ "modstamp": self.modstamp, "id": self.id })
    }

    /// A kept cursor; `Ok(None)` for none (`null`: from the start).
    pub fn from_value(v: &Value) -> Result<Option<Cursor>, String> {
        if v.is_null() {
            return Ok(None);
        }
        match (v["modstamp"].as_str(), v["id"].as_str()) {
            (Some(m), Some(id)) if parse_datetime(m).is_some() && is_salesforce_id(id) => {
                Ok(Some(Cursor {
                    modstamp: m.to_string(),
                    id: id.to_string(),
                }))
            }
            _ => Err(format!("unreadable Salesforce cursor {v}")),
        }
    }

    /// The deal's position: `<Id>@<SystemModstamp>`, the event id's last part.
    pub fn position(&self) -> String {
        format!("{}@{}", self.id, self.modstamp)
    }
}

/// The SOQL of the next deals after `cursor` (all closed-won deals without one).
pub fn deals_soql(cursor: Option<&Cursor>) -> String {
    let filter = match cursor.and_then(|c| Some((soql_datetime(&c.modstamp)?, &c.id))) {
        Some((t, id)) => format!(
            "IsWon = true AND (SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > '{id}'))"
        ),
        None => "IsWon = true".to_string(),
    };
    DEALS_SOQL
        .replace("{FIELDS}", DEAL_FIELDS)
        .replace("{WHERE}", &filter)
}

/// Salesforce's `2026-05-01T12:34:56.000+0000` (or RFC 3339) as a time.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A SOQL dateTime literal (`2026-05-01T12:34:56.000Z`), for a time Salesforce gave.
fn soql_datetime(s: &str) -> Option<String> {
    parse_datetime(s).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Whether `id` is shaped like a Salesforce record Id (15 or 18 letters and digits): what
/// the source puts in a SOQL literal, so no quote can ever reach it.
pub fn is_salesforce_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a hub account id is a Salesforce Account Id (`001…`): sales-assisted customers'.
pub fn is_account_id(id: &str) -> bool {
    is_salesforce_id(id) && id.starts_with("001")
}

/// The label of each lead source in the `LeadSource` picklist (the same as Marketo's).
pub fn lead_source(s: LeadSource) -> &'static str {
    match s {
        LeadSource::SignUp => "Sign-up",
        LeadSource::Trial => "Trial",
        LeadSource::ContactSales => "Contact Sales",
        LeadSource::AbandonedCart => "Abandoned Cart",
        LeadSource::WebForm => "Web Form",
    }
}

/// The `Lead` for `lead` (with `attributes.type` and its external id, as a collections
/// upsert takes it), or a permanent error naming every missing required field (rule 2).
pub fn lead(lead: &LeadCaptured) -> Result<Value, HandlerError> {
    let missing = lead.missing_for_marketo();
    if !missing.is_empty() {
        return Err(HandlerError::permanent(format!(
            "lead {} is not ready for Salesforce (handbook rule 2): missing required field(s) {}",
            lead.lead_id,
            missing.join(", ")
        )));
    }
    let text = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or_default().to_string();
    Ok(json!({
        "attributes": { "type": LEAD.0 },
        LEAD.1: lead.lead_id,
        "FirstName": text(&lead.first_name),
        "LastName": text(&lead.last_name),
        "Company": text(&lead.company),
        "Email": lead.email.trim(),
        "CountryCode": lead.country.map(|c| c.as_str()).unwrap_or_default(),
        "LeadSource": lead_source(lead.lead_source),
        "Status": LEAD_STATUS,
    }))
}

/// Why a deal cannot become an `OrderPlaced`: the field, its value and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Opportunity {deal}: {field} = {value} {why}")]
pub struct Unmappable {
    /// The deal's Id (or `?`).
    pub deal: String,
    /// The Opportunity field at fault (`Party__c`, `Account.BillingCountryCode`).
    pub field: &'static str,
    /// Its value as Salesforce gave it (`null` when absent).
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// What the source needs besides the deal to make its event.
pub struct DealContext<'a> {
    /// The feed epoch: the org id.
    pub org: &'a str,
    /// The org's currency (ISO 4217).
    pub currency: &'a str,
    /// The handbook's rules (rule 5: the auto-renew a deal starts with).
    pub rules: &'a Rules,
}

/// The position of a deal row (`Id`, `SystemModstamp`), if it has one.
pub fn deal_position(deal: &Value) -> Option<Cursor> {
    let id = deal["Id"].as_str().filter(|id| is_salesforce_id(id))?;
    let modstamp = deal["SystemModstamp"]
        .as_str()
        .filter(|m| parse_datetime(m).is_some())?;
    Some(Cursor {
        modstamp: modstamp.to_string(),
        id: id.to_string(),
    })
}

/// The correlation id of everything about an account.
pub fn account_correlation(account_id: &str) -> uuid::Uuid {
    event_id("l2f", "correlation", &format!("account:{account_id}"))
}

struct Deal<'a> {
    v: &'a Value,
    id: String,
}

impl<'a> Deal<'a> {
    fn bad(&self, field: &'static str, why: impl Into<String>) -> Unmappable {
        let value = match field.split_once('.') {
            Some((rel, f)) => &self.v[rel][f],
            None => &self.v[field],
        };
        Unmappable {
            deal: self.id.clone(),
            field,
            value: value.to_string(),
            why: why.into(),
        }
    }

    fn get(&self, field: &'static str) -> &'a Value {
        match field.split_once('.') {
            Some((rel, f)) => &self.v[rel][f],
            None => &self.v[field],
        }
    }

    /// A text field, trimmed; absent or blank is `None`.
    fn text(&self, field: &'static str) -> Option<&'a str> {
        self.get(field)
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn required(&self, field: &'static str) -> Result<&'a str, Unmappable> {
        self.text(field)
            .ok_or_else(|| self.bad(field, "is required (missing or blank)"))
    }

    /// A number field (Salesforce sends numbers; a numeric string is taken too).
    fn decimal(&self, field: &'static str) -> Result<Decimal, Unmappable> {
        let text = match self.get(field) {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            Value::Null => return Err(self.bad(field, "is required (missing)")),
            _ => return Err(self.bad(field, "is not a number")),
        };
        text.parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| self.bad(field, "is not a number"))
    }

    /// A whole number from 1 to `max`.
    fn count(&self, field: &'static str, max: i64) -> Result<i32, Unmappable> {
        let d = self.decimal(field)?;
        match (d.fract().is_zero(), d.to_i64()) {
            (true, Some(n)) if (1..=max).contains(&n) => Ok(n as i32),
            _ => Err(self.bad(field, format!("must be a whole number from 1 to {max}"))),
        }
    }
}

/// The `OrderPlaced` of a closed-won deal (a row of [`DEALS_SOQL`]).
pub fn order_placed(deal: &Value, ctx: &DealContext<'_>) -> Result<OrderPlaced, Unmappable> {
    let d = Deal {
        v: deal,
        id: deal["Id"].as_str().unwrap_or("?").to_string(),
    };
    let pos = deal_position(deal).ok_or_else(|| {
        d.bad(
            "SystemModstamp",
            "is not a dateTime (or the deal has no Id)",
        )
    })?;
    let account_id = d.required("AccountId")?;
    let country_text = d.required("Account.BillingCountryCode")?;
    let bill_to_country = CountryCode::from_code(country_text).ok_or_else(|| {
        d.bad(
            "Account.BillingCountryCode",
            "is not an ISO 3166-1 alpha-2 country code",
        )
    })?;
    let deployment = match d.required("Deployment__c")? {
        "SaaS" => Deployment::Saas,
        "Self-Managed" => Deployment::SelfManaged,
        _ => return Err(d.bad("Deployment__c", "is not one of SaaS, Self-Managed")),
    };
    let (sales_channel, reseller) = match d.required("Party__c")? {
        "Direct" => (SalesChannel::SalesAssisted, None),
        party @ ("Unauthorized Reseller" | "Authorized Reseller") => {
            let name = d.text("Reseller_Name__c").ok_or_else(|| {
                d.bad(
                    "Reseller_Name__c",
                    format!("is required for a {party} deal (missing or blank)"),
                )
            })?;
            let reseller = Reseller {
                name: name.to_string(),
                authorized: party == "Authorized Reseller",
            };
            (SalesChannel::Reseller, Some(reseller))
        }
        _ => {
            return Err(d.bad(
                "Party__c",
                "is not one of Direct, Unauthorized Reseller, Authorized Reseller",
            ))
        }
    };
    let order_type = match d.text("Type") {
        Some("Renewal") => OrderType::Renewal,
        Some("Add-On") => OrderType::AddOn,
        _ => OrderType::New,
    };
    let sku = d.required("Sku__c")?;
    let seats = d.count("Seats__c", 1_000_000)?;
    let months = d.count("Term_Months__c", 120)?;
    let amount = d.decimal("Amount")?;
    if amount.is_sign_negative() {
        return Err(d.bad("Amount", "must not be negative"));
    }
    if amount.normalize().scale() > 2 {
        return Err(d.bad("Amount", "has more than two decimal places"));
    }
    let close = d.required("CloseDate")?;
    let term_start = NaiveDate::parse_from_str(close, "%Y-%m-%d")
        .map_err(|_| d.bad("CloseDate", "is not a date (YYYY-MM-DD)"))?;
    let term_end = term_start
        .checked_add_months(chrono::Months::new(months as u32))
        .ok_or_else(|| d.bad("Term_Months__c", "takes the term past the calendar"))?;
    let sold_to_email = d.required("Sold_To_Email__c")?;
    if !sold_to_email.contains('@') {
        return Err(d.bad("Sold_To_Email__c", "is not an email address"));
    }
    let money = |amount: Decimal| Money {
        amount: amount.normalize(),
        currency: ctx.currency.to_string(),
    };
    let unit_price = (amount / Decimal::from(seats))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let occurred_at = parse_datetime(&pos.modstamp).unwrap_or_else(Utc::now);
    Ok(OrderPlaced {
        envelope: Envelope {
            event_id: event_id(EVENT_SOURCE, ctx.org, &pos.position()),
            occurred_at,
            source: SourceSystem::Salesforce,
            correlation_id: account_correlation(account_id),
            causation_id: None,
        },
        order_id: pos.id.clone(),
        account_id: account_id.to_string(),
        sales_channel,
        deployment,
        order_type,
        reseller,
        bill_to_country,
        sold_to_email: sold_to_email.to_string(),
        lines: vec![OrderLine {
            sku: sku.to_string(),
            quantity: seats,
            unit_price: money(unit_price),
        }],
        total: money(amount),
        term_start,
        term_end,
        auto_renew: ctx.rules.auto_renew.initial(deployment, sales_channel),
    })
}

/// The suffix of a Zuora account number for each entity (`<account>-<SUFFIX>`).
pub fn entity_suffix(e: ZuoraEntity) -> &'static str {
    match e {
        ZuoraEntity::GitlabInc => "INC",
        ZuoraEntity::GitlabBv => "BV",
        ZuoraEntity::GitlabGmbh => "GMBH",
        ZuoraEntity::GitlabLtd => "LTD",
        ZuoraEntity::GitlabPtyLtd => "PTY",
    }
}

/// The deterministic Zuora account number of a hub account on an entity.
pub fn zuora_account_number(account_id: &str, entity: ZuoraEntity) -> String {
    format!("{account_id}-{}", entity_suffix(entity))
}

/// What the billing mirror writes for one event: the customer account (only when the event
/// says which one — `SubscriptionCreated`) and the subscription's changed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// `Zuora__CustomerAccount__c` to upsert first, when known.
    pub account: Option<Value>,
    /// `Zuora__Subscription__c` to upsert; its `Zuora__CustomerAccount__c` lookup is set by
    /// the sink from the account's Salesforce id.
    pub subscription: Value,
}

impl Mirror {
    /// The customer account's external id, if the mirror writes one.
    pub fn account_key(&self) -> Option<&str> {
        self.account.as_ref()?[CUSTOMER_ACCOUNT.1].as_str()
    }
}

fn subscription_base(number: &str, account_id: &str) -> Map<String, Value> {
    let v = json!({
        "attributes": { "type": SUBSCRIPTION.0 },
        SUBSCRIPTION.1: number,
        "Name": number,
        "Zuora__SubscriptionNumber__c": number,
        "L2f_Account_Id__c": account_id,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The mirror of a subscription event, or `None` for an event the mirror skips: any event
/// whose envelope source is not Zuora (the customers app's own events are not Zuora's
/// state), `PaymentDeclined`, and an `AutoRenewChanged` of another flag than Zuora's.
pub fn mirror(event: &AnyEvent) -> Option<Mirror> {
    if event.envelope().source != SourceSystem::Zuora {
        return None;
    }
    let date = |d: NaiveDate| json!(d.format("%Y-%m-%d").to_string());
    let mut account = None;
    let sub = match event {
        AnyEvent::SubscriptionCreated(s) => {
            let number = zuora_account_number(&s.account_id, s.zuora_entity);
            let mut a = json!({
                "attributes": { "type": CUSTOMER_ACCOUNT.0 },
                CUSTOMER_ACCOUNT.1: number,
                "Name": number,
                "Entity__c": s.zuora_entity.symbol(),
                "Billing_Batch__c": s.billing_batch.symbol(),
                "Communication_Profile__c": s.communication_profile.symbol(),
                "L2f_Account_Id__c": s.account_id,
            });
            if is_account_id(&s.account_id) {
                a["Zuora__Account__c"] = json!(s.account_id);
            }
            account = Some(a);
            let mut m = subscription_base(&s.subscription_id, &s.account_id);
            m.insert("Zuora__Status__c".into(), json!("Active"));
            m.insert("Zuora__AutoRenew__c".into(), json!(s.auto_renew));
            m.insert("Zuora__TermStartDate__c".into(), date(s.term_start));
            m.insert("Zuora__TermEndDate__c".into(), date(s.term_end));
            m.insert("Seats__c".into(), json!(s.seats));
            m.insert("Plan_Sku__c".into(), json!(s.plan_sku));
            m.insert("Entity__c".into(), json!(s.zuora_entity.symbol()));
            m
        }
        AnyEvent::SubscriptionAmended(s) => {
            let mut m = subscription_base(&s.subscription_id, &s.account_id);
            m.insert("Seats__c".into(), json!(s.seats));
            m
        }
        AnyEvent::SubscriptionRenewed(s) => {
            let mut m = subscription_base(&s.subscription_id, &s.account_id);
            m.insert("Zuora__Status__c".into(), json!("Active"));
            m.insert("Zuora__TermStartDate__c".into(), date(s.term_start));
            m.insert("Zuora__TermEndDate__c".into(), date(s.term_end));
            m.insert("Seats__c".into(), json!(s.seats));
            m
        }
        AnyEvent::SubscriptionCancelled(s) => {
            let mut m = subscription_base(&s.subscription_id, &s.account_id);
            m.insert("Zuora__Status__c".into(), json!("Cancelled"));
            // Rule 5: a cancellation turns auto-renew off.
            m.insert("Zuora__AutoRenew__c".into(), json!(false));
            m.insert("Cancellation_Reason__c".into(), json!(s.reason.symbol()));
            m
        }
        AnyEvent::AutoRenewChanged(s) if s.flag_owner == SourceSystem::Zuora => {
            let mut m = subscription_base(&s.subscription_id, &s.account_id);
            m.insert("Zuora__AutoRenew__c".into(), json!(s.auto_renew));
            m
        }
        _ => return None,
    };
    Some(Mirror {
        account,
        subscription: Value::Object(sub),
    })
}

/// The reporting period a usage report belongs to: its calendar month (`2026-03`), the
/// period a subscription's true-up is flagged once for.
pub fn reporting_period(measured_on: NaiveDate) -> String {
    measured_on.format("%Y-%m").to_string()
}

/// Rule 9: the `L2f_True_Up__c` a usage report flags, or `None` when its billable users are
/// within the seats bought. A report the contract forbids (negative counts, more billable
/// than active users) is permanent, naming the field and the value.
pub fn true_up(u: &UsageReported) -> Result<Option<Value>, HandlerError> {
    let bad = |field: &str, value: i32, why: &str| {
        HandlerError::permanent(format!(
            "usage report of subscription {}: UsageReported.{field} {why} (value: {value})",
            u.subscription_id
        ))
    };
    for (field, v) in [
        ("active_users", u.active_users),
        ("billable_users", u.billable_users),
        ("seats", u.seats),
    ] {
        if v < 0 {
            return Err(bad(field, v, "is negative"));
        }
    }
    if u.billable_users > u.active_users {
        return Err(bad(
            "billable_users",
            u.billable_users,
            "exceeds active_users",
        ));
    }
    let over = l2f_rules::billable::true_up(u.billable_users as u64, u.seats as u64);
    if over == 0 {
        return Ok(None);
    }
    let period = reporting_period(u.measured_on);
    let key = format!("{}:{period}", u.subscription_id);
    Ok(Some(json!({
        "attributes": { "type": TRUE_UP.0 },
        TRUE_UP.1: key,
        "Name": format!("True-up {} {period}", u.subscription_id),
        "Subscription_Number__c": u.subscription_id,
        "L2f_Account_Id__c": u.account_id,
        "Period__c": period,
        "Measured_On__c": u.measured_on.format("%Y-%m-%d").to_string(),
        "Active_Users__c": u.active_users,
        "Billable_Users__c": u.billable_users,
        "Seats_Bought__c": u.seats,
        "True_Up_Seats__c": over,
        "L2f_Event_Id__c": u.envelope.event_id.to_string(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::events::{BillingBatch, CommunicationProfile};
    use l2f_contracts::examples;

    fn deal() -> Value {
        json!({
            "attributes": {"type": "Opportunity"},
            "Id": "006000000000042AAA",
            "AccountId": "001000000000007AAA",
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme BV", "BillingCountryCode": "NL"},
            "Amount": 8700.5,
            "CloseDate": "2026-03-31",
            "Type": "New Business",
            "Deployment__c": "Self-Managed",
            "Sku__c": "premium-self-managed-1y",
            "Seats__c": 25.0,
            "Term_Months__c": 12,
            "Party__c": "Direct",
            "Reseller_Name__c": null,
            "Sold_To_Email__c": "buyer@acme.example",
            "SystemModstamp": "2026-03-31T10:00:00.000+0000",
        })
    }

    fn map(d: &Value) -> Result<OrderPlaced, Unmappable> {
        let rules = Rules::embedded();
        order_placed(
            d,
            &DealContext {
                org: "00DL2F000000001AAA",
                currency: "EUR",
                rules: &rules,
            },
        )
    }

    #[test]
    fn a_direct_deal_is_a_sales_assisted_order_with_auto_renew_off() {
        let o = map(&deal()).unwrap();
        assert_eq!(o.order_id, "006000000000042AAA");
        assert_eq!(o.account_id, "001000000000007AAA");
        assert_eq!(o.sales_channel, SalesChannel::SalesAssisted);
        assert_eq!(o.reseller, None);
        assert_eq!(o.deployment, Deployment::SelfManaged);
        assert_eq!(o.order_type, OrderType::New);
        assert_eq!(o.bill_to_country.as_str(), "NL");
        assert_eq!(o.sold_to_email, "buyer@acme.example");
        assert_eq!(o.lines.len(), 1);
        assert_eq!(o.lines[0].sku, "premium-self-managed-1y");
        assert_eq!(o.lines[0].quantity, 25);
        assert_eq!(o.lines[0].unit_price.amount.to_string(), "348.02");
        assert_eq!(o.total.amount.to_string(), "8700.5");
        assert_eq!(o.total.currency, "EUR");
        assert_eq!(o.term_start.to_string(), "2026-03-31");
        assert_eq!(o.term_end.to_string(), "2027-03-31");
        assert!(!o.auto_renew, "rule 5: sales-assisted deals start off");
        assert_eq!(o.envelope.source, SourceSystem::Salesforce);
        assert_eq!(o.envelope.causation_id, None);
        assert_eq!(
            o.envelope.correlation_id,
            account_correlation("001000000000007AAA")
        );
        assert_eq!(
            o.envelope.event_id,
            event_id(
                "salesforce",
                "00DL2F000000001AAA",
                "006000000000042AAA@2026-03-31T10:00:00.000+0000"
            )
        );
        l2f_contracts::record::frame(&l2f_contracts::Codec::new(), &o).expect("within contract");
    }

    #[test]
    fn resellers_are_reseller_orders_naming_the_reseller() {
        for (party, authorized) in [
            ("Unauthorized Reseller", false),
            ("Authorized Reseller", true),
        ] {
            let mut d = deal();
            d["Party__c"] = json!(party);
            d["Reseller_Name__c"] = json!(" Partner GmbH ");
            d["Type"] = json!("Renewal");
            d["Deployment__c"] = json!("SaaS");
            let o = map(&d).unwrap();
            assert_eq!(o.sales_channel, SalesChannel::Reseller);
            assert_eq!(
                o.reseller,
                Some(Reseller {
                    name: "Partner GmbH".into(),
                    authorized
                })
            );
            assert_eq!(o.order_type, OrderType::Renewal);
            assert_eq!(o.deployment, Deployment::Saas);
            assert!(!o.auto_renew);
            d["Reseller_Name__c"] = Value::Null;
            let e = map(&d).unwrap_err();
            assert_eq!(e.field, "Reseller_Name__c");
        }
        let mut d = deal();
        d["Type"] = json!("Add-On");
        assert_eq!(map(&d).unwrap().order_type, OrderType::AddOn);
    }

    #[test]
    fn an_unmappable_deal_names_the_field_and_the_value() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("Account.BillingCountryCode", json!("UK"), "ISO 3166-1"),
            (
                "Party__c",
                json!("Partner"),
                "Direct, Unauthorized Reseller",
            ),
            ("Deployment__c", json!("Cloud"), "SaaS, Self-Managed"),
            ("Sku__c", Value::Null, "required"),
            ("Seats__c", json!(2.5), "whole number"),
            ("Seats__c", json!(0), "whole number"),
            ("Term_Months__c", json!("twelve"), "not a number"),
            ("Amount", json!(-1), "negative"),
            ("Amount", json!(1.005), "two decimal"),
            ("CloseDate", json!("31/03/2026"), "YYYY-MM-DD"),
            ("Sold_To_Email__c", json!("nobody"), "email"),
            ("AccountId", Value::Null, "required"),
        ];
        for (field, value, why) in cases {
            let mut d = deal();
            match field.split_once('.') {
                Some((rel, f)) => d[rel][f] = value.clone(),
                None => d[field] = value.clone(),
            }
            let e = map(&d).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            let m = e.to_string();
            assert!(m.contains(&value.to_string()), "{m}");
            assert!(m.contains(why), "{m}");
            assert!(m.contains("006000000000042AAA"), "{m}");
        }
        let mut d = deal();
        d["Account"] = Value::Null;
        assert_eq!(map(&d).unwrap_err().field, "Account.BillingCountryCode");
    }

    #[test]
    fn the_cursor_query_breaks_ties_by_id() {
        let c = Cursor {
            modstamp: "2026-03-31T10:00:00.000+0000".into(),
            id: "006000000000042AAA".into(),
        };
        let q = deals_soql(Some(&c));
        assert!(q.contains("WHERE IsWon = true AND (SystemModstamp > 2026-03-31T10:00:00.000Z OR (SystemModstamp = 2026-03-31T10:00:00.000Z AND Id > '006000000000042AAA'))"), "{q}");
        assert!(q.ends_with("ORDER BY SystemModstamp ASC, Id ASC"), "{q}");
        assert!(q.contains("Sold_To_Email__c") && q.contains("Reseller_Name__c"));
        assert!(deals_soql(None).contains("WHERE IsWon = true ORDER BY"));
        assert_eq!(Cursor::from_value(&c.to_value()), Ok(Some(c)));
        assert_eq!(Cursor::from_value(&Value::Null), Ok(None));
        assert!(Cursor::from_value(&json!({"modstamp": "x", "id": "006000000000042AAA"})).is_err());
        assert!(
            Cursor::from_value(
                &json!({"modstamp": "2026-03-31T10:00:00.000+0000", "id": "0' OR Id != '"})
            )
            .is_err(),
            "no quote ever reaches the SOQL"
        );
    }

    #[test]
    fn a_ready_lead_maps_and_an_incomplete_one_names_its_fields() {
        let v = lead(&examples::lead_captured()).unwrap();
        assert_eq!(v["attributes"]["type"], "Lead");
        assert_eq!(v["L2f_Lead_Id__c"], "lead-0001");
        assert_eq!(v["Email"], "ada.lovelace@example.co.uk");
        assert_eq!(v["FirstName"], "Ada");
        assert_eq!(v["LastName"], "Lovelace");
        assert_eq!(v["Company"], "Analytical Engines Ltd");
        assert_eq!(v["CountryCode"], "GB");
        assert_eq!(v["LeadSource"], "Web Form");
        assert_eq!(v["Status"], "Open - Not Contacted");
        let mut l = examples::lead_captured();
        l.company = None;
        l.country = None;
        let e = lead(&l).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(
            e.message().contains("LeadCaptured.company")
                && e.message().contains("LeadCaptured.country")
                && !e.message().contains("first_name"),
            "{e}"
        );
    }

    #[test]
    fn a_created_subscription_mirrors_its_account_and_itself() {
        let mut s = examples::subscription_created();
        s.account_id = "001000000000007AAA".into();
        let m = mirror(&AnyEvent::SubscriptionCreated(s.clone())).unwrap();
        let a = m.account.as_ref().unwrap();
        assert_eq!(m.account_key(), Some("001000000000007AAA-GMBH"));
        assert_eq!(a["attributes"]["type"], "Zuora__CustomerAccount__c");
        assert_eq!(a["Zuora__Account__c"], "001000000000007AAA");
        assert_eq!(a["Entity__c"], "GITLAB_GMBH");
        assert_eq!(a["Billing_Batch__c"], BillingBatch::Batch4.symbol());
        assert_eq!(
            a["Communication_Profile__c"],
            CommunicationProfile::Default.symbol()
        );
        let sub = &m.subscription;
        assert_eq!(sub["Zuora__External_Id__c"], "A-S00012345");
        assert_eq!(sub["Zuora__SubscriptionNumber__c"], "A-S00012345");
        assert_eq!(sub["Zuora__Status__c"], "Active");
        assert_eq!(sub["Zuora__AutoRenew__c"], false);
        assert_eq!(sub["Zuora__TermStartDate__c"], "2026-12-01");
        assert_eq!(sub["Zuora__TermEndDate__c"], "2027-11-30");
        assert_eq!(sub["Seats__c"], 25);
        assert_eq!(sub["Plan_Sku__c"], "premium-self-managed-1y");
        assert_eq!(sub["L2f_Account_Id__c"], "001000000000007AAA");
        // A web-store account is no Salesforce Account: no lookup.
        let m = mirror(&AnyEvent::SubscriptionCreated(
            examples::subscription_created(),
        ))
        .unwrap();
        assert!(m.account.unwrap().get("Zuora__Account__c").is_none());
    }

    #[test]
    fn only_zuoras_own_subscription_changes_are_mirrored() {
        let c = examples::subscription_cancelled();
        let m = mirror(&AnyEvent::SubscriptionCancelled(c.clone())).unwrap();
        assert!(m.account.is_none());
        assert_eq!(m.subscription["Zuora__Status__c"], "Cancelled");
        assert_eq!(m.subscription["Zuora__AutoRenew__c"], false);
        assert_eq!(m.subscription["Cancellation_Reason__c"], c.reason.symbol());
        assert_eq!(m.subscription["Cancellation_Reason__c"], "WRONG_SEAT_COUNT");
        let mut from_app = c;
        from_app.envelope.source = SourceSystem::CustomersApp;
        assert_eq!(mirror(&AnyEvent::SubscriptionCancelled(from_app)), None);

        let mut a = examples::auto_renew_changed();
        a.envelope.source = SourceSystem::Zuora;
        a.flag_owner = SourceSystem::Zuora;
        a.auto_renew = true;
        let m = mirror(&AnyEvent::AutoRenewChanged(a.clone())).unwrap();
        assert_eq!(m.subscription["Zuora__AutoRenew__c"], true);
        a.flag_owner = SourceSystem::CustomersApp;
        assert_eq!(mirror(&AnyEvent::AutoRenewChanged(a)), None);

        let mut p = examples::payment_declined();
        p.envelope.source = SourceSystem::Zuora;
        assert_eq!(mirror(&AnyEvent::PaymentDeclined(p)), None);

        let mut r = examples::subscription_renewed();
        r.envelope.source = SourceSystem::Zuora;
        let m = mirror(&AnyEvent::SubscriptionRenewed(r.clone())).unwrap();
        assert_eq!(m.subscription["Seats__c"], r.seats);
        assert_eq!(m.subscription["Zuora__Status__c"], "Active");
        let mut am = examples::subscription_amended();
        am.envelope.source = SourceSystem::Zuora;
        let m = mirror(&AnyEvent::SubscriptionAmended(am.clone())).unwrap();
        assert_eq!(m.subscription["Seats__c"], am.seats);
        assert!(m.subscription.get("Zuora__Status__c").is_none());
    }

    /// "A billable count above the seats bought is a true-up": flagged per subscription and
    /// month; within the seats nothing; a contract-breaking report named.
    #[test]
    fn rule_9_a_billable_count_above_the_seats_is_a_true_up_keyed_by_period() {
        let mut u = examples::usage_reported();
        u.subscription_id = "A-S00000042".into();
        u.measured_on = NaiveDate::from_ymd_opt(2026, 3, 17).unwrap();
        u.active_users = 40;
        u.billable_users = 30;
        u.seats = 25;
        let t = true_up(&u).unwrap().unwrap();
        assert_eq!(t["L2f_True_Up_Id__c"], "A-S00000042:2026-03");
        assert_eq!(t["True_Up_Seats__c"], 5);
        assert_eq!(t["Billable_Users__c"], 30);
        assert_eq!(t["Seats_Bought__c"], 25);
        assert_eq!(t["Period__c"], "2026-03");
        let mut later = u.clone();
        later.measured_on = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(
            true_up(&later).unwrap().unwrap()["L2f_True_Up_Id__c"],
            "A-S00000042:2026-03",
            "the same period: the same record"
        );
        u.billable_users = 25;
        assert_eq!(true_up(&u).unwrap(), None, "within the seats");
        u.billable_users = 41;
        let e = true_up(&u).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("billable_users"), "{e}");
    }
}
