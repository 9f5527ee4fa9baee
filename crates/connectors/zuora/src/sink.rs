//! The sink: the `orders` and `subscriptions` topics → Zuora, one record at a time (Zuora
//! takes one order per call).
//!
//! It acts on three events and skips every other (no call, no echo of Zuora's own events):
//! - `OrderPlaced` NEW / ADD_ON → the account `<hub account>-<ENTITY>` on the entity of
//!   rule 3 (found, or created inside the order as `newAccount`) and a new subscription
//!   (`CreateSubscription`); RENEWAL → the account's active subscription renewed
//!   (`RenewSubscription`) on the same entity, or — when rule 3 now gives another entity
//!   (rule 10) — the old one cancelled (`ENTITY_CHANGE_AT_RENEWAL`) and a new account and
//!   subscription created on the new entity;
//! - `AutoRenewChanged` whose flag owner is the customers app → Zuora's flag follows
//!   (`PUT /v1/subscriptions/{n}`), when it differs;
//! - `SubscriptionCancelled` from the customers app → one order: auto-renew off, then
//!   `CancelSubscription` at the end of the term, the reason kept;
//! - `PaymentDeclined` on a SaaS auto-renewal (rule 10: "card declined on a SaaS
//!   auto-renewal") → one order: auto-renew off, then `CancelSubscription` effective the
//!   first day of the unpaid term, reason `CARD_DECLINED_ON_AUTO_RENEWAL`. Zuora's callouts
//!   of that order (`AutoRenewChanged`, `SubscriptionCancelled`) come back through the source
//!   and reach the mirrors. A decline rule 10 does not cancel for — a self-managed
//!   subscription, or a payment that was not an auto-renewal — keeps the subscription
//!   ([`Applied::Kept`]): the handbook names no cancellation for it, and Zuora's own dunning
//!   follows the unpaid invoice.
//!
//! **Effectively once.** Every write is idempotent twice over: the `Idempotency-Key` is the
//! event id (or its `derived_id` for a second step), which Zuora honours for 24 hours, and
//! before writing the sink looks at what is there — the deterministic account number, a
//! subscription whose `L2fOrderId__c` is the order, a flag already set, a subscription already
//! cancelled, the old subscription this event already cancelled — so a redelivery days later
//! changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::decode_any;
use l2f_contracts::events::*;
use l2f_contracts::record::{derived_id, AnyEvent};
use l2f_contracts::Codec;
use l2f_rules::Rules;
use serde_json::Value;
use tracing::{debug, info, Instrument};

use crate::client::{Call, ZuoraClient};
use crate::mapping::{self, *};
use crate::verdict::judge;

/// What the sink did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A subscription was created (NEW, ADD_ON).
    Created,
    /// A subscription was renewed on its entity.
    Renewed,
    /// The old subscription was cancelled and a new one created on the new entity.
    EntityChanged,
    /// Zuora's auto-renew flag was set.
    AutoRenewSet,
    /// The subscription was cancelled.
    Cancelled,
    /// A declined payment rule 10 does not cancel for (self-managed, not an auto-renewal):
    /// the subscription is kept as it is.
    Kept,
    /// Zuora already shows the effect (a redelivery).
    AlreadyDone,
    /// Not an event this sink acts on.
    Skipped,
}

/// Counters of the sink's outcomes, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct SinkStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    renewed: AtomicU64,
    entity_changed: AtomicU64,
    auto_renew_set: AtomicU64,
    cancelled: AtomicU64,
    kept: AtomicU64,
    already_done: AtomicU64,
    skipped: AtomicU64,
    unavailable: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
}

impl SinkStats {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    /// Subscriptions created.
    pub fn created(&self) -> u64 {
        Self::get(&self.0.created)
    }
    /// Renewals on the same entity.
    pub fn renewed(&self) -> u64 {
        Self::get(&self.0.renewed)
    }
    /// Renewals that moved to another entity.
    pub fn entity_changed(&self) -> u64 {
        Self::get(&self.0.entity_changed)
    }
    /// Auto-renew flags set.
    pub fn auto_renew_set(&self) -> u64 {
        Self::get(&self.0.auto_renew_set)
    }
    /// Cancellations.
    pub fn cancelled(&self) -> u64 {
        Self::get(&self.0.cancelled)
    }
    /// Declined payments that cancelled nothing (rule 10 does not apply).
    pub fn kept(&self) -> u64 {
        Self::get(&self.0.kept)
    }
    /// Records whose effect Zuora already showed.
    pub fn already_done(&self) -> u64 {
        Self::get(&self.0.already_done)
    }
    /// Records skipped (not for this sink).
    pub fn skipped(&self) -> u64 {
        Self::get(&self.0.skipped)
    }
    /// Records handed back to wait because Zuora was unavailable.
    pub fn unavailable(&self) -> u64 {
        Self::get(&self.0.unavailable)
    }
    /// Records handed back for a bounded retry.
    pub fn transient(&self) -> u64 {
        Self::get(&self.0.transient)
    }
    /// Records handed back for the dead letters.
    pub fn permanent(&self) -> u64 {
        Self::get(&self.0.permanent)
    }
}

