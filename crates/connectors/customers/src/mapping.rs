//! The customers app's feed events → the hub's events, and Zuora's subscription events → the
//! app's billing mirror. Pure: no I/O, so every rule is tested without a server.
//!
//! This is the edge of handbook rule 1: a form's free-text country becomes its ISO 3166-1
//! alpha-2 code (`UK` → GB, `Holland` → NL), and one that cannot be mapped is rejected with the
//! field and the value named — it becomes a dead letter, never an event. Rule 5: an order's
//! auto-renew flag is the customers app's own (on for web-store purchases).

use chrono::{DateTime, NaiveDate, Utc};
use l2f_contracts::events::*;
use l2f_contracts::record::{event_id, AnyEvent};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::FeedEvent;

/// What one feed event becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// An event for Kafka.
    Event(Box<AnyEvent>),
    /// Written by the hub itself (origin `hub`): dropped, so the hub's own writes never come
    /// back as new business events.
    Echo,
    /// Known and deliberately no event (an account's contact details changed).
    Ignored,
    /// Cannot become an event; the reason names the field and the value.
    Rejected(String),
}

/// The feed a change came from: the source's name and the feed's epoch, which with the
/// change's position make its event id.
#[derive(Debug, Clone)]
pub struct Feed<'a> {
    /// The source's name.
    pub source: &'a str,
    /// The feed's epoch.
    pub epoch: &'a str,
}

/// The correlation id of everything about one account (the business flow of a customer).
pub fn account_flow(account_id: &str) -> Uuid {
    event_id("l2f", "correlation", &format!("account:{account_id}"))
}

/// The correlation id of a lead's flow.
pub fn lead_flow(lead_id: &str) -> Uuid {
    event_id("l2f", "correlation", &format!("lead:{lead_id}"))
}

type Reject = String;

fn text<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn need<'a>(v: &'a Value, path: &str, event: &str) -> Result<&'a str, Reject> {
    text(v, path).ok_or_else(|| format!("{event}: feed field {path} is missing or empty"))
}

fn number(v: &Value, path: &str, event: &str) -> Result<i64, Reject> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("{event}: feed field {path} is missing or not a number"))
}

fn date(s: &str, field: &str) -> Result<NaiveDate, Reject> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{field}: not a date YYYY-MM-DD (value: {s:?})"))
}

fn instant(s: &str, field: &str) -> Result<DateTime<Utc>, Reject> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{field}: not an RFC 3339 time (value: {s:?})"))
}

fn country(field: &str, raw: &str) -> Result<CountryCode, Reject> {
    CountryCode::normalise(field, raw).map_err(|v| v.to_string())
}

fn money(amount: &str, currency: &str, field: &str) -> Result<Money, Reject> {
    let amount: Decimal = amount
        .parse()
        .map_err(|_| format!("{field}: not a decimal amount (value: {amount:?})"))?;
    Ok(Money {
        amount: amount.round_dp(2),
        currency: currency.to_string(),
    })
}

fn lead_source(s: &str) -> Result<LeadSource, Reject> {
    Ok(match s {
        "signup" => LeadSource::SignUp,
        "trial" => LeadSource::Trial,
        "contact_sales" => LeadSource::ContactSales,
        "abandoned_cart" => LeadSource::AbandonedCart,
        "web_form" => LeadSource::WebForm,
        other => {
            return Err(format!(
                "LeadCaptured.lead_source: unknown form (value: {other:?})"
            ))
        }
    })
}

fn channel(s: &str) -> Result<SalesChannel, Reject> {
    Ok(match s {
        "web_store" => SalesChannel::WebStore,
        "reseller" => SalesChannel::Reseller,
        "aws_marketplace" => SalesChannel::AwsMarketplace,
        "govuk_digital_marketplace" => SalesChannel::GovukDigitalMarketplace,
        "sales_assisted" => SalesChannel::SalesAssisted,
        other => {
            return Err(format!(
                "OrderPlaced.sales_channel: unknown channel (value: {other:?})"
            ))
        }
    })
}

