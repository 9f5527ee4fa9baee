//! Mail mock shaped like Mailgun's `POST /v3/{domain}/messages`: HTTP basic auth
//! `api:<key>`, a form body (url-encoded or multipart) with `from`, `to`, `subject`,
//! `text`/`html`/`template`, answered with `{"id":"<...>","message":"Queued. Thank you."}`.
//! Every accepted message is recorded; `GET /__admin/messages?to=&subject=` lists them.
//!
//! Custom data ("Attaching Data to Messages", Mailgun user manual): `v:<name>` form fields
//! and the JSON map of `h:X-Mailgun-Variables` become the message's `user-variables`
//! (a `v:` value is kept as a string unless it is a JSON object or array; `v:` wins over
//! the header for the same name); an `h:X-Mailgun-Variables` that is not a JSON object is
//! refused with 400.
//! https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-attachments
//!
//! Each recipient (`to`, `cc`, `bcc`) of an accepted message gets an `accepted` and a
//! `delivered` event, readable over the events API ([`events`]), stamped by the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kit::{self, FaultRule, MockApp, Shared};
use crate::store::Store;
use crate::Listen;

pub mod events;

/// Mail mock configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// The private API key (basic auth password, user `api`).
    pub api_key: String,
    /// Sending domains; empty accepts any.
    pub domains: Vec<String>,
    /// Misbehaviour rules active from the start.
    pub faults: Vec<FaultRule>,
    /// How long (wall-clock ms) an event takes to become visible in the events API after
    /// it happened: Mailgun's events reach its storage late ("Event Polling"), so a reader
    /// must not take a missing event for a message that was never accepted.
    pub events_delay_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::default(),
            api_key: "key-l2f-mock".into(),
            domains: vec!["mg.l2f.example".into()],
            faults: Vec::new(),
            events_delay_ms: 0,
        }
    }
}

/// A recorded message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// The id returned to the sender, `<...@domain>`.
    pub id: String,
    /// The sending domain.
    pub domain: String,
    /// `from`.
    pub from: String,
    /// Every `to` (comma-separated values split).
    pub to: Vec<String>,
    /// `cc`.
    pub cc: Vec<String>,
    /// `subject`.
    pub subject: String,
    /// `text`.
    pub text: Option<String>,
    /// `html`.
    pub html: Option<String>,
    /// `template`.
    pub template: Option<String>,
    /// `o:tag` values.
    pub tags: Vec<String>,
    /// Other parameters (`h:*`, `v:*`, `o:*`, `t:*`), last value wins.
    pub options: BTreeMap<String, String>,
    /// Attachment file names and sizes.
    pub attachments: Vec<(String, usize)>,
    /// When it was accepted (RFC 3339).
    pub accepted_at: String,
    /// `bcc`.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// The custom data (`v:` fields and `h:X-Mailgun-Variables`), as events show it.
    #[serde(default, rename = "user-variables")]
    pub user_variables: serde_json::Map<String, Value>,
}

/// Everything the mail mock keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Messages in the order they were accepted.
    pub messages: Vec<Message>,
    /// Events (`accepted`, `delivered`) in the order they happened.
    #[serde(default)]
    pub events: Vec<events::MailEvent>,
    /// Event sequence (ties between events of one instant are broken by it).
    #[serde(default)]
    pub seq: u64,
}

/// The running mail mock.
pub struct Mail {
    cfg: Config,
    shared: Shared<Data>,
}

impl Mail {
    /// Builds the mock, loading saved state from `store` if given (wall clock).
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, kit::Clock::wall())
    }

    /// As [`Mail::new`], taking message ids and event timestamps from `clock`.
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
    ) -> crate::Result<Arc<Self>> {
        let shared = Shared::with_clock("mail", store, cfg.faults.clone(), clock)?;
        Ok(Arc::new(Self { cfg, shared }))
    }
}

impl MockApp for Mail {
    type Data = Data;
    fn shared(&self) -> &Shared<Data> {
        &self.shared
    }
    fn render(&self, status: StatusCode) -> Response {
        MailError::Status(status).into_response()
    }
}

/// Mailgun's errors: `{"message": ...}` with a 4xx status, plain `Forbidden` for auth.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// 401: missing or wrong API key.
    #[error("Forbidden")]
    Forbidden,
    /// 400: a parameter is missing or invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the domain is not configured.
    #[error("Domain not found: {0}")]
    DomainNotFound(String),
    /// A status imposed by a fault rule.
    #[error("fault")]
    Status(StatusCode),
}

impl IntoResponse for MailError {
    fn into_response(self) -> Response {
        match self {
            MailError::Forbidden => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"MG API\"")],
                "Forbidden",
            )
                .into_response(),
            MailError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "message": m }))).into_response()
            }
            e @ MailError::DomainNotFound(_) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": e.to_string() })),
            )
                .into_response(),
            MailError::Status(s) => {
                let m = s.canonical_reason().unwrap_or("error");
                (s, Json(json!({ "message": m }))).into_response()
            }
        }
    }
}

/// The router: messages, events and `/__admin`.
pub fn router(app: Arc<Mail>) -> Router {
    let routes = Router::new()
        .route("/v3/{domain}/messages", post(send))
        .route("/v3/{domain}/events", get(events::list))
        .route("/v3/{domain}/events/{page}", get(events::page))
        .route("/__admin/messages", get(list))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "Not Found" })),
            )
        });
    kit::finish(routes, app)
}

fn authorised(app: &Mail, req: &Request) -> bool {
    authorised_headers(app, req.headers())
}

