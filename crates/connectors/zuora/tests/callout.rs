//! The callout endpoint over real HTTP (and HTTPS), without Kafka: who gets in, what is
//! accepted, and when a callout is answered — Zuora's callout notifications authenticate with
//! basic auth after a 401 challenge and retry any non-2xx answer
//! (<https://knowledgecenter.zuora.com/Central_Platform/Notifications/E_Configure_Callout_Notifications/Message_sequence_for_Zuora_callout_basic_authentication>).
//! The source loop's side (the inbox) is played by the test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_connector_zuora::callout::{self, CalloutInbox, CalloutSettings, Listener};
use l2f_secrets::Secret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const USER: &str = "zuora-callouts";
const PASSWORD: &str = "callout-secret";

struct Endpoint {
    url: String,
    inbox: CalloutInbox,
    active: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn endpoint(
    max_body: usize,
    answer_timeout: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Endpoint {
    let active = Arc::new(AtomicBool::new(true));
    let gate = active.clone();
    let (state, inbox) = callout::channel(
        CalloutSettings {
            username: USER.into(),
            password: Secret::new(PASSWORD.to_string()),
            max_body,
            answer_timeout,
        },
        Arc::new(move || gate.load(Ordering::Relaxed)),
    );
    let https = tls.is_some();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    listener.serve(callout::router("/callouts/zuora", state), stop.clone());
    let scheme = if https { "https" } else { "http" };
    Endpoint {
        url: format!("{scheme}://localhost:{}/callouts/zuora", addr.port()),
        inbox,
        active,
        stop,
    }
}

fn created(n: &str) -> serde_json::Value {
    json!({"eventType": "SubscriptionCreated", "eventCategory": "user.notification:SubscriptionCreated",
           "subscriptionNumber": n, "accountNumber": "cust_1-INC", "orderNumber": "O-1"})
}

fn post(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("Zuora-Notification-Id", id)
        .json(body)
}

#[tokio::test]
async fn a_callout_without_or_with_wrong_credentials_is_challenged_and_reaches_nothing() {
    let mut ep = endpoint(65536, Duration::from_secs(2), None).await;
    let http = reqwest::Client::new();
    for auth in [None, Some((USER, "wrong")), Some(("someone", PASSWORD))] {
        let mut req = post(&http, &ep.url, "n-1", &created("A-S1"));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Basic realm=\"l2f\""), "{challenge}");
    }
    // Even a standby challenges first: nothing is said without credentials.
    ep.active.store(false, Ordering::Relaxed);
    let resp = post(&http, &ep.url, "n-1", &created("A-S1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        ep.inbox.rx.try_recv().is_err(),
        "nothing reached the source"
    );
}

#[tokio::test]
async fn anything_but_the_expected_json_is_400_and_an_oversized_body_413() {
    let mut ep = endpoint(2048, Duration::from_secs(2), None).await;
    let http = reqwest::Client::new();
    let authed = |req: reqwest::RequestBuilder| req.basic_auth(USER, Some(PASSWORD));
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            http.post(&ep.url)
                .header("Zuora-Notification-Id", "n-2")
                .header("Content-Type", "application/json")
                .body("{not json"),
            "not JSON",
        ),
        (
            http.post(&ep.url)
                .header("Zuora-Notification-Id", "n-2")
                .header("Content-Type", "text/plain")
                .body(created("A-S2").to_string()),
            "Content-Type",
        ),
        (
            http.post(&ep.url).json(&created("A-S2")),
            "Zuora-Notification-Id",
        ),
        (
            post(
                &http,
                &ep.url,
                "n-2",
                &json!({"eventType": "SubscriptionCreated"}),
            ),
            "subscriptionNumber",
        ),
        (
            post(
                &http,
                &ep.url,
                "n-2",
                &json!({"eventType": "SubscriptionCreated", "subscriptionNumber": 7}),
            ),
            "subscriptionNumber",
        ),
        (post(&http, &ep.url, "n-2", &json!([1, 2])), "JSON object"),
    ];
    for (req, named) in cases {
        let resp = authed(req).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{named}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{named}: {body}"
        );
    }
    let big = json!({"eventType": "SubscriptionCreated", "subscriptionNumber": "A-S3", "pad": "x".repeat(4096)});
    let resp = authed(post(&http, &ep.url, "n-3", &big))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // Chunked, without a Content-Length: cut off at the limit all the same.
    assert_eq!(chunked_post(&ep.url, 8, 1024).await, 413);
    let resp = authed(http.get(&ep.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(
        ep.inbox.rx.try_recv().is_err(),
        "nothing reached the source"
    );
}

/// POSTs `chunks` chunks of `size` bytes with `Transfer-Encoding: chunked` over a raw
/// socket (no Content-Length to refuse early); answers the status.
async fn chunked_post(url: &str, chunks: usize, size: usize) -> u16 {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let port = host.rsplit(':').next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nZuora-Notification-Id: n-4\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", "y".repeat(size));
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_callout_is_answered_200_only_once_its_event_is_committed() {
    let mut ep = endpoint(65536, Duration::from_secs(3), None).await;
    let http = reqwest::Client::new();
    let call = {
        let (http, url) = (http.clone(), ep.url.clone());
        tokio::spawn(async move {
            post(&http, &url, "n-5", &created("A-S5"))
                .basic_auth(USER, Some(PASSWORD))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let inbound = tokio::time::timeout(Duration::from_secs(2), ep.inbox.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbound.notification.id, "n-5");
    assert_eq!(
        inbound.notification.subscription_number.as_deref(),
        Some("A-S5")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "answered before the commit");
    // The source commits it, then answers.
    ep.inbox.seen.replace(["n-5".to_string()]);
    inbound.reply.send(()).unwrap();
    assert_eq!(call.await.unwrap(), 200);
    // Its retry is answered at once, without reaching the source.
    let resp = post(&http, &ep.url, "n-5", &created("A-S5"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["result"],
        "duplicate"
    );
    assert!(ep.inbox.rx.try_recv().is_err());
}

#[tokio::test]
async fn an_uncommitted_callout_and_a_standby_replica_get_503_and_other_types_200() {
    let mut ep = endpoint(65536, Duration::from_millis(300), None).await;
    let http = reqwest::Client::new();
    let resp = post(&http, &ep.url, "n-6", &created("A-S6"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        503,
        "not committed in time: Zuora retries"
    );
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        ep.inbox.rx.try_recv().is_ok(),
        "it still reached the source"
    );
    ep.active.store(false, Ordering::Relaxed);
    let resp = post(&http, &ep.url, "n-7", &created("A-S7"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(ep.inbox.rx.try_recv().is_err(), "a standby queues nothing");
    ep.active.store(true, Ordering::Relaxed);
    let account =
        json!({"eventType": "AccountUpdated", "accountNumber": "cust_1-INC", "batch": "Batch2"});
    let resp = post(&http, &ep.url, "n-8", &account)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "a type the hub does not map is acknowledged"
    );
    assert!(ep.inbox.rx.try_recv().is_err());
}

#[tokio::test]
async fn the_endpoint_serves_tls_when_configured() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let tls = callout::tls_config(&cert_file, &key_file).unwrap();
    let ep = endpoint(65536, Duration::from_secs(1), Some(tls)).await;
    assert!(ep.url.starts_with("https://"));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = post(&http, &ep.url, "n-9", &created("A-S9"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "over TLS, the same rules");
    // A client that does not trust the certificate never gets an answer.
    assert!(
        post(&reqwest::Client::new(), &ep.url, "n-9", &created("A-S9"))
            .send()
            .await
            .is_err()
    );
    let e = callout::tls_config(&key_file, &key_file)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("key.pem"), "{e}");
}