/// The Zuora sink as an [`l2f_bus::Handler`].
pub struct ZuoraSink {
    client: Arc<ZuoraClient>,
    codec: Arc<Codec>,
    rules: Arc<Rules>,
    profiles: Profiles,
    stats: SinkStats,
}

fn subscription_number(s: &Value) -> &str {
    s["subscriptionNumber"].as_str().unwrap_or_default()
}

fn is_active(s: &Value) -> bool {
    s["status"].as_str() == Some("Active")
}

fn has_plan(s: &Value, product_rate_plan_id: &str) -> bool {
    s["ratePlans"].as_array().is_some_and(|rps| {
        rps.iter()
            .any(|rp| rp["productRatePlanId"] == product_rate_plan_id)
    })
}

impl ZuoraSink {
    /// A sink over a client, with the hub's codec and rules and Zuora's profile ids.
    pub fn new(
        client: Arc<ZuoraClient>,
        codec: Arc<Codec>,
        rules: Arc<Rules>,
        profiles: Profiles,
    ) -> Self {
        ZuoraSink {
            client,
            codec,
            rules,
            profiles,
            stats: SinkStats::default(),
        }
    }

    /// [`ZuoraSink::new`] counting into `stats` (created before the sink, so a connector can
    /// hand them out before it starts).
    pub fn with_stats(
        client: Arc<ZuoraClient>,
        codec: Arc<Codec>,
        rules: Arc<Rules>,
        profiles: Profiles,
        stats: SinkStats,
    ) -> Self {
        ZuoraSink {
            stats,
            ..ZuoraSink::new(client, codec, rules, profiles)
        }
    }

