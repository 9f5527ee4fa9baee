//! The mail connector end to end: real Kafka (`KAFKA_BOOTSTRAP`), the connector started as
//! `l2f run` starts it (its `Connector::start` in a kit `Context`), the Mailgun mock over HTTP
//! on loopback.
//!
//! - the emails of the self-managed flow (accept terms, license, reseller notification) and
//!   the customers app's renewal notice are sent, each with its `EmailSent` (key = message
//!   id); Zuora's notices are not sent by the hub;
//! - the Silent profile (a `CommunicationProfileChanged` on `licenses`) mutes a renewal
//!   notice of the account — `EmailSuppressed`, no email — also after a restart (the profile
//!   comes from the compacted table, not from memory), and lifting it lets the license email go;
//! - a record without a recipient is dead-lettered with the field named;
//! - **the bar**: the connector process SIGKILLed between sending and committing, then
//!   restarted → every message exactly once in Mailgun's records. The process is this test
//!   binary run again as a child (`child_process_runs_the_connector`, a no-op unless
//!   `L2F_MAIL_CHILD` is set), so it can be killed for real.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::config::{ConsumerConfig, RetryConfig, SecretRef, SourcesConfig};
use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::{CancellationToken, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Configured, Connector, Context, KitError, Pipelines};
use l2f_connector_mail::{MailConfig, MailConnector, SinkStats};
use l2f_contracts::events::*;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::{examples, Codec};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique, wait_until};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_rules::Rules;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;

const KEY: &str = "key-l2f-mock";
const DOMAIN: &str = "mg.l2f.example";
const FROM: &str = "GitLab <noreply@mg.l2f.example>";
const CHILD_ENV: &str = "L2F_MAIL_CHILD";

/// Everything a connector process needs to find its broker, mock and topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Setup {
    bootstrap: String,
    base: String,
    subscriptions: String,
    licenses: String,
    notifications: String,
    profiles: String,
    dead_letters: String,
    group: String,
    commit_ms: u64,
    settle_ms: u64,
}

impl Setup {
    fn config(&self) -> MailConfig {
        let mut cfg = MailConfig::new(
            &self.base,
            DOMAIN,
            SecretRef::Inline(KEY.into()),
            FROM,
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/templates/mail"),
            "partners@example.com",
        );
        cfg.request_timeout = Duration::from_secs(3);
        cfg.subscriptions_topic = self.subscriptions.clone();
        cfg.licenses_topic = self.licenses.clone();
        cfg.notifications_topic = self.notifications.clone();
        cfg.profiles_topic = self.profiles.clone();
        cfg.group = self.group.clone();
        cfg.events_settle = Duration::from_millis(self.settle_ms);
        cfg
    }

    /// Starts the connector in this process.
    fn start(&self) -> Instance {
        let connector = MailConnector::build(self.config()).unwrap();
        let stats = connector.stats();
        let kafka = client(&self.bootstrap);
        let shutdown = CancellationToken::new();
        let pipelines = Pipelines::default();
        let ctx = Context {
            kafka: kafka.clone(),
            consumer: ConsumerConfig {
                commit_interval: Duration::from_millis(self.commit_ms),
                session_timeout: Duration::from_secs(6),
                ..ConsumerConfig::default()
            },
            retry: RetryConfig {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
                ..RetryConfig::default()
            },
            dead_letter_topic: self.dead_letters.clone(),
            sources: SourcesConfig::default(),
            producer: Producer::new(&kafka).unwrap(),
            codec: Arc::new(Codec::new()),
            rules: Arc::new(Rules::embedded()),
            shutdown: shutdown.clone(),
            pipelines: pipelines.clone(),
            clock: l2f_bus::clock::wall(),
        };
        let join = tokio::spawn(Box::new(connector).start(ctx));
        Instance {
            shutdown,
            join,
            stats,
            pipelines,
        }
    }
}

struct Instance {
    shutdown: CancellationToken,
    join: JoinHandle<Result<(), KitError>>,
    stats: SinkStats,
    pipelines: Pipelines,
}

impl Instance {
    async fn stop(self) {
        self.shutdown.cancel();
        self.join.await.unwrap().unwrap();
    }
}

struct Hub {
    setup: Setup,
    _mocks: Running,
    codec: Codec,
}

