//! The comparison: what one app holds against the expected state, field by field. A field
//! the app does not keep is not compared; a record the app lacks is *missing*; a record it
//! holds that the log never created is *extra* (only where the app's listing is complete).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fold::{Expected, Origin, State};

/// What kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A subscription (by Zuora number).
    Subscription,
    /// A Zuora account (by account number) or its mirror.
    Account,
    /// An order (by order id) and the subscription Zuora should hold for it.
    Order,
}

impl Kind {
    /// `subscription` / `account`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Subscription => "subscription",
            Kind::Account => "account",
            Kind::Order => "order",
        }
    }
}

/// What one app holds of one kind of record, in the fold's canonical field forms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldSet {
    /// Record id → field → value.
    pub records: BTreeMap<String, BTreeMap<String, Value>>,
    /// The fields this app keeps (only these are compared).
    pub fields: Vec<&'static str>,
    /// Whether `records` is everything the app has of this kind in the reconciled scope
    /// (so a record the log does not know is extra).
    pub listed: bool,
}

/// What an app holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// `zuora`, `salesforce`, `customers`.
    pub app: &'static str,
    /// Its subscriptions, if it keeps them.
    pub subscriptions: Option<HeldSet>,
    /// Its accounts, if it keeps them.
    pub accounts: Option<HeldSet>,
    /// The orders it holds a subscription for (Zuora), if it was asked.
    pub orders: Option<HeldSet>,
}

/// How a record differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// A field holds another value.
    Field,
    /// The app lacks the record.
    Missing,
    /// The app holds a record the log never created.
    Extra,
}

/// One difference between the log and an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The app.
    pub app: String,
    /// Record kind.
    pub kind: Kind,
    /// Record id (Zuora subscription or account number).
    pub record: String,
    /// Field, missing, extra.
    pub drift: DriftKind,
    /// The field (`-` for a missing or extra record).
    pub field: String,
    /// What the log says.
    pub expected: Value,
    /// What the app holds.
    pub held: Value,
    /// The event that set the expected value (none for an extra record).
    pub set_by: Option<Origin>,
}

/// Whether two canonical values are the same (numbers compared as numbers: 10 = 10.0).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(
    app: &str,
    kind: Kind,
    expected: &BTreeMap<String, Expected>,
    held: &HeldSet,
    out: &mut Vec<Drift>,
) {
    for (id, exp) in expected {
        let Some(h) = held.records.get(id) else {
            let by = exp
                .fields
                .values()
                .map(|s| &s.by)
                .min_by(|a, b| {
                    if a.after(b) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    }
                })
                .cloned();
            out.push(Drift {
                app: app.into(),
                kind,
                record: id.clone(),
                drift: DriftKind::Missing,
                field: "-".into(),
                expected: Value::String("present".into()),
                held: Value::Null,
                set_by: by,
            });
            continue;
        };
        for f in &held.fields {
            let Some(s) = exp.fields.get(*f) else {
                continue;
            };
            let v = h.get(*f).unwrap_or(&Value::Null);
            if !same(&s.value, v) {
                out.push(Drift {
                    app: app.into(),
                    kind,
                    record: id.clone(),
                    drift: DriftKind::Field,
                    field: (*f).into(),
                    expected: s.value.clone(),
                    held: v.clone(),
                    set_by: Some(s.by.clone()),
                });
            }
        }
    }
    if held.listed {
        for id in held.records.keys().filter(|id| !expected.contains_key(*id)) {
            out.push(Drift {
                app: app.into(),
                kind,
                record: id.clone(),
                drift: DriftKind::Extra,
                field: "-".into(),
                expected: Value::Null,
                held: Value::String("present".into()),
                set_by: None,
            });
        }
    }
}

