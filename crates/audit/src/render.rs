//! One Kafka record, decoded with the contracts' codec and rendered as the export writes it:
//! a JSON line or an Avro datum of the export schema ([`crate::export::avro_schema`]).
//!
//! A JSON line is
//! `{"topic","partition","offset","timestamp","key","headers","event_type","event"}`:
//! `timestamp` in ms since the epoch (null when the record has none); `key` and header
//! values as UTF-8 text, or `{"base64": "..."}` when they are not UTF-8, or null;
//! `headers` a list of `[name, value]` pairs in record order (names may repeat);
//! `event` the decoded event as serde renders the Rust type — the form
//! `Codec::encode_json` takes back, so a line's event can be re-encoded. A record that does
//! not decode has `"event": null`, `"decode_error"` and its raw `"value_base64"`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use l2f_contracts::codec::WriterSchema;
use l2f_contracts::events::{Envelope, EVENT_NAMES};
use l2f_contracts::fast::write_long;
use l2f_contracts::{Codec, Event};
use rdkafka::message::{Headers, Message};

use crate::export::Format;
use crate::range::Filters;

type RenderFn = fn(&Codec, &[u8], Format, &mut Vec<u8>) -> l2f_contracts::Result<Envelope>;

fn render_event<T: Event>(
    codec: &Codec,
    frame: &[u8],
    format: Format,
    out: &mut Vec<u8>,
) -> l2f_contracts::Result<Envelope> {
    let event: T = codec.decode(frame)?;
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, &event).map_err(|e| l2f_contracts::Error::Encode {
                event: T::NAME.to_owned(),
                message: e.to_string(),
            })?
        }
        Format::Avro => {
            // Re-encoded with the current schema (the export schema's union branch), so a
            // record written with an older version lands in the same branch.
            let at = out.len();
            codec.encode_into(&event, out)?;
            out.drain(at..at + l2f_contracts::codec::SINGLE_OBJECT_HEADER);
        }
    }
    Ok(event.envelope().clone())
}

/// What one record turned into.
pub struct View<'a> {
    /// The rendered bytes (a JSON line without its newline, or an Avro datum).
    pub bytes: &'a [u8],
    /// The writer schema's event name, when the value is a known frame.
    pub event_type: Option<&'a str>,
    /// The envelope, when the event decoded.
    pub envelope: Option<&'a Envelope>,
}

/// Decodes and renders records, reusing its buffers (no allocation per record on the
/// common path).
pub struct Renderer {
    codec: Codec,
    table: HashMap<&'static str, (RenderFn, i64)>,
    format: Format,
    buf: Vec<u8>,
    event: Vec<u8>,
    writer: Option<Arc<WriterSchema>>,
    envelope: Option<Envelope>,
}

impl Renderer {
    /// A renderer for `format`, decoding with the compiled-in schemas and every released
    /// version of them.
    pub fn new(format: Format) -> Self {
        let mut table: HashMap<&'static str, (RenderFn, i64)> = HashMap::new();
        for (i, name) in EVENT_NAMES.iter().enumerate() {
            let f: l2f_contracts::Result<RenderFn> =
                l2f_contracts::with_event_type!(*name, T, { Ok(render_event::<T> as RenderFn) });
            if let Ok(f) = f {
                table.insert(name, (f, i as i64 + 1));
            }
        }
        Renderer {
            codec: Codec::new(),
            table,
            format,
            buf: Vec::with_capacity(4096),
            event: Vec::with_capacity(4096),
            writer: None,
            envelope: None,
        }
    }

