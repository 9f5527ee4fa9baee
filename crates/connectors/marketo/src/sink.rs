//! The sink: one `LeadCaptured` record → one createOrUpdate call to Marketo, and Marketo's
//! answer sorted into done, retry (transient) or dead letter (permanent).
//!
//! Marketo reports most failures as HTTP 200 with an error code, so the HTTP status alone
//! says little; [`verdict`] is the one place that decides, in one `match`:
//! - transient: 606 (rate, retried after the rate window), 615 (concurrency), 601/602
//!   (token, after the client's own refresh failed), 604/608/611/713/1029 (Marketo busy or
//!   timed out), 607 (daily quota), HTTP 429/5xx (with their Retry-After), timeouts,
//!   connection errors, an identity service that refuses us (not the record's fault; the
//!   letter can be redriven once the credentials are fixed);
//! - permanent: 1003 (invalid data), 1006 (unknown field), 609/612 (malformed request),
//!   413/414, a per-record `skipped` with its reasons, any code not known to be transient.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::{Handler, HandlerError, Record};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::Codec;
use l2f_mocks::client::{ClientError, MarketoClient};
use serde_json::Value;
use tracing::debug;

use crate::config::{ConfigError, MarketoConfig};
use crate::mapping::to_marketo;

/// How long a 607 (daily quota) asks to wait; the bus caps hints at five minutes, after
/// which the record is dead-lettered as transient and can be redriven the next day.
const DAILY_QUOTA_WAIT: Duration = Duration::from_secs(3600);

/// What Marketo did with a pushed lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new lead with this id.
    Created(Option<u64>),
    /// The lead matched by the lookup field was updated (a redelivery lands here).
    Updated(Option<u64>),
}

/// Counters of the sink's outcomes, readable while it runs (for the demo, metrics, tests).
#[derive(Debug, Clone, Default)]
pub struct SinkStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    updated: AtomicU64,
    rate_limited: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
}

impl SinkStats {
    /// Leads Marketo created.
    pub fn created(&self) -> u64 {
        self.0.created.load(Ordering::Relaxed)
    }
    /// Leads Marketo updated (already known by the lookup field).
    pub fn updated(&self) -> u64 {
        self.0.updated.load(Ordering::Relaxed)
    }
    /// Pushes answered 606 (rate limit); each is also counted as transient.
    pub fn rate_limited(&self) -> u64 {
        self.0.rate_limited.load(Ordering::Relaxed)
    }
    /// Transient failures handed back to the loop for a retry.
    pub fn transient(&self) -> u64 {
        self.0.transient.load(Ordering::Relaxed)
    }
    /// Permanent failures handed back to the loop for the dead-letter topic.
    pub fn permanent(&self) -> u64 {
        self.0.permanent.load(Ordering::Relaxed)
    }
}

/// The Marketo push as an [`l2f_bus::Handler`]: decode, map, push, classify.
pub struct MarketoSink {
    client: MarketoClient,
    codec: Arc<Codec>,
    lookup_field: String,
    rate_window: Duration,
    stats: SinkStats,
}

impl MarketoSink {
    /// A sink over an existing client; `rate_window` is the wait a 606 asks for.
    pub fn new(
        client: MarketoClient,
        codec: Arc<Codec>,
        lookup_field: impl Into<String>,
        rate_window: Duration,
    ) -> Self {
        MarketoSink {
            client,
            codec,
            lookup_field: lookup_field.into(),
            rate_window,
            stats: SinkStats::default(),
        }
    }

    /// A sink from configuration (validated, secret resolved).
    pub fn from_config(cfg: &MarketoConfig, codec: Arc<Codec>) -> Result<Self, ConfigError> {
        Ok(MarketoSink::new(
            cfg.client()?,
            codec,
            cfg.lookup_field.clone(),
            cfg.rate_window,
        ))
    }