/// Every drift of `held` against `state`, in (kind, record, field) order.
pub fn diff(state: &State, held: &Held) -> Vec<Drift> {
    let mut out = Vec::new();
    if let Some(a) = &held.accounts {
        compare(held.app, Kind::Account, &state.accounts, a, &mut out);
    }
    if let Some(s) = &held.subscriptions {
        compare(
            held.app,
            Kind::Subscription,
            &state.subscriptions,
            s,
            &mut out,
        );
    }
    if let Some(o) = &held.orders {
        compare(held.app, Kind::Order, &state.orders, o, &mut out);
    }
    out.sort_by(|a, b| {
        (a.kind, &a.record, a.drift, &a.field).cmp(&(b.kind, &b.record, b.drift, &b.field))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::{field::*, Fold};
    use l2f_contracts::events::*;
    use l2f_contracts::examples;
    use l2f_contracts::record::AnyEvent;
    use serde_json::json;

    fn state() -> State {
        let mut s = examples::subscription_created();
        s.subscription_id = "A-S1".into();
        s.account_id = "acct".into();
        s.zuora_entity = ZuoraEntity::GitlabBv;
        s.auto_renew = true;
        s.seats = 10;
        let e = AnyEvent::SubscriptionCreated(s);
        let o = Origin {
            topic: "subscriptions".into(),
            partition: 2,
            offset: 41,
            event_id: e.envelope().event_id,
            event_type: e.name().into(),
            occurred_at: e.envelope().occurred_at,
            source: e.envelope().source,
        };
        let mut f = Fold::new();
        f.apply(&o, &e);
        f.finish()
    }

    fn held(records: Vec<(&str, Value)>, listed: bool) -> Held {
        let records = records
            .into_iter()
            .map(|(id, v)| {
                let m: BTreeMap<String, Value> = serde_json::from_value(v).unwrap();
                (id.to_string(), m)
            })
            .collect();
        Held {
            app: "zuora",
            subscriptions: Some(HeldSet {
                records,
                fields: vec![STATUS, SEATS, AUTO_RENEW, TERM_END],
                listed,
            }),
            accounts: None,
            orders: None,
        }
    }

    fn agreeing() -> Value {
        json!({"status": "active", "seats": 10.0, "auto_renew": true, "term_end": "2027-11-30", "plan_sku": "ignored"})
    }

    #[test]
    fn agreement_is_no_drift_and_numbers_compare_as_numbers() {
        assert!(diff(&state(), &held(vec![("A-S1", agreeing())], true)).is_empty());
    }

    #[test]
    fn a_flipped_field_names_both_values_and_the_event_that_set_it() {
        let mut v = agreeing();
        v["auto_renew"] = json!(false);
        let d = diff(&state(), &held(vec![("A-S1", v)], true));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (d[0].drift, d[0].field.as_str()),
            (DriftKind::Field, "auto_renew")
        );
        assert_eq!((&d[0].expected, &d[0].held), (&json!(true), &json!(false)));
        let by = d[0].set_by.as_ref().unwrap();
        assert_eq!(by.position(), "subscriptions:2:41");
        assert_eq!(by.event_type, "SubscriptionCreated");
    }

    #[test]
    fn missing_and_extra_records_are_drift_extra_only_from_a_complete_listing() {
        let d = diff(&state(), &held(vec![("A-S9", agreeing())], true));
        let kinds: Vec<(DriftKind, &str)> =
            d.iter().map(|d| (d.drift, d.record.as_str())).collect();
        assert_eq!(
            kinds,
            vec![(DriftKind::Missing, "A-S1"), (DriftKind::Extra, "A-S9")]
        );
        assert!(d[0].set_by.is_some() && d[1].set_by.is_none());
        let d = diff(&state(), &held(vec![("A-S9", agreeing())], false));
        assert_eq!(d.len(), 1, "no extra without a complete listing");
    }

    #[test]
    fn an_absent_field_is_drift_against_a_set_expectation() {
        let mut v = agreeing();
        v.as_object_mut().unwrap().remove("term_end");
        let d = diff(&state(), &held(vec![("A-S1", v)], true));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].held, Value::Null);
    }
}
