//! One clock for all mocks of a process (DESIGN "Time"): `GET/POST /__admin/clock` on
//! every app, the library handle `Running::clock()`, business times taken from it.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, send};
use l2f_mocks::clock::{ClockConfig, ClockMode};
use l2f_mocks::customers::{self, Customers};
use l2f_mocks::kit::Clock;
use l2f_mocks::server::{self, MocksConfig};
use serde_json::{json, Value};

const T: &str = "l2f-customers-token";

fn customers_at(clock: std::sync::Arc<Clock>) -> Router {
    customers::router(
        Customers::with_clock(customers::Config::default(), None, clock).expect("app"),
    )
}

async fn admin(r: &Router, method: Method, body: &str) -> (StatusCode, Value) {
    let reply = send(
        r,
        method,
        "/__admin/clock",
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await;
    (reply.status, reply.json())
}

#[tokio::test]
async fn admin_clock_reports_advances_and_sets_a_simulated_clock_but_never_backwards() {
    let r = customers_at(Clock::simulated_at("2026-01-01T00:00:00Z").expect("clock"));
    let (status, v) = admin(&r, Method::GET, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({ "now": "2026-01-01T00:00:00.000Z", "mode": "simulated" })
    );

    let (status, v) = admin(&r, Method::POST, r#"{"advance":"30d"}"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["now"], "2026-01-31T00:00:00.000Z");
    let (_, v) = admin(&r, Method::POST, r#"{"advance":"1d12h"}"#).await;
    assert_eq!(v["now"], "2026-02-01T12:00:00.000Z");
    let (_, v) = admin(&r, Method::POST, r#"{"set":"2027-01-01T00:00:00Z"}"#).await;
    assert_eq!(v["now"], "2027-01-01T00:00:00.000Z");
    // An empty body only runs what is due.
    let (status, v) = admin(&r, Method::POST, "").await;
    assert_eq!(
        (status, v["now"].clone()),
        (StatusCode::OK, json!("2027-01-01T00:00:00.000Z"))
    );

    for bad in [
        r#"{"set":"2026-06-01T00:00:00Z"}"#,
        r#"{"advance":"3 fortnights"}"#,
        r#"{"advance":"1d","set":"2028-01-01T00:00:00Z"}"#,
        r#"{"travel":"1d"}"#,
        "not json",
    ] {
        let (status, v) = admin(&r, Method::POST, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert_eq!(
        admin(&r, Method::GET, "").await.1["now"],
        "2027-01-01T00:00:00.000Z"
    );
}

#[tokio::test]
async fn the_wall_clock_cannot_be_moved() {
    let r = customers_at(Clock::wall());
    let (status, v) = admin(&r, Method::GET, "").await;
    assert_eq!((status, v["mode"].clone()), (StatusCode::OK, json!("wall")));
    let (status, v) = admin(&r, Method::POST, r#"{"advance":"1d"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
}

/// Purchases (term dates), lead forms (`created_at`) and outbox events (`occurred_at`)
/// take their times from the clock, not from the machine's.
#[tokio::test]
async fn customers_purchases_forms_and_feed_events_take_their_time_from_the_clock() {
    let clock = Clock::simulated_at("2031-03-01T09:30:00Z").expect("clock");
    let r = customers_at(clock.clone());
    let acct = json(
        &r,
        Method::POST,
        "/api/v1/accounts",
        T,
        &json!({ "email": "ada@example.com", "name": "Ada", "country": "GB" }),
    )
    .await
    .json();
    assert_eq!(acct["created_at"], "2031-03-01T09:30:00.000Z");
    clock.advance("2d").expect("advance");
    let sub = json(
        &r,
        Method::POST,
        "/api/v1/purchases",
        T,
        &json!({ "account_id": acct["id"], "deployment": "saas", "plan": "premium", "seats": 5 }),
    )
    .await
    .json();
    assert_eq!(sub["term_start"], "2031-03-03");
    assert_eq!(sub["term_end"], "2032-03-03");
    let lead = json(
        &r,
        Method::POST,
        "/api/v1/signups",
        T,
        &json!({ "email": "bob@example.com", "country": "DE" }),
    )
    .await
    .json();
    assert_eq!(lead["created_at"], "2031-03-03T09:30:00.000Z");
    let feed = get(&r, "/api/v1/events", T).await.json();
    let times: Vec<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        times,
        vec!["2031-03-03T09:30:00.000Z", "2031-03-03T09:30:00.000Z"]
    );
}

fn simulated_config() -> MocksConfig {
    let mut cfg = MocksConfig {
        clock: ClockConfig {
            mode: ClockMode::Simulated,
            start: "2026-01-01T00:00:00Z".into(),
            tick_ms: 50,
        },
        ..MocksConfig::default()
    };
    cfg.without_https();
    cfg
}

/// Every app of one process reads one clock: an advance posted to one app is what every
/// other app answers, and `Running::clock()` moves the same clock.
#[tokio::test]
async fn every_app_of_a_process_shares_one_clock_over_sockets() {
    let running = server::start(&simulated_config()).await.expect("start");
    let http = reqwest::Client::new();
    let url = |app: &str| format!("{}/__admin/clock", running.endpoint(app).expect(app).http);
    let moved: Value = http
        .post(url("zuora"))
        .json(&json!({ "advance": "30d" }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(moved["now"], "2026-01-31T00:00:00.000Z");
    for app in server::APPS {
        let v: Value = http
            .get(url(app))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            v,
            json!({ "now": "2026-01-31T00:00:00.000Z", "mode": "simulated" }),
            "{app}"
        );
    }
    running.clock().advance("1d").expect("advance");
    let v: Value = http
        .get(url("mail"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(v["now"], "2026-02-01T00:00:00.000Z");
    // The ticker does not move a simulated clock.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(running.clock().rfc3339(), "2026-02-01T00:00:00.000Z");
    running.shutdown().await;
}

/// With a SQLite store, a restarted process resumes the simulated clock where it stood
/// (its records are never from its own future).
#[tokio::test]
async fn a_simulated_clock_resumes_after_a_restart_with_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = simulated_config();
    cfg.sqlite = Some(dir.path().join("mocks.sqlite"));
    let running = server::start(&cfg).await.expect("start");
    running.clock().advance("100d").expect("advance");
    running.shutdown().await;
    let again = server::start(&cfg).await.expect("restart");
    assert_eq!(again.clock().rfc3339(), "2026-04-11T00:00:00.000Z");
    again.shutdown().await;
}