/// The app's deployment names.
pub fn deployment(s: &str) -> Result<Deployment, Reject> {
    match s {
        "saas" => Ok(Deployment::Saas),
        "self_managed" => Ok(Deployment::SelfManaged),
        other => Err(format!("deployment: unknown (value: {other:?})")),
    }
}

fn reason(s: &str) -> Result<CancellationReason, Reject> {
    Ok(match s {
        "customer_request" => CancellationReason::CustomerRequest,
        "wrong_seat_count" => CancellationReason::WrongSeatCount,
        "entity_change" => CancellationReason::EntityChangeAtRenewal,
        "card_declined" => CancellationReason::CardDeclinedOnAutoRenewal,
        other => {
            return Err(format!(
                "SubscriptionCancelled.reason: unknown reason (value: {other:?})"
            ))
        }
    })
}

/// The app's name of a cancellation reason.
pub fn reason_name(r: CancellationReason) -> &'static str {
    match r {
        CancellationReason::CustomerRequest => "customer_request",
        CancellationReason::WrongSeatCount => "wrong_seat_count",
        CancellationReason::EntityChangeAtRenewal => "entity_change",
        CancellationReason::CardDeclinedOnAutoRenewal => "card_declined",
    }
}

/// The hub's id of a subscription the app reports on: its Zuora number once mirrored, else
/// the app's own id (which is also the web-store order id the Zuora sink can find it by).
fn subscription_id(d: &Value, event: &str) -> Result<String, Reject> {
    text(d, "zuora_subscription_number")
        .or_else(|| text(d, "subscription_id"))
        .map(str::to_string)
        .ok_or_else(|| format!("{event}: feed field subscription_id is missing"))
}

/// Maps one feed event.
pub fn map(ev: &FeedEvent, feed: &Feed<'_>) -> Mapped {
    if ev.origin.as_deref() == Some("hub") {
        return Mapped::Echo;
    }
    match map_event(ev, feed) {
        Ok(Some(e)) => Mapped::Event(Box::new(e)),
        Ok(None) => Mapped::Ignored,
        Err(why) => Mapped::Rejected(why),
    }
}

