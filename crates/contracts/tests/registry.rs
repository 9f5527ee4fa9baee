//! The schema registry client against a tiny in-test server that speaks the Confluent Schema
//! Registry REST shapes (register, fetch by id, compatibility, error bodies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::lead_captured;
use l2f_contracts::registry::RegistryClient;
use l2f_contracts::{compat, Catalog, Codec, Error, Framing, Schema};
use serde_json::{json, Value};

#[derive(Default)]
struct Registry {
    schemas: Vec<String>,
    subjects: HashMap<String, Vec<usize>>,
    requests: HashMap<&'static str, usize>,
}

type Shared = Arc<Mutex<Registry>>;

fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": 40403, "message": "Schema not found"})),
    )
}

async fn register(
    State(s): State<Shared>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut r = s.lock().unwrap();
    *r.requests.entry("register").or_default() += 1;
    let text = body["schema"].as_str().unwrap_or_default().to_owned();
    let id = match r.schemas.iter().position(|x| *x == text) {
        Some(i) => i,
        None => {
            r.schemas.push(text);
            r.schemas.len() - 1
        }
    };
    r.subjects.entry(subject).or_default().push(id);
    Json(json!({ "id": id + 1 }))
}

async fn by_id(
    State(s): State<Shared>,
    Path(id): Path<usize>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let mut r = s.lock().unwrap();
    *r.requests.entry("fetch").or_default() += 1;
    match id.checked_sub(1).and_then(|i| r.schemas.get(i)) {
        Some(text) => Ok(Json(json!({ "schema": text }))),
        None => Err(not_found()),
    }
}

async fn compatibility(
    State(s): State<Shared>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let r = s.lock().unwrap();
    let latest = r
        .subjects
        .get(&subject)
        .and_then(|v| v.last())
        .ok_or_else(not_found)?;
    let new =
        Schema::parse_str(body["schema"].as_str().unwrap_or_default()).map_err(|_| not_found())?;
    let old = Schema::parse_str(&r.schemas[*latest]).map_err(|_| not_found())?;
    // BACKWARD, the registry's default level.
    Ok(Json(
        json!({ "is_compatible": compat::check(&new, &old).is_empty() }),
    ))
}

async fn serve() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(by_id))
        .route(
            "/compatibility/subjects/{subject}/versions/latest",
            post(compatibility),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn registered_ids_frame_records_and_a_second_hub_learns_them_by_id() {
    let (url, state) = serve().await;
    let client = RegistryClient::new(&url);
    let producer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    client.register_all(&producer).await.unwrap();
    assert_eq!(state.lock().unwrap().schemas.len(), 16);
    let lead = lead_captured();
    let frame = producer.encode(&lead).unwrap();
    assert_eq!(frame[0], 0);
    let id = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    assert_eq!(producer.decode::<LeadCaptured>(&frame).unwrap(), lead);

    // Registering again is served from the cache.
    client.register_all(&producer).await.unwrap();
    assert_eq!(state.lock().unwrap().requests["register"], 16);

    // Another hub, knowing no ids, fetches the writer schema by id once.
    let consumer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    assert!(
        matches!(consumer.decode::<LeadCaptured>(&frame), Err(Error::UnknownSchemaId(i)) if i == id)
    );
    let other = RegistryClient::new(&url);
    other.learn(&consumer, id).await.unwrap();
    other.learn(&consumer, id).await.unwrap();
    assert_eq!(state.lock().unwrap().requests["fetch"], 1);
    assert_eq!(consumer.decode::<LeadCaptured>(&frame).unwrap(), lead);
}

#[tokio::test]
async fn compatibility_and_errors_follow_the_registry() {
    let (url, _state) = serve().await;
    let client = RegistryClient::new(&url);
    let schema = Catalog::embedded().get("LeadCaptured").unwrap().clone();
    client.register(&schema).await.unwrap();
    assert!(client.is_compatible(&schema).await.unwrap());
    let mut json = schema.to_full_json();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "score", "type": "int", "doc": "x"}));
    let breaking = Schema::parse_str(&json.to_string()).unwrap();
    assert!(!client.is_compatible(&breaking).await.unwrap());
    let err = client.fetch(4242).await.unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("40403"), "{err}");
    let mut nobody = l2f_contracts::registry::RegistryConfig::new("http://127.0.0.1:9");
    nobody.retry_wait = std::time::Duration::from_millis(10);
    let down = RegistryClient::with_config(&nobody).unwrap();
    let err = down.fetch(1).await.unwrap_err();
    assert!(matches!(err, Error::Registry(_)));
    assert!(err.to_string().contains("(after 4 attempts)"), "{err}");
}

