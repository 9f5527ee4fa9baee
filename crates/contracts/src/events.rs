//! The Rust type of every event, field for field the same as its `.avsc` in `schemas/`.
//!
//! The test `types_match_schemas` fails when a type and its schema drift apart.

use chrono::{DateTime, NaiveDate, Utc};
/// The decimal type of [`Money`] amounts, re-exported so producers need no extra dependency.
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::country::CountryCode;

/// `date` logical type: days since 1970-01-01 as an Avro `int`.
pub mod avro_date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
        Some(d) => d,
        None => panic!("1970-01-01 is a date"),
    };

    /// Days since the epoch.
    pub fn to_days(d: &NaiveDate) -> i32 {
        d.signed_duration_since(EPOCH).num_days() as i32
    }

    /// The date `days` after the epoch.
    pub fn from_days(days: i32) -> Option<NaiveDate> {
        EPOCH.checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)
    }

    /// Serde: date → int days.
    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(to_days(d))
    }

    /// Serde: int days → date.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let days = i32::deserialize(d)?;
        from_days(days)
            .ok_or_else(|| serde::de::Error::custom(format!("date out of range: {days}")))
    }
}

/// `timestamp-millis` logical type: milliseconds since the epoch, UTC, as an Avro `long`.
pub mod avro_millis {
    pub use chrono::serde::ts_milliseconds::{deserialize, serialize};
}

macro_rules! avro_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $symbol:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $symbol)] $variant),+
        }

        impl $name {
            /// Every variant, in schema symbol order.
            pub const VARIANTS: &'static [$name] = &[$($name::$variant),+];

            /// Every Avro symbol, in schema order.
            pub const SYMBOLS: &'static [&'static str] = &[$($symbol),+];

            /// The Avro symbol.
            pub fn symbol(self) -> &'static str {
                match self { $($name::$variant => $symbol),+ }
            }
        }
    };
}

avro_enum!(
    /// The system that produced an event.
    SourceSystem {
        /// Salesforce CRM.
        Salesforce = "SALESFORCE",
        /// Zuora billing.
        Zuora = "ZUORA",
        /// Marketo marketing automation.
        Marketo = "MARKETO",
        /// The customers app (customer portal).
        CustomersApp = "CUSTOMERS_APP",
        /// The license service.
        LicenseService = "LICENSE_SERVICE",
        /// The notification scheduler.
        Notifications = "NOTIFICATIONS",
        /// The hub itself.
        L2fHub = "L2F_HUB",
    }
);

avro_enum!(
    /// How an order was sold.
    SalesChannel {
        /// Web store (web direct).
        WebStore = "WEB_STORE",
        /// Sales-assisted deal.
        SalesAssisted = "SALES_ASSISTED",
        /// Through a reseller.
        Reseller = "RESELLER",
        /// AWS Marketplace.
        AwsMarketplace = "AWS_MARKETPLACE",
        /// GOV.UK Digital Marketplace.
        GovukDigitalMarketplace = "GOVUK_DIGITAL_MARKETPLACE",
    }
);

avro_enum!(
    /// Where the product runs.
    Deployment {
        /// GitLab.com.
        Saas = "SAAS",
        /// Self-managed instance.
        SelfManaged = "SELF_MANAGED",
    }
);

avro_enum!(
    /// The Zuora billing entity (handbook rule 3).
    ZuoraEntity {
        /// GitLab Inc. (US).
        GitlabInc = "GITLAB_INC",
        /// GitLab BV (NL).
        GitlabBv = "GITLAB_BV",
        /// GitLab GmbH (DE).
        GitlabGmbh = "GITLAB_GMBH",
        /// GitLab Ltd (GB).
        GitlabLtd = "GITLAB_LTD",
        /// GitLab Pty Ltd (AU).
        GitlabPtyLtd = "GITLAB_PTY_LTD",
    }
);