fn map_event(ev: &FeedEvent, feed: &Feed<'_>) -> Result<Option<AnyEvent>, Reject> {
    let d = &ev.data;
    let occurred_at = instant(&ev.occurred_at, "occurred_at")?;
    let envelope = |correlation_id: Uuid| Envelope {
        event_id: event_id(feed.source, feed.epoch, &ev.seq.to_string()),
        occurred_at,
        source: SourceSystem::CustomersApp,
        correlation_id,
        causation_id: None,
    };
    Ok(Some(match ev.kind.as_str() {
        "LeadCaptured" => {
            let e = "LeadCaptured";
            let lead_id = need(d, "id", e)?.to_string();
            let f = &d["fields"];
            let opt = |k: &str| text(f, k).map(str::to_string);
            AnyEvent::LeadCaptured(LeadCaptured {
                envelope: envelope(lead_flow(&lead_id)),
                email: need(f, "email", e)?.to_string(),
                first_name: opt("first_name"),
                last_name: opt("last_name"),
                company: opt("company"),
                country: text(f, "country")
                    .map(|c| country("LeadCaptured.country", c))
                    .transpose()?,
                lead_source: lead_source(need(d, "source", e)?)?,
                marketing_opt_in: f["marketing_opt_in"].as_bool().unwrap_or(false),
                utm_campaign: opt("utm_campaign"),
                lead_id,
            })
        }
        "OrderPlaced" => {
            let e = "OrderPlaced";
            let account_id = need(d, "account.id", e)?.to_string();
            let currency = text(d, "currency").unwrap_or("USD");
            let lines = d["lines"]
                .as_array()
                .ok_or_else(|| format!("{e}: feed field lines is missing"))?
                .iter()
                .map(|l| {
                    Ok(OrderLine {
                        sku: need(l, "sku", e)?.to_string(),
                        quantity: i32::try_from(number(l, "quantity", e)?)
                            .map_err(|_| format!("{e}.lines.quantity: out of range"))?,
                        unit_price: money(
                            need(l, "unit_price", e)?,
                            currency,
                            "OrderPlaced.lines.unit_price",
                        )?,
                    })
                })
                .collect::<Result<Vec<_>, Reject>>()?;
            let reseller = match d.get("reseller").filter(|r| !r.is_null()) {
                Some(r) => Some(Reseller {
                    name: need(r, "name", e)?.to_string(),
                    authorized: r["authorized"].as_bool().unwrap_or(false),
                }),
                None => None,
            };
            AnyEvent::OrderPlaced(OrderPlaced {
                envelope: envelope(account_flow(&account_id)),
                order_id: need(d, "order_id", e)?.to_string(),
                sales_channel: channel(need(d, "channel", e)?)?,
                deployment: deployment(need(d, "deployment", e)?)?,
                order_type: OrderType::New,
                reseller,
                bill_to_country: country(
                    "OrderPlaced.bill_to_country",
                    need(d, "account.country", e)?,
                )?,
                sold_to_email: need(d, "account.email", e)?.to_string(),
                lines,
                total: money(need(d, "total", e)?, currency, "OrderPlaced.total")?,
                term_start: date(need(d, "term_start", e)?, "OrderPlaced.term_start")?,
                term_end: date(need(d, "term_end", e)?, "OrderPlaced.term_end")?,
                auto_renew: d["auto_renew"].as_bool().unwrap_or(false),
                account_id,
            })
        }
        "EulaAccepted" => {
            let e = "EulaAccepted";
            let account_id = need(d, "account_id", e)?.to_string();
            AnyEvent::EulaAccepted(EulaAccepted {
                envelope: envelope(account_flow(&account_id)),
                subscription_id: subscription_id(d, e)?,
                eula_version: text(d, "eula_version").unwrap_or("current").to_string(),
                accepted_by_email: need(d, "accepted_by", e)?.to_string(),
                accepted_at: instant(need(d, "accepted_at", e)?, "EulaAccepted.accepted_at")?,
                account_id,
            })
        }
        "AutoRenewChanged" => {
            let e = "AutoRenewChanged";
            let account_id = need(d, "account_id", e)?.to_string();
            AnyEvent::AutoRenewChanged(AutoRenewChanged {
                envelope: envelope(account_flow(&account_id)),
                subscription_id: subscription_id(d, e)?,
                flag_owner: SourceSystem::CustomersApp,
                auto_renew: d["auto_renew"]
                    .as_bool()
                    .ok_or_else(|| format!("{e}: feed field auto_renew is missing"))?,
                account_id,
            })
        }
        "SubscriptionCancelled" => {
            let e = "SubscriptionCancelled";
            let account_id = need(d, "account_id", e)?.to_string();
            AnyEvent::SubscriptionCancelled(SubscriptionCancelled {
                envelope: envelope(account_flow(&account_id)),
                subscription_id: subscription_id(d, e)?,
                reason: reason(need(d, "reason", e)?)?,
                effective_date: occurred_at.date_naive(),
                refund: None,
                account_id,
            })
        }
        "UsageReported" => {
            let e = "UsageReported";
            let account_id = need(d, "account_id", e)?.to_string();
            let count = |k: &str| {
                number(d, k, e).and_then(|n| {
                    i32::try_from(n).map_err(|_| format!("{e}.{k}: out of range (value: {n})"))
                })
            };
            AnyEvent::UsageReported(UsageReported {
                envelope: envelope(account_flow(&account_id)),
                subscription_id: subscription_id(d, e)?,
                measured_on: instant(need(d, "reported_at", e)?, "UsageReported.measured_on")?
                    .date_naive(),
                active_users: count("active_users")?,
                billable_users: count("billable_users")?,
                seats: count("seats")?,
                account_id,
            })
        }
        "AccountUpdated" => return Ok(None),
        other => {
            return Err(format!(
                "feed event type {other:?} is not one this hub knows"
            ))
        }
    }))
}

/// The app's body of `PUT /api/v1/hub/subscriptions/{number}` for a subscription Zuora created.
pub fn mirror_created(s: &SubscriptionCreated) -> Value {
    json!({
        "account_id": s.account_id,
        "order_id": s.order_id,
        "deployment": match s.deployment { Deployment::Saas => "saas", Deployment::SelfManaged => "self_managed" },
        "plan_sku": s.plan_sku,
        "seats": s.seats,
        "term_start": s.term_start.to_string(),
        "term_end": s.term_end.to_string(),
        "auto_renew": s.auto_renew,
        "status": "active",
    })
}

