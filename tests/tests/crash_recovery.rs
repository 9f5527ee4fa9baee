//! Real process deaths (SIGKILL) against a real Kafka broker: nothing is lost, and the
//! transactional stage's output has no duplicate and no gap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_e2e::{client, create_topic, produce, require_kafka, unique, wait_until};

fn testkit(bootstrap: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_l2f-testkit"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("start l2f-testkit")
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

fn terminate(child: &mut Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("testkit did not stop on SIGTERM within 30 s");
}

/// `(partition, offset)` pairs the consumer has handled, from its effect file.
fn handled(path: &Path) -> Vec<(i32, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_mid_batch_and_restarted_loses_nothing() {
    let b = require_kafka!();
    let topic = unique("sigkill");
    let group = unique("g-sigkill");
    create_topic(&b, &topic, 3).await;
    const N: usize = 3000;
    let records: Vec<OutRecord> = (0..N)
        .map(|i| OutRecord::new(&topic, format!("acct-{}", i % 50), i.to_string()))
        .collect();
    produce(&b, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("effects.txt");
    let out_s = out.to_str().unwrap();
    let args = [
        "consume",
        "--topic",
        &topic,
        "--group",
        &group,
        "--out",
        out_s,
        "--delay-ms",
        "1",
    ];

    let mut first = testkit(&b, &args);
    assert!(
        wait_until(Duration::from_secs(60), || handled(&out).len() >= 600).await,
        "first consumer made no progress"
    );
    kill9(&mut first);
    let before_restart = handled(&out).len();
    assert!(
        before_restart < N,
        "the kill must land mid-run (handled {before_restart})"
    );

    let mut second = testkit(&b, &args);
    let all_done = || handled(&out).into_iter().collect::<BTreeSet<_>>().len() == N;
    let finished = wait_until(Duration::from_secs(120), all_done).await;
    terminate(&mut second);
    assert!(
        finished,
        "handled {} distinct of {N}",
        handled(&out).into_iter().collect::<BTreeSet<_>>().len()
    );
    let seen = handled(&out);
    let distinct: BTreeSet<_> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), N, "every record handled");
    // At-least-once: records after the last commit before the kill may run twice, no more.
    let redone = seen.len() - N;
    eprintln!("SIGKILL test: {before_restart} handled before the kill, {redone} handled again after restart");
    assert!(
        redone <= before_restart,
        "redelivery is bounded by the work in flight at the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_stage_killed_mid_transaction_leaves_no_duplicate_and_no_gap() {
    let b = require_kafka!();
    let input = unique("txn-in");
    let output = unique("txn-out");
    let group = unique("g-txn");
    let txn_id = unique("stage");
    create_topic(&b, &input, 3).await;
    create_topic(&b, &output, 3).await;
    const N: usize = 3000;
    let records: Vec<OutRecord> = (0..N)
        .map(|i| OutRecord::new(&input, format!("sub-{}", i % 30), i.to_string()))
        .collect();
    produce(&b, &records).await;
    let args = [
        "transform",
        "--input",
        &input,
        "--output",
        &output,
        "--group",
        &group,
        "--txn-id",
        &txn_id,
        "--delay-ms",
        "2",
    ];
    let c = client(&b);
    let output_hw = || -> i64 {
        l2f_bus::admin::watermarks(&c, &output, Duration::from_secs(5))
            .map(|w| w.iter().map(|(_, _, hi)| hi).sum())
            .unwrap_or(0)
    };

    let mut first = testkit(&b, &args);
    // Wait until some transactions are committed, then kill while the next one is open
    // (each batch of 100 takes ~200 ms of transform time).
    assert!(
        wait_until(Duration::from_secs(60), || output_hw() >= 700).await,
        "stage made no progress"
    );
    std::thread::sleep(Duration::from_millis(90));
    kill9(&mut first);

    let mut second = testkit(&b, &args);
    let committed_count = || {
        read_all(&c, &output, Duration::from_secs(20))
            .map(|r| r.len())
            .unwrap_or(0)
    };
    let finished = wait_until(Duration::from_secs(120), || committed_count() >= N).await;
    terminate(&mut second);
    assert!(finished, "output has {} of {N} records", committed_count());

    // read_all reads read_committed (the librdkafka default): aborted records are invisible.
    let out = read_all(&c, &output, Duration::from_secs(20)).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for r in &out {
        let v: usize = String::from_utf8_lossy(r.payload.as_deref().unwrap())
            .parse()
            .unwrap();
        by_partition.entry(r.partition).or_default().push(v);
    }
    let input_recs = read_all(&c, &input, Duration::from_secs(20)).unwrap();
    let mut expected: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for r in &input_recs {
        let v: usize = String::from_utf8_lossy(r.payload.as_deref().unwrap())
            .parse()
            .unwrap();
        expected.entry(r.partition).or_default().push(v);
    }
    assert_eq!(
        out.len(),
        N,
        "no duplicate and no gap in the committed output"
    );
    assert_eq!(
        by_partition, expected,
        "each partition's output is its input, once, in order"
    );
    let hw = output_hw();
    eprintln!("transactional SIGKILL test: output high watermark {hw} for {N} committed records (the rest are aborted records and markers)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_scheduler_killed_and_restarted_fires_every_timer_exactly_once() {
    let b = require_kafka!();
    let input = unique("remind-in");
    let output = unique("remind-out");
    let changelog = unique("remind-state");
    let group = unique("g-remind");
    for t in [&input, &output, &changelog] {
        create_topic(&b, t, 3).await;
    }
    create_topic(&b, &format!("{input}.dlq"), 1).await;
    // 1,500 reminders due over the next 8 seconds, on the wall clock.
    let start = chrono::Utc::now().timestamp_millis() + 1_000;
    let records: Vec<OutRecord> = (0..1500)
        .map(|i| OutRecord::new(&input, format!("k{i}"), (start + i * 5).to_string()))
        .collect();
    produce(&b, &records).await;
    let args = [
        "remind",
        "--input",
        &input,
        "--output",
        &output,
        "--changelog",
        &changelog,
        "--group",
        &group,
    ];
    let mut kit = testkit(&b, &args);
    let fired = |b: &str| read_all(&client(b), &output, Duration::from_secs(20)).unwrap();
    for at in [200, 700] {
        assert!(
            wait_until(Duration::from_secs(60), || fired(&b).len() >= at).await,
            "stalled before {at} reminders"
        );
        kill9(&mut kit);
        kit = testkit(&b, &args);
    }
    assert!(
        wait_until(Duration::from_secs(90), || fired(&b).len() >= 1500).await,
        "only {} of 1500 reminders fired",
        fired(&b).len()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    terminate(&mut kit);
    let out = fired(&b);
    let keys: BTreeSet<String> = out.iter().map(|r| r.key_str()).collect();
    assert_eq!(
        out.len(),
        1500,
        "every reminder exactly once after two SIGKILLs"
    );
    assert_eq!(keys.len(), 1500);
    let mut uncommitted = client(&b);
    uncommitted.set("isolation.level", "read_uncommitted");
    let raw = read_all(&uncommitted, &output, Duration::from_secs(20))
        .unwrap()
        .len();
    eprintln!(
        "1500 reminders committed once each; {raw} written in all (the rest aborted by the kills)"
    );
}