avro_enum!(
    /// Zuora invoice batch (handbook rule 4).
    BillingBatch {
        /// Web direct.
        Batch1 = "BATCH1",
        /// Sales-assisted.
        Batch2 = "BATCH2",
        /// Auto-renewal invoices.
        Batch3 = "BATCH3",
        /// Reseller.
        Batch4 = "BATCH4",
        /// EDU/OSS.
        Batch5 = "BATCH5",
    }
);

avro_enum!(
    /// Zuora communication profile (handbook rule 6).
    CommunicationProfile {
        /// Notifications on.
        Default = "DEFAULT",
        /// Notifications muted, license held.
        Silent = "SILENT",
    }
);

avro_enum!(
    /// Why a subscription was cancelled (handbook rule 10).
    CancellationReason {
        /// The customer asked.
        CustomerRequest = "CUSTOMER_REQUEST",
        /// Wrong seat count: refund, no downgrade.
        WrongSeatCount = "WRONG_SEAT_COUNT",
        /// Entity change at renewal: cancel and re-create.
        EntityChangeAtRenewal = "ENTITY_CHANGE_AT_RENEWAL",
        /// Card declined on a SaaS auto-renewal.
        CardDeclinedOnAutoRenewal = "CARD_DECLINED_ON_AUTO_RENEWAL",
    }
);

avro_enum!(
    /// Where a lead came from.
    LeadSource {
        /// Account sign-up.
        SignUp = "SIGN_UP",
        /// Trial.
        Trial = "TRIAL",
        /// Contact-sales form.
        ContactSales = "CONTACT_SALES",
        /// Abandoned cart.
        AbandonedCart = "ABANDONED_CART",
        /// Other web form.
        WebForm = "WEB_FORM",
    }
);

avro_enum!(
    /// What an order buys.
    OrderType {
        /// First purchase.
        New = "NEW",
        /// Add-on, e.g. CI minutes or seats.
        AddOn = "ADD_ON",
        /// Renewal.
        Renewal = "RENEWAL",
    }
);

avro_enum!(
    /// Why a license is held back.
    LicenseHoldReason {
        /// The account has the Silent communication profile.
        SilentProfile = "SILENT_PROFILE",
        /// The terms are not yet accepted.
        TermsNotAccepted = "TERMS_NOT_ACCEPTED",
    }
);

/// Money: a non-negative decimal amount (scale 2) in an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// The amount.
    pub amount: Decimal,
    /// ISO 4217 alphabetic code.
    pub currency: String,
}

/// The partner that resold an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reseller {
    /// Legal name.
    pub name: String,
    /// Authorized resellers get a different Zuora entity.
    pub authorized: bool,
}

/// One SKU bought in an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Product SKU.
    pub sku: String,
    /// Units; greater than zero.
    pub quantity: i32,
    /// Price of one unit.
    pub unit_price: Money,
}

/// Metadata every event carries, so that any record can be traced and de-duplicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id; the idempotency key.
    pub event_id: Uuid,
    /// When the fact happened.
    #[serde(with = "avro_millis")]
    pub occurred_at: DateTime<Utc>,
    /// Producing system.
    pub source: SourceSystem,
    /// Business flow id.
    pub correlation_id: Uuid,
    /// The event that caused this one; `None` only for the first event of a flow.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
}

/// Implemented by every event type: ties the Rust type to its schema by name.
pub trait Event:
    crate::fast::AvroEncode
    + crate::fast::AvroDecode
    + Serialize
    + serde::de::DeserializeOwned
    + crate::validate::Validate
    + Clone
    + PartialEq
    + std::fmt::Debug
{
    /// The record's simple name, which is also the `.avsc` file's stem.
    const NAME: &'static str;
    /// The envelope.
    fn envelope(&self) -> &Envelope;
}

macro_rules! event {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* pub $field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Event metadata.
            pub envelope: Envelope,
            $($(#[$fattr])* pub $field: $ty),+
        }

        impl Event for $name {
            const NAME: &'static str = stringify!($name);
            fn envelope(&self) -> &Envelope {
                &self.envelope
            }
        }
    };
}