/// The app's body of `PUT /api/v1/subscriptions/{id}/license` for an issued license: its key
/// (the license service's license id) shown to the customer.
pub fn license_shown(l: &LicenseIssued) -> Value {
    json!({ "status": "issued", "key": l.license_id })
}

/// A change Zuora reported, as it applies to the app's mirror of the subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorChange {
    /// The auto-renew flag.
    AutoRenew(bool),
    /// Cancelled, with the reason.
    Cancelled(CancellationReason),
    /// A new term.
    Renewed {
        /// Term start.
        start: NaiveDate,
        /// Term end.
        end: NaiveDate,
        /// Seats.
        seats: i32,
    },
    /// Seats changed.
    Seats(i32),
}

/// The mirror body after `change`, from the app's current view of the subscription (a
/// read-modify-write: the app's endpoint takes the whole mirror).
pub fn mirror_changed(current: &Value, change: &MirrorChange) -> Value {
    let mut body = json!({
        "account_id": current["account_id"],
        "order_id": current["order_id"],
        "deployment": current["deployment"],
        "plan_sku": current["plan_sku"],
        "seats": current["seats"],
        "term_start": current["term_start"],
        "term_end": current["term_end"],
        "auto_renew": current["auto_renew"],
        "status": current["status"],
        "cancellation_reason": current["cancellation_reason"],
        "channel": current["channel"],
    });
    match change {
        MirrorChange::AutoRenew(a) => body["auto_renew"] = json!(a),
        MirrorChange::Cancelled(r) => {
            body["status"] = json!("cancelled");
            body["auto_renew"] = json!(false);
            body["cancellation_reason"] = json!(reason_name(*r));
        }
        MirrorChange::Renewed { start, end, seats } => {
            body["term_start"] = json!(start.to_string());
            body["term_end"] = json!(end.to_string());
            body["seats"] = json!(seats);
        }
        MirrorChange::Seats(n) => body["seats"] = json!(n),
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples;

    const FEED: Feed<'static> = Feed {
        source: "customers",
        epoch: "e1",
    };

    fn ev(seq: u64, kind: &str, data: Value) -> FeedEvent {
        FeedEvent {
            seq,
            kind: kind.into(),
            occurred_at: "2026-12-02T10:00:00.000Z".into(),
            origin: Some("customer".into()),
            data,
        }
    }

    fn lead(country: &str) -> FeedEvent {
        ev(
            7,
            "LeadCaptured",
            json!({"id": "lead_000007", "source": "trial", "fields": {
                "email": "ada@example.co.uk", "first_name": "Ada", "last_name": "Lovelace",
                "company": "Engines", "country": country, "marketing_opt_in": true}}),
        )
    }

    #[test]
    fn handbook_rule_1_uk_becomes_gb_and_the_event_id_is_its_feed_position() {
        let Mapped::Event(e) = map(&lead("UK"), &FEED) else {
            panic!("not an event")
        };
        let AnyEvent::LeadCaptured(l) = *e else {
            panic!()
        };
        assert_eq!(l.country.unwrap().as_str(), "GB");
        assert_eq!(l.lead_source, LeadSource::Trial);
        assert_eq!(l.envelope.event_id, event_id("customers", "e1", "7"));
        assert_eq!(l.envelope.correlation_id, lead_flow("lead_000007"));
        assert!(l.marketing_opt_in);
        // The same change read again has the same id.
        let Mapped::Event(again) = map(&lead("UK"), &FEED) else {
            panic!()
        };
        assert_eq!(again.envelope().event_id, l.envelope.event_id);
    }

    #[test]
    fn an_unmappable_country_is_rejected_naming_the_field_and_the_value() {
        let Mapped::Rejected(why) = map(&lead("Untied Kingdom"), &FEED) else {
            panic!("must be rejected")
        };
        assert!(why.contains("LeadCaptured.country"), "{why}");
        assert!(why.contains("Untied Kingdom"), "{why}");
    }

    #[test]
    fn the_hubs_own_writes_never_come_back() {
        let mut e = ev(
            9,
            "AutoRenewChanged",
            json!({"subscription_id": "sub_1", "account_id": "cust_1", "auto_renew": false}),
        );
        e.origin = Some("hub".into());
        assert_eq!(map(&e, &FEED), Mapped::Echo);
    }

    #[test]
    fn a_web_store_order_maps_line_for_line_with_its_auto_renew() {
        let e = ev(
            3,
            "OrderPlaced",
            json!({
            "order_id": "sub_000002", "subscription_id": "sub_000002",
            "account": {"id": "cust_000001", "email": "b@example.com", "name": "B", "company": null, "country": "DE"},
            "deployment": "saas", "plan": "premium", "channel": "web_store", "reseller": null,
            "lines": [{"sku": "premium-saas-1y", "quantity": 10, "unit_price": "29.00"},
                      {"sku": "ci-minutes-1000", "quantity": 2, "unit_price": "10.00"}],
            "currency": "USD", "total": "310.00", "term_start": "2026-12-02", "term_end": "2027-12-02",
            "auto_renew": true}),
        );
        let Mapped::Event(e) = map(&e, &FEED) else {
            panic!("not an event")
        };
        let AnyEvent::OrderPlaced(o) = *e else {
            panic!()
        };
        assert_eq!(o.sales_channel, SalesChannel::WebStore);
        assert_eq!(o.bill_to_country.as_str(), "DE");
        assert_eq!(o.lines.len(), 2);
        assert_eq!(o.lines[0].quantity, 10);
        assert_eq!(o.total.amount.to_string(), "310.00");
        assert!(o.auto_renew);
        assert_eq!(o.envelope.correlation_id, account_flow("cust_000001"));
    }

    #[test]
    fn a_toggle_is_keyed_by_the_zuora_number_once_mirrored() {
        let mut d = json!({"subscription_id": "sub_1", "zuora_subscription_number": null, "account_id": "cust_1", "auto_renew": true});
        let Mapped::Event(e) = map(&ev(5, "AutoRenewChanged", d.clone()), &FEED) else {
            panic!()
        };
        assert_eq!(e.key(), "sub_1");
        d["zuora_subscription_number"] = json!("A-S00000001");
        let Mapped::Event(e) = map(&ev(5, "AutoRenewChanged", d), &FEED) else {
            panic!()
        };
        assert_eq!(e.key(), "A-S00000001");
        let AnyEvent::AutoRenewChanged(a) = *e else {
            panic!()
        };
        assert_eq!(a.flag_owner, SourceSystem::CustomersApp);
    }

    #[test]
    fn unknown_types_are_rejected_and_account_updates_ignored() {
        assert!(
            matches!(map(&ev(1, "Teleported", json!({})), &FEED), Mapped::Rejected(w) if w.contains("Teleported"))
        );
        assert_eq!(
            map(&ev(1, "AccountUpdated", json!({"account": {}})), &FEED),
            Mapped::Ignored
        );
    }

    #[test]
    fn an_issued_license_is_shown_with_its_key() {
        let l = examples::license_issued();
        assert_eq!(
            license_shown(&l),
            json!({"status": "issued", "key": l.license_id})
        );
    }

    #[test]
    fn a_cancellation_in_zuora_turns_the_mirror_off_with_its_reason() {
        let current = json!({"account_id": "cust_1", "order_id": "sub_1", "deployment": "saas",
            "plan_sku": "premium-saas-1y", "seats": 3, "term_start": "2026-01-01", "term_end": "2027-01-01",
            "auto_renew": true, "status": "active", "cancellation_reason": null, "channel": "web_store"});
        let b = mirror_changed(
            &current,
            &MirrorChange::Cancelled(CancellationReason::CustomerRequest),
        );
        assert_eq!(b["status"], "cancelled");
        assert_eq!(b["auto_renew"], false);
        assert_eq!(b["cancellation_reason"], "customer_request");
        assert_eq!(b["seats"], 3);
    }
}
