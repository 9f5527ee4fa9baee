//! The license connector end to end: real Kafka (`KAFKA_BOOTSTRAP`), the connector started as
//! `l2f run` starts it (its `Connector::start` in a kit `Context`: the sink's consumer group
//! and the exactly-once source loop), and the license-service mock over HTTP on loopback.
//!
//! Flow c, the license's part: a web-store self-managed subscription and its EULA acceptance
//! on the topics → `LicenseIssued` on `licenses` (read_committed) exactly once and the
//! license in the service; with the Silent profile the license is held (`LicenseHeld`) until
//! `CommunicationProfileChanged` lifts it, then issued; a restarted connector produces nothing
//! twice; a feed change that cannot become an event is dead-lettered naming the field.

use std::sync::Arc;
use std::time::Duration;

use l2f_bus::config::{ConsumerConfig, RetryConfig, SourcesConfig};
use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::{CancellationToken, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Configured, Connector, Context, Pipelines};
use l2f_connector_license::{LicenseConfig, LicenseConnector};
use l2f_contracts::events::*;
use l2f_contracts::record::{AnyEvent, Keyed};
use l2f_contracts::{examples, Codec};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique};
use l2f_mocks::server::{self, MocksConfig};
use l2f_rules::Rules;
use l2f_secrets::SecretRef;
use serde_json::Value;

const TOKEN: &str = "l2f-license-token";

struct Hub {
    b: String,
    base: String,
    subscriptions: String,
    licenses: String,
    codec: Arc<Codec>,
}

impl Hub {
    async fn send<E: Keyed>(&self, topic: &str, e: &E) {
        produce(
            &self.b,
            &[event_record(&self.codec, topic, e, None).unwrap()],
        )
        .await;
    }

    /// Every event on the licenses topic (read_committed).
    fn licenses(&self) -> Vec<AnyEvent> {
        read_all(&client(&self.b), &self.licenses, Duration::from_secs(15))
            .unwrap()
            .iter()
            .map(|r| AnyEvent::decode(&self.codec, r.payload.as_deref().unwrap()).unwrap())
            .collect()
    }

