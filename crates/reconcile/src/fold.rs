//! The fold: the event log → the expected state of every subscription and Zuora account,
//! each field with the event that set it.
//!
//! What sets what (the rules the connectors apply, so the apps end up holding it):
//! - `SubscriptionCreated` (Zuora): the subscription — status active, seats, term, auto-renew,
//!   plan, entity (rule 3), batch (rule 4), its Zuora account `<hub account>-<ENTITY>` — and
//!   that account's entity, batch and communication profile (rule 6);
//! - `SubscriptionAmended`: seats; `SubscriptionRenewed`: status active, term, seats;
//! - `SubscriptionCancelled`: status cancelled, the reason (rule 10), auto-renew off (rule 5:
//!   a cancellation turns it off, [`l2f_rules`]' `auto_renew::after(Cancelled)`);
//! - `AutoRenewChanged` (either flag owner: the hub keeps both flags in step, rule 5);
//! - `CommunicationProfileChanged` (licenses): the profile of every Zuora account of the hub
//!   account (rule 6);
//! - `OrderPlaced` NEW / ADD_ON (orders): a Zuora subscription for the order, until a
//!   `SubscriptionCreated` names the order (its `order_id`, Zuora's `L2fOrderId__c`).
//!
//! Order: the last writer of a field wins — by offset within one partition (the log's own
//! order, which is the order per key), else by the envelope's `occurred_at`. The customers
//! app names a subscription by its own id until Zuora's number is mirrored; such events are
//! merged into the Zuora subscription whose `order_id` is that id when the fold finishes.
//! Subscriptions the log never saw created in Zuora (a web purchase still in flight) are
//! counted, not expected.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use l2f_connector_zuora::mapping::account_number;
use l2f_contracts::events::{CancellationReason, OrderPlaced, OrderType, SourceSystem};
use l2f_contracts::record::AnyEvent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Where an event sits in the log, and who it is: what a drift names as its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The envelope's event id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The envelope's occurred-at.
    pub occurred_at: DateTime<Utc>,
    /// The producing system.
    pub source: SourceSystem,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{} {} {}",
            self.topic, self.partition, self.offset, self.event_type, self.event_id
        )
    }
}

impl Origin {
    /// `topic:partition:offset`.
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }

    /// Whether `self` was written after `other` (log order in one partition, else time).
    pub fn after(&self, other: &Origin) -> bool {
        if self.topic == other.topic && self.partition == other.partition {
            return self.offset > other.offset;
        }
        (self.occurred_at, &self.topic, self.partition, self.offset)
            > (
                other.occurred_at,
                &other.topic,
                other.partition,
                other.offset,
            )
    }
}

/// A field's expected value and the event that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The value, in the canonical form the app readers also produce (symbols, `YYYY-MM-DD`,
    /// numbers, booleans, `null` for "none").
    pub value: Value,
    /// The event that set it.
    pub by: Origin,
}

/// One record's expected fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Field → setting.
    pub fields: BTreeMap<String, Setting>,
}

impl Expected {
    fn set(&mut self, field: &str, value: Value, by: &Origin) {
        match self.fields.get(field) {
            Some(s) if !by.after(&s.by) => {}
            _ => {
                self.fields.insert(
                    field.to_string(),
                    Setting {
                        value,
                        by: by.clone(),
                    },
                );
            }
        }
    }

    fn merge(&mut self, other: Expected) {
        for (k, s) in other.fields {
            self.set(&k, s.value, &s.by);
        }
    }

    /// The value of a field (`null` when unset).
    pub fn value(&self, field: &str) -> &Value {
        self.fields.get(field).map_or(&Value::Null, |s| &s.value)
    }

    /// The distinct events that set the record's fields, oldest first.
    pub fn setters(&self) -> Vec<Origin> {
        let mut out: Vec<Origin> = Vec::new();
        for s in self.fields.values() {
            if !out.iter().any(|o| o.event_id == s.by.event_id) {
                out.push(s.by.clone());
            }
        }
        out.sort_by(|a, b| {
            if a.after(b) {
                std::cmp::Ordering::Greater
            } else if b.after(a) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Equal
            }
        });
        out
    }
}