event!(
    /// A person showed interest: sign-up, trial, contact sales, abandoned cart, web form.
    LeadCaptured {
        /// Customers app lead id; the key.
        pub lead_id: String,
        /// Email address.
        pub email: String,
        /// Given name (needed before Marketo).
        #[serde(default)]
        pub first_name: Option<String>,
        /// Family name (needed before Marketo).
        #[serde(default)]
        pub last_name: Option<String>,
        /// Company (needed before Marketo).
        #[serde(default)]
        pub company: Option<String>,
        /// Country (needed before Marketo).
        #[serde(default)]
        pub country: Option<CountryCode>,
        /// Lead source.
        pub lead_source: LeadSource,
        /// Marketing consent.
        pub marketing_opt_in: bool,
        /// Campaign that captured the lead (added in schema v2).
        #[serde(default)]
        pub utm_campaign: Option<String>,
    }
);

event!(
    /// A customer bought something.
    OrderPlaced {
        /// Order id.
        pub order_id: String,
        /// Account id; the key.
        pub account_id: String,
        /// Sales channel.
        pub sales_channel: SalesChannel,
        /// SaaS or self-managed.
        pub deployment: Deployment,
        /// New, add-on, renewal.
        pub order_type: OrderType,
        /// Present exactly for reseller orders.
        #[serde(default)]
        pub reseller: Option<Reseller>,
        /// Billing country.
        pub bill_to_country: CountryCode,
        /// Buyer's email.
        pub sold_to_email: String,
        /// SKUs bought.
        pub lines: Vec<OrderLine>,
        /// Total.
        pub total: Money,
        /// Term start.
        #[serde(with = "avro_date")]
        pub term_start: NaiveDate,
        /// Term end.
        #[serde(with = "avro_date")]
        pub term_end: NaiveDate,
        /// Auto-renew as ordered.
        pub auto_renew: bool,
    }
);

event!(
    /// Zuora created a subscription.
    SubscriptionCreated {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Order fulfilled.
        pub order_id: String,
        /// Invoicing entity.
        pub zuora_entity: ZuoraEntity,
        /// Invoice batch.
        pub billing_batch: BillingBatch,
        /// SaaS or self-managed.
        pub deployment: Deployment,
        /// Plan SKU.
        pub plan_sku: String,
        /// Seats.
        pub seats: i32,
        /// Term start.
        #[serde(with = "avro_date")]
        pub term_start: NaiveDate,
        /// Term end.
        #[serde(with = "avro_date")]
        pub term_end: NaiveDate,
        /// Zuora's auto-renew flag.
        pub auto_renew: bool,
        /// Billing country.
        pub bill_to_country: CountryCode,
        /// Contract value.
        pub amount: Money,
        /// Communication profile.
        pub communication_profile: CommunicationProfile,
        /// Bill-to email, when Zuora has one (added in schema v2).
        #[serde(default)]
        pub bill_to_email: Option<String>,
    }
);

event!(
    /// Seats changed mid-term.
    SubscriptionAmended {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Seats before.
        pub previous_seats: i32,
        /// Seats after.
        pub seats: i32,
        /// Effective day.
        #[serde(with = "avro_date")]
        pub effective_date: NaiveDate,
        /// Amount invoiced.
        pub amount: Money,
    }
);

event!(
    /// A subscription entered a new term.
    SubscriptionRenewed {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Seats.
        pub seats: i32,
        /// Term start.
        #[serde(with = "avro_date")]
        pub term_start: NaiveDate,
        /// Term end.
        #[serde(with = "avro_date")]
        pub term_end: NaiveDate,
        /// Contract value.
        pub amount: Money,
        /// Renewed automatically.
        pub auto_renewed: bool,
    }
);

event!(
    /// A subscription was cancelled.
    SubscriptionCancelled {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Why.
        pub reason: CancellationReason,
        /// Effective day.
        #[serde(with = "avro_date")]
        pub effective_date: NaiveDate,
        /// Refund, if any.
        #[serde(default)]
        pub refund: Option<Money>,
    }
);

