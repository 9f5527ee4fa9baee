//! `make bench`, end to end: web-store orders from the customers app's API to the subscription
//! mirrored in Salesforce and back in the customers app, through the whole hub on the real
//! broker, beside each app's own ceiling for the calls one order needs, measured in the same run.
//!
//! The path of one order: `POST /api/v1/accounts` + `POST /api/v1/purchases` on the customers
//! app → its feed → the customers source (one transaction) → `orders` → the Zuora sink (`GET
//! /v1/subscriptions/accounts/{n}`, `POST /v1/orders`) → Zuora's callout → the Zuora source
//! (its reads, one transaction) → `subscriptions` → the Salesforce billing mirror (collections
//! upserts) and the customers mirror (`PUT /api/v1/hub/subscriptions/{number}`).
//!
//! - **Apps**: the customers, Salesforce and Zuora mocks, rate limits lifted, served by this
//!   process on loopback behind a *tap* (an axum layer): it counts every request per app and
//!   route, and notes when an app answers 2xx to the hub's mirror write — the customers app's
//!   `PUT /api/v1/hub/subscriptions/{number}` (its body names the order) and Salesforce's
//!   collections upsert of `Zuora__Subscription__c` (its body names the numbers). An order is
//!   *done* when both have been answered: the real effect, seen where it lands, at no extra
//!   request (polling each order's state would itself load the apps the figure depends on).
//! - **Hub**: the three connectors built by their registry lines and started in this process
//!   exactly as `l2f run` starts them (same [`Context`]), on a runtime of their own whose
//!   threads are named `hub` (the apps' and the load generator's are `apps`), so `perf` tells
//!   them apart. In-process rather than a spawned `l2f run`: one `cargo run --example` builds
//!   everything, and nothing but the bench's own config differs from `l2f run`.
//!
//! Phases:
//! 1. warm-up: 20 orders, until done (the consumer groups have joined);
//! 2. **throughput**: `--orders` (default 5,000) sent by `--clients` (default 32) closed-loop
//!    clients; orders/s from the first sent to the last done;
//! 3. **latency**: an open-loop generator sends `--rate` (default 200) orders/s for
//!    `--latency-seconds` (default 10) on a fixed schedule (not as fast as it can, so queueing
//!    is not hidden), each order's latency taken from its *scheduled* start to done; p50, p99,
//!    max over every order (exact: the samples are sorted, no histogram needed);
//! 4. **ceilings**: each app alone on a fresh mock, driven by `--clients` clients with the calls
//!    one order needs there — the same routes, in the numbers the tap counted per order in
//!    phase 2 — for as many orders as phase 2 (the mocks' state grows the same way);
//!    orders/s = requests/s ÷ calls per order. The machine's limit for the same work is the
//!    lowest; the apps also share the two cores during phase 2, so the combined limit
//!    `1 / Σ(1 / ceiling)` is printed too.
//!
//! Bounded: each phase stops at `--seconds` (default 60); topics are uniquely named and
//! deleted at the end. Needs `KAFKA_BOOTSTRAP`. Exits 1 if an order is not done in time.
//!
//! `cargo run --release -p l2f-cli --example e2e_bench -- [--orders N] [--clients C]
//! [--rate R] [--latency-seconds S] [--seconds S] [--partitions P] [--callout-concurrency N]`
//! (the Zuora mock's callouts in flight at once, default 64).

use std::collections::{BTreeMap, HashMap};

/// The allocator `l2f` itself runs on (see its `main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use l2f_bus::{CancellationToken, Producer};
use l2f_connector_kit::{Context, Pipelines, Registration};
use l2f_contracts::Codec;
use l2f_mocks::clock::Clock;
use l2f_mocks::server::{self, MocksConfig};
use l2f_rules::Rules;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

const TOKEN: &str = "l2f-customers-token";
const CALLOUT_USER: &str = "l2f-callouts";
const CALLOUT_PASSWORD: &str = "l2f-callout-secret";
const ZUORA_ID: &str = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01";
const ZUORA_SECRET: &str = "l2f-zuora-secret";
const WARM_UP: usize = 20;

/// The connectors of the path, as `l2f run`'s registry builds them.
const CONNECTORS: &[Registration] = &[
    l2f_connector_customers::REGISTRATION,
    l2f_connector_salesforce::REGISTRATION,
    l2f_connector_zuora::REGISTRATION,
];

