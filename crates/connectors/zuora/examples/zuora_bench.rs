//! `make bench` for the Zuora sink: orders/s through the connector beside the Zuora mock's
//! own ceiling for the same calls, measured in the same run on the same machine.
//!
//! 1. **Ceiling**: a fresh Zuora mock (rate limit lifted), and for each of `--orders` (default
//!    2,000) new web-store orders the two calls the sink makes for it — `GET
//!    /v1/subscriptions/accounts/{n}` (not found) and `POST /v1/orders` with `newAccount`,
//!    `Idempotency-Key` and `Zuora-Track-Id` — sent by `--partitions` (default 8) concurrent
//!    keep-alive clients, as many as the sink has partition workers.
//! 2. **Sink**: the mock reset, the orders produced to a fresh topic of `--partitions`
//!    partitions on the real broker (`KAFKA_BOOTSTRAP`), and the bus's consumer loop driving
//!    [`ZuoraSink`] over them: decode, rules 3–6 and 11, catalog (cached), the same two calls,
//!    commit. Timed from the first order handled to the last (the group join is not counted).
//!
//! Bounded: every phase stops at `--seconds` (default 120); exits 1 if an order failed.
//!
//! `cargo run --release -p l2f-connector-zuora --example zuora_bench -- [--orders N]
//! [--partitions P] [--seconds S]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use l2f_bus::config::SecretRef;
use l2f_bus::dlq::DeadLetters;
use l2f_bus::{CancellationToken, ConsumerLoop, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_zuora::client::Call;
use l2f_connector_zuora::mapping::{self, OrderAccount, Subscribe, Trace};
use l2f_connector_zuora::{ZuoraConfig, ZuoraSink};
use l2f_contracts::events::*;
use l2f_contracts::{examples, Codec, CountryCode};
use l2f_mocks::server::{self, MocksConfig};
use l2f_rules::Rules;

struct Args {
    orders: u32,
    partitions: i32,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        orders: 2_000,
        partitions: 8,
        seconds: 120,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: u64 = it
            .next()
            .ok_or(format!("{k} needs a value"))?
            .parse()
            .map_err(|e| format!("{k}: {e}"))?;
        match k.as_str() {
            "--orders" => a.orders = v.clamp(10, 100_000) as u32,
            "--partitions" => a.partitions = v.clamp(1, 64) as i32,
            "--seconds" => a.seconds = v.max(5),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// A web-store order of `cust_<run>_<n>`.
fn order(run: &str, n: u32) -> OrderPlaced {
    let mut o = examples::order_placed();
    o.envelope.event_id = uuid::Uuid::new_v4();
    o.envelope.source = SourceSystem::CustomersApp;
    o.envelope.occurred_at = Utc::now();
    o.sales_channel = SalesChannel::WebStore;
    o.reseller = None;
    o.deployment = Deployment::Saas;
    o.order_type = OrderType::New;
    o.bill_to_country = CountryCode::from_code("US").expect("US");
    o.account_id = format!("cust_{run}_{n:06}");
    o.order_id = format!("sub_{run}_{n:06}");
    o.sold_to_email = format!("bench{n}@example.com");
    o.auto_renew = true;
    o.lines.truncate(1);
    o.lines[0].sku = "premium-saas-1y".into();
    o.lines[0].quantity = 10;
    o
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

async fn reset(base: &str) {
    reqwest::Client::new()
        .post(format!("{base}/__admin/reset"))
        .send()
        .await
        .expect("reset the mock");
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
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") else {
        eprintln!("KAFKA_BOOTSTRAP is not set (make bench starts the local Apache Kafka)");
        std::process::exit(2);
    };
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".to_string()]).expect("zuora");
    mc.without_https();
    mc.zuora.requests_per_minute = None;
    let running = server::start(&mc).await.expect("start the Zuora mock");
    let base = running.endpoint("zuora").expect("zuora").http.clone();
    let mut cfg = ZuoraConfig::new(
        &base,
        mc.zuora.client_id.clone(),
        SecretRef::Inline(mc.zuora.client_secret.clone()),
    );
    cfg.request_timeout = Duration::from_secs(10);
    let rules = Arc::new(Rules::embedded());
    let limit = Duration::from_secs(a.seconds);

    // 1. The mock's ceiling for the same calls.
    let client = Arc::new(cfg.client().expect("client"));
    let plan = client
        .catalog_plan("premium-saas-1y")
        .await
        .expect("catalog")
        .expect("premium-saas-1y in the mock's catalog");
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.partitions {
        let (client, next, failed, rules, plan) = (
            client.clone(),
            next.clone(),
            failed.clone(),
            rules.clone(),
            plan.clone(),
        );
        let profiles = cfg.profiles();
        let total = u64::from(a.orders);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || started.elapsed() > limit {
                    return;
                }
                let o = order("ceiling", n as u32);
                let p = mapping::placement(&o, &rules);
                let number = mapping::account_number(&o.account_id, p.entity);
                let ev = o.envelope.event_id.to_string();
                let looked = client
                    .account_subscriptions(&number, Call::traced(&ev))
                    .await;
                let body = mapping::create_subscription(
                    &o,
                    &p,
                    OrderAccount::New(mapping::new_account(&o, &p, &profiles)),
                    &[Subscribe {
                        plan: plan.clone(),
                        quantity: 10,
                    }],
                    &Trace::of(&o),
                );
                let made = client.create_order(&body, Call::once(&ev, &ev)).await;
                if !matches!(looked, Ok(None)) || made.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let ceiling_time = started.elapsed();
    let ceiling_done = next.load(Ordering::Relaxed).min(u64::from(a.orders));
    let ceiling_failed = failed.load(Ordering::Relaxed);
    reset(&base).await;

    // 2. The same orders through the sink, from Kafka.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let topic = format!("bench-zuora-orders-{run}");
    let dlq_topic = format!("{topic}.dlq");
    let group = format!("bench-zuora-{run}");
    let mut kafka = rdkafka::ClientConfig::new();
    kafka.set("bootstrap.servers", &bootstrap);
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            kafka.create().expect("admin");
        let res = admin
            .create_topics(
                &[
                    NewTopic::new(&topic, a.partitions, TopicReplication::Fixed(1)),
                    NewTopic::new(&dlq_topic, 1, TopicReplication::Fixed(1)),
                ],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topics");
        for r in res {
            r.expect("topic created");
        }
    }
    let codec = Arc::new(Codec::new());
    let records: Vec<_> = (0..a.orders)
        .map(|n| event_record(&codec, &topic, &order(&run, n), None).expect("record"))
        .collect();
    let producer = Producer::new(&kafka).expect("producer");
    producer.send_all(&records, 10_000).await.expect("produce");
    let sink = Arc::new(ZuoraSink::new(
        Arc::new(cfg.client().expect("client")),
        codec.clone(),
        rules.clone(),
        cfg.profiles(),
    ));
    let sink_stats = sink.stats();
    let settings = l2f_bus::consumer::LoopSettings {
        group_id: group.clone(),
        topics: vec![topic.clone()],
        consumer: l2f_bus::config::ConsumerConfig {
            commit_interval: Duration::from_millis(500),
            ..Default::default()
        },
        retry: Default::default(),
    };
    let lp = ConsumerLoop::new(
        &kafka,
        settings,
        sink,
        DeadLetters::new(producer.clone(), &dlq_topic, &group),
    );
    let stats = lp.stats();
    let stop = CancellationToken::new();
    let join = tokio::spawn(lp.run(stop.clone()));
    let deadline = Instant::now() + limit;
    while stats.handled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = Instant::now();
    let first_count = stats.handled();
    while stats.handled() + stats.dead_lettered() < u64::from(a.orders) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sink_time = first.elapsed();
    let sink_done = stats.handled();
    stop.cancel();
    let _ = join.await;
    running.shutdown().await;
    {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            kafka.create().expect("admin");
        let _ = admin
            .delete_topics(&[&topic, &dlq_topic], &AdminOptions::new())
            .await;
    }

    let sink_rate = rate(sink_done.saturating_sub(first_count), sink_time);
    let ceiling_rate = rate(ceiling_done, ceiling_time);
    println!(
        "zuora sink: {sink_rate:.0} orders/s ({sink_done} orders over {} partitions, {} created, {} dead-lettered) | Zuora mock ceiling for the same calls (GET /v1/subscriptions/accounts/{{n}} + POST /v1/orders, {} clients): {ceiling_rate:.0} orders/s ({ceiling_done} orders) | sink/ceiling {:.0}%",
        a.partitions,
        sink_stats.created(),
        stats.dead_lettered(),
        a.partitions,
        100.0 * sink_rate / ceiling_rate.max(1e-9),
    );
    if ceiling_failed > 0 || stats.dead_lettered() > 0 || sink_done < u64::from(a.orders) {
        eprintln!(
            "bench failed: {ceiling_failed} ceiling calls failed, {} dead-lettered, {sink_done}/{} handled",
            stats.dead_lettered(),
            a.orders
        );
        std::process::exit(1);
    }
}
