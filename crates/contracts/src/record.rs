//! The record format of every event, defined once: which topic it goes to, what its key is
//! (the aggregate, so order holds per lead, account or subscription), the value (the Avro
//! frame) and the headers readers route on without decoding (`l2f.event-type`,
//! `l2f.schema-id`). Sources and sinks alike build their records here, so no connector invents
//! its own, and a source never depends on a sink to write a lead.
//!
//! Also here: [`event_id`], the deterministic id of an event derived from where it came from,
//! so a feed read twice yields the same ids and the sinks' idempotency keys absorb it.

use uuid::Uuid;

use crate::codec::Codec;
use crate::error::Result;
use crate::events::*;

/// Header with the event's type name (`LeadCaptured`).
pub const EVENT_TYPE_HEADER: &str = "l2f.event-type";
/// Header with the writer schema's id (see [`Codec::schema_id`]).
pub const SCHEMA_ID_HEADER: &str = "l2f.schema-id";

/// An event's place in the topic catalog: its topic and its key.
pub trait Keyed: Event {
    /// The catalog topic that carries this event (`deploy/topics.toml`).
    const TOPIC: &'static str;
    /// The aggregate id that keys the record, as each schema's doc names it.
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($event:ident => $topic:literal, $field:ident;)+) => {
        $(impl Keyed for $event {
            const TOPIC: &'static str = $topic;
            fn key(&self) -> &str {
                &self.$field
            }
        })+

        /// `(event, topic)` for every event, in catalog order: checked against the catalog.
        pub const TOPICS: &[(&str, &str)] = &[$((stringify!($event), $topic)),+];
    };
}

keyed! {
    LeadCaptured => "leads", lead_id;
    OrderPlaced => "orders", account_id;
    SubscriptionCreated => "subscriptions", subscription_id;
    SubscriptionAmended => "subscriptions", subscription_id;
    SubscriptionRenewed => "subscriptions", subscription_id;
    SubscriptionCancelled => "subscriptions", subscription_id;
    AutoRenewChanged => "subscriptions", subscription_id;
    PaymentDeclined => "subscriptions", subscription_id;
    EulaAccepted => "licenses", account_id;
    LicenseIssued => "licenses", account_id;
    LicenseHeld => "licenses", account_id;
    CommunicationProfileChanged => "licenses", account_id;
    RenewalNoticeDue => "notifications", subscription_id;
    EmailSent => "notifications", message_id;
    EmailSuppressed => "notifications", account_id;
    UsageReported => "usage", subscription_id;
}

/// An event as a Kafka record, before any client's record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The topic.
    pub topic: String,
    /// The aggregate key.
    pub key: String,
    /// The Avro frame.
    pub value: Vec<u8>,
    /// `l2f.event-type` and `l2f.schema-id`.
    pub headers: Vec<(&'static str, String)>,
}

/// The record of `event` on its catalog topic. Fails when the event breaks its contract (the
/// codec validates before it encodes), naming the field and the value.
pub fn frame<E: Keyed>(codec: &Codec, event: &E) -> Result<Framed> {
    frame_to(codec, E::TOPIC, event)
}

/// [`frame`] onto another topic than the catalog's (a test topic, a renamed deployment).
pub fn frame_to<E: Keyed>(codec: &Codec, topic: &str, event: &E) -> Result<Framed> {
    let value = codec.encode(event)?;
    Ok(Framed {
        topic: topic.to_owned(),
        key: event.key().to_owned(),
        value,
        headers: vec![
            (EVENT_TYPE_HEADER, E::NAME.to_owned()),
            (SCHEMA_ID_HEADER, codec.schema_id(E::NAME)?),
        ],
    })
}

