//! Cluster checks and small admin reads shared by the CLI, tests and tools.

use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::error::{BusError, Result};

/// Fails with [`BusError::Unreachable`] unless the cluster answers a metadata request within
/// `timeout`, so a wrong address or bad credentials fail at start, not at the first record.
pub fn check_reachable(client: &ClientConfig, timeout: Duration) -> Result<()> {
    let bootstrap = client.get("bootstrap.servers").unwrap_or("").to_string();
    let mut c = client.clone();
    // Surface authentication and connection failures as errors instead of endless retries.
    c.set(
        "socket.connection.setup.timeout.ms",
        timeout.as_millis().max(1000).to_string(),
    );
    let consumer: BaseConsumer = c.create().map_err(|e| BusError::Config(e.to_string()))?;
    consumer
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(|e| BusError::Unreachable {
            bootstrap,
            reason: e.to_string(),
        })
}

/// An admin client for topic management.
pub fn admin_client(client: &ClientConfig) -> Result<AdminClient<DefaultClientContext>> {
    client
        .create()
        .map_err(|e| BusError::kafka("create admin client", e))
}

/// Low and high watermarks of every partition of `topic`: `(partition, low, high)`.
pub fn watermarks(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>> {
    let consumer: BaseConsumer = client
        .create()
        .map_err(|e| BusError::kafka("create consumer", e))?;
    watermarks_with(&consumer, topic, timeout)
}

/// [`watermarks`] through a consumer the caller already has (one client, not two).
pub fn watermarks_with<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| BusError::kafka(format!("metadata of {topic}"), e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))?;
    match t.error() {
        None => {}
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
            return Err(BusError::UnknownTopic(topic.to_string()))
        }
        Some(err) => return Err(BusError::Config(format!("topic {topic}: {err:?}"))),
    }
    let mut out = Vec::new();
    for p in t.partitions() {
        let (lo, hi) = partition_watermarks(consumer, topic, p.id(), timeout)?;
        out.push((p.id(), lo, hi));
    }
    out.sort();
    Ok(out)
}

/// The low and high watermarks of one partition. A topic just created has partitions whose
/// leader is not elected yet (the broker answers NotLeaderForPartition or LeaderNotAvailable
/// for a moment): those answers are asked again until `timeout`; anything else fails at once.
pub fn partition_watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64)> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Ok(marks) => return Ok(marks),
            Err(e) if leader_pending(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(BusError::kafka(
                    format!("watermarks of {topic}/{partition}"),
                    e,
                ))
            }
        }
    }
}

/// The committed offsets of the consumer's group for `tpl`. The group coordinator of a fresh
/// broker (or one that just moved) answers NotCoordinator, CoordinatorNotAvailable or
/// CoordinatorLoadInProgress for a moment: those are asked again until `timeout`.
pub fn committed_offsets<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: rdkafka::TopicPartitionList,
    timeout: Duration,
) -> Result<rdkafka::TopicPartitionList> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match consumer.committed_offsets(tpl.clone(), timeout) {
            Ok(got) => return Ok(got),
            Err(e) if coordinator_pending(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(BusError::kafka("committed offsets", e)),
        }
    }
}

/// Whether `e` says the group coordinator is not (yet) ready.
fn coordinator_pending(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::RequestTimedOut
        )
    )
}

/// Whether `e` says a partition's leader is not (yet) known — true for a moment after the
/// topic is created or while leadership moves.
fn leader_pending(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::NotLeaderForPartition | C::LeaderNotAvailable | C::UnknownTopicOrPartition)
    )
}
