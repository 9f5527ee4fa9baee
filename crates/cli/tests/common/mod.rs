//! How the tests start the `l2f` binary: from the repository root (where `deploy/` is), with
//! no configuration inherited from the environment and logs at the level the test wants.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use serde_json::Value;

/// The `l2f` binary, ready for arguments.
pub fn l2f_command(rust_log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l2f"));
    cmd.env_remove("L2F_CONFIG")
        .env("RUST_LOG", rust_log)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    cmd
}

/// What a finished run printed and how it ended.
pub struct Ran {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Ran {
    let start = Instant::now();
    let out = cmd.output().expect("run l2f");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Every span an OTLP/HTTP JSON receiver was sent: (trace id, span id, parent span id, name, attributes).
pub type Spans = Arc<Mutex<Vec<(String, String, String, String, Value)>>>;

/// A local OpenTelemetry collector (OTLP/HTTP, JSON): its base URL and what it was sent.
pub async fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let keep = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for s in ss["spans"].as_array().into_iter().flatten() {
                            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                            keep.lock().unwrap().push((
                                text("traceId"),
                                text("spanId"),
                                text("parentSpanId"),
                                text("name"),
                                s["attributes"].clone(),
                            ));
                        }
                    }
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}