event!(
    /// One system's auto-renew flag changed.
    AutoRenewChanged {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Whose flag.
        pub flag_owner: SourceSystem,
        /// New value.
        pub auto_renew: bool,
    }
);

event!(
    /// A payment was declined.
    PaymentDeclined {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Unpaid invoice.
        pub invoice_id: String,
        /// Amount.
        pub amount: Money,
        /// Gateway decline code.
        pub decline_code: String,
        /// Declined on a SaaS auto-renewal.
        pub on_auto_renewal: bool,
    }
);

event!(
    /// The customer accepted the terms.
    EulaAccepted {
        /// Account id; the key.
        pub account_id: String,
        /// Subscription.
        pub subscription_id: String,
        /// Terms version.
        pub eula_version: String,
        /// Who accepted.
        pub accepted_by_email: String,
        /// When.
        #[serde(with = "avro_millis")]
        pub accepted_at: DateTime<Utc>,
    }
);

event!(
    /// A self-managed license was issued.
    LicenseIssued {
        /// License id.
        pub license_id: String,
        /// Account id; the key.
        pub account_id: String,
        /// Subscription.
        pub subscription_id: String,
        /// Plan SKU.
        pub plan_sku: String,
        /// Seats.
        pub seats: i32,
        /// First valid day.
        #[serde(with = "avro_date")]
        pub starts_on: NaiveDate,
        /// Last valid day.
        #[serde(with = "avro_date")]
        pub expires_on: NaiveDate,
        /// License email recipient.
        pub licensee_email: String,
        /// Reseller notified.
        pub reseller_notified: bool,
    }
);

event!(
    /// A license is held back.
    LicenseHeld {
        /// Account id; the key.
        pub account_id: String,
        /// Subscription.
        pub subscription_id: String,
        /// Why.
        pub reason: LicenseHoldReason,
        /// Profile when held.
        pub communication_profile: CommunicationProfile,
    }
);

event!(
    /// An account's communication profile changed.
    CommunicationProfileChanged {
        /// Account id; the key.
        pub account_id: String,
        /// The profile now.
        pub communication_profile: CommunicationProfile,
    }
);

event!(
    /// A renewal notice is due.
    RenewalNoticeDue {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Cadence step.
        pub days_before_term_end: i32,
        /// Term end.
        #[serde(with = "avro_date")]
        pub term_end: NaiveDate,
        /// Sender.
        pub sender: SourceSystem,
        /// Recipient.
        pub recipient_email: String,
    }
);

event!(
    /// An email was sent.
    EmailSent {
        /// Message id; the key.
        pub message_id: String,
        /// Recipient.
        pub recipient_email: String,
        /// Template name.
        pub template: String,
        /// Subject.
        pub subject: String,
        /// Subscription, if any.
        #[serde(default)]
        pub subscription_id: Option<String>,
    }
);

event!(
    /// An email was muted by the account's profile.
    EmailSuppressed {
        /// Account id; the key.
        pub account_id: String,
        /// Subscription, if any.
        #[serde(default)]
        pub subscription_id: Option<String>,
        /// Template not sent.
        pub template: String,
        /// Would-be recipient.
        pub recipient_email: String,
        /// The muting profile.
        pub communication_profile: CommunicationProfile,
    }
);

event!(
    /// Seat usage was measured.
    UsageReported {
        /// Subscription id; the key.
        pub subscription_id: String,
        /// Account id.
        pub account_id: String,
        /// Day measured.
        #[serde(with = "avro_date")]
        pub measured_on: NaiveDate,
        /// Active users.
        pub active_users: i32,
        /// Billable users.
        pub billable_users: i32,
        /// Seats bought.
        pub seats: i32,
    }
);

macro_rules! names {
    ($($name:ident),+) => {
        &[$(stringify!($name)),+]
    };
}

/// Names of every event in the catalog, in DESIGN.md's order.
pub const EVENT_NAMES: &[&str] = for_each_event!(names);
