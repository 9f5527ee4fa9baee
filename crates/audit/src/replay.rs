//! The replay engine: plan a range (resolve its bounds into offsets), then stream it through
//! the renderer and a caller's sink, one record at a time, building the summary as it goes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use l2f_bus::reader::{reader_consumer, Isolation, RangeReader, Span};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

use crate::digest::{self, RecordBytes};
use crate::error::{AuditError, Result};
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
    let mut total = 0;
    let mut tick = |n: u64| {
        total += n;
        progress(total)
    };
    let tracker = read_ranges(
        client,
        ranges,
        filters,
        isolation,
        renderer,
        idle_timeout,
        &mut tick,
        &mut each,
    )?;
    Ok(tracker.finish(started.elapsed().as_millis() as u64))
}

/// The loop of one reader: its own consumer over `ranges`, its own tracker.
#[allow(clippy::too_many_arguments)]
fn read_ranges(
    client: &ClientConfig,
    ranges: &[PartitionRange],
    filters: &Filters,
    isolation: Isolation,
    renderer: &mut Renderer,
    idle_timeout: Duration,
    tick: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(Position<'_>, &View<'_>) -> Result<()>,
) -> Result<Tracker> {
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
            tick(PROGRESS_EVERY);
        }
    }
    tick(n % PROGRESS_EVERY);
    Ok(tracker)
}

/// How many readers an export uses by default: one per core, at most 4.
pub fn default_readers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Deals partitions to `n` readers, largest first to the least loaded, so each reads about
/// as many offsets.
fn deal(ranges: &[PartitionRange], n: usize) -> Vec<Vec<PartitionRange>> {
    let mut sorted: Vec<&PartitionRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.end - r.start));
    let mut hands: Vec<(i64, Vec<PartitionRange>)> = vec![(0, Vec::new()); n.max(1)];
    for r in sorted {
        if let Some(h) = hands.iter_mut().min_by_key(|h| h.0) {
            h.0 += r.end - r.start;
            h.1.push(r.clone());
        }
    }
    hands
        .into_iter()
        .map(|h| h.1)
        .filter(|h| !h.is_empty())
        .collect()
}

/// Bytes a reader renders before handing them to the shared writer.
const HAND_OVER: usize = 256 * 1024;

/// Replays the range a header names into an export file (`None`: standard output), with
/// `readers` readers (threads with a consumer each) over disjoint sets of partitions. Each
/// partition's records stay in offset order in the file; partitions interleave in blocks.
/// The prefetch cap is shared out among the readers, so memory does not grow with them.
#[allow(clippy::too_many_arguments)]
pub fn export(
    client: &ClientConfig,
    header: &ExportHeader,
    format: Format,
    output: Option<&Path>,
    idle_timeout: Duration,
    readers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let started = Instant::now();
    let out = Mutex::new(ExportWriter::create(output, format, header)?);
    let hands = deal(&header.ranges, readers);
    let mut client = client.clone();
    let cap: u64 = client
        .get("queued.max.messages.kbytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(32768);
    client.set(
        "queued.max.messages.kbytes",
        (cap / hands.len().max(1) as u64).max(1024).to_string(),
    );
    let done = AtomicU64::new(0);
    let results: Vec<Result<Tracker>> = std::thread::scope(|scope| {
        let workers: Vec<_> = hands
            .iter()
            .map(|ranges| {
                let (client, out, done) = (&client, &out, &done);
                scope.spawn(move || -> Result<Tracker> {
                    let mut renderer = Renderer::new(format);
                    let mut buf: Vec<u8> = Vec::with_capacity(HAND_OVER + 4096);
                    let mut count: u64 = 0;
                    let flush = |buf: &mut Vec<u8>, count: &mut u64| -> Result<()> {
                        if *count > 0 {
                            let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
                            w.records(buf, *count)?;
                        }
                        buf.clear();
                        *count = 0;
                        Ok(())
                    };
                    let mut each = |_: Position<'_>, view: &View<'_>| -> Result<()> {
                        buf.extend_from_slice(view.bytes);
                        if format == Format::Json {
                            buf.push(b'\n');
                        }
                        count += 1;
                        if buf.len() >= HAND_OVER {
                            flush(&mut buf, &mut count)?;
                        }
                        Ok(())
                    };
                    let mut tick = |n: u64| {
                        done.fetch_add(n, Ordering::Relaxed);
                    };
                    let tracker = read_ranges(
                        client,
                        ranges,
                        &header.filters,
                        header.isolation(),
                        &mut renderer,
                        idle_timeout,
                        &mut tick,
                        &mut each,
                    )?;
                    flush(&mut buf, &mut count)?;
                    Ok(tracker)
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            progress(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
        progress(done.load(Ordering::Relaxed));
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(AuditError::Range("a reader thread panicked".into())))
            })
            .collect()
    });
    let mut merged = Tracker::new(&[]);
    for r in results {
        merged.absorb(r?);
    }
    let summary = merged.finish(started.elapsed().as_millis() as u64);
    out.into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .finish(&summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(partition: i32, n: i64) -> PartitionRange {
        PartitionRange {
            topic: "t".into(),
            partition,
            start: 0,
            end: n,
            expired_from: None,
        }
    }

    #[test]
    fn partitions_are_dealt_so_readers_read_about_as_much() {
        let hands = deal(&[r(0, 10), r(1, 100), r(2, 50), r(3, 45), r(4, 0)], 2);
        let load: Vec<i64> = hands
            .iter()
            .map(|h| h.iter().map(|r| r.end - r.start).sum())
            .collect();
        assert_eq!(load, vec![100, 105]);
        assert_eq!(
            hands.iter().map(Vec::len).sum::<usize>(),
            5,
            "every partition dealt"
        );
        assert_eq!(deal(&[r(0, 5)], 4).len(), 1, "no reader without partitions");
    }
}
