//! The producer's guarantees under broker-side retries, on librdkafka's mock cluster (which
//! speaks the Kafka protocol in-process and injects errors into chosen requests): no record
//! doubled or reordered per key, and every delivery reported to its caller.

use std::collections::HashMap;
use std::time::Duration;

use l2f_bus::record::OutRecord;
use l2f_bus::Producer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;

fn read_all(bootstrap: &str, topic: &str, expect: usize) -> Vec<(String, String, i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "producer-retries-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < expect && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            got.push((key, value, m.partition(), m.offset()));
        }
    }
    // Anything past the expected count would be a duplicate: give it a moment to show.
    let settle = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            got.push((key, value, m.partition(), m.offset()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_produce_requests_neither_double_nor_reorder_a_key_and_every_delivery_is_reported()
{
    let cluster = MockCluster::new(1).unwrap();
    let topic = "retried";
    cluster.create_topic(topic, 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    // The broker answers several Produce requests with retriable errors; librdkafka retries
    // them (the idempotent producer keeps its sequence numbers, so nothing is doubled).
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &bootstrap)
        .set("retry.backoff.ms", "10");
    let producer = Producer::new(&client).unwrap();
    const N: usize = 3000;
    let records: Vec<OutRecord> = (0..N)
        .map(|i| OutRecord::new(topic, format!("k{}", i % 20), format!("{i}")))
        .collect();
    let delivered = producer.send_all(&records, 500).await.unwrap();

    assert_eq!(delivered.len(), N);
    assert!(
        delivered.iter().all(|d| d.partition >= 0 && d.offset >= 0),
        "every delivery reported with where it landed"
    );
    let mut positions: Vec<(i32, i64)> =
        delivered.iter().map(|d| (d.partition, d.offset)).collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(
        positions.len(),
        N,
        "no two records reported at one position"
    );

    let got = read_all(&bootstrap, topic, N);
    assert_eq!(got.len(), N, "each record stored once");
    let mut last: HashMap<String, usize> = HashMap::new();
    for (key, value, partition, offset) in &got {
        let i: usize = value.parse().unwrap();
        assert_eq!(
            delivered[i],
            l2f_bus::producer::Delivered {
                partition: *partition,
                offset: *offset
            },
            "record {i} is where its delivery said"
        );
        if let Some(prev) = last.insert(key.clone(), i) {
            assert!(prev < i, "key {key}: record {i} stored after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_broker_refuses_fails_its_call_after_every_delivery_is_reported() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("refused", 1, 1).unwrap();
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("message.max.bytes", "2000");
    let producer = Producer::new(&client).unwrap();
    let mut records: Vec<OutRecord> = (0..50)
        .map(|i| OutRecord::new("refused", format!("k{i}"), "ok"))
        .collect();
    // Larger than message.max.bytes: librdkafka refuses it at once.
    records[10].payload = Some(vec![b'x'; 10_000]);
    let err = producer.send_all(&records, 8).await.unwrap_err();
    assert!(err.to_string().contains("produce to refused"), "{err}");
    // The call returned only once nothing it handed over was still in flight.
    producer.flush(Duration::from_secs(5)).unwrap();
    let single = producer
        .send(&OutRecord::new("refused", "k", "after"))
        .await
        .unwrap();
    assert!(
        single.offset >= 10,
        "the ten records before the refused one were delivered"
    );
}
