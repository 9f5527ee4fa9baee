//! The `l2f` binary's Kafka commands against a real broker: `topics apply`, `dlq list`,
//! `dlq redrive` and `run`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{l2f_command, run};
use l2f_bus::dlq::DeadLetters;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{HandlerError, Producer, Record};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique};

fn l2f(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let r = run(l2f_command("warn").args(args).arg("--config").arg(config));
    (r.code, r.stdout, r.stderr)
}

fn config_file(dir: &tempfile::TempDir, bootstrap: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.path().join("l2f.toml");
    std::fs::write(
        &p,
        format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n{extra}"),
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_twice_then_drift_exit_codes() {
    let b = require_kafka!();
    let dir = tempfile::tempdir().unwrap();
    let t = unique("cli-cat");
    let catalog = dir.path().join("topics.toml");
    std::fs::write(
        &catalog,
        format!("[[topic]]\nname = \"{t}\"\npartitions = 2\nretention = \"1d\"\n"),
    )
    .unwrap();
    let cfg = config_file(
        &dir,
        &b,
        &format!(
            "[topics]\ncatalog = \"{}\"\nreplication_factor = 1\n",
            catalog.display()
        ),
    );
    let (code, out, err) = l2f(&cfg, &["topics", "apply", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        format!("would create {t} (partitions 2, replication 1)")
    );
    let (code, out, err) = l2f(&cfg, &["topics", "apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("created  {t} (partitions 2, replication 1)")),
        "a dry run created nothing: {out}"
    );
    let (code, out, _) = l2f(&cfg, &["topics", "apply"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("in sync  {t}")), "{out}");
    // The catalog now wants 3 partitions: drift reported, exit 2, nothing changed.
    std::fs::write(
        &catalog,
        format!("[[topic]]\nname = \"{t}\"\npartitions = 3\nretention = \"1d\"\n"),
    )
    .unwrap();
    let (code, out, _) = l2f(&cfg, &["topics", "apply"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("DRIFT") && out.contains("partitions 2 on the cluster, 3 in the catalog"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_and_redrive_by_position() {
    let b = require_kafka!();
    let src = unique("cli-src");
    let dlq_topic = unique("cli-dlq");
    create_topic(&b, &src, 1).await;
    create_topic(&b, &dlq_topic, 1).await;
    // Two dead letters, written as the loop writes them.
    let c = client(&b);
    let producer = Producer::new(&c).unwrap();
    let dl = DeadLetters::new(producer, &dlq_topic, "g-cli");
    for (i, why) in [
        "email: \"not-an-email\" is not an email address",
        "seats: 0 must be > 0",
    ]
    .iter()
    .enumerate()
    {
        let rec = Record {
            topic: src.clone(),
            partition: 0,
            offset: 40 + i as i64,
            key: Some(format!("acct-{i}").into_bytes()),
            payload: Some(format!("payload-{i}").into_bytes()),
            headers: vec![("l2f.event-type".into(), Some(b"OrderPlaced".to_vec()))],
            timestamp_ms: None,
        };
        dl.send(&rec, &HandlerError::permanent(*why), 1)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &b,
        &format!("[dead_letter]\ntopic = \"{dlq_topic}\"\n"),
    );
    let (code, out, err) = l2f(&cfg, &["dlq", "list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[1]["position"], "0:1");
    assert_eq!(lines[1]["error_message"], "seats: 0 must be > 0");
    assert_eq!(lines[1]["source_offset"], 41);
    assert_eq!(lines[1]["source_topic"], src.as_str());

    let (code, _, err) = l2f(&cfg, &["dlq", "redrive"]);
    assert_ne!(code, 0, "redrive without a selection must refuse");
    assert!(err.contains("--position"), "{err}");

    // A position no letter has, alone or beside one that exists: refused, nothing sent.
    for positions in [&["2:5"][..], &["0:1", "2:5"]] {
        let mut args = vec!["dlq", "redrive"];
        for p in positions {
            args.extend(["--position", p]);
        }
        let (code, out, err) = l2f(&cfg, &args);
        assert_ne!(code, 0, "{out}");
        assert!(
            err.contains("no dead letter at position 2:5") && err.contains("nothing redriven"),
            "{err}"
        );
    }
    // A selection that matches nothing says so.
    let (code, _, err) = l2f(&cfg, &["dlq", "redrive", "--all", "--source-topic", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("--source-topic nope"), "{err}");
    assert!(read_all(&c, &src, Duration::from_secs(5))
        .unwrap()
        .is_empty());

    let position = lines[1]["position"].as_str().unwrap();
    let (code, out, err) = l2f(&cfg, &["dlq", "redrive", "--position", position]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("redrove 1"), "{out}");
    let back = read_all(&c, &src, Duration::from_secs(10)).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].key.as_deref(), Some(&b"acct-1"[..]));
    assert_eq!(back[0].payload.as_deref(), Some(&b"payload-1"[..]));
    assert_eq!(back[0].header_str("l2f.event-type"), Some("OrderPlaced"));
    assert_eq!(back[0].header_str("l2f.redrive-count"), Some("1"));
    assert!(back[0].header("l2f.dlq.error-message").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_topics_writes_the_audit_log_serves_metrics_and_stops_on_sigterm() {
    let b = require_kafka!();
    let topic = unique("cli-run");
    let dlq_topic = unique("cli-run-dlq");
    create_topic(&b, &topic, 2).await;
    create_topic(&b, &dlq_topic, 1).await;
    let records: Vec<OutRecord> = (0..20)
        .map(|i| {
            OutRecord::new(&topic, format!("lead-{i}"), "{}")
                .with_header("l2f.event-type", "LeadCaptured")
        })
        .collect();
    produce(&b, &records).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config_file(
        &dir,
        &b,
        &format!("[dead_letter]\ntopic = \"{dlq_topic}\"\n[ops]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let group = unique("g-run");
    let mut child = l2f_command("warn")
        .args(["run", "--topics", &topic, "--group", &group, "--audit-out"])
        .arg(&audit)
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let start = Instant::now();
    while lines() < 20 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let plain = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let plain = plain.text().await.unwrap();
    assert!(!plain.contains("# EOF"), "{plain}");
    assert!(
        plain.contains("# TYPE l2f_records_handled_total counter"),
        "{plain}"
    );
    let open = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let metrics = open.text().await.unwrap();
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "l2f_records_handled_total{{connector=\"audit\",group=\"{group}\"}} 20"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "l2f_dead_letters_total{{connector=\"audit\",group=\"{group}\"}} 0"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "l2f_records_in_memory{{connector=\"audit\",group=\"{group}\"}} 0"
        )),
        "{metrics}"
    );
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "l2f run exits 0 on SIGTERM: {status:?}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(text.lines().count(), 20, "{text}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_type"], "LeadCaptured");
    assert_eq!(first["trace_id"].as_str().map(str::len), Some(32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_the_configured_marketo_connector() {
    use l2f_connector_kit::record::event_record;
    use l2f_contracts::{examples, Codec};
    use l2f_mocks::server::{self, MocksConfig};

    let b = require_kafka!();
    let mut mc = MocksConfig::default();
    mc.only(&["marketo".to_string()]).unwrap();
    mc.without_https();
    let mocks = server::start(&mc).await.unwrap();
    let base = mocks.endpoint("marketo").unwrap().http.clone();

    let topic = unique("cli-leads");
    let dlq_topic = unique("cli-leads-dlq");
    create_topic(&b, &topic, 2).await;
    create_topic(&b, &dlq_topic, 1).await;
    let codec = Codec::new();
    let records: Vec<OutRecord> = (0..4)
        .map(|i| {
            let mut lead = examples::lead_captured();
            lead.lead_id = format!("lead-{i}");
            lead.email = format!("buyer{i}@example.com");
            if i == 2 {
                lead.company = None; // not ready for Marketo (handbook rule 2)
            }
            event_record(&codec, &topic, &lead, None).unwrap()
        })
        .collect();
    produce(&b, &records).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let group = unique("g-cli-marketo");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &b,
        &format!(
            "[dead_letter]\ntopic = \"{dlq_topic}\"\n[ops]\nlisten = \"127.0.0.1:{port}\"\n\
             [connectors.marketo]\nbase_url = \"{base}\"\nclient_id = \"l2f-marketo-client\"\n\
             client_secret = {{ env = \"L2F_TEST_MARKETO_SECRET\" }}\ntopic = \"{topic}\"\ngroup = \"{group}\"\n"
        ),
    );
    let mut child = l2f_command("warn")
        .args([
            "run",
            "--topics",
            &topic,
            "--group",
            &unique("g-audit"),
            "--audit-out",
            "/dev/null",
            "--config",
        ])
        .arg(&cfg)
        .env("L2F_TEST_MARKETO_SECRET", "l2f-marketo-secret")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let handled = format!("l2f_records_handled_total{{connector=\"marketo\",group=\"{group}\"}} 3");
    let dead = format!("l2f_dead_letters_total{{connector=\"marketo\",group=\"{group}\"}} 1");
    let start = Instant::now();
    let mut metrics = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            metrics = r.text().await.unwrap_or_default();
            if metrics.contains(&handled) && metrics.contains(&dead) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        metrics.contains(&handled) && metrics.contains(&dead),
        "{metrics}"
    );
    let letters = read_all(&client(&b), &dlq_topic, Duration::from_secs(10)).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key.as_deref(), Some(&b"lead-2"[..]));
    assert!(letters[0]
        .header_str("l2f.dlq.error-message")
        .unwrap()
        .contains("company"));
}

#[test]
fn an_unknown_connector_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        "127.0.0.1:1",
        "[connectors.hubspot]\nbase_url = \"x\"\n",
    );
    let (code, _, err) = l2f(&cfg, &["run"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("connectors.hubspot: no such connector"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_brokers_names_the_fix_and_creates_nothing() {
    let b = require_kafka!();
    let dir = tempfile::tempdir().unwrap();
    let t = unique("cli-rf");
    std::fs::write(
        dir.path().join("topics.toml"),
        format!("[[topic]]\nname = \"{t}\"\npartitions = 1\nreplication_factor = 3\n"),
    )
    .unwrap();
    let cfg = config_file(&dir, &b, "[topics]\ncatalog = \"topics.toml\"\n");
    for args in [&["topics", "apply"][..], &["topics", "apply", "--dry-run"]] {
        let (code, out, err) = l2f(&cfg, args);
        assert_ne!(code, 0, "{out}");
        let line = err.trim();
        assert!(!line.contains('\n') && line.starts_with("error: "), "{err}");
        assert!(
            !line.contains("configuration:"),
            "not a configuration error: {err}"
        );
        assert!(
            line.contains(&t)
                && line.contains("replication factor 3")
                && line.contains("--replication-factor 1")
                && line.contains("topics.replication_factor"),
            "{err}"
        );
    }
    let (code, out, err) = l2f(&cfg, &["topics", "apply", "--replication-factor", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("created  {t}")), "{out}");
}

/// Writes `text` to `dir/name`, creating `dir`.
fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_binary_run_elsewhere_reads_paths_relative_to_its_config_file() {
    let b = require_kafka!();
    let Some((tls, ca)) = l2f_e2e::tls_bootstrap() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // Installed: the binary alone in a bin directory, no repository anywhere near.
    let bin = root.path().join("bin/l2f");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_l2f"), &bin).unwrap();
    let etc = root.path().join("etc/l2f");
    let cwd = root.path().join("somewhere/else");
    std::fs::create_dir_all(&cwd).unwrap();
    let t = unique("cli-installed");
    write(
        &etc,
        "topics.toml",
        &format!("[[topic]]\nname = \"{t}\"\npartitions = 1\nreplication_factor = 1\n"),
    );
    std::fs::copy(&ca, etc.join("kafka-ca.pem")).unwrap();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rules");
    for entry in std::fs::read_dir(rules).unwrap() {
        let p = entry.unwrap().path();
        std::fs::create_dir_all(etc.join("rules")).unwrap();
        std::fs::copy(&p, etc.join("rules").join(p.file_name().unwrap())).unwrap();
    }
    write(
        &etc,
        "l2f.toml",
        &format!(
            "[kafka]\nbootstrap_servers = \"{tls}\"\nsecurity_protocol = \"SSL\"\n\
             [kafka.tls]\nca_location = \"kafka-ca.pem\"\n\
             [topics]\ncatalog = \"topics.toml\"\n[rules]\ndir = \"rules\"\n"
        ),
    );
    let installed = |args: &[&str], config: &std::path::Path| {
        run(Command::new(&bin)
            .args(args)
            .arg("--config")
            .arg(config)
            .env_remove("L2F_CONFIG")
            .env("RUST_LOG", "off")
            .current_dir(&cwd))
    };
    let r = installed(&["topics", "apply"], &etc.join("l2f.toml"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("created  {t}")), "{}", r.stdout);
    let r = installed(&["dlq", "list", "--topic", &t], &etc.join("l2f.toml"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    // No catalog or rules key: the ones built into the binary.
    write(
        &etc,
        "plain.toml",
        &format!("[kafka]\nbootstrap_servers = \"{b}\"\nsecurity_protocol = \"PLAINTEXT\"\n"),
    );
    let r = installed(
        &["topics", "apply", "--dry-run", "--replication-factor", "1"],
        &etc.join("plain.toml"),
    );
    // Other tests may have made `leads` differently on the shared broker: in sync, missing
    // or drifted, every built-in topic is reported.
    assert!(r.code == 0 || r.code == 2, "{}{}", r.stdout, r.stderr);
    for topic in ["leads", "orders", "dead-letters"] {
        assert!(
            r.stdout.lines().any(|l| l
                .split_whitespace()
                .any(|w| w == topic || w == format!("{topic}:"))),
            "{topic} missing: {}",
            r.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_spelling_of_sasl_settings_connects_with_a_password_file_beside_the_config() {
    let _ = require_kafka!();
    let Some((sasl, password)) = l2f_e2e::sasl_bootstrap() else {
        return;
    };
    let t = unique("cli-sasl");
    create_topic(&l2f_e2e::bootstrap().unwrap(), &t, 1).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("secrets"),
        "kafka-password",
        &format!("{password}\n"),
    );
    write(
        dir.path(),
        "l2f.toml",
        &format!(
            "[kafka]\nbootstrap_servers = \"{sasl}\"\nsecurity_protocol = \"SASL_PLAINTEXT\"\n\
             [kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"l2f\"\npassword = {{ file = \"secrets/kafka-password\" }}\n"
        ),
    );
    let (code, out, err) = l2f(
        &dir.path().join("l2f.toml"),
        &["dlq", "list", "--topic", &t],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains(&password), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_create_missing_creates_the_catalogs_topics_first() {
    let b = require_kafka!();
    let dir = tempfile::tempdir().unwrap();
    let (events, dlq) = (unique("cm-events"), unique("cm-dlq"));
    std::fs::write(
        dir.path().join("topics.toml"),
        format!("[[topic]]\nname = \"{events}\"\npartitions = 2\n[[topic]]\nname = \"{dlq}\"\npartitions = 1\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config_file(
        &dir,
        &b,
        &format!(
            "[topics]\ncatalog = \"topics.toml\"\nreplication_factor = 1\ncreate_missing = true\n\
             [dead_letter]\ntopic = \"{dlq}\"\n[ops]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let mut child = l2f_command("warn")
        .args([
            "run",
            "--group",
            &unique("g-cm"),
            "--audit-out",
            "/dev/null",
            "--config",
        ])
        .arg(&cfg)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..150 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(ready, "l2f run never became ready");
    let marks = l2f_bus::admin::watermarks(&client(&b), &events, Duration::from_secs(10)).unwrap();
    assert_eq!(
        marks.len(),
        2,
        "the catalog's topic was created with its partitions"
    );
}
