//! Renewal notices as an operator runs them (issue 8, flow e's notices): one `l2f run` whose
//! `[clock]` follows the mocks' simulated clock, with the notifications scheduler and the
//! customers connector, on the real broker. A SaaS subscription with auto-renew on and seats
//! added; the mocks' clock moved across the term over their HTTP API → exactly rule 7's seven
//! notices, each once, and the 14-day one recorded in the customers app as sent by it and
//! mailed by the hub's mail connector, once.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::l2f_command;
use l2f_bus::reader::read_all;
use l2f_connector_kit::record::event_record;
use l2f_contracts::events::{RenewalNoticeDue, SourceSystem};
use l2f_contracts::record::EVENT_TYPE_HEADER;
use l2f_contracts::{examples, Codec};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique};
use l2f_mocks::clock::{ClockConfig, ClockMode};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::{json, Value};

const TOKEN: &str = "l2f-customers-token";

/// Stops `l2f run` with SIGTERM when the test ends, however it ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Value {
    let r = http
        .request(method, &url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_on_the_mocks_clock_gets_rule_7s_notices_once_and_the_customers_app_records_its_own()
{
    let b = require_kafka!();
    let mut mc = MocksConfig::default();
    mc.only(&[
        "customers".to_string(),
        "zuora".to_string(),
        "mail".to_string(),
    ])
    .unwrap();
    mc.without_https();
    mc.clock = ClockConfig {
        mode: ClockMode::Simulated,
        start: "2026-01-01T00:00:00Z".into(),
        tick_ms: 0,
    };
    let mocks = server::start(&mc).await.unwrap();
    let base = |app: &str| mocks.endpoint(app).unwrap().http.clone();
    let t = |n: &str| unique(&format!("notices-{n}"));
    let (subs, notes, changelog, dlq) = (t("subs"), t("notes"), t("schedule"), t("dlq"));
    let (leads, orders, lic, usage) = (t("leads"), t("orders"), t("lic"), t("usage"));
    let profiles = t("profiles");
    for topic in [&subs, &notes, &changelog, &lic, &profiles] {
        create_topic(&b, topic, 3).await;
    }
    for topic in [&dlq, &leads, &orders, &usage] {
        create_topic(&b, topic, 1).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[kafka]
bootstrap_servers = "{b}"
[dead_letter]
topic = "{dlq}"
[consumer]
commit_interval = "200ms"
[clock]
source = "follow"
url = "{zuora}"
poll_interval = "50ms"
[connectors.notifications]
subscriptions_topic = "{subs}"
notifications_topic = "{notes}"
changelog_topic = "{changelog}"
group = "{group}"
tick = "50ms"
[connectors.customers]
base_url = "{customers}"
api_token = "{TOKEN}"
source = false
mirror_group = "{mirror}"
[connectors.customers.topics]
leads = "{leads}"
orders = "{orders}"
subscriptions = "{subs}"
licenses = "{lic}"
usage = "{usage}"
notifications = "{notes}"
[connectors.mail]
base_url = "{mail}"
domain = "mg.l2f.example"
api_key = "key-l2f-mock"
from = "GitLab <noreply@mg.l2f.example>"
templates_dir = "{templates}"
reseller_notification_to = "partners@l2f.example"
subscriptions_topic = "{subs}"
licenses_topic = "{lic}"
notifications_topic = "{notes}"
profiles_topic = "{profiles}"
group = "{mail_group}"
events_settle = "200ms"
"#,
            zuora = base("zuora"),
            customers = base("customers"),
            mail = base("mail"),
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/templates/mail"),
            mail_group = unique("g-notices-mail"),
            group = unique("g-notices"),
            mirror = unique("g-notices-mirror"),
        ),
    )
    .unwrap();
    let _run = Run(l2f_command("warn")
        .args(["run", "--topics", &notes, "--audit-out", "/dev/null"])
        .args(["--group", &unique("g-audit"), "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    // The customer's account in the customers app; Zuora's subscription of it on the topic.
    let http = reqwest::Client::new();
    let customers = base("customers");
    let acct = call(
        &http,
        reqwest::Method::POST,
        format!("{customers}/api/v1/accounts"),
        json!({"email": "b@example.com", "name": "B", "country": "US"}),
    )
    .await;
    let codec = Codec::new();
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    created.envelope.occurred_at = "2026-01-01T00:00:00Z".parse().unwrap();
    created.subscription_id = "A-S00000042".into();
    created.account_id = acct["id"].as_str().unwrap().into();
    created.deployment = l2f_contracts::events::Deployment::Saas;
    created.auto_renew = true;
    created.seats = 10;
    created.term_start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    created.term_end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    created.billing_batch = l2f_contracts::events::BillingBatch::Batch1;
    let mut amended = examples::subscription_amended();
    amended.envelope.occurred_at = "2026-01-01T00:00:00Z".parse().unwrap();
    amended.subscription_id = created.subscription_id.clone();
    amended.account_id = created.account_id.clone();
    amended.previous_seats = 10;
    amended.seats = 12;
    produce(
        &b,
        &[
            event_record(&codec, &subs, &created, None).unwrap(),
            event_record(&codec, &subs, &amended, None).unwrap(),
        ],
    )
    .await;
    let notices = || -> Vec<RenewalNoticeDue> {
        read_all(&client(&b), &notes, Duration::from_secs(20))
            .unwrap()
            .iter()
            .filter(|r| r.header_str(EVENT_TYPE_HEADER) == Some("RenewalNoticeDue"))
            .map(|r| codec.decode(r.payload.as_deref().unwrap()).unwrap())
            .collect()
    };
    // The subscription mirrored into the customers app before the clock moves.
    let mirrored = format!("{customers}/api/v1/subscriptions/A-S00000042");
    let start = Instant::now();
    while !http
        .get(&mirrored)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never mirrored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        notices().is_empty(),
        "nothing is due on the term's first day"
    );
    // The demo's way: the mocks' clock set over HTTP, the hub follows it.
    let move_clock = |to: &'static str| {
        let http = http.clone();
        let url = format!("{}/__admin/clock", base("zuora"));
        async move {
            let r = http
                .post(url)
                .json(&json!({ "set": to }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    move_clock("2026-10-02T00:00:00Z").await;
    let start = Instant::now();
    while notices().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no 90-day notice"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    move_clock("2027-01-15T00:00:00Z").await;
    let start = Instant::now();
    let got = loop {
        let n = notices();
        if n.len() >= 7 {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} notices of 7",
            n.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_day: BTreeMap<i32, SourceSystem> = got
        .iter()
        .map(|n| (n.days_before_term_end, n.sender))
        .collect();
    let z = SourceSystem::Zuora;
    assert_eq!(
        by_day,
        BTreeMap::from([
            (90, z),
            (45, z),
            (21, z),
            (15, z),
            (14, SourceSystem::CustomersApp),
            (3, z),
            (0, z)
        ])
    );
    assert_eq!(got.len(), 7, "each notice once");
    // The customers app records the 14-day notice as its own, once.
    let start = Instant::now();
    let recorded = loop {
        let s = call(&http, reqwest::Method::GET, mirrored.clone(), json!(null)).await;
        if !s["notices"].as_array().unwrap().is_empty() {
            break s["notices"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "14-day notice not recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(recorded.as_array().unwrap().len(), 1, "{recorded}");
    assert_eq!(recorded[0]["days_before"], 14);
    assert_eq!(recorded[0]["term_end"], "2026-12-31");
    assert_eq!(recorded[0]["recipient"], "billing@example.de");
    // And the hub mailed it, once (Zuora mails the others itself).
    let messages = || async {
        let v: Value = http
            .get(format!("{}/__admin/messages", base("mail")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    };
    let start = Instant::now();
    while messages().await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the 14-day email never went"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Absence cannot be polled for: a moment for a second email to show, if one were sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = messages().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].to_string().contains("billing@example.de"),
        "{}",
        sent[0]
    );
    drop(_run);
    mocks.shutdown().await;
}

/// `l2f run` SIGKILLed twice in the middle of a year of notices (once while a 40-day jump of
/// the clock is being worked off) and restarted: every notice rule 7 computes, each exactly
/// once, for 48 subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2f_run_killed_mid_year_and_restarted_sends_each_notice_exactly_once() {
    use l2f_rules::notices::Renewal;
    let b = require_kafka!();
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".to_string()]).unwrap();
    mc.without_https();
    mc.clock = ClockConfig {
        mode: ClockMode::Simulated,
        start: "2026-01-01T00:00:00Z".into(),
        tick_ms: 0,
    };
    let mocks = server::start(&mc).await.unwrap();
    let zuora = mocks.endpoint("zuora").unwrap().http.clone();
    let t = |n: &str| unique(&format!("notices-kill-{n}"));
    let (subs, notes, changelog, dlq) = (t("subs"), t("notes"), t("schedule"), t("dlq"));
    for topic in [&subs, &notes, &changelog] {
        create_topic(&b, topic, 3).await;
    }
    create_topic(&b, &dlq, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[kafka]
bootstrap_servers = "{b}"
[dead_letter]
topic = "{dlq}"
[consumer]
session_timeout = "6s"
[clock]
source = "follow"
url = "{zuora}"
poll_interval = "50ms"
[connectors.notifications]
subscriptions_topic = "{subs}"
notifications_topic = "{notes}"
changelog_topic = "{changelog}"
group = "{group}"
tick = "50ms"
transaction_timeout = "10s"
"#,
            group = unique("g-notices-kill"),
        ),
    )
    .unwrap();
    let audit = unique("g-audit");
    let spawn = || {
        l2f_command("warn")
            .args(["run", "--topics", &notes, "--audit-out", "/dev/null"])
            .args(["--group", &audit, "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let kill9 = |run: Run| {
        let mut run = std::mem::ManuallyDrop::new(run);
        let _ = Command::new("kill")
            .args(["-KILL", &run.0.id().to_string()])
            .status();
        let _ = run.0.wait();
    };
    let mut run = Run(spawn());
    let codec = Codec::new();
    let rules = l2f_rules::Rules::embedded();
    let mut records = Vec::new();
    let mut want: BTreeMap<(String, i32), SourceSystem> = BTreeMap::new();
    for i in 0..48u32 {
        let end =
            NaiveDate::from_ymd_opt(2026, 4, 1).unwrap() + chrono::Days::new(u64::from(i * 5));
        let (saas, auto, seats) = (i % 2 == 0, i % 4 < 2, i % 8 < 4);
        let mut c = examples::subscription_created();
        c.envelope.event_id = uuid::Uuid::new_v4();
        c.envelope.occurred_at = "2026-01-01T00:00:00Z".parse().unwrap();
        c.subscription_id = format!("A-S{i:08}");
        c.deployment = if saas {
            l2f_contracts::events::Deployment::Saas
        } else {
            l2f_contracts::events::Deployment::SelfManaged
        };
        c.auto_renew = auto;
        c.seats = 10;
        c.term_start =
            end.checked_sub_months(chrono::Months::new(12)).unwrap() + chrono::Days::new(1);
        c.term_end = end;
        records.push(event_record(&codec, &subs, &c, None).unwrap());
        if seats {
            let mut a = examples::subscription_amended();
            a.envelope.event_id = uuid::Uuid::new_v4();
            a.envelope.occurred_at = c.envelope.occurred_at;
            a.subscription_id = c.subscription_id.clone();
            a.previous_seats = 10;
            a.seats = 11;
            records.push(event_record(&codec, &subs, &a, None).unwrap());
        }
        for n in rules.notices.notices(Renewal {
            deployment: c.deployment,
            auto_renew: auto,
            seat_increase: seats,
        }) {
            want.insert(
                (c.subscription_id.clone(), i32::from(n.days_before)),
                n.sender,
            );
        }
    }
    produce(&b, &records).await;
    let notices = || -> Vec<RenewalNoticeDue> {
        read_all(&client(&b), &notes, Duration::from_secs(30))
            .unwrap()
            .iter()
            .map(|r| codec.decode(r.payload.as_deref().unwrap()).unwrap())
            .collect()
    };
    let http = reqwest::Client::new();
    let set = |to: String| {
        let (http, url) = (http.clone(), format!("{zuora}/__admin/clock"));
        async move {
            let r = http
                .post(url)
                .json(&json!({ "set": to }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut kills = 0;
    let started = Instant::now();
    while day < NaiveDate::from_ymd_opt(2027, 1, 15).unwrap() {
        // Ten days a step, forty at once for the second kill.
        let step = if day == NaiveDate::from_ymd_opt(2026, 9, 8).unwrap() {
            40
        } else {
            10
        };
        day = day + chrono::Days::new(step);
        set(format!("{day}T00:00:00Z")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let first_kill = day == NaiveDate::from_ymd_opt(2026, 6, 10).unwrap();
        let second_kill = step == 40;
        if first_kill || second_kill {
            if first_kill {
                // Killed once notices have gone out (not before the first one).
                let t0 = Instant::now();
                while notices().is_empty() {
                    assert!(
                        t0.elapsed() < Duration::from_secs(60),
                        "no notice before the kill"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            kill9(run);
            kills += 1;
            run = Run(spawn());
        }
    }
    assert_eq!(kills, 2);
    let t0 = Instant::now();
    let got = loop {
        let n = notices();
        if n.len() >= want.len() {
            break n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{} of {} notices",
            n.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut seen: BTreeMap<(String, i32), SourceSystem> = BTreeMap::new();
    for n in &got {
        let k = (n.subscription_id.clone(), n.days_before_term_end);
        assert!(seen.insert(k.clone(), n.sender).is_none(), "{k:?} twice");
    }
    assert_eq!(seen, want);
    eprintln!(
        "{} notices for 48 subscriptions, each once, across 2 SIGKILLs of l2f run, in {:.1} s",
        got.len(),
        started.elapsed().as_secs_f64()
    );
    drop(run);
    mocks.shutdown().await;
}
