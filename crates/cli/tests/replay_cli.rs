//! `l2f replay` and `l2f history` against a real broker: an auditor's reconstruction of one
//! customer's story, exports verified (and a tampered one caught) through the binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use common::{l2f_command, run};
use l2f_bus::record::OutRecord;
use l2f_contracts::events::*;
use l2f_contracts::{examples, Codec, Event};
use l2f_e2e::{create_topic, produce, require_kafka, unique};
use uuid::Uuid;

fn config_file(dir: &tempfile::TempDir, bootstrap: &str) -> std::path::PathBuf {
    let p = dir.path().join("l2f.toml");
    std::fs::write(
        &p,
        format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n"),
    )
    .unwrap();
    p
}

fn l2f(cfg: &std::path::Path, args: &[&str]) -> common::Ran {
    run(l2f_command("warn").args(args).arg("--config").arg(cfg))
}

/// The five topics a customer's story crosses, each with 3 partitions.
struct Topics {
    leads: String,
    orders: String,
    subscriptions: String,
    licenses: String,
    notifications: String,
}

impl Topics {
    async fn create(b: &str) -> Topics {
        let t = Topics {
            leads: unique("a-leads"),
            orders: unique("a-orders"),
            subscriptions: unique("a-subs"),
            licenses: unique("a-licenses"),
            notifications: unique("a-notices"),
        };
        for name in t.all() {
            create_topic(b, &name, 3).await;
        }
        t
    }

    fn all(&self) -> Vec<String> {
        vec![
            self.leads.clone(),
            self.orders.clone(),
            self.subscriptions.clone(),
            self.licenses.clone(),
            self.notifications.clone(),
        ]
    }

    fn arg(&self) -> String {
        self.all().join(",")
    }
}

fn env(flow: Uuid, id: Uuid, cause: Option<Uuid>, at_s: i64, source: SourceSystem) -> Envelope {
    Envelope {
        event_id: id,
        occurred_at: DateTime::<Utc>::from_timestamp_millis(1_764_000_000_000 + at_s * 1000)
            .unwrap(),
        source,
        correlation_id: flow,
        causation_id: cause,
    }
}

fn rec<E: Event>(topic: &str, key: &str, e: &E) -> OutRecord {
    OutRecord::new(topic, key, Codec::new().encode(e).unwrap())
        .with_header("l2f.event-type", E::NAME)
}

/// One customer's story (lead → order → subscription → terms → license → two renewal
/// notices → cancellation), keyed as the catalog says. Returns the records in a scrambled
/// production order, and the event ids in the order they happened.
/// An event as the history shows it: id, type, cause.
type Happened<'a> = (Uuid, &'a str, Option<Uuid>);

