//! Callout notifications as Zuora sends them, and their history.
//!
//! - Callout notification overview (headers): every request carries `Zuora-Request-Id`
//!   (a new uuid without hyphens per request, retries included), `X-Amzn-Trace-Id`
//!   (derived from it) and `Zuora-Notification-Id` (the same on every retry of one
//!   notification):
//!   https://docs.zuora.com/en/zuora-platform/extensibility/events-and-notifications/notifications/callout-notification-overview
//! - Basic authentication, RFC 7235/7617: the first request carries no credentials; a 401
//!   with `WWW-Authenticate` gets the same request again with `Authorization: Basic`;
//!   with preemptive authentication the first request carries it. Responses are kept
//!   truncated to 60 KB:
//!   https://knowledgecenter.zuora.com/Central_Platform/Notifications/E_Configure_Callout_Notifications/Message_sequence_for_Zuora_callout_basic_authentication
//! - History, `GET /v1/notification-history/callout` (pageSize ≤ 40, `failedOnly`
//!   defaults to true, start defaults to end − 1 day):
//!   https://developer.zuora.com/v1-api-reference/api/operation/GET_CalloutHistory/
//!
//! The body is a JSON object of merge fields (`eventType`, `eventCategory`,
//! `subscriptionNumber`, ...). Zuora's Orders events are custom events, so
//! `eventCategory` is `user.notification:<eventType>`. Like Zuora, the mock delivers several
//! notifications at once (`callout_concurrency` lanes, default 8); the notifications of one object (a subscription, an
//! account) share a lane and arrive one after another, in order. A notification whose every
//! attempt failed is in the history too. A row's `createTime` is when the row was made (its
//! first attempt, on the mock's clock), as Zuora's CalloutHistory "Create Time" is.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{base_url, Data, ZError, Zuora, RES_NOTIFICATION};
use crate::kit;

/// The namespace of the custom events the mock raises.
pub const EVENT_NAMESPACE: &str = "user.notification";

/// Zuora keeps a callout's response truncated to 60 KB.
const RESPONSE_KEPT: usize = 60 * 1024;

/// One notification to send.
#[derive(Debug, Clone)]
pub(crate) struct Notification {
    id: String,
    event_type: String,
    object_id: String,
    body: Value,
}

/// What the history keeps of one notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CalloutRecord {
    /// `Zuora-Notification-Id` of every attempt.
    pub notification_id: String,
    /// The event type, e.g. `SubscriptionCreated`.
    pub event_type: String,
    /// `user.notification:<eventType>`.
    pub event_category: String,
    /// The subscription or account the event is about.
    pub object_id: String,
    /// The merge fields sent.
    pub event_context: Value,
    /// Where it was sent.
    pub request_url: String,
    /// Attempts made so far.
    pub attempted_num: u32,
    /// The last attempt's HTTP status; 0 when no answer came (timeout, refused connection).
    pub response_code: u16,
    /// The last answer's body (or the connection error), truncated to 60 KB.
    pub response_content: String,
    /// When the row was made, the first attempt (Zuora's "Create Time"), on the mock's
    /// clock, ms since the epoch; the event's own time is the body's `eventTime`.
    pub create_time_ms: i64,
}

impl CalloutRecord {
    fn failed(&self) -> bool {
        !(200..300).contains(&self.response_code)
    }
}

/// The delivery lanes of one mock, started on first use (inside the runtime).
#[derive(Default)]
pub(crate) struct Queue {
    tx: OnceLock<Vec<mpsc::UnboundedSender<Notification>>>,
}

