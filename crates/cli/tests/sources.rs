//! Exactly-once sources on the real broker, driven as an operator runs them: `l2f run` with
//! the customers connector's source against the customers-app mock (served by the test, so it
//! outlives the processes the test kills).
//! - SIGKILLed while it commits and restarted, the source produces every change of the feed
//!   exactly once (read_committed count = feed length, every event id once);
//! - two replicas side by side: exactly one polls; the active one SIGKILLed, the standby takes
//!   over within the session timeout, and still every change is there exactly once.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::l2f_command;
use l2f_bus::reader::read_all;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use l2f_e2e::{client, create_topic, require_kafka, unique};
use l2f_mocks::server::{self, MocksConfig, Running};
use serde_json::json;

const TOKEN: &str = "l2f-customers-token";

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    leads: String,
    offsets: String,
}

/// Topics of one test and a config running only the customers source on them.
async fn setup(b: &str, base: &str, ops_port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let t = |n: &str| unique(&format!("src-{n}"));
    let (leads, orders, subs, lic, usage) =
        (t("leads"), t("orders"), t("subs"), t("lic"), t("usage"));
    let (dlq, offsets) = (t("dlq"), t("offsets"));
    for topic in [&leads, &orders, &subs, &lic, &usage, &dlq] {
        create_topic(b, topic, 3).await;
    }
    create_topic(b, &offsets, 1).await;
    let source_name = unique("customers");
    let config = write_config(
        &dir,
        b,
        base,
        ops_port,
        &source_name,
        [&leads, &orders, &subs, &lic, &usage],
        &dlq,
        &offsets,
    );
    Setup {
        dir,
        config,
        leads,
        offsets,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_config(
    dir: &tempfile::TempDir,
    b: &str,
    base: &str,
    ops_port: u16,
    source_name: &str,
    [leads, orders, subs, lic, usage]: [&String; 5],
    dlq: &str,
    offsets: &str,
) -> std::path::PathBuf {
    let p = dir.path().join(format!("l2f-{ops_port}.toml"));
    std::fs::write(
        &p,
        format!(
            "[kafka]\nbootstrap_servers = \"{b}\"\n\
             [dead_letter]\ntopic = \"{dlq}\"\n\
             [sources]\noffsets_topic = \"{offsets}\"\npoll_interval = \"100ms\"\nsession_timeout = \"6s\"\n\
             [ops]\nlisten = \"127.0.0.1:{ops_port}\"\n\
             [connectors.customers]\nbase_url = \"{base}\"\napi_token = \"{TOKEN}\"\n\
             source_name = \"{source_name}\"\npage_size = 40\nmirror = false\n\
             [connectors.customers.topics]\nleads = \"{leads}\"\norders = \"{orders}\"\n\
             subscriptions = \"{subs}\"\nlicenses = \"{lic}\"\nusage = \"{usage}\"\n"
        ),
    )
    .unwrap();
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn customers_mock() -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["customers".to_string()]).unwrap();
    mc.without_https();
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("customers").unwrap().http.clone();
    (running, base)
}

/// `n` web-form leads in the app's feed.
async fn forms(base: &str, from: usize, n: usize) {
    let http = reqwest::Client::new();
    for i in from..from + n {
        let r = http
            .post(format!("{base}/api/v1/web-forms"))
            .bearer_auth(TOKEN)
            .json(&json!({"email": format!("p{i}@example.com"), "first_name": "P", "last_name": format!("L{i}"), "company": "C", "country": "NL"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn start(cfg: &std::path::Path, leads: &str) -> Child {
    l2f_command("warn")
        .args([
            "run",
            "--topics",
            leads,
            "--group",
            &unique("g-audit"),
            "--audit-out",
            "/dev/null",
            "--config",
        ])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(child: &mut Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

/// The committed (read_committed) LeadCaptured events of `topic`: (count, distinct ids).
fn committed_leads(b: &str, topic: &str) -> (usize, BTreeSet<uuid::Uuid>) {
    let codec = Codec::new();
    let records = read_all(&client(b), topic, Duration::from_secs(20)).unwrap();
    let ids = records
        .iter()
        .map(
            |r| match AnyEvent::decode(&codec, r.payload.as_deref().unwrap()).unwrap() {
                AnyEvent::LeadCaptured(l) => l.envelope.event_id,
                other => panic!("{} on the leads topic", other.name()),
            },
        )
        .collect();
    (records.len(), ids)
}

/// Every data record of `topic`, aborted ones included (read_uncommitted).
fn uncommitted_count(b: &str, topic: &str) -> usize {
    let mut c = client(b);
    c.set("isolation.level", "read_uncommitted");
    read_all(&c, topic, Duration::from_secs(20)).unwrap().len()
}

async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cond()
}

async fn metrics(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn active(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|l| l.starts_with("l2f_source_active{") && l.ends_with(" 1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_killed_while_it_commits_and_restarted_produces_every_change_exactly_once() {
    let b = require_kafka!();
    let (mock, base) = customers_mock().await;
    const N: usize = 2000;
    forms(&base, 0, N).await;
    let port = free_port();
    let s = setup(&b, &base, port).await;
    let mut kills = 0;
    let mut child = start(&s.config, &s.leads);
    // Kill it three times while it is working through the feed, then let it finish.
    for at in [300, 900, 1500] {
        let reached = wait_for(Duration::from_secs(60), || {
            committed_leads(&b, &s.leads).0 >= at
        })
        .await;
        assert!(reached, "the source stalled before {at} leads");
        kill(&mut child, "-KILL");
        kills += 1;
        child = start(&s.config, &s.leads);
    }
    let done = wait_for(Duration::from_secs(90), || {
        committed_leads(&b, &s.leads).0 >= N
    })
    .await;
    // Give a duplicate, if the source made one, the time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill(&mut child, "-TERM");
    let (count, ids) = committed_leads(&b, &s.leads);
    assert!(done, "only {count} of {N} leads committed");
    assert_eq!(count, N, "every change exactly once after {kills} SIGKILLs");
    assert_eq!(ids.len(), N, "no event id twice");
    let raw = uncommitted_count(&b, &s.leads);
    eprintln!("{N} feed changes, {count} committed events, {raw} records written (the rest were in transactions the kills aborted)");
    assert!(raw >= count);
    let cursors = read_all(&client(&b), &s.offsets, Duration::from_secs(10)).unwrap();
    assert!(
        !cursors.is_empty(),
        "the cursor is kept in the offsets topic"
    );
    drop(s.dir);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_poll_one_at_a_time_and_the_standby_takes_over_within_the_session_timeout() {
    let b = require_kafka!();
    let (mock, base) = customers_mock().await;
    forms(&base, 0, 300).await;
    let (p1, p2) = (free_port(), free_port());
    let s = setup(&b, &base, p1).await;
    // The second replica: the same configuration but its own ops port.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace(&format!(":{p1}\""), &format!(":{p2}\""));
    let cfg2 = s.dir.path().join("replica-2.toml");
    std::fs::write(&cfg2, text).unwrap();
    let one = start(&s.config, &s.leads);
    let two = start(&cfg2, &s.leads);
    assert!(
        wait_for(Duration::from_secs(60), || committed_leads(&b, &s.leads).0
            >= 300)
        .await,
        "first 300 leads"
    );
    let (m1, m2) = (metrics(p1).await, metrics(p2).await);
    assert_ne!(
        active(&m1),
        active(&m2),
        "exactly one replica polls:\n{m1}\n{m2}"
    );
    let (mut dead, mut standby, standby_port) = if active(&m1) {
        (one, two, p2)
    } else {
        (two, one, p1)
    };
    kill(&mut dead, "-KILL");
    let killed = Instant::now();
    let mut took_over = false;
    while killed.elapsed() < Duration::from_secs(30) {
        if active(&metrics(standby_port).await) {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let takeover = killed.elapsed();
    assert!(took_over, "the standby never took over");
    eprintln!(
        "standby active {takeover:?} after the active replica was SIGKILLed (session timeout 6 s)"
    );
    assert!(takeover < Duration::from_secs(20), "took {takeover:?}");
    forms(&base, 300, 200).await;
    let done = wait_for(Duration::from_secs(60), || {
        committed_leads(&b, &s.leads).0 >= 500
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill(&mut standby, "-TERM");
    let (count, ids) = committed_leads(&b, &s.leads);
    assert!(done, "only {count} of 500");
    assert_eq!(
        (count, ids.len()),
        (500, 500),
        "every change exactly once across the takeover"
    );
    mock.shutdown().await;
}
