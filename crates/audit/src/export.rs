//! Export files: what they contain, how they name the range they cover, and how they are
//! read back.
//!
//! - **JSON lines** (`--format json`): the first line is `{"l2f.replay": HEADER}`, then one
//!   line per record ([`crate::render`]), then `{"l2f.summary": SUMMARY}` as the last line.
//!   Record lines always have a `"topic"` key and the other two never do, so
//!   `jq 'select(.topic)'` keeps the records.
//! - **Avro object container file** (`--format avro`): schema [`avro_schema`]
//!   (`dev.l2f.replay.ReplayRecord`: the record's position, timestamp, key, headers, raw
//!   value, event type, the decoded event as a union of every event schema, and a decode
//!   error), null codec; the header is the JSON string in the file metadata key
//!   `l2f.replay`. The summary is not in the file (Avro metadata precedes the data): pass
//!   `--summary FILE`.
//!
//! HEADER names the resolved range (`ranges`: topic, partition, start, end-exclusive, per
//! partition), the bounds as given, the filters and the isolation level, which is all that
//! `l2f replay --verify` needs to re-read it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use l2f_bus::reader::Isolation;
use l2f_contracts::events::EVENT_NAMES;
use l2f_contracts::Catalog;
use serde::{Deserialize, Serialize};
use serde_avro_fast::object_container_file_encoding::{Reader, Writer, WriterBuilder};
use serde_avro_fast::ser::SerializerConfig;

use crate::error::{AuditError, Result};
use crate::range::{Filters, PartitionRange};
use crate::summary::Summary;

/// The export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines.
    Json,
    /// Avro object container file.
    Avro,
}

/// The version of the export layout this code writes.
pub const EXPORT_VERSION: u32 = 1;

/// What an export covers: enough to re-read exactly the same records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Layout version ([`EXPORT_VERSION`]).
    pub version: u32,
    /// The program that wrote it.
    pub tool: String,
    /// When the replay started (RFC 3339, UTC).
    pub created_at: String,
    /// `--from` as given.
    pub from: String,
    /// `--to` as given.
    pub to: String,
    /// `read_committed` or `read_uncommitted`.
    pub isolation: String,
    /// The filters applied.
    pub filters: Filters,
    /// The resolved offsets, per partition, in (topic, partition) order.
    pub ranges: Vec<PartitionRange>,
    /// How the digest is computed ([`crate::digest::ALGORITHM`]).
    pub digest_algorithm: String,
}

impl ExportHeader {
    /// The isolation level named in the header.
    pub fn isolation(&self) -> Isolation {
        if self.isolation == Isolation::ReadUncommitted.as_librdkafka() {
            Isolation::ReadUncommitted
        } else {
            Isolation::ReadCommitted
        }
    }

    /// Records in the range (offsets; gaps included).
    pub fn offsets(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| (r.end - r.start).max(0) as u64)
            .sum()
    }
}

/// Full name of the export's Avro record.
pub const AVRO_RECORD: &str = "dev.l2f.replay.ReplayRecord";

/// The Avro schema of an export record, as JSON text: the position and raw parts of the
/// Kafka record, and the decoded event as a union of every event's current schema
/// (`null` first, then the events in the catalog's order).
pub fn avro_schema_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let catalog = Catalog::embedded();
        let mut seen = HashSet::new();
        let mut events = vec![serde_json::Value::from("null")];
        for name in EVENT_NAMES {
            if let Some(s) = catalog.get(name) {
                events.push(s.to_full_json_sharing(&mut seen));
            }
        }
        let opt = |t: serde_json::Value| serde_json::json!(["null", t]);
        serde_json::json!({
            "type": "record",
            "name": AVRO_RECORD,
            "doc": "One Kafka record of an l2f replay export.",
            "fields": [
                {"name": "topic", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "offset", "type": "long"},
                {"name": "timestamp", "type": opt(serde_json::json!({"type": "long", "logicalType": "timestamp-millis"})), "default": null},
                {"name": "key", "type": opt("bytes".into()), "default": null},
                {"name": "headers", "type": {"type": "array", "items": {
                    "type": "record", "name": "dev.l2f.replay.Header",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "value", "type": opt("bytes".into()), "default": null}
                    ]}}},
                {"name": "value", "type": opt("bytes".into()), "default": null,
                 "doc": "The record's value exactly as stored in Kafka (what the digest hashes)."},
                {"name": "event_type", "type": opt("string".into()), "default": null},
                {"name": "event", "type": events, "default": null,
                 "doc": "The decoded event, re-encoded with the current schema; null when the value did not decode."},
                {"name": "decode_error", "type": opt("string".into()), "default": null}
            ]
        })
        .to_string()
    })
}

