//! Golden examples: one valid record of every event, with every optional field filled, used
//! by the contract tests, the cross-implementation checks and the benchmarks.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::codec::Codec;
use crate::error::Result;
use crate::events::*;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn usd(cents: i64) -> Money {
    Money {
        amount: Decimal::new(cents, 2),
        currency: "USD".into(),
    }
}

fn country(code: &str) -> CountryCode {
    CountryCode::from_code(code).unwrap_or_else(|| panic!("{code} is an assigned ISO code"))
}

/// An envelope for examples, with a cause.
pub fn envelope(source: SourceSystem, n: u128) -> Envelope {
    Envelope {
        event_id: Uuid::from_u128(0x5f0e_8a9c_0000_4000_8000_0000_0000_0000 + n),
        occurred_at: at(1_764_000_000_000 + n as i64 * 1000),
        source,
        correlation_id: Uuid::from_u128(0x7c4a_1d2e_0000_4000_8000_0000_0000_0001),
        causation_id: Some(Uuid::from_u128(
            0x5f0e_8a9c_0000_4000_8000_0000_0000_0000 + n - 1,
        )),
    }
}

/// A complete web-form lead from the UK.
pub fn lead_captured() -> LeadCaptured {
    LeadCaptured {
        envelope: envelope(SourceSystem::CustomersApp, 1),
        lead_id: "lead-0001".into(),
        email: "ada.lovelace@example.co.uk".into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        company: Some("Analytical Engines Ltd".into()),
        country: Some(country("GB")),
        lead_source: LeadSource::WebForm,
        marketing_opt_in: true,
        utm_campaign: Some("devops-platform-2026".into()),
    }
}

/// A reseller order for self-managed seats billed to Germany.
pub fn order_placed() -> OrderPlaced {
    OrderPlaced {
        envelope: envelope(SourceSystem::Salesforce, 2),
        order_id: "ord-2026-0042".into(),
        account_id: "acct-1001".into(),
        sales_channel: SalesChannel::Reseller,
        deployment: Deployment::SelfManaged,
        order_type: OrderType::New,
        reseller: Some(Reseller {
            name: "Partner GmbH".into(),
            authorized: true,
        }),
        bill_to_country: country("DE"),
        sold_to_email: "buyer@example.de".into(),
        lines: vec![
            OrderLine {
                sku: "premium-self-managed-1y".into(),
                quantity: 25,
                unit_price: usd(34800),
            },
            OrderLine {
                sku: "ci-minutes-1000".into(),
                quantity: 2,
                unit_price: usd(1000),
            },
        ],
        total: usd(872_000),
        term_start: day(2026, 12, 1),
        term_end: day(2027, 11, 30),
        auto_renew: false,
    }
}

/// The subscription Zuora created for the order.
pub fn subscription_created() -> SubscriptionCreated {
    SubscriptionCreated {
        envelope: envelope(SourceSystem::Zuora, 3),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        order_id: "ord-2026-0042".into(),
        zuora_entity: ZuoraEntity::GitlabGmbh,
        billing_batch: BillingBatch::Batch4,
        deployment: Deployment::SelfManaged,
        plan_sku: "premium-self-managed-1y".into(),
        seats: 25,
        term_start: day(2026, 12, 1),
        term_end: day(2027, 11, 30),
        auto_renew: false,
        bill_to_country: country("DE"),
        amount: usd(870_000),
        communication_profile: CommunicationProfile::Default,
        bill_to_email: Some("billing@example.de".into()),
    }
}

/// A seat increase.
pub fn subscription_amended() -> SubscriptionAmended {
    SubscriptionAmended {
        envelope: envelope(SourceSystem::Zuora, 4),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        previous_seats: 25,
        seats: 30,
        effective_date: day(2027, 3, 1),
        amount: usd(130_500),
    }
}

