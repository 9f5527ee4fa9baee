//! How long each connector's calls to its app take, by app, call and outcome, so an operator
//! can tell a slow app from a slow hub (`l2f_api_call_duration_seconds` on `/metrics`). Every
//! client sends through [`call`]; the call is named by its method and its path with the ids
//! taken out, so the label set stays as small as the API.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use l2f_bus::consumer::{Latency, LatencySnapshot};
use reqwest::{RequestBuilder, Response};

/// One kind of call: which app, which endpoint, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiCall {
    /// The app (`zuora`, `salesforce`, ...).
    pub app: &'static str,
    /// Method and path template, e.g. `GET /v1/subscriptions/{id}`.
    pub call: String,
    /// `2xx`, `3xx`, `4xx`, `429`, `5xx`, or `error` (no answer: connection, timeout).
    pub outcome: &'static str,
}

static CALLS: LazyLock<Mutex<BTreeMap<ApiCall, Arc<Latency>>>> = LazyLock::new(Mutex::default);

/// Sends `req` to `app` and counts how long the answer took. Inside an exported span the call
/// is a client span of its own (`<app> <METHOD> <template>`), and the app is sent its
/// `traceparent`, so the app's own tracing (or a proxy's) joins the customer's trace.
pub async fn call(app: &'static str, req: RequestBuilder) -> reqwest::Result<Response> {
    let (client, req) = req.build_split();
    let mut req = req?;
    let path = template(req.url().path());
    let name = format!("{} {path}", req.method());
    let span = l2f_bus::trace::call_context(app, &name, req.method().as_str(), &path);
    if let Some(tp) = span.as_ref().and_then(l2f_bus::trace::traceparent_of) {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&tp.to_string()) {
            req.headers_mut().insert(l2f_bus::headers::TRACEPARENT, v);
        }
    }
    let began = Instant::now();
    let resp = client.execute(req).await;
    if let Some(cx) = &span {
        match &resp {
            Ok(r) => l2f_bus::trace::end_call(cx, Some(r.status().as_u16()), None),
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                };
                l2f_bus::trace::end_call(cx, None, Some(kind))
            }
        }
    }
    let outcome = match &resp {
        Ok(r) if r.status().as_u16() == 429 => "429",
        Ok(r) if r.status().is_success() => "2xx",
        Ok(r) if r.status().is_redirection() => "3xx",
        Ok(r) if r.status().is_client_error() => "4xx",
        Ok(_) => "5xx",
        Err(_) => "error",
    };
    observe(
        ApiCall {
            app,
            call: name,
            outcome,
        },
        began.elapsed(),
    );
    resp
}

/// Counts one call of `kind` that took `took` (what [`call`] does after each answer).
pub fn observe(kind: ApiCall, took: std::time::Duration) {
    let histogram = {
        let mut calls = CALLS.lock().unwrap_or_else(|p| p.into_inner());
        calls.entry(kind).or_default().clone()
    };
    histogram.observe(took);
}

/// Every kind of call made so far, with its durations.
pub fn api_calls() -> Vec<(ApiCall, LatencySnapshot)> {
    CALLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, h)| (k.clone(), h.snapshot()))
        .collect()
}

/// The path with each id-like segment (one with a digit, an `@` or a `%`, or a long one)
/// replaced by `{id}`; API versions (`v1`, `v60.0`), file names and domains stay.
pub fn template(path: &str) -> String {
    let id_like = |seg: &str| {
        let personal = seg.contains(['@', '%']);
        // `v1`, `v60.0`, `leads.json`, a Mailgun domain: names of the API, not ids.
        let named = seg.contains('.')
            || seg
                .strip_prefix('v')
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
        personal || seg.len() > 40 || (!named && seg.chars().any(|c| c.is_ascii_digit()))
    };
    path.split('/')
        .map(|seg| if id_like(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_leave_the_path_and_versions_stay() {
        assert_eq!(
            template("/v1/subscriptions/A-S00000003/versions/2"),
            "/v1/subscriptions/{id}/versions/{id}"
        );
        assert_eq!(
            template("/services/data/v60.0/sobjects/Lead/00Q000000000001AAA"),
            "/services/data/v60.0/sobjects/Lead/{id}"
        );
        assert_eq!(template("/rest/v1/leads.json"), "/rest/v1/leads.json");
        assert_eq!(
            template("/v3/mg.l2f.example/messages"),
            "/v3/mg.l2f.example/messages"
        );
        assert_eq!(
            template("/api/v1/accounts/ada%40example.com"),
            "/api/v1/accounts/{id}"
        );
        assert_eq!(template("/api/v1/leads/ada@x"), "/api/v1/leads/{id}");
    }

    #[tokio::test]
    async fn each_call_is_counted_under_its_app_template_and_outcome() {
        let app = axum::Router::new()
            .route("/v1/things/{id}", axum::routing::get(|| async { "ok" }))
            .route(
                "/v1/busy",
                axum::routing::get(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, "") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        for n in 1..=3 {
            let r = call("calls-test", http.get(format!("{base}/v1/things/t{n}")))
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        call("calls-test", http.get(format!("{base}/v1/busy")))
            .await
            .unwrap();
        let mine: BTreeMap<(String, &str), u64> = api_calls()
            .into_iter()
            .filter(|(k, _)| k.app == "calls-test")
            .map(|(k, h)| ((k.call, k.outcome), h.count))
            .collect();
        assert_eq!(
            mine.get(&("GET /v1/things/{id}".into(), "2xx")),
            Some(&3),
            "{mine:?}"
        );
        assert_eq!(
            mine.get(&("GET /v1/busy".into(), "429")),
            Some(&1),
            "{mine:?}"
        );
        assert_eq!(mine.len(), 2, "{mine:?}");
    }
}
