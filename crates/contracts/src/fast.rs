//! Typed fast path: Avro binary written straight from the Rust types, field by field in
//! schema order, with no schema walk per record.
//!
//! It is only an accelerator: [`crate::codec::Codec`] enables it for an event only after
//! checking, when the codec is built, that it writes exactly the bytes the schema-driven
//! encoder (serde_avro_fast over the `.avsc`) writes for that event's golden examples; any
//! drift between type and schema falls back to the schema-driven path. Tests require every
//! event to pass that check.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::events::*;

/// Writes a value as Avro binary for the schema its type mirrors.
pub trait AvroEncode {
    /// Appends the value's Avro binary encoding.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Zig-zag varint, as Avro encodes `int` and `long`.
#[inline]
pub fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

impl AvroEncode for bool {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl AvroEncode for i32 {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, i64::from(*self));
    }
}

impl AvroEncode for String {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        write_bytes(out, self.as_bytes());
    }
}

/// `["null", T]`: branch 0 is null (the lint requires null first).
impl<T: AvroEncode> AvroEncode for Option<T> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(2); // zig-zag 1
                v.encode(out);
            }
        }
    }
}

/// One block with every item, then the end marker.
impl<T: AvroEncode> AvroEncode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        if !self.is_empty() {
            write_long(out, self.len() as i64);
            for item in self {
                item.encode(out);
            }
        }
        out.push(0);
    }
}

/// `uuid` over string: the hyphenated lower-case form.
impl AvroEncode for Uuid {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        let mut buf = Uuid::encode_buffer();
        write_bytes(out, self.hyphenated().encode_lower(&mut buf).as_bytes());
    }
}

/// `timestamp-millis` over long.
impl AvroEncode for DateTime<Utc> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, self.timestamp_millis());
    }
}

/// `date` over int.
impl AvroEncode for NaiveDate {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, i64::from(avro_date::to_days(self)));
    }
}

/// `decimal(18, 2)` over bytes: the unscaled value at scale 2, minimal two's complement,
/// big-endian. (Validation rejects amounts with more than two decimal places first.)
impl AvroEncode for Decimal {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut d = *self;
        d.rescale(2);
        let bytes = d.mantissa().to_be_bytes();
        let negative = bytes[0] & 0x80 != 0;
        let pad = if negative { 0xFF } else { 0x00 };
        let mut start = 0;
        while start < bytes.len() - 1
            && bytes[start] == pad
            && (bytes[start + 1] & 0x80 != 0) == negative
        {
            start += 1;
        }
        write_bytes(out, &bytes[start..]);
    }
}

/// Enum symbols are the index in the schema's symbol list, which is the sorted ISO list.
impl AvroEncode for CountryCode {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, i64::from(self.index()));
    }
}

macro_rules! encode_enum {
    ($($t:ty),+) => {$(
        /// Variants are declared in schema symbol order.
        impl AvroEncode for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                write_long(out, *self as i64);
            }
        }
    )+};
}

encode_enum!(
    SourceSystem,
    SalesChannel,
    Deployment,
    ZuoraEntity,
    BillingBatch,
    CommunicationProfile,
    CancellationReason,
    LeadSource,
    OrderType,
    LicenseHoldReason
);

macro_rules! encode_record {
    ($($t:ty { $($f:ident),+ })+) => {$(
        /// Fields in schema order.
        impl AvroEncode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$f.encode(out);)+
            }
        }
    )+};
}

encode_record! {
    Money { amount, currency }
    Reseller { name, authorized }
    OrderLine { sku, quantity, unit_price }
    Envelope { event_id, occurred_at, source, correlation_id, causation_id }
    LeadCaptured { envelope, lead_id, email, first_name, last_name, company, country, lead_source, marketing_opt_in, utm_campaign }
    OrderPlaced { envelope, order_id, account_id, sales_channel, deployment, order_type, reseller, bill_to_country, sold_to_email, lines, total, term_start, term_end, auto_renew }
    SubscriptionCreated { envelope, subscription_id, account_id, order_id, zuora_entity, billing_batch, deployment, plan_sku, seats, term_start, term_end, auto_renew, bill_to_country, amount, communication_profile }
    SubscriptionAmended { envelope, subscription_id, account_id, previous_seats, seats, effective_date, amount }
    SubscriptionRenewed { envelope, subscription_id, account_id, seats, term_start, term_end, amount, auto_renewed }
    SubscriptionCancelled { envelope, subscription_id, account_id, reason, effective_date, refund }
    AutoRenewChanged { envelope, subscription_id, account_id, flag_owner, auto_renew }
    PaymentDeclined { envelope, subscription_id, account_id, invoice_id, amount, decline_code, on_auto_renewal }
    EulaAccepted { envelope, account_id, subscription_id, eula_version, accepted_by_email, accepted_at }
    LicenseIssued { envelope, license_id, account_id, subscription_id, plan_sku, seats, starts_on, expires_on, licensee_email, reseller_notified }
    LicenseHeld { envelope, account_id, subscription_id, reason, communication_profile }
    RenewalNoticeDue { envelope, subscription_id, account_id, days_before_term_end, term_end, sender, recipient_email }
    EmailSent { envelope, message_id, recipient_email, template, subject, subscription_id }
    UsageReported { envelope, subscription_id, account_id, measured_on, active_users, billable_users, seats }
}
