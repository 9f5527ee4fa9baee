//! The consume → effect → commit loop against a real Kafka broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use l2f_bus::dlq::{self, DeadLetter, DeadLetters, RedriveFilter};
use l2f_bus::headers;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};
use l2f_e2e::{
    client, committed, create_topic, produce, quick_loop, require_kafka, unique, wait_until,
};
use tokio_util::sync::CancellationToken;

fn spawn_loop<H: Handler>(
    bootstrap: &str,
    group: &str,
    topic: &str,
    handler: Arc<H>,
) -> (
    CancellationToken,
    l2f_bus::LoopStats,
    tokio::task::JoinHandle<l2f_bus::Result<()>>,
) {
    let c = client(bootstrap);
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), group);
    let lp = ConsumerLoop::new(&c, quick_loop(group, topic), handler, dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    (token, stats, join)
}

/// Fails each record transiently twice (the second time with a Retry-After hint), then
/// applies it; counts effects per offset and checks, at every failed attempt, that the
/// group has not committed past the record.
struct FlakyThenOk {
    attempts: Mutex<HashMap<i64, u32>>,
    effects: Mutex<BTreeMap<i64, u32>>,
    bootstrap: String,
    group: String,
    committed_early: AtomicU32,
}

impl Handler for FlakyThenOk {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        let n = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(r.offset).or_default();
            *n += 1;
            *n
        };
        if n <= 2 {
            let done = committed(&self.bootstrap, &self.group, &r.topic, 1);
            if done.get(&r.partition).is_some_and(|&c| c > r.offset) {
                eprintln!("EARLY offset {} attempt {n} committed {done:?}", r.offset);
                self.committed_early.fetch_add(1, Ordering::SeqCst);
            }
            return Err(if n == 1 {
                HandlerError::transient("upstream timed out")
            } else {
                HandlerError::retry_after("429 Too Many Requests", Duration::from_millis(300))
            });
        }
        *self.effects.lock().unwrap().entry(r.offset).or_default() += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_then_success_gives_one_effect_and_commits_after_it() {
    let b = require_kafka!();
    let topic = unique("flaky");
    let group = unique("g-flaky");
    create_topic(&b, &topic, 1).await;
    let records: Vec<OutRecord> = (0..5)
        .map(|i| OutRecord::new(&topic, format!("acct-{i}"), format!("event-{i}")))
        .collect();
    produce(&b, &records).await;
    let h = Arc::new(FlakyThenOk {
        attempts: Mutex::default(),
        effects: Mutex::default(),
        bootstrap: b.clone(),
        group: group.clone(),
        committed_early: AtomicU32::new(0),
    });
    let (token, stats, join) = spawn_loop(&b, &group, &topic, h.clone());
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 5).await,
        "handled {}",
        stats.handled()
    );
    assert!(
        wait_until(Duration::from_secs(15), || committed(&b, &group, &topic, 1)
            .get(&0)
            == Some(&5))
        .await,
        "committed {:?}",
        committed(&b, &group, &topic, 1)
    );
    token.cancel();
    join.await.unwrap().unwrap();
    let effects = h.effects.lock().unwrap().clone();
    assert_eq!(
        effects,
        (0..5).map(|o| (o, 1)).collect::<BTreeMap<_, _>>(),
        "exactly one effect per record"
    );
    assert_eq!(stats.retries(), 10);
    assert_eq!(stats.dead_lettered(), 0);
    assert_eq!(
        h.committed_early.load(Ordering::SeqCst),
        0,
        "an offset was committed before its effect"
    );
}

/// Rejects payloads starting with "poison" unless the record has been redriven (the fix).
struct RejectsPoison {
    handled: Mutex<Vec<String>>,
}

