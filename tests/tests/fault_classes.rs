//! Who is at fault, on a real broker: an unavailable app pauses its partitions and loses
//! nothing (no dead letter, no commit past a waiting record); a batching handler gets calls of
//! distinct keys and per-key order holds through retries.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use l2f_bus::dlq::DeadLetters;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};
use l2f_e2e::{
    client, committed, create_topic, produce, quick_loop, require_kafka, unique, wait_until,
};
use tokio_util::sync::CancellationToken;

/// An app that is down until `up` is set: every call answers Unavailable and the probe says
/// no; afterwards every record is applied once.
#[derive(Default)]
struct DownThenUp {
    up: AtomicBool,
    probes: AtomicU64,
    calls_while_down: AtomicU64,
    effects: Mutex<BTreeMap<(i32, i64), u32>>,
}

impl Handler for DownThenUp {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        if !self.up.load(Ordering::SeqCst) {
            self.calls_while_down.fetch_add(1, Ordering::SeqCst);
            return Err(HandlerError::unavailable("app answered 503", None));
        }
        *self
            .effects
            .lock()
            .unwrap()
            .entry((r.partition, r.offset))
            .or_default() += 1;
        Ok(())
    }

    async fn probe(&self) -> bool {
        self.probes.fetch_add(1, Ordering::SeqCst);
        self.up.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_app_pauses_its_partitions_and_every_record_arrives_once_it_is_back() {
    let b = require_kafka!();
    let topic = unique("down");
    let group = unique("g-down");
    create_topic(&b, &topic, 2).await;
    create_topic(&b, &format!("{topic}.dlq"), 1).await;
    let records: Vec<OutRecord> = (0..600)
        .map(|i| OutRecord::new(&topic, format!("k{}", i % 40), format!("v{i}")))
        .collect();
    produce(&b, &records).await;

    let app = Arc::new(DownThenUp::default());
    let c = client(&b);
    let mut settings = quick_loop(&group, &topic);
    settings.retry.max_attempts = 2; // a transient failure would be dead-lettered at once
    settings.consumer.max_in_flight_per_partition = 128;
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, settings, app.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));

    assert!(
        wait_until(Duration::from_secs(30), || stats.waiting() == 2).await,
        "both partitions should wait for the app (waiting {})",
        stats.waiting()
    );
    // Down for a while: nothing handled, nothing dead-lettered, nothing committed, memory held
    // to the in-flight bound (the partitions are paused, not drained into the loop).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stats.handled(), 0);
    assert_eq!(stats.dead_lettered(), 0);
    assert_eq!(
        committed(&b, &group, &topic, 2).values().sum::<i64>(),
        0,
        "nothing committed past a waiting record"
    );
    assert!(
        stats.in_memory() <= 2 * 2 * 128,
        "held {}",
        stats.in_memory()
    );
    assert!(
        app.probes.load(Ordering::SeqCst) >= 2,
        "the probe is asked while waiting"
    );
    assert!(
        app.calls_while_down.load(Ordering::SeqCst) <= 2,
        "while waiting only the probe talks to the app, not the records ({} calls)",
        app.calls_while_down.load(Ordering::SeqCst)
    );

    app.up.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 600).await,
        "handled {} of 600 after the app came back",
        stats.handled()
    );
    assert_eq!(stats.waiting(), 0);
    assert!(stats.unavailable() >= 2);
    assert_eq!(stats.dead_lettered(), 0);
    token.cancel();
    join.await.unwrap().unwrap();
    let effects = app.effects.lock().unwrap().clone();
    assert_eq!(effects.len(), 600);
    assert!(effects.values().all(|&n| n == 1), "one effect per record");
    let letters = read_all(&c, &format!("{topic}.dlq"), Duration::from_secs(10)).unwrap();
    assert!(
        letters.is_empty(),
        "nothing dead-lettered: {}",
        letters.len()
    );
    let done: i64 = committed(&b, &group, &topic, 2).values().sum();
    assert_eq!(done, 600, "every offset committed once the app was back");
}

/// Applies records in batches of up to 25, failing every 7th record of a call transiently
/// once; records the keys of each call and the order of each key's effects.
#[derive(Default)]
struct Batcher {
    calls: Mutex<Vec<Vec<String>>>,
    failed_once: Mutex<HashSet<(i32, i64)>>,
    applied: Mutex<BTreeMap<String, Vec<i64>>>,
}

impl Handler for Batcher {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(r)).await.remove(0)
    }

    fn max_batch(&self) -> usize {
        25
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandlerError>> {
        self.calls
            .lock()
            .unwrap()
            .push(records.iter().map(Record::key_str).collect());
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if i % 7 == 3
                    && self
                        .failed_once
                        .lock()
                        .unwrap()
                        .insert((r.partition, r.offset))
                {
                    return Err(HandlerError::transient("row locked"));
                }
                let seq: i64 = String::from_utf8_lossy(r.payload.as_deref().unwrap())
                    .parse()
                    .unwrap();
                self.applied
                    .lock()
                    .unwrap()
                    .entry(r.key_str())
                    .or_default()
                    .push(seq);
                Ok(())
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_handler_gets_calls_of_distinct_keys_and_each_keys_order_holds_through_retries()
{
    let b = require_kafka!();
    let topic = unique("batch");
    let group = unique("g-batch");
    create_topic(&b, &topic, 3).await;
    create_topic(&b, &format!("{topic}.dlq"), 1).await;
    // 1,500 records over 30 keys; each key's values count up, in production order.
    let records: Vec<OutRecord> = (0..1500)
        .map(|i| OutRecord::new(&topic, format!("key-{}", i % 30), i.to_string()))
        .collect();
    produce(&b, &records).await;
    let h = Arc::new(Batcher::default());
    let c = client(&b);
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, quick_loop(&group, &topic), h.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 1500).await,
        "handled {}",
        stats.handled()
    );
    token.cancel();
    join.await.unwrap().unwrap();
    let calls = h.calls.lock().unwrap().clone();
    for call in &calls {
        assert!(call.len() <= 25);
        let distinct: HashSet<&String> = call.iter().collect();
        assert_eq!(
            distinct.len(),
            call.len(),
            "a key twice in one call: {call:?}"
        );
    }
    assert!(
        calls.iter().any(|c| c.len() > 1),
        "the handler was never given a batch"
    );
    assert!(calls.len() < 1500, "{} calls for 1500 records", calls.len());
    let applied = h.applied.lock().unwrap().clone();
    assert_eq!(applied.values().map(Vec::len).sum::<usize>(), 1500);
    for (key, seqs) in &applied {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {seqs:?}"
        );
    }
    assert_eq!(stats.dead_lettered(), 0);
    assert!(stats.retries() > 0, "some records were retried");
    eprintln!(
        "1500 records in {} calls ({} retried)",
        calls.len(),
        stats.retries()
    );
}
