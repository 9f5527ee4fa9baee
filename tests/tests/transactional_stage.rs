//! The transactional stage in-process on a real broker: outputs and dead letters commit with
//! the input offsets, and a record that always fails transiently cannot stall its partition.

use std::time::Duration;

use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::transactional::{StageSettings, TransactionalStage};
use l2f_bus::{CancellationToken, HandlerError, Record};
use l2f_e2e::{client, committed, create_topic, produce, require_kafka, unique, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_failing_every_time_are_dead_lettered_inside_the_transaction() {
    let b = require_kafka!();
    let input = unique("stage-in");
    let output = unique("stage-out");
    let dlq = unique("stage-dlq");
    let group = unique("g-stage");
    for t in [&input, &output, &dlq] {
        create_topic(&b, t, 1).await;
    }
    let records: Vec<OutRecord> = (0..10)
        .map(|i| {
            let v = match i {
                3 => "invalid".to_string(),
                6 => "flaky-forever".to_string(),
                _ => format!("order-{i}"),
            };
            OutRecord::new(&input, format!("acct-{i}"), v)
        })
        .collect();
    produce(&b, &records).await;
    let out_topic = output.clone();
    let transform = move |r: &Record| -> Result<Vec<OutRecord>, HandlerError> {
        match r.payload.as_deref() {
            Some(b"invalid") => Err(HandlerError::permanent("seats: 0 must be > 0")),
            Some(b"flaky-forever") => Err(HandlerError::transient("zuora: 503")),
            _ => Ok(vec![OutRecord {
                topic: out_topic.clone(),
                partition: None,
                key: r.key.clone(),
                payload: r.payload.clone(),
                headers: vec![],
            }]),
        }
    };
    let mut settings = StageSettings::new(&group, &input, &unique("txn"), &dlq);
    settings.max_transform_attempts = 3;
    let stage = TransactionalStage::new(&client(&b), settings, transform);
    let stats = stage.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(stage.run(token.clone()));
    assert!(
        wait_until(Duration::from_secs(60), || stats.records_in() == 10).await,
        "in {} aborted {}",
        stats.records_in(),
        stats.aborted()
    );
    token.cancel();
    join.await.unwrap().unwrap();
    let c = client(&b);
    let out = read_all(&c, &output, Duration::from_secs(10)).unwrap();
    assert_eq!(out.len(), 8);
    let letters: Vec<DeadLetter> = read_all(&c, &dlq, Duration::from_secs(10))
        .unwrap()
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect();
    let summary: Vec<(i64, &str, u32)> = letters
        .iter()
        .map(|l| (l.source_offset, l.error_class.as_str(), l.attempts))
        .collect();
    assert_eq!(summary, vec![(3, "permanent", 1), (6, "transient", 3)]);
    assert_eq!(committed(&b, &group, &input, 1).get(&0), Some(&10));
    assert!(
        stats.aborted() >= 2,
        "the flaky record aborted its batch before giving up"
    );
}
