//! Hub events → the license service's bodies, and the service's feed → hub events. Pure: no
//! I/O, so every rule is tested without a server.
//!
//! Rule 8: a self-managed purchase whose billing batch is listed in
//! `terms_required_batches` (web direct and reseller deals by default) is registered with its
//! terms not yet accepted, and its license waits for `EulaAccepted`; any other is registered
//! with them accepted and is issued at once. Rule 6: a profile whose effects hold the license
//! (Silent, by the rules table) is sent to the service as `Silent`, which holds it; any other
//! as `Default`, which releases it.

use chrono::{DateTime, NaiveDate, Utc};
use l2f_contracts::events::*;
use l2f_contracts::record::{event_id, AnyEvent};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::FeedEvent;

/// The service's name of the profile to apply: `Silent` when the rules hold the license under
/// it, `Default` otherwise.
pub fn service_profile(hold_license: bool) -> &'static str {
    if hold_license {
        "Silent"
    } else {
        "Default"
    }
}

/// Rule 8: whether a subscription in `batch` waits for its terms to be accepted.
pub fn needs_terms(batch: BillingBatch, terms_required_batches: &[BillingBatch]) -> bool {
    terms_required_batches.contains(&batch)
}

/// Whether the license service keeps a license for this subscription (self-managed only).
pub fn licensed(s: &SubscriptionCreated) -> bool {
    s.deployment == Deployment::SelfManaged
}

/// The body of `PUT /api/v1/subscriptions/{id}` for a subscription Zuora created.
pub fn registration(s: &SubscriptionCreated, terms_required: bool, hold_license: bool) -> Value {
    json!({
        "account_id": s.account_id,
        "plan": s.plan_sku,
        "seats": s.seats,
        "terms_accepted": !terms_required,
        "communication_profile": service_profile(hold_license),
        "starts_on": s.term_start.to_string(),
        "expires_on": s.term_end.to_string(),
        "licensee_email": s.bill_to_email,
        "reseller": s.billing_batch == BillingBatch::Batch4,
        "order_id": s.order_id,
    })
}

/// The subscription id the service knows for `named` among an account's `licenses`: the one
/// registered under it, or the one whose order it is (an acceptance the customers app reported
/// before the subscription was mirrored names it by the app's own id, its order id).
pub fn registered_as<'a>(licenses: &'a [Value], named: &str) -> Option<&'a str> {
    licenses
        .iter()
        .find(|l| l["subscription_id"] == named)
        .or_else(|| licenses.iter().find(|l| l["order_id"] == named))
        .and_then(|l| l["subscription_id"].as_str())
}

/// What one feed event becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// An event for Kafka.
    Event(Box<AnyEvent>),
    /// Known and deliberately no event.
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

/// The correlation id of everything about one account (the same as the customers
/// connector's, so a license joins its customer's flow).
pub fn account_flow(account_id: &str) -> Uuid {
    event_id("l2f", "correlation", &format!("account:{account_id}"))
}

type Reject = String;

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn need<'a>(v: &'a Value, key: &str, event: &str) -> Result<&'a str, Reject> {
    text(v, key).ok_or_else(|| {
        format!(
            "{event}: feed field {key} is missing or empty (value: {})",
            v.get(key).unwrap_or(&Value::Null)
        )
    })
}

fn date(v: &Value, key: &str, event: &str) -> Result<NaiveDate, Reject> {
    let s = need(v, key, event)?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{event}: feed field {key} is not a date YYYY-MM-DD (value: {s:?})"))
}

fn profile(s: &str) -> CommunicationProfile {
    if s.eq_ignore_ascii_case("silent") {
        CommunicationProfile::Silent
    } else {
        CommunicationProfile::Default
    }
}

/// Maps one feed event.
pub fn map(ev: &FeedEvent, feed: &Feed<'_>) -> Mapped {
    match map_event(ev, feed) {
        Ok(Some(e)) => Mapped::Event(Box::new(e)),
        Ok(None) => Mapped::Ignored,
        Err(why) => Mapped::Rejected(why),
    }
}