fn story(t: &Topics, n: u32) -> (Vec<OutRecord>, Vec<Happened<'static>>) {
    let flow = Uuid::new_v4();
    let ids: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let (lead, acct, sub) = (format!("lead-{n}"), format!("acct-{n}"), format!("A-S{n}"));
    let mut l = examples::lead_captured();
    l.envelope = env(flow, ids[0], None, 1, SourceSystem::CustomersApp);
    l.lead_id = lead.clone();
    let mut o = examples::order_placed();
    o.envelope = env(flow, ids[1], Some(ids[0]), 2, SourceSystem::Salesforce);
    o.account_id = acct.clone();
    let mut s = examples::subscription_created();
    s.envelope = env(flow, ids[2], Some(ids[1]), 3, SourceSystem::Zuora);
    (s.subscription_id, s.account_id) = (sub.clone(), acct.clone());
    let mut eula = examples::eula_accepted();
    eula.envelope = env(flow, ids[3], Some(ids[2]), 4, SourceSystem::CustomersApp);
    (eula.subscription_id, eula.account_id) = (sub.clone(), acct.clone());
    let mut lic = examples::license_issued();
    lic.envelope = env(flow, ids[4], Some(ids[3]), 5, SourceSystem::LicenseService);
    (lic.subscription_id, lic.account_id) = (sub.clone(), acct.clone());
    let notice = |i: usize, days: i32, at: i64| {
        let mut r = examples::renewal_notice_due();
        r.envelope = env(flow, ids[i], Some(ids[2]), at, SourceSystem::Notifications);
        (r.subscription_id, r.account_id) = (sub.clone(), acct.clone());
        r.days_before_term_end = days;
        r
    };
    let (n90, n45) = (notice(5, 90, 6), notice(6, 45, 7));
    let mut c = examples::subscription_cancelled();
    c.envelope = env(flow, ids[7], Some(ids[6]), 8, SourceSystem::Zuora);
    (c.subscription_id, c.account_id) = (sub.clone(), acct.clone());
    // Produced out of order (notices and cancellation before the license), as several
    // producers would; the history orders by occurred_at.
    let records = vec![
        rec(&t.notifications, &acct, &n45),
        rec(&t.leads, &lead, &l),
        rec(&t.subscriptions, &sub, &c),
        rec(&t.orders, &acct, &o),
        rec(&t.subscriptions, &sub, &s),
        rec(&t.notifications, &acct, &n90),
        rec(&t.licenses, &sub, &lic),
        rec(&t.licenses, &sub, &eula),
    ];
    let happened = vec![
        (ids[0], "LeadCaptured", None),
        (ids[1], "OrderPlaced", Some(ids[0])),
        (ids[2], "SubscriptionCreated", Some(ids[1])),
        (ids[3], "EulaAccepted", Some(ids[2])),
        (ids[4], "LicenseIssued", Some(ids[3])),
        (ids[5], "RenewalNoticeDue", Some(ids[2])),
        (ids[6], "RenewalNoticeDue", Some(ids[2])),
        (ids[7], "SubscriptionCancelled", Some(ids[6])),
    ];
    (records, happened)
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_one_customers_whole_history_in_order_with_causation_links() {
    let b = require_kafka!();
    let t = Topics::create(&b).await;
    let (mut records, happened) = story(&t, 1);
    let (others, _) = story(&t, 2); // another customer, interleaved
    for (i, r) in others.into_iter().enumerate() {
        records.insert(i * 2, r);
    }
    produce(&b, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &b);

    // By account: the account's own events pull in the rest of their flow.
    for key in ["acct-1", "lead-1"] {
        let r = l2f(&cfg, &["history", key, "--topic", &t.arg(), "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let got = json_lines(&r.stdout);
        let ids: Vec<Happened<'_>> = got
            .iter()
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap().parse().unwrap(),
                    e["event_type"].as_str().unwrap(),
                    e["causation_id"].as_str().map(|c| c.parse().unwrap()),
                )
            })
            .collect();
        assert_eq!(
            ids, happened,
            "history of {key}: every event, in order, no other customer's"
        );
        let depths: Vec<u64> = got.iter().map(|e| e["depth"].as_u64().unwrap()).collect();
        assert_eq!(
            depths,
            vec![0, 1, 2, 3, 4, 3, 3, 4],
            "causation tree of {key}"
        );
        assert!(
            got[1..].iter().all(|e| e["cause_shown"] == true),
            "every link intact"
        );
        assert_eq!(got[7]["caused_by"], "RenewalNoticeDue");
    }
    // The indented list names each cause.
    let r = l2f(&cfg, &["history", "acct-1", "--topic", &t.arg()]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{}", r.stdout);
    assert!(
        lines[0].contains("LeadCaptured") && !lines[0].contains('←'),
        "{}",
        lines[0]
    );
    assert!(
        lines[4].contains("└─ LicenseIssued") && lines[4].contains("← EulaAccepted"),
        "{}",
        lines[4]
    );
    // Only what is keyed by the account.
    let r = l2f(
        &cfg,
        &[
            "history",
            "acct-1",
            "--key-only",
            "--topic",
            &t.arg(),
            "--json",
        ],
    );
    let kinds: Vec<String> = json_lines(&r.stdout)
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["OrderPlaced", "RenewalNoticeDue", "RenewalNoticeDue"]
    );
    // A key no event has: exit 1, said on stderr.
    let r = l2f(&cfg, &["history", "acct-404", "--topic", &t.arg()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("acct-404"), "{}", r.stderr);

    // The same story from a replay filtered by correlation id: the same events, each
    // topic's in order, and every cause present in the export.
    let flow = json_lines(&l2f(&cfg, &["history", "lead-1", "--topic", &t.arg(), "--json"]).stdout)
        [0]["correlation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dir.path().join("flow.jsonl");
    let r = l2f(
        &cfg,
        &[
            "replay",
            "--topic",
            &t.arg(),
            "--correlation-id",
            &flow,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = json_lines(&std::fs::read_to_string(&out).unwrap());
    let recs: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("topic").is_some()).collect();
    let ids: BTreeSet<String> = recs
        .iter()
        .map(|r| {
            r["event"]["envelope"]["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: BTreeSet<String> = happened.iter().map(|h| h.0.to_string()).collect();
    assert_eq!(ids, want);
    for r in &recs {
        if let Some(c) = r["event"]["envelope"]["causation_id"].as_str() {
            assert!(ids.contains(c), "cause {c} of {r} is in the export");
        }
    }
    let mut by_partition: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for r in &recs {
        by_partition
            .entry((
                r["topic"].as_str().unwrap().to_string(),
                r["partition"].as_i64().unwrap(),
            ))
            .or_default()
            .push(r["offset"].as_i64().unwrap());
    }
    for (p, offsets) in &by_partition {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{p:?} in offset order: {offsets:?}"
        );
    }
    assert_eq!(lines.last().unwrap()["l2f.summary"]["records"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_then_verify_passes_and_a_tampered_export_exits_2() {
    let b = require_kafka!();
    let t = Topics::create(&b).await;
    let (records, _) = story(&t, 7);
    produce(&b, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &b);
    for format in ["json", "avro"] {
        let out = dir.path().join(format!("export.{format}"));
        let summary = dir.path().join(format!("summary-{format}.json"));
        let r = l2f(
            &cfg,
            &[
                "replay",
                "--topic",
                &t.arg(),
                "--format",
                format,
                "-o",
                out.to_str().unwrap(),
                "--summary",
                summary.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains("replayed 8 record(s)"), "{}", r.stderr);
        assert!(r.stderr.contains("digest sha256-chain-v1 "), "{}", r.stderr);
        assert!(
            !r.stderr.contains("ETA"),
            "no progress bar when stderr is not a terminal"
        );
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        assert_eq!(s["records"], 8);
        assert_eq!(s["event_types"]["RenewalNoticeDue"], 2);
        assert_eq!(s["partitions"].as_array().unwrap().len(), 15);
        let r = l2f(&cfg, &["replay", "--verify", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("8 matching, 0 missing, 0 extra, 0 altered"),
            "{}",
            r.stdout
        );
    }
    // Delete one record line: exit 2, the record named.
    let out = dir.path().join("export.json");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let gone: serde_json::Value = serde_json::from_str(lines.remove(2)).unwrap();
    std::fs::write(&out, lines.join("\n")).unwrap();
    let r = l2f(&cfg, &["replay", "--verify", out.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let named = format!(
        "missing  {}[{}]@{}",
        gone["topic"].as_str().unwrap(),
        gone["partition"],
        gone["offset"]
    );
    assert!(r.stdout.contains(&named), "{}", r.stdout);
    // Stdout export: header line first; an unknown event type is named with the valid ones.
    let r = l2f(&cfg, &["replay", "--topic", &t.leads, "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("{\"l2f.replay\":"), "{}", r.stdout);
    let missing = unique("no-such-topic");
    let r = l2f(&cfg, &["replay", "--topic", &missing]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("topic {missing} does not exist")),
        "{}",
        r.stderr
    );
    let r = l2f(
        &cfg,
        &["replay", "--topic", &t.leads, "--event-type", "LeadCapture"],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("LeadCapture") && r.stderr.contains("LeadCaptured"),
        "{}",
        r.stderr
    );
}