/// The export schema, parsed once.
pub fn avro_schema() -> &'static serde_avro_fast::Schema {
    static SCHEMA: OnceLock<serde_avro_fast::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // Built from the embedded, tested schemas; a failure is a build defect.
        avro_schema_json()
            .parse()
            .unwrap_or_else(|e| panic!("export schema rejected: {e}"))
    })
}

/// Where an export goes.
pub enum ExportWriter {
    /// JSON lines.
    Json {
        /// The file (or standard output).
        out: ChunkWriter,
        /// For error messages.
        path: String,
    },
    /// Avro object container file.
    Avro {
        /// The container writer.
        out: Box<Writer<'static, 'static, ChunkWriter>>,
        /// For error messages.
        path: String,
    },
}

#[derive(Serialize, Deserialize)]
struct AvroMeta {
    #[serde(rename = "l2f.replay")]
    replay: String,
}

impl ExportWriter {
    /// Opens `path` (`-` or `None`: standard output) and writes the header.
    pub fn create(path: Option<&Path>, format: Format, header: &ExportHeader) -> Result<Self> {
        let (sink, name): (Box<dyn Write + Send>, String) = match path {
            None => (Box::new(std::io::stdout()), "-".into()),
            Some(p) if p == Path::new("-") => (Box::new(std::io::stdout()), "-".into()),
            Some(p) => (
                Box::new(File::create(p).map_err(|e| AuditError::io(p.display().to_string(), e))?),
                p.display().to_string(),
            ),
        };
        let buffered = ChunkWriter::new(sink);
        match format {
            Format::Json => {
                let mut w = ExportWriter::Json {
                    out: buffered,
                    path: name,
                };
                let line = serde_json::json!({ "l2f.replay": header });
                w.line(line.to_string().as_bytes())?;
                Ok(w)
            }
            Format::Avro => {
                let meta = AvroMeta {
                    replay: serde_json::to_string(header).unwrap_or_default(),
                };
                let out = WriterBuilder::with_owned_config(SerializerConfig::new(avro_schema()))
                    .build_with_user_metadata(buffered, meta)
                    .map_err(|e| AuditError::Avro(format!("{name}: {e}")))?;
                Ok(ExportWriter::Avro {
                    out: Box::new(out),
                    path: name,
                })
            }
        }
    }

    fn line(&mut self, bytes: &[u8]) -> Result<()> {
        if let ExportWriter::Json { out, path } = self {
            out.write_all(bytes)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| AuditError::io(path.clone(), e))?;
        }
        Ok(())
    }

    /// Writes one rendered record (a JSON line without newline, or an Avro datum).
    pub fn record(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            ExportWriter::Json { .. } => self.line(bytes),
            ExportWriter::Avro { out, path } => out
                .push_serialized(bytes, 1)
                .map_err(|e| AuditError::Avro(format!("{path}: {e}"))),
        }
    }

    /// Writes `count` rendered records at once: JSON lines each ending in a newline, or
    /// Avro datums back to back.
    pub fn records(&mut self, bytes: &[u8], count: u64) -> Result<()> {
        match self {
            ExportWriter::Json { out, path } => out
                .write_all(bytes)
                .map_err(|e| AuditError::io(path.clone(), e)),
            ExportWriter::Avro { out, path } => out
                .push_serialized(bytes, count)
                .map_err(|e| AuditError::Avro(format!("{path}: {e}"))),
        }
    }

    /// Writes the summary line (JSON lines) and flushes.
    pub fn finish(self, summary: &Summary) -> Result<()> {
        match self {
            ExportWriter::Json { mut out, path } => {
                let line = serde_json::json!({ "l2f.summary": summary });
                out.write_all(line.to_string().as_bytes())
                    .and_then(|_| out.write_all(b"\n"))
                    .and_then(|_| out.finish())
                    .map_err(|e| AuditError::io(path, e))
            }
            ExportWriter::Avro { out, path } => {
                let mut inner = out
                    .into_inner()
                    .map_err(|e| AuditError::Avro(format!("{path}: {e}")))?;
                inner.finish().map_err(|e| AuditError::io(path, e))
            }
        }
    }
}

/// Size of the chunks handed to the writing thread.
const CHUNK: usize = 1 << 20;
/// Chunks queued for the writing thread at most (so at most ~5 MB in flight).
const CHUNKS_QUEUED: usize = 4;