#[tokio::test]
async fn a_frame_written_with_an_older_registered_version_is_resolved_by_id() {
    let (url, _state) = serve().await;
    let client = RegistryClient::new(&url);
    let v1 = Catalog::embedded_history()[0]
        .1
        .get("LeadCaptured")
        .unwrap()
        .clone();
    let v1_id = client.register(&v1).await.unwrap();

    // A v1 producer's frame: 00 + id + Avro written with the v1 schema (no utm_campaign).
    let fast: serde_avro_fast::Schema = v1.to_full_json().to_string().parse().unwrap();
    let mut json = serde_json::to_value(lead_captured()).unwrap();
    json.as_object_mut().unwrap().remove("utm_campaign");
    let mut frame = vec![0];
    frame.extend_from_slice(&v1_id.to_be_bytes());
    let frame = serde_avro_fast::to_datum(
        &json,
        frame,
        &mut serde_avro_fast::ser::SerializerConfig::new(&fast),
    )
    .unwrap();

    let consumer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    RegistryClient::new(&url)
        .learn(&consumer, v1_id)
        .await
        .unwrap();
    let mut expected = lead_captured();
    expected.utm_campaign = None;
    assert_eq!(consumer.decode::<LeadCaptured>(&frame).unwrap(), expected);
}

// ---------------------------------------------------------------------------------------
// A managed registry: basic auth, TLS with a private CA, retries.
//
// The shapes follow Confluent Schema Registry: HTTP basic auth (Confluent Cloud: API key and
// secret) answered 401 `{"error_code":401,"message":"Unauthorized"}` without it
// (docs.confluent.io, "Configure Schema Registry Clients for Basic HTTP Authentication");
// errors as `{"error_code","message"}`; clients retry 408/429/5xx with full-jitter backoff
// (`max.retries` 3, `retries.wait.ms`, `retries.max.wait.ms`: docs.confluent.io,
// "Configuration Reference for Schema Registry Clients on Confluent Platform").

mod secure {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::extract::{Request, State};
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use base64::Engine as _;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use l2f_contracts::registry::{RegistryClient, RegistryConfig};
    use l2f_contracts::{Catalog, Error};
    use l2f_secrets::SecretRef;
    use serde_json::json;

    const USER: &str = "SRKEY123";
    const PASSWORD: &str = "sr-secret-do-not-print";

    /// What the gate in front of the registry does and has seen.
    struct Gate {
        /// Authorized requests still to be answered with `fail_status`.
        fail_next: AtomicUsize,
        fail_status: StatusCode,
        retry_after: Option<&'static str>,
        unauthorized: AtomicUsize,
        failed: AtomicUsize,
        served: AtomicUsize,
    }

    impl Gate {
        fn new(
            fail_next: usize,
            fail_status: StatusCode,
            retry_after: Option<&'static str>,
        ) -> Arc<Gate> {
            Arc::new(Gate {
                fail_next: AtomicUsize::new(fail_next),
                fail_status,
                retry_after,
                unauthorized: AtomicUsize::new(0),
                failed: AtomicUsize::new(0),
                served: AtomicUsize::new(0),
            })
        }
        fn counts(&self) -> (usize, usize, usize) {
            (
                self.unauthorized.load(Ordering::SeqCst),
                self.failed.load(Ordering::SeqCst),
                self.served.load(Ordering::SeqCst),
            )
        }
    }