impl Hub {
    async fn new(b: &str, events_delay_ms: u64, settle_ms: u64) -> Hub {
        let mut mc = MocksConfig::default();
        mc.only(&["mail".to_string()]).unwrap();
        mc.without_https();
        mc.mail.events_delay_ms = events_delay_ms;
        let mocks = server::start(&mc).await.unwrap();
        let base = mocks.endpoint("mail").unwrap().http.clone();
        let setup = Setup {
            bootstrap: b.to_string(),
            base,
            subscriptions: unique("subscriptions"),
            licenses: unique("licenses"),
            notifications: unique("notifications"),
            profiles: unique("mail-profiles"),
            dead_letters: unique("dead-letters"),
            group: unique("g-mail"),
            commit_ms: 200,
            settle_ms,
        };
        for (t, p) in [
            (&setup.subscriptions, 3),
            (&setup.licenses, 3),
            (&setup.notifications, 3),
            (&setup.profiles, 3),
            (&setup.dead_letters, 1),
        ] {
            create_topic(b, t, p).await;
        }
        Hub {
            setup,
            _mocks: mocks,
            codec: Codec::new(),
        }
    }

    async fn send<E: l2f_contracts::record::Keyed>(&self, topic: &str, events: &[E]) {
        let records: Vec<_> = events
            .iter()
            .map(|e| event_record(&self.codec, topic, e, None).unwrap())
            .collect();
        produce(&self.setup.bootstrap, &records).await;
    }

    async fn messages(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/__admin/messages", self.setup.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    async fn wait_messages(&self, n: usize) -> Vec<Value> {
        for _ in 0..1200 {
            let m = self.messages().await;
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} messages: {:?}", self.messages().await);
    }

    fn outputs(&self) -> Vec<AnyEvent> {
        read_all(
            &client(&self.setup.bootstrap),
            &self.setup.notifications,
            Duration::from_secs(10),
        )
        .unwrap()
        .iter()
        .filter_map(|r| AnyEvent::decode(&self.codec, r.payload.as_deref()?).ok())
        .collect()
    }

