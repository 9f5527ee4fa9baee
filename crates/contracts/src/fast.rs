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

/// Why the typed fast path could not read a payload (corrupt or truncated bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// A cursor over an Avro payload.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether every byte was consumed.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn err<T>(&self, what: &str) -> Result<T, DecodeError> {
        Err(DecodeError(format!("{what} at byte {}", self.pos)))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => self.err("unexpected end of data"),
        }
    }

    /// Zig-zag varint.
    #[inline]
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        self.err("varint longer than 10 bytes")
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.long()?;
        let Ok(len) = usize::try_from(len) else {
            return self.err("negative length");
        };
        match self.buf.get(self.pos..self.pos.saturating_add(len)) {
            Some(s) => {
                self.pos += len;
                Ok(s)
            }
            None => self.err("length past the end of data"),
        }
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map_err(|_| DecodeError(format!("invalid UTF-8 before byte {}", self.pos)))
    }
}

/// Reads a value written with exactly the schema its type mirrors.
pub trait AvroDecode: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl AvroDecode for bool {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => r.err("boolean is neither 0 nor 1"),
        }
    }
}

impl AvroDecode for i32 {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.long()?;
        i32::try_from(n).or_else(|_| r.err("int out of range"))
    }
}

impl AvroDecode for String {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.str().map(str::to_owned)
    }
}

impl<T: AvroDecode> AvroDecode for Option<T> {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.long()? {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            _ => r.err("union branch out of range"),
        }
    }
}

impl<T: AvroDecode> AvroDecode for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut out = Vec::new();
        loop {
            let mut count = r.long()?;
            if count == 0 {
                return Ok(out);
            }
            if count < 0 {
                count = count
                    .checked_neg()
                    .map_or_else(|| r.err("bad block count"), Ok)?;
                r.long()?; // block size in bytes, not needed here
            }
            // Each item takes at least one byte: a count past the data is corrupt.
            if count as u64 > (r.buf.len() - r.pos) as u64 {
                return r.err("array block count past the end of data");
            }
            out.reserve(count as usize);
            for _ in 0..count {
                out.push(T::decode(r)?);
            }
        }
    }
}

impl AvroDecode for Uuid {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let b = r.bytes()?;
        Uuid::try_parse_ascii(b).or_else(|_| r.err("not a uuid"))
    }
}

impl AvroDecode for DateTime<Utc> {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ms = r.long()?;
        DateTime::from_timestamp_millis(ms).map_or_else(|| r.err("timestamp out of range"), Ok)
    }
}

impl AvroDecode for NaiveDate {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let days = i32::decode(r)?;
        avro_date::from_days(days).map_or_else(|| r.err("date out of range"), Ok)
    }
}

impl AvroDecode for Decimal {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let b = r.bytes()?;
        if b.is_empty() || b.len() > 16 {
            return r.err("decimal of unsupported size");
        }
        let fill = if b[0] & 0x80 != 0 { 0xFF } else { 0x00 };
        let mut buf = [fill; 16];
        buf[16 - b.len()..].copy_from_slice(b);
        Decimal::try_from_i128_with_scale(i128::from_be_bytes(buf), 2)
            .or_else(|_| r.err("decimal out of range"))
    }
}

impl AvroDecode for CountryCode {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let i = r.long()?;
        u8::try_from(i)
            .ok()
            .and_then(CountryCode::from_index)
            .map_or_else(|| r.err("CountryCode symbol index out of range"), Ok)
    }
}

macro_rules! enum_codec {
    ($($t:ty),+) => {$(
        /// Variants are declared in schema symbol order: the index is the discriminant.
        impl AvroEncode for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                write_long(out, *self as i64);
            }
        }

        impl AvroDecode for $t {
            #[inline]
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let i = r.long()?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| <$t>::VARIANTS.get(i).copied())
                    .map_or_else(|| r.err(concat!(stringify!($t), " symbol index out of range")), Ok)
            }
        }
    )+};
}

enum_codec!(
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

macro_rules! record_codec {
    ($($t:ident { $($f:ident),+ })+) => {$(
        /// Fields in schema order.
        impl AvroEncode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$f.encode(out);)+
            }
        }

        impl AvroDecode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($t { $($f: AvroDecode::decode(r)?),+ })
            }
        }
    )+};
}

record_codec! {
    Money { amount, currency }
    Reseller { name, authorized }
    OrderLine { sku, quantity, unit_price }
    Envelope { event_id, occurred_at, source, correlation_id, causation_id }
    LeadCaptured { envelope, lead_id, email, first_name, last_name, company, country, lead_source, marketing_opt_in, utm_campaign }
    OrderPlaced { envelope, order_id, account_id, sales_channel, deployment, order_type, reseller, bill_to_country, sold_to_email, lines, total, term_start, term_end, auto_renew }
    SubscriptionCreated { envelope, subscription_id, account_id, order_id, zuora_entity, billing_batch, deployment, plan_sku, seats, term_start, term_end, auto_renew, bill_to_country, amount, communication_profile, bill_to_email }
    SubscriptionAmended { envelope, subscription_id, account_id, previous_seats, seats, effective_date, amount }
    SubscriptionRenewed { envelope, subscription_id, account_id, seats, term_start, term_end, amount, auto_renewed }
    SubscriptionCancelled { envelope, subscription_id, account_id, reason, effective_date, refund }
    AutoRenewChanged { envelope, subscription_id, account_id, flag_owner, auto_renew }
    PaymentDeclined { envelope, subscription_id, account_id, invoice_id, amount, decline_code, on_auto_renewal }
    EulaAccepted { envelope, account_id, subscription_id, eula_version, accepted_by_email, accepted_at }
    LicenseIssued { envelope, license_id, account_id, subscription_id, plan_sku, seats, starts_on, expires_on, licensee_email, reseller_notified }
    LicenseHeld { envelope, account_id, subscription_id, reason, communication_profile }
    CommunicationProfileChanged { envelope, account_id, communication_profile }
    RenewalNoticeDue { envelope, subscription_id, account_id, days_before_term_end, term_end, sender, recipient_email }
    EmailSent { envelope, message_id, recipient_email, template, subject, subscription_id }
    EmailSuppressed { envelope, account_id, subscription_id, template, recipient_email, communication_profile }
    UsageReported { envelope, subscription_id, account_id, measured_on, active_users, billable_users, seats }
}
