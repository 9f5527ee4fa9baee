//! `make bench` for the Marketo sink: leads/s through the connector beside the Marketo mock's
//! own ceiling for the same call, measured in the same run.
//!
//! 1. **Ceiling**: `POST /rest/v1/leads.json` createOrUpdate of 300 leads, bodies built
//!    beforehand, sent straight over HTTP by `--concurrency` tasks.
//! 2. **Sink**: the same leads as Avro records through [`MarketoSink::push`] (decode, rule 2,
//!    mapping, the push of 300, the verdict of every lead), same concurrency.
//!
//! Each phase runs against its own in-process mock with its rate limits lifted (Marketo's
//! 100 calls / 20 s would be the figure otherwise); the leads cycle through 3,000 emails so
//! both phases do the same mix of creates and updates. Bounded: `--records` (default 60,000)
//! per phase, stopped early after 20 s. Exits 1 if any lead fails.
//!
//! `cargo run --release -p l2f-connector-marketo --example marketo_bench -- [--records N]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l2f_bus::Record;
use l2f_connector_kit::record::event_record;
use l2f_connector_marketo::client::{MarketoClient, MAX_LEADS_PER_CALL};
use l2f_connector_marketo::mapping::to_marketo;
use l2f_connector_marketo::{MarketoConfig, MarketoSink};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::lead_captured;
use l2f_contracts::Codec;
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_secrets::{Secret, SecretRef};

const CONCURRENCY: u64 = 4;
const POOL: u64 = 3_000;
const LIMIT: Duration = Duration::from_secs(20);

fn lead(i: u64) -> LeadCaptured {
    let mut l = lead_captured();
    let n = i % POOL;
    l.lead_id = format!("lead-{n}");
    l.email = format!("bench{n}@example.com");
    l
}

async fn mock() -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["marketo".to_string()]).expect("marketo");
    mc.without_https();
    mc.marketo.rate_limit_calls = usize::MAX / 2;
    mc.marketo.max_concurrent = 1_000;
    mc.marketo.daily_quota = u64::MAX / 2;
    let running = server::start(&mc).await.expect("mock");
    let base = running.endpoint("marketo").expect("endpoint").http.clone();
    (running, base)
}

/// Runs `calls` batches of up to 300 leads over `CONCURRENCY` tasks; returns (leads, seconds).
async fn drive<F, Fut>(records: u64, call: F) -> (u64, f64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let batches = records.div_ceil(MAX_LEADS_PER_CALL as u64);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let call = Arc::new(call);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, done, call) = (next.clone(), done.clone(), call.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches || start.elapsed() > LIMIT {
                        return;
                    }
                    done.fetch_add(call(b).await, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let records: u64 = std::env::args()
        .skip_while(|a| a != "--records")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let cfg = l2f_mocks::marketo::Config::default();
    let per = MAX_LEADS_PER_CALL as u64;

    // 1. The mock's ceiling for the call.
    let (running, base) = mock().await;
    let client = Arc::new(MarketoClient::new(
        reqwest::Client::new(),
        &base,
        &cfg.client_id,
        Secret::new(&cfg.client_secret),
    ));
    let bodies: Arc<Vec<Vec<serde_json::Value>>> = Arc::new(
        (0..POOL.div_ceil(per))
            .map(|b| {
                (b * per..(b + 1) * per)
                    .map(|i| to_marketo(&lead(i)).expect("ready lead"))
                    .collect()
            })
            .collect(),
    );
    let failed = Arc::new(AtomicU64::new(0));
    let (c, f) = (client.clone(), failed.clone());
    let (ceiling_n, ceiling_s) = drive(records, move |b| {
        let (c, f, bodies) = (c.clone(), f.clone(), bodies.clone());
        async move {
            let body = &bodies[(b as usize) % bodies.len()];
            match c.push_leads(body, "email").await {
                Ok(r) => {
                    let ok = r
                        .iter()
                        .filter(|x| x["status"] == "created" || x["status"] == "updated")
                        .count() as u64;
                    f.fetch_add(body.len() as u64 - ok, Ordering::Relaxed);
                    ok
                }
                Err(_) => {
                    f.fetch_add(body.len() as u64, Ordering::Relaxed);
                    0
                }
            }
        }
    })
    .await;
    running.shutdown().await;

    // 2. The same leads through the sink.
    let (running, base) = mock().await;
    let codec = Arc::new(Codec::new());
    let sink = Arc::new(
        MarketoSink::from_config(
            &MarketoConfig::new(
                &base,
                &cfg.client_id,
                SecretRef::Inline(cfg.client_secret.clone()),
            ),
            codec.clone(),
        )
        .expect("sink"),
    );
    let recs: Arc<Vec<Vec<Record>>> = Arc::new(
        (0..POOL.div_ceil(per))
            .map(|b| {
                (b * per..(b + 1) * per)
                    .map(|i| {
                        let out = event_record(&codec, "leads", &lead(i), None).expect("lead");
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
    );
    let (s, f) = (sink.clone(), failed.clone());
    let (sink_n, sink_s) = drive(records, move |b| {
        let (s, f, recs) = (s.clone(), f.clone(), recs.clone());
        async move {
            let batch = &recs[(b as usize) % recs.len()];
            let out = s.push(batch).await;
            let ok = out.iter().filter(|r| r.is_ok()).count() as u64;
            f.fetch_add(batch.len() as u64 - ok, Ordering::Relaxed);
            ok
        }
    })
    .await;
    running.shutdown().await;

    // 3. The hub's own work per lead, without HTTP: decode, rule 2, mapping, the JSON body.
    let work = Instant::now();
    let mut bytes = 0usize;
    for i in 0..records {
        let out = event_record(&codec, "leads", &lead(i), None).expect("lead");
        let l: LeadCaptured = codec
            .decode(out.payload.as_deref().unwrap())
            .expect("decode");
        bytes += serde_json::to_vec(&to_marketo(&l).expect("ready"))
            .unwrap()
            .len();
    }
    let work_s = work.elapsed().as_secs_f64();
    let ceiling = ceiling_n as f64 / ceiling_s;
    let through = sink_n as f64 / sink_s;
    println!("marketo ceiling (createOrUpdate of 300, straight over HTTP): {ceiling_n} leads in {ceiling_s:.2} s = {ceiling:.0} leads/s");
    println!("marketo sink (Avro → rule 2 → push of 300 → verdict):     {sink_n} leads in {sink_s:.2} s = {through:.0} leads/s");
    println!(
        "marketo sink / ceiling: {:.2} ({} calls of {per} leads, {CONCURRENCY} at a time)",
        through / ceiling,
        sink.stats().calls()
    );
    println!(
        "hub work alone (encode, decode, rule 2, map, JSON body; one thread, no HTTP): {:.0} leads/s ({:.1} µs a lead, {bytes} body bytes)",
        records as f64 / work_s,
        work_s * 1e6 / records as f64
    );
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} leads failed");
        std::process::exit(1);
    }
}
