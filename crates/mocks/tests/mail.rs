//! The mail mock against Mailgun's messages API documentation.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use base64::Engine;
use common::send;
use l2f_mocks::mail::{self, Config, Mail};

fn app() -> Router {
    mail::router(Mail::new(Config::default(), None).expect("mock"))
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"))
    )
}

/// "Send an email": `POST /v3/{domain_name}/messages` with basic auth `api:KEY` and the
/// form fields from, to, subject, text answers `{"id":"<...>","message":"Queued. Thank you."}`.
/// https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages/post-v3--domain-name--messages
#[tokio::test]
async fn send_round_trips_the_documented_example_and_is_recorded() {
    let r = app();
    let auth = basic("key-l2f-mock");
    let body = "from=Excited+User+%3Cmailgun%40mg.l2f.example%3E&to=bar%40example.com&to=baz%40example.com&subject=Hello&text=Testing+some+Mailgun+awesomeness%21&o%3Atag=renewal";
    let reply = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[
            ("authorization", &auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let v = reply.json();
    assert_eq!(v["message"], "Queued. Thank you.");
    let id = v["id"].as_str().expect("id");
    assert!(
        id.starts_with('<') && id.ends_with("@mg.l2f.example>"),
        "{id}"
    );

    let listed = send(
        &r,
        Method::GET,
        "/__admin/messages?to=baz%40example.com",
        &[],
        "",
    )
    .await
    .json();
    let m = &listed["items"][0];
    assert_eq!(m["id"], id);
    assert_eq!(
        m["to"],
        serde_json::json!(["bar@example.com", "baz@example.com"])
    );
    assert_eq!(m["subject"], "Hello");
    assert_eq!(m["tags"], serde_json::json!(["renewal"]));
}

#[tokio::test]
async fn multipart_bodies_with_attachments_are_accepted() {
    let r = app();
    let auth = basic("key-l2f-mock");
    let b = "XyZbOuNdArY";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nlicensing@mg.l2f.example\r\n--{b}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nada@example.com\r\n--{b}\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nYour license\r\n--{b}\r\nContent-Disposition: form-data; name=\"html\"\r\n\r\n<p>key</p>\r\n--{b}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"license.gitlab-license\"\r\nContent-Type: application/octet-stream\r\n\r\nABCDEF\r\n--{b}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={b}");
    let reply = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[("authorization", &auth), ("content-type", &ct)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let state = send(&r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(
        state["messages"][0]["attachments"],
        serde_json::json!([["license.gitlab-license", 6]])
    );
}

/// Mailgun answers 401 `Forbidden` for a bad key and 400 `{"message": ...}` for a bad
/// message.
#[tokio::test]
async fn bad_keys_domains_and_messages_get_mailguns_errors() {
    let r = app();
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let wrong = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[("authorization", &basic("nope")), ct],
        "from=a%40b.example",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.text, "Forbidden");
    let none = send(&r, Method::POST, "/v3/mg.l2f.example/messages", &[ct], "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let auth = basic("key-l2f-mock");
    let no_from = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[("authorization", &auth), ct],
        "to=a%40b.example&text=x",
    )
    .await;
    assert_eq!(no_from.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_from.json()["message"], "from parameter is missing");
    let no_body = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[("authorization", &auth), ct],
        "from=a%40b.example&to=c%40d.example",
    )
    .await;
    assert_eq!(no_body.status, StatusCode::BAD_REQUEST);
    let bad_domain = send(
        &r,
        Method::POST,
        "/v3/other.example/messages",
        &[("authorization", &auth), ct],
        "from=a%40b.example&to=c%40d.example&text=x",
    )
    .await;
    assert_eq!(bad_domain.status, StatusCode::NOT_FOUND);
    let bad_multipart = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[
            ("authorization", &auth),
            ("content-type", "multipart/form-data; boundary=zz"),
        ],
        "garbage",
    )
    .await;
    assert_eq!(bad_multipart.status, StatusCode::BAD_REQUEST);
    let state = send(&r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(state["messages"], serde_json::json!([]));
}
