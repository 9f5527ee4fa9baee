//! What every mock shares: fault rules, admin endpoints, persistence across restarts,
//! HTTPS with the generated CA, dropped connections, and no 500 for a client's mistake.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{form, form_token, get, json, send, zuora_token};
use l2f_mocks::kit::{FaultAction, FaultRule};
use l2f_mocks::server::{self, MocksConfig};
use l2f_mocks::store::Store;
use l2f_mocks::{customers, license, mail, marketo, salesforce, zuora};
use serde_json::json;

fn rule(path: &str, action: FaultAction) -> FaultRule {
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

#[tokio::test]
async fn faults_set_over_the_admin_endpoint_apply_per_route_and_in_the_apps_shape() {
    let r =
        salesforce::router(salesforce::Salesforce::new(Default::default(), None).expect("mock"));
    let add = send(
        &r,
        Method::POST,
        "/__admin/faults",
        &[("content-type", "application/json")],
        json!({ "path": "/services/data/", "action": { "kind": "status", "status": 503, "retry_after": 7 }, "nth": 2 }).to_string(),
    )
    .await;
    assert_eq!(add.status, StatusCode::CREATED, "{}", add.text);
    let q = "/services/data/v62.0/query?q=SELECT+Id+FROM+Account";
    assert_eq!(get(&r, q, "x").await.status, StatusCode::UNAUTHORIZED); // 1st: passes the fault
    let second = get(&r, q, "x").await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.header("retry-after").as_deref(), Some("7"));
    assert_eq!(second.json()[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert_eq!(get(&r, q, "x").await.status, StatusCode::UNAUTHORIZED); // 3rd: passes again
                                                                        // Other routes are untouched, admin routes never faulted.
    let listed = send(&r, Method::GET, "/__admin/faults", &[], "")
        .await
        .json();
    assert_eq!(listed[0]["seen"], 3);
    assert_eq!(listed[0]["fired"], 1);
    let bad = send(
        &r,
        Method::POST,
        "/__admin/faults",
        &[],
        "{\"action\":{\"kind\":\"explode\"}}",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&r, Method::DELETE, "/__admin/faults", &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&r, Method::GET, "/__admin/faults", &[], "")
            .await
            .json(),
        json!([])
    );
}

#[tokio::test]
async fn latency_and_limited_429_faults_from_configuration() {
    let cfg = marketo::Config {
        faults: vec![
            rule("/identity/", FaultAction::Latency { ms: 150 }),
            FaultRule {
                times: Some(1),
                ..rule(
                    "/v3/",
                    FaultAction::Status {
                        status: 429,
                        retry_after: Some(2),
                    },
                )
            },
        ],
        ..Default::default()
    };
    let mail_cfg = mail::Config {
        faults: cfg.faults.clone(),
        ..Default::default()
    };
    let m = mail::router(mail::Mail::new(mail_cfg, None).expect("mock"));
    let first = send(&m, Method::POST, "/v3/mg.l2f.example/messages", &[], "").await;
    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.header("retry-after").as_deref(), Some("2"));
    assert!(first.json()["message"].is_string());
    // Spent after one time: the next request reaches the handler (and its auth check).
    assert_eq!(
        send(&m, Method::POST, "/v3/mg.l2f.example/messages", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let z = zuora::router(
        zuora::Zuora::new(
            zuora::Config {
                faults: vec![rule("/oauth/", FaultAction::Latency { ms: 150 })],
                ..Default::default()
            },
            None,
        )
        .expect("mock"),
    );
    let started = Instant::now();
    form(&z, "/oauth/token", &[("grant_type", "client_credentials")]).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_reset_fault_breaks_the_response_without_a_socket() {
    let c = customers::router(
        customers::Customers::new(
            customers::Config {
                faults: vec![rule("/api/", FaultAction::Reset)],
                ..Default::default()
            },
            None,
        )
        .expect("app"),
    );
    let req = axum::http::Request::builder()
        .uri("/api/v1/events")
        .body(axum::body::Body::empty())
        .expect("req");
    let resp = tower::ServiceExt::oneshot(c, req)
        .await
        .expect("infallible");
    let body = http_body_util::BodyExt::collect(resp.into_body()).await;
    assert!(
        body.is_err(),
        "the body should fail like a reset connection"
    );
}

#[tokio::test]
async fn state_survives_a_restart_when_sqlite_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mocks.sqlite");
    let (sf_id, account_number, sub_key);
    {
        let store = Some(Arc::new(Store::open(&path).expect("store")));
        let sf = salesforce::router(
            salesforce::Salesforce::new(Default::default(), store.clone()).expect("mock"),
        );
        let c = salesforce::Config::default();
        let tok = form_token(
            &sf,
            "/services/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        )
        .await;
        sf_id = json(
            &sf,
            Method::POST,
            "/services/data/v62.0/sobjects/Account",
            &tok,
            &json!({ "Name": "Durable" }),
        )
        .await
        .json()["id"]
            .as_str()
            .expect("id")
            .to_string();

        let z = zuora::router(zuora::Zuora::new(Default::default(), store.clone()).expect("mock"));
        let zt = zuora_token(&z, &zuora::Config::default()).await;
        account_number = json(&z, Method::POST, "/v1/accounts", &zt, &json!({ "name": "Durable", "billToContact": { "firstName": "A", "lastName": "B", "country": "NL" } })).await.json()["accountNumber"].as_str().expect("n").to_string();

        let l = license::router(license::License::new(Default::default(), store).expect("app"));
        sub_key = json(
            &l,
            Method::PUT,
            "/api/v1/subscriptions/s1",
            "l2f-license-token",
            &json!({ "account_id": "a", "plan": "p", "seats": 1, "terms_accepted": true }),
        )
        .await
        .json()["key"]
            .as_str()
            .expect("key")
            .to_string();
    }
    // A new process: the same file, fresh apps.
    let store = Some(Arc::new(Store::open(&path).expect("store")));
    let sf = salesforce::router(
        salesforce::Salesforce::new(Default::default(), store.clone()).expect("mock"),
    );
    let state = send(&sf, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(state["records"][&sf_id]["fields"]["Name"], "Durable");
    let z = zuora::router(zuora::Zuora::new(Default::default(), store.clone()).expect("mock"));
    let zstate = send(&z, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(zstate["accounts"][&account_number]["name"], "Durable");
    let l = license::router(license::License::new(Default::default(), store).expect("app"));
    assert_eq!(
        get(&l, "/api/v1/licenses/s1", "l2f-license-token")
            .await
            .json()["key"],
        sub_key.as_str()
    );
}

#[tokio::test]
async fn admin_reset_forgets_everything() {
    let m = mail::router(mail::Mail::new(Default::default(), None).expect("mock"));
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "api:key-l2f-mock"
        )
    );
    send(
        &m,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "from=a%40b.example&to=c%40d.example&text=x",
    )
    .await;
    assert_eq!(
        send(&m, Method::GET, "/__admin/state", &[], "")
            .await
            .json()["messages"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        send(&m, Method::POST, "/__admin/reset", &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&m, Method::GET, "/__admin/state", &[], "")
            .await
            .json()["messages"],
        json!([])
    );
}

/// Garbage at every mutating route of every app: a 4xx (or the API's 200 error body),
/// never a 5xx.
#[tokio::test]
async fn garbage_bodies_never_get_a_server_error() {
    let cfg = MocksConfig::default();
    let routers = cfg.routers(None).expect("routers");
    let routes: &[(&str, Method, &str)] = &[
        ("salesforce", Method::POST, "/services/oauth2/token"),
        (
            "salesforce",
            Method::POST,
            "/services/data/v62.0/sobjects/Account",
        ),
        (
            "salesforce",
            Method::PATCH,
            "/services/data/v62.0/sobjects/Account/001000000000001AAA",
        ),
        (
            "salesforce",
            Method::PATCH,
            "/services/data/v62.0/sobjects/Account/Ext__c/1",
        ),
        ("zuora", Method::POST, "/oauth/token"),
        ("zuora", Method::POST, "/v1/accounts"),
        ("zuora", Method::POST, "/v1/orders"),
        ("zuora", Method::PUT, "/v1/subscriptions/A-S1"),
        ("zuora", Method::POST, "/__admin/payments/decline"),
        ("zuora", Method::POST, "/__admin/accounts/A00000001/card"),
        ("zuora", Method::POST, "/__admin/clock"),
        ("marketo", Method::POST, "/rest/v1/leads.json"),
        ("marketo", Method::GET, "/identity/oauth/token"),
        ("mail", Method::POST, "/v3/mg.l2f.example/messages"),
        ("customers", Method::POST, "/api/v1/accounts"),
        ("customers", Method::POST, "/api/v1/purchases"),
        ("customers", Method::POST, "/api/v1/signups"),
        ("customers", Method::PUT, "/api/v1/subscriptions/s/license"),
        ("customers", Method::POST, "/api/v1/hub/notices"),
        ("mail", Method::POST, "/__admin/clock"),
        ("license", Method::PUT, "/api/v1/subscriptions/s"),
        (
            "license",
            Method::PUT,
            "/api/v1/subscriptions/s/communication-profile",
        ),
    ];
    let garbage = [
        "",
        "{",
        "null",
        "[]",
        "\"x\"",
        "{\"input\":7}",
        "\u{0}\u{1}\u{2}",
        "{\"name\":{\"deep\":[1,2,{}]}}",
        "a=b&c",
    ];
    for (app, method, path) in routes {
        let r = &routers.iter().find(|(n, _, _)| n == app).expect("app").1;
        // With valid-looking credentials where cheap, so the body is what gets parsed.
        let token = match *app {
            "customers" => "l2f-customers-token".to_string(),
            "license" => "l2f-license-token".to_string(),
            _ => "whatever".to_string(),
        };
        let auth = format!("Bearer {token}");
        for g in garbage {
            for ct in [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
            ] {
                let reply = send(
                    r,
                    method.clone(),
                    path,
                    &[("authorization", &auth), ("content-type", ct)],
                    g,
                )
                .await;
                assert!(
                    !reply.status.is_server_error(),
                    "{app} {method} {path} {g:?} {ct} → {} {}",
                    reply.status,
                    reply.text
                );
            }
        }
    }
}

/// The real sockets: every app over HTTP and HTTPS (trusting the CA written to a file),
/// HTTP/2 included, and a reset fault that drops the connection.
#[tokio::test]
async fn served_over_http_and_https_with_the_generated_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    let mut cfg = MocksConfig {
        ca_file: Some(ca_file.clone()),
        ..Default::default()
    };
    cfg.salesforce.faults = vec![rule("/services/data/v62.0/limits", FaultAction::Reset)];
    let running = server::start(&cfg).await.expect("start");
    assert_eq!(running.endpoints.len(), 6);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).expect("ca")).expect("pem");
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    for ep in &running.endpoints {
        for base in [Some(&ep.http), ep.https.as_ref()].into_iter().flatten() {
            let r = client
                .get(format!("{base}/__admin/health"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{base}");
        }
    }
    let untrusting = reqwest::Client::new();
    let https = running
        .endpoint("salesforce")
        .and_then(|e| e.https.clone())
        .expect("https");
    assert!(untrusting
        .get(format!("{https}/__admin/health"))
        .send()
        .await
        .is_err());

    // The token's instance_url points back at the listener it came from.
    let c = salesforce::Config::default();
    let tok: serde_json::Value = client
        .post(format!("{https}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(tok["instance_url"], https.as_str());
    let dropped = client
        .get(format!("{https}/services/data/v62.0/limits"))
        .bearer_auth(tok["access_token"].as_str().expect("t"))
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the reset fault should drop the connection: {dropped:?}"
    );
    running.shutdown().await;
}

#[test]
fn only_refuses_unknown_apps_and_the_host_must_be_loopback() {
    let mut cfg = MocksConfig::default();
    assert!(cfg.only(&["salesforce".into(), "jira".into()]).is_err());
    cfg.only(&["mail".into()]).expect("only");
    assert_eq!(cfg.routers(None).expect("routers").len(), 1);
    let toml = "host = \"127.0.0.1\"\n[marketo]\nrequired_fields = [\"email\"]\n[marketo.listen]\nhttp_port = 0\nhttps_port = 0\n";
    let parsed: MocksConfig = toml::from_str(toml).expect("toml");
    assert_eq!(parsed.marketo.required_fields, vec!["email".to_string()]);
    assert!(toml::from_str::<MocksConfig>("[marketo]\nnope = 1\n").is_err());
}

#[tokio::test]
async fn a_non_loopback_host_is_refused() {
    let cfg = MocksConfig {
        host: "0.0.0.0".parse().expect("ip"),
        ..Default::default()
    };
    assert!(server::start(&cfg).await.is_err());
}

#[test]
fn the_example_configuration_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/mocks.example.toml");
    let cfg = MocksConfig::from_toml_file(std::path::Path::new(path)).expect("example parses");
    assert_eq!(cfg.marketo.faults.len(), 1);
    assert_eq!(cfg.salesforce.listen.https_port, Some(18010));
    assert!(!cfg.license.listen.enabled);
    assert_eq!(cfg.routers(None).expect("routers").len(), 5);
}

#[tokio::test]
async fn a_certificate_from_configuration_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("write");
    std::fs::write(&key, issued.key_pair.serialize_pem()).expect("write");
    let mut cfg = MocksConfig {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Default::default()
    };
    cfg.only(&["mail".into()]).expect("only");
    let running = server::start(&cfg).await.expect("start");
    let trust = reqwest::Certificate::from_pem(issued.cert.pem().as_bytes()).expect("pem");
    let client = reqwest::Client::builder()
        .add_root_certificate(trust)
        .build()
        .expect("client");
    let https = running
        .endpoint("mail")
        .and_then(|e| e.https.clone())
        .expect("https");
    let r = client
        .get(format!("{https}/__admin/health"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    running.shutdown().await;

    let half = MocksConfig {
        tls_cert: Some(cert),
        ..Default::default()
    };
    assert!(server::start(&half).await.is_err());
}

/// A reset fault on a real socket: the client sees the connection reset (RST), with no
/// HTTP answer at all.
#[tokio::test]
async fn a_reset_fault_resets_the_tcp_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = MocksConfig::default();
    cfg.only(&["license".into()]).expect("only");
    cfg.license.faults = vec![rule("/api/", FaultAction::Reset)];
    let running = server::start(&cfg).await.expect("start");
    let addr = running
        .endpoint("license")
        .expect("ep")
        .http
        .trim_start_matches("http://")
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("no hang");
    match read {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!(
            "expected a reset, read {n} bytes: {:?}",
            String::from_utf8_lossy(&buf)
        ),
    }
    running.shutdown().await;
}
