//! l2f's event contracts: the Avro schemas of `schemas/` as Rust types, the codec that frames
//! them (single-object encoding, or the Confluent wire format with a registry), validation
//! beyond Avro, and the schema tooling (canonical form, fingerprints, compatibility, lint).
//!
//! Guarantees: [`codec::Codec::encode`] never emits a record that breaks its schema or the
//! semantic rules of [`validate`] (a missing field, a country outside ISO 3166-1 alpha-2, a
//! malformed email, seats ≤ 0, a term ending before it starts, negative money); every error
//! names the field and the value. Decoding accepts only writer schemas the reader can
//! resolve by the Avro specification's rules ([`compat`]).

/// Calls `$m!` with the name of every event, in DESIGN.md's order (after any leading
/// arguments): the one list of the catalog's events.
macro_rules! for_each_event {
    ($m:ident $(, $arg:tt)*) => {
        $m! { $($arg,)* LeadCaptured, OrderPlaced, SubscriptionCreated, SubscriptionAmended,
            SubscriptionRenewed, SubscriptionCancelled, AutoRenewChanged, PaymentDeclined,
            EulaAccepted, LicenseIssued, LicenseHeld, CommunicationProfileChanged, RenewalNoticeDue,
            EmailSent, EmailSuppressed, UsageReported }
    };
}

pub mod catalog;
pub mod codec;
pub mod compat;
mod countries;
pub mod country;
pub mod error;
pub mod events;
pub mod examples;
pub mod fast;
pub mod lint;
pub mod record;
pub mod registry;
pub mod schema;
pub mod tooling;
pub mod validate;

pub use catalog::Catalog;
pub use codec::{Codec, Framing};
pub use country::CountryCode;
pub use error::{Error, Result, SchemaError, Violation};
pub use events::Event;
pub use schema::Schema;
