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

// ---- Events API ------------------------------------------------------------------------

const DOMAIN: &str = "mg.l2f.example";

fn app_at(clock: std::sync::Arc<l2f_mocks::kit::Clock>) -> Router {
    mail::router(Mail::with_clock(Config::default(), None, clock).expect("mock"))
}

fn clock() -> std::sync::Arc<l2f_mocks::kit::Clock> {
    l2f_mocks::kit::Clock::simulated_at("2026-01-01T00:00:00Z").expect("clock")
}

/// Sends a form and answers the message id the send returned.
async fn send_form(r: &Router, pairs: &[(&str, &str)]) -> String {
    let body = serde_urlencoded::to_string(pairs).expect("form");
    let reply = send(
        r,
        Method::POST,
        &format!("/v3/{DOMAIN}/messages"),
        &[
            ("authorization", &basic("key-l2f-mock")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_string()
}

async fn events(r: &Router, query: &str) -> common::Reply {
    send(
        r,
        Method::GET,
        &format!("/v3/{DOMAIN}/events?{query}"),
        &[("authorization", &basic("key-l2f-mock"))],
        "",
    )
    .await
}

/// The path of an absolute page URL (`http://host/v3/...` → `/v3/...`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

async fn follow(r: &Router, url: &str) -> serde_json::Value {
    let reply = send(
        r,
        Method::GET,
        &path_of(url),
        &[("authorization", &basic("key-l2f-mock"))],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

fn item_kinds(page: &serde_json::Value) -> Vec<(String, String)> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["event"].as_str().unwrap_or("").to_string(),
                i["recipient"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every recipient of a sent message gets an `accepted` and a `delivered` event in the
/// documented shape (webhook payload samples), carrying the `user-variables` of the `v:`
/// fields and of `h:X-Mailgun-Variables`, the message id without its angle brackets and
/// the clock's time.
/// https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
/// https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-attachments
#[tokio::test]
async fn sent_messages_have_accepted_and_delivered_events_carrying_user_variables() {
    let c = clock();
    c.advance("12h").expect("advance");
    let r = app_at(c);
    let id = send_form(
        &r,
        &[
            ("from", "Billing <billing@mg.l2f.example>"),
            ("to", "ada@example.com, bob@example.com"),
            ("cc", "carol@example.com"),
            ("subject", "Your renewal"),
            ("text", "Renews soon"),
            ("o:tag", "renewal"),
            ("v:l2f-key", "notice-A-S1-14"),
            ("v:ctx", "{\"days\":14}"),
            (
                "h:X-Mailgun-Variables",
                "{\"tenant\": 7, \"l2f-key\": \"overridden\"}",
            ),
        ],
    )
    .await;
    assert!(
        id.starts_with("<20260101120000.") && id.ends_with("@mg.l2f.example>"),
        "{id}"
    );
    let bare = id.trim_start_matches('<').trim_end_matches('>');
    let page = events(
        &r,
        &format!("message-id={}&ascending=yes&begin=0", urlencode(&id)),
    )
    .await
    .json();
    let kinds = item_kinds(&page);
    assert_eq!(kinds.len(), 6, "{page}");
    for who in ["ada@example.com", "bob@example.com", "carol@example.com"] {
        for ev in ["accepted", "delivered"] {
            assert!(
                kinds.contains(&(ev.to_string(), who.to_string())),
                "{ev} {who}: {kinds:?}"
            );
        }
    }
    let first = &page["items"][0];
    assert_eq!(first["event"], "accepted");
    assert_eq!(first["message"]["headers"]["message-id"], bare);
    assert_eq!(first["message"]["headers"]["subject"], "Your renewal");
    assert_eq!(
        first["message"]["headers"]["from"],
        "Billing <billing@mg.l2f.example>"
    );
    assert_eq!(first["envelope"]["sender"], "billing@mg.l2f.example");
    assert_eq!(first["recipient-domain"], "example.com");
    assert_eq!(first["tags"], serde_json::json!(["renewal"]));
    assert_eq!(first["timestamp"], 1_767_268_800.0);
    assert_eq!(first["id"].as_str().map(str::len), Some(22));
    assert_eq!(
        first["user-variables"],
        serde_json::json!({ "l2f-key": "notice-A-S1-14", "ctx": { "days": 14 }, "tenant": 7 })
    );
    assert!(first["storage"]["url"]
        .as_str()
        .is_some_and(|u| u.contains("/v3/domains/mg.l2f.example/messages/")));
    let delivered = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["event"] == "delivered")
        .expect("delivered");
    assert_eq!(delivered["delivery-status"]["code"], 250);
    // The same id, with its brackets, finds the same events.
    let with_brackets = events(
        &r,
        &format!("message-id={}&begin=0&ascending=yes", urlencode(bare)),
    )
    .await
    .json();
    assert_eq!(item_kinds(&with_brackets).len(), 6);
    // The messages API keeps the variables too.
    let listed = send(&r, Method::GET, "/__admin/messages", &[], "")
        .await
        .json();
    assert_eq!(listed["items"][0]["user-variables"]["tenant"], 7);
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("enc")[2..].to_string()
}

/// Filters: `event` (with OR), `recipient`, `subject` terms and negation, `tags`, and a
/// `user-variables` JSON object.
/// https://documentation.mailgun.com/docs/mailgun/user-manual/events/filter-field
#[tokio::test]
async fn events_filter_by_event_recipient_subject_tags_and_user_variables() {
    let r = app_at(clock());
    for (to, subject, key, tag) in [
        ("ada@example.com", "Renewal notice 90", "n-90", "renewal"),
        ("bob@example.com", "License key", "lic-1", "license"),
        ("ada@example.com", "Renewal notice 45", "n-45", "renewal"),
    ] {
        send_form(
            &r,
            &[
                ("from", "l2f@mg.l2f.example"),
                ("to", to),
                ("subject", subject),
                ("text", "x"),
                ("o:tag", tag),
                ("v:l2f-key", key),
            ],
        )
        .await;
    }
    let q = |extra: &str| format!("begin=0&ascending=yes&{extra}");
    let n = |p: serde_json::Value| item_kinds(&p).len();
    assert_eq!(n(events(&r, &q("event=accepted")).await.json()), 3);
    assert_eq!(
        n(events(&r, &q("event=accepted%20OR%20delivered"))
            .await
            .json()),
        6
    );
    assert_eq!(n(events(&r, &q("event=failed")).await.json()), 0);
    assert_eq!(
        n(events(&r, &q("event=accepted&recipient=ada%40example.com"))
            .await
            .json()),
        2
    );
    assert_eq!(
        n(events(&r, &q("event=accepted&subject=renewal%20-45"))
            .await
            .json()),
        1
    );
    assert_eq!(
        n(events(&r, &q("event=accepted&tags=license")).await.json()),
        1
    );
    let uv = urlencode("{\"l2f-key\":\"n-45\"}");
    let page = events(&r, &q(&format!("event=accepted&user-variables={uv}")))
        .await
        .json();
    assert_eq!(
        item_kinds(&page),
        vec![("accepted".into(), "ada@example.com".into())]
    );
    assert_eq!(
        page["items"][0]["message"]["headers"]["subject"],
        "Renewal notice 45"
    );
    let bad = events(&r, &q("user-variables=notjson")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Paging: `paging.first/last/next/previous` are absolute URLs, always given; following
/// `next` walks the range page by page to an empty page; `previous` goes back; with an open
/// end, the last ascending `next` URL returns later events when fetched again (polling).
/// https://documentation.mailgun.com/docs/mailgun/user-manual/events/
#[tokio::test]
async fn events_page_through_next_previous_first_last_and_poll_for_new_ones() {
    let c = clock();
    let r = app_at(c.clone());
    for i in 0..5 {
        send_form(
            &r,
            &[
                ("from", "l2f@mg.l2f.example"),
                ("to", &format!("u{i}@example.com")),
                ("subject", "s"),
                ("text", "x"),
            ],
        )
        .await;
        c.advance("1m").expect("advance");
    }
    let first = events(&r, "begin=0&ascending=yes&limit=2&event=accepted")
        .await
        .json();
    for k in ["first", "last", "next", "previous"] {
        assert!(
            first["paging"][k]
                .as_str()
                .is_some_and(|u| u.starts_with("http")),
            "{k}: {first}"
        );
    }
    let who = |p: &serde_json::Value| -> Vec<String> {
        item_kinds(p).into_iter().map(|(_, r)| r).collect()
    };
    assert_eq!(who(&first), vec!["u0@example.com", "u1@example.com"]);
    let second = follow(&r, first["paging"]["next"].as_str().expect("next")).await;
    assert_eq!(who(&second), vec!["u2@example.com", "u3@example.com"]);
    let back = follow(&r, second["paging"]["previous"].as_str().expect("prev")).await;
    assert_eq!(who(&back), who(&first));
    let third = follow(&r, second["paging"]["next"].as_str().expect("next")).await;
    assert_eq!(who(&third), vec!["u4@example.com"]);
    let last = follow(&r, first["paging"]["last"].as_str().expect("last")).await;
    assert_eq!(who(&last), vec!["u3@example.com", "u4@example.com"]);
    let before_first = follow(&r, first["paging"]["previous"].as_str().expect("prev")).await;
    assert!(who(&before_first).is_empty());
    let end = third["paging"]["next"].as_str().expect("next").to_string();
    assert!(who(&follow(&r, &end).await).is_empty());
    // Polling the empty page's URL later finds what was sent since.
    send_form(
        &r,
        &[
            ("from", "l2f@mg.l2f.example"),
            ("to", "late@example.com"),
            ("subject", "s"),
            ("text", "x"),
        ],
    )
    .await;
    let polled = follow(&r, &end).await;
    assert_eq!(who(&polled), vec!["late@example.com"]);
}

/// Time range and direction: `begin`/`end` in epoch seconds or RFC 2822; without `end`
/// the traversal is descending from `begin` unless `ascending=yes`; `end` before `begin`
/// is descending; an `ascending` that contradicts them, a `limit` over 300, a bad time or
/// a bad page token is 400; a wrong key 401; an unknown domain 404.
/// https://github.com/mailgun/documentation/blob/master/source/api-events.rst
#[tokio::test]
async fn events_time_ranges_directions_and_errors_follow_the_documentation() {
    let c = clock();
    let r = app_at(c.clone());
    for day in 0..3 {
        send_form(
            &r,
            &[
                ("from", "l2f@mg.l2f.example"),
                ("to", &format!("d{day}@example.com")),
                ("subject", "s"),
                ("text", "x"),
            ],
        )
        .await;
        c.advance("1d").expect("advance");
    }
    let who = |p: serde_json::Value| -> Vec<String> {
        item_kinds(&p).into_iter().map(|(_, r)| r).collect()
    };
    // 2026-01-02T00:00:00Z = 1767312000.
    assert_eq!(
        who(events(&r, "event=accepted&begin=1767312000&ascending=yes")
            .await
            .json()),
        vec!["d1@example.com", "d2@example.com"]
    );
    assert_eq!(
        who(events(
            &r,
            "event=accepted&begin=Fri,%2002%20Jan%202026%2000:00:00%20-0000"
        )
        .await
        .json()),
        vec!["d1@example.com", "d0@example.com"]
    );
    // Default: from now into the past, newest first.
    assert_eq!(
        who(events(&r, "event=accepted").await.json()),
        vec!["d2@example.com", "d1@example.com", "d0@example.com"]
    );
    assert_eq!(
        who(events(&r, "event=accepted&begin=1767398400&end=1767312000")
            .await
            .json()),
        vec!["d2@example.com", "d1@example.com"]
    );
    for bad in [
        "begin=1767398400&end=1767312000&ascending=yes",
        "limit=301",
        "limit=0",
        "begin=yesterday",
        "ascending=maybe",
    ] {
        let reply = events(&r, bad).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
        assert!(reply.json()["message"].is_string());
    }
    let token = send(
        &r,
        Method::GET,
        &format!("/v3/{DOMAIN}/events/not-a-token"),
        &[("authorization", &basic("key-l2f-mock"))],
        "",
    )
    .await;
    assert_eq!(token.status, StatusCode::BAD_REQUEST);
    let wrong = send(
        &r,
        Method::GET,
        &format!("/v3/{DOMAIN}/events"),
        &[("authorization", &basic("nope"))],
        "",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let other = send(
        &r,
        Method::GET,
        "/v3/other.example/events",
        &[("authorization", &basic("key-l2f-mock"))],
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_mailgun_variables_header_that_is_not_a_json_object_is_refused() {
    let r = app();
    let body = serde_urlencoded::to_string([
        ("from", "a@mg.l2f.example"),
        ("to", "b@example.com"),
        ("text", "x"),
        ("h:X-Mailgun-Variables", "not json"),
    ])
    .expect("form");
    let reply = send(
        &r,
        Method::POST,
        "/v3/mg.l2f.example/messages",
        &[
            ("authorization", &basic("key-l2f-mock")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let state = send(&r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(state["messages"], serde_json::json!([]));
    assert_eq!(state["events"], serde_json::json!([]));
}

/// Mailgun's events arrive in its storage late ("Event Polling"); with `events_delay_ms`
/// the mock shows an event only that long after the send, so a reader that checks too
/// early sees nothing yet — and the same query later sees it.
/// https://github.com/mailgun/documentation/blob/master/source/api-events.rst
#[tokio::test]
async fn events_show_only_after_the_configured_delay() {
    let cfg = Config {
        events_delay_ms: 300,
        ..Config::default()
    };
    let r = mail::router(Mail::new(cfg, None).expect("mock"));
    let id = send_form(
        &r,
        &[
            ("from", "l2f@mg.l2f.example"),
            ("to", "ada@example.com"),
            ("subject", "s"),
            ("text", "x"),
        ],
    )
    .await;
    let q = format!("message-id={}", urlencode(&id));
    assert!(
        item_kinds(&events(&r, &q).await.json()).is_empty(),
        "not visible yet"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(item_kinds(&events(&r, &q).await.json()).len(), 2);
}