macro_rules! any_event {
    ($($name:ident),+) => {
        /// Any event of the catalog, decoded by its writer schema's name: what a sink of a
        /// topic that carries several event types matches on.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum AnyEvent {
            $(
                #[doc = concat!("A `", stringify!($name), "`.")]
                $name($name)
            ),+
        }

        impl AnyEvent {
            /// Decodes a frame of any event type.
            pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<AnyEvent> {
                let (w, _) = codec.writer_of(bytes)?;
                match w.event.as_str() {
                    $(stringify!($name) => Ok(AnyEvent::$name(codec.decode(bytes)?)),)+
                    other => Err(crate::error::Error::UnknownEvent(other.to_owned())),
                }
            }

            /// The event's type name.
            pub fn name(&self) -> &'static str {
                match self { $(AnyEvent::$name(_) => stringify!($name)),+ }
            }

            /// The envelope.
            pub fn envelope(&self) -> &Envelope {
                match self { $(AnyEvent::$name(e) => e.envelope()),+ }
            }

            /// The catalog topic of the event.
            pub fn topic(&self) -> &'static str {
                match self { $(AnyEvent::$name(_) => <$name as Keyed>::TOPIC),+ }
            }

            /// The aggregate key of the event.
            pub fn key(&self) -> &str {
                match self { $(AnyEvent::$name(e) => e.key()),+ }
            }

            /// The record of the event on `topic` (see [`frame_to`]).
            pub fn frame_to(&self, codec: &Codec, topic: &str) -> Result<Framed> {
                match self { $(AnyEvent::$name(e) => frame_to(codec, topic, e)),+ }
            }
        }
    };
}

for_each_event!(any_event);

/// The namespace of l2f's derived event ids (a fixed v4 uuid).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c32_665f_8f4e_4d6b_9a3c_1e5f_0b2d_7a91);

/// The id of the event a source makes from one change of a feed: the same source, feed
/// epoch and position always give the same id (UUID v5), so a re-read feed produces
/// duplicates that idempotent sinks recognise, never new business events.
pub fn event_id(source: &str, epoch: &str, position: &str) -> Uuid {
    let name = format!("{source}\u{1f}{epoch}\u{1f}{position}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The id of an event a stage derives from another event (`step` names what it did): stable
/// across redeliveries of the cause, distinct per step.
pub fn derived_id(cause: Uuid, step: &str) -> Uuid {
    let mut name = cause.as_bytes().to_vec();
    name.extend_from_slice(step.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    #[test]
    fn event_ids_are_stable_and_distinct_per_position() {
        let a = event_id("customers", "epoch-1", "17");
        assert_eq!(a, event_id("customers", "epoch-1", "17"));
        assert_ne!(a, event_id("customers", "epoch-1", "18"));
        assert_ne!(a, event_id("customers", "epoch-2", "17"));
        assert_ne!(a, event_id("salesforce", "epoch-1", "17"));
        assert_eq!(a.get_version_num(), 5);
        let d = derived_id(a, "zuora-order");
        assert_eq!(d, derived_id(a, "zuora-order"));
        assert_ne!(d, derived_id(a, "zuora-cancel"));
    }

    #[test]
    fn a_lead_is_keyed_by_its_id_with_both_headers() {
        let codec = Codec::new();
        let lead = examples::lead_captured();
        let f = frame(&codec, &lead).unwrap();
        assert_eq!(f.topic, "leads");
        assert_eq!(f.key, lead.lead_id);
        assert_eq!(f.headers[0], (EVENT_TYPE_HEADER, "LeadCaptured".into()));
        let fp = codec.writer_of(&f.value).unwrap().0.fingerprint;
        assert_eq!(f.headers[1], (SCHEMA_ID_HEADER, format!("{fp:016x}")));
        assert_eq!(codec.decode::<LeadCaptured>(&f.value).unwrap(), lead);
    }

    #[test]
    fn a_contract_breach_is_refused_before_it_is_framed() {
        let mut lead = examples::lead_captured();
        lead.email = "not-an-address".into();
        let e = frame(&Codec::new(), &lead).unwrap_err().to_string();
        assert!(e.contains("email"), "{e}");
    }

    #[test]
    fn any_event_decodes_by_the_writer_schema() {
        let codec = Codec::new();
        let sub = examples::subscription_cancelled();
        let bytes = codec.encode(&sub).unwrap();
        match AnyEvent::decode(&codec, &bytes).unwrap() {
            AnyEvent::SubscriptionCancelled(s) => assert_eq!(s, sub),
            other => panic!("{}", other.name()),
        }
    }

    #[test]
    fn every_event_has_a_topic() {
        let named: Vec<&str> = TOPICS.iter().map(|(e, _)| *e).collect();
        assert_eq!(named, crate::events::EVENT_NAMES);
    }
}