struct Args {
    orders: usize,
    clients: usize,
    rate: u64,
    latency_seconds: u64,
    seconds: u64,
    partitions: i32,
    callouts: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        orders: 5_000,
        clients: 32,
        rate: 200,
        latency_seconds: 10,
        seconds: 60,
        partitions: 8,
        callouts: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: u64 = it
            .next()
            .ok_or(format!("{k} needs a value"))?
            .parse()
            .map_err(|e| format!("{k}: {e}"))?;
        match k.as_str() {
            "--orders" => a.orders = v.clamp(100, 200_000) as usize,
            "--clients" => a.clients = v.clamp(1, 256) as usize,
            "--rate" => a.rate = v.clamp(1, 10_000),
            "--latency-seconds" => a.latency_seconds = v.clamp(1, 120),
            "--seconds" => a.seconds = v.max(5),
            "--partitions" => a.partitions = v.clamp(1, 64) as i32,
            "--callout-concurrency" => a.callouts = v.clamp(1, 1024) as usize,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// The tap.

/// What the tap saw: requests per app and route, and when each order's two mirror writes were
/// answered.
#[derive(Default)]
struct Seen {
    calls: BTreeMap<(&'static str, String), u64>,
    /// `Zuora__Subscription__c` records in 2xx-answered collections upserts, and those calls.
    sf_records: u64,
    sf_calls: u64,
    /// order (the customers app's subscription id) → its Zuora number, when the app answered.
    in_customers: HashMap<String, (String, Instant)>,
    /// Zuora number → when Salesforce answered.
    in_salesforce: HashMap<String, Instant>,
    /// Zuora number → order, from the customers app's mirror write.
    order_of: HashMap<String, String>,
    /// order → done (both answered).
    done: HashMap<String, Instant>,
}

#[derive(Default)]
struct Tap {
    seen: Mutex<Seen>,
    done: AtomicU64,
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn both(&self, s: &mut Seen, order: &str, at: Instant) {
        if s.done.insert(order.to_string(), at).is_none() {
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn customers_answered(&self, order: String, number: String, at: Instant) {
        let mut s = self.lock();
        s.order_of.insert(number.clone(), order.clone());
        if let Some(sf) = s.in_salesforce.get(&number).copied() {
            self.both(&mut s, &order, at.max(sf));
        }
        s.in_customers.insert(order, (number, at));
    }

    fn salesforce_answered(&self, numbers: Vec<String>, at: Instant) {
        let mut s = self.lock();
        s.sf_calls += 1;
        s.sf_records += numbers.len() as u64;
        for n in numbers {
            if let Some(order) = s.order_of.get(&n).cloned() {
                if let Some(c) = s.in_customers.get(&order).map(|(_, t)| *t) {
                    self.both(&mut s, &order, at.max(c));
                }
            }
            s.in_salesforce.entry(n).or_insert(at);
        }
    }

    fn calls(&self) -> BTreeMap<(&'static str, String), u64> {
        self.lock().calls.clone()
    }
}

/// `E2E_TRACE=1`: every request to an app on stderr, with the time since start (to read one
/// order's path at a low rate).
static TRACE: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("E2E_TRACE").is_some());
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// A route as counted: path segments holding a digit (ids, numbers, the API version) are `{}`.
fn route(method: &str, path: &str) -> String {
    let p: Vec<&str> = path
        .split('/')
        .map(|s| {
            if s.bytes().any(|b| b.is_ascii_digit()) {
                "{}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} {}", p.join("/"))
}

/// The layer in front of every app: counts, and notes the mirror writes' answers.
async fn tap(
    State((app, tap)): State<(&'static str, Arc<Tap>)>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let key = route(&method, &path);
    if *TRACE {
        eprintln!("{:.1} ms {app} > {method} {path}", ms(EPOCH.elapsed()));
    }
    let watched = match app {
        "customers" if method == "PUT" => path
            .strip_prefix("/api/v1/hub/subscriptions/")
            .map(str::to_string),
        "salesforce"
            if method == "PATCH"
                && path.contains("/composite/sobjects/Zuora__Subscription__c/") =>
        {
            Some(String::new())
        }
        _ => None,
    };
    let Some(number) = watched else {
        tap.lock()
            .calls
            .entry((app, key))
            .and_modify(|n| *n += 1)
            .or_insert(1);
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let at = Instant::now();
    if *TRACE {
        eprintln!(
            "{:.1} ms {app} < {method} {path} {}",
            ms(EPOCH.elapsed()),
            resp.status()
        );
    }
    tap.lock()
        .calls
        .entry((app, key))
        .and_modify(|n| *n += 1)
        .or_insert(1);
    if resp.status().is_success() {
        if app == "customers" {
            if let Some(order) = v["order_id"].as_str() {
                tap.customers_answered(order.to_string(), number, at);
            }
        } else {
            let numbers = v["records"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r["Zuora__SubscriptionNumber__c"].as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            tap.salesforce_answered(numbers, at);
        }
    }
    resp
}

/// Serves the enabled apps of `mc` on loopback, each behind the tap (`None`: no tap).
async fn serve(
    mc: &MocksConfig,
    tap_to: Option<Arc<Tap>>,
    stop: watch::Receiver<bool>,
) -> HashMap<&'static str, String> {
    let clock = Clock::from_config(&mc.clock, None).expect("clock");
    let mut bases = HashMap::new();
    for (name, router, _) in mc.routers_with_clock(None, &clock).expect("routers") {
        let router: Router = match &tap_to {
            Some(t) => router.layer(axum::middleware::from_fn_with_state((name, t.clone()), tap)),
            None => router,
        };
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        bases.insert(name, format!("http://{}", l.local_addr().expect("addr")));
        server::spawn_accept(l, router, None, stop.clone());
    }
    bases
}

fn mocks_config(apps: &[&str]) -> MocksConfig {
    let mut mc = MocksConfig::default();
    mc.only(&apps.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("apps");
    mc.without_https();
    // The mocks' rate limits lifted: the figure is about work, not about allocations.
    mc.zuora.requests_per_minute = None;
    mc.salesforce.daily_api_cap = u64::MAX / 2;
    mc
}

// ---------------------------------------------------------------------------------------------
// The load.

/// One order through the customers app's API; answers its account and subscription ids.
async fn place(http: &reqwest::Client, base: &str, n: usize) -> Result<(String, String), String> {
    let call = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let r = call(
        "/api/v1/accounts",
        json!({"email": format!("bench{n}@example.com"), "name": format!("Bench {n}"), "country": "United States"}),
    )
    .await
    .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("account: {}", r.status()));
    }
    let account: Value = r.json().await.map_err(|e| e.to_string())?;
    let r = call(
        "/api/v1/purchases",
        json!({"account_id": account["id"], "deployment": "saas", "plan": "premium", "seats": 10}),
    )
    .await
    .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("purchase: {}", r.status()));
    }
    let sub: Value = r.json().await.map_err(|e| e.to_string())?;
    match (account["id"].as_str(), sub["id"].as_str()) {
        (Some(a), Some(s)) => Ok((a.to_string(), s.to_string())),
        _ => Err(format!("purchase answered no id: {sub}")),
    }
}

/// `count` orders from `first` by `clients` closed-loop clients; (order id, when it was sent).
async fn closed_loop(
    http: &reqwest::Client,
    base: &str,
    first: usize,
    count: usize,
    clients: usize,
) -> Vec<(String, Instant)> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, next) = (http.clone(), base.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    return sent;
                }
                let at = Instant::now();
                match place(&http, &base, first + i).await {
                    Ok((_, id)) => sent.push((id, at)),
                    Err(e) => eprintln!("order {}: {e}", first + i),
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

/// `rate` orders/s for `secs` on a fixed schedule, each on its own task; (id, scheduled).
async fn open_loop(
    http: &reqwest::Client,
    base: &str,
    first: usize,
    rate: u64,
    secs: u64,
) -> (Vec<(String, Instant)>, Duration) {
    let count = (rate * secs) as usize;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(count);
    let mut worst_lag = Duration::ZERO;
    for i in 0..count {
        let at = start + period * i as u32;
        tokio::time::sleep_until(at.into()).await;
        worst_lag = worst_lag.max(Instant::now().saturating_duration_since(at));
        let (http, base) = (http.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            place(&http, &base, first + i).await.map(|(_, id)| (id, at))
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        match t.await {
            Ok(Ok(x)) => all.push(x),
            Ok(Err(e)) => eprintln!("order: {e}"),
            Err(e) => eprintln!("order task: {e}"),
        }
    }
    (all, worst_lag)
}

/// Waits until `tap` has `target` orders done, or `limit`.
async fn until_done(tap: &Tap, target: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while tap.done.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// The hub.

struct Topics {
    leads: String,
    orders: String,
    subs: String,
    lic: String,
    usage: String,
    notes: String,
    dlq: String,
    offsets: String,
}

impl Topics {
    fn new(run: &str) -> Self {
        let t = |n: &str| format!("bench-e2e-{run}-{n}");
        Topics {
            leads: t("leads"),
            orders: t("orders"),
            subs: t("subs"),
            lic: t("lic"),
            usage: t("usage"),
            notes: t("notes"),
            dlq: t("dlq"),
            offsets: t("offsets"),
        }
    }

    fn partitioned(&self) -> [&String; 7] {
        [
            &self.leads,
            &self.orders,
            &self.subs,
            &self.lic,
            &self.usage,
            &self.notes,
            &self.dlq,
        ]
    }
}

async fn admin_topics(kafka: &rdkafka::ClientConfig, t: &Topics, partitions: i32, create: bool) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = kafka.create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    if !create {
        let mut all: Vec<&str> = t.partitioned().iter().map(|s| s.as_str()).collect();
        all.push(&t.offsets);
        let _ = admin.delete_topics(&all, &opts).await;
        return;
    }
    let mut new: Vec<NewTopic> = t
        .partitioned()
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    new.push(
        NewTopic::new(&t.offsets, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
    );
    for r in admin
        .create_topics(&new, &opts)
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// The hub's configuration: `l2f run`'s defaults, but a 10 ms feed poll (latency), the
/// Opportunities source (not on this path) polled every 5 s and the callout history every 30 s.
fn hub_config(
    bootstrap: &str,
    t: &Topics,
    bases: &HashMap<&'static str, String>,
    run: &str,
    callout: SocketAddr,
) -> l2f_bus::BusConfig {
    let mut cfg = l2f_bus::BusConfig::default();
    cfg.kafka.bootstrap_servers = Some(bootstrap.to_string());
    cfg.dead_letter.topic = t.dlq.clone();
    cfg.sources.offsets_topic = t.offsets.clone();
    cfg.sources.poll_interval = Duration::from_millis(10);
    cfg.sources.session_timeout = Duration::from_secs(6);
    cfg.consumer.commit_interval = Duration::from_millis(200);
    // `E2E_KAFKA_PROPERTIES=k=v,k=v`: librdkafka properties for the hub (`debug=eos`, ...).
    for kv in std::env::var("E2E_KAFKA_PROPERTIES")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = kv.split_once('=') {
            cfg.kafka
                .properties
                .insert(k.trim().into(), v.trim().into());
        }
    }
    let g = |n: &str| format!("bench-e2e-{run}-{n}");
    cfg.connectors.insert(
        "customers".into(),
        json!({
            "base_url": bases["customers"], "api_token": TOKEN,
            "source_name": g("customers"), "mirror_group": g("customers-mirror"),
            "topics": {"leads": t.leads, "orders": t.orders, "subscriptions": t.subs,
                       "licenses": t.lic, "usage": t.usage, "notifications": t.notes},
        }),
    );
    cfg.connectors.insert(
        "salesforce".into(),
        json!({
            "login_url": bases["salesforce"], "client_id": "l2f-client-id",
            "client_secret": "l2f-client-secret", "username": "integration@l2f.example",
            "password": "l2f-password", "poll_interval": "5s", "source": g("sf-opps"),
            "orders_topic": t.orders, "leads_topic": t.leads, "subscriptions_topic": t.subs,
            "usage_topic": t.usage, "licenses_topic": t.lic, "leads_group": g("sf-leads"), "mirror_group": g("sf-mirror"),
            "true_up_group": g("sf-true-ups"),
        }),
    );
    cfg.connectors.insert(
        "zuora".into(),
        json!({
            "base_url": bases["zuora"], "client_id": ZUORA_ID, "client_secret": ZUORA_SECRET,
            "orders_topic": t.orders, "subscriptions_topic": t.subs, "licenses_topic": t.lic,
            "group": g("zuora"), "source": g("zuora"), "callout_listen": callout.to_string(),
            "callout_username": CALLOUT_USER, "callout_password": CALLOUT_PASSWORD,
            "history_poll_interval": "30s",
        }),
    );
    cfg
}

/// Starts the connectors on the hub runtime as `l2f run` does; answers its shutdown token.
fn start_hub(rt: &tokio::runtime::Runtime, cfg: l2f_bus::BusConfig) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    rt.spawn(async move {
        let kafka = cfg
            .kafka
            .client_config(cfg.kafka.bootstrap_servers.as_deref().unwrap_or_default())
            .expect("kafka config");
        let clock = l2f_connector_kit::clock::from_config(&cfg.clock, &stop)
            .await
            .expect("clock");
        let ctx = Context {
            kafka: kafka.clone(),
            consumer: cfg.consumer.clone(),
            retry: cfg.retry.clone(),
            dead_letter_topic: cfg.dead_letter.topic.clone(),
            sources: cfg.sources.clone(),
            producer: Producer::new(&kafka).expect("producer"),
            codec: Arc::new(Codec::new()),
            rules: Arc::new(Rules::embedded()),
            shutdown: stop.clone(),
            pipelines: Pipelines::default(),
            clock,
        };
        let mut running = Vec::new();
        for (name, section) in &cfg.connectors {
            let reg = CONNECTORS
                .iter()
                .find(|r| r.name == name)
                .expect("a connector of the path");
            let c = (reg.build)(section).expect("connector config");
            running.push(tokio::spawn(c.start(ctx.clone())));
        }
        for r in running {
            if let Ok(Err(e)) = r.await {
                eprintln!("hub: {e}");
                stop.cancel();
            }
        }
    });
    shutdown
}

// ---------------------------------------------------------------------------------------------
// The ceilings.

/// Runs `orders` orders' worth of `one` (which makes one order's calls to an app and answers
/// how many it made) over `clients` tasks, until done or `limit`; (orders, requests, seconds).
async fn drive<F, Fut>(orders: usize, clients: usize, limit: Duration, one: F) -> (u64, u64, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let one = Arc::new(one);
    let next = Arc::new(AtomicU64::new(0));
    let (done, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (one, next, done, calls) = (one.clone(), next.clone(), done.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= orders || start.elapsed() > limit {
                    return;
                }
                match one(i).await {
                    Ok(n) => {
                        calls.fetch_add(n, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("ceiling call failed: {e}");
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        done.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

/// Calls of `app` per order in phase 2, by route.
fn per_order(
    before: &BTreeMap<(&'static str, String), u64>,
    after: &BTreeMap<(&'static str, String), u64>,
    app: &str,
    orders: usize,
) -> Vec<(String, f64)> {
    after
        .iter()
        .filter(|((a, _), _)| *a == app)
        .map(|((a, r), n)| {
            let b = before.get(&(*a, r.clone())).copied().unwrap_or(0);
            (r.clone(), (n - b) as f64 / orders as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

/// How many of `every`-th orders make the call (1.0 per order: every order; 0.01: one in 100).
fn every(share: f64) -> usize {
    if share <= 0.0 {
        usize::MAX
    } else {
        (1.0 / share).round().max(1.0) as usize
    }
}

fn share(mix: &[(String, f64)], route: &str) -> f64 {
    mix.iter()
        .filter(|(r, _)| r == route)
        .map(|(_, n)| *n)
        .sum()
}

async fn ok(r: reqwest::Result<reqwest::Response>, what: &str) -> Result<Value, String> {
    let r = r.map_err(|e| format!("{what}: {e}"))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() || v["success"] == false {
        return Err(format!("{what}: {status} {v}"));
    }
    Ok(v)
}

/// The customers app alone: the order's two calls, the mirror write, the feed reads.
async fn customers_ceiling(a: &Args, mix: &[(String, f64)]) -> (u64, u64, f64) {
    let (stop, rx) = watch::channel(false);
    let bases = serve(&mocks_config(&["customers"]), None, rx).await;
    let base = bases["customers"].clone();
    let http = reqwest::Client::new();
    // A feed read every `feed_every` orders, of the events those orders made (two each).
    let feed_every = every(share(mix, "GET /api/v1/events"));
    let page = feed_every.saturating_mul(2).min(1000);
    let r = drive(
        a.orders,
        a.clients,
        Duration::from_secs(a.seconds),
        move |i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let (account, id) = place(&http, &base, i).await?;
                let body = json!({
                    "account_id": account, "order_id": id, "deployment": "saas",
                    "plan_sku": "premium-saas-1y", "seats": 10, "term_start": "2026-01-01",
                    "term_end": "2027-01-01", "auto_renew": true, "status": "active",
                });
                ok(
                    http.put(format!("{base}/api/v1/hub/subscriptions/A-S{i:08}"))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await,
                    "mirror",
                )
                .await?;
                let mut calls = 3;
                if i % feed_every == 0 {
                    ok(
                        http.get(format!(
                            "{base}/api/v1/events?after={}&limit={page}",
                            (i * 2).saturating_sub(page)
                        ))
                        .bearer_auth(TOKEN)
                        .send()
                        .await,
                        "feed",
                    )
                    .await?;
                    calls += 1;
                }
                Ok(calls)
            }
        },
    )
    .await;
    let _ = stop.send(true);
    r
}

/// Zuora alone: the sink's two calls, the source's reads of what the callout names, and the
/// callout itself (sent to a receiver that answers 200 at once).
async fn zuora_ceiling(a: &Args) -> (u64, u64, f64, u64) {
    let received = Arc::new(AtomicU64::new(0));
    let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    let r2 = received.clone();
    let receiver = tokio::spawn(async move {
        let app = Router::new().fallback(move || {
            let r = r2.clone();
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        });
        let _ = axum::serve(sink, app).await;
    });
    let mut mc = mocks_config(&["zuora"]);
    mc.zuora.callout_concurrency = a.callouts;
    mc.zuora.callout_url = Some(format!("http://{sink_addr}/callouts/zuora"));
    mc.zuora.callout_preemptive_auth = true;
    mc.zuora.callout_username = Some(CALLOUT_USER.into());
    mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
    let (stop, rx) = watch::channel(false);
    let bases = serve(&mc, None, rx).await;
    let base = bases["zuora"].clone();
    let cfg = l2f_connector_zuora::ZuoraConfig::new(
        &base,
        ZUORA_ID.to_string(),
        l2f_bus::config::SecretRef::Inline(ZUORA_SECRET.into()),
    );
    let client = Arc::new(cfg.client().expect("client"));
    let plan = client
        .catalog_plan("premium-saas-1y")
        .await
        .expect("catalog")
        .expect("premium-saas-1y");
    let rules = Arc::new(Rules::embedded());
    let profiles = cfg.profiles();
    let started = Instant::now();
    let r = drive(
        a.orders,
        a.clients,
        Duration::from_secs(a.seconds),
        move |i| {
            use l2f_connector_zuora::client::Call;
            use l2f_connector_zuora::mapping::{self, OrderAccount, Subscribe, Trace};
            let (client, plan, rules, profiles) = (
                client.clone(),
                plan.clone(),
                rules.clone(),
                profiles.clone(),
            );
            async move {
                let mut o = l2f_contracts::examples::order_placed();
                o.envelope.event_id = uuid::Uuid::new_v4();
                o.sales_channel = l2f_contracts::events::SalesChannel::WebStore;
                o.reseller = None;
                o.bill_to_country = l2f_contracts::CountryCode::from_code("US").expect("US");
                o.account_id = format!("cust_{i:06}");
                o.order_id = format!("sub_{i:06}");
                o.lines.truncate(1);
                o.lines[0].sku = "premium-saas-1y".into();
                o.lines[0].quantity = 10;
                let p = mapping::placement(&o, &rules);
                let number = mapping::account_number(&o.account_id, p.entity);
                let ev = o.envelope.event_id.to_string();
                let e = |e: l2f_connector_kit::ClientError| e.to_string();
                client
                    .account_subscriptions(&number, Call::traced(&ev))
                    .await
                    .map_err(e)?;
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
                let made = client
                    .create_order(&body, Call::once(&ev, &ev))
                    .await
                    .map_err(e)?;
                let sub = made["subscriptionNumbers"][0]
                    .as_str()
                    .or_else(|| made["subscriptions"][0]["subscriptionNumber"].as_str())
                    .unwrap_or_default()
                    .to_string();
                // The source's reads for the callout (the catalog is cached by the client).
                let call = Call::default();
                client.subscription(&sub, call).await.map_err(e)?;
                client.account(&number, call).await.map_err(e)?;
                Ok(4)
            }
        },
    )
    .await;
    // The callouts those orders raised, delivered.
    while received.load(Ordering::Relaxed) < r.0
        && started.elapsed() < Duration::from_secs(a.seconds)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    receiver.abort();
    (r.0, r.1, secs.max(r.2), received.load(Ordering::Relaxed))
}

/// Salesforce alone: the billing mirror's collections upserts (accounts and subscriptions) in
/// the batch size phase 2 had.
async fn salesforce_ceiling(a: &Args, batch: usize) -> (u64, u64, f64) {
    let (stop, rx) = watch::channel(false);
    let bases = serve(&mocks_config(&["salesforce"]), None, rx).await;
    let cfg = l2f_connector_salesforce::SalesforceConfig::new(
        &bases["salesforce"],
        "l2f-client-id",
        l2f_bus::config::SecretRef::Inline("l2f-client-secret".into()),
    )
    .with_user(
        "integration@l2f.example",
        l2f_bus::config::SecretRef::Inline("l2f-password".into()),
    );
    let client = Arc::new(cfg.client().expect("client"));
    let batch = batch.clamp(1, 200);
    let batches = a.orders.div_ceil(batch);
    let r = drive(batches, a.clients.min(8), Duration::from_secs(a.seconds), move |b| {
        let client = client.clone();
        async move {
            let first = b * batch;
            let accounts: Vec<Value> = (first..first + batch)
                .map(|i| json!({"Zuora__External_Id__c": format!("acct-{i:06}-INC"), "Name": format!("Bench {i}"), "Zuora__AccountNumber__c": format!("acct-{i:06}-INC")}))
                .collect();
            let subs: Vec<Value> = (first..first + batch)
                .map(|i| json!({"Zuora__External_Id__c": format!("A-S{i:08}"), "Zuora__SubscriptionNumber__c": format!("A-S{i:08}"), "Zuora__Status__c": "Active", "Zuora__AutoRenew__c": true}))
                .collect();
            let e = |e: l2f_connector_kit::ClientError| e.to_string();
            client
                .upsert_collection("Zuora__CustomerAccount__c", "Zuora__External_Id__c", &accounts)
                .await
                .map_err(e)?;
            client
                .upsert_collection("Zuora__Subscription__c", "Zuora__External_Id__c", &subs)
                .await
                .map_err(e)?;
            Ok(2)
        }
    })
    .await;
    let _ = stop.send(true);
    // Orders, not batches.
    ((r.0 as usize * batch).min(a.orders) as u64, r.1, r.2)
}

// ---------------------------------------------------------------------------------------------

fn main() {
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
    // Logs (librdkafka's too) only when asked: `RUST_LOG=rdkafka=debug`.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let apps = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("apps")
        .enable_all()
        .build()
        .expect("apps runtime");
    let hub = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hub")
        .enable_all()
        .build()
        .expect("hub runtime");
    let code = apps.block_on(bench(&a, &bootstrap, &hub));
    hub.shutdown_timeout(Duration::from_secs(5));
    std::process::exit(code);
}

async fn bench(a: &Args, bootstrap: &str, hub_rt: &tokio::runtime::Runtime) -> i32 {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let limit = Duration::from_secs(a.seconds);
    let tap = Arc::new(Tap::default());
    let callout = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut mc = mocks_config(&["customers", "salesforce", "zuora"]);
    mc.zuora.callout_url = Some(format!("http://{callout}/callouts/zuora"));
    mc.zuora.callout_username = Some(CALLOUT_USER.into());
    mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
    mc.zuora.callout_retry_base_ms = 200;
    mc.zuora.callout_concurrency = a.callouts;
    let (stop, rx) = watch::channel(false);
    let bases = serve(&mc, Some(tap.clone()), rx).await;
    let topics = Topics::new(&run);
    let cfg = hub_config(bootstrap, &topics, &bases, &run, callout);
    let kafka = cfg.kafka.client_config(bootstrap).expect("kafka");
    admin_topics(&kafka, &topics, a.partitions, true).await;
    let shutdown = start_hub(hub_rt, cfg);
    let http = reqwest::Client::new();
    let base = bases["customers"].clone();
    let mut failed = false;

    // 1. Warm-up.
    let warm = closed_loop(&http, &base, 0, WARM_UP, 4).await;
    if !until_done(&tap, warm.len() as u64, Duration::from_secs(60)).await {
        eprintln!(
            "warm-up: {} of {} orders done in 60 s",
            tap.done.load(Ordering::Relaxed),
            warm.len()
        );
        failed = true;
    }

    // 2. Throughput.
    let before = tap.calls();
    let start = Instant::now();
    let sent = closed_loop(&http, &base, WARM_UP, a.orders, a.clients).await;
    let send_time = start.elapsed();
    let target = (warm.len() + sent.len()) as u64;
    if !until_done(&tap, target, limit).await {
        failed = true;
    }
    let after = tap.calls();
    let (tp_done, tp_last, sf_batch) = {
        let s = tap.lock();
        let last = sent
            .iter()
            .filter_map(|(id, _)| s.done.get(id))
            .max()
            .copied()
            .unwrap_or(start);
        let n = sent
            .iter()
            .filter(|(id, _)| s.done.contains_key(id))
            .count();
        let batch = s.sf_records as f64 / s.sf_calls.max(1) as f64;
        (n, last, batch)
    };
    let tp_rate = tp_done as f64 / tp_last.duration_since(start).as_secs_f64().max(1e-9);
    println!(
        "e2e throughput: {tp_rate:.0} orders/s ({tp_done} of {} orders done in {:.2} s by {} clients; sent in {:.2} s = {:.0} orders/s offered; Salesforce {:.1} subscriptions a collections call)",
        sent.len(),
        tp_last.duration_since(start).as_secs_f64(),
        a.clients,
        send_time.as_secs_f64(),
        sent.len() as f64 / send_time.as_secs_f64(),
        sf_batch,
    );
    let mixes: Vec<(&str, Vec<(String, f64)>)> = ["customers", "zuora", "salesforce"]
        .iter()
        .map(|app| (*app, per_order(&before, &after, app, sent.len().max(1))))
        .collect();
    for (app, mix) in &mixes {
        let total: f64 = mix.iter().map(|(_, n)| n).sum();
        let parts: Vec<String> = mix.iter().map(|(r, n)| format!("{r} ×{n:.3}")).collect();
        println!(
            "  {app}: {total:.2} requests per order ({})",
            parts.join(", ")
        );
    }

    // 3. Latency at a fixed offered load.
    let first = WARM_UP + a.orders;
    let (sent_l, lag) = open_loop(&http, &base, first, a.rate, a.latency_seconds).await;
    let target = target + sent_l.len() as u64;
    if !until_done(&tap, target, limit).await {
        failed = true;
    }
    let mut lat: Vec<Duration> = {
        let s = tap.lock();
        sent_l
            .iter()
            .filter_map(|(id, at)| s.done.get(id).map(|d| d.saturating_duration_since(*at)))
            .collect()
    };
    lat.sort_unstable();
    println!(
        "e2e latency at {} orders/s offered for {} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {} orders done; generator's worst lag behind its schedule {:.1} ms)",
        a.rate,
        a.latency_seconds,
        ms(pct(&lat, 50.0)),
        ms(pct(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len(),
        sent_l.len(),
        ms(lag),
    );
    let missing =
        sent.len() + sent_l.len() + warm.len() - tap.done.load(Ordering::Relaxed) as usize;
    shutdown.cancel();
    let _ = stop.send(true);
    admin_topics(&kafka, &topics, a.partitions, false).await;

    // 4. Each app's ceiling for the same calls, alone.
    let mix = |app: &str| {
        mixes
            .iter()
            .find(|(a, _)| *a == app)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    let (c_done, c_calls, c_secs) = customers_ceiling(a, &mix("customers")).await;
    let (z_done, z_calls, z_secs, z_callouts) = zuora_ceiling(a).await;
    let (s_done, s_calls, s_secs) = salesforce_ceiling(a, sf_batch.round().max(1.0) as usize).await;
    let ceilings = [
        ("customers app", c_done, c_calls, c_secs, ""),
        ("Zuora", z_done, z_calls, z_secs, " + its callouts"),
        ("Salesforce", s_done, s_calls, s_secs, ""),
    ];
    let mut lowest = f64::MAX;
    let mut inverse = 0.0;
    for (app, done, calls, secs, extra) in ceilings {
        let rate = done as f64 / secs.max(1e-9);
        lowest = lowest.min(rate);
        inverse += 1.0 / rate.max(1e-9);
        println!(
            "  {app} mock alone: {:.0} req/s ÷ {:.2} calls per order{extra} = {rate:.0} orders/s ({done} orders in {secs:.2} s)",
            calls as f64 / secs.max(1e-9),
            calls as f64 / done.max(1) as f64,
        );
    }
    if z_callouts < z_done {
        eprintln!("zuora ceiling: {z_callouts} of {z_done} callouts delivered in time");
    }
    let combined = 1.0 / inverse;
    println!(
        "e2e: {tp_rate:.0} orders/s end to end vs {lowest:.0} orders/s (the slowest app's mock ceiling) = {:.0}%; vs {combined:.0} orders/s (the three apps sharing this machine, 1/Σ(1/ceiling)) = {:.0}%; p50 {:.1} ms / p99 {:.1} ms at {} orders/s offered",
        100.0 * tp_rate / lowest,
        100.0 * tp_rate / combined,
        ms(pct(&lat, 50.0)),
        ms(pct(&lat, 99.0)),
        a.rate,
    );
    if failed || missing > 0 {
        eprintln!(
            "bench failed: {missing} orders not done within {} s",
            a.seconds
        );
        return 1;
    }
    0
}
