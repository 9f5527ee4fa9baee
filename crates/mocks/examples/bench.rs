//! `make bench` for the mocks: a bounded HTTP/1.1 keep-alive load generator on loopback.
//!
//! Starts every mock in this process on free loopback ports, then for each app sends
//! `--requests` (default 200,000) simple authenticated reads over `--connections` (default
//! 32) keep-alive connections, stopping early at `--seconds` (default 20) per app. Then it
//! sends `--soak` (default 1,000,000) requests to the Salesforce mock and samples the
//! process's resident memory, to show it stays flat. Exits non-zero if an app serves fewer
//! than 10,000 requests/s or any request fails.
//!
//! The mocks' own API rate limits are lifted for the run (Marketo's 100 calls / 20 s would
//! otherwise be the figure measured); everything else is the code that serves tests.
//!
//! `cargo run --release -p l2f-mocks --example bench -- [--requests N] [--connections C]
//! [--seconds S] [--soak N]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l2f_mocks::server::{self, MocksConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLOOR: f64 = 10_000.0;

struct Args {
    requests: u64,
    connections: u64,
    seconds: u64,
    soak: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        requests: 200_000,
        connections: 32,
        seconds: 20,
        soak: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: u64 = it
            .next()
            .ok_or(format!("{k} needs a value"))?
            .parse()
            .map_err(|e| format!("{k}: {e}"))?;
        match k.as_str() {
            "--requests" => a.requests = v,
            "--connections" => a.connections = v.max(1),
            "--seconds" => a.seconds = v.max(1),
            "--soak" => a.soak = v,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads one HTTP/1.1 response with a Content-Length; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .ok_or_else(|| std::io::Error::other("no content-length"))?;
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 16 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Outcome {
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

/// Sends `total` copies of `request` to `addr` over `connections` keep-alive connections.
async fn load(
    addr: &str,
    request: Arc<Vec<u8>>,
    total: u64,
    connections: u64,
    limit: Duration,
) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, request) = (addr.to_string(), request.clone());
        let (issued, ok, failed) = (issued.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(&addr).await else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = stream.set_nodelay(true);
            let mut buf = Vec::with_capacity(16 * 1024);
            while issued.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                let status = match stream.write_all(&request).await {
                    Ok(()) => read_response(&mut stream, &mut buf).await,
                    Err(e) => Err(e),
                };
                match status {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Outcome {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

fn get_request(host: &str, path: &str, auth: &str) -> Arc<Vec<u8>> {
    Arc::new(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nAccept: application/json\r\n\r\n")
            .into_bytes(),
    )
}

async fn post(http: &reqwest::Client, url: String, auth: &str, body: Value) -> Value {
    http.post(url)
        .header("authorization", auth)
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("setup request")
        .json()
        .await
        .expect("setup json")
}

/// The `access_token` a token request is granted.
async fn token(req: reqwest::RequestBuilder) -> String {
    let v: Value = req.send().await.expect("token").json().await.expect("json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut cfg = MocksConfig::default();
    cfg.salesforce.daily_api_cap = u64::MAX;
    cfg.zuora.requests_per_minute = None;
    cfg.marketo.rate_limit_calls = usize::MAX;
    cfg.marketo.max_concurrent = usize::MAX;
    cfg.marketo.daily_quota = u64::MAX;
    cfg.without_https();
    let running = server::start(&cfg).await.expect("start mocks");
    let base = |app: &str| running.endpoint(app).expect("endpoint").http.clone();
    let http = reqwest::Client::new();

    // One record per app to read back, and the credentials to read it with.
    let sf = base("salesforce");
    let c = &cfg.salesforce;
    let sf_token = token(http.post(format!("{sf}/services/oauth2/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &c.client_id),
        ("client_secret", &c.client_secret),
    ]))
    .await;
    let sf_auth = format!("Bearer {sf_token}");
    let sf_id = post(
        &http,
        format!("{sf}/services/data/v62.0/sobjects/Account"),
        &sf_auth,
        json!({ "Name": "Bench" }),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();

    let zu = base("zuora");
    let z = &cfg.zuora;
    let z_auth = format!(
        "Bearer {}",
        token(http.post(format!("{zu}/oauth/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &z.client_id),
            ("client_secret", &z.client_secret)
        ]))
        .await
    );
    let z_acct = post(&http, format!("{zu}/v1/accounts"), &z_auth, json!({ "name": "Bench", "billToContact": { "firstName": "B", "lastName": "B", "country": "US" } })).await["accountNumber"].as_str().expect("n").to_string();

    let mk = base("marketo");
    let m = &cfg.marketo;
    let m_token = token(http.get(format!(
        "{mk}/identity/oauth/token?grant_type=client_credentials&client_id={}&client_secret={}",
        m.client_id, m.client_secret
    )))
    .await;
    let m_auth = format!("Bearer {m_token}");

    let cu = base("customers");
    let cu_auth = format!("Bearer {}", cfg.customers.api_token);
    let cust = post(
        &http,
        format!("{cu}/api/v1/accounts"),
        &cu_auth,
        json!({ "email": "b@example.com", "name": "B", "country": "US" }),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_string();

    let li = base("license");
    let li_auth = format!("Bearer {}", cfg.license.api_token);
    let req = http
        .put(format!("{li}/api/v1/subscriptions/sub_bench"))
        .header("authorization", &li_auth)
        .json(&json!({ "account_id": "a", "plan": "p", "seats": 1, "terms_accepted": true }));
    req.send()
        .await
        .expect("license")
        .error_for_status()
        .expect("license ok");

    let mail_auth = format!("Basic {}", base64_api_key(&cfg.mail.api_key));
    let ml = base("mail");

    let plans: Vec<(&str, String, Arc<Vec<u8>>)> = vec![
        (
            "salesforce",
            sf.clone(),
            get_request(
                host(&sf),
                &format!("/services/data/v62.0/sobjects/Account/{sf_id}"),
                &sf_auth,
            ),
        ),
        (
            "zuora",
            zu.clone(),
            get_request(host(&zu), &format!("/v1/accounts/{z_acct}"), &z_auth),
        ),
        (
            "marketo",
            mk.clone(),
            get_request(
                host(&mk),
                "/rest/v1/leads.json?filterType=email&filterValues=nobody@example.com",
                &m_auth,
            ),
        ),
        (
            "mail",
            ml.clone(),
            get_request(host(&ml), "/__admin/messages?to=nobody", &mail_auth),
        ),
        (
            "customers",
            cu.clone(),
            get_request(host(&cu), &format!("/api/v1/accounts/{cust}"), &cu_auth),
        ),
        (
            "license",
            li.clone(),
            get_request(host(&li), "/api/v1/licenses/sub_bench", &li_auth),
        ),
    ];

    println!(
        "{:<12} {:>10} {:>8} {:>9} {:>12}  (connections: {}, loopback, HTTP/1.1 keep-alive)",
        "app", "requests", "failed", "seconds", "req/s", a.connections
    );
    let mut below = Vec::new();
    for (app, url, request) in &plans {
        let o = load(
            host(url),
            request.clone(),
            a.requests,
            a.connections,
            Duration::from_secs(a.seconds),
        )
        .await;
        let rate = o.ok as f64 / o.elapsed.as_secs_f64();
        println!(
            "{app:<12} {:>10} {:>8} {:>9.2} {:>12.0}",
            o.ok,
            o.failed,
            o.elapsed.as_secs_f64(),
            rate
        );
        if rate < FLOOR || o.failed > 0 {
            below.push(*app);
        }
    }

    if a.soak > 0 {
        let (_, url, request) = &plans[0];
        let warm = load(
            host(url),
            request.clone(),
            a.soak / 10,
            a.connections,
            Duration::from_secs(60),
        )
        .await;
        let rss_warm = rss_kib();
        let soak = load(
            host(url),
            request.clone(),
            a.soak,
            a.connections,
            Duration::from_secs(120),
        )
        .await;
        let rss_end = rss_kib();
        println!(
            "memory: salesforce RSS {rss_warm} KiB after {} requests, {rss_end} KiB after {} more ({:+} KiB, {:.0} req/s)",
            warm.ok,
            soak.ok,
            rss_end as i64 - rss_warm as i64,
            soak.ok as f64 / soak.elapsed.as_secs_f64()
        );
        if soak.failed > 0 || warm.failed > 0 {
            below.push("soak");
        }
    }
    running.shutdown().await;
    if below.is_empty() {
        println!("bench: every mock served at least {FLOOR} requests/s");
    } else {
        println!(
            "bench: below {FLOOR} requests/s or failing: {}",
            below.join(", ")
        );
        std::process::exit(1);
    }
}

fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

fn base64_api_key(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"))
}
