//! The hub's followed clock against the mocks' real `/__admin/clock` over HTTP (no Kafka):
//! it starts at the mocks' simulated time, follows every advance within a poll, and a clock
//! that cannot be read stops the start with an error naming `clock.url`.

use std::time::Duration;

use l2f_bus::config::{ClockConfig, ClockSource};
use l2f_bus::CancellationToken;
use l2f_connector_kit::clock::{follow, from_config};
use l2f_e2e::wait_until;
use l2f_mocks::clock::{ClockConfig as MockClock, ClockMode};
use l2f_mocks::server::{self, MocksConfig};

#[tokio::test]
async fn the_hub_follows_the_mocks_simulated_clock() {
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".to_string()]).unwrap();
    mc.without_https();
    mc.clock = MockClock {
        mode: ClockMode::Simulated,
        start: "2026-01-01T00:00:00Z".into(),
        tick_ms: 0,
    };
    let mocks = server::start(&mc).await.unwrap();
    let base = mocks.endpoint("zuora").unwrap().http.clone();
    let shutdown = CancellationToken::new();
    let cfg = ClockConfig {
        source: ClockSource::Follow,
        url: Some(base.clone()),
        poll_interval: Duration::from_millis(20),
    };
    let clock = from_config(&cfg, &shutdown).await.unwrap();
    assert_eq!(clock.now().to_rfc3339(), "2026-01-01T00:00:00+00:00");
    mocks.clock().advance("30d").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || clock.now().to_rfc3339()
            == "2026-01-31T00:00:00+00:00")
        .await,
        "the followed clock stands at {}",
        clock.now()
    );
    // Over the mocks' HTTP API, as the demo moves it.
    let r = reqwest::Client::new()
        .post(format!("{base}/__admin/clock"))
        .json(&serde_json::json!({"set": "2026-12-31T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(
        wait_until(Duration::from_secs(5), || clock.now().to_rfc3339()
            == "2026-12-31T00:00:00+00:00")
        .await
    );
    shutdown.cancel();
    mocks.shutdown().await;
}

#[tokio::test]
async fn a_clock_that_cannot_be_read_is_a_start_error_naming_the_key() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = follow(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(20),
        Duration::from_millis(300),
        &CancellationToken::new(),
    )
    .await
    .err()
    .expect("nothing listens there")
    .to_string();
    assert!(e.starts_with("clock.url: cannot read the clock"), "{e}");
    assert!(
        e.contains(&format!("127.0.0.1:{port}/__admin/clock")),
        "{e}"
    );
}

#[tokio::test]
async fn the_wall_clock_is_the_default() {
    let clock = from_config(&ClockConfig::default(), &CancellationToken::new())
        .await
        .unwrap();
    let drift = (clock.now() - chrono::Utc::now()).num_milliseconds().abs();
    assert!(drift < 5_000, "{drift} ms from the wall clock");
}
