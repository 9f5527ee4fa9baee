//! The codec: typed events ⇄ framed Avro binary.
//!
//! Framing is Avro single-object encoding (`C3 01` + the writer schema's CRC-64-AVRO
//! fingerprint, little-endian) by default, or the Confluent wire format (`00` + 4-byte
//! big-endian schema id) when a schema registry is in use. Decoding finds the writer schema
//! by fingerprint or id, refuses a writer schema the reader cannot resolve (checked once, when
//! the writer schema is first learnt, with [`crate::compat`]), then reads the writer's bytes
//! straight into the reader's Rust type: fields are matched by name, writer-only fields are
//! skipped, reader-only optional fields take their null default, and int/long/float/string
//! promotions apply. Every record is validated ([`crate::validate`]) before it is encoded
//! and after it is decoded.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::catalog::Catalog;
use crate::compat;
use crate::error::{Error, Result, SchemaError};
use crate::events::Event;
use crate::schema::{simple_name, Schema};
use crate::validate::check_json;

/// Single-object encoding marker.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
/// Single-object header length: marker + 8-byte fingerprint.
pub const SINGLE_OBJECT_HEADER: usize = 10;
/// Confluent wire-format magic byte.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Confluent header length: magic + 4-byte schema id.
pub const CONFLUENT_HEADER: usize = 5;

/// How records are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `C3 01` + fingerprint (no registry needed).
    SingleObject,
    /// `00` + registry schema id.
    Confluent,
}

/// A schema that wrote some bytes, ready to decode them.
#[derive(Debug)]
pub struct WriterSchema {
    /// The event (record simple name).
    pub event: String,
    /// Our parse of it.
    pub schema: Schema,
    /// CRC-64-AVRO of its canonical form.
    pub fingerprint: u64,
    /// Whether the typed fast path ([`crate::fast`]) writes and reads exactly this schema.
    pub typed: bool,
    fast: serde_avro_fast::Schema,
}

impl WriterSchema {
    /// Prepares a schema for decoding.
    pub fn new(schema: Schema) -> Result<WriterSchema> {
        let event = schema
            .root_named()
            .map(|n| simple_name(n.name()).to_owned())
            .ok_or_else(|| {
                SchemaError::Invalid("an event schema's root must be a record".into())
            })?;
        let fast: serde_avro_fast::Schema = schema
            .to_full_json()
            .to_string()
            .parse()
            .map_err(|e| SchemaError::Invalid(format!("{event}: {e}")))?;
        Ok(WriterSchema {
            event,
            typed: false,
            fingerprint: schema.fingerprint(),
            schema,
            fast,
        })
    }
}

/// Encodes and decodes events; cheap to share (`Arc`) between tasks.
#[derive(Debug)]
pub struct Codec {
    framing: Framing,
    readers: HashMap<String, Arc<WriterSchema>>,
    by_fingerprint: RwLock<HashMap<u64, Arc<WriterSchema>>>,
    by_id: RwLock<HashMap<u32, Arc<WriterSchema>>>,
    ids: RwLock<HashMap<String, u32>>,
}

impl Codec {
    /// A codec over the compiled-in working schemas, single-object framing, that also
    /// decodes frames written with any released version (`schemas/history/`).
    pub fn new() -> Codec {
        // The embedded catalogs are tested; each of their schemas is accepted by the Avro library.
        let codec = Codec::with_catalog(Catalog::embedded(), Framing::SingleObject)
            .unwrap_or_else(|e| panic!("embedded schemas rejected: {e}"));
        for (_, old) in Catalog::embedded_history() {
            for (_, schema) in old.events() {
                // `l2f schemas check` keeps history compatible in CI; a version that is not is
                // left out, and its frames fail to decode with UnknownFingerprint.
                let _ = codec.add_writer_schema(schema.clone(), None);
            }
        }
        codec
    }