/// Basic auth `api:<key>`, as every Mailgun API call takes it.
fn authorised_headers(app: &Mail, headers: &axum::http::HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let raw = String::from_utf8_lossy(&raw);
    raw.split_once(':')
        .is_some_and(|(user, key)| user == "api" && key == app.cfg.api_key)
}

async fn form_fields(req: Request) -> Result<Vec<(String, String, Option<usize>)>, MailError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| MailError::BadRequest(e.body_text()))?;
        let mut out = Vec::new();
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| MailError::BadRequest(e.body_text()))?
        {
            let name = field.name().unwrap_or("").to_string();
            let file = field.file_name().map(str::to_string);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| MailError::BadRequest(e.body_text()))?;
            match file {
                Some(f) => out.push((name, f, Some(bytes.len()))),
                None => out.push((name, String::from_utf8_lossy(&bytes).into_owned(), None)),
            }
        }
        Ok(out)
    } else {
        let body = axum::body::to_bytes(req.into_body(), 25 << 20)
            .await
            .map_err(|_| MailError::BadRequest("message too large".into()))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| MailError::BadRequest(format!("invalid form body: {e}")))?;
        Ok(pairs.into_iter().map(|(k, v)| (k, v, None)).collect())
    }
}

fn addresses(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn send(
    State(app): State<Arc<Mail>>,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Json<Value>, MailError> {
    if !authorised(&app, &req) {
        return Err(MailError::Forbidden);
    }
    if !app.cfg.domains.is_empty() && !app.cfg.domains.contains(&domain) {
        return Err(MailError::DomainNotFound(domain));
    }
    let fields = form_fields(req).await?;
    let all = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(n, _, f)| n == name && f.is_none())
            .map(|(_, v, _)| v.as_str())
            .collect()
    };
    let one = |name: &str| all(name).last().map(|s| s.to_string());
    let from =
        one("from").ok_or_else(|| MailError::BadRequest("from parameter is missing".into()))?;
    let to = addresses(&all("to"));
    if to.is_empty() {
        return Err(MailError::BadRequest("to parameter is missing".into()));
    }
    if let Some(bad) = to.iter().find(|a| !a.contains('@')) {
        return Err(MailError::BadRequest(format!(
            "to parameter is not a valid address. please check documentation ({bad})"
        )));
    }
    let (text, html, template) = (one("text"), one("html"), one("template"));
    if text.is_none() && html.is_none() && template.is_none() && one("amp-html").is_none() {
        return Err(MailError::BadRequest(
            "Need at least one of 'text', 'html' or 'template' parameters specified".into(),
        ));
    }
    let now_ms = app.shared.clock().now_ms();
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    // "20260203192638.000be97f99f8cea1@sample.mailgun.com", in angle brackets as the send
    // answers it; events carry it without them.
    let id = format!(
        "<{}.{}@{domain}>",
        now.format("%Y%m%d%H%M%S"),
        kit::random_hex(8)
    );
    let mut user_variables = serde_json::Map::new();
    if let Some(h) = fields
        .iter()
        .rev()
        .find(|(n, _, f)| f.is_none() && n.eq_ignore_ascii_case("h:X-Mailgun-Variables"))
    {
        match serde_json::from_str::<Value>(&h.1) {
            Ok(Value::Object(o)) => user_variables.extend(o),
            _ => {
                return Err(MailError::BadRequest(
                    "h:X-Mailgun-Variables must be a valid JSON object".into(),
                ))
            }
        }
    }
    for (n, v, f) in &fields {
        if let (Some(name), None) = (n.strip_prefix("v:"), f) {
            let value = match serde_json::from_str::<Value>(v) {
                Ok(j @ (Value::Object(_) | Value::Array(_))) => j,
                _ => Value::String(v.clone()),
            };
            user_variables.insert(name.to_string(), value);
        }
    }
    let options = fields
        .iter()
        .filter(|(n, _, f)| {
            f.is_none() && ["h:", "v:", "o:", "t:"].iter().any(|p| n.starts_with(p))
        })
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect();
    let message = Message {
        id: id.clone(),
        domain,
        from,
        to,
        cc: addresses(&all("cc")),
        subject: one("subject").unwrap_or_default(),
        text,
        html,
        template,
        tags: all("o:tag").iter().map(|s| s.to_string()).collect(),
        options,
        attachments: fields
            .iter()
            .filter_map(|(_, v, size)| size.map(|s| (v.clone(), s)))
            .collect(),
        accepted_at: kit::rfc3339(now_ms),
        bcc: addresses(&all("bcc")),
        user_variables,
    };
    tracing::debug!(message_id = %id, "mail accepted");
    app.shared.write(|d| {
        let visible = kit::now_ms().saturating_add(app.cfg.events_delay_ms as i64);
        events::record(d, &message, now_ms, visible);
        d.messages.push(message)
    });
    Ok(Json(json!({ "id": id, "message": "Queued. Thank you." })))
}

#[derive(Deserialize)]
struct ListParams {
    to: Option<String>,
    subject: Option<String>,
}

async fn list(State(app): State<Arc<Mail>>, Query(p): Query<ListParams>) -> Json<Value> {
    let items: Vec<Message> = app.shared.read(|d| {
        d.messages
            .iter()
            .filter(|m| {
                p.to.as_ref()
                    .is_none_or(|t| m.to.iter().any(|x| x.contains(t.as_str())))
            })
            .filter(|m| {
                p.subject
                    .as_ref()
                    .is_none_or(|s| m.subject.contains(s.as_str()))
            })
            .cloned()
            .collect()
    });
    Json(json!({ "items": items }))
}