/// The lane of an object among `lanes`: the same object, the same lane.
fn lane(object_id: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    object_id.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// A new 32-hex id (a uuid without hyphens).
fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Zuora {
    /// Queues a callout of `event_type` about `object_id`, which happened at `at_ms`
    /// (business time), with these merge fields (`eventType`, `eventCategory` and
    /// `eventTime` are added); nothing without a `callout_url`.
    pub(super) fn callout(&self, at_ms: i64, event_type: &str, object_id: &str, mut body: Value) {
        if self.cfg.callout_url.is_none() {
            return;
        }
        if let Some(o) = body.as_object_mut() {
            o.insert("eventType".into(), json!(event_type));
            o.insert(
                "eventCategory".into(),
                json!(format!("{EVENT_NAMESPACE}:{event_type}")),
            );
            o.insert("eventTime".into(), json!(kit::rfc3339(at_ms)));
        }
        let n = Notification {
            id: hex_id(),
            event_type: event_type.to_string(),
            object_id: object_id.to_string(),
            body,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                event_type,
                "zuora callout raised outside a tokio runtime: not sent"
            );
            return;
        };
        let lanes = self.queue.tx.get_or_init(|| {
            (0..self.cfg.callout_concurrency.max(1))
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    runtime.spawn(deliver_all(self.me.clone(), rx));
                    tx
                })
                .collect()
        });
        if lanes[lane(&n.object_id, lanes.len())].send(n).is_err() {
            tracing::error!("zuora callout queue is closed");
        }
    }

    fn record(&self, n: &Notification, url: &str, attempt: u32, code: u16, content: String) {
        let mut content = content;
        if content.len() > RESPONSE_KEPT {
            let mut cut = RESPONSE_KEPT;
            while !content.is_char_boundary(cut) {
                cut -= 1;
            }
            content.truncate(cut);
        }
        // Zuora stamps a history row with the time the row is made (the first attempt), not
        // with the event's business time: a row that appears late still sorts after every row
        // a reader has already seen, so a reader's high-water mark never skips it.
        let now_ms = self.shared.clock().now_ms();
        self.shared.write(|d: &mut Data| {
            match d
                .callout_history
                .iter_mut()
                .find(|r| r.notification_id == n.id)
            {
                Some(r) => {
                    r.attempted_num = attempt;
                    r.response_code = code;
                    r.response_content = content;
                }
                None => d.callout_history.push(CalloutRecord {
                    notification_id: n.id.clone(),
                    event_type: n.event_type.clone(),
                    event_category: format!("{EVENT_NAMESPACE}:{}", n.event_type),
                    object_id: n.object_id.clone(),
                    event_context: n.body.clone(),
                    request_url: url.to_string(),
                    attempted_num: attempt,
                    response_code: code,
                    response_content: content,
                    create_time_ms: now_ms,
                }),
            }
        });
    }

    /// One attempt: the request, and again with credentials after a 401 challenge.
    async fn attempt(&self, url: &str, n: &Notification) -> (u16, String) {
        let creds = match (&self.cfg.callout_username, &self.cfg.callout_password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        let send = |with_auth: bool| {
            let request_id = hex_id();
            let trace = format!("Root=1-{}-{}", &request_id[..8], &request_id[8..]);
            let mut req = self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .header("Zuora-Request-Id", &request_id)
                .header("X-Amzn-Trace-Id", trace)
                .header("Zuora-Notification-Id", &n.id)
                .timeout(Duration::from_millis(self.cfg.callout_timeout_ms.max(1)))
                .body(n.body.to_string());
            if let (true, Some((u, p))) = (with_auth, &creds) {
                req = req.basic_auth(u, Some(p));
            }
            req.send()
        };
        let preemptive = self.cfg.callout_preemptive_auth && creds.is_some();
        let mut sent = send(preemptive).await;
        if let Ok(r) = &sent {
            let challenged = r.status() == reqwest::StatusCode::UNAUTHORIZED
                && r.headers().contains_key(reqwest::header::WWW_AUTHENTICATE);
            if challenged && creds.is_some() && !preemptive {
                sent = send(true).await;
            }
        }
        match sent {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    async fn deliver(&self, n: Notification) {
        let Some(url) = self.cfg.callout_url.clone() else {
            return;
        };
        let attempts = self.cfg.callout_attempts.max(1);
        for attempt in 1..=attempts {
            let (code, content) = self.attempt(&url, &n).await;
            self.record(&n, &url, attempt, code, content);
            if (200..300).contains(&code) {
                return;
            }
            tracing::warn!(attempt, code, notification_id = %n.id, "callout refused");
            if attempt < attempts {
                let backoff = self
                    .cfg
                    .callout_retry_base_ms
                    .saturating_mul(1 << (attempt - 1).min(16));
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
        }
        tracing::error!(notification_id = %n.id, "callout given up");
    }
}

async fn deliver_all(app: Weak<Zuora>, mut rx: mpsc::UnboundedReceiver<Notification>) {
    while let Some(n) = rx.recv().await {
        let Some(app) = app.upgrade() else { return };
        app.deliver(n).await;
    }
}

#[derive(Deserialize)]
struct HistoryParams {
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    #[serde(rename = "startTime")]
    start_time: Option<String>,
    #[serde(rename = "endTime")]
    end_time: Option<String>,
    #[serde(rename = "objectId")]
    object_id: Option<String>,
    #[serde(rename = "failedOnly")]
    failed_only: Option<bool>,
    #[serde(rename = "eventCategory")]
    event_category: Option<String>,
    #[serde(rename = "includeResponseContent")]
    include_response_content: Option<bool>,
}

/// Zuora's history time format, `yyyy-MM-ddTHH:mm:ss` (UTC), or RFC 3339.
pub(super) fn parse_time(field: &str, s: &str) -> Result<i64, ZError> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_millis())
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()))
        .map_err(|_| {
            ZError::invalid(
                RES_NOTIFICATION,
                format!("Invalid value for field {field}: {s}; use yyyy-MM-ddTHH:mm:ss"),
            )
        })
}