/// A buffered writer whose `write` system calls run on a thread of their own, so copying
/// the export into the kernel overlaps with reading and rendering the next records.
/// Memory: the chunk being filled plus at most [`CHUNKS_QUEUED`] full ones.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl ChunkWriter {
    /// Starts the writing thread over `sink`.
    pub fn new(mut sink: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(CHUNKS_QUEUED);
        let (give_back, spare) = sync_channel::<Vec<u8>>(CHUNKS_QUEUED + 1);
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            for mut chunk in rx {
                sink.write_all(&chunk)?;
                chunk.clear();
                let _ = give_back.try_send(chunk);
            }
            sink.flush()
        });
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spare,
            thread: Some(thread),
        }
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread stopped: it failed; `finish` reports why.
            self.finish()
                .and(Err(std::io::Error::other("export writer stopped")))
        }
    }

    /// Writes what is buffered, waits for the thread, and reports its first error.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let full = std::mem::take(&mut self.buf);
            if let Some(tx) = &self.tx {
                let _ = tx.send(full);
            }
        }
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("export writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// An export read back: its header, then each record in the canonical JSON form that
/// [`canonical_json`] gives for a freshly rendered record, so the two compare byte for byte.
pub struct ExportReader {
    /// The header.
    pub header: ExportHeader,
    /// The format.
    pub format: Format,
    /// The summary line of a JSON-lines export, once read past the last record.
    pub summary: Option<Summary>,
    inner: Inner,
    path: String,
}

enum Inner {
    Json(std::io::Lines<BufReader<File>>),
    Avro(Box<Reader<serde_avro_fast::de::read::ReaderRead<BufReader<File>>>>),
}

struct ToJson;

impl<'de> serde::de::DeserializeSeed<'de> for ToJson {
    type Value = Vec<u8>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        serde_transcode::transcode(d, &mut ser).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// The form in which a rendered record is compared with an export's: the JSON line itself,
/// or an Avro datum transcoded to JSON through the export schema.
pub fn canonical_json(format: Format, rendered: &[u8]) -> Result<Vec<u8>> {
    match format {
        Format::Json => Ok(rendered.to_vec()),
        Format::Avro => {
            use serde::de::DeserializeSeed;
            let mut state =
                serde_avro_fast::de::DeserializerState::from_slice(rendered, avro_schema());
            ToJson
                .deserialize(state.deserializer())
                .map_err(|e| AuditError::Avro(e.to_string()))
        }
    }
}

impl ExportReader {
    /// Opens an export, telling the format by its first bytes.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let not = |reason: String| AuditError::NotAnExport {
            path: name.clone(),
            reason,
        };
        let mut file = BufReader::new(File::open(path).map_err(|e| AuditError::io(&name, e))?);
        let magic = file.fill_buf().map_err(|e| AuditError::io(&name, e))?;
        if magic.starts_with(b"Obj\x01") {
            let (reader, meta) = Reader::new_and_metadata::<AvroMeta>(
                serde_avro_fast::de::read::ReaderRead::new(file),
            )
            .map_err(|e| not(e.to_string()))?;
            let header: ExportHeader = serde_json::from_str(&meta.replay)
                .map_err(|e| not(format!("metadata l2f.replay: {e}")))?;
            return Ok(ExportReader {
                header,
                format: Format::Avro,
                summary: None,
                inner: Inner::Avro(Box::new(reader)),
                path: name,
            });
        }
        let mut lines = file.lines();
        let first = lines
            .next()
            .transpose()
            .map_err(|e| AuditError::io(&name, e))?
            .ok_or_else(|| not("empty file".into()))?;
        #[derive(Deserialize)]
        struct First {
            #[serde(rename = "l2f.replay")]
            replay: ExportHeader,
        }
        let header = serde_json::from_str::<First>(&first)
            .map_err(|e| not(format!("first line is not {{\"l2f.replay\": ...}}: {e}")))?
            .replay;
        Ok(ExportReader {
            header,
            format: Format::Json,
            summary: None,
            inner: Inner::Json(lines),
            path: name,
        })
    }

    /// The next record in canonical JSON form; `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        match &mut self.inner {
            Inner::Json(lines) => loop {
                let Some(line) = lines.next() else {
                    return Ok(None);
                };
                let line = line.map_err(|e| AuditError::io(&self.path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                if line.starts_with("{\"l2f.summary\":") {
                    #[derive(Deserialize)]
                    struct Last {
                        #[serde(rename = "l2f.summary")]
                        summary: Summary,
                    }
                    if let Ok(l) = serde_json::from_str::<Last>(&line) {
                        self.summary = Some(l.summary);
                        continue;
                    }
                }
                return Ok(Some(line.into_bytes()));
            },
            Inner::Avro(r) => {
                r.deserialize_seed_next(ToJson)
                    .map_err(|e| AuditError::NotAnExport {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}