impl Handler for RejectsPoison {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        let v = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).to_string();
        if v.starts_with("poison") && r.header(headers::dlq::REDRIVE_COUNT).is_none() {
            return Err(HandlerError::permanent(format!(
                "country: \"UK\" is not an ISO 3166-1 alpha-2 code (in {v})"
            )));
        }
        self.handled.lock().unwrap().push(v);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_is_dead_lettered_the_loop_goes_on_and_redrive_returns_it() {
    let b = require_kafka!();
    let topic = unique("orders");
    let dlq_topic = format!("{topic}.dlq");
    let group = unique("g-poison");
    create_topic(&b, &topic, 2).await;
    create_topic(&b, &dlq_topic, 1).await;
    let records: Vec<OutRecord> = (0..10)
        .map(|i| {
            let v = if i == 3 {
                "poison-3".to_string()
            } else {
                format!("ok-{i}")
            };
            OutRecord::new(&topic, format!("acct-{i}"), v).with_header("tenant", "acme")
        })
        .collect();
    produce(&b, &records).await;
    let h = Arc::new(RejectsPoison {
        handled: Mutex::default(),
    });
    let (token, stats, join) = spawn_loop(&b, &group, &topic, h.clone());
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 9
            && stats.dead_lettered() == 1)
        .await
    );

    let c = client(&b);
    let letters: Vec<DeadLetter> = read_all(&c, &dlq_topic, Duration::from_secs(20))
        .unwrap()
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.record.key.as_deref(), Some(&b"acct-3"[..]));
    assert_eq!(l.record.payload.as_deref(), Some(&b"poison-3"[..]));
    assert_eq!(
        l.record.header_str("tenant"),
        Some("acme"),
        "original headers kept"
    );
    assert!(
        l.record.header_str(headers::TRACEPARENT).is_some(),
        "trace context kept"
    );
    assert_eq!(l.error_class, "permanent");
    assert!(l.error_message.contains("country") && l.error_message.contains("UK"));
    assert_eq!(l.source_topic, topic);
    assert_eq!(l.attempts, 1);
    assert_eq!(l.consumer_group, group);
    assert!(!l.failed_at.is_empty());
    let source = read_all(&c, &topic, Duration::from_secs(20)).unwrap();
    let original = source
        .iter()
        .find(|r| r.payload.as_deref() == Some(&b"poison-3"[..]))
        .unwrap();
    assert_eq!(
        (l.source_partition, l.source_offset),
        (original.partition, original.offset)
    );

    let n = dlq::redrive(
        &Producer::new(&c).unwrap(),
        &letters,
        &RedriveFilter::default(),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert!(
        wait_until(Duration::from_secs(30), || stats.handled() == 10).await,
        "redriven record handled"
    );
    token.cancel();
    join.await.unwrap().unwrap();
    let handled = h.handled.lock().unwrap().clone();
    assert_eq!(handled.iter().filter(|v| *v == "poison-3").count(), 1);
    assert_eq!(stats.dead_lettered(), 1);
}

/// Records `(key, seq)` in handling order, slowly enough that members join and leave mid-run.
struct Recorder {
    seen: Mutex<Vec<(String, u32)>>,
}

impl Handler for Recorder {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_micros(300)).await;
        let seq: u32 = String::from_utf8_lossy(r.payload.as_deref().unwrap())
            .parse()
            .unwrap();
        self.seen.lock().unwrap().push((r.key_str(), seq));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keyed_records_survive_members_joining_and_leaving_in_order() {
    let b = require_kafka!();
    let topic = unique("rebalance");
    let group = unique("g-rebalance");
    create_topic(&b, &topic, 6).await;
    const KEYS: u32 = 200;
    const TOTAL: u32 = 10_000;
    let records: Vec<OutRecord> = (0..TOTAL)
        .map(|i| OutRecord::new(&topic, format!("acct-{}", i % KEYS), (i / KEYS).to_string()))
        .collect();
    produce(&b, &records).await;
    let rec = Arc::new(Recorder {
        seen: Mutex::default(),
    });
    let count = || rec.seen.lock().unwrap().len();
    let (a_tok, _, a_join) = spawn_loop(&b, &group, &topic, rec.clone());
    assert!(wait_until(Duration::from_secs(60), || count() >= 1500).await);
    let (b_tok, _, b_join) = spawn_loop(&b, &group, &topic, rec.clone());
    assert!(wait_until(Duration::from_secs(60), || count() >= 4000).await);
    let (c_tok, _, c_join) = spawn_loop(&b, &group, &topic, rec.clone());
    assert!(wait_until(Duration::from_secs(60), || count() >= 6500).await);
    a_tok.cancel();
    a_join.await.unwrap().unwrap();
    assert!(
        wait_until(Duration::from_secs(90), || count() >= TOTAL as usize).await,
        "handled {} of {TOTAL}",
        count()
    );
    // Let any straggling redelivery show up before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    b_tok.cancel();
    c_tok.cancel();
    b_join.await.unwrap().unwrap();
    c_join.await.unwrap().unwrap();

    let seen = rec.seen.lock().unwrap().clone();
    let mut per_key: HashMap<String, Vec<u32>> = HashMap::new();
    for (k, s) in &seen {
        per_key.entry(k.clone()).or_default().push(*s);
    }
    assert_eq!(per_key.len(), KEYS as usize);
    for (k, seqs) in &per_key {
        let expected: Vec<u32> = (0..TOTAL / KEYS).collect();
        assert_eq!(seqs, &expected, "key {k}: every record once, in order");
    }
    assert_eq!(seen.len(), TOTAL as usize, "no record handled twice");
}