    /// 401 without the right basic credentials; then the first `fail_next` requests fail.
    async fn gate(State(g): State<Arc<Gate>>, req: Request, next: Next) -> Response {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        if req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&want)
        {
            g.unauthorized.fetch_add(1, Ordering::SeqCst);
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error_code": 401, "message": "Unauthorized"})),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"SchemaRegistry\""),
            );
            return r;
        }
        if g.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            g.failed.fetch_add(1, Ordering::SeqCst);
            let mut r = (
                g.fail_status,
                Json(
                    json!({"error_code": g.fail_status.as_u16() * 100 + 3, "message": "try again"}),
                ),
            )
                .into_response();
            if let Some(after) = g.retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
            }
            return r;
        }
        g.served.fetch_add(1, Ordering::SeqCst);
        next.run(req).await
    }

    /// The registry of this file behind the gate, on an HTTPS listener whose certificate a
    /// CA generated here signed; returns the URL and the CA file.
    async fn serve_tls(gate_state: Arc<Gate>, dir: &tempfile::TempDir) -> (String, PathBuf) {
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(super::register))
            .route("/schemas/ids/{id}", get(super::by_id))
            .with_state(super::Shared::default())
            .layer(middleware::from_fn_with_state(gate_state, gate));
        let (config, ca_pem) = tls();
        let ca = dir.path().join("registry-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    }
                });
            }
        });
        (format!("https://127.0.0.1:{}", addr.port()), ca)
    }

    /// A CA and a certificate for 127.0.0.1 it signed (as crates/mocks/src/tls.rs makes them).
    fn tls() -> (Arc<rustls::ServerConfig>, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        (Arc::new(config), ca_cert.pem())
    }

    fn config(url: &str, ca: Option<PathBuf>, credentials: bool) -> RegistryConfig {
        let mut cfg = RegistryConfig::new(url);
        if credentials {
            cfg.username = Some(USER.into());
            cfg.password = Some(SecretRef::Inline(PASSWORD.into()));
        }
        cfg.ca_file = ca;
        cfg.retry_wait = Duration::from_millis(20);
        cfg.retry_max_wait = Duration::from_millis(200);
        cfg
    }

    fn lead_schema() -> l2f_contracts::Schema {
        Catalog::embedded().get("LeadCaptured").unwrap().clone()
    }

    #[tokio::test]
    async fn a_registry_demanding_basic_auth_over_tls_is_reached_through_two_503s() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(2, StatusCode::SERVICE_UNAVAILABLE, None);
        let (url, ca) = serve_tls(g.clone(), &dir).await;
        let client = RegistryClient::with_config(&config(&url, Some(ca), true)).unwrap();
        let id = client.register(&lead_schema()).await.unwrap();
        assert_eq!(id, 1);
        // Two 503s retried, the third attempt served; never sent without credentials.
        assert_eq!(g.counts(), (0, 2, 1));
        // Fetched by id from a fresh client (no cache): one request.
        let other = RegistryClient::with_config(&config(
            &url,
            Some(dir.path().join("registry-ca.pem")),
            true,
        ))
        .unwrap();
        assert!(other.fetch(id).await.unwrap().contains("LeadCaptured"));
        assert_eq!(g.counts(), (0, 2, 2));
    }

    #[tokio::test]
    async fn without_credentials_the_401_is_named_at_once_and_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(0, StatusCode::SERVICE_UNAVAILABLE, None);
        let (url, ca) = serve_tls(g.clone(), &dir).await;
        let client = RegistryClient::with_config(&config(&url, Some(ca.clone()), false)).unwrap();
        let err = client
            .register(&lead_schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("401") && err.contains("wants credentials"),
            "{err}"
        );
        assert_eq!(g.counts(), (1, 0, 0));
        // Wrong ones: refused, and the password sent never appears in the error.
        let mut wrong = config(&url, Some(ca), true);
        wrong.password = Some(SecretRef::Inline("not-it".into()));
        let err = RegistryClient::with_config(&wrong)
            .unwrap()
            .register(&lead_schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(!err.contains("not-it") && !err.contains(PASSWORD), "{err}");
        assert_eq!(g.counts(), (2, 0, 0));
    }

    #[tokio::test]
    async fn a_certificate_from_an_untrusted_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(0, StatusCode::SERVICE_UNAVAILABLE, None);
        let (url, _ca) = serve_tls(g.clone(), &dir).await;
        let start = Instant::now();
        let err = RegistryClient::with_config(&config(&url, None, true))
            .unwrap()
            .register(&lead_schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("certificate"), "{err}");
        // Final at once: only exhausted retries end in "(after N attempts)".
        assert!(!err.contains("(after"), "retried: {err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(g.counts(), (0, 0, 0), "nothing reached the registry");
        // A CA file that is not PEM stops the client before any request.
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = RegistryClient::with_config(&config(&url, Some(junk), true)).unwrap_err();
        assert!(err.to_string().contains("junk.pem"), "{err}");
    }

    #[tokio::test]
    async fn retries_end_after_max_retries_and_say_how_many_attempts_were_made() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(usize::MAX, StatusCode::BAD_GATEWAY, None);
        let (url, ca) = serve_tls(g.clone(), &dir).await;
        let client = RegistryClient::with_config(&config(&url, Some(ca), true)).unwrap();
        let err = client.register(&lead_schema()).await.unwrap_err();
        assert!(matches!(err, Error::Registry(_)));
        let err = err.to_string();
        assert!(
            err.contains("502") && err.contains("after 4 attempts"),
            "{err}"
        );
        assert_eq!(
            g.counts(),
            (0, 4, 0),
            "one attempt and max_retries (3) more"
        );
    }

    #[tokio::test]
    async fn a_429_waits_for_its_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gate::new(1, StatusCode::TOO_MANY_REQUESTS, Some("1"));
        let (url, ca) = serve_tls(g.clone(), &dir).await;
        let mut cfg = config(&url, Some(ca), true);
        cfg.retry_max_wait = Duration::from_secs(5);
        let client = RegistryClient::with_config(&cfg).unwrap();
        let start = Instant::now();
        client.register(&lead_schema()).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(g.counts(), (0, 1, 1));
    }

    #[tokio::test]
    async fn a_registry_not_listening_yet_is_retried_until_it_is() {
        // A port nobody listens on; the registry starts there while the client backs off.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cfg = RegistryConfig::new(&url);
        cfg.max_retries = 10;
        cfg.retry_wait = Duration::from_millis(100);
        cfg.retry_max_wait = Duration::from_millis(100);
        let client = RegistryClient::with_config(&cfg).unwrap();
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(super::register))
            .with_state(super::Shared::default());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        assert_eq!(client.register(&lead_schema()).await.unwrap(), 1);
    }

    #[test]
    fn the_configuration_refuses_unknown_keys_and_half_credentials() {
        let cfg: RegistryConfig = serde_json::from_value(json!({
            "url": "https://sr.example.com",
            "username": "key",
            "password": {"env": "L2F_TEST_REGISTRY_PASSWORD_UNSET"},
            "retry_wait": "250ms",
        }))
        .unwrap();
        assert_eq!(cfg.max_retries, 3);
        assert_eq!(cfg.retry_wait, Duration::from_millis(250));
        let err = RegistryClient::with_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("L2F_TEST_REGISTRY_PASSWORD_UNSET"), "{err}");
        let unknown = serde_json::from_value::<RegistryConfig>(json!({"url": "x", "user": "k"}));
        assert!(unknown.unwrap_err().to_string().contains("user"));
        let mut half = RegistryConfig::new("https://sr.example.com");
        half.username = Some("key".into());
        assert!(RegistryClient::with_config(&half)
            .unwrap_err()
            .to_string()
            .contains("no password"));
    }
}