    /// A codec over a catalog of reader schemas with the given framing.
    pub fn with_catalog(catalog: &Catalog, framing: Framing) -> Result<Codec> {
        let mut readers = HashMap::new();
        let mut by_fp = HashMap::new();
        for (name, schema) in catalog.events() {
            let mut w = WriterSchema::new(schema.clone())?;
            w.typed = fast_path_agrees(name, &w.fast);
            let w = Arc::new(w);
            by_fp.insert(w.fingerprint, w.clone());
            readers.insert(name.to_owned(), w);
        }
        Ok(Codec {
            framing,
            readers,
            by_fingerprint: RwLock::new(by_fp),
            by_id: RwLock::new(HashMap::new()),
            ids: RwLock::new(HashMap::new()),
        })
    }

    /// The framing used by [`Codec::encode`].
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The reader (and writer) schema of one event.
    pub fn schema(&self, event: &str) -> Option<&Schema> {
        self.readers.get(event).map(|w| &w.schema)
    }

    /// Records the registry id under which `event`'s current schema is registered
    /// (Confluent framing), and learns it as a writer schema for that id.
    pub fn set_schema_id(&self, event: &str, id: u32) -> Result<()> {
        let w = self
            .readers
            .get(event)
            .ok_or_else(|| Error::UnknownEvent(event.to_owned()))?;
        write(&self.ids).insert(event.to_owned(), id);
        write(&self.by_id).insert(id, w.clone());
        Ok(())
    }

    /// Learns a writer schema (an older or newer version, e.g. from `schemas/history` or the
    /// registry), after checking that the reader of the same event can resolve it.
    /// Returns its fingerprint.
    pub fn add_writer_schema(&self, schema: Schema, id: Option<u32>) -> Result<u64> {
        let w = WriterSchema::new(schema)?;
        let reader = self
            .readers
            .get(&w.event)
            .ok_or_else(|| Error::UnknownEvent(w.event.clone()))?;
        let problems = compat::check(&reader.schema, &w.schema);
        if !problems.is_empty() {
            return Err(Error::Incompatible {
                event: w.event.clone(),
                problems: problems.iter().map(ToString::to_string).collect(),
            });
        }
        let fp = w.fingerprint;
        let w = Arc::new(w);
        write(&self.by_fingerprint)
            .entry(fp)
            .or_insert_with(|| w.clone());
        if let Some(id) = id {
            write(&self.by_id).insert(id, w);
        }
        Ok(fp)
    }

