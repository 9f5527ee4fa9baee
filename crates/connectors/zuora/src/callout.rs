//! The hub's endpoint for Zuora's callout notifications, the inbound half of the source.
//!
//! Zuora POSTs one JSON object of merge fields per notification, with the headers
//! `Zuora-Notification-Id` (the same on every retry of one notification), `Zuora-Request-Id`
//! and `X-Amzn-Trace-Id`, and authenticates with HTTP basic auth: the first request carries
//! no credentials, a 401 with `WWW-Authenticate: Basic` gets the same request again with them
//! (or they are sent at once with preemptive authentication). Any non-2xx answer is retried.
//! <https://docs.zuora.com/en/zuora-platform/extensibility/events-and-notifications/notifications/callout-notification-overview>,
//! <https://knowledgecenter.zuora.com/Central_Platform/Notifications/E_Configure_Callout_Notifications/Message_sequence_for_Zuora_callout_basic_authentication>
//!
//! What the endpoint guarantees:
//! - **no one gets in who does not belong**: a request without the configured credentials
//!   gets 401 with `WWW-Authenticate: Basic realm="l2f"` and produces nothing;
//! - **bounded, strict input**: a body past `max_body_bytes` gets 413, anything that is not
//!   a JSON object of the expected merge fields (or lacks `Zuora-Notification-Id`) gets 400 —
//!   never a 5xx for a bad request, never a half event;
//! - **200 means it is in Kafka**: a notification is answered 200 only once its event (or its
//!   dead letter) is committed by the source loop ([`l2f_bus::source::Source::committed`]),
//!   or when its id was committed before (a retry); a standby replica (not the lease holder)
//!   answers 503, as does a notification not committed within `callout_answer_timeout` —
//!   Zuora retries either, and the retry is deduplicated by its notification id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use l2f_secrets::Secret;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::mapping::Notification;

/// The realm of the basic-auth challenge.
pub const REALM: &str = "l2f";

/// How many notifications may wait for the source at once before callers get 503.
const INBOX: usize = 4096;

/// A notification received over HTTP, waiting for its event to be committed.
#[derive(Debug)]
pub struct Inbound {
    /// The parsed merge fields.
    pub notification: Notification,
    /// The body as received (for a dead letter).
    pub raw: Value,
    /// Told once the notification's event is committed.
    pub reply: oneshot::Sender<()>,
}

/// The notification ids committed so far (the cursor's window), shared by the source loop
/// and the endpoint so a retry of a committed notification is answered at once.
#[derive(Debug, Default)]
pub struct Seen(RwLock<HashSet<String>>);

impl Seen {
    /// Replaces the set with the committed window.
    pub fn replace(&self, ids: impl IntoIterator<Item = String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = ids.into_iter().collect();
    }
    /// Whether `id` is committed.
    pub fn contains(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// Whether this replica is the active source (the lease holder).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the endpoint needs.
#[derive(Clone)]
pub struct CalloutState {
    username: String,
    password: Secret,
    gate: Gate,
    seen: Arc<Seen>,
    inbox: mpsc::Sender<Inbound>,
    answer_timeout: Duration,
    max_body: usize,
}

/// The source's side of the endpoint: the notifications to commit and the shared window.
pub struct CalloutInbox {
    /// Notifications in arrival order.
    pub rx: mpsc::Receiver<Inbound>,
    /// The committed ids.
    pub seen: Arc<Seen>,
}

/// The endpoint's settings.
pub struct CalloutSettings {
    /// Basic-auth user name.
    pub username: String,
    /// Basic-auth password.
    pub password: Secret,
    /// Largest body accepted.
    pub max_body: usize,
    /// Longest wait for a commit before 503.
    pub answer_timeout: Duration,
}

/// The endpoint's state and the source's inbox, connected; `gate` says whether this replica
/// is active.
pub fn channel(settings: CalloutSettings, gate: Gate) -> (CalloutState, CalloutInbox) {
    let (tx, rx) = mpsc::channel(INBOX);
    let seen = Arc::new(Seen::default());
    (
        CalloutState {
            username: settings.username,
            password: settings.password,
            gate,
            seen: seen.clone(),
            inbox: tx,
            answer_timeout: settings.answer_timeout,
            max_body: settings.max_body,
        },
        CalloutInbox { rx, seen },
    )
}

fn answer(status: StatusCode, result: &str, detail: Option<String>) -> Response {
    let mut body = json!({ "result": result });
    if let Some(d) = detail {
        body["detail"] = json!(d);
    }
    (status, Json(body)).into_response()
}

fn challenge() -> Response {
    let mut r = answer(StatusCode::UNAUTHORIZED, "unauthorized", None);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"l2f\", charset=\"UTF-8\""),
    );
    r
}