    /// The format rendered.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Renders `m` if it passes `filters`; `None` when a filter leaves it out.
    pub fn render<M: Message>(&mut self, m: &M, filters: &Filters) -> Option<View<'_>> {
        if !filters.key_passes(m.key()) || !filters.time_passes(m.timestamp().to_millis()) {
            return None;
        }
        self.writer = None;
        self.envelope = None;
        self.event.clear();
        let mut error: Option<String> = None;
        let mut branch = 0i64;
        match m.payload() {
            None => {}
            Some(frame) => match self.codec.writer_of(frame) {
                Err(e) => error = Some(e.to_string()),
                Ok((w, _)) => {
                    if !filters.event_type_passes(Some(&w.event)) {
                        return None;
                    }
                    match self.table.get(w.event.as_str()) {
                        None => error = Some(format!("no Rust type for event {}", w.event)),
                        Some(&(f, b)) => {
                            match f(&self.codec, frame, self.format, &mut self.event) {
                                Ok(env) => {
                                    self.envelope = Some(env);
                                    branch = b;
                                }
                                Err(e) => {
                                    self.event.clear();
                                    error = Some(e.to_string());
                                }
                            }
                        }
                    }
                    self.writer = Some(w);
                }
            },
        }
        if self.writer.is_none() && !filters.event_types.is_empty() {
            return None;
        }
        if !filters.correlation_passes(self.envelope.as_ref().map(|e| &e.correlation_id)) {
            return None;
        }
        self.buf.clear();
        match self.format {
            Format::Json => self.json_line(m, error.as_deref()),
            Format::Avro => self.avro_datum(m, branch, error.as_deref()),
        }
        Some(View {
            bytes: &self.buf,
            event_type: self.writer.as_ref().map(|w| w.event.as_str()),
            envelope: self.envelope.as_ref(),
        })
    }

    fn json_line<M: Message>(&mut self, m: &M, error: Option<&str>) {
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"topic\":");
        json_str(b, m.topic());
        b.extend_from_slice(b",\"partition\":");
        b.extend_from_slice(itoa::Buffer::new().format(m.partition()).as_bytes());
        b.extend_from_slice(b",\"offset\":");
        b.extend_from_slice(itoa::Buffer::new().format(m.offset()).as_bytes());
        b.extend_from_slice(b",\"timestamp\":");
        match m.timestamp().to_millis() {
            Some(t) => b.extend_from_slice(itoa::Buffer::new().format(t).as_bytes()),
            None => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(b",\"key\":");
        json_bytes(b, m.key());
        b.extend_from_slice(b",\"headers\":[");
        if let Some(hs) = m.headers() {
            for (i, h) in hs.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.push(b'[');
                json_str(b, h.key);
                b.push(b',');
                json_bytes(b, h.value);
                b.push(b']');
            }
        }
        b.extend_from_slice(b"],\"event_type\":");
        match &self.writer {
            Some(w) => json_str(b, &w.event),
            None => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(b",\"event\":");
        if self.event.is_empty() {
            b.extend_from_slice(b"null");
        } else {
            b.extend_from_slice(&self.event);
        }
        if let Some(e) = error {
            b.extend_from_slice(b",\"decode_error\":");
            json_str(b, e);
            b.extend_from_slice(b",\"value_base64\":");
            match m.payload() {
                Some(v) => json_str(b, &base64::engine::general_purpose::STANDARD.encode(v)),
                None => b.extend_from_slice(b"null"),
            }
        }
        b.push(b'}');
    }

    fn avro_datum<M: Message>(&mut self, m: &M, branch: i64, error: Option<&str>) {
        let b = &mut self.buf;
        avro_bytes(b, m.topic().as_bytes());
        write_long(b, i64::from(m.partition()));
        write_long(b, m.offset());
        match m.timestamp().to_millis() {
            Some(t) => {
                write_long(b, 1);
                write_long(b, t);
            }
            None => write_long(b, 0),
        }
        avro_opt_bytes(b, m.key());
        if let Some(hs) = m.headers() {
            if hs.count() > 0 {
                write_long(b, hs.count() as i64);
                for h in hs.iter() {
                    avro_bytes(b, h.key.as_bytes());
                    avro_opt_bytes(b, h.value);
                }
            }
        }
        write_long(b, 0);
        avro_opt_bytes(b, m.payload());
        avro_opt_bytes(b, self.writer.as_ref().map(|w| w.event.as_bytes()));
        if self.event.is_empty() {
            write_long(b, 0);
        } else {
            write_long(b, branch);
            b.extend_from_slice(&self.event);
        }
        avro_opt_bytes(b, error.map(str::as_bytes));
    }
}

fn json_str(b: &mut Vec<u8>, s: &str) {
    // Topics, keys and header values rarely need escaping: check all bytes at once (a fold
    // the compiler vectorises) and copy; otherwise let serde_json escape.
    let plain = !s.bytes().fold(false, |any, c| {
        any | (c < 0x20) | (c == b'"') | (c == b'\\')
    });
    if plain {
        b.reserve(s.len() + 2);
        b.push(b'"');
        b.extend_from_slice(s.as_bytes());
        b.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *b, s);
    }
}

fn json_bytes(b: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => b.extend_from_slice(b"null"),
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => json_str(b, s),
            Err(_) => {
                b.extend_from_slice(b"{\"base64\":");
                json_str(b, &base64::engine::general_purpose::STANDARD.encode(v));
                b.push(b'}');
            }
        },
    }
}

fn avro_bytes(b: &mut Vec<u8>, v: &[u8]) {
    write_long(b, v.len() as i64);
    b.extend_from_slice(v);
}

fn avro_opt_bytes(b: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => write_long(b, 0),
        Some(v) => {
            write_long(b, 1);
            avro_bytes(b, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        for s in [
            "lead-1",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "é ü 漢",
            "l2f.event-type",
        ] {
            let mut ours = Vec::new();
            json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