/// The expected state of everything the log speaks of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// By Zuora subscription number.
    pub subscriptions: BTreeMap<String, Expected>,
    /// By Zuora account number (`<hub account>-<ENTITY>`).
    pub accounts: BTreeMap<String, Expected>,
    /// Subscriptions with events but never created in Zuora (not expected anywhere yet).
    pub pending: Vec<String>,
    /// NEW / ADD_ON orders no `SubscriptionCreated` names yet, by order id: Zuora should
    /// hold a subscription for each (field `subscription` set by the order).
    pub orders: BTreeMap<String, Expected>,
    /// Those orders themselves (where in Zuora to look: rule 3's entity).
    #[serde(skip)]
    pub placed: BTreeMap<String, OrderPlaced>,
}

/// The fold in progress.
#[derive(Debug, Default)]
pub struct Fold {
    subs: BTreeMap<String, Expected>,
    created: BTreeMap<String, bool>,
    accounts: BTreeMap<String, Expected>,
    hub_profiles: BTreeMap<String, Setting>,
    aliases: BTreeMap<String, String>,
    orders: BTreeMap<String, (Origin, OrderPlaced)>,
    fulfilled: std::collections::BTreeSet<String>,
    /// Events folded.
    pub folded: u64,
    /// Records read that say nothing about an account's or subscription's state.
    pub ignored: u64,
    /// Records that did not decode (not events of the catalog).
    pub undecodable: u64,
}

/// Field names, shared with the readers.
pub mod field {
    /// `active` / `cancelled`.
    pub const STATUS: &str = "status";
    /// Seats.
    pub const SEATS: &str = "seats";
    /// Term start.
    pub const TERM_START: &str = "term_start";
    /// Term end.
    pub const TERM_END: &str = "term_end";
    /// Auto-renew.
    pub const AUTO_RENEW: &str = "auto_renew";
    /// Cancellation reason symbol, or null.
    pub const CANCELLATION_REASON: &str = "cancellation_reason";
    /// Plan SKU.
    pub const PLAN_SKU: &str = "plan_sku";
    /// Zuora entity symbol.
    pub const ENTITY: &str = "entity";
    /// Billing batch symbol.
    pub const BATCH: &str = "batch";
    /// Communication profile symbol.
    pub const COMMUNICATION_PROFILE: &str = "communication_profile";
    /// The Zuora account number a subscription is under.
    pub const ACCOUNT: &str = "account";
    /// The hub's account id.
    pub const HUB_ACCOUNT: &str = "hub_account";
    /// An order's subscription in Zuora (`created`).
    pub const SUBSCRIPTION: &str = "subscription";
}

use field::*;

fn day(d: NaiveDate) -> Value {
    json!(d.format("%Y-%m-%d").to_string())
}

impl Fold {
    /// A fold of nothing.
    pub fn new() -> Self {
        Fold::default()
    }

