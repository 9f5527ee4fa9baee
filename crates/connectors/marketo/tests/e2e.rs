//! The Marketo sink end to end: real Kafka (`KAFKA_BOOTSTRAP`), the consumer loop, and the
//! Marketo mock over HTTP on loopback with its own rate limiter (a real 606 in Marketo's
//! shape, HTTP 200 `success:false`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::config::SecretRef;
use l2f_bus::dlq::{DeadLetter, DeadLetters};
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{CancellationToken, ConsumerLoop, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_marketo::{MarketoConfig, MarketoSink};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::lead_captured;
use l2f_contracts::Codec;
use l2f_e2e::{
    client, committed, create_topic, produce, quick_loop, require_kafka, unique, wait_until,
};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::Value;

const RATE_CALLS: usize = 10;
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Lead `i` (the golden example with its own ids and email); an incomplete one lacks its first
/// name and company.
fn lead(i: usize, complete: bool) -> LeadCaptured {
    let mut l = lead_captured();
    l.envelope.event_id = uuid::Uuid::new_v4();
    l.envelope.correlation_id = uuid::Uuid::new_v4();
    l.lead_id = format!("lead-{i}");
    l.email = format!("person{i}@example.com");
    l.first_name = complete.then(|| format!("First{i}"));
    l.last_name = Some(format!("Last{i}"));
    l.company = complete.then(|| format!("Company {i}"));
    l
}

/// The JSON body of a GET.
async fn get_json(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// The mock's leads: email → how many leads carry it.
async fn leads_by_email(http: &reqwest::Client, base: &str) -> BTreeMap<String, usize> {
    let state = get_json(http.get(format!("{base}/__admin/state"))).await;
    let mut out = BTreeMap::new();
    for l in state["leads"].as_object().unwrap().values() {
        *out.entry(l["email"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

/// Uses up the rest of the mock's rate window with reads, so the next pushes get 606.
async fn exhaust_rate_window(http: &reqwest::Client, base: &str, calls: usize) {
    let t = get_json(http.get(format!(
        "{base}/identity/oauth/token?grant_type=client_credentials&client_id=l2f-marketo-client&client_secret=l2f-marketo-secret"
    )))
    .await;
    let token = t["access_token"].as_str().unwrap();
    for _ in 0..calls {
        let v = get_json(
            http.get(format!(
                "{base}/rest/v1/leads.json?filterType=email&filterValues=nobody@example.com"
            ))
            .bearer_auth(token),
        )
        .await;
        assert_eq!(v["success"], true, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_arrive_once_through_606_and_redelivery_and_incomplete_ones_are_dead_lettered() {
    let b = require_kafka!();
    let mut mc = MocksConfig::default();
    mc.only(&["marketo".to_string()]).unwrap();
    mc.without_https();
    mc.marketo.rate_limit_calls = RATE_CALLS;
    mc.marketo.rate_window_secs = RATE_WINDOW.as_secs();
    let mocks = server::start(&mc).await.unwrap();
    let base = mocks.endpoint("marketo").unwrap().http.clone();
    let http = reqwest::Client::new();

    let topic = unique("leads");
    let dlq_topic = format!("{topic}.dlq");
    let group = unique("g-marketo");
    create_topic(&b, &topic, 2).await;
    create_topic(&b, &dlq_topic, 1).await;

    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("marketo-secret");
    std::fs::write(&secret_file, "l2f-marketo-secret\n").unwrap();
    let mut cfg = MarketoConfig::new(
        &base,
        "l2f-marketo-client",
        SecretRef::File { file: secret_file },
    );
    cfg.topic = topic.clone();
    cfg.group = group.clone();
    cfg.rate_window = RATE_WINDOW;
    let codec = Arc::new(Codec::new());
    let sink = Arc::new(MarketoSink::from_config(&cfg, codec.clone()).unwrap());
    let sink_stats = sink.stats();

    let c = client(&b);
    let mut settings = quick_loop(&cfg.group, &cfg.topic);
    settings.retry.max_attempts = 20;
    let dlq = DeadLetters::new(Producer::new(&c).unwrap(), &dlq_topic, &group);
    let lp = ConsumerLoop::new(&c, settings, sink.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));

    // A first lead, so the group has joined and one call of the window is used.
    let rec = |i, complete| event_record(&codec, &topic, &lead(i, complete), None).unwrap();
    produce(&b, &[rec(0, true)]).await;
    assert!(
        wait_until(Duration::from_secs(30), || stats.handled() == 1).await,
        "first lead not handled: {}",
        stats.handled()
    );
    assert_eq!(sink_stats.rate_limited(), 0);

    // The rest of the window is used up: the next pushes are answered 606.
    exhaust_rate_window(&http, &base, RATE_CALLS - 1).await;
    let lead1 = rec(1, true);
    let garbage = OutRecord::new(&topic, "lead-garbage", b"not an avro frame".to_vec());
    produce(
        &b,
        &[
            lead1.clone(),
            rec(2, true),
            rec(3, true),
            rec(4, false),
            garbage,
        ],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 4
            && stats.dead_lettered() == 2)
        .await,
        "handled {}, dead-lettered {}",
        stats.handled(),
        stats.dead_lettered()
    );
    assert!(
        sink_stats.rate_limited() >= 1,
        "no push was answered 606: the window was not exhausted"
    );
    assert!(
        stats.retries() >= sink_stats.rate_limited(),
        "606s not retried"
    );
    let expected: BTreeMap<String, usize> = (0..4)
        .map(|i| (format!("person{i}@example.com"), 1))
        .collect();
    assert_eq!(leads_by_email(&http, &base).await, expected);
    assert_eq!(sink_stats.created(), 4);

    // Dead letters: the incomplete lead names its missing fields; the garbage its reason.
    let letters: BTreeMap<String, DeadLetter> = read_all(&c, &dlq_topic, Duration::from_secs(10))
        .unwrap()
        .into_iter()
        .filter_map(DeadLetter::parse)
        .map(|l| (l.record.key_str(), l))
        .collect();
    assert_eq!(
        letters.keys().collect::<Vec<_>>(),
        ["lead-4", "lead-garbage"]
    );
    let l4 = &letters["lead-4"];
    assert_eq!(l4.error_class, "permanent");
    assert_eq!(l4.attempts, 1);
    assert_eq!(l4.source_topic, topic);
    for f in ["LeadCaptured.first_name", "LeadCaptured.company"] {
        assert!(l4.error_message.contains(f), "{f}: {}", l4.error_message);
    }
    assert!(
        !l4.error_message.contains("last_name"),
        "{}",
        l4.error_message
    );
    let lg = &letters["lead-garbage"];
    assert_eq!(lg.error_class, "permanent");
    assert!(
        lg.error_message.contains("not a decodable LeadCaptured"),
        "{}",
        lg.error_message
    );

    // Redelivery: the same record again is an update of the same Marketo lead.
    produce(&b, &[lead1]).await;
    assert!(
        wait_until(Duration::from_secs(30), || stats.handled() == 5).await,
        "redelivered lead not handled: {}",
        stats.handled()
    );
    assert_eq!(sink_stats.updated(), 1);
    assert_eq!(sink_stats.created(), 4);
    assert_eq!(leads_by_email(&http, &base).await, expected);

    // Every record's offset is committed: 1 + 5 + 1 records over both partitions.
    assert!(
        wait_until(Duration::from_secs(15), || committed(&b, &group, &topic, 2)
            .values()
            .sum::<i64>()
            == 7)
        .await,
        "committed {:?}",
        committed(&b, &group, &topic, 2)
    );
    token.cancel();
    join.await.unwrap().unwrap();
    mocks.shutdown().await;
}
