//! The Marketo connector: `LeadCaptured` events from the `leads` topic pushed to Marketo's
//! `POST /rest/v1/leads.json`.
//!
//! **Guarantee: effectively-once.** The bus's loop delivers at least once (an offset is
//! committed only after Marketo answered `created`/`updated` or the record reached the
//! dead-letter topic); the push is `createOrUpdate` with lookup field `email`, so a
//! redelivered lead matches the lead it created the first time and becomes an update, never a
//! duplicate. It rests on one condition: the lookup field (email) identifies the person.
//!
//! **Nothing dropped, no half leads.** A lead missing a field Marketo requires (handbook
//! rule 2), an undecodable record, or a lead Marketo skips is a permanent failure whose
//! message names the fields or Marketo's reasons; it goes to the dead-letter topic.
//! Marketo's rate limit (606), concurrency limit (615), 429/5xx, timeouts and connection
//! errors are transient: retried in place (per-key order kept), a 606 after the rate window.
//!
//! Layout: [`config`] (what to connect to), [`mapping`] (pure event → Marketo lead),
//! [`sink`] (the [`l2f_bus::Handler`] and the one place that classifies Marketo's answers).

pub mod config;
pub mod mapping;
pub mod sink;

pub use config::{ConfigError, MarketoConfig};
pub use sink::{MarketoSink, Pushed, SinkStats};

use l2f_bus::headers::{EVENT_TYPE, SCHEMA_ID};
use l2f_bus::record::OutRecord;
use l2f_contracts::events::{Event, LeadCaptured};
use l2f_contracts::Codec;

/// The record a producer of leads writes for this sink to read: keyed by lead id (order per
/// lead), the Avro single-object frame as value, `l2f.event-type` and `l2f.schema-id` (the
/// writer schema's fingerprint, 16 hex digits) headers. Fails when the lead breaks its
/// contract (the codec validates before it encodes), naming the field and the value.
pub fn lead_record(
    topic: &str,
    lead: &LeadCaptured,
    codec: &Codec,
) -> Result<OutRecord, l2f_contracts::Error> {
    let bytes = codec.encode(lead)?;
    let fingerprint = codec.writer_of(&bytes)?.0.fingerprint;
    Ok(OutRecord::new(topic, lead.lead_id.as_bytes(), bytes)
        .with_header(EVENT_TYPE, LeadCaptured::NAME)
        .with_header(SCHEMA_ID, format!("{fingerprint:016x}")))
}