pub(super) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// `GET /v1/notification-history/callout`.
pub(super) async fn history(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<kit::Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let p: HistoryParams = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ZError::invalid(RES_NOTIFICATION, format!("Invalid query: {e}")))?;
    let size = p.page_size.unwrap_or(20);
    if !(1..=40).contains(&size) {
        return Err(ZError::invalid(
            RES_NOTIFICATION,
            format!("Invalid value for field pageSize: {size}; it must be 1 to 40"),
        ));
    }
    let page = p.page.unwrap_or(1).max(1);
    // Whole seconds, as the format has them: the window a `nextPage` repeats is the same.
    let end = match &p.end_time {
        Some(s) => parse_time("endTime", s)?,
        None => app.shared.clock().now_ms(),
    }
    .div_euclid(1000)
        * 1000
        + 999;
    let start = match &p.start_time {
        Some(s) => parse_time("startTime", s)?,
        None => end - 999 - 86_400_000,
    }
    .div_euclid(1000)
        * 1000;
    let failed_only = p.failed_only.unwrap_or(true);
    let with_content = p.include_response_content.unwrap_or(false);
    let matching: Vec<CalloutRecord> = app.shared.read(|d| {
        d.callout_history
            .iter()
            .filter(|r| r.create_time_ms >= start && r.create_time_ms <= end)
            .filter(|r| p.object_id.as_ref().is_none_or(|o| *o == r.object_id))
            .filter(|r| !failed_only || r.failed())
            .filter(|r| {
                p.event_category
                    .as_ref()
                    .is_none_or(|c| *c == r.event_category || *c == r.event_type)
            })
            .cloned()
            .collect()
    });
    let from = (page - 1).saturating_mul(size);
    let rows: Vec<Value> = matching
        .iter()
        .skip(from)
        .take(size)
        .map(|r| {
            let mut v = json!({
                "notificationId": r.notification_id,
                "attemptedNum": r.attempted_num,
                "createTime": format_time(r.create_time_ms),
                "eventCategory": r.event_category,
                "eventContext": r.event_context,
                "notification": r.event_type,
                "requestMethod": "POST",
                "requestUrl": r.request_url,
                "responseCode": r.response_code,
            });
            if with_content {
                v["responseContent"] = json!(r.response_content);
            }
            v
        })
        .collect();
    let mut out = json!({ "calloutHistories": rows, "success": true });
    if from.saturating_add(size) < matching.len() {
        let mut q: Vec<(&str, String)> = vec![
            ("page", (page + 1).to_string()),
            ("pageSize", size.to_string()),
            ("startTime", format_time(start)),
            ("endTime", format_time(end)),
            ("failedOnly", failed_only.to_string()),
        ];
        if let Some(o) = &p.object_id {
            q.push(("objectId", o.clone()));
        }
        if let Some(c) = &p.event_category {
            q.push(("eventCategory", c.clone()));
        }
        if with_content {
            q.push(("includeResponseContent", "true".into()));
        }
        out["nextPage"] = json!(format!(
            "{}/v1/notification-history/callout?{}",
            base_url(&headers, scheme.map(|s| s.0)),
            serde_urlencoded::to_string(&q).unwrap_or_default()
        ));
    }
    Ok(Json(out))
}
