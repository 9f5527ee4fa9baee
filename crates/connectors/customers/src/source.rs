//! The source: the customers app's outbox feed → events, exactly once.
//!
//! Each poll reads one page after the cursor (`{epoch, seq}`), maps every change
//! ([`crate::mapping::map`]), and hands the events — and a dead letter for each change that
//! cannot become one — to the source loop, which commits them with the new cursor in one
//! transaction. The hub's own writes (origin `hub`) are dropped. A feed whose epoch changed
//! was reset: it is read again from its start under the new epoch (whose event ids differ, so
//! nothing from the old feed is mistaken for the new one).

use std::sync::Arc;

use l2f_bus::source::{Polled, Source};
use l2f_bus::{HandlerError, OutRecord};
use l2f_connector_kit::record::feed_letter;
use l2f_contracts::Codec;
use l2f_rules::BillableTable;
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::client::CustomersClient;
use crate::config::Topics;
use crate::mapping::{map, Feed, Mapped};
use crate::verdict::verdict;

/// The name the feed's dead letters give as their source.
pub const FEED: &str = "customers-outbox";

/// The outbox feed as a [`Source`].
pub struct CustomersSource {
    client: Arc<CustomersClient>,
    codec: Arc<Codec>,
    name: String,
    topics: Topics,
    dead_letter_topic: String,
    page_size: usize,
    /// Events the app's feed held past the last page read (its `latest`), if it said.
    behind: Option<u64>,
    billable: BillableTable,
}

impl CustomersSource {
    /// A source named `name` reading through `client`.
    pub fn new(
        client: Arc<CustomersClient>,
        codec: Arc<Codec>,
        name: &str,
        topics: Topics,
        dead_letter_topic: &str,
        page_size: usize,
    ) -> Self {
        CustomersSource {
            behind: None,
            client,
            codec,
            name: name.to_string(),
            topics,
            dead_letter_topic: dead_letter_topic.to_string(),
            page_size,
            billable: l2f_rules::Rules::embedded().billable,
        }
    }

    /// Counts usage reports by the hub's rule-9 table (the rules the hub was started with)
    /// rather than the embedded one.
    pub fn with_rules(mut self, rules: &l2f_rules::Rules) -> Self {
        self.billable = rules.billable.clone();
        self
    }

    fn letter(&self, seq: u64, key: &str, raw: &Value, why: &str) -> OutRecord {
        feed_letter(
            &self.dead_letter_topic,
            &self.name,
            FEED,
            seq as i64,
            key,
            raw,
            why,
        )
    }
}

impl Source for CustomersSource {
    async fn poll(&mut self, cursor: Option<&Value>) -> Result<Polled, HandlerError> {
        let epoch = cursor.and_then(|c| c["epoch"].as_str()).map(str::to_string);
        let after = cursor.and_then(|c| c["seq"].as_u64()).unwrap_or(0);
        let mut page = self
            .client
            .events(after, self.page_size)
            .await
            .map_err(|e| verdict(&e))?;
        if epoch.as_deref().is_some_and(|e| e != page.epoch) {
            warn!(source = %self.name, old = ?epoch, new = %page.epoch, "the customers app's feed was reset (new epoch): reading it again from its start");
            page = self
                .client
                .events(0, self.page_size)
                .await
                .map_err(|e| verdict(&e))?;
        }
        let feed = Feed {
            source: &self.name,
            epoch: &page.epoch,
            billable: &self.billable,
        };
        let mut records = Vec::with_capacity(page.events.len());
        for ev in &page.events {
            let raw = || json!({"seq": ev.seq, "type": ev.kind, "occurred_at": ev.occurred_at, "origin": ev.origin, "data": ev.data});
            let key = ev.data["id"]
                .as_str()
                .or_else(|| ev.data["account_id"].as_str())
                .or_else(|| ev.data["account"]["id"].as_str())
                .unwrap_or("")
                .to_string();
            match map(ev, &feed) {
                Mapped::Event(e) => {
                    let topic = self.topics.named(e.topic());
                    match e.frame_to(&self.codec, &topic) {
                        Ok(f) => records.push(l2f_connector_kit::record::out_record(f)),
                        Err(why) => records.push(self.letter(
                            ev.seq,
                            &key,
                            &raw(),
                            &format!("{} breaks its contract: {why}", e.name()),
                        )),
                    }
                }
                Mapped::Rejected(why) => records.push(self.letter(ev.seq, &key, &raw(), &why)),
                Mapped::Echo => {
                    debug!(seq = ev.seq, kind = %ev.kind, "the hub's own write: dropped")
                }
                Mapped::Ignored => {}
            }
        }
        let more = page.events.len() >= self.page_size;
        self.behind = page.latest.map(|l| l.saturating_sub(page.next_after));
        Ok(Polled {
            records,
            cursor: json!({"epoch": page.epoch, "seq": page.next_after}),
            more,
        })
    }

    fn behind(&self) -> Option<u64> {
        self.behind
    }
}