/// Panics on one record.
struct PanicsOnce;

impl Handler for PanicsOnce {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        if r.payload.as_deref() == Some(&b"boom"[..]) {
            panic!("unexpected null in lead {}", r.key_str());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_dead_letters_the_record_and_the_partition_goes_on() {
    let b = require_kafka!();
    let topic = unique("panics");
    let group = unique("g-panics");
    create_topic(&b, &topic, 1).await;
    create_topic(&b, &format!("{topic}.dlq"), 1).await;
    let records: Vec<OutRecord> = ["a", "boom", "c", "d"]
        .iter()
        .map(|v| OutRecord::new(&topic, "lead-1", *v))
        .collect();
    produce(&b, &records).await;
    let (token, stats, join) = spawn_loop(&b, &group, &topic, Arc::new(PanicsOnce));
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 3
            && stats.dead_lettered() == 1)
        .await
    );
    assert!(
        wait_until(Duration::from_secs(15), || committed(&b, &group, &topic, 1)
            .get(&0)
            == Some(&4))
        .await,
        "the partition's offset moves past the panicking record"
    );
    token.cancel();
    join.await.unwrap().unwrap();
    let letters: Vec<DeadLetter> = read_all(
        &client(&b),
        &format!("{topic}.dlq"),
        Duration::from_secs(10),
    )
    .unwrap()
    .into_iter()
    .filter_map(DeadLetter::parse)
    .collect();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]
            .error_message
            .contains("handler panicked: unexpected null in lead lead-1"),
        "{:?}",
        letters[0]
    );
}

/// A slow effect: 1 ms per record.
struct Slow;

