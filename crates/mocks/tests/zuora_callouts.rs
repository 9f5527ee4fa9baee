//! Zuora callouts: subscription events are POSTed to the configured URL, retried until
//! the receiver accepts them.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::{json, zuora_token};
use l2f_mocks::zuora::{self, Config, Zuora};
use serde_json::{json, Value};

#[tokio::test]
async fn callouts_are_retried_until_the_receiver_accepts() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let receiver = Router::new().route(
        "/hook",
        post(move |Json(ev): Json<Value>| {
            let s = s.clone();
            async move {
                let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
                seen.push(ev);
                // Refuse the first delivery, accept the retry.
                if seen.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });

    let cfg = Config {
        callout_url: Some(format!("http://{addr}/hook")),
        ..Config::default()
    };
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = json(&r, Method::POST, "/v1/accounts", &t, &json!({ "name": "Hooked", "billToContact": { "firstName": "A", "lastName": "B", "country": "US" } })).await.json();
    let order = json!({
        "orderDate": "2026-01-01", "existingAccountNumber": acct["accountNumber"],
        "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": { "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }] } }] }]
    });
    assert_eq!(
        json(&r, Method::POST, "/v1/orders", &t, &order)
            .await
            .json()["success"],
        true
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        if n >= 2 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], seen[1], "a retry carries the same event");
    assert_eq!(seen[0]["type"], "SubscriptionCreated");
    assert_eq!(seen[0]["seq"], 1);
    server.abort();
}
