//! `--fix`: the events that repair the drift, re-emitted so the normal connectors apply them
//! again — never a write to an app.
//!
//! Which events ([`plan`]):
//! - **Salesforce's billing mirror and the customers app's mirror** apply Zuora's own
//!   subscription events. For a drifted or missing record the plan re-emits every event that
//!   set one of its expected fields (for an account: also the fields of the subscription
//!   whose creation set it), oldest first, so the mirror ends at the expected state whatever
//!   it held — re-applying only the event of one field could undo a later one. An expected
//!   value set by another system's event (a customers-app toggle Zuora has not reported yet)
//!   has nothing a mirror applies: reported as not repairable.
//! - **Zuora** applies the customers app's toggles and cancellations (and orders). A field
//!   set by such an event is repaired by a copy of it; a drifted auto-renew set by Zuora's own
//!   event is repaired by an `AutoRenewChanged` with the customers app as flag owner (what
//!   the Zuora sink follows, rule 5), caused by that event. Seats, terms, entity, batch and
//!   profile are Zuora's own: not repairable through the hub.
//! - Extra records have no event to re-emit: reported.
//!
//! What a repair is ([`emit`]): a copy of the original with a new event id
//! (`derived_id(original, "l2f-reconcile:<run>")`, so each run's repair is new to the sinks'
//! idempotency keys), causation = the original's event id, the same correlation, `occurred_at`
//! = now, and headers `l2f.repair` = `reconcile`, `l2f.repair-of` = the original's
//! `topic:partition:offset`, `l2f.repair-run` = the run. Copies go to the original's topic
//! and key (so to its partition, after it).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use l2f_bus::{OutRecord, Producer};
use l2f_connector_kit::record::out_record;
use l2f_contracts::events::{AutoRenewChanged, Envelope, SourceSystem};
use l2f_contracts::record::{derived_id, AnyEvent};
use l2f_contracts::Codec;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::diff::{Drift, DriftKind, Kind};
use crate::error::{ReconcileError, Result};
use crate::fold::{field::*, Origin, State};

/// Header marking a re-emitted event as a repair (the kit's, which sinks check).
pub use l2f_connector_kit::record::REPAIR_HEADER;
/// Header naming the original's `topic:partition:offset`.
pub const REPAIR_OF_HEADER: &str = "l2f.repair-of";
/// Header naming the reconcile run.
pub const REPAIR_RUN_HEADER: &str = "l2f.repair-run";

/// What a repair re-emits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A copy of the event at `origin`.
    Copy,
    /// An `AutoRenewChanged` (flag owner: the customers app) setting Zuora's flag.
    SetAutoRenew {
        /// Zuora subscription number.
        subscription_id: String,
        /// Hub account id.
        account_id: String,
        /// The expected flag.
        auto_renew: bool,
    },
}

/// One event to re-emit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// What to emit.
    pub action: Action,
    /// The original (copied, or the cause of the synthesised event).
    pub origin: Origin,
    /// The drifts it repairs (`app kind record field`).
    pub repairs: Vec<String>,
}

/// A drift no re-emitted event repairs, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unrepairable {
    /// `app kind record field`.
    pub drift: String,
    /// Why.
    pub reason: String,
}

/// The repairs of a set of drifts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Events to re-emit, in order.
    pub repairs: Vec<Repair>,
    /// Drifts left as they are.
    pub unrepairable: Vec<Unrepairable>,
}

impl Drift {
    fn event_is(&self, event_type: &str, by: &Origin) -> bool {
        self.drift == DriftKind::Missing && by.event_type == event_type
    }
}

/// `app kind record field`.
pub fn label(d: &Drift) -> String {
    format!("{} {} {} {}", d.app, d.kind.name(), d.record, d.field)
}

/// Whether a mirror (Salesforce's, the customers app's) applies the event.
fn mirrored(o: &Origin) -> bool {
    o.source == SourceSystem::Zuora
        && matches!(
            o.event_type.as_str(),
            "SubscriptionCreated"
                | "SubscriptionAmended"
                | "SubscriptionRenewed"
                | "SubscriptionCancelled"
                | "AutoRenewChanged"
        )
}

