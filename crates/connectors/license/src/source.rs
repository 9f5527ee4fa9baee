//! The source: the license service's feed (`LicenseIssued`, `LicenseHeld`) → the `licenses`
//! topic, exactly once.
//!
//! Each poll reads one page after the cursor (`{epoch, seq}`), maps every change
//! ([`crate::mapping::map`]), and hands the events — and a dead letter for each change that
//! cannot become one — to the source loop, which commits them with the new cursor in one
//! transaction. Every change of this feed is the service's own decision (a license issued or
//! held), never an echo of a hub write, so none is dropped. A feed whose epoch changed was
//! reset: it is read again from its start under the new epoch.

use std::sync::Arc;

use l2f_bus::source::{Polled, Source};
use l2f_bus::{HandlerError, OutRecord};
use l2f_connector_kit::record::{feed_letter, out_record};
use l2f_contracts::Codec;
use serde_json::{json, Value};
use tracing::warn;

use crate::client::LicenseClient;
use crate::mapping::{map, Feed, Mapped};
use crate::verdict::verdict;

/// The name the feed's dead letters give as their source.
pub const FEED: &str = "license-events";

/// The service's feed as a [`Source`].
pub struct LicenseSource {
    client: Arc<LicenseClient>,
    codec: Arc<Codec>,
    name: String,
    topic: String,
    dead_letter_topic: String,
    page_size: usize,
    /// Events the app's feed held past the last page read (its `latest`), if it said.
    behind: Option<u64>,
}

impl LicenseSource {
    /// A source named `name` reading through `client` into `topic`.
    pub fn new(
        client: Arc<LicenseClient>,
        codec: Arc<Codec>,
        name: &str,
        topic: &str,
        dead_letter_topic: &str,
        page_size: usize,
    ) -> Self {
        LicenseSource {
            behind: None,
            client,
            codec,
            name: name.to_string(),
            topic: topic.to_string(),
            dead_letter_topic: dead_letter_topic.to_string(),
            page_size,
        }
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

impl Source for LicenseSource {
    async fn poll(&mut self, cursor: Option<&Value>) -> Result<Polled, HandlerError> {
        let epoch = cursor.and_then(|c| c["epoch"].as_str()).map(str::to_string);
        let after = cursor.and_then(|c| c["seq"].as_u64()).unwrap_or(0);
        let mut page = self
            .client
            .events(after, self.page_size)
            .await
            .map_err(|e| verdict(&e))?;
        if epoch.as_deref().is_some_and(|e| e != page.epoch) {
            warn!(source = %self.name, old = ?epoch, new = %page.epoch, "the license service's feed was reset (new epoch): reading it again from its start");
            page = self
                .client
                .events(0, self.page_size)
                .await
                .map_err(|e| verdict(&e))?;
        }
        let feed = Feed {
            source: &self.name,
            epoch: &page.epoch,
        };
        let mut records = Vec::with_capacity(page.events.len());
        for ev in &page.events {
            let raw = || json!({"seq": ev.seq, "type": ev.kind, "occurred_at": ev.occurred_at, "data": ev.data});
            let key = ev.data["account_id"].as_str().unwrap_or("").to_string();
            match map(ev, &feed) {
                Mapped::Event(e) => match e.frame_to(&self.codec, &self.topic) {
                    Ok(f) => records.push(out_record(f)),
                    Err(why) => records.push(self.letter(
                        ev.seq,
                        &key,
                        &raw(),
                        &format!("{} breaks its contract: {why}", e.name()),
                    )),
                },
                Mapped::Rejected(why) => records.push(self.letter(ev.seq, &key, &raw(), &why)),
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
