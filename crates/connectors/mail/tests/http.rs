//! The mailer over real HTTP against the Mailgun mock (no Kafka): every template rendered and
//! sent with the right recipient, subject and idempotency key; a message Mailgun already
//! accepted is found by its key and not sent again (also when its events show late); and
//! each misbehaviour, made by the mock itself, sorted as the verdict says — 401 unavailable,
//! 429 transient after Retry-After, a bad recipient permanent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::config::SecretRef;
use l2f_bus::HandlerError;
use l2f_connector_mail::mapping::{self, Email};
use l2f_connector_mail::{Kind, MailConfig, Mailer, SinkStats, Templates};
use l2f_contracts::events::{BillingBatch, Deployment, SourceSystem};
use l2f_contracts::examples;
use l2f_mocks::mail::Config;
use l2f_mocks::server::{self, MocksConfig, Running};
use serde_json::{json, Value};

const KEY: &str = "key-l2f-mock";
const DOMAIN: &str = "mg.l2f.example";
const FROM: &str = "GitLab <noreply@mg.l2f.example>";

async fn mock(tweak: impl FnOnce(&mut Config)) -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["mail".to_string()]).unwrap();
    mc.without_https();
    tweak(&mut mc.mail);
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("mail").unwrap().http.clone();
    (running, base)
}

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/templates/mail")
}

fn mailer_with(base: &str, key: &str, settle: Duration) -> Mailer {
    let mut cfg = MailConfig::new(
        base,
        DOMAIN,
        SecretRef::Inline(key.into()),
        FROM,
        templates_dir(),
        "partners@example.com",
    );
    cfg.request_timeout = Duration::from_secs(2);
    let templates = Templates::load(&cfg.templates_dir).unwrap();
    Mailer::new(
        Arc::new(cfg.client().unwrap()),
        Arc::new(templates),
        FROM,
        settle,
        Duration::from_secs(3600),
        SinkStats::default(),
    )
}

fn mailer(base: &str) -> Mailer {
    mailer_with(base, KEY, Duration::ZERO)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One email of every kind, as the mapping makes them from the example events.
fn every_kind() -> Vec<Email> {
    let mut s = examples::subscription_created();
    s.deployment = Deployment::SelfManaged;
    s.billing_batch = BillingBatch::Batch1;
    s.bill_to_email = Some("buyer@example.com".into());
    let mut l = examples::license_issued();
    l.reseller_notified = true;
    let mut n = examples::renewal_notice_due();
    n.sender = SourceSystem::CustomersApp;
    n.days_before_term_end = 14;
    let mut out = vec![mapping::accept_terms(&s, &[BillingBatch::Batch1])
        .unwrap()
        .unwrap()];
    out.extend(mapping::license(&l, Some("partners@example.com")).unwrap());
    out.push(mapping::renewal_notice(&n).unwrap().unwrap());
    out
}

async fn messages(base: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{base}/__admin/messages"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn fault(base: &str, action: Value) {
    let rule = json!({"path": format!("/v3/{DOMAIN}/messages"), "method": "POST", "action": action, "times": 1});
    let status = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "fault rule refused");
}

#[tokio::test]
async fn each_template_is_rendered_and_sent_to_its_recipient_with_its_key() {
    let (_mocks, base) = mock(|_| {}).await;
    let m = mailer(&base);
    let emails = every_kind();
    let kinds: Vec<Kind> = emails.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, Kind::ALL, "one email of every kind");
    let mut sent = Vec::new();
    for e in &emails {
        let d = m.send_once(e, now_ms()).await.unwrap();
        assert!(!d.already_sent);
        sent.push(d);
    }
    let got = messages(&base).await;
    assert_eq!(got.len(), 4);
    let (licensee, notice_to) = (
        examples::license_issued().licensee_email,
        examples::renewal_notice_due().recipient_email,
    );
    let want_to = [
        "buyer@example.com",
        licensee.as_str(),
        "partners@example.com",
        notice_to.as_str(),
    ];
    for (((msg, e), d), to) in got.iter().zip(&emails).zip(&sent).zip(want_to) {
        assert_eq!(msg["to"], json!([to]), "{:?}", e.kind);
        assert_eq!(msg["from"], FROM);
        assert_eq!(msg["subject"], d.subject.as_str());
        assert_eq!(
            msg["id"].as_str().unwrap().trim_matches(['<', '>']),
            d.message_id
        );
        assert_eq!(msg["user-variables"]["l2f-key"], e.key.to_string());
        assert_eq!(msg["tags"], json!([e.kind.name()]));
        let (text, html) = (msg["text"].as_str().unwrap(), msg["html"].as_str().unwrap());
        assert!(text.contains(&format!("Hello {to}")), "{text}");
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    }
    let subject = |i: usize| got[i]["subject"].as_str().unwrap().to_string();
    assert!(subject(0).contains(&examples::subscription_created().subscription_id));
    assert!(subject(1).contains(&examples::license_issued().license_id));
    assert!(subject(2).contains(&examples::license_issued().licensee_email));
    assert_eq!(subject(3), "Your GitLab subscription renews in 14 days");
    assert!(got[2]["text"]
        .as_str()
        .unwrap()
        .contains(&examples::license_issued().licensee_email));
}