/// An automatic renewal.
pub fn subscription_renewed() -> SubscriptionRenewed {
    SubscriptionRenewed {
        envelope: envelope(SourceSystem::Zuora, 5),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        seats: 30,
        term_start: day(2027, 12, 1),
        term_end: day(2028, 11, 30),
        amount: usd(1_044_000),
        auto_renewed: true,
    }
}

/// A cancellation for a wrong seat count, with a refund.
pub fn subscription_cancelled() -> SubscriptionCancelled {
    SubscriptionCancelled {
        envelope: envelope(SourceSystem::Zuora, 6),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        reason: CancellationReason::WrongSeatCount,
        effective_date: day(2027, 12, 2),
        refund: Some(usd(34800)),
    }
}

/// The customer turned auto-renew on in the customers app.
pub fn auto_renew_changed() -> AutoRenewChanged {
    AutoRenewChanged {
        envelope: envelope(SourceSystem::CustomersApp, 7),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        flag_owner: SourceSystem::CustomersApp,
        auto_renew: true,
    }
}

/// A card declined on a SaaS auto-renewal.
pub fn payment_declined() -> PaymentDeclined {
    PaymentDeclined {
        envelope: envelope(SourceSystem::Zuora, 8),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        invoice_id: "INV-000777".into(),
        amount: usd(1_044_000),
        decline_code: "insufficient_funds".into(),
        on_auto_renewal: true,
    }
}

/// Terms accepted before a self-managed license.
pub fn eula_accepted() -> EulaAccepted {
    EulaAccepted {
        envelope: envelope(SourceSystem::CustomersApp, 9),
        account_id: "acct-1001".into(),
        subscription_id: "A-S00012345".into(),
        eula_version: "2026-07".into(),
        accepted_by_email: "admin@example.de".into(),
        accepted_at: at(1_764_000_123_456),
    }
}

/// The license issued after acceptance.
pub fn license_issued() -> LicenseIssued {
    LicenseIssued {
        envelope: envelope(SourceSystem::LicenseService, 10),
        license_id: "lic-9001".into(),
        account_id: "acct-1001".into(),
        subscription_id: "A-S00012345".into(),
        plan_sku: "premium-self-managed-1y".into(),
        seats: 25,
        starts_on: day(2026, 12, 1),
        expires_on: day(2027, 11, 30),
        licensee_email: "admin@example.de".into(),
        reseller_notified: true,
    }
}

/// A license held for the Silent profile.
pub fn license_held() -> LicenseHeld {
    LicenseHeld {
        envelope: envelope(SourceSystem::LicenseService, 11),
        account_id: "acct-1001".into(),
        subscription_id: "A-S00012345".into(),
        reason: LicenseHoldReason::SilentProfile,
        communication_profile: CommunicationProfile::Silent,
    }
}

/// An account put on the Silent profile.
pub fn communication_profile_changed() -> CommunicationProfileChanged {
    CommunicationProfileChanged {
        envelope: envelope(SourceSystem::Zuora, 15),
        account_id: "acct-1001".into(),
        communication_profile: CommunicationProfile::Silent,
    }
}

/// A license email muted by the Silent profile.
pub fn email_suppressed() -> EmailSuppressed {
    EmailSuppressed {
        envelope: envelope(SourceSystem::Notifications, 16),
        account_id: "acct-1001".into(),
        subscription_id: Some("A-S00012345".into()),
        template: "license".into(),
        recipient_email: "admin@example.de".into(),
        communication_profile: CommunicationProfile::Silent,
    }
}

/// The 45-day renewal notice.
pub fn renewal_notice_due() -> RenewalNoticeDue {
    RenewalNoticeDue {
        envelope: envelope(SourceSystem::Notifications, 12),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        days_before_term_end: 45,
        term_end: day(2027, 11, 30),
        sender: SourceSystem::Zuora,
        recipient_email: "billing@example.de".into(),
    }
}