    /// Folds one event read at `origin`.
    pub fn apply(&mut self, origin: &Origin, event: &AnyEvent) {
        let o = origin;
        match event {
            AnyEvent::SubscriptionCreated(s) => {
                let number = account_number(&s.account_id, s.zuora_entity);
                self.created.insert(s.subscription_id.clone(), true);
                self.fulfilled.insert(s.order_id.clone());
                if s.order_id != s.subscription_id {
                    self.aliases
                        .insert(s.order_id.clone(), s.subscription_id.clone());
                }
                let sub = self.subs.entry(s.subscription_id.clone()).or_default();
                sub.set(STATUS, json!("active"), o);
                sub.set(SEATS, json!(s.seats), o);
                sub.set(TERM_START, day(s.term_start), o);
                sub.set(TERM_END, day(s.term_end), o);
                sub.set(AUTO_RENEW, json!(s.auto_renew), o);
                sub.set(PLAN_SKU, json!(s.plan_sku), o);
                sub.set(ENTITY, json!(s.zuora_entity.symbol()), o);
                sub.set(ACCOUNT, json!(number), o);
                sub.set(HUB_ACCOUNT, json!(s.account_id), o);
                sub.set(CANCELLATION_REASON, Value::Null, o);
                let a = self.accounts.entry(number).or_default();
                a.set(ENTITY, json!(s.zuora_entity.symbol()), o);
                a.set(BATCH, json!(s.billing_batch.symbol()), o);
                a.set(
                    COMMUNICATION_PROFILE,
                    json!(s.communication_profile.symbol()),
                    o,
                );
                a.set(HUB_ACCOUNT, json!(s.account_id), o);
            }
            AnyEvent::OrderPlaced(p) if p.order_type != OrderType::Renewal => {
                self.orders
                    .insert(p.order_id.clone(), (o.clone(), p.clone()));
            }
            AnyEvent::SubscriptionAmended(s) => {
                let sub = self.subs.entry(s.subscription_id.clone()).or_default();
                sub.set(SEATS, json!(s.seats), o);
            }
            AnyEvent::SubscriptionRenewed(s) => {
                let sub = self.subs.entry(s.subscription_id.clone()).or_default();
                sub.set(STATUS, json!("active"), o);
                sub.set(TERM_START, day(s.term_start), o);
                sub.set(TERM_END, day(s.term_end), o);
                sub.set(SEATS, json!(s.seats), o);
            }
            AnyEvent::SubscriptionCancelled(s) => {
                let sub = self.subs.entry(s.subscription_id.clone()).or_default();
                sub.set(STATUS, json!("cancelled"), o);
                sub.set(CANCELLATION_REASON, json!(s.reason.symbol()), o);
                // Rule 5: a cancellation turns auto-renew off (`auto_renew::after(Cancelled)`).
                sub.set(AUTO_RENEW, json!(false), o);
            }
            AnyEvent::AutoRenewChanged(s) => {
                let sub = self.subs.entry(s.subscription_id.clone()).or_default();
                sub.set(AUTO_RENEW, json!(s.auto_renew), o);
            }
            AnyEvent::CommunicationProfileChanged(c) => {
                let new = Setting {
                    value: json!(c.communication_profile.symbol()),
                    by: o.clone(),
                };
                match self.hub_profiles.get(&c.account_id) {
                    Some(s) if !o.after(&s.by) => {}
                    _ => {
                        self.hub_profiles.insert(c.account_id.clone(), new);
                    }
                }
            }
            _ => {
                self.ignored += 1;
                return;
            }
        }
        self.folded += 1;
    }

    /// The expected state: aliases merged, profiles spread over the hub account's Zuora
    /// accounts, never-created subscriptions set aside.
    pub fn finish(mut self) -> State {
        for (alias, number) in &self.aliases {
            if alias == number {
                continue;
            }
            if let Some(early) = self.subs.remove(alias) {
                self.subs.entry(number.clone()).or_default().merge(early);
            }
        }
        for a in self.accounts.values_mut() {
            let hub = a.value(HUB_ACCOUNT).as_str().map(str::to_string);
            if let Some(p) = hub.and_then(|h| self.hub_profiles.get(&h)) {
                a.set(COMMUNICATION_PROFILE, p.value.clone(), &p.by);
            }
        }
        let mut pending = Vec::new();
        let created = &self.created;
        self.subs.retain(|id, _| {
            let keep = created.contains_key(id);
            if !keep {
                pending.push(id.clone());
            }
            keep
        });
        let mut orders = BTreeMap::new();
        let mut placed = BTreeMap::new();
        for (id, (origin, order)) in self.orders {
            if self.fulfilled.contains(&id) {
                continue;
            }
            let mut e = Expected::default();
            e.set(SUBSCRIPTION, json!("created"), &origin);
            orders.insert(id.clone(), e);
            placed.insert(id, order);
        }
        State {
            subscriptions: self.subs,
            accounts: self.accounts,
            pending,
            orders,
            placed,
        }
    }
}