fn map_event(ev: &FeedEvent, feed: &Feed<'_>) -> Result<Option<AnyEvent>, Reject> {
    let d = &ev.data;
    let occurred_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&ev.occurred_at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "occurred_at: not an RFC 3339 time (value: {:?})",
                ev.occurred_at
            )
        })?;
    let envelope = |account_id: &str| Envelope {
        event_id: event_id(feed.source, feed.epoch, &ev.seq.to_string()),
        occurred_at,
        source: SourceSystem::LicenseService,
        correlation_id: account_flow(account_id),
        causation_id: None,
    };
    Ok(Some(match ev.kind.as_str() {
        "LicenseIssued" => {
            let e = "LicenseIssued";
            let account_id = need(d, "account_id", e)?.to_string();
            let seats = d["seats"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!(
                        "{e}: feed field seats is not a seat count (value: {})",
                        d["seats"]
                    )
                })?;
            AnyEvent::LicenseIssued(LicenseIssued {
                envelope: envelope(&account_id),
                license_id: need(d, "key", e)?.to_string(),
                subscription_id: need(d, "subscription_id", e)?.to_string(),
                plan_sku: need(d, "plan", e)?.to_string(),
                seats,
                starts_on: date(d, "starts_on", e)?,
                expires_on: date(d, "expires_on", e)?,
                licensee_email: need(d, "licensee_email", e)?.to_string(),
                reseller_notified: d["reseller"].as_bool().unwrap_or(false),
                account_id,
            })
        }
        "LicenseHeld" => {
            let e = "LicenseHeld";
            let account_id = need(d, "account_id", e)?.to_string();
            let communication_profile =
                profile(text(d, "communication_profile").unwrap_or("Silent"));
            AnyEvent::LicenseHeld(LicenseHeld {
                envelope: envelope(&account_id),
                subscription_id: need(d, "subscription_id", e)?.to_string(),
                reason: LicenseHoldReason::SilentProfile,
                communication_profile,
                account_id,
            })
        }
        other => {
            return Err(format!(
                "feed event type {other:?} is not one this hub knows"
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples;

    const FEED: Feed<'static> = Feed {
        source: "license",
        epoch: "e1",
    };

    fn ev(seq: u64, kind: &str, data: Value) -> FeedEvent {
        FeedEvent {
            seq,
            kind: kind.into(),
            occurred_at: "2026-12-02T10:00:00.000Z".into(),
            data,
        }
    }

    fn issued() -> Value {
        json!({"subscription_id": "A-S00000001", "account_id": "cust_1", "status": "issued",
            "key": "L2F-AAAA-BBBB", "plan": "premium-self-managed-1y", "seats": 10,
            "starts_on": "2026-12-02", "expires_on": "2027-12-02",
            "licensee_email": "ada@example.com", "reseller": true})
    }

    #[test]
    fn rule_8_web_store_and_reseller_purchases_wait_for_their_terms() {
        let mut s = examples::subscription_created();
        s.deployment = Deployment::SelfManaged;
        let batches = [BillingBatch::Batch1, BillingBatch::Batch4];
        for (batch, wait) in [
            (BillingBatch::Batch1, true),
            (BillingBatch::Batch4, true),
            (BillingBatch::Batch2, false),
            (BillingBatch::Batch5, false),
        ] {
            s.billing_batch = batch;
            let t = needs_terms(batch, &batches);
            assert_eq!(t, wait, "{batch:?}");
            let b = registration(&s, t, false);
            assert_eq!(b["terms_accepted"], !wait);
            assert_eq!(b["reseller"], batch == BillingBatch::Batch4);
        }
        assert!(licensed(&s));
        s.deployment = Deployment::Saas;
        assert!(!licensed(&s), "SaaS has no license to issue");
    }

    #[test]
    fn an_acceptance_finds_its_subscription_by_number_or_by_order() {
        let ls = [
            json!({"subscription_id": "A-S1", "order_id": "sub_000001"}),
            json!({"subscription_id": "A-S2", "order_id": "sub_000002"}),
        ];
        assert_eq!(registered_as(&ls, "A-S2"), Some("A-S2"));
        assert_eq!(registered_as(&ls, "sub_000001"), Some("A-S1"));
        assert_eq!(registered_as(&ls, "sub_000009"), None);
    }

    #[test]
    fn rule_6_a_holding_profile_is_sent_as_silent() {
        let s = examples::subscription_created();
        assert_eq!(
            registration(&s, true, true)["communication_profile"],
            "Silent"
        );
        assert_eq!(
            registration(&s, true, false)["communication_profile"],
            "Default"
        );
        assert_eq!(
            registration(&s, true, false)["starts_on"],
            s.term_start.to_string()
        );
    }

    #[test]
    fn an_issued_license_becomes_its_event_with_an_id_from_its_feed_position() {
        let Mapped::Event(e) = map(&ev(4, "LicenseIssued", issued()), &FEED) else {
            panic!("not an event")
        };
        let AnyEvent::LicenseIssued(l) = *e else {
            panic!()
        };
        assert_eq!(l.license_id, "L2F-AAAA-BBBB");
        assert_eq!(l.seats, 10);
        assert!(l.reseller_notified);
        assert_eq!(l.envelope.event_id, event_id("license", "e1", "4"));
        assert_eq!(l.envelope.source, SourceSystem::LicenseService);
        assert_eq!(l.envelope.correlation_id, account_flow("cust_1"));
    }

    #[test]
    fn a_held_license_names_its_profile_and_a_bad_change_names_the_field() {
        let held = json!({"subscription_id": "A-S1", "account_id": "cust_1", "communication_profile": "Silent"});
        let Mapped::Event(e) = map(&ev(2, "LicenseHeld", held), &FEED) else {
            panic!()
        };
        let AnyEvent::LicenseHeld(h) = *e else {
            panic!()
        };
        assert_eq!(h.reason, LicenseHoldReason::SilentProfile);
        assert_eq!(h.communication_profile, CommunicationProfile::Silent);
        let mut bad = issued();
        bad["expires_on"] = json!("next year");
        let Mapped::Rejected(why) = map(&ev(3, "LicenseIssued", bad), &FEED) else {
            panic!("must be rejected")
        };
        assert!(
            why.contains("expires_on") && why.contains("next year"),
            "{why}"
        );
        assert!(
            matches!(map(&ev(1, "Teleported", json!({})), &FEED), Mapped::Rejected(w) if w.contains("Teleported"))
        );
    }
}
