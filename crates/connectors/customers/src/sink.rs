//! The mirror: what Zuora says about a subscription, written back into the customers app
//! (its Zuora number, term dates, seats, auto-renew, status), and the accounts of
//! sales-assisted deals created there so their customers can manage them.
//!
//! A license the license service issued is shown on its subscription (`LicenseIssued`, rule 8;
//! a license held under the Silent profile is never issued, so never shown, rule 6).
//!
//! Only Zuora's own events are mirrored (envelope source `ZUORA`): the customers app's events
//! about its own subscriptions came from it and are not written back. Every write is an
//! idempotent upsert on the app's hub endpoints, so a redelivered record changes nothing.

use std::sync::Arc;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::decode_any;
use l2f_contracts::events::{SourceSystem, SubscriptionCreated};
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use serde_json::json;
use tracing::{debug, instrument};

use crate::client::CustomersClient;
use crate::mapping::{license_shown, mirror_changed, mirror_created, MirrorChange};
use crate::verdict::verdict;

/// The customers-app mirror as an [`l2f_bus::Handler`].
pub struct MirrorSink {
    client: Arc<CustomersClient>,
    codec: Arc<Codec>,
}

impl MirrorSink {
    /// A mirror writing through `client`.
    pub fn new(client: Arc<CustomersClient>, codec: Arc<Codec>) -> Self {
        MirrorSink { client, codec }
    }

    async fn created(&self, s: &SubscriptionCreated) -> Result<(), HandlerError> {
        self.client
            .mirror_subscription(&s.subscription_id, &mirror_created(s))
            .await
            .map(|_| ())
            .map_err(|e| verdict(&e))
    }

    async fn changed(&self, number: &str, change: MirrorChange) -> Result<(), HandlerError> {
        let current = self
            .client
            .subscription(number)
            .await
            .map_err(|e| verdict(&e))?
            .ok_or_else(|| {
                HandlerError::transient(format!(
                    "subscription {number} is not mirrored in the customers app yet"
                ))
            })?;
        self.client
            .mirror_subscription(number, &mirror_changed(&current, &change))
            .await
            .map(|_| ())
            .map_err(|e| verdict(&e))
    }

    /// Applies one event.
    #[instrument(skip(self, event), fields(event_type = event.name(), key = event.key()))]
    pub async fn apply(&self, event: &AnyEvent) -> Result<(), HandlerError> {
        let from = event.envelope().source;
        match event {
            AnyEvent::OrderPlaced(o) if from == SourceSystem::Salesforce => {
                let body = json!({
                    "email": o.sold_to_email,
                    "name": o.sold_to_email,
                    "country": o.bill_to_country.as_str(),
                });
                self.client
                    .upsert_account(&o.account_id, &body)
                    .await
                    .map(|_| ())
                    .map_err(|e| verdict(&e))
            }
            AnyEvent::LicenseIssued(l) if from == SourceSystem::LicenseService => self
                .client
                .show_license(&l.subscription_id, &license_shown(l))
                .await
                .map(|_| ())
                .map_err(|e| verdict(&e)),
            _ if from != SourceSystem::Zuora => Ok(()),
            AnyEvent::SubscriptionCreated(s) => self.created(s).await,
            AnyEvent::AutoRenewChanged(a) if a.flag_owner == SourceSystem::Zuora => {
                self.changed(&a.subscription_id, MirrorChange::AutoRenew(a.auto_renew))
                    .await
            }
            AnyEvent::SubscriptionCancelled(c) => {
                self.changed(&c.subscription_id, MirrorChange::Cancelled(c.reason))
                    .await
            }
            AnyEvent::SubscriptionRenewed(r) => {
                let change = MirrorChange::Renewed {
                    start: r.term_start,
                    end: r.term_end,
                    seats: r.seats,
                };
                self.changed(&r.subscription_id, change).await
            }
            AnyEvent::SubscriptionAmended(a) => {
                self.changed(&a.subscription_id, MirrorChange::Seats(a.seats))
                    .await
            }
            other => {
                debug!(event_type = other.name(), "not mirrored");
                Ok(())
            }
        }
    }
}

impl Handler for MirrorSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let event = decode_any(&self.codec, record)?;
        self.apply(&event).await
    }

    async fn probe(&self) -> bool {
        self.client.healthcheck().await.is_ok()
    }
}