    /// Encodes an event: validate, frame, Avro binary.
    pub fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(event, &mut out)?;
        Ok(out)
    }

    /// Like [`Codec::encode`], appending to a buffer the caller reuses.
    pub fn encode_into<E: Event>(&self, event: &E, out: &mut Vec<u8>) -> Result<()> {
        let violations = event.violations();
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        let w = self
            .readers
            .get(E::NAME)
            .ok_or_else(|| Error::UnknownEvent(E::NAME.to_owned()))?;
        self.write_header(w, out)?;
        if w.typed {
            event.encode(out);
            return Ok(());
        }
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&w.fast);
        let buf = std::mem::take(out);
        *out = serde_avro_fast::to_datum(event, buf, &mut config).map_err(|e| Error::Encode {
            event: E::NAME.to_owned(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    fn write_header(&self, w: &WriterSchema, out: &mut Vec<u8>) -> Result<()> {
        match self.framing {
            Framing::SingleObject => {
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&w.fingerprint.to_le_bytes());
            }
            Framing::Confluent => {
                let id = read(&self.ids).get(&w.event).copied().ok_or_else(|| {
                    Error::Registry(format!("{} has no registry schema id", w.event))
                })?;
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        Ok(())
    }

    /// The value of the `l2f.schema-id` header for records of `event` this codec writes: the
    /// writer schema's fingerprint as 16 lowercase hex digits (big-endian) with single-object
    /// framing, the registry id in decimal with Confluent framing.
    pub fn schema_id(&self, event: &str) -> Result<String> {
        let w = self
            .readers
            .get(event)
            .ok_or_else(|| Error::UnknownEvent(event.to_owned()))?;
        match self.framing {
            Framing::SingleObject => Ok(format!("{:016x}", w.fingerprint)),
            Framing::Confluent => read(&self.ids)
                .get(event)
                .map(u32::to_string)
                .ok_or_else(|| Error::UnknownEvent(format!("{event} (no registry id yet)"))),
        }
    }

    /// Finds the writer schema of a frame (either framing) and returns it with the payload.
    pub fn writer_of<'b>(&self, bytes: &'b [u8]) -> Result<(Arc<WriterSchema>, &'b [u8])> {
        match bytes.first() {
            Some(0xC3) => {
                let header: &[u8; SINGLE_OBJECT_HEADER] = bytes
                    .get(..SINGLE_OBJECT_HEADER)
                    .and_then(|h| h.try_into().ok())
                    .ok_or(Error::ShortFrame {
                        format: "single-object",
                        len: bytes.len(),
                        needed: SINGLE_OBJECT_HEADER,
                    })?;
                if header[1] != SINGLE_OBJECT_MAGIC[1] {
                    return Err(Error::BadMagic(header[..2].to_vec()));
                }
                let mut fp = [0u8; 8];
                fp.copy_from_slice(&header[2..]);
                let fp = u64::from_le_bytes(fp);
                let w = read(&self.by_fingerprint)
                    .get(&fp)
                    .cloned()
                    .ok_or(Error::UnknownFingerprint(fp as i64))?;
                Ok((w, &bytes[SINGLE_OBJECT_HEADER..]))
            }
            Some(&CONFLUENT_MAGIC) => {
                let header = bytes.get(..CONFLUENT_HEADER).ok_or(Error::ShortFrame {
                    format: "Confluent",
                    len: bytes.len(),
                    needed: CONFLUENT_HEADER,
                })?;
                let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                let w = read(&self.by_id)
                    .get(&id)
                    .cloned()
                    .ok_or(Error::UnknownSchemaId(id))?;
                Ok((w, &bytes[CONFLUENT_HEADER..]))
            }
            Some(_) => Err(Error::BadMagic(bytes[..bytes.len().min(2)].to_vec())),
            None => Err(Error::ShortFrame {
                format: "any",
                len: 0,
                needed: 1,
            }),
        }
    }

    /// Decodes a frame into the reader's type, resolving the writer's schema.
    pub fn decode<E: Event>(&self, bytes: &[u8]) -> Result<E> {
        // Fast path: written with this very reader schema (no lock, no lookup by fingerprint).
        if let (Some(reader), Some(header)) =
            (self.readers.get(E::NAME), bytes.get(..SINGLE_OBJECT_HEADER))
        {
            if header[..2] == SINGLE_OBJECT_MAGIC && header[2..] == reader.fingerprint.to_le_bytes()
            {
                let payload = &bytes[SINGLE_OBJECT_HEADER..];
                if reader.typed {
                    return decode_typed(payload);
                }
                return decode_payload(payload, &reader.fast);
            }
        }
        let (w, payload) = self.writer_of(bytes)?;
        if w.event != E::NAME {
            return Err(Error::WrongEvent {
                expected: E::NAME.to_owned(),
                found: w.event.clone(),
            });
        }
        // A registry id of the reader's own schema takes the typed path too.
        let same_as_reader = self
            .readers
            .get(E::NAME)
            .is_some_and(|r| r.typed && r.fingerprint == w.fingerprint);
        if same_as_reader {
            return decode_typed(payload);
        }
        decode_payload(payload, &w.fast)
    }

    /// Decodes any frame to `(event name, JSON)` without knowing its type (for replay and audits).
    pub fn decode_json(&self, bytes: &[u8]) -> Result<(String, serde_json::Value)> {
        let (w, payload) = self.writer_of(bytes)?;
        let value: serde_json::Value = serde_avro_fast::from_datum_slice(payload, &w.fast)
            .map_err(|e| Error::Decode {
                event: w.event.clone(),
                message: e.to_string(),
            })?;
        Ok((w.event.clone(), value))
    }

    /// Encodes an event given as JSON (serde's rendering of the Rust type). The JSON is checked
    /// against the schema first, so a missing field or a bad enum symbol is reported by path.
    pub fn encode_json(&self, event: &str, value: &serde_json::Value) -> Result<Vec<u8>> {
        let w = self
            .readers
            .get(event)
            .ok_or_else(|| Error::UnknownEvent(event.to_owned()))?;
        let violations = check_json(&w.schema, value, event);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations));
        }
        crate::with_event_type!(event, T, {
            let typed: T = serde_json::from_value(value.clone()).map_err(|e| Error::Encode {
                event: event.to_owned(),
                message: e.to_string(),
            })?;
            self.encode(&typed)
        })
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

/// Whether the typed fast path writes, for the golden examples of `event` (all optional
/// fields filled, then all empty), the same bytes as the schema-driven encoder.
fn fast_path_agrees(event: &str, schema: &serde_avro_fast::Schema) -> bool {
    fn agrees<E: crate::examples::Golden>(schema: &serde_avro_fast::Schema) -> bool {
        let full = crate::examples::golden::<E>();
        let sparse = crate::examples::without_optionals(&full);
        [Some(full), sparse].into_iter().flatten().all(|e| {
            let mut fast = Vec::new();
            e.encode(&mut fast);
            let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
            let Ok(slow) = serde_avro_fast::to_datum(&e, Vec::new(), &mut config) else {
                return false;
            };
            let mut reader = crate::fast::Reader::new(&slow);
            slow == fast && E::decode(&mut reader).is_ok_and(|back| back == e) && reader.at_end()
        })
    }
    let check =
        || -> Result<bool> { crate::with_event_type!(event, T, { Ok(agrees::<T>(schema)) }) };
    check().unwrap_or(false)
}

/// Reads a payload written with the reader's own schema through the typed fast path.
fn decode_typed<E: Event>(payload: &[u8]) -> Result<E> {
    let mut reader = crate::fast::Reader::new(payload);
    let event = E::decode(&mut reader)
        .and_then(|e| {
            if reader.at_end() {
                Ok(e)
            } else {
                Err(crate::fast::DecodeError(
                    "trailing bytes after the record".into(),
                ))
            }
        })
        .map_err(|e| Error::Decode {
            event: E::NAME.to_owned(),
            message: e.0,
        })?;
    let violations = event.violations();
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    Ok(event)
}

/// Reads the Avro payload into the reader's type (serde matches fields by name), then validates.
fn decode_payload<E: Event>(payload: &[u8], writer: &serde_avro_fast::Schema) -> Result<E> {
    let event: E =
        serde_avro_fast::from_datum_slice(payload, writer).map_err(|e| Error::Decode {
            event: E::NAME.to_owned(),
            message: e.to_string(),
        })?;
    let violations = event.violations();
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    Ok(event)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `$body` with `$t` bound to the Rust type of the event named `$name`; an unknown name
/// returns `Err(Error::UnknownEvent)` from the enclosing function.
#[macro_export]
macro_rules! with_event_type {
    ($name:expr, $t:ident, $body:block) => {{
        use $crate::events::*;
        match $name {
            "LeadCaptured" => {
                type $t = LeadCaptured;
                $body
            }
            "OrderPlaced" => {
                type $t = OrderPlaced;
                $body
            }
            "SubscriptionCreated" => {
                type $t = SubscriptionCreated;
                $body
            }
            "SubscriptionAmended" => {
                type $t = SubscriptionAmended;
                $body
            }
            "SubscriptionRenewed" => {
                type $t = SubscriptionRenewed;
                $body
            }
            "SubscriptionCancelled" => {
                type $t = SubscriptionCancelled;
                $body
            }
            "AutoRenewChanged" => {
                type $t = AutoRenewChanged;
                $body
            }
            "PaymentDeclined" => {
                type $t = PaymentDeclined;
                $body
            }
            "EulaAccepted" => {
                type $t = EulaAccepted;
                $body
            }
            "LicenseIssued" => {
                type $t = LicenseIssued;
                $body
            }
            "LicenseHeld" => {
                type $t = LicenseHeld;
                $body
            }
            "RenewalNoticeDue" => {
                type $t = RenewalNoticeDue;
                $body
            }
            "EmailSent" => {
                type $t = EmailSent;
                $body
            }
            "EmailSuppressed" => {
                type $t = EmailSuppressed;
                $body
            }
            "CommunicationProfileChanged" => {
                type $t = CommunicationProfileChanged;
                $body
            }
            "UsageReported" => {
                type $t = UsageReported;
                $body
            }
            other => Err($crate::error::Error::UnknownEvent(other.to_owned()).into()),
        }
    }};
}
