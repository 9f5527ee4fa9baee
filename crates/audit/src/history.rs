//! `l2f history KEY`: one customer's, lead's or subscription's story across topics.
//!
//! Which events: those whose record key is KEY (or whose correlation id is KEY, when it is
//! a UUID) and then, unless `key_only`, every event of the same business flows (sharing a
//! correlation id with one of them), because one flow's events are keyed by different
//! aggregates (lead id, account id, subscription id). Two passes over the topics; only the
//! events of the story are held.
//!
//! Order: by the envelope's `occurred_at`, then topic, partition and offset. Each event
//! names its cause (`causation_id` → the `event_id` of an event shown) and its depth in
//! the causation tree (0 for a flow's first event, or for one whose cause is not shown).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use l2f_bus::reader::{reader_consumer, Isolation};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;
use crate::export::Format;
use crate::range::{resolve, Bound, Filters};
use crate::render::Renderer;
use crate::replay::scan;

/// One event of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record key.
    pub key: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Envelope event id.
    pub event_id: Option<Uuid>,
    /// Envelope occurred-at.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Envelope source system.
    pub source: Option<String>,
    /// Envelope correlation id.
    pub correlation_id: Option<Uuid>,
    /// Envelope causation id.
    pub causation_id: Option<Uuid>,
    /// Whether the cause is among the events shown.
    pub cause_shown: bool,
    /// The cause's event type, when shown.
    pub caused_by: Option<String>,
    /// Depth in the causation tree.
    pub depth: usize,
    /// The decoded event.
    pub event: Value,
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Record key, or a correlation id.
    pub key: String,
    /// Topics to search.
    pub topics: Vec<String>,
    /// Only events keyed by KEY (or of correlation KEY), not their whole flows.
    pub key_only: bool,
    /// Isolation level.
    pub isolation: Isolation,
}

fn event_of(line: &[u8]) -> Option<HistoryEvent> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let env = &v["event"]["envelope"];
    let uuid = |x: &Value| x.as_str().and_then(|s| s.parse::<Uuid>().ok());
    Some(HistoryEvent {
        topic: v["topic"].as_str()?.to_string(),
        partition: v["partition"].as_i64()? as i32,
        offset: v["offset"].as_i64()?,
        key: v["key"].as_str().map(str::to_string),
        event_type: v["event_type"].as_str().map(str::to_string),
        event_id: uuid(&env["event_id"]),
        occurred_at: env["occurred_at"]
            .as_i64()
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        source: env["source"].as_str().map(str::to_string),
        correlation_id: uuid(&env["correlation_id"]),
        causation_id: uuid(&env["causation_id"]),
        cause_shown: false,
        caused_by: None,
        depth: 0,
        event: v["event"].clone(),
    })
}

/// The story of `query.key`, in order, with causation links.
pub fn history(
    client: &ClientConfig,
    query: &HistoryQuery,
    timeout: Duration,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<HistoryEvent>> {
    let consumer = reader_consumer(client, query.isolation)?;
    let ranges = resolve(
        &consumer,
        &query.topics,
        &Bound::Beginning,
        &Bound::End,
        timeout,
    )?;
    drop(consumer);
    let as_correlation = query.key.parse::<Uuid>().ok();
    let mut renderer = Renderer::new(Format::Json);
    let mut found: Vec<HistoryEvent> = Vec::new();
    let mut seen: HashSet<(String, i32, i64)> = HashSet::new();
    let mut flows: BTreeSet<Uuid> = as_correlation.into_iter().collect();
    let key = query.key.as_bytes();
    scan(
        client,
        &ranges,
        &Filters::default(),
        query.isolation,
        &mut renderer,
        timeout,
        progress,
        |pos, view| {
            let by_key = pos.key == Some(key);
            let by_flow = as_correlation.is_some()
                && view.envelope.map(|e| e.correlation_id) == as_correlation;
            if by_key || by_flow {
                if let Some(e) = event_of(view.bytes) {
                    if let Some(c) = e.correlation_id {
                        flows.insert(c);
                    }
                    seen.insert((e.topic.clone(), e.partition, e.offset));
                    found.push(e);
                }
            }
            Ok(())
        },
    )?;
    let extra: Vec<Uuid> = flows
        .iter()
        .copied()
        .filter(|f| Some(*f) != as_correlation)
        .collect();
    if !query.key_only && !extra.is_empty() {
        let filters = Filters {
            correlation_ids: extra,
            ..Filters::default()
        };
        scan(
            client,
            &ranges,
            &filters,
            query.isolation,
            &mut renderer,
            timeout,
            progress,
            |pos, view| {
                if !seen.contains(&(pos.topic.to_string(), pos.partition, pos.offset)) {
                    if let Some(e) = event_of(view.bytes) {
                        found.push(e);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(link(found))
}

/// Orders events and fills in their causation links and depths.
pub fn link(mut events: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
    events.sort_by(|a, b| {
        (a.occurred_at, &a.topic, a.partition, a.offset).cmp(&(
            b.occurred_at,
            &b.topic,
            b.partition,
            b.offset,
        ))
    });
    let by_id: HashMap<Uuid, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.event_id.map(|id| (id, i)))
        .collect();
    let parent: Vec<Option<usize>> = events
        .iter()
        .map(|e| e.causation_id.and_then(|c| by_id.get(&c).copied()))
        .collect();
    let depth_of = |mut i: usize| {
        let mut d = 0;
        let mut guard = HashSet::new();
        while let Some(p) = parent[i] {
            if !guard.insert(p) {
                break; // a causation cycle: stop rather than loop
            }
            d += 1;
            i = p;
        }
        d
    };
    let depths: Vec<usize> = (0..events.len()).map(depth_of).collect();
    let types: Vec<Option<String>> = events.iter().map(|e| e.event_type.clone()).collect();
    for (i, e) in events.iter_mut().enumerate() {
        e.depth = depths[i];
        e.cause_shown = parent[i].is_some();
        e.caused_by = parent[i].and_then(|p| types[p].clone());
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u128, cause: Option<u128>, at: i64) -> HistoryEvent {
        HistoryEvent {
            topic: "t".into(),
            partition: 0,
            offset: n as i64,
            key: None,
            event_type: Some(format!("E{n}")),
            event_id: Some(Uuid::from_u128(n)),
            occurred_at: DateTime::<Utc>::from_timestamp_millis(at),
            source: None,
            correlation_id: None,
            causation_id: cause.map(Uuid::from_u128),
            cause_shown: false,
            caused_by: None,
            depth: 0,
            event: Value::Null,
        }
    }

    #[test]
    fn events_are_ordered_by_occurrence_and_linked_to_their_causes() {
        let out = link(vec![
            ev(3, Some(2), 30),
            ev(1, None, 10),
            ev(2, Some(1), 20),
            ev(4, Some(9), 40),
        ]);
        let ids: Vec<i64> = out.iter().map(|e| e.offset).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        assert_eq!(
            out.iter().map(|e| e.depth).collect::<Vec<_>>(),
            vec![0, 1, 2, 0]
        );
        assert_eq!(out[2].caused_by.as_deref(), Some("E2"));
        assert!(
            !out[3].cause_shown,
            "a cause outside the story is not invented"
        );
    }

    #[test]
    fn a_causation_cycle_does_not_hang() {
        let out = link(vec![ev(1, Some(2), 10), ev(2, Some(1), 20)]);
        assert_eq!(out.len(), 2);
    }
}