#[tokio::test]
async fn a_message_mailgun_already_accepted_is_not_sent_again() {
    let (_mocks, base) = mock(|_| {}).await;
    let email = every_kind().remove(1);
    let first = mailer(&base).send_once(&email, now_ms()).await.unwrap();
    // Another recipient's mail and another key to the same recipient do not count.
    let mut other = every_kind().remove(0);
    other.recipient = email.recipient.clone();
    mailer(&base).send_once(&other, now_ms()).await.unwrap();
    // A restarted process (a fresh mailer) handles the same record again.
    let again = mailer(&base);
    let second = again.send_once(&email, now_ms()).await.unwrap();
    assert!(second.already_sent);
    assert_eq!(second.message_id, first.message_id);
    assert_eq!((again.stats().sent(), again.stats().already_sent()), (0, 1));
    let got = messages(&base).await;
    let with_key = got
        .iter()
        .filter(|m| m["user-variables"]["l2f-key"] == email.key.to_string())
        .count();
    assert_eq!((got.len(), with_key), (2, 1));
}

#[tokio::test]
async fn an_accepted_event_that_shows_late_is_waited_for_after_a_restart() {
    // Mailgun's events show late: 700 ms here. A process started right after the send
    // waits `events_settle` (2 s) before it takes a miss for "never sent".
    let (_mocks, base) = mock(|c| c.events_delay_ms = 700).await;
    let email = every_kind().remove(3);
    let first = mailer(&base).send_once(&email, now_ms()).await.unwrap();
    let restarted = mailer_with(&base, KEY, Duration::from_secs(2));
    let second = restarted.send_once(&email, now_ms()).await.unwrap();
    assert!(second.already_sent, "sent twice: {second:?}");
    assert_eq!(second.message_id, first.message_id);
    assert!(
        restarted.stats().events_searches() >= 2,
        "the first search missed"
    );
    assert_eq!(messages(&base).await.len(), 1);
}

#[tokio::test]
async fn a_refused_key_is_unavailable_and_429_is_transient_after_retry_after() {
    let (_mocks, base) = mock(|_| {}).await;
    let email = every_kind().remove(0);
    match mailer_with(&base, "key-wrong", Duration::ZERO)
        .send_once(&email, now_ms())
        .await
    {
        Err(HandlerError::Unavailable { message, .. }) => {
            assert!(message.contains("401"), "{message}");
            assert!(!message.contains("key-wrong"), "the key is never printed");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    fault(
        &base,
        json!({"kind": "status", "status": 429, "retry_after": 9}),
    )
    .await;
    let m = mailer(&base);
    match m.send_once(&email, now_ms()).await {
        Err(HandlerError::Transient {
            message,
            retry_after,
        }) => {
            assert!(message.contains("429"), "{message}");
            assert_eq!(retry_after, Some(Duration::from_secs(9)));
        }
        other => panic!("expected transient, got {other:?}"),
    }
    fault(&base, json!({"kind": "status", "status": 503})).await;
    let e = m.send_once(&email, now_ms()).await.unwrap_err();
    assert_eq!(e.class(), "transient", "{e}");
    assert!(messages(&base).await.is_empty());
    // The fault spent, the retry sends it once.
    assert!(!m.send_once(&email, now_ms()).await.unwrap().already_sent);
    assert_eq!(messages(&base).await.len(), 1);
}

#[tokio::test]
async fn a_recipient_mailgun_refuses_is_permanent_with_its_reason() {
    let (_mocks, base) = mock(|_| {}).await;
    let mut email = every_kind().remove(0);
    // Past the mapping's check (which names the event field), Mailgun's own 400.
    email.recipient = "nobody-at-example".into();
    let e = mailer(&base).send_once(&email, now_ms()).await.unwrap_err();
    assert_eq!(e.class(), "permanent", "{e}");
    assert!(e.message().contains("not a valid address"), "{e}");
}

#[tokio::test]
async fn after_a_send_that_got_no_answer_a_miss_is_trusted_only_once_events_settle() {
    let (_mocks, base) = mock(|_| {}).await;
    let email = every_kind().remove(1);
    let m = mailer_with(&base, KEY, Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(900)).await; // past the start's settle
                                                          // A 429 says Mailgun did not take it: the retry does not wait.
    fault(&base, json!({"kind": "status", "status": 429})).await;
    assert_eq!(
        m.send_once(&email, now_ms()).await.unwrap_err().class(),
        "transient"
    );
    let t = std::time::Instant::now();
    assert!(!m.send_once(&email, now_ms()).await.unwrap().already_sent);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // A 503 may hide an accepted send: the retry of another email waits events_settle.
    let other = every_kind().remove(0);
    fault(&base, json!({"kind": "status", "status": 503})).await;
    assert_eq!(
        m.send_once(&other, now_ms()).await.unwrap_err().class(),
        "transient"
    );
    let t = std::time::Instant::now();
    let d = m.send_once(&other, now_ms()).await.unwrap();
    assert!(!d.already_sent);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(messages(&base).await.len(), 2);
}

#[tokio::test]
async fn an_earlier_send_is_found_past_the_first_page_of_events() {
    let (_mocks, base) = mock(|_| {}).await;
    let m = mailer(&base);
    let target = every_kind().remove(1);
    // 300 other emails to the same recipient first: a full page of accepted events.
    let http = reqwest::Client::new();
    for i in 0..300 {
        let key = format!("other-{i}");
        let form = [
            ("from", FROM),
            ("to", target.recipient.as_str()),
            ("subject", "other"),
            ("text", "other"),
            ("v:l2f-key", key.as_str()),
        ];
        http.post(format!("{base}/v3/{DOMAIN}/messages"))
            .basic_auth("api", Some(KEY))
            .form(&form)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    let first = m.send_once(&target, now_ms()).await.unwrap();
    let again = mailer(&base).send_once(&target, now_ms()).await.unwrap();
    assert!(again.already_sent);
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(messages(&base).await.len(), 301);
}
