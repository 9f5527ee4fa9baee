//! OTLP traces: `l2f run` with `[traces]` set exports one span per handled record to an
//! OpenTelemetry collector (a small OTLP/HTTP JSON receiver here), the child of the span the
//! record's `traceparent` names, so a trace follows a customer into each connector.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{collector, l2f_command};
use l2f_bus::headers::{TraceParent, TRACEPARENT};
use l2f_bus::reader::read_all;
use l2f_connector_kit::record::event_record;
use l2f_contracts::{examples, Codec};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique};
use l2f_mocks::server::{self, MocksConfig};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_handled_record_is_a_span_in_its_own_trace_exported_over_otlp() {
    let b = require_kafka!();
    let (otlp, spans) = collector().await;
    let mut mc = MocksConfig::default();
    mc.only(&["marketo".to_string()]).unwrap();
    mc.without_https();
    let mocks = server::start(&mc).await.unwrap();
    let base = mocks.endpoint("marketo").unwrap().http.clone();

    let topic = unique("trace-leads");
    let dlq_topic = unique("trace-leads-dlq");
    create_topic(&b, &topic, 1).await;
    create_topic(&b, &dlq_topic, 1).await;
    let codec = Codec::new();
    let sent: Vec<TraceParent> = (0..3).map(|_| TraceParent::new_root()).collect();
    let records: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, tp)| {
            let mut lead = examples::lead_captured();
            lead.lead_id = format!("lead-{i}");
            lead.email = format!("traced{i}@example.com");
            event_record(&codec, &topic, &lead, None)
                .unwrap()
                .with_header(TRACEPARENT, tp.to_string())
        })
        .collect();
    produce(&b, &records).await;
    let on_topic = read_all(&client(&b), &topic, Duration::from_secs(10)).unwrap();
    assert_eq!(on_topic.len(), 3);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2f.toml");
    let group = unique("g-trace-marketo");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbootstrap_servers = \"{b}\"\n[dead_letter]\ntopic = \"{dlq_topic}\"\n\
             [traces]\notlp_endpoint = \"{otlp}\"\nprotocol = \"http/json\"\nservice_name = \"l2f-test\"\n\
             [connectors.marketo]\nbase_url = \"{base}\"\nclient_id = \"l2f-marketo-client\"\n\
             client_secret = \"l2f-marketo-secret\"\ntopic = \"{topic}\"\ngroup = \"{group}\"\nbatch_size = 1\n"
        ),
    )
    .unwrap();
    let mut child = l2f_command("warn")
        .args(["run", "--topics", &topic, "--group", &unique("g-audit")])
        .args(["--audit-out", "/dev/null", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let in_group = |attrs: &Value| {
        attrs.as_array().into_iter().flatten().any(|a| {
            a["key"] == "messaging.consumer.group.name"
                && a["value"]["stringValue"] == group.as_str()
        })
    };
    let parent_of = |tp: &TraceParent| -> Vec<(String, String, Value)> {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(trace, _, parent, _, attrs)| {
                *trace == tp.trace_id_hex() && *parent == hex(&tp.span_id) && in_group(attrs)
            })
            .map(|(_, _, _, name, attrs)| (name.clone(), String::new(), attrs.clone()))
            .collect()
    };
    // The batch exporter sends every few seconds; a SIGTERM flushes what is left.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15)
        && !sent.iter().all(|tp| !parent_of(tp).is_empty())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(5)
        && !sent.iter().all(|tp| !parent_of(tp).is_empty())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for tp in &sent {
        let found = parent_of(tp);
        assert_eq!(
            found.len(),
            1,
            "one span of the marketo group in trace {} under {} (spans: {:?})",
            tp.trace_id_hex(),
            hex(&tp.span_id),
            spans.lock().unwrap()
        );
        let (name, _, attrs) = &found[0];
        assert_eq!(name, &format!("{topic} process"));
        let attr = |k: &str| {
            attrs
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            attr("messaging.destination.name")
                .and_then(|v| v["stringValue"].as_str().map(String::from)),
            Some(topic.clone())
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
