//! `make bench` for the Salesforce lead sink: records/s through the connector beside the
//! mock's own ceiling for the same call, measured in the same run.
//!
//! 1. **Ceiling**: sObject Collections upserts of 200 leads by `L2f_Lead_Id__c`, sent straight
//!    over HTTP (bodies built beforehand, one session) by `--concurrency` tasks.
//! 2. **Sink**: the same leads as Avro records through [`LeadSink::push`] (decode, rule 2,
//!    mapping, the collections upsert of 200, the verdict of every record), same concurrency.
//! 3. **Loop** (when `KAFKA_BOOTSTRAP` is set): the same leads produced to a fresh topic with
//!    `--concurrency` partitions and consumed by the bus's consumer loop driving the sink, from
//!    the first lead handled (the group has joined) to the last.
//!
//! Each phase runs against its own fresh in-process mock; the leads cycle through `--pool`
//! lead ids (default 2,000), so every phase does the same mix of creates and updates and the
//! mock's state stays the same size. Bounded: `--records` (default 40,000) per phase, stopped
//! early at `--seconds` (default 20). Exits 1 if any record fails.
//!
//! `cargo run --release -p l2f-connector-salesforce --example salesforce_bench -- [--records N]
//! [--concurrency C] [--seconds S] [--pool P]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l2f_bus::{CancellationToken, ConsumerLoop, Producer, Record};
use l2f_connector_kit::record::event_record;
use l2f_connector_salesforce::{LeadSink, SalesforceConfig};
use l2f_contracts::examples::lead_captured;
use l2f_contracts::Codec;
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

const BATCH: usize = 200;

struct Args {
    records: u64,
    concurrency: u64,
    seconds: u64,
    pool: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        records: 40_000,
        concurrency: 4,
        seconds: 20,
        pool: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: u64 = it
            .next()
            .ok_or(format!("{k} needs a value"))?
            .parse()
            .map_err(|e| format!("{k}: {e}"))?;
        match k.as_str() {
            "--records" => a.records = v.max(BATCH as u64),
            "--concurrency" => a.concurrency = v.clamp(1, 64),
            "--seconds" => a.seconds = v.max(1),
            "--pool" => a.pool = v.max(BATCH as u64),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

async fn mock() -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["salesforce".to_string()])
        .expect("salesforce mock");
    mc.without_https();
    mc.salesforce.daily_api_cap = u64::MAX / 2;
    let running = server::start(&mc).await.expect("mock starts");
    let base = running
        .endpoint("salesforce")
        .expect("endpoint")
        .http
        .clone();
    (running, base)
}

fn config(base: &str) -> SalesforceConfig {
    SalesforceConfig::new(
        base,
        "l2f-client-id",
        SecretRef::Inline("l2f-client-secret".into()),
    )
    .with_user(
        "integration@l2f.example",
        SecretRef::Inline("l2f-password".into()),
    )
}

/// Lead `i` of the run (its id cycles through the pool).
fn lead(i: u64, pool: u64) -> l2f_contracts::events::LeadCaptured {
    let mut l = lead_captured();
    l.envelope.event_id = uuid::Uuid::from_u128(u128::from(i) + 1);
    l.lead_id = format!("bench-lead-{}", i % pool);
    l.email = format!("bench{}@example.com", i % pool);
    l
}

