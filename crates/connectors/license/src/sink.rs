//! The sink: what the hub learns about self-managed subscriptions, applied to the license
//! service.
//!
//! - `SubscriptionCreated` (Zuora's, self-managed) registers the subscription, its terms
//!   accepted unless rule 8 makes it wait for the EULA, its profile as rule 6 says. A
//!   subscription the service already has is left alone, so a redelivered creation never
//!   undoes a later acceptance or profile change.
//! - `EulaAccepted` marks the terms accepted: the service issues the license unless it is held.
//!   One that names the subscription by the customers app's own id (accepted before Zuora's
//!   number was mirrored there) is matched to it by its order id.
//! - `CommunicationProfileChanged` (keyed by account) sets the profile of every license of the
//!   account: Silent holds them, lifting it releases them.
//!
//! **Guarantee: effectively once**: at-least-once delivery onto the service's idempotent
//! calls (a license is issued once, its key never changes).

use std::sync::Arc;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::decode_any;
use l2f_connector_kit::ClientError;
use l2f_contracts::events::BillingBatch;
use l2f_contracts::events::{CommunicationProfile, SourceSystem, SubscriptionCreated};
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use l2f_rules::Rules;
use tracing::{debug, instrument};

use crate::client::LicenseClient;
use crate::mapping::{licensed, needs_terms, registered_as, registration, service_profile};
use crate::verdict::verdict;

/// The license service sink as an [`l2f_bus::Handler`].
pub struct LicenseSink {
    client: Arc<LicenseClient>,
    codec: Arc<Codec>,
    rules: Arc<Rules>,
    terms_required_batches: Vec<BillingBatch>,
}

impl LicenseSink {
    /// A sink writing through `client`, deciding rules 6 and 8 with `rules` and the batches
    /// whose purchases need their terms accepted first.
    pub fn new(
        client: Arc<LicenseClient>,
        codec: Arc<Codec>,
        rules: Arc<Rules>,
        terms_required_batches: Vec<BillingBatch>,
    ) -> Self {
        LicenseSink {
            client,
            codec,
            rules,
            terms_required_batches,
        }
    }

    fn holds(&self, p: CommunicationProfile) -> bool {
        self.rules.communication.effects(p).hold_license
    }

    async fn created(&self, s: &SubscriptionCreated) -> Result<(), HandlerError> {
        if !licensed(s) {
            return Ok(());
        }
        let known = self
            .client
            .license(&s.subscription_id)
            .await
            .map_err(|e| verdict(&e))?;
        if known.is_some() {
            debug!(subscription = %s.subscription_id, "already registered");
            return Ok(());
        }
        let body = registration(
            s,
            needs_terms(s.billing_batch, &self.terms_required_batches),
            self.holds(s.communication_profile),
        );
        self.client
            .register(&s.subscription_id, &body)
            .await
            .map(|_| ())
            .map_err(|e| verdict(&e))
    }

    async fn accepted(&self, account_id: &str, subscription: &str) -> Result<(), HandlerError> {
        match self.client.terms_accepted(subscription).await {
            Ok(_) => return Ok(()),
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => return Err(verdict(&e)),
        }
        // Not under that id: named by its order (not mirrored yet when accepted), or not
        // registered yet (its creation comes on another topic): retried.
        let licenses = self
            .client
            .licenses_of(account_id)
            .await
            .map_err(|e| verdict(&e))?;
        let Some(id) = registered_as(&licenses, subscription) else {
            return Err(HandlerError::transient(format!(
                "the license service has no subscription {subscription} of account {account_id} yet"
            )));
        };
        self.client
            .terms_accepted(id)
            .await
            .map(|_| ())
            .map_err(|e| verdict(&e))
    }

    async fn profile(&self, account_id: &str, p: CommunicationProfile) -> Result<(), HandlerError> {
        let want = service_profile(self.holds(p));
        let licenses = self
            .client
            .licenses_of(account_id)
            .await
            .map_err(|e| verdict(&e))?;
        for l in licenses {
            if l["communication_profile"].as_str() == Some(want) {
                continue;
            }
            let Some(id) = l["subscription_id"].as_str() else {
                continue;
            };
            self.client
                .set_profile(id, want)
                .await
                .map_err(|e| verdict(&e))?;
        }
        Ok(())
    }

    /// Applies one event.
    #[instrument(skip(self, event), fields(event_type = event.name(), key = event.key()))]
    pub async fn apply(&self, event: &AnyEvent) -> Result<(), HandlerError> {
        match event {
            AnyEvent::SubscriptionCreated(s) if s.envelope.source == SourceSystem::Zuora => {
                self.created(s).await
            }
            AnyEvent::EulaAccepted(a) => self.accepted(&a.account_id, &a.subscription_id).await,
            AnyEvent::CommunicationProfileChanged(c) => {
                self.profile(&c.account_id, c.communication_profile).await
            }
            other => {
                debug!(event_type = other.name(), "not for the license service");
                Ok(())
            }
        }
    }
}

impl Handler for LicenseSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let event = decode_any(&self.codec, record)?;
        self.apply(&event).await
    }

    async fn probe(&self) -> bool {
        self.client.healthcheck().await.is_ok()
    }
}