    /// The names of the service's events about `sub` on the topic, once `done` says so (or
    /// after 30 s).
    async fn wait(&self, sub: &str, done: impl Fn(&[&str]) -> bool) -> Vec<AnyEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found: Vec<AnyEvent> = self
                .licenses()
                .into_iter()
                .filter(|e| match e {
                    AnyEvent::LicenseIssued(l) => l.subscription_id == sub,
                    AnyEvent::LicenseHeld(h) => h.subscription_id == sub,
                    _ => false,
                })
                .collect();
            let names: Vec<&str> = found.iter().map(AnyEvent::name).collect();
            if done(&names) || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn license(&self, sub: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/licenses/{sub}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn created(sub: &str, account: &str, profile: CommunicationProfile) -> SubscriptionCreated {
    let mut s = examples::subscription_created();
    s.envelope.event_id = uuid::Uuid::new_v4();
    s.subscription_id = sub.into();
    s.account_id = account.into();
    s.billing_batch = BillingBatch::Batch1;
    s.deployment = Deployment::SelfManaged;
    s.communication_profile = profile;
    s
}

fn accepted(sub: &str, account: &str) -> EulaAccepted {
    let mut a = examples::eula_accepted();
    a.envelope.event_id = uuid::Uuid::new_v4();
    a.subscription_id = sub.into();
    a.account_id = account.into();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_terms_issue_the_license_once_and_silent_holds_it_until_lifted() {
    let b = require_kafka!();
    let mut mc = MocksConfig::default();
    mc.only(&["license".to_string()]).unwrap();
    mc.without_https();
    let mocks = server::start(&mc).await.unwrap();
    let base = mocks.endpoint("license").unwrap().http.clone();
    let (subscriptions, licenses) = (unique("subscriptions"), unique("licenses"));
    let (dead_letters, offsets) = (unique("dead-letters"), unique("source-offsets"));
    create_topic(&b, &subscriptions, 3).await;
    create_topic(&b, &licenses, 3).await;
    create_topic(&b, &dead_letters, 1).await;
    create_topic(&b, &offsets, 1).await;

    let mut cfg = LicenseConfig::new(&base, SecretRef::Inline(TOKEN.into()));
    cfg.subscriptions_topic = subscriptions.clone();
    cfg.licenses_topic = licenses.clone();
    cfg.group = unique("g-license");
    cfg.source_name = unique("license");
    let codec = Arc::new(Codec::new());
    let (shutdown, join) = start(&b, &cfg, &dead_letters, &offsets, &codec);
    let hub = Hub {
        b: b.clone(),
        base,
        subscriptions,
        licenses,
        codec,
    };

    // Web store, Default profile: the license waits for the terms, then is issued once —
    // however often the records are delivered.
    let sub = created("A-S100", "cust_100", CommunicationProfile::Default);
    hub.send(&hub.subscriptions, &sub).await;
    hub.send(&hub.subscriptions, &sub).await;
    let eula = accepted("A-S100", "cust_100");
    hub.send(&hub.licenses, &eula).await;
    hub.send(&hub.licenses, &eula).await;
    let found = hub.wait("A-S100", |n| n.contains(&"LicenseIssued")).await;
    let l = hub.license("A-S100").await;
    assert_eq!(l["status"], "issued", "{l}");
    let AnyEvent::LicenseIssued(issued) = &found[0] else {
        panic!("{found:?}")
    };
    assert_eq!(issued.license_id, l["key"].as_str().unwrap());
    assert_eq!(issued.envelope.source, SourceSystem::LicenseService);

    // Silent: held, then released when the profile is lifted.
    let silent = created("A-S200", "cust_200", CommunicationProfile::Silent);
    hub.send(&hub.subscriptions, &silent).await;
    hub.send(&hub.licenses, &accepted("A-S200", "cust_200"))
        .await;
    let held = hub.wait("A-S200", |n| n.contains(&"LicenseHeld")).await;
    let names: Vec<&str> = held.iter().map(AnyEvent::name).collect();
    assert_eq!(names, ["LicenseHeld"]);
    assert_eq!(hub.license("A-S200").await["status"], "held");
    let mut lifted = examples::communication_profile_changed();
    lifted.account_id = "cust_200".into();
    lifted.communication_profile = CommunicationProfile::Default;
    hub.send(&hub.licenses, &lifted).await;
    let released = hub.wait("A-S200", |n| n.contains(&"LicenseIssued")).await;
    let names: Vec<&str> = released.iter().map(AnyEvent::name).collect();
    assert_eq!(names, ["LicenseHeld", "LicenseIssued"]);
    assert_eq!(hub.license("A-S200").await["status"], "issued");

    // Still exactly one LicenseIssued of the first subscription after everything settled.
    let settled = hub.wait("A-S100", |_| true).await;
    assert_eq!(
        settled.iter().map(AnyEvent::name).collect::<Vec<_>>(),
        ["LicenseIssued"]
    );
    assert!(
        read_all(&client(&b), &dead_letters, Duration::from_secs(5))
            .unwrap()
            .is_empty(),
        "nothing dead-lettered"
    );
    shutdown.cancel();
    join.await.unwrap().unwrap();

    // Restarted (same source name, same group): the cursor committed with the events holds,
    // so nothing is produced twice; a new acceptance after the restart is issued once.
    let (shutdown, join) = start(&b, &cfg, &dead_letters, &offsets, &hub.codec);
    let sub = created("A-S300", "cust_300", CommunicationProfile::Default);
    hub.send(&hub.subscriptions, &sub).await;
    hub.send(&hub.licenses, &accepted("A-S300", "cust_300"))
        .await;
    let found = hub.wait("A-S300", |n| n.contains(&"LicenseIssued")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let count = |name: &str| hub.licenses().iter().filter(|e| e.name() == name).count();
    assert_eq!(
        (count("LicenseIssued"), count("LicenseHeld")),
        (3, 1),
        "one per license and one hold, across the restart"
    );

    // A license issued without a licensee email cannot become LicenseIssued: its feed change
    // is dead-lettered in the source's transaction, naming the field and the value.
    let mut bad = created("A-S400", "cust_400", CommunicationProfile::Default);
    bad.billing_batch = BillingBatch::Batch2;
    bad.bill_to_email = None;
    hub.send(&hub.subscriptions, &bad).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let letter = loop {
        let letters: Vec<DeadLetter> = read_all(&client(&b), &dead_letters, Duration::from_secs(5))
            .unwrap()
            .into_iter()
            .filter_map(DeadLetter::parse)
            .collect();
        if let Some(l) = letters.into_iter().next() {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(letter.error_class, "permanent");
    assert!(letter.from_feed(), "{letter:?}");
    assert!(
        letter.error_message.contains("licensee_email") && letter.error_message.contains("null"),
        "{}",
        letter.error_message
    );
    assert_eq!(hub.license("A-S400").await["status"], "issued");
    shutdown.cancel();
    join.await.unwrap().unwrap();
    mocks.shutdown().await;
}

/// Starts the connector as `l2f run` would, on the given topics.
fn start(
    b: &str,
    cfg: &LicenseConfig,
    dead_letters: &str,
    offsets: &str,
    codec: &Arc<Codec>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), l2f_connector_kit::KitError>>,
) {
    let connector = LicenseConnector::build(cfg.clone()).unwrap();
    let kafka = client(b);
    let shutdown = CancellationToken::new();
    let ctx = Context {
        kafka: kafka.clone(),
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
        dead_letter_topic: dead_letters.to_string(),
        sources: SourcesConfig {
            offsets_topic: offsets.to_string(),
            poll_interval: Duration::from_millis(200),
            session_timeout: Duration::from_secs(6),
        },
        producer: Producer::new(&kafka).unwrap(),
        codec: codec.clone(),
        rules: Arc::new(Rules::embedded()),
        shutdown: shutdown.clone(),
        pipelines: Pipelines::default(),
    };
    (
        shutdown.clone(),
        tokio::spawn(Box::new(connector).start(ctx)),
    )
}
