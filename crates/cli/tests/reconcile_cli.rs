//! `l2f reconcile` through the binary against a real broker and the mocks in-process: exit
//! codes (1 drift, 0 none, 2 error), the JSON report, and `--fix` re-emitting a marked copy
//! onto the topic (never a write to an app).

mod common;

use common::{l2f_command, run};
use l2f_contracts::events::*;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::{examples, Codec};
use l2f_e2e::{create_topic, produce, require_kafka, unique};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_drift_as_json_exits_1_and_fix_re_emits_a_marked_copy() {
    let bootstrap = require_kafka!();
    let subs = unique("rc-subs");
    let orders = unique("rc-orders");
    let empty = unique("rc-empty");
    for t in [&subs, &orders, &empty] {
        create_topic(&bootstrap, t, 1).await;
    }
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".into(), "salesforce".into(), "customers".into()])
        .unwrap();
    mc.without_https();
    let mocks = server::start(&mc).await.unwrap();
    let url = |app: &str| mocks.endpoint(app).unwrap().http.clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[kafka]
bootstrap_servers = "{bootstrap}"

[connectors.zuora]
base_url = "{z}"
client_id = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01"
client_secret = "l2f-zuora-secret"
orders_topic = "{orders}"
subscriptions_topic = "{subs}"

[connectors.salesforce]
login_url = "{sf}"
client_id = "l2f-client-id"
client_secret = "l2f-client-secret"
username = "integration@l2f.example"
password = "l2f-password"

[connectors.customers]
base_url = "{c}"
api_token = "l2f-customers-token"
"#,
            z = url("zuora"),
            sf = url("salesforce"),
            c = url("customers"),
        ),
    )
    .unwrap();
    let l2f = |args: &[&str]| {
        let ran = run(l2f_command("warn")
            .arg("reconcile")
            .args(args)
            .arg("--config")
            .arg(&cfg));
        (ran.code, ran.stdout, ran.stderr)
    };

    // Nothing in the log, nothing in the apps: no drift.
    let (code, out, err) = l2f(&["--topic", &empty]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no drift"), "{out}");

    // Zuora's creation in the log, which no app holds.
    let codec = Codec::new();
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    let ev = AnyEvent::SubscriptionCreated(created.clone());
    let out = l2f_connector_kit::record::out_record(ev.frame_to(&codec, &subs).unwrap());
    produce(&bootstrap, &[out]).await;

    let (code, out, err) = l2f(&["--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect(&out);
    let drift = report["drift"].as_array().unwrap();
    assert!(drift.iter().all(|d| d["drift"] == "missing"), "{out}");
    let apps: Vec<&str> = drift.iter().map(|d| d["app"].as_str().unwrap()).collect();
    assert_eq!(
        apps,
        ["zuora", "zuora", "salesforce", "salesforce", "customers"],
        "{out}"
    );
    assert_eq!(
        drift[0]["set_by"]["event_id"],
        created.envelope.event_id.to_string()
    );
    assert_eq!(report["fixed"], false);
    assert_eq!(report["plan"]["repairs"].as_array().unwrap().len(), 1);

    let (code, out, err) = l2f(&["--fix"]);
    assert_eq!(code, 1, "drift was found (and repaired): {out}{err}");
    assert!(out.contains("re-emitted 1 events"), "{out}");
    assert!(out.contains("not repairable: zuora subscription"), "{out}");
    let records = l2f_bus::reader::read_all(
        &l2f_e2e::client(&bootstrap),
        &subs,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].header_str("l2f.repair"), Some("reconcile"));
    assert_eq!(
        records[1].header_str("l2f.repair-of"),
        Some(format!("{subs}:0:0").as_str())
    );
    let copy = AnyEvent::decode(&codec, records[1].payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        copy.envelope().causation_id,
        Some(created.envelope.event_id)
    );
    assert_ne!(copy.envelope().event_id, created.envelope.event_id);

    // Errors exit 2, naming the problem.
    let (code, _, err) = l2f(&["--topic", "rc-no-such-topic-for-reconcile"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rc-no-such-topic-for-reconcile"), "{err}");
    let (code, _, err) = l2f(&["--app", "marketo"]);
    assert_eq!(code, 2, "{err}");
}