/// A cancellation reason from its symbol.
pub fn reason_of(symbol: &str) -> Option<CancellationReason> {
    CancellationReason::VARIANTS
        .iter()
        .copied()
        .find(|r| r.symbol() == symbol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::events::*;
    use l2f_contracts::examples;

    pub(crate) fn at(partition: i32, offset: i64, ms: i64, ev: &AnyEvent) -> Origin {
        Origin {
            topic: "subscriptions".into(),
            partition,
            offset,
            event_id: ev.envelope().event_id,
            event_type: ev.name().into(),
            occurred_at: DateTime::from_timestamp_millis(ms).unwrap(),
            source: ev.envelope().source,
        }
    }

    fn created() -> SubscriptionCreated {
        let mut s = examples::subscription_created();
        s.subscription_id = "A-S00000001".into();
        s.account_id = "cust_000001".into();
        s.order_id = "sub_000001".into();
        s.seats = 10;
        s.auto_renew = true;
        s.zuora_entity = ZuoraEntity::GitlabInc;
        s.communication_profile = CommunicationProfile::Default;
        s.envelope.event_id = Uuid::from_u128(1);
        s
    }

    #[test]
    fn created_then_amended_then_cancelled_gives_the_last_value_of_each_field_and_its_event() {
        let c = AnyEvent::SubscriptionCreated(created());
        let mut am = examples::subscription_amended();
        am.subscription_id = "A-S00000001".into();
        am.seats = 25;
        am.envelope.event_id = Uuid::from_u128(2);
        let am = AnyEvent::SubscriptionAmended(am);
        let mut x = examples::subscription_cancelled();
        x.subscription_id = "A-S00000001".into();
        x.reason = CancellationReason::WrongSeatCount;
        x.envelope.event_id = Uuid::from_u128(3);
        let x = AnyEvent::SubscriptionCancelled(x);
        let mut f = Fold::new();
        f.apply(&at(0, 0, 10, &c), &c);
        f.apply(&at(0, 1, 20, &am), &am);
        f.apply(&at(0, 2, 30, &x), &x);
        let s = f.finish();
        let sub = &s.subscriptions["A-S00000001"];
        assert_eq!(sub.value(SEATS), &json!(25));
        assert_eq!(sub.fields[SEATS].by.offset, 1);
        assert_eq!(sub.value(STATUS), &json!("cancelled"));
        assert_eq!(sub.value(AUTO_RENEW), &json!(false), "rule 5");
        assert_eq!(sub.fields[AUTO_RENEW].by.event_id, Uuid::from_u128(3));
        assert_eq!(sub.value(CANCELLATION_REASON), &json!("WRONG_SEAT_COUNT"));
        assert_eq!(sub.value(TERM_END), &json!("2027-11-30"));
        assert_eq!(sub.value(ACCOUNT), &json!("cust_000001-INC"));
        let acct = &s.accounts["cust_000001-INC"];
        assert_eq!(acct.value(ENTITY), &json!("GITLAB_INC"));
        assert_eq!(acct.value(COMMUNICATION_PROFILE), &json!("DEFAULT"));
        let setters: Vec<i64> = sub.setters().iter().map(|o| o.offset).collect();
        assert_eq!(setters, vec![0, 1, 2], "oldest first, each once");
    }

    #[test]
    fn log_order_wins_within_a_partition_time_across_partitions() {
        let on = AnyEvent::AutoRenewChanged(AutoRenewChanged {
            auto_renew: true,
            subscription_id: "A-S00000001".into(),
            ..examples::auto_renew_changed()
        });
        let off = AnyEvent::AutoRenewChanged(AutoRenewChanged {
            auto_renew: false,
            subscription_id: "A-S00000001".into(),
            ..examples::auto_renew_changed()
        });
        let c = AnyEvent::SubscriptionCreated(created());
        // Same partition: offset 2 is later though its clock says earlier.
        let mut f = Fold::new();
        f.apply(&at(0, 0, 10, &c), &c);
        f.apply(&at(0, 2, 5, &off), &off);
        f.apply(&at(0, 1, 50, &on), &on);
        assert_eq!(
            f.finish().subscriptions["A-S00000001"].value(AUTO_RENEW),
            &json!(false)
        );
        // Another partition: the later occurred_at wins whatever the read order.
        let mut f = Fold::new();
        f.apply(&at(0, 0, 10, &c), &c);
        f.apply(&at(1, 9, 50, &on), &on);
        f.apply(&at(0, 1, 40, &off), &off);
        assert_eq!(
            f.finish().subscriptions["A-S00000001"].value(AUTO_RENEW),
            &json!(true)
        );
    }

    #[test]
    fn the_customers_apps_id_is_merged_into_the_zuora_subscription_and_profiles_spread() {
        let c = AnyEvent::SubscriptionCreated(created());
        // The customer turned auto-renew off before Zuora's number was mirrored.
        let off = AnyEvent::AutoRenewChanged(AutoRenewChanged {
            auto_renew: false,
            subscription_id: "sub_000001".into(),
            flag_owner: SourceSystem::CustomersApp,
            ..examples::auto_renew_changed()
        });
        let mut p = examples::communication_profile_changed();
        p.account_id = "cust_000001".into();
        p.communication_profile = CommunicationProfile::Silent;
        let p = AnyEvent::CommunicationProfileChanged(p);
        let mut lonely = examples::auto_renew_changed();
        lonely.subscription_id = "sub_000099".into();
        let lonely = AnyEvent::AutoRenewChanged(lonely);
        let mut f = Fold::new();
        f.apply(&at(1, 0, 5, &off), &off);
        f.apply(&at(0, 0, 10, &c), &c);
        f.apply(&at(2, 0, 20, &p), &p);
        f.apply(&at(3, 0, 20, &lonely), &lonely);
        let s = f.finish();
        let sub = &s.subscriptions["A-S00000001"];
        assert_eq!(
            sub.value(AUTO_RENEW),
            &json!(true),
            "created later than the early toggle"
        );
        assert!(!s.subscriptions.contains_key("sub_000001"), "merged");
        assert_eq!(s.pending, vec!["sub_000099".to_string()]);
        let a = &s.accounts["cust_000001-INC"];
        assert_eq!(a.value(COMMUNICATION_PROFILE), &json!("SILENT"));
        assert_eq!(a.fields[COMMUNICATION_PROFILE].by.partition, 2);
    }

    #[test]
    fn an_order_is_expected_in_zuora_until_a_creation_names_it() {
        let mut new = examples::order_placed();
        new.order_type = OrderType::New;
        new.order_id = "sub_000001".into();
        let mut other = new.clone();
        other.order_id = "sub_000002".into();
        let mut renewal = new.clone();
        renewal.order_id = "sub_000003".into();
        renewal.order_type = OrderType::Renewal;
        let c = AnyEvent::SubscriptionCreated(created());
        let mut f = Fold::new();
        for (i, o) in [new, other, renewal].into_iter().enumerate() {
            let e = AnyEvent::OrderPlaced(o);
            f.apply(&at(0, i as i64, 1, &e), &e);
        }
        f.apply(&at(1, 0, 2, &c), &c);
        let s = f.finish();
        let ids: Vec<&String> = s.orders.keys().collect();
        assert_eq!(ids, ["sub_000002"], "fulfilled and renewal orders are not");
        assert_eq!(s.orders["sub_000002"].fields[SUBSCRIPTION].by.offset, 1);
        assert!(s.placed.contains_key("sub_000002"));
    }

    #[test]
    fn events_that_say_nothing_about_state_are_counted_not_folded() {
        let lead = AnyEvent::LeadCaptured(examples::lead_captured());
        let mut f = Fold::new();
        f.apply(&at(0, 0, 1, &lead), &lead);
        assert_eq!((f.folded, f.ignored), (0, 1));
        assert!(f.finish().subscriptions.is_empty());
    }
}
