//! What every mock shares: state behind a lock with optional SQLite persistence,
//! bearer tokens, per-route misbehaviour ("faults") and the `/__admin` endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// Milliseconds since the Unix epoch by the wall clock: for what is operational rather
/// than business time (token lifetimes, rate windows, idempotency keys, query cursors).
/// Business time (term dates, invoices, event times) comes from a [`Clock`].
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ms` since the epoch as RFC 3339 with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub use crate::clock::{Clock, ClockConfig, ClockError, ClockMode, DueWork};

/// A random token of `n` bytes as lowercase hex, for access tokens and keys.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issued bearer tokens with their expiry, kept in each app's persisted data so a
/// restart does not log clients out (as a real service would not).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// token → expiry (ms since epoch)
    pub issued: HashMap<String, i64>,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No token was sent.
    Missing,
    /// The token was never issued (or was revoked).
    Invalid,
    /// The token was issued but its lifetime is over.
    Expired,
}

impl Tokens {
    /// Issues a fresh token valid for `ttl_secs` seconds.
    pub fn issue(&mut self, prefix: &str, ttl_secs: i64) -> String {
        let now = now_ms();
        self.issued.retain(|_, exp| *exp > now - 86_400_000);
        let token = format!("{prefix}{}", random_hex(16));
        self.issued.insert(token.clone(), now + ttl_secs * 1000);
        token
    }

    /// Checks a presented token.
    pub fn check(&self, token: Option<&str>) -> Result<(), TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        match self.issued.get(token) {
            None => Err(TokenError::Invalid),
            Some(exp) if *exp <= now_ms() => Err(TokenError::Expired),
            Some(_) => Ok(()),
        }
    }

    /// Expires every token now: lets tests exercise a client's refresh path.
    pub fn expire_all(&mut self) {
        for exp in self.issued.values_mut() {
            *exp = 0;
        }
    }
}

/// The bearer token of a request, from `Authorization: Bearer ...`.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// One app's state: data behind a lock, saved to SQLite after every change when a
/// store is configured, and the app's fault rules.
pub struct Shared<D> {
    app: &'static str,
    data: Mutex<D>,
    store: Option<Arc<Store>>,
    clock: Arc<Clock>,
    /// The misbehaviour rules for this app.
    pub faults: Faults,
}

impl<D: Serialize + DeserializeOwned + Default> Shared<D> {
    /// Loads the app's data from the store if one is given and holds a snapshot; business
    /// time is the wall clock.
    pub fn new(
        app: &'static str,
        store: Option<Arc<Store>>,
        faults: Vec<FaultRule>,
    ) -> crate::Result<Self> {
        Self::with_clock(app, store, faults, Clock::wall())
    }

    /// As [`Shared::new`], reading business time from `clock` (shared by the process's apps).
    pub fn with_clock(
        app: &'static str,
        store: Option<Arc<Store>>,
        faults: Vec<FaultRule>,
        clock: Arc<Clock>,
    ) -> crate::Result<Self> {
        let data = match &store {
            Some(s) => match s.load(app)? {
                Some(json) => serde_json::from_str(&json).map_err(|e| crate::Error::Corrupt {
                    app,
                    reason: e.to_string(),
                })?,
                None => D::default(),
            },
            None => D::default(),
        };
        Ok(Self {
            app,
            data: Mutex::new(data),
            store,
            clock,
            faults: Faults::new(faults),
        })
    }

    /// The clock business time is read from.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, D> {
        // A panic while holding the lock cannot leave half-applied state that matters
        // more than serving on: every change is applied in one closure.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the data.
    pub fn read<R>(&self, f: impl FnOnce(&D) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the data and persists the result.
    pub fn write<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        let mut guard = self.lock();
        let out = f(&mut guard);
        if let Some(store) = &self.store {
            match serde_json::to_string(&*guard) {
                Ok(json) => {
                    if let Err(e) = store.save(self.app, &json) {
                        tracing::error!(app = self.app, error = %e, "cannot persist mock state");
                    }
                }
                Err(e) => tracing::error!(app = self.app, error = %e, "cannot encode mock state"),
            }
        }
        out
    }

    /// The whole data as JSON, for `/__admin/state`.
    pub fn snapshot(&self) -> serde_json::Value {
        self.read(|d| serde_json::to_value(d).unwrap_or(serde_json::Value::Null))
    }

    /// Drops all data (and persists the empty state).
    pub fn reset(&self) {
        self.write(|d| *d = D::default());
    }
}

/// What a fault does to a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Delay the request, then serve it.
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Answer with this status in the app's error shape (429 and 503 carry Retry-After).
    Status {
        /// The HTTP status.
        status: u16,
        /// Seconds for the `Retry-After` header.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Reset the connection (TCP RST) without answering.
    Reset,
}

/// A misbehaviour rule: which requests, what happens, how often.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Path prefix the rule applies to; empty means every route.
    #[serde(default)]
    pub path: String,
    /// HTTP method the rule applies to; none means every method.
    #[serde(default)]
    pub method: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// Only the N-th matching request (1-based) is affected.
    #[serde(default)]
    pub nth: Option<u64>,
    /// How many times the rule fires before it is spent; none means forever.
    #[serde(default)]
    pub times: Option<u64>,
    /// Fires on every N-th matching request only (a steady share of the traffic: five rules
    /// of `every = 50` with phases 0, 10, 20, 30, 40 fail 10% of calls, spread out).
    #[serde(default)]
    pub every: Option<u64>,
    /// With `every`: which request of each N fires (0 = the N-th, 2N-th, ...).
    #[serde(default)]
    pub phase: u64,
    /// Matching requests seen so far.
    #[serde(default)]
    pub seen: u64,
    /// Times the rule fired so far.
    #[serde(default)]
    pub fired: u64,
}

impl FaultRule {
    /// A rule that does `action` to every request under `path` (`""`: all), every time;
    /// narrow it with struct-update syntax (`FaultRule { nth: Some(2), ..FaultRule::on(..) }`).
    pub fn on(path: &str, action: FaultAction) -> Self {
        FaultRule {
            path: path.into(),
            method: None,
            action,
            nth: None,
            times: None,
            every: None,
            phase: 0,
            seen: 0,
            fired: 0,
        }
    }
}

/// The fault rules of one app, changeable at run time.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    fn new(rules: Vec<FaultRule>) -> Self {
        Self {
            rules: Mutex::new(rules),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules with their counters.
    pub fn list(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// The actions that apply to this request (counting it against each rule).
    pub fn decide(&self, method: &Method, path: &str) -> Vec<FaultAction> {
        let mut rules = self.lock();
        let mut out = Vec::new();
        for rule in rules.iter_mut() {
            if !path.starts_with(&rule.path) {
                continue;
            }
            if let Some(m) = &rule.method {
                if !m.eq_ignore_ascii_case(method.as_str()) {
                    continue;
                }
            }
            rule.seen += 1;
            if rule.nth.is_some_and(|n| n != rule.seen) {
                continue;
            }
            if rule
                .every
                .is_some_and(|e| e == 0 || rule.seen % e != rule.phase % e)
            {
                continue;
            }
            if rule.times.is_some_and(|t| rule.fired >= t) {
                continue;
            }
            rule.fired += 1;
            out.push(rule.action.clone());
        }
        out
    }
}

/// How an app renders a fault status in its own error shape.
pub type FaultRenderer = fn(StatusCode) -> Response;

/// A per-connection switch the server puts into each request so the fault layer can
/// drop the connection; absent when a router is driven without a socket.
#[derive(Clone)]
pub struct ConnKill(pub Arc<tokio::sync::Notify>);

/// The scheme the request came in on (`http` or `https`), set by the server.
#[derive(Clone, Copy, Debug)]
pub struct Scheme(pub &'static str);

/// What the shared machinery (fault rules, `/__admin`) needs from an app.
pub trait MockApp: Send + Sync + 'static {
    /// The app's persisted data.
    type Data: Serialize + DeserializeOwned + Default + Send;
    /// The app's state.
    fn shared(&self) -> &Shared<Self::Data>;
    /// The app's error shape for a bare status (used by status faults).
    fn render(&self, status: StatusCode) -> Response;
    /// The clock the app reads business time from.
    fn clock(&self) -> &Arc<Clock> {
        self.shared().clock()
    }
    /// The app's issued tokens, for apps that issue them.
    fn tokens(_data: &mut Self::Data) -> Option<&mut Tokens> {
        None
    }
    /// The data shown at `/__admin/state`: everything but the issued tokens.
    fn state(&self) -> serde_json::Value {
        let mut v = self.shared().snapshot();
        if let Some(o) = v.as_object_mut() {
            o.remove("tokens");
        }
        v
    }
}

/// Applies the app's fault rules to every non-admin request.
pub async fn fault_layer<S: MockApp>(
    State(app): State<Arc<S>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/__admin") {
        return next.run(req).await;
    }
    let actions = app.shared().faults.decide(req.method(), req.uri().path());
    for action in actions {
        match action {
            FaultAction::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultAction::Status {
                status,
                retry_after,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut resp = app.render(status);
                if let Some(secs) = retry_after {
                    resp.headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
                }
                return resp;
            }
            FaultAction::Reset => {
                if let Some(kill) = req.extensions().get::<ConnKill>() {
                    kill.0.notify_one();
                    std::future::pending::<()>().await;
                }
                // Without a socket: a body that fails, which a client sees as a broken
                // connection.
                let stream = futures::stream::once(async {
                    Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by fault rule",
                    ))
                });
                return Response::new(Body::from_stream(stream));
            }
        }
    }
    next.run(req).await
}

/// `{"now": RFC 3339, "mode": "wall"|"simulated"}`.
fn clock_view(clock: &Clock) -> serde_json::Value {
    serde_json::json!({ "now": clock.rfc3339(), "mode": clock.mode() })
}

/// The body of `POST /__admin/clock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    /// A duration like `30d`, `6h`, `1d12h`.
    #[serde(default)]
    advance: Option<String>,
    /// An RFC 3339 time (not before now).
    #[serde(default)]
    set: Option<String>,
}