    /// Live counters of this sink.
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    fn count(&self, r: &Result<Pushed, HandlerError>, rate_limited: bool) {
        let c = &self.stats.0;
        let counter = match r {
            Ok(Pushed::Created(_)) => &c.created,
            Ok(Pushed::Updated(_)) => &c.updated,
            Err(HandlerError::Transient { .. }) => &c.transient,
            Err(HandlerError::Permanent { .. }) => &c.permanent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if rate_limited {
            c.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Decodes and pushes one record; the outcome of Marketo's answer.
    pub async fn push(&self, record: &Record) -> Result<Pushed, HandlerError> {
        let lead = self
            .decode(record)
            .inspect_err(|e| self.count(&Err(e.clone()), false))?;
        let body = to_marketo(&lead).inspect_err(|e| self.count(&Err(e.clone()), false))?;
        let result = self
            .client
            .push_leads(std::slice::from_ref(&body), &self.lookup_field)
            .await;
        let answer = Answer::of(&result);
        let rate_limited = matches!(answer, Answer::Api { code: "606", .. });
        let out = verdict(answer, self.rate_window);
        self.count(&out, rate_limited);
        match &out {
            Ok(p) => debug!(lead = %lead.lead_id, outcome = ?p, "pushed to Marketo"),
            // The loop logs the failure with its position and the retry or dead letter.
            Err(e) => debug!(lead = %lead.lead_id, error = %e, "Marketo push failed"),
        }
        out
    }

    fn decode(&self, record: &Record) -> Result<LeadCaptured, HandlerError> {
        let at = format!("{}[{}]@{}", record.topic, record.partition, record.offset);
        let bytes = record
            .payload
            .as_deref()
            .ok_or_else(|| HandlerError::permanent(format!("record {at} has no value")))?;
        self.codec.decode::<LeadCaptured>(bytes).map_err(|e| {
            HandlerError::permanent(format!("record {at} is not a decodable LeadCaptured: {e}"))
        })
    }
}

impl Handler for MarketoSink {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.push(record).await.map(|_| ())
    }
}

/// Marketo's answer to one push, taken apart (no decisions here; see [`verdict`]).
#[derive(Debug)]
pub enum Answer<'a> {
    /// The call succeeded; the record's own status (`created`, `updated`, `skipped`).
    Lead {
        /// The per-record status.
        status: &'a str,
        /// The lead id, when Marketo gave one.
        id: Option<u64>,
        /// `code: message` of each reason, joined.
        reasons: String,
    },
    /// The call succeeded but carried no per-record result.
    NoResult,
    /// Marketo refused the call with an error code (HTTP 200 `success:false`, or 413/414).
    Api {
        /// The HTTP status.
        status: u16,
        /// The first error's code (`"606"`), empty when the body has none.
        code: &'a str,
        /// The first error's message, or the body.
        message: String,
    },
    /// HTTP 429 or 5xx.
    Http {
        /// The status.
        status: u16,
        /// The Retry-After seconds, if sent.
        retry_after: Option<u64>,
    },
    /// The request did not complete (timeout, connection refused or reset).
    Transport(&'a reqwest::Error),
    /// The identity service refused the credentials.
    Auth(&'a str),
}

impl<'a> Answer<'a> {
    /// Takes the client's result apart.
    pub fn of(result: &'a Result<Vec<Value>, ClientError>) -> Self {
        match result {
            Ok(results) => match results.first() {
                Some(r) => Answer::Lead {
                    status: r["status"].as_str().unwrap_or(""),
                    id: r["id"].as_u64(),
                    reasons: r["reasons"]
                        .as_array()
                        .map(|rs| {
                            rs.iter()
                                .map(|x| {
                                    format!(
                                        "{}: {}",
                                        x["code"].as_str().unwrap_or("?"),
                                        x["message"].as_str().unwrap_or("")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .unwrap_or_default(),
                },
                None => Answer::NoResult,
            },
            Err(ClientError::Api { status, body, .. }) => Answer::Api {
                status: *status,
                code: body["errors"][0]["code"].as_str().unwrap_or(""),
                message: body["errors"][0]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| body.to_string()),
            },
            Err(ClientError::Status {
                status,
                retry_after,
                ..
            }) => Answer::Http {
                status: *status,
                retry_after: *retry_after,
            },
            Err(ClientError::Transport(e)) => Answer::Transport(e),
            Err(ClientError::Auth(m)) => Answer::Auth(m),
        }
    }
}

/// The one decision: done, transient (retry; `rate_window` is the wait a 606 asks for) or
/// permanent (dead letter).
pub fn verdict(answer: Answer<'_>, rate_window: Duration) -> Result<Pushed, HandlerError> {
    use HandlerError as E;
    match answer {
        Answer::Lead {
            status: "created",
            id,
            ..
        } => Ok(Pushed::Created(id)),
        Answer::Lead {
            status: "updated",
            id,
            ..
        } => Ok(Pushed::Updated(id)),
        Answer::Lead {
            status, reasons, ..
        } => Err(E::permanent(format!(
            "Marketo answered {status:?} for the lead: {reasons}"
        ))),
        Answer::NoResult => Err(E::permanent(
            "Marketo accepted the call but returned no result for the lead",
        )),
        Answer::Api {
            code: "606",
            message,
            ..
        } => Err(E::retry_after(
            format!("Marketo 606 (rate limit): {message}"),
            rate_window,
        )),
        Answer::Api {
            code: "607",
            message,
            ..
        } => Err(E::retry_after(
            format!("Marketo 607 (daily quota): {message}"),
            DAILY_QUOTA_WAIT,
        )),
        Answer::Api {
            code: code @ ("615" | "601" | "602" | "604" | "608" | "611" | "713" | "1029"),
            message,
            ..
        } => Err(E::transient(format!("Marketo {code}: {message}"))),
        Answer::Api {
            status,
            code,
            message,
        } => Err(E::permanent(format!(
            "Marketo refused the lead (HTTP {status}, code {code:?}): {message}"
        ))),
        Answer::Http {
            status,
            retry_after: Some(secs),
        } => Err(E::retry_after(
            format!("Marketo answered HTTP {status}"),
            Duration::from_secs(secs),
        )),
        Answer::Http {
            status,
            retry_after: None,
        } => Err(E::transient(format!("Marketo answered HTTP {status}"))),
        Answer::Transport(e) if e.is_timeout() => {
            Err(E::transient(format!("Marketo call timed out: {e}")))
        }
        Answer::Transport(e) => Err(E::transient(format!("Marketo call did not complete: {e}"))),
        Answer::Auth(m) => Err(E::transient(format!(
            "Marketo identity service refused the connector's credentials: {m}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WINDOW: Duration = Duration::from_secs(20);

    fn api(code: &str, status: u16) -> Result<Vec<Value>, ClientError> {
        Err(ClientError::Api {
            api: "marketo",
            status,
            body: json!({"success": false, "errors": [{"code": code, "message": "m"}]}),
        })
    }

    fn judge(r: &Result<Vec<Value>, ClientError>) -> Result<Pushed, HandlerError> {
        verdict(Answer::of(r), WINDOW)
    }

    #[test]
    fn created_and_updated_are_done() {
        let r = Ok(vec![json!({"id": 7, "status": "created"})]);
        assert_eq!(judge(&r).unwrap(), Pushed::Created(Some(7)));
        let r = Ok(vec![json!({"id": 7, "status": "updated"})]);
        assert_eq!(judge(&r).unwrap(), Pushed::Updated(Some(7)));
    }

    #[test]
    fn rate_limit_606_waits_the_window() {
        match judge(&api("606", 200)).unwrap_err() {
            HandlerError::Transient {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, Some(WINDOW));
                assert!(message.contains("606"), "{message}");
            }
            e => panic!("606 must be transient: {e}"),
        }
    }

    #[test]
    fn transient_codes_and_statuses_are_retried() {
        for code in ["615", "601", "602", "604", "608", "611", "713", "607"] {
            assert_eq!(
                judge(&api(code, 200)).unwrap_err().class(),
                "transient",
                "{code}"
            );
        }
        let r = Err(ClientError::Status {
            api: "marketo",
            status: 429,
            retry_after: Some(3),
        });
        match judge(&r).unwrap_err() {
            HandlerError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            e => panic!("{e}"),
        }
        let r = Err(ClientError::Status {
            api: "marketo",
            status: 503,
            retry_after: None,
        });
        assert_eq!(judge(&r).unwrap_err().class(), "transient");
        let r = Err(ClientError::Auth("401".into()));
        assert_eq!(judge(&r).unwrap_err().class(), "transient");
    }

    #[test]
    fn invalid_data_and_unknown_fields_are_permanent() {
        for (code, status) in [("1003", 200), ("1006", 200), ("609", 200), ("", 413)] {
            let e = judge(&api(code, status)).unwrap_err();
            assert_eq!(e.class(), "permanent", "{code}");
            assert!(e.message().contains(&status.to_string()), "{e}");
        }
    }

    #[test]
    fn a_skipped_record_is_permanent_with_its_reasons() {
        let r = Ok(vec![json!({"status": "skipped", "reasons": [
            {"code": "1004", "message": "Lead not found"},
            {"code": "1003", "message": "Value for required field 'company' not specified"}]})]);
        let e = judge(&r).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("1004: Lead not found"), "{e}");
        assert!(e.message().contains("'company'"), "{e}");
        assert_eq!(judge(&Ok(vec![])).unwrap_err().class(), "permanent");
    }
}
