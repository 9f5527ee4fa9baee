//! The replay engine against a real Kafka broker: digests, exact time bounds, gaps,
//! undisturbed consumer groups, exports read back and verified.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_audit::export::{ExportReader, Format};
use l2f_audit::range::{Bound, Filters};
use l2f_audit::replay::{export, plan};
use l2f_audit::verify::verify;
use l2f_bus::dlq::DeadLetters;
use l2f_bus::reader::Isolation;
use l2f_bus::record::OutRecord;
use l2f_bus::CancellationToken;
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};
use l2f_contracts::{examples, Codec, Event};
use l2f_e2e::{
    client, committed, create_topic, produce, quick_loop, require_kafka, unique, wait_until,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const T: Duration = Duration::from_secs(20);

fn record<E: Event>(topic: &str, key: &str, e: &E, codec: &Codec) -> OutRecord {
    OutRecord::new(topic, key, codec.encode(e).unwrap()).with_header("l2f.event-type", E::NAME)
}

/// `n` records: leads and orders, keyed by 7 customers, each with its own event id.
fn mixed(topic: &str, n: usize) -> Vec<OutRecord> {
    let codec = Codec::new();
    (0..n)
        .map(|i| {
            let key = format!("acct-{}", i % 7);
            if i % 3 == 0 {
                let mut o = examples::order_placed();
                o.envelope.event_id = Uuid::new_v4();
                o.account_id = key.clone();
                record(topic, &key, &o, &codec)
            } else {
                let mut l = examples::lead_captured();
                l.envelope.event_id = Uuid::new_v4();
                l.lead_id = format!("lead-{i}");
                record(topic, &key, &l, &codec)
            }
        })
        .collect()
}

fn replay(
    b: &str,
    topics: &[String],
    from: &str,
    to: &str,
    filters: Filters,
    format: Format,
    out: &std::path::Path,
) -> l2f_audit::Summary {
    replay_with(b, topics, from, to, filters, format, out, 2)
}

#[allow(clippy::too_many_arguments)]
fn replay_with(
    b: &str,
    topics: &[String],
    from: &str,
    to: &str,
    filters: Filters,
    format: Format,
    out: &std::path::Path,
    readers: usize,
) -> l2f_audit::Summary {
    let c = client(b);
    let header = plan(
        &c,
        topics,
        &from.parse::<Bound>().unwrap(),
        &to.parse::<Bound>().unwrap(),
        filters,
        Isolation::ReadCommitted,
        T,
    )
    .unwrap();
    export(&c, &header, format, Some(out), T, readers, &mut |_| {}).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replays_of_one_range_give_the_same_digest_in_either_format() {
    let b = require_kafka!();
    let topic = unique("replay-digest");
    create_topic(&b, &topic, 3).await;
    produce(&b, &mixed(&topic, 300)).await;
    let dir = tempfile::tempdir().unwrap();
    let topics = vec![topic.clone()];
    let a = replay(
        &b,
        &topics,
        "beginning",
        "end",
        Filters::default(),
        Format::Json,
        &dir.path().join("a.jsonl"),
    );
    let b2 = replay(
        &b,
        &topics,
        "beginning",
        "end",
        Filters::default(),
        Format::Json,
        &dir.path().join("b.jsonl"),
    );
    let c = replay(
        &b,
        &topics,
        "beginning",
        "end",
        Filters::default(),
        Format::Avro,
        &dir.path().join("c.avro"),
    );
    let one = replay_with(
        &b,
        &topics,
        "beginning",
        "end",
        Filters::default(),
        Format::Json,
        &dir.path().join("one.jsonl"),
        1,
    );
    assert_eq!(a.records, 300);
    assert_eq!(a.digest, b2.digest);
    assert_eq!(a.digest, one.digest, "one reader or two: the same digest");
    assert_eq!(a.partitions, one.partitions);
    assert_eq!(
        a.digest, c.digest,
        "the digest is over the log's bytes, not the rendering"
    );
    assert_eq!(a.event_types["OrderPlaced"], 100);
    assert_eq!(a.event_types["LeadCaptured"], 200);
    assert_eq!(a.partitions.iter().map(|p| p.records).sum::<u64>(), 300);
    assert_eq!(a.gap_offsets, 0);
    // A different range gives a different digest.
    let d = replay(
        &b,
        &topics,
        "0:1",
        "end",
        Filters::default(),
        Format::Json,
        &dir.path().join("d.jsonl"),
    );
    assert_ne!(a.digest, d.digest);
    assert_eq!(
        d.partitions.len(),
        1,
        "an offsets bound names the partitions read"
    );

    // The JSON lines file: header, 300 records with decoded events, summary.
    let text = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 302);
    assert_eq!(
        lines[0]["l2f.replay"]["ranges"].as_array().unwrap().len(),
        3
    );
    assert_eq!(lines[301]["l2f.summary"]["digest"], a.digest.as_str());
    let rec = &lines[1];
    assert!(rec["key"].as_str().unwrap().starts_with("acct-"));
    assert!(rec["headers"][0][0] == "l2f.event-type" || rec["headers"][0][0] == "traceparent");
    let ty = rec["event_type"].as_str().unwrap();
    assert!(rec["event"]["envelope"]["event_id"].is_string(), "{rec}");
    // An event line re-encodes with the codec (the form Codec::encode_json takes).
    Codec::new().encode_json(ty, &rec["event"]).unwrap();

    // The Avro file reads back with the same records in canonical form, and verifies.
    let mut r = ExportReader::open(&dir.path().join("c.avro")).unwrap();
    assert_eq!(r.format, Format::Avro);
    let mut n = 0;
    while let Some(rec) = r.next_record().unwrap() {
        let v: serde_json::Value = serde_json::from_slice(&rec).unwrap();
        assert_eq!(v["topic"], topic.as_str());
        n += 1;
    }
    assert_eq!(n, 300);
    let report = verify(&client(&b), &dir.path().join("c.avro"), T, &mut |_| {}).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.matching, 300);
    // One byte of the first record's key changed in the Avro file: caught, field named.
    let mut bytes = std::fs::read(dir.path().join("c.avro")).unwrap();
    let at = bytes.windows(5).position(|w| w == b"acct-").unwrap();
    bytes[at + 2] = b'q';
    std::fs::write(dir.path().join("c.avro"), &bytes).unwrap();
    let report = verify(&client(&b), &dir.path().join("c.avro"), T, &mut |_| {}).unwrap();
    assert!(!report.ok());
    assert_eq!(
        (
            report.altered_count,
            report.missing_count,
            report.extra_count
        ),
        (1, 0, 0)
    );
    assert_eq!(report.altered[0].fields[0].field, "key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bounds_are_exact_per_partition() {
    let b = require_kafka!();
    let topic = unique("replay-time");
    create_topic(&b, &topic, 2).await;
    let producer: FutureProducer = client(&b).create().unwrap();
    // In the past: brokers refuse timestamps more than an hour ahead (KIP-937).
    let t0: i64 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    // 40 records one second apart, alternating partitions; then a late one on partition 0
    // whose (producer) timestamp lies inside the range although its offset is after it.
    let mut stamps: Vec<(i32, i64)> = (0..40).map(|i| (i % 2, t0 + i as i64 * 1000)).collect();
    stamps.push((0, t0 + 15_000));
    // And one stamped before the range, written inside its offsets (partition 1, after 15 s).
    stamps.insert(16, (1, t0 + 1_000));
    for (i, (p, ts)) in stamps.iter().enumerate() {
        let key = format!("k{i}");
        producer
            .send(
                FutureRecord::to(&topic)
                    .partition(*p)
                    .key(&key)
                    .payload("x")
                    .timestamp(*ts),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let at = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = replay(
        &b,
        std::slice::from_ref(&topic),
        &at(t0 + 10_000),
        &at(t0 + 20_000),
        Filters::default(),
        Format::Json,
        &dir.path().join("t.jsonl"),
    );
    // Records at 10 s .. 20 s inclusive: 11; the late record is beyond the end offset; the
    // early one is inside the offsets but not the time range: skipped.
    assert_eq!((s.records, s.skipped), (11, 1), "{s:?}");
    let text = std::fs::read_to_string(dir.path().join("t.jsonl")).unwrap();
    for l in text.lines().filter(|l| l.starts_with("{\"topic\"")) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let ts = v["timestamp"].as_i64().unwrap();
        assert!((t0 + 10_000..=t0 + 20_000).contains(&ts), "{ts}");
        assert!(
            v["decode_error"].is_string(),
            "raw payloads are not Avro frames"
        );
    }
    let p0 = s.partitions.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!(
        (p0.first_timestamp, p0.last_timestamp),
        (Some(t0 + 10_000), Some(t0 + 20_000))
    );
    assert_eq!(s.undecodable, 11);
    // A bound between two records starts at the next one.
    let s = replay(
        &b,
        std::slice::from_ref(&topic),
        &at(t0 + 10_500),
        "end",
        Filters::default(),
        Format::Json,
        &dir.path().join("u.jsonl"),
    );
    assert_eq!(
        s.records,
        29 + 1,
        "records at 11 s..39 s and the late one at 15 s"
    );
    assert_eq!(s.skipped, 1, "the one stamped 1 s");
}

struct Counting(AtomicU64);

impl Handler for Counting {
    async fn handle(&self, _: &Record) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_while_a_consumer_group_runs_moves_none_of_its_offsets() {
    let b = require_kafka!();
    let topic = unique("replay-live");
    let group = unique("g-live");
    create_topic(&b, &topic, 2).await;
    produce(&b, &mixed(&topic, 100)).await;
    let c = client(&b);
    let handler = Arc::new(Counting(AtomicU64::new(0)));
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), format!("{topic}.dlq"), &group);
    let lp = ConsumerLoop::new(&c, quick_loop(&group, &topic), handler.clone(), dlq);
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    let all_committed = |n: i64| {
        let bb = b.clone();
        let (g, t) = (group.clone(), topic.clone());
        move || committed(&bb, &g, &t, 2).values().sum::<i64>() == n
    };
    assert!(wait_until(Duration::from_secs(60), all_committed(100)).await);
    let before = committed(&b, &group, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.jsonl");
    let topics = vec![topic.clone()];
    let s = tokio::task::spawn_blocking(move || {
        replay(
            &l2f_e2e::bootstrap().unwrap(),
            &topics,
            "beginning",
            "end",
            Filters::default(),
            Format::Json,
            &path,
        )
    })
    .await
    .unwrap();
    assert_eq!(s.records, 100);
    assert_eq!(
        committed(&b, &group, &topic, 2),
        before,
        "the group's offsets did not move"
    );
    // The group goes on undisturbed: new records are handled and committed.
    produce(&b, &mixed(&topic, 10)).await;
    assert!(wait_until(Duration::from_secs(60), all_committed(110)).await);
    assert_eq!(
        handler.0.load(Ordering::SeqCst),
        110,
        "no record handled twice: no rebalance"
    );
    token.cancel();
    join.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_an_altered_a_deleted_and_an_added_record() {
    let b = require_kafka!();
    let topic = unique("replay-verify");
    create_topic(&b, &topic, 2).await;
    produce(&b, &mixed(&topic, 30)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.jsonl");
    replay(
        &b,
        std::slice::from_ref(&topic),
        "beginning",
        "end",
        Filters::default(),
        Format::Json,
        &path,
    );
    let c = client(&b);
    assert!(verify(&c, &path, T, &mut |_| {}).unwrap().ok());

    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // lines[0] is the header, the last the summary. Alter one, delete one, add one.
    let mut altered: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    let was = altered["key"].clone();
    altered["key"] = "acct-forged".into();
    lines[3] = altered.to_string();
    let deleted: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
    lines.remove(5);
    let mut added: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    added["offset"] = 999.into();
    lines.insert(2, added.to_string());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let r = verify(&c, &path, T, &mut |_| {}).unwrap();
    assert!(!r.ok());
    assert_eq!(
        (r.altered_count, r.missing_count, r.extra_count),
        (1, 1, 1),
        "{r:#?}"
    );
    assert_eq!(r.matching, 28);
    let a = &r.altered[0];
    assert_eq!(a.at.offset, altered["offset"].as_i64().unwrap());
    assert_eq!(a.fields.len(), 1);
    assert_eq!(a.fields[0].field, "key");
    assert_eq!(
        (&a.fields[0].export, &a.fields[0].topic),
        (&"acct-forged".into(), &was)
    );
    assert_eq!(r.missing[0].offset, deleted["offset"].as_i64().unwrap());
    assert_eq!(r.extra[0].offset, 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_keep_only_the_named_key_type_and_flow() {
    let b = require_kafka!();
    let topic = unique("replay-filter");
    create_topic(&b, &topic, 3).await;
    let mut records = mixed(&topic, 70);
    let codec = Codec::new();
    let flow = Uuid::new_v4();
    let mut sub = examples::subscription_created();
    sub.envelope.correlation_id = flow;
    records.push(record(&topic, "A-S1", &sub, &codec));
    produce(&b, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let one = |f: Filters, name: &str| {
        replay(
            &b,
            std::slice::from_ref(&topic),
            "beginning",
            "end",
            f,
            Format::Json,
            &dir.path().join(name),
        )
    };
    let s = one(
        Filters {
            keys: vec!["acct-3".into()],
            ..Filters::default()
        },
        "k",
    );
    assert_eq!((s.records, s.skipped), (10, 61));
    let s = one(
        Filters {
            event_types: vec!["OrderPlaced".into()],
            ..Filters::default()
        },
        "e",
    );
    assert_eq!(s.records, 24);
    assert_eq!(
        s.event_types.keys().collect::<Vec<_>>(),
        vec!["OrderPlaced"]
    );
    let s = one(
        Filters {
            correlation_ids: vec![flow],
            ..Filters::default()
        },
        "c",
    );
    assert_eq!(s.records, 1);
    assert_eq!(s.event_types["SubscriptionCreated"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_below_the_oldest_record_kept_is_reported_as_a_gap() {
    let b = require_kafka!();
    let topic = unique("replay-gap");
    create_topic(&b, &topic, 1).await;
    produce(&b, &mixed(&topic, 20)).await;
    // Delete records below offset 5, as retention would.
    let admin = l2f_bus::admin::admin_client(&client(&b)).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(5))
        .unwrap();
    admin
        .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = replay(
        &b,
        std::slice::from_ref(&topic),
        "0:2",
        "0:9",
        Filters::default(),
        Format::Json,
        &dir.path().join("g"),
    );
    assert_eq!(s.records, 5, "offsets 5..=9");
    assert_eq!(s.partitions[0].gaps, vec![[2, 5]]);
    assert_eq!(s.gap_offsets, 3);
}
