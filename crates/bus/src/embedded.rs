//! The embedded broker: librdkafka's in-process mock cluster, which speaks the Kafka protocol
//! on a loopback port. It lets `l2f demo` and a first try on a laptop run with nothing
//! installed; it is not a durable store and never a substitute for a real cluster in tests of
//! the guarantees.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::{BusError, Result};

/// A running in-process cluster; it stops when dropped.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self> {
        let cluster =
            MockCluster::new(brokers).map_err(|e| BusError::kafka("start embedded broker", e))?;
        Ok(EmbeddedBroker { cluster })
    }

    /// The bootstrap address clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock cluster has no admin API for it).
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i32) -> Result<()> {
        self.cluster
            .create_topic(name, partitions, replication)
            .map_err(|e| BusError::kafka(format!("create topic {name} on embedded broker"), e))
    }
}