    fn sent(&self) -> Vec<EmailSent> {
        self.outputs()
            .into_iter()
            .filter_map(|e| match e {
                AnyEvent::EmailSent(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn suppressed(&self) -> Vec<EmailSuppressed> {
        self.outputs()
            .into_iter()
            .filter_map(|e| match e {
                AnyEvent::EmailSuppressed(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

fn fresh<E>(mut e: E, envelope: impl FnOnce(&mut E) -> &mut Envelope) -> E {
    let env = envelope(&mut e);
    env.event_id = uuid::Uuid::new_v4();
    env.occurred_at = chrono::Utc::now();
    e
}

fn notice(account: &str, to: &str, sender: SourceSystem, days: i32) -> RenewalNoticeDue {
    let mut n = fresh(examples::renewal_notice_due(), |n| &mut n.envelope);
    n.account_id = account.into();
    n.subscription_id = format!("sub-{account}");
    n.recipient_email = to.into();
    n.sender = sender;
    n.days_before_term_end = days;
    n
}

fn profile_changed(account: &str, p: CommunicationProfile) -> CommunicationProfileChanged {
    let mut c = fresh(examples::communication_profile_changed(), |c| {
        &mut c.envelope
    });
    c.account_id = account.into();
    c.communication_profile = p;
    c
}

#[tokio::test]
async fn the_self_managed_flows_emails_and_the_customers_apps_notice_are_sent_once_each() {
    let b = require_kafka!();
    let hub = Hub::new(&b, 0, 0).await;
    let inst = hub.setup.start();
    let mut s = fresh(examples::subscription_created(), |s| &mut s.envelope);
    s.deployment = Deployment::SelfManaged;
    s.billing_batch = BillingBatch::Batch4;
    s.communication_profile = CommunicationProfile::Default;
    s.bill_to_email = Some("buyer@example.com".into());
    let mut saas = fresh(examples::subscription_created(), |s| &mut s.envelope);
    saas.deployment = Deployment::Saas;
    saas.bill_to_email = Some("saas@example.com".into());
    hub.send(&hub.setup.subscriptions, &[s.clone(), saas]).await;
    // A repair `l2f reconcile --fix` re-emitted (a copy with a new event id) sends nothing.
    let copy = fresh(s.clone(), |s| &mut s.envelope);
    let repair = event_record(&hub.codec, &hub.setup.subscriptions, &copy, None)
        .unwrap()
        .with_header(l2f_connector_kit::record::REPAIR_HEADER, "reconcile");
    produce(&hub.setup.bootstrap, &[repair]).await;
    let mut l = fresh(examples::license_issued(), |l| &mut l.envelope);
    l.account_id = s.account_id.clone();
    l.reseller_notified = true;
    hub.send(&hub.setup.licenses, &[l.clone()]).await;
    hub.send(
        &hub.setup.notifications,
        &[
            notice("acc-n", "n@example.com", SourceSystem::Zuora, 90),
            notice("acc-n", "n@example.com", SourceSystem::CustomersApp, 14),
        ],
    )
    .await;
    let got = hub.wait_messages(4).await;
    assert!(
        wait_until(Duration::from_secs(20), || hub.sent().len() >= 4).await,
        "EmailSent for each"
    );
    // Nothing more comes (the SaaS purchase, the repair and Zuora's notice send nothing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = hub.messages().await;
    assert_eq!(got_after.len(), 4, "{got:?}");
    let mut by_tag: BTreeMap<String, String> = BTreeMap::new();
    for m in &got_after {
        by_tag.insert(
            m["tags"][0].as_str().unwrap().into(),
            m["to"][0].as_str().unwrap().into(),
        );
    }
    assert_eq!(
        by_tag,
        BTreeMap::from([
            ("accept_terms".into(), "buyer@example.com".into()),
            ("license".into(), l.licensee_email.clone()),
            ("renewal_notice".into(), "n@example.com".into()),
            (
                "reseller_notification".into(),
                "partners@example.com".into()
            ),
        ])
    );
    let sent = hub.sent();
    for m in &got_after {
        let id = m["id"].as_str().unwrap().trim_matches(['<', '>']);
        let e = sent
            .iter()
            .find(|e| e.message_id == id)
            .expect("EmailSent of each message");
        assert_eq!(e.subject, m["subject"].as_str().unwrap());
        assert_eq!(e.template, m["tags"][0].as_str().unwrap());
    }
    assert_eq!(inst.stats.sent(), 4);
    inst.stop().await;
}

#[tokio::test]
async fn the_silent_profile_mutes_emails_across_a_restart_until_it_is_lifted() {
    let b = require_kafka!();
    let hub = Hub::new(&b, 0, 0).await;
    let inst = hub.setup.start();
    hub.send(
        &hub.setup.licenses,
        &[profile_changed("acc-quiet", CommunicationProfile::Silent)],
    )
    .await;
    // The table is eventually consistent across topics: the profile is in it before the
    // notices are sent (a notice handled before the change reached the table would go out).
    let (kafka, profiles) = (client(&b), hub.setup.profiles.clone());
    assert!(
        wait_until(Duration::from_secs(30), || {
            read_all(&kafka, &profiles, Duration::from_secs(5)).is_ok_and(|r| !r.is_empty())
        })
        .await,
        "the profile reached the table"
    );
    hub.send(
        &hub.setup.notifications,
        &[
            notice(
                "acc-quiet",
                "quiet@example.com",
                SourceSystem::CustomersApp,
                14,
            ),
            notice(
                "acc-loud",
                "loud@example.com",
                SourceSystem::CustomersApp,
                14,
            ),
        ],
    )
    .await;
    hub.wait_messages(1).await;
    assert!(
        wait_until(Duration::from_secs(20), || hub.suppressed().len() == 1
            && inst.stats.suppressed() == 1)
        .await,
        "one EmailSuppressed, counted"
    );
    let metric = inst
        .pipelines
        .metrics()
        .into_iter()
        .find(|m| m.name == "emails_suppressed")
        .expect("the connector exports its suppressed count");
    assert_eq!(
        (
            metric.connector,
            metric.value.load(std::sync::atomic::Ordering::Relaxed)
        ),
        ("mail", 1)
    );
    inst.stop().await;

    // A new process knows the profile from the table alone.
    let inst = hub.setup.start();
    hub.send(
        &hub.setup.notifications,
        &[notice(
            "acc-quiet",
            "quiet@example.com",
            SourceSystem::CustomersApp,
            14,
        )],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || hub.suppressed().len() == 2
            && inst.stats.suppressed() == 1)
        .await,
        "suppressed after the restart, counted"
    );
    let s = &hub.suppressed()[1];
    assert_eq!(
        (
            s.account_id.as_str(),
            s.template.as_str(),
            s.communication_profile
        ),
        ("acc-quiet", "renewal_notice", CommunicationProfile::Silent)
    );
    // Lifted: the license email goes.
    let mut l = fresh(examples::license_issued(), |l| &mut l.envelope);
    l.account_id = "acc-quiet".into();
    l.licensee_email = "quiet@example.com".into();
    l.reseller_notified = false;
    hub.send(
        &hub.setup.licenses,
        &[profile_changed("acc-quiet", CommunicationProfile::Default)],
    )
    .await;
    hub.send(&hub.setup.licenses, &[l]).await;
    let got = hub.wait_messages(2).await;
    let to: Vec<&str> = got.iter().map(|m| m["to"][0].as_str().unwrap()).collect();
    assert_eq!(to, ["loud@example.com", "quiet@example.com"]);
    assert_eq!(got[1]["tags"][0], "license");
    inst.stop().await;
}

#[tokio::test]
async fn a_record_without_a_recipient_is_dead_lettered_naming_the_field() {
    let b = require_kafka!();
    let hub = Hub::new(&b, 0, 0).await;
    let inst = hub.setup.start();
    let mut s = fresh(examples::subscription_created(), |s| &mut s.envelope);
    s.deployment = Deployment::SelfManaged;
    s.billing_batch = BillingBatch::Batch1;
    s.bill_to_email = None;
    hub.send(&hub.setup.subscriptions, &[s]).await;
    let kafka = client(&b);
    let dlq = hub.setup.dead_letters.clone();
    assert!(
        wait_until(Duration::from_secs(30), || {
            read_all(&kafka, &dlq, Duration::from_secs(5)).is_ok_and(|r| !r.is_empty())
        })
        .await
    );
    let letters = read_all(&kafka, &dlq, Duration::from_secs(5)).unwrap();
    let l = DeadLetter::parse(letters[0].clone()).unwrap();
    assert_eq!(l.error_class, "permanent");
    assert!(
        l.error_message
            .contains("SubscriptionCreated.bill_to_email: missing"),
        "{}",
        l.error_message
    );
    assert!(hub.messages().await.is_empty());
    inst.stop().await;
}

/// Not a test of its own: the connector process of the SIGKILL test (a no-op unless
/// `L2F_MAIL_CHILD` holds its setup). Runs until killed.
#[tokio::test]
async fn child_process_runs_the_connector() {
    let Ok(text) = std::env::var(CHILD_ENV) else {
        return;
    };
    let setup: Setup = serde_json::from_str(&text).unwrap();
    let inst = setup.start();
    let _ = inst.join.await;
}

fn spawn_child(setup: &Setup) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_runs_the_connector",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, serde_json::to_string(setup).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[tokio::test]
async fn killed_between_sending_and_committing_then_restarted_each_message_is_sent_exactly_once() {
    const N: usize = 24;
    let b = require_kafka!();
    // Mailgun's events show 300 ms late; the connector waits 2 s after start before it
    // trusts a miss.
    let mut hub = Hub::new(&b, 300, 2000).await;
    // Sends take 80 ms each, so the kill lands in the middle of the stream.
    let rule = serde_json::json!({"path": format!("/v3/{DOMAIN}/messages"), "method": "POST", "action": {"kind": "latency", "ms": 80}});
    reqwest::Client::new()
        .post(format!("{}/__admin/faults", hub.setup.base))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let notices: Vec<_> = (0..N)
        .map(|i| {
            notice(
                &format!("acc-{i}"),
                &format!("customer-{i}@example.com"),
                SourceSystem::CustomersApp,
                14,
            )
        })
        .collect();
    hub.send(&hub.setup.notifications, &notices).await;

    // First process: commits only every 10 minutes, so nothing it sends is committed.
    hub.setup.commit_ms = 600_000;
    let mut child = spawn_child(&hub.setup);
    let before = hub.wait_messages(N / 3).await.len();
    sigkill(&mut child);
    let at_kill = hub.messages().await.len();
    assert!(
        at_kill < N,
        "the kill came after every send ({at_kill}); nothing to prove"
    );
    let committed = l2f_e2e::committed(&b, &hub.setup.group, &hub.setup.notifications, 3);
    assert!(
        committed.is_empty(),
        "nothing was committed before the kill: {committed:?}"
    );

    // Restarted: the same records come again.
    hub.setup.commit_ms = 200;
    let mut child = spawn_child(&hub.setup);
    let keys_done = || {
        let sent = hub.sent();
        notices.iter().all(|n| {
            sent.iter()
                .any(|s| s.subscription_id.as_deref() == Some(n.subscription_id.as_str()))
        })
    };
    let all = wait_until(Duration::from_secs(60), keys_done).await;
    let end: i64 = notices.len() as i64;
    let group = hub.setup.group.clone();
    let topic = hub.setup.notifications.clone();
    let drained = wait_until(Duration::from_secs(30), || {
        // Every input record and the EmailSent records after them are committed.
        l2f_e2e::committed(&b, &group, &topic, 3)
            .values()
            .sum::<i64>()
            >= end
    })
    .await;
    sigkill(&mut child);
    assert!(all, "an EmailSent for every notice");
    assert!(drained, "the restarted process committed");

    let got = hub.messages().await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        *per_key
            .entry(m["user-variables"]["l2f-key"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!(
        "{N} notices; {before}..{at_kill} sent before the SIGKILL; {} messages in Mailgun after the restart",
        got.len()
    );
    assert_eq!(per_key.len(), N, "every notice sent");
    assert!(
        per_key.values().all(|&c| c == 1),
        "a message sent twice: {per_key:?}"
    );
    assert_eq!(got.len(), N);
    let mut recipients: Vec<String> = got
        .iter()
        .map(|m| m["to"][0].as_str().unwrap().to_string())
        .collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), N);
    // EmailSent: one message id per notice, whatever was produced twice.
    let mut ids: Vec<String> = hub.sent().into_iter().map(|s| s.message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);
}
