//! The source: closed-won Opportunities → `OrderPlaced` on the orders topic, run by the bus's
//! exactly-once [`l2f_bus::source::SourceLoop`] (the events and the cursor in one Kafka
//! transaction).
//!
//! Each poll reads one page (up to 200 deals) of
//! `SELECT … FROM Opportunity WHERE IsWon = true AND (SystemModstamp > T OR (SystemModstamp = T
//! AND Id > 'ID')) ORDER BY SystemModstamp ASC, Id ASC` ([`mapping::deals_soql`]): the cursor
//! `{modstamp, id}` is the last deal read, and the `Id` tie-breaker keeps deals stamped in the
//! same second apart, so none is skipped or read twice. When the query has more pages, the
//! next poll follows its `nextRecordsUrl` — but only if the cursor it is given is the one the
//! page ended at (the page's transaction committed); otherwise, or when the locator expired,
//! it queries again from the cursor. Both read the same deals.
//!
//! A deal the contract cannot map becomes a dead letter in the same transaction (value: the
//! deal's JSON; the dead-letter headers of `l2f_bus::dlq::letter`, source topic
//! `salesforce:Opportunity`, the reason naming the field and the value), and the cursor moves
//! past it: never a half event, never a stuck feed.
//!
//! Event ids are `record::event_id("salesforce", <org id>, "<Id>@<SystemModstamp>")`: a feed
//! re-read after a lost cursor yields the same ids. A won deal edited later is read again at
//! its new `SystemModstamp`, as a new event for the same `order_id` — the Zuora sink finds the
//! order already fulfilled by its `L2fOrderId__c`.

use std::sync::Arc;

use l2f_bus::dlq::letter;
use l2f_bus::source::{Polled, Source, SOURCE_HEADER};
use l2f_bus::{HandlerError, OutRecord, Record};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::ClientError;
use l2f_contracts::Codec;
use l2f_rules::Rules;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::client::{QueryPage, SalesforceClient};
use crate::mapping::{self, Cursor, DealContext};
use crate::verdict;

/// The source topic named in the dead letters of deals that cannot be mapped.
pub const DEAD_LETTER_SOURCE: &str = "salesforce:Opportunity";

/// Where the source writes, besides its cursor.
#[derive(Debug, Clone)]
pub struct SourceTopics {
    /// `OrderPlaced` events.
    pub orders: String,
    /// Dead letters of the deals that cannot be mapped.
    pub dead_letters: String,
}

/// The closed-won Opportunities as a [`Source`].
pub struct OpportunitySource {
    client: Arc<SalesforceClient>,
    codec: Arc<Codec>,
    rules: Arc<Rules>,
    topics: SourceTopics,
    name: String,
    currency: String,
    /// The next page of the last query: the cursor its previous page ended at, and its URL.
    next: Option<(Option<Cursor>, String)>,
}

impl OpportunitySource {
    /// A source named `name` (its dead letters' consumer-group header) reading deals with
    /// `client`, amounts in `currency`.
    pub fn new(
        client: Arc<SalesforceClient>,
        codec: Arc<Codec>,
        rules: Arc<Rules>,
        topics: SourceTopics,
        name: impl Into<String>,
        currency: impl Into<String>,
    ) -> Self {
        OpportunitySource {
            client,
            codec,
            rules,
            topics,
            name: name.into(),
            currency: currency.into(),
            next: None,
        }
    }

    /// The page after `cursor`: the kept `nextRecordsUrl` when it continues exactly there,
    /// else a fresh query from the cursor.
    async fn page(&mut self, cursor: Option<&Cursor>) -> Result<QueryPage, ClientError> {
        if let Some((after, url)) = self.next.take() {
            if after.as_ref() == cursor {
                match self.client.query_more(&url).await {
                    Ok(p) => return Ok(p),
                    Err(ClientError::Api { body, .. })
                        if body[0]["errorCode"] == "INVALID_QUERY_LOCATOR" =>
                    {
                        info!(source = %self.name, "query locator expired; querying again from the cursor");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.client.query(&mapping::deals_soql(cursor)).await
    }

    /// The dead letter of a deal that cannot be mapped.
    fn dead_letter(&self, deal: &Value, id: &str, err: &HandlerError) -> OutRecord {
        let record = Record {
            topic: DEAD_LETTER_SOURCE.to_string(),
            partition: -1,
            offset: -1,
            key: Some(id.as_bytes().to_vec()),
            payload: Some(serde_json::to_vec(deal).unwrap_or_default()),
            headers: vec![(SOURCE_HEADER.into(), Some(self.name.clone().into_bytes()))],
            timestamp_ms: None,
        };
        letter(&record, err, 1, &self.topics.dead_letters, &self.name)
    }
}

impl Source for OpportunitySource {
    async fn poll(&mut self, cursor: Option<&Value>) -> Result<Polled, HandlerError> {
        let cursor = match cursor {
            None => None,
            Some(v) => Cursor::from_value(v).map_err(HandlerError::permanent)?,
        };
        let org = self
            .client
            .org_id()
            .await
            .map_err(|e| verdict::of_call(&e))?
            .unwrap_or_else(|| "unknown-org".to_string());
        let page = self
            .page(cursor.as_ref())
            .await
            .map_err(|e| verdict::of_call(&e))?;
        let ctx = DealContext {
            org: &org,
            currency: &self.currency,
            rules: &self.rules,
        };
        let mut records = Vec::with_capacity(page.records.len());
        let mut last = cursor.clone();
        for deal in &page.records {
            let Some(pos) = mapping::deal_position(deal) else {
                // Without its Id and SystemModstamp a row has no place in the feed: nothing
                // of this page is kept, the poll fails and is made again.
                return Err(HandlerError::permanent(format!(
                    "Salesforce answered a deal without a readable Id and SystemModstamp: {deal}"
                )));
            };
            let mapped = mapping::order_placed(deal, &ctx)
                .map_err(|e| HandlerError::permanent(e.to_string()))
                .and_then(|order| {
                    event_record(&self.codec, &self.topics.orders, &order, None).map_err(|e| {
                        HandlerError::permanent(format!("Opportunity {}: {}", pos.id, e.message()))
                    })
                });
            match mapped {
                Ok(r) => records.push(r),
                Err(e) => {
                    warn!(source = %self.name, deal = %pos.id, error = %e.message(), "closed-won deal cannot be mapped; dead-lettered");
                    records.push(self.dead_letter(deal, &pos.id, &e));
                }
            }
            last = Some(pos);
        }
        let more = !page.done && page.next_records_url.is_some();
        if let (true, Some(url)) = (more, page.next_records_url) {
            self.next = Some((last.clone(), url));
        }
        debug!(source = %self.name, deals = page.records.len(), more, "polled Opportunities");
        Ok(Polled {
            records,
            cursor: last.map_or(Value::Null, |c| c.to_value()),
            more,
        })
    }
}