fn unavailable(detail: &str) -> Response {
    let mut r = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        Some(detail.into()),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

impl CalloutState {
    /// Whether the request carries the configured basic-auth credentials (compared in
    /// constant time).
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, b64)) = v.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let Some(colon) = raw.iter().position(|b| *b == b':') else {
            return false;
        };
        let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
        let user_ok = user.ct_eq(self.username.as_bytes());
        let pass_ok = pass.ct_eq(self.password.expose().as_bytes());
        bool::from(user_ok & pass_ok)
    }
}

/// `POST <callout_path>`: one notification.
async fn receive(State(s): State<CalloutState>, headers: HeaderMap, body: Body) -> Response {
    if !s.authorised(&headers) {
        return challenge();
    }
    if !(s.gate)() {
        return unavailable("this replica is standing by; the active one takes callouts");
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > s.max_body) {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
            Some(format!("the body may be at most {} bytes", s.max_body)),
        );
    }
    let bytes = match axum::body::to_bytes(body, s.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut too_large = false;
            while let Some(c) = cause {
                too_large |= c.is::<http_body_util::LengthLimitError>();
                cause = c.source();
            }
            return if too_large {
                answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too large",
                    Some(format!("the body may be at most {} bytes", s.max_body)),
                )
            } else {
                answer(
                    StatusCode::BAD_REQUEST,
                    "bad request",
                    Some(format!("body: {e}")),
                )
            };
        }
    };
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json");
    if !json_type {
        return answer(
            StatusCode::BAD_REQUEST,
            "bad request",
            Some("Content-Type must be application/json".into()),
        );
    }
    let Some(id) = headers
        .get("Zuora-Notification-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            "bad request",
            Some("the Zuora-Notification-Id header is missing".into()),
        );
    };
    let raw: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "bad request",
                Some(format!("the body is not JSON: {e}")),
            )
        }
    };
    let notification = match Notification::parse(id, &raw) {
        Ok(n) => n,
        Err(why) => return answer(StatusCode::BAD_REQUEST, "bad request", Some(why)),
    };
    if !notification.mapped() {
        debug!(notification_id = id, event_type = %notification.event_type, "callout of a type the hub does not map; acknowledged");
        return answer(StatusCode::OK, "ignored", None);
    }
    if s.seen.contains(id) {
        return answer(StatusCode::OK, "duplicate", None);
    }
    let (reply, done) = oneshot::channel();
    let inbound = Inbound {
        notification,
        raw,
        reply,
    };
    if s.inbox.try_send(inbound).is_err() {
        return unavailable("too many notifications waiting; retry later");
    }
    match tokio::time::timeout(s.answer_timeout, done).await {
        Ok(Ok(())) => answer(StatusCode::OK, "committed", None),
        Ok(Err(_)) => unavailable("the source stopped before the notification was committed"),
        Err(_) => {
            warn!(
                notification_id = id,
                "callout not committed in time; answered 503 for a retry"
            );
            unavailable("not committed in time; retry (it is deduplicated)")
        }
    }
}

/// The endpoint's router: `POST path`; any other path or method gets 404 / 405.
pub fn router(path: &str, state: CalloutState) -> Router {
    Router::new()
        .route(path, post(receive))
        .fallback(|| async { answer(StatusCode::NOT_FOUND, "not found", None) })
        .with_state(state)
}

/// Why the listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address cannot be bound.
    #[error("callout_listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("callout_tls: {0}")]
    Tls(String),
}

/// A rustls server configuration from PEM files (chain, key).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ListenError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad =
        |p: &Path, e: &dyn std::fmt::Display| ListenError::Tls(format!("{}: {e}", p.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    if chain.is_empty() {
        return Err(bad(cert, &"no certificate"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ListenError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| ListenError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound listener, not yet serving.
pub struct Listener {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    /// Binds `addr`, with TLS when given.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ListenError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        Ok(Listener {
            listener,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
        })
    }

    /// The bound address (the port, when bound to 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown`; each connection on its own task.
    pub fn serve(self, router: Router, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = self.listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            warn!(error = %e, "callout listener accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let tls = self.tls.clone();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => serve_conn(s, router, stop).await,
                            Err(e) => debug!(%peer, error = %e, "callout TLS handshake failed"),
                        },
                        None => serve_conn(stream, router, stop).await,
                    }
                });
            }
        })
    }
}

async fn serve_conn<I>(io: I, router: Router, stop: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        router.clone().oneshot(req.map(Body::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => {}
        _ = stop.cancelled() => {}
    }
}
