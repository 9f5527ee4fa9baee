//! Shared helpers of l2f's end-to-end tests against a real Kafka broker.
//!
//! The broker comes from `KAFKA_BOOTSTRAP` (set by `make test`, which starts the local
//! Apache Kafka). Without it a test is skipped with a message — unless `CI` or `REQUIRE_KAFKA`
//! is set, where a missing broker fails the test: in CI a Kafka test never skips.
//! Every test makes its own randomly named topics and groups, so tests run in parallel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::consumer::LoopSettings;
use l2f_bus::record::OutRecord;
use l2f_bus::Producer;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's bootstrap address, or `None` (test skipped) when no broker is configured and
/// neither `CI` nor `REQUIRE_KAFKA` demands one.
pub fn bootstrap() -> Option<String> {
    if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
        if !b.is_empty() {
            return Some(b);
        }
    }
    let required = ["CI", "REQUIRE_KAFKA"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty() && x != "0" && x != "false"));
    if required {
        panic!("KAFKA_BOOTSTRAP is not set but CI/REQUIRE_KAFKA is: Kafka tests must not skip (run `make test`)");
    }
    eprintln!(
        "skipped: KAFKA_BOOTSTRAP is not set (run `make test` to start a local Apache Kafka)"
    );
    None
}

/// The broker's SASL_PLAINTEXT listener (user `l2f`, password in `KAFKA_SASL_PASSWORD`,
/// default `l2f-test-secret`, as the local broker is set up), with the same skip rule as
/// [`bootstrap`].
pub fn sasl_bootstrap() -> Option<(String, String)> {
    bootstrap()?;
    match std::env::var("KAFKA_SASL_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => Some((
            b,
            std::env::var("KAFKA_SASL_PASSWORD").unwrap_or_else(|_| "l2f-test-secret".into()),
        )),
        _ => {
            if std::env::var("REQUIRE_KAFKA").is_ok() || std::env::var("CI").is_ok() {
                panic!(
                    "KAFKA_SASL_BOOTSTRAP is not set but CI/REQUIRE_KAFKA is (`make test` sets it)"
                );
            }
            eprintln!("skipped: KAFKA_SASL_BOOTSTRAP is not set");
            None
        }
    }
}

/// The broker's TLS listener and the CA file that signed its certificate
/// (`KAFKA_TLS_BOOTSTRAP`, `KAFKA_TLS_CA`), with the same skip rule as [`bootstrap`].
pub fn tls_bootstrap() -> Option<(String, String)> {
    bootstrap()?;
    match (
        std::env::var("KAFKA_TLS_BOOTSTRAP"),
        std::env::var("KAFKA_TLS_CA"),
    ) {
        (Ok(b), Ok(ca)) if !b.is_empty() && !ca.is_empty() => Some((b, ca)),
        _ => {
            if std::env::var("REQUIRE_KAFKA").is_ok() || std::env::var("CI").is_ok() {
                panic!("KAFKA_TLS_BOOTSTRAP/KAFKA_TLS_CA are not set but CI/REQUIRE_KAFKA is (`make test` sets them)");
            }
            eprintln!("skipped: KAFKA_TLS_BOOTSTRAP/KAFKA_TLS_CA are not set");
            None
        }
    }
}

/// Skips the calling test (returns) when no broker is configured and none is required.
#[macro_export]
macro_rules! require_kafka {
    () => {
        match $crate::bootstrap() {
            Some(b) => b,
            None => return,
        }
    };
}

/// Loop settings for tests: commits every 200 ms, a 6 s session (a member that left is
/// replaced quickly) and retries from 50 ms up to 500 ms.
pub fn quick_loop(group: &str, topic: &str) -> LoopSettings {
    LoopSettings {
        group_id: group.into(),
        topics: vec![topic.into()],
        consumer: ConsumerConfig {
            commit_interval: Duration::from_millis(200),
            session_timeout: Duration::from_secs(6),
            ..ConsumerConfig::default()
        },
        retry: RetryConfig {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            ..RetryConfig::default()
        },
    }
}

/// A client configuration for the test broker.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// A unique name, so parallel tests never share topics or groups.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a topic with `partitions` partitions (replication 1).
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: rdkafka::admin::AdminClient<DefaultClientContext> =
        client(bootstrap).create().expect("admin client");
    let res = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    for r in res {
        r.expect("topic created");
    }
}

/// Produces `records`, waiting for every acknowledgement.
pub async fn produce(bootstrap: &str, records: &[OutRecord]) {
    let p = Producer::new(&client(bootstrap)).expect("producer");
    p.send_all(records, 1000).await.expect("produce");
}

/// The committed offsets of `group` on `topic`, by partition (absent: nothing committed).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut c = client(bootstrap);
    c.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = l2f_bus::admin::committed_offsets(&consumer, tpl, Duration::from_secs(30))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