/// Whether the Zuora sink applies the event.
fn zuora_applies(o: &Origin) -> bool {
    o.source == SourceSystem::CustomersApp
        && matches!(
            o.event_type.as_str(),
            "AutoRenewChanged" | "SubscriptionCancelled"
        )
}

impl Plan {
    fn add(&mut self, action: Action, origin: &Origin, drift: &str) {
        if let Some(r) = self
            .repairs
            .iter_mut()
            .find(|r| r.action == action && r.origin.event_id == origin.event_id)
        {
            if !r.repairs.iter().any(|d| d == drift) {
                r.repairs.push(drift.to_string());
            }
            return;
        }
        self.repairs.push(Repair {
            action,
            origin: origin.clone(),
            repairs: vec![drift.to_string()],
        });
    }

    fn refuse(&mut self, drift: String, reason: impl Into<String>) {
        self.unrepairable.push(Unrepairable {
            drift,
            reason: reason.into(),
        });
    }
}

/// The subscriptions whose events set the account's fields.
fn subscriptions_of_account(state: &State, account: &str) -> Vec<String> {
    let Some(a) = state.accounts.get(account) else {
        return vec![];
    };
    let ids: Vec<Uuid> = a.fields.values().map(|s| s.by.event_id).collect();
    state
        .subscriptions
        .iter()
        .filter(|(_, s)| s.fields.values().any(|f| ids.contains(&f.by.event_id)))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The repairs of `drifts`.
pub fn plan(drifts: &[Drift], state: &State) -> Plan {
    let mut p = Plan::default();
    for d in drifts {
        let what = label(d);
        if d.drift == DriftKind::Extra {
            p.refuse(
                what,
                "not in the event log: no event to re-emit (remove it in the app, or find the event that is missing)",
            );
            continue;
        }
        let Some(by) = &d.set_by else {
            p.refuse(what, "no event set the expected value");
            continue;
        };
        match d.app.as_str() {
            "zuora" => {
                if d.kind == Kind::Order && d.event_is("OrderPlaced", by) {
                    // The Zuora sink places an order once (it looks for `L2fOrderId__c`).
                    p.add(Action::Copy, by, &what);
                } else if d.kind == Kind::Subscription
                    && d.drift == DriftKind::Field
                    && zuora_applies(by)
                {
                    p.add(Action::Copy, by, &what);
                } else if d.kind == Kind::Subscription
                    && d.drift == DriftKind::Field
                    && d.field == AUTO_RENEW
                {
                    let account_id = state
                        .subscriptions
                        .get(&d.record)
                        .and_then(|s| s.value(HUB_ACCOUNT).as_str())
                        .unwrap_or_default()
                        .to_string();
                    let action = Action::SetAutoRenew {
                        subscription_id: d.record.clone(),
                        account_id,
                        auto_renew: d.expected.as_bool().unwrap_or(false),
                    };
                    p.add(action, by, &what);
                } else {
                    p.refuse(
                        what,
                        format!(
                            "set by {} from {}, which the Zuora sink does not apply (it follows orders and the customers app's auto-renew and cancellations): change it in Zuora",
                            by.event_type,
                            by.source.symbol()
                        ),
                    );
                }
            }
            "salesforce" | "customers" => {
                if !mirrored(by) {
                    p.refuse(
                        what,
                        format!(
                            "set by {} from {}, which the {} mirror takes only as Zuora reports it (no copy is re-emitted): it follows once Zuora reports the change again",
                            by.event_type,
                            by.source.symbol(),
                            d.app
                        ),
                    );
                    continue;
                }
                let subs = match d.kind {
                    Kind::Subscription => vec![d.record.clone()],
                    Kind::Account => subscriptions_of_account(state, &d.record),
                    Kind::Order => vec![],
                };
                let mut setters: Vec<Origin> = Vec::new();
                if let Some(a) = state
                    .accounts
                    .get(&d.record)
                    .filter(|_| d.kind == Kind::Account)
                {
                    setters.extend(a.setters());
                }
                for s in subs.iter().filter_map(|n| state.subscriptions.get(n)) {
                    setters.extend(s.setters());
                }
                let mut setters: Vec<Origin> =
                    setters.into_iter().filter(mirrored).collect::<Vec<_>>();
                setters.sort_by(|a, b| {
                    if a.after(b) {
                        std::cmp::Ordering::Greater
                    } else if b.after(a) {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Equal
                    }
                });
                setters.dedup_by_key(|o| o.event_id);
                for o in &setters {
                    p.add(Action::Copy, o, &what);
                }
            }
            other => p.refuse(what, format!("no repair path for app {other}")),
        }
    }
    // Copies in log order first (a mirror needs the subscription before its changes), the
    // synthesised toggles after.
    p.repairs.sort_by(|a, b| {
        let rank = |r: &Repair| matches!(r.action, Action::SetAutoRenew { .. });
        rank(a).cmp(&rank(b)).then_with(|| {
            if a.origin.after(&b.origin) {
                std::cmp::Ordering::Greater
            } else if b.origin.after(&a.origin) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
    p
}

/// One re-emitted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Its event id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// The original (or cause) it was made from.
    pub repair_of: String,
    /// The original's event id.
    pub causation_id: Uuid,
}

fn envelope_mut(ev: &mut AnyEvent) -> Option<&mut Envelope> {
    Some(match ev {
        AnyEvent::SubscriptionCreated(e) => &mut e.envelope,
        AnyEvent::SubscriptionAmended(e) => &mut e.envelope,
        AnyEvent::SubscriptionRenewed(e) => &mut e.envelope,
        AnyEvent::SubscriptionCancelled(e) => &mut e.envelope,
        AnyEvent::AutoRenewChanged(e) => &mut e.envelope,
        AnyEvent::CommunicationProfileChanged(e) => &mut e.envelope,
        AnyEvent::OrderPlaced(e) => &mut e.envelope,
        _ => return None,
    })
}

/// The repair event of `r`, made from the original event `original` (unframed).
pub fn repair_event(r: &Repair, original: &AnyEvent, run: &str) -> Result<AnyEvent> {
    let cause = original.envelope();
    let step = match &r.action {
        Action::Copy => format!("l2f-reconcile:{run}"),
        Action::SetAutoRenew { .. } => format!("l2f-reconcile:auto-renew:{run}"),
    };
    let envelope = Envelope {
        event_id: derived_id(cause.event_id, &step),
        occurred_at: Utc::now(),
        source: cause.source,
        correlation_id: cause.correlation_id,
        causation_id: Some(cause.event_id),
    };
    match &r.action {
        Action::Copy => {
            let mut ev = original.clone();
            let name = ev.name();
            *envelope_mut(&mut ev).ok_or_else(|| {
                ReconcileError::Repair(format!("{name} is not an event a repair copies"))
            })? = envelope;
            Ok(ev)
        }
        Action::SetAutoRenew {
            subscription_id,
            account_id,
            auto_renew,
        } => Ok(AnyEvent::AutoRenewChanged(AutoRenewChanged {
            envelope: Envelope {
                source: SourceSystem::L2fHub,
                ..envelope
            },
            subscription_id: subscription_id.clone(),
            account_id: account_id.clone(),
            flag_owner: SourceSystem::CustomersApp,
            auto_renew: *auto_renew,
        })),
    }
}

/// Re-emits the plan's events: originals re-read from the log, repairs produced (acks all,
/// idempotent producer) to the original's topic, the synthesised toggles to
/// `subscriptions_topic`.
pub async fn emit(
    client: &ClientConfig,
    plan: &Plan,
    subscriptions_topic: &str,
    run: &str,
    timeout: Duration,
) -> Result<Vec<Emitted>> {
    if plan.repairs.is_empty() {
        return Ok(vec![]);
    }
    let origins: Vec<Origin> = plan.repairs.iter().map(|r| r.origin.clone()).collect();
    let c = client.clone();
    let originals: BTreeMap<Uuid, AnyEvent> =
        tokio::task::spawn_blocking(move || crate::log::events_at(&c, &origins, timeout))
            .await
            .map_err(|e| ReconcileError::Repair(format!("reader task: {e}")))??;
    let codec = Codec::new();
    let mut records: Vec<OutRecord> = Vec::new();
    let mut made: Vec<(AnyEvent, &Repair)> = Vec::new();
    for r in &plan.repairs {
        let original = &originals[&r.origin.event_id];
        let ev = repair_event(r, original, run)?;
        let topic = match r.action {
            Action::Copy => r.origin.topic.as_str(),
            Action::SetAutoRenew { .. } => subscriptions_topic,
        };
        let framed = ev.frame_to(&codec, topic).map_err(|e| {
            ReconcileError::Repair(format!("{} breaks its contract: {e}", ev.name()))
        })?;
        records.push(
            out_record(framed)
                .with_header(REPAIR_HEADER, "reconcile")
                .with_header(REPAIR_OF_HEADER, r.origin.position())
                .with_header(REPAIR_RUN_HEADER, run),
        );
        made.push((ev, r));
    }
    let producer = Producer::new(client)?;
    let delivered = producer.send_all(&records, 256).await?;
    Ok(made
        .into_iter()
        .zip(records.iter().zip(delivered))
        .map(|((ev, r), (rec, d))| Emitted {
            topic: rec.topic.clone(),
            partition: d.partition,
            offset: d.offset,
            event_id: ev.envelope().event_id,
            event_type: ev.name().to_string(),
            repair_of: format!("{} {}", r.origin.position(), r.origin.event_id),
            causation_id: r.origin.event_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::Fold;
    use l2f_contracts::events::*;
    use l2f_contracts::examples;
    use serde_json::{json, Value};

    fn o(offset: i64, ev: &AnyEvent) -> Origin {
        Origin {
            topic: "subscriptions".into(),
            partition: 0,
            offset,
            event_id: ev.envelope().event_id,
            event_type: ev.name().into(),
            occurred_at: ev.envelope().occurred_at,
            source: ev.envelope().source,
        }
    }

    fn log() -> (State, Vec<(Origin, AnyEvent)>) {
        let mut c = examples::subscription_created();
        c.subscription_id = "A-S1".into();
        c.account_id = "acct".into();
        c.zuora_entity = ZuoraEntity::GitlabInc;
        c.envelope.source = SourceSystem::Zuora;
        c.envelope.event_id = Uuid::from_u128(1);
        let c = AnyEvent::SubscriptionCreated(c);
        let mut a = examples::subscription_amended();
        a.subscription_id = "A-S1".into();
        a.envelope.source = SourceSystem::Zuora;
        a.envelope.event_id = Uuid::from_u128(2);
        let a = AnyEvent::SubscriptionAmended(a);
        let log = vec![(o(0, &c), c), (o(1, &a), a)];
        let mut f = Fold::new();
        for (o, e) in &log {
            f.apply(o, e);
        }
        (f.finish(), log)
    }

    fn drift(app: &str, kind: Kind, record: &str, field: &str, state: &State) -> Drift {
        let exp = match kind {
            Kind::Subscription => &state.subscriptions[record],
            Kind::Account => &state.accounts[record],
            Kind::Order => &state.orders[record],
        };
        Drift {
            app: app.into(),
            kind,
            record: record.into(),
            drift: DriftKind::Field,
            field: field.into(),
            expected: exp.value(field).clone(),
            held: json!("other"),
            set_by: Some(exp.fields[field].by.clone()),
        }
    }

    #[test]
    fn zuoras_auto_renew_is_set_through_the_customers_apps_flag_caused_by_the_setter() {
        let (state, log) = log();
        let d = drift("zuora", Kind::Subscription, "A-S1", AUTO_RENEW, &state);
        let p = plan(&[d], &state);
        assert_eq!(p.repairs.len(), 1, "{p:?}");
        let r = &p.repairs[0];
        assert_eq!(
            r.action,
            Action::SetAutoRenew {
                subscription_id: "A-S1".into(),
                account_id: "acct".into(),
                auto_renew: state.subscriptions["A-S1"]
                    .value(AUTO_RENEW)
                    .as_bool()
                    .unwrap()
            }
        );
        let ev = repair_event(r, &log[0].1, "run-1").unwrap();
        let AnyEvent::AutoRenewChanged(a) = &ev else {
            panic!("{ev:?}")
        };
        assert_eq!(a.flag_owner, SourceSystem::CustomersApp);
        assert_eq!(a.envelope.causation_id, Some(Uuid::from_u128(1)));
        assert_eq!(
            a.envelope.correlation_id,
            log[0].1.envelope().correlation_id
        );
        assert_ne!(a.envelope.event_id, Uuid::from_u128(1));
        let again = repair_event(r, &log[0].1, "run-2").unwrap();
        assert_ne!(
            again.envelope().event_id,
            a.envelope.event_id,
            "a new run is new to the sinks"
        );
    }

    #[test]
    fn a_mirror_gets_every_setter_of_the_record_oldest_first_and_zuoras_own_fields_are_refused() {
        let (state, log) = log();
        let drifts = vec![
            drift("salesforce", Kind::Account, "acct-INC", BATCH, &state),
            drift("zuora", Kind::Subscription, "A-S1", SEATS, &state),
        ];
        let p = plan(&drifts, &state);
        let copied: Vec<i64> = p.repairs.iter().map(|r| r.origin.offset).collect();
        assert_eq!(
            copied,
            vec![0, 1],
            "the creation, then the amendment that set seats later"
        );
        assert!(p.repairs.iter().all(|r| r.action == Action::Copy));
        assert_eq!(p.unrepairable.len(), 1);
        assert!(p.unrepairable[0]
            .drift
            .starts_with("zuora subscription A-S1 seats"));
        let copy = repair_event(&p.repairs[1], &log[1].1, "run").unwrap();
        assert_eq!(
            copy.envelope().source,
            SourceSystem::Zuora,
            "the mirrors apply Zuora's"
        );
        assert_eq!(copy.envelope().causation_id, Some(Uuid::from_u128(2)));
        let AnyEvent::SubscriptionAmended(am) = copy else {
            panic!()
        };
        assert_eq!(
            Some(am.seats),
            state.subscriptions["A-S1"]
                .value(SEATS)
                .as_i64()
                .map(|s| s as i32)
        );
    }

    #[test]
    fn an_order_zuora_lacks_is_repaired_by_a_copy_of_the_order() {
        let mut order = examples::order_placed();
        order.order_type = OrderType::New;
        let ev = AnyEvent::OrderPlaced(order.clone());
        let mut f = Fold::new();
        f.apply(&o(0, &ev), &ev);
        let state = f.finish();
        let d = Drift {
            app: "zuora".into(),
            kind: Kind::Order,
            record: order.order_id.clone(),
            drift: DriftKind::Missing,
            field: "-".into(),
            expected: json!("present"),
            held: Value::Null,
            set_by: Some(
                state.orders[&order.order_id].fields[SUBSCRIPTION]
                    .by
                    .clone(),
            ),
        };
        let p = plan(&[d], &state);
        assert_eq!(p.repairs.len(), 1, "{p:?}");
        assert_eq!(p.repairs[0].action, Action::Copy);
        assert_eq!(p.repairs[0].origin.event_type, "OrderPlaced");
        let copy = repair_event(&p.repairs[0], &ev, "run").unwrap();
        assert_eq!(copy.envelope().causation_id, Some(order.envelope.event_id));
    }

    #[test]
    fn extra_records_and_other_systems_values_are_reported_not_repaired() {
        let (state, _) = log();
        let mut toggle = drift("customers", Kind::Subscription, "A-S1", AUTO_RENEW, &state);
        toggle.set_by.as_mut().unwrap().source = SourceSystem::CustomersApp;
        let extra = Drift {
            drift: DriftKind::Extra,
            set_by: None,
            record: "A-S9".into(),
            ..toggle.clone()
        };
        let p = plan(&[toggle, extra], &state);
        assert!(p.repairs.is_empty());
        assert_eq!(p.unrepairable.len(), 2);
    }
}
