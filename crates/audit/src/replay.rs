//! The replay engine: plan a range (resolve its bounds into offsets), then stream it through
//! the renderer and a caller's sink, one record at a time, building the summary as it goes.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use l2f_bus::reader::{reader_consumer, Isolation, RangeReader, Span};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

use crate::digest::{self, RecordBytes};
use crate::error::Result;
use crate::export::{ExportHeader, ExportWriter, Format, EXPORT_VERSION};
use crate::range::{resolve, Bound, Filters, PartitionRange};
use crate::render::{Renderer, View};
use crate::summary::{Summary, Tracker};

/// How often the progress callback is called (records).
pub const PROGRESS_EVERY: u64 = 4096;

/// Resolves the bounds on every partition of `topics` into the header of an export.
/// Time bounds also become record-timestamp filters (see [`crate::range`]).
pub fn plan(
    client: &ClientConfig,
    topics: &[String],
    from: &Bound,
    to: &Bound,
    mut filters: Filters,
    isolation: Isolation,
    timeout: Duration,
) -> Result<ExportHeader> {
    filters.time_from_ms = from.time_ms();
    filters.time_to_ms = to.time_ms();
    let consumer = reader_consumer(client, isolation)?;
    let ranges = resolve(&consumer, topics, from, to, timeout)?;
    Ok(ExportHeader {
        version: EXPORT_VERSION,
        tool: format!("l2f {}", env!("CARGO_PKG_VERSION")),
        created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        from: from.to_string(),
        to: to.to_string(),
        isolation: isolation.as_librdkafka().into(),
        filters,
        ranges,
        digest_algorithm: digest::ALGORITHM.into(),
    })
}

/// Where a rendered record came from.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record timestamp (ms).
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<&'a [u8]>,
}

fn headers_of<M: Message>(m: &M) -> impl ExactSizeIterator<Item = (&str, Option<&[u8]>)> + '_ {
    let hs = m.headers();
    let n = hs.map_or(0, |h| h.count());
    (0..n).map(move |i| match hs {
        Some(h) => {
            let x = h.get(i);
            (x.key, x.value)
        }
        None => ("", None),
    })
}

/// Streams `ranges` through `renderer`, calling `each` for every record the filters keep,
/// and `progress` with the number of records read every [`PROGRESS_EVERY`] records.
/// Holds one record at a time (plus the client's bounded prefetch).
#[allow(clippy::too_many_arguments)]
pub fn scan(
    client: &ClientConfig,
    ranges: &[PartitionRange],
    filters: &Filters,
    isolation: Isolation,
    renderer: &mut Renderer,
    idle_timeout: Duration,
    progress: &mut dyn FnMut(u64),
    mut each: impl FnMut(Position<'_>, &View<'_>) -> Result<()>,
) -> Result<Summary> {
    let started = Instant::now();
    let spans: Vec<Span> = ranges.iter().map(PartitionRange::span).collect();
    let mut reader = RangeReader::new(client, &spans, isolation, idle_timeout)?;
    let mut tracker = Tracker::new(ranges);
    let mut n: u64 = 0;
    while let Some(m) = reader.next_record() {
        let m = m?;
        tracker.delivered(m.topic(), m.partition(), m.offset());
        match renderer.render(&m, filters) {
            None => tracker.skipped(),
            Some(view) => {
                let pos = Position {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key(),
                };
                tracker.exported(
                    view.event_type,
                    view.envelope.is_some(),
                    RecordBytes {
                        topic: pos.topic,
                        partition: pos.partition,
                        offset: pos.offset,
                        timestamp_ms: pos.timestamp_ms,
                        key: pos.key,
                        value: m.payload(),
                        headers: headers_of(&m),
                    },
                );
                each(pos, &view)?;
            }
        }
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            progress(n);
        }
    }
    progress(n);
    Ok(tracker.finish(started.elapsed().as_millis() as u64))
}

/// Replays the range a header names into an export file (`None`: standard output).
pub fn export(
    client: &ClientConfig,
    header: &ExportHeader,
    format: Format,
    output: Option<&Path>,
    idle_timeout: Duration,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let mut out = ExportWriter::create(output, format, header)?;
    let mut renderer = Renderer::new(format);
    let summary = scan(
        client,
        &header.ranges,
        &header.filters,
        header.isolation(),
        &mut renderer,
        idle_timeout,
        progress,
        |_, view| out.record(view.bytes),
    )?;
    out.finish(&summary)?;
    Ok(summary)
}