/// The license email.
pub fn email_sent() -> EmailSent {
    EmailSent {
        envelope: envelope(SourceSystem::Notifications, 13),
        message_id: "msg-0001".into(),
        recipient_email: "admin@example.de".into(),
        template: "license".into(),
        subject: "Your GitLab license".into(),
        subscription_id: Some("A-S00012345".into()),
    }
}

/// A usage report with a true-up.
pub fn usage_reported() -> UsageReported {
    UsageReported {
        envelope: envelope(SourceSystem::CustomersApp, 14),
        subscription_id: "A-S00012345".into(),
        account_id: "acct-1001".into(),
        measured_on: day(2027, 6, 1),
        active_users: 40,
        billable_users: 33,
        seats: 30,
    }
}

/// The golden example of an event, as serde JSON.
pub fn golden_json(event: &str) -> Result<serde_json::Value> {
    crate::with_event_type!(event, T, {
        let v: T = golden::<T>();
        serde_json::to_value(&v).map_err(|e| crate::error::Error::Encode {
            event: event.to_owned(),
            message: e.to_string(),
        })
    })
}

/// Types with a golden example.
pub trait Golden: Event {
    /// The golden example.
    fn golden() -> Self;
}

macro_rules! golden {
    ($($t:ident => $f:ident),+ $(,)?) => {$(
        impl Golden for $t {
            fn golden() -> Self {
                $f()
            }
        }
    )+};
}

golden!(
    LeadCaptured => lead_captured,
    OrderPlaced => order_placed,
    SubscriptionCreated => subscription_created,
    SubscriptionAmended => subscription_amended,
    SubscriptionRenewed => subscription_renewed,
    SubscriptionCancelled => subscription_cancelled,
    AutoRenewChanged => auto_renew_changed,
    PaymentDeclined => payment_declined,
    EulaAccepted => eula_accepted,
    LicenseIssued => license_issued,
    LicenseHeld => license_held,
    CommunicationProfileChanged => communication_profile_changed,
    RenewalNoticeDue => renewal_notice_due,
    EmailSent => email_sent,
    EmailSuppressed => email_suppressed,
    UsageReported => usage_reported,
);

/// The golden example of an event type.
pub fn golden<T: Golden>() -> T {
    T::golden()
}

/// Encodes the golden example of every event: `(event name, framed bytes)`.
pub fn encode_all(codec: &Codec) -> Result<Vec<(&'static str, Vec<u8>)>> {
    EVENT_NAMES
        .iter()
        .map(|name| {
            crate::with_event_type!(*name, T, {
                codec.encode(&golden::<T>()).map(|b| (*name, b))
            })
        })
        .collect()
}

/// Decodes `bytes` as event `name` and says whether it equals that event's golden example.
pub fn decodes_to_golden(codec: &Codec, name: &str, bytes: &[u8]) -> Result<bool> {
    crate::with_event_type!(name, T, {
        let decoded: T = codec.decode(bytes)?;
        Ok(decoded == golden::<T>())
    })
}

/// The same event with every optional (nullable) field set to null, when that is valid JSON
/// for the type: covers the `null` branches the golden examples leave out.
pub fn without_optionals<T: Event>(event: &T) -> Option<T> {
    let mut json = serde_json::to_value(event).ok()?;
    let schema = crate::catalog::Catalog::embedded().get(T::NAME)?;
    fn null_out(schema: &crate::Schema, record: &str, json: &mut serde_json::Value) {
        let Some(crate::schema::Named::Record(r)) = schema.lookup(record) else {
            return;
        };
        for f in &r.fields {
            if f.default == Some(serde_json::Value::Null) {
                json[&f.name] = serde_json::Value::Null;
            } else if let crate::schema::Node::Named(n) = &f.node {
                if let Some(child) = json.get_mut(&f.name) {
                    null_out(schema, n, child);
                }
            }
        }
    }
    if let crate::schema::Node::Named(root) = &schema.root {
        null_out(schema, root, &mut json);
    }
    serde_json::from_value(json).ok()
}