/// `POST /__admin/clock` `{"advance": "30d"}` or `{"set": "2027-01-01T00:00:00Z"}` (or `{}`):
/// moves a simulated clock and runs what became due, in every app sharing the clock, before
/// it answers `{"now","mode"}`; 409 for the wall clock, 400 for a bad body or a move back.
fn move_clock(clock: &Clock, body: &[u8]) -> Response {
    let bad = |status: StatusCode, msg: String| {
        (status, Json(serde_json::json!({ "error": msg }))).into_response()
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let m: ClockMove = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let moved = match (m.advance, m.set) {
        (Some(_), Some(_)) => {
            return bad(
                StatusCode::BAD_REQUEST,
                "give advance or set, not both".into(),
            )
        }
        (Some(a), None) => clock.advance(&a).map(|_| ()),
        (None, Some(t)) => clock.set(&t).map(|_| ()),
        (None, None) => {
            clock.run_due();
            Ok(())
        }
    };
    match moved {
        Ok(()) => Json(clock_view(clock)).into_response(),
        Err(e @ crate::clock::ClockError::Wall) => bad(StatusCode::CONFLICT, e.to_string()),
        Err(e) => bad(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `/__admin/state`, `/__admin/reset`, `/__admin/faults`, `/__admin/tokens/expire`,
/// `/__admin/clock` and `/__admin/health` for an app.
pub fn admin_router<S: MockApp>() -> Router<Arc<S>> {
    async fn state<S: MockApp>(State(app): State<Arc<S>>) -> Json<serde_json::Value> {
        Json(app.state())
    }
    async fn reset<S: MockApp>(State(app): State<Arc<S>>) -> StatusCode {
        app.shared().reset();
        StatusCode::NO_CONTENT
    }
    async fn faults<S: MockApp>(State(app): State<Arc<S>>) -> Json<Vec<FaultRule>> {
        Json(app.shared().faults.list())
    }
    async fn add_fault<S: MockApp>(State(app): State<Arc<S>>, body: axum::body::Bytes) -> Response {
        match serde_json::from_slice::<FaultRule>(&body) {
            Ok(rule) => {
                app.shared().faults.add(rule);
                StatusCode::CREATED.into_response()
            }
            Err(e) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response(),
        }
    }
    async fn clear_faults<S: MockApp>(State(app): State<Arc<S>>) -> StatusCode {
        app.shared().faults.clear();
        StatusCode::NO_CONTENT
    }
    async fn expire_tokens<S: MockApp>(State(app): State<Arc<S>>) -> StatusCode {
        app.shared().write(|d| {
            if let Some(t) = S::tokens(d) {
                t.expire_all();
            }
        });
        StatusCode::NO_CONTENT
    }
    async fn clock_now<S: MockApp>(State(app): State<Arc<S>>) -> Json<serde_json::Value> {
        Json(clock_view(app.clock()))
    }
    async fn clock_move<S: MockApp>(
        State(app): State<Arc<S>>,
        body: axum::body::Bytes,
    ) -> Response {
        move_clock(app.clock(), &body)
    }
    Router::new()
        .route("/__admin/state", get(state::<S>))
        .route("/__admin/clock", get(clock_now::<S>).post(clock_move::<S>))
        .route("/__admin/reset", axum::routing::post(reset::<S>))
        .route(
            "/__admin/faults",
            get(faults::<S>)
                .post(add_fault::<S>)
                .delete(clear_faults::<S>),
        )
        .route(
            "/__admin/tokens/expire",
            axum::routing::post(expire_tokens::<S>),
        )
        .route("/__admin/health", get(|| async { "ok" }))
}

/// `scheme://host` of the request, for absolute paging links.
pub fn base_url(headers: &axum::http::HeaderMap, scheme: Option<Scheme>) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", scheme.map_or("http", |s| s.0))
}

/// A monotonically increasing counter (event sequence numbers, ids).
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// The next value, starting at 1.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// An event in an app's feed: sequence number, type, time and payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedEvent {
    /// Position in the feed, from 1; clients resume with `after=<seq>`.
    pub seq: u64,
    /// The event type, e.g. `SubscriptionCreated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO-8601 time the event happened.
    pub occurred_at: String,
    /// Who caused the change (`"customer"`, `"hub"`), for feeds whose readers must tell
    /// their own writes apart from new business events; none for feeds that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The event's body.
    pub data: serde_json::Value,
}

/// An append-only feed of events, resumable by sequence number.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Feed {
    /// The events, in order.
    pub events: Vec<FeedEvent>,
}

impl Feed {
    /// Appends an event without an origin that happened at `at_ms` (business time) and
    /// returns its sequence number.
    pub fn push(&mut self, at_ms: i64, kind: &str, data: serde_json::Value) -> u64 {
        self.push_from(at_ms, kind, None, data)
    }

    /// Appends an event that says who caused it and returns its sequence number.
    pub fn push_from(
        &mut self,
        at_ms: i64,
        kind: &str,
        origin: Option<&str>,
        data: serde_json::Value,
    ) -> u64 {
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.events.push(FeedEvent {
            seq,
            kind: kind.to_string(),
            occurred_at: rfc3339(at_ms),
            origin: origin.map(str::to_string),
            data,
        });
        seq
    }

    /// Events after `after`, at most `limit`.
    pub fn after(&self, after: u64, limit: usize) -> Vec<FeedEvent> {
        self.events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Completes an app's router: `/__admin`, the fault layer, the state.
pub fn finish<S: MockApp>(routes: Router<Arc<S>>, app: Arc<S>) -> Router {
    routes
        .merge(admin_router::<S>())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            fault_layer::<S>,
        ))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(e: u64, phase: u64, status: u16) -> FaultRule {
        FaultRule {
            every: Some(e),
            phase,
            ..FaultRule::on(
                "/v1/",
                FaultAction::Status {
                    status,
                    retry_after: None,
                },
            )
        }
    }

    #[test]
    fn every_nth_rules_fail_a_steady_spread_out_share() {
        let f = Faults::new(vec![every(10, 0, 500), every(10, 5, 503)]);
        let mut fired = Vec::new();
        for i in 1..=100u64 {
            if !f.decide(&Method::POST, "/v1/orders").is_empty() {
                fired.push(i);
            }
        }
        // Requests 5, 10, 15, ... : 20 of 100, never two in a row.
        assert_eq!(fired.len(), 20, "{fired:?}");
        assert!(fired.windows(2).all(|w| w[1] - w[0] == 5), "{fired:?}");
        assert!(f.decide(&Method::GET, "/other").is_empty());
        assert_eq!(f.list()[0].fired, 10);
    }
}