impl Handler for Slow {
    async fn handle(&self, _r: &Record) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_pauses_the_partition_instead_of_buffering_the_topic() {
    let b = require_kafka!();
    let topic = unique("backpressure");
    let group = unique("g-backpressure");
    create_topic(&b, &topic, 1).await;
    const N: usize = 3000;
    let payload = "x".repeat(512);
    let records: Vec<OutRecord> = (0..N)
        .map(|i| OutRecord::new(&topic, format!("k{i}"), payload.clone()))
        .collect();
    produce(&b, &records).await;

    let c = client(&b);
    let mut s = quick_loop(&group, &topic);
    s.consumer.max_in_flight_per_partition = 128;
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, s, Arc::new(Slow), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    let mut peak = 0;
    let start = std::time::Instant::now();
    while stats.handled() < N as u64 && start.elapsed() < Duration::from_secs(90) {
        peak = peak.max(stats.in_memory());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(stats.handled(), N as u64);
    token.cancel();
    join.await.unwrap().unwrap();
    // Queue (2 batches), the batch in hand and at most one stashed batch; with 128 in flight
    // a drain takes at most 64 (half the in-flight bound), so 2 × 128 + 64.
    let bound = 2 * 128 + 64;
    eprintln!("backpressure: peak {peak} records in memory (bound {bound})");
    assert!(peak > 0, "the gauge saw records in memory");
    assert!(
        peak <= bound,
        "peak {peak} records in memory, bound {bound}: backpressure failed"
    );
    assert_eq!(
        stats.in_memory(),
        0,
        "every record taken was finished or released"
    );
}

/// Accepts every record.
struct Accepts;

impl Handler for Accepts {
    async fn handle(&self, _r: &Record) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// `/metrics`' lag and latency come from the loop: librdkafka's statistics of each assigned
/// partition (committed offset, end, lag) and a histogram of handler calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_reports_each_partitions_lag_and_the_handlers_latency() {
    let b = require_kafka!();
    let topic = unique("lag");
    let group = unique("g-lag");
    create_topic(&b, &topic, 2).await;
    const N: i64 = 40;
    let records: Vec<OutRecord> = (0..N)
        .map(|i| OutRecord::new(&topic, format!("k{i}"), format!("v{i}")))
        .collect();
    produce(&b, &records).await;
    let mut c = client(&b);
    c.set("statistics.interval.ms", "200");
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, quick_loop(&group, &topic), Arc::new(Accepts), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    let caught_up = wait_until(Duration::from_secs(60), || {
        let lag = stats.lag();
        lag.len() == 2
            && lag.values().map(|l| l.committed).sum::<i64>() == N
            && lag.values().all(|l| l.lag == 0 && l.high == l.committed)
    })
    .await;
    let lag = stats.lag();
    token.cancel();
    join.await.unwrap().unwrap();
    assert!(
        caught_up,
        "both partitions report committed = end, lag 0: {lag:?}"
    );
    let h = stats.latency();
    assert_eq!(h.count, stats.calls(), "one observation per handler call");
    assert!(h.count > 0 && h.sum >= 0.0);
    assert_eq!(
        h.buckets.last().map(|b| b.1),
        Some(h.count),
        "+Inf holds every call"
    );
    assert!(h.buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
}

/// An app that can be taken down: its records wait (the partition paused) until it answers.
struct Switchable(std::sync::atomic::AtomicBool);

impl Handler for Switchable {
    async fn handle(&self, _r: &Record) -> Result<(), HandlerError> {
        if self.0.load(Ordering::SeqCst) {
            Err(HandlerError::unavailable(
                "503 from the app",
                Some(Duration::from_millis(100)),
            ))
        } else {
            Ok(())
        }
    }
    async fn probe(&self) -> bool {
        !self.0.load(Ordering::SeqCst)
    }
}

/// The lag an operator's alert watches rises while the app is down (the partition paused)
/// and falls back to 0 once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_rises_while_the_app_is_down_and_falls_to_zero_after() {
    let b = require_kafka!();
    let topic = unique("lag-paused");
    let group = unique("g-lag-paused");
    create_topic(&b, &topic, 1).await;
    let batch = |from: usize, n: usize| -> Vec<OutRecord> {
        (from..from + n)
            .map(|i| OutRecord::new(&topic, format!("k{i}"), format!("v{i}")))
            .collect()
    };
    produce(&b, &batch(0, 10)).await;
    let app = Arc::new(Switchable(std::sync::atomic::AtomicBool::new(false)));
    let mut c = client(&b);
    c.set("statistics.interval.ms", "200");
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, quick_loop(&group, &topic), app.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    let lag_of = |stats: &l2f_bus::LoopStats| stats.lag().get(&(topic.clone(), 0)).copied();
    let caught_up = |n: i64| {
        let stats = stats.clone();
        move || lag_of(&stats).is_some_and(|l| l.committed == n && l.lag == 0)
    };
    assert!(
        wait_until(Duration::from_secs(60), caught_up(10)).await,
        "{:?}",
        lag_of(&stats)
    );
    app.0.store(true, Ordering::SeqCst);
    produce(&b, &batch(10, 25)).await;
    let behind = wait_until(Duration::from_secs(60), || {
        stats.waiting() == 1 && lag_of(&stats).is_some_and(|l| l.lag >= 25 && l.committed == 10)
    })
    .await;
    let seen = lag_of(&stats);
    app.0.store(false, Ordering::SeqCst);
    let recovered = wait_until(Duration::from_secs(60), caught_up(35)).await;
    let last = lag_of(&stats);
    token.cancel();
    join.await.unwrap().unwrap();
    assert!(behind, "lag rose to 25 while paused: {seen:?}");
    assert!(recovered, "lag fell to 0 after the app came back: {last:?}");
    assert_eq!(stats.handled(), 35);
    assert_eq!(
        stats.dead_lettered(),
        0,
        "never dead-lettered for an outage"
    );
}