/// Runs `calls` (each `BATCH` records) over `concurrency` tasks, until done or `limit`;
/// answers (records done, failures, seconds).
async fn drive<F, Fut>(calls: u64, concurrency: u64, limit: Duration, call: F) -> (u64, u64, f64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u64, u64)> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, next, done, failed) =
                (call.clone(), next.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= calls || start.elapsed() > limit {
                        break;
                    }
                    let (ok, bad) = call(n).await;
                    done.fetch_add(ok, Ordering::Relaxed);
                    failed.fetch_add(bad, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

async fn token(base: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "l2f-client-id"),
            ("client_secret", "l2f-client-secret"),
            ("username", "integration@l2f.example"),
            ("password", "l2f-password"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token body");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Phase 1: the mock's ceiling for a collections upsert of 200 leads.
async fn ceiling(a: &Args) -> (u64, u64, f64) {
    let (running, base) = mock().await;
    let token = Arc::new(token(&base).await);
    let url = Arc::new(format!(
        "{base}/services/data/v62.0/composite/sobjects/Lead/L2f_Lead_Id__c"
    ));
    let calls = a.records / BATCH as u64;
    let pool = a.pool;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..calls)
            .map(|n| {
                let records: Vec<Value> = (0..BATCH as u64)
                    .map(|k| {
                        let l = lead(n * BATCH as u64 + k, pool);
                        l2f_connector_salesforce::mapping::lead(&l).expect("ready lead")
                    })
                    .collect();
                serde_json::to_vec(&json!({ "allOrNone": false, "records": records }))
                    .expect("body")
            })
            .collect(),
    );
    let http = reqwest::Client::new();
    let r = drive(
        calls,
        a.concurrency,
        Duration::from_secs(a.seconds),
        move |n| {
            let (http, url, token, bodies) =
                (http.clone(), url.clone(), token.clone(), bodies.clone());
            async move {
                let resp = http
                    .patch(url.as_str())
                    .bearer_auth(token.as_str())
                    .header("Content-Type", "application/json")
                    .body(bodies[n as usize].clone())
                    .send()
                    .await;
                let Ok(resp) = resp else {
                    return (0, BATCH as u64);
                };
                let results: Vec<Value> = resp.json().await.unwrap_or_default();
                let ok = results.iter().filter(|r| r["success"] == true).count() as u64;
                (ok, BATCH as u64 - ok)
            }
        },
    )
    .await;
    running.shutdown().await;
    r
}

fn encoded(a: &Args) -> Arc<Vec<Vec<Record>>> {
    let codec = Codec::new();
    let calls = a.records / BATCH as u64;
    Arc::new(
        (0..calls)
            .map(|n| {
                (0..BATCH as u64)
                    .map(|k| {
                        let i = n * BATCH as u64 + k;
                        let out = event_record(&codec, "leads", &lead(i, a.pool), None)
                            .expect("lead record");
                        Record {
                            topic: out.topic,
                            partition: 0,
                            offset: i as i64,
                            key: out.key,
                            payload: out.payload,
                            headers: out.headers,
                            timestamp_ms: None,
                        }
                    })
                    .collect()
            })
            .collect(),
    )
}

/// Phase 2: the same leads through the sink.
async fn sink(a: &Args) -> (u64, u64, f64, u64) {
    let (running, base) = mock().await;
    let cfg = config(&base);
    let sink = Arc::new(LeadSink::new(
        Arc::new(cfg.client().expect("client")),
        Arc::new(Codec::new()),
        BATCH,
    ));
    let records = encoded(a);
    let s = sink.clone();
    let (done, failed, secs) = drive(
        records.len() as u64,
        a.concurrency,
        Duration::from_secs(a.seconds),
        move |n| {
            let (s, records) = (s.clone(), records.clone());
            async move {
                let out = s.push(&records[n as usize]).await;
                let ok = out.iter().filter(|r| r.is_ok()).count() as u64;
                (ok, out.len() as u64 - ok)
            }
        },
    )
    .await;
    let calls = sink.stats().calls();
    running.shutdown().await;
    (done, failed, secs, calls)
}

/// Phase 3: the same leads through Kafka and the consumer loop (`None` without a broker).
async fn through_loop(a: &Args) -> Option<(u64, u64, u64, f64, u64)> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").ok()?;
    let (running, base) = mock().await;
    let client = l2f_e2e::client(&bootstrap);
    let topic = l2f_e2e::unique("bench-sf-leads");
    l2f_e2e::create_topic(&bootstrap, &topic, a.concurrency as i32).await;
    let dlq = l2f_e2e::unique("bench-sf-dlq");
    l2f_e2e::create_topic(&bootstrap, &dlq, 1).await;
    let codec = Codec::new();
    let n = a.records;
    let records: Vec<_> = (0..n)
        .map(|i| event_record(&codec, &topic, &lead(i, a.pool), None).expect("lead record"))
        .collect();
    l2f_e2e::produce(&bootstrap, &records).await;
    let cfg = config(&base);
    let sink = Arc::new(LeadSink::new(
        Arc::new(cfg.client().expect("client")),
        Arc::new(Codec::new()),
        BATCH,
    ));
    let group = l2f_e2e::unique("bench-sf-group");
    let mut settings = l2f_e2e::quick_loop(&group, &topic);
    settings.consumer.max_in_flight_per_partition = 1000;
    let dead = l2f_bus::dlq::DeadLetters::new(Producer::new(&client).ok()?, &dlq, &group);
    let lp = ConsumerLoop::new(&client, settings, sink.clone(), dead);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let start = Instant::now();
    let join = tokio::spawn(lp.run(token.clone()));
    let limit = Duration::from_secs(a.seconds + 30);
    // The clock starts at the first lead handled: joining the group (the broker's initial
    // rebalance delay) is not the sink's throughput.
    while stats.handled() + stats.dead_lettered() == 0 && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (warm, first) = (Instant::now(), stats.handled());
    while stats.handled() + stats.dead_lettered() < n && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = warm.elapsed().as_secs_f64();
    let (done, failed) = (stats.handled(), stats.dead_lettered());
    let done_after_warm = done - first;
    token.cancel();
    let _ = join.await;
    running.shutdown().await;
    Some((done, done_after_warm, failed, secs, sink.stats().calls()))
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let (c_done, c_failed, c_secs) = ceiling(&a).await;
    let (s_done, s_failed, s_secs, s_calls) = sink(&a).await;
    let ceiling_rate = c_done as f64 / c_secs;
    let sink_rate = s_done as f64 / s_secs;
    let mut line = format!(
        "salesforce lead sink: {sink_rate:.0} records/s through LeadSink ({s_done} leads, {s_calls} collections calls of <= {BATCH}, {} concurrent) vs mock ceiling {ceiling_rate:.0} records/s for the same call ({c_done} leads upserted directly) = {:.0}%",
        a.concurrency,
        100.0 * sink_rate / ceiling_rate.max(1.0)
    );
    let mut failed = c_failed + s_failed;
    if let Some((l_done, l_timed, l_failed, l_secs, l_calls)) = through_loop(&a).await {
        line.push_str(&format!(
            "; through Kafka and the consumer loop {:.0} records/s ({l_done} leads, {l_calls} calls, {} partitions, timed from the first lead handled)",
            l_timed as f64 / l_secs,
            a.concurrency
        ));
        failed += l_failed + a.records.saturating_sub(l_done + l_failed);
    }
    println!("{line}");
    if failed > 0 {
        eprintln!("bench: {failed} records failed");
        std::process::exit(1);
    }
}