    /// Live counters.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    fn count(&self, r: &Result<Applied, HandlerError>) {
        let c = &self.stats.0;
        let counter = match r {
            Ok(Applied::Created) => &c.created,
            Ok(Applied::Renewed) => &c.renewed,
            Ok(Applied::EntityChanged) => &c.entity_changed,
            Ok(Applied::AutoRenewSet) => &c.auto_renew_set,
            Ok(Applied::Cancelled) => &c.cancelled,
            Ok(Applied::Kept) => &c.kept,
            Ok(Applied::AlreadyDone) => &c.already_done,
            Ok(Applied::Skipped) => &c.skipped,
            Err(HandlerError::Unavailable { .. }) => &c.unavailable,
            Err(HandlerError::Transient { .. }) => &c.transient,
            Err(HandlerError::Permanent { .. }) => &c.permanent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies one record; what it did, or who is at fault.
    pub async fn apply(&self, record: &Record) -> Result<Applied, HandlerError> {
        let r = match decode_any(&self.codec, record) {
            Ok(AnyEvent::OrderPlaced(o)) => {
                let span = tracing::info_span!("zuora_order", account_id = %o.account_id, order_id = %o.order_id);
                self.order(&o).instrument(span).await
            }
            Ok(AnyEvent::AutoRenewChanged(a)) if a.flag_owner == SourceSystem::CustomersApp => {
                let span = tracing::info_span!("zuora_auto_renew", account_id = %a.account_id, subscription_id = %a.subscription_id);
                self.auto_renew(&a).instrument(span).await
            }
            Ok(AnyEvent::SubscriptionCancelled(c))
                if c.envelope.source == SourceSystem::CustomersApp =>
            {
                let span = tracing::info_span!("zuora_cancel", account_id = %c.account_id, subscription_id = %c.subscription_id);
                self.cancel(&c).instrument(span).await
            }
            Ok(AnyEvent::PaymentDeclined(p)) => {
                let span = tracing::info_span!("zuora_declined", account_id = %p.account_id, subscription_id = %p.subscription_id, invoice_id = %p.invoice_id);
                self.declined(&p).instrument(span).await
            }
            Ok(_) => Ok(Applied::Skipped),
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            debug!(key = %record.key_str(), error = %e, "Zuora write failed");
        }
        self.count(&r);
        r
    }

    /// The catalog plan of every line (rule 11 has passed): a SKU Zuora's catalog does not
    /// sell is permanent, naming it.
    async fn plans(&self, o: &OrderPlaced) -> Result<Vec<Subscribe>, HandlerError> {
        let mut out = Vec::with_capacity(o.lines.len());
        for line in &o.lines {
            let what = format!("order {}: catalog lookup of SKU {}", o.order_id, line.sku);
            let plan = self
                .client
                .catalog_plan(&line.sku)
                .await
                .map_err(|e| judge(&e, &what))?
                .ok_or_else(|| {
                    HandlerError::permanent(format!(
                        "order {}: SKU {:?} has no product in Zuora's catalog (GET /v1/catalog/products)",
                        o.order_id, line.sku
                    ))
                })?;
            out.push(Subscribe {
                plan,
                quantity: line.quantity,
            });
        }
        Ok(out)
    }

    async fn order(&self, o: &OrderPlaced) -> Result<Applied, HandlerError> {
        check_skus(o, &self.rules)?;
        let p = placement(o, &self.rules);
        let plans = self.plans(o).await?;
        match o.order_type {
            OrderType::New | OrderType::AddOn => self.create(o, &p, &plans).await,
            OrderType::Renewal => self.renew(o, &p, &plans).await,
        }
    }

    /// The subscriptions of `<account>-<entity>` (`None`: no such account).
    async fn subscriptions_on(
        &self,
        account_id: &str,
        entity: ZuoraEntity,
        ev: &str,
        what: &str,
    ) -> Result<Option<Vec<Value>>, HandlerError> {
        self.client
            .account_subscriptions(&account_number(account_id, entity), Call::traced(ev))
            .await
            .map_err(|e| judge(&e, what))
    }

    /// NEW / ADD_ON (and the second step of an entity change): find the account or create it
    /// in the order, then the subscription — unless one already carries this order's id.
    async fn create(
        &self,
        o: &OrderPlaced,
        p: &Placement,
        plans: &[Subscribe],
    ) -> Result<Applied, HandlerError> {
        let ev = o.envelope.event_id.to_string();
        let what = format!("order {}: create subscription", o.order_id);
        let number = account_number(&o.account_id, p.entity);
        let account = match self
            .subscriptions_on(&o.account_id, p.entity, &ev, &what)
            .await?
        {
            Some(subs) => {
                if subs
                    .iter()
                    .any(|s| custom_field(s, F_ORDER_ID) == Some(o.order_id.as_str()))
                {
                    return Ok(Applied::AlreadyDone);
                }
                OrderAccount::Existing(number)
            }
            None => OrderAccount::New(new_account(o, p, &self.profiles)),
        };
        let body = create_subscription(o, p, account, plans, &Trace::of(o));
        let answer = self
            .client
            .create_order(&body, Call::once(&ev, &ev))
            .await
            .map_err(|e| judge(&e, &what))?;
        info!(order_number = ?answer["orderNumber"], subscriptions = ?answer["subscriptionNumbers"], "Zuora order created");
        Ok(Applied::Created)
    }

    /// RENEWAL: the account's active subscription renewed on its entity, or (rule 10) the
    /// old one cancelled and a new one created on the entity rule 3 gives now. Step by step,
    /// each step recognisable afterwards, so a redelivery resumes where the first try stopped.
    async fn renew(
        &self,
        o: &OrderPlaced,
        p: &Placement,
        plans: &[Subscribe],
    ) -> Result<Applied, HandlerError> {
        let ev_id = o.envelope.event_id;
        let ev = ev_id.to_string();
        let what = format!("order {}: renewal", o.order_id);
        let prp = plans
            .first()
            .map(|s| s.plan.product_rate_plan_id.clone())
            .unwrap_or_default();
        let mut entities = vec![p.entity];
        entities.extend(
            ZuoraEntity::VARIANTS
                .iter()
                .copied()
                .filter(|e| *e != p.entity),
        );
        let mut found: Vec<(ZuoraEntity, Vec<Value>)> = Vec::new();
        for e in entities {
            if let Some(subs) = self.subscriptions_on(&o.account_id, e, &ev, &what).await? {
                found.push((e, subs));
            }
        }
        let on = |here: bool| {
            found
                .iter()
                .filter(move |(e, _)| (*e == p.entity) == here)
                .flat_map(|(e, subs)| subs.iter().map(move |s| (*e, s)))
        };
        // Done before: a subscription on the new entity carries this order's id.
        if on(true).any(|(_, s)| custom_field(s, F_ORDER_ID) == Some(o.order_id.as_str())) {
            return Ok(Applied::AlreadyDone);
        }
        // The first step of an entity change done before: this event cancelled the old one.
        let cancelled_by_us = found.iter().flat_map(|(_, subs)| subs).any(|s| {
            !is_active(s)
                && custom_field(s, F_CAUSATION_ID) == Some(ev.as_str())
                && custom_field(s, F_CANCELLATION_REASON)
                    == Some(CancellationReason::EntityChangeAtRenewal.symbol())
        });
        if cancelled_by_us {
            self.create(o, p, plans).await?;
            return Ok(Applied::EntityChanged);
        }
        let pick = |here: bool| {
            let mut active: Vec<(ZuoraEntity, &Value)> =
                on(here).filter(|(_, s)| is_active(s)).collect();
            active.sort_by_key(|(_, s)| !has_plan(s, &prp));
            active.first().map(|(e, s)| (*e, (*s).clone()))
        };
        if let Some((_, same)) = pick(true) {
            let body = renew_subscription(
                o,
                &account_number(&o.account_id, p.entity),
                subscription_number(&same),
                &Trace::of(o),
            );
            self.client
                .create_order(&body, Call::once(&ev, &ev))
                .await
                .map_err(|e| judge(&e, &what))?;
            info!(
                subscription = subscription_number(&same),
                "Zuora subscription renewed"
            );
            return Ok(Applied::Renewed);
        }
        let Some((old_entity, old)) = pick(false) else {
            return Err(HandlerError::transient(format!(
                "{what}: account {} has no active subscription in Zuora on any entity yet",
                o.account_id
            )));
        };
        let reason = l2f_rules::cancellation::at_renewal(old_entity, p.entity)
            .unwrap_or(CancellationReason::EntityChangeAtRenewal);
        let cancel = mapping::cancel_subscription(
            order_date(o),
            &account_number(&o.account_id, old_entity),
            subscription_number(&old),
            reason,
            ev_id,
        );
        let step = derived_id(ev_id, "zuora-cancel-at-entity-change").to_string();
        self.client
            .create_order(&cancel, Call::once(&step, &ev))
            .await
            .map_err(|e| {
                judge(
                    &e,
                    &format!(
                        "{what}: cancel {} on {}",
                        subscription_number(&old),
                        old_entity.symbol()
                    ),
                )
            })?;
        info!(
            old = subscription_number(&old),
            from = old_entity.symbol(),
            to = p.entity.symbol(),
            "entity change at renewal: old subscription cancelled"
        );
        self.create(o, p, plans).await?;
        Ok(Applied::EntityChanged)
    }

    /// The Zuora subscription an event names: by number, or — for an event about a
    /// subscription the customers app knows by its own id — by `L2fOrderId__c` among the
    /// account's subscriptions on every entity. Not there yet is transient.
    async fn resolve(
        &self,
        id: &str,
        account_id: &str,
        ev: &str,
        what: &str,
    ) -> Result<Value, HandlerError> {
        if let Some(s) = self
            .client
            .subscription(id, Call::traced(ev))
            .await
            .map_err(|e| judge(&e, what))?
        {
            return Ok(s);
        }
        let mut candidates = Vec::new();
        for e in ZuoraEntity::VARIANTS {
            if let Some(subs) = self.subscriptions_on(account_id, *e, ev, what).await? {
                candidates.extend(
                    subs.into_iter()
                        .filter(|s| custom_field(s, F_ORDER_ID) == Some(id)),
                );
            }
        }
        candidates.sort_by_key(|s| !is_active(s));
        candidates.into_iter().next().ok_or_else(|| {
            HandlerError::transient(format!(
                "{what}: subscription {id} of account {account_id} is not in Zuora yet"
            ))
        })
    }

    async fn auto_renew(&self, a: &AutoRenewChanged) -> Result<Applied, HandlerError> {
        let ev = a.envelope.event_id.to_string();
        let what = format!("auto-renew of subscription {}", a.subscription_id);
        let sub = self
            .resolve(&a.subscription_id, &a.account_id, &ev, &what)
            .await?;
        if sub["autoRenew"].as_bool() == Some(a.auto_renew) {
            return Ok(Applied::AlreadyDone);
        }
        let number = subscription_number(&sub).to_string();
        self.client
            .update_subscription(
                &number,
                &auto_renew_update(a.auto_renew, a.envelope.event_id),
                Call::traced(&ev),
            )
            .await
            .map_err(|e| judge(&e, &what))?;
        info!(subscription = %number, auto_renew = a.auto_renew, "Zuora auto-renew set");
        Ok(Applied::AutoRenewSet)
    }

    async fn cancel(&self, c: &SubscriptionCancelled) -> Result<Applied, HandlerError> {
        let ev = c.envelope.event_id.to_string();
        let what = format!("cancellation of subscription {}", c.subscription_id);
        let sub = self
            .resolve(&c.subscription_id, &c.account_id, &ev, &what)
            .await?;
        if !is_active(&sub) {
            return Ok(Applied::AlreadyDone);
        }
        let number = subscription_number(&sub).to_string();
        let account = sub["accountNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let body = mapping::cancel_subscription(
            c.envelope.occurred_at.date_naive(),
            &account,
            &number,
            c.reason,
            c.envelope.event_id,
        );
        self.client
            .create_order(&body, Call::once(&ev, &ev))
            .await
            .map_err(|e| judge(&e, &what))?;
        info!(subscription = %number, reason = c.reason.symbol(), "Zuora subscription cancelled");
        Ok(Applied::Cancelled)
    }

    /// The deployment of a Zuora subscription: `L2fDeployment__c`, else its plan's SKU.
    async fn deployment(&self, sub: &Value, what: &str) -> Result<Deployment, HandlerError> {
        if let Some(d) = mapping::deployment_field(sub) {
            return Ok(d);
        }
        let prp = sub["ratePlans"][0]["productRatePlanId"]
            .as_str()
            .unwrap_or_default();
        let sku = self
            .client
            .catalog_rate_plan(prp)
            .await
            .map_err(|e| judge(&e, what))?
            .map(|p| p.sku)
            .unwrap_or_default();
        Ok(if sku.contains("self-managed") {
            Deployment::SelfManaged
        } else {
            Deployment::Saas
        })
    }

    /// Rule 10 for a declined payment: a SaaS auto-renewal is cancelled (auto-renew off, then
    /// the cancellation from the first day of the unpaid term), anything else kept.
    async fn declined(&self, p: &PaymentDeclined) -> Result<Applied, HandlerError> {
        let ev = p.envelope.event_id.to_string();
        let what = format!(
            "declined payment of invoice {} on subscription {}",
            p.invoice_id, p.subscription_id
        );
        let sub = self
            .resolve(&p.subscription_id, &p.account_id, &ev, &what)
            .await?;
        let deployment = self.deployment(&sub, &what).await?;
        if let Err(why) = self.rules.cancellation.outcome(
            CancellationReason::CardDeclinedOnAutoRenewal,
            deployment,
            p.on_auto_renewal,
        ) {
            info!(deployment = deployment.symbol(), on_auto_renewal = p.on_auto_renewal, %why, "declined payment: subscription kept");
            return Ok(Applied::Kept);
        }
        if !is_active(&sub) {
            return Ok(Applied::AlreadyDone);
        }
        let number = subscription_number(&sub).to_string();
        let account = sub["accountNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let day = p.envelope.occurred_at.date_naive();
        let effective = SubscriptionView::read(&sub)
            .map(|v| v.term_start.min(day))
            .unwrap_or(day);
        let body = mapping::cancel_for_declined_card(
            day,
            &account,
            &number,
            effective,
            p.envelope.event_id,
        );
        self.client
            .create_order(&body, Call::once(&ev, &ev))
            .await
            .map_err(|e| judge(&e, &what))?;
        info!(subscription = %number, effective = %effective, "card declined on a SaaS auto-renewal: Zuora subscription cancelled, auto-renew off");
        Ok(Applied::Cancelled)
    }
}

impl Handler for ZuoraSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.apply(record).await.map(|_| ())
    }

    async fn probe(&self) -> bool {
        self.client.ping().await.is_ok()
    }
}
