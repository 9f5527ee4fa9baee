//! The account → communication profile table (rule 6) the mail connector decides muting by.
//!
//! The profile arrives on events keyed differently from the emails it mutes
//! (`SubscriptionCreated` by subscription, `LicenseHeld` and `CommunicationProfileChanged` by
//! account, `RenewalNoticeDue` by subscription), so no partition sees them all: the table is
//! kept in a **compacted topic keyed by account** (value `{"profile","at_ms"}`), written by
//! whichever instance handles a profile-carrying event (before its offset is committed), and
//! read in full by every instance — loaded before the first email is decided, then followed.
//! The newest event time wins, so the topics' interleaving does not matter and a replayed old
//! event changes nothing. Compaction keeps one record per account forever, so the table
//! survives the input topics' retention and costs one small record per account.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use l2f_bus::reader::{reader_consumer, Isolation};
use l2f_bus::{BusError, CancellationToken, OutRecord};
use l2f_contracts::events::CommunicationProfile;
use rdkafka::consumer::Consumer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// One account's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The profile.
    pub profile: CommunicationProfile,
    /// When the event that set it happened (ms since the epoch).
    pub at_ms: i64,
}

/// The table, shared by the sink and its follower.
#[derive(Debug, Clone)]
pub struct ProfileTable {
    topic: String,
    rows: Arc<RwLock<HashMap<String, Row>>>,
    ready: Arc<AtomicBool>,
}

impl ProfileTable {
    /// An empty table over `topic`, not yet loaded.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            rows: Arc::default(),
            ready: Arc::default(),
        }
    }

    /// The account's profile, if any event set it.
    pub fn get(&self, account: &str) -> Option<CommunicationProfile> {
        self.rows
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .map(|r| r.profile)
    }

    /// Whether `row` is newer than what the table holds for `account` (or differs at the
    /// same instant).
    pub fn is_news(&self, account: &str, row: Row) -> bool {
        let rows = self.rows.read().unwrap_or_else(|p| p.into_inner());
        rows.get(account)
            .is_none_or(|old| row.at_ms > old.at_ms || (row.at_ms == old.at_ms && row != *old))
    }

    /// Takes `row` for `account` unless the table holds a newer one.
    pub fn apply(&self, account: &str, row: Row) {
        let mut rows = self.rows.write().unwrap_or_else(|p| p.into_inner());
        let keep_old = rows.get(account).is_some_and(|old| old.at_ms > row.at_ms);
        if !keep_old {
            rows.insert(account.to_string(), row);
        }
    }

    /// The changelog record of `row`.
    pub fn record(&self, account: &str, row: Row) -> OutRecord {
        OutRecord::new(
            self.topic.clone(),
            account.as_bytes().to_vec(),
            serde_json::to_vec(&row).unwrap_or_default(),
        )
    }

    /// Marks the table loaded (a test, or a deployment without a changelog to read).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the changelog has been read up to where it ended at start.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Waits up to `limit` for the table to be loaded.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Reads the whole changelog, then follows it until `shutdown`, on a blocking thread;
    /// the table is [`ready`](Self::ready) once every partition is read up to its end at start.
    pub fn follow(
        &self,
        kafka: &ClientConfig,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<Result<(), BusError>> {
        let (table, kafka) = (self.clone(), kafka.clone());
        tokio::task::spawn_blocking(move || table.run(&kafka, &shutdown))
    }

    fn run(&self, kafka: &ClientConfig, shutdown: &CancellationToken) -> Result<(), BusError> {
        let timeout = Duration::from_secs(10);
        let consumer = reader_consumer(kafka, Isolation::ReadCommitted)?;
        let md = consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| BusError::kafka(format!("metadata of {}", self.topic), e))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(BusError::key(
                &self.topic,
                "the profiles topic has no partitions (does it exist?)",
            ));
        }
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let (_, high) =
                l2f_bus::admin::partition_watermarks(&consumer, &self.topic, p, timeout)?;
            ends.insert(p, high);
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                .map_err(|e| BusError::kafka("assign", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| BusError::kafka(format!("assign {}", self.topic), e))?;
        while !shutdown.is_cancelled() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let (Some(key), Some(value)) = (m.key(), m.payload()) else {
                        continue;
                    };
                    match serde_json::from_slice::<Row>(value) {
                        Ok(row) => self.apply(&String::from_utf8_lossy(key), row),
                        Err(e) => {
                            tracing::warn!(topic = %self.topic, offset = m.offset(), error = %e, "unreadable profile row skipped")
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "profile table read")
                }
                None => {}
            }
            if !self.ready() {
                let caught_up = consumer.position().is_ok_and(|pos| {
                    partitions.iter().all(|p| {
                        let end = ends[p];
                        end == 0
                            || pos
                                .find_partition(&self.topic, *p)
                                .and_then(|e| e.offset().to_raw())
                                .is_some_and(|o| o >= end)
                    })
                });
                if caught_up {
                    tracing::info!(topic = %self.topic, accounts = self.rows.read().map(|r| r.len()).unwrap_or(0), "profile table loaded");
                    self.set_ready();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_event_wins_whatever_order_the_topics_interleave_in() {
        let t = ProfileTable::new("mail-profiles");
        let silent = Row {
            profile: CommunicationProfile::Silent,
            at_ms: 20,
        };
        let default = Row {
            profile: CommunicationProfile::Default,
            at_ms: 10,
        };
        assert!(t.is_news("a", silent));
        t.apply("a", silent);
        assert!(!t.is_news("a", default));
        t.apply("a", default);
        assert_eq!(t.get("a"), Some(CommunicationProfile::Silent));
        assert!(!t.is_news("a", silent), "a replay is not news");
        let lifted = Row {
            profile: CommunicationProfile::Default,
            at_ms: 30,
        };
        assert!(t.is_news("a", lifted));
        t.apply("a", lifted);
        assert_eq!(t.get("a"), Some(CommunicationProfile::Default));
        assert_eq!(t.get("b"), None);
    }
}
