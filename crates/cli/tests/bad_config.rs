//! Bad configuration fails fast, on one line, naming the problem, and never leaks a secret.
//! These run without a broker: the unreachable one is a closed loopback port.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{l2f_command, run};

const SECRET: &str = "s3cr3t-Pa55w0rd-do-not-print";

/// Runs `l2f` with a config file; returns (exit code, stderr, elapsed).
fn l2f(config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2f.toml");
    std::fs::write(&path, config).unwrap();
    l2f_at(&path, args, env)
}

/// Runs `l2f` with the config file at `path`; returns (exit code, stderr, elapsed).
fn l2f_at(path: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, Duration) {
    let mut cmd = l2f_command("off");
    cmd.args(args)
        .arg("--config")
        .arg(path)
        .envs(env.iter().copied());
    let r = run(&mut cmd);
    (r.code, r.stderr, r.elapsed)
}

/// Every command that reads the hub's configuration.
const COMMANDS: [&[&str]; 6] = [
    &["run"],
    &["demo"],
    &["topics", "apply"],
    &["topics", "apply", "--dry-run"],
    &["dlq", "list"],
    &["dlq", "redrive", "--all"],
];

fn assert_one_line_error(code: i32, stderr: &str, elapsed: Duration, needles: &[&str]) {
    assert_ne!(code, 0, "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {stderr}");
    }
    assert!(!stderr.contains(SECRET), "secret leaked: {stderr}");
}

#[test]
fn unknown_key_is_named_once_with_its_section_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2f.toml");
    std::fs::write(&path, "[kafka]\nbootstrap_server = \"127.0.0.1:9092\"\n").unwrap();
    let (code, err, t) = l2f_at(&path, &["dlq", "list"], &[]);
    assert_one_line_error(code, &err, t, &[]);
    assert_eq!(
        err.trim(),
        format!(
            "error: configuration: kafka.bootstrap_server: unknown key; expected one of: bootstrap_servers, client_id, security_protocol, sasl, tls, connect_timeout, properties (in {})",
            path.display()
        )
    );
}

#[test]
fn every_command_refuses_a_typo_in_a_connector_section_with_the_same_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2f.toml");
    std::fs::write(
        &path,
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n[connectors.marketo]\nbase_url = \"http://127.0.0.1:1\"\nclient_id = \"c\"\nclient_secert = \"s\"\n",
    )
    .unwrap();
    let mut lines = Vec::new();
    for args in COMMANDS {
        let (code, err, t) = l2f_at(&path, args, &[]);
        assert_one_line_error(
            code,
            &err,
            t,
            &[
                "connectors.marketo.client_secert: unknown key",
                &path.display().to_string(),
            ],
        );
        lines.push((args.join(" "), err.trim().to_string()));
    }
    for (args, line) in &lines {
        assert_eq!(
            line, &lines[0].1,
            "`l2f {args}` differs from `l2f {}`",
            lines[0].0
        );
    }
}

#[test]
fn a_missing_file_is_named_with_its_key_and_the_config_file_not_the_working_directory() {
    // The tests run in the repository root, where deploy/topics.toml exists: a key that
    // resolved against the working directory would find it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2f.toml");
    std::fs::write(&path, "[topics]\ncatalog = \"deploy/topics.toml\"\n").unwrap();
    for args in COMMANDS {
        let (code, err, t) = l2f_at(&path, args, &[]);
        assert_one_line_error(
            code,
            &err,
            t,
            &[
                "topics.catalog",
                &dir.path().join("deploy/topics.toml").display().to_string(),
                &format!("(in {})", path.display()),
            ],
        );
    }
    std::fs::write(&path, "[rules]\ndir = \"no-such-rules\"\n").unwrap();
    let (code, err, t) = l2f_at(&path, &["run"], &[]);
    assert_one_line_error(code, &err, t, &["rules.dir", "no-such-rules", "l2f.toml"]);
}

#[test]
fn redrive_of_an_unknown_error_class_exits_non_zero_naming_it() {
    let (code, err, t) = l2f(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n",
        &["dlq", "redrive", "--all", "--error-class", "decode"],
        &[],
    );
    assert_one_line_error(code, &err, t, &["\"decode\"", "permanent or transient"]);
}

#[test]
fn a_kafka_spelling_mistake_lists_kafkas_spellings() {
    let (code, err, t) = l2f(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nsecurity_protocol = \"SASL_TLS\"\n",
        &["dlq", "list"],
        &[],
    );
    assert_one_line_error(
        code,
        &err,
        t,
        &[
            "kafka.security_protocol",
            "SASL_TLS",
            "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ],
    );
}

#[test]
fn unreachable_broker_is_named_within_ten_seconds() {
    let cfg = format!(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nconnect_timeout = \"3s\"\nsecurity_protocol = \"sasl_plaintext\"\n\
         [kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"l2f\"\npassword = \"{SECRET}\"\n"
    );
    let (code, err, t) = l2f(&cfg, &["topics", "apply"], &[]);
    assert_one_line_error(code, &err, t, &["127.0.0.1:1", "unreachable"]);
}

#[test]
fn missing_secret_variable_is_named() {
    let cfg = "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nsecurity_protocol = \"sasl_ssl\"\n\
               [kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"l2f\"\npassword = { env = \"L2F_TEST_UNSET_PASSWORD\" }\n";
    let (code, err, t) = l2f(cfg, &["dlq", "list"], &[]);
    assert_one_line_error(
        code,
        &err,
        t,
        &["L2F_TEST_UNSET_PASSWORD", "kafka.sasl.password"],
    );
}

#[test]
fn malformed_sasl_settings_are_named() {
    let cfg = format!(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nsecurity_protocol = \"sasl_ssl\"\n\
         [kafka.sasl]\nmechanism = \"SCRAM-SHA-1024\"\nusername = \"l2f\"\npassword = \"{SECRET}\"\n"
    );
    let (code, err, t) = l2f(&cfg, &["dlq", "list"], &[]);
    assert_one_line_error(code, &err, t, &["SCRAM-SHA-1024"]);
    // SASL protocol without credentials.
    let (code, err, t) = l2f(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nsecurity_protocol = \"sasl_ssl\"\n",
        &["dlq", "list"],
        &[],
    );
    assert_one_line_error(code, &err, t, &["kafka.sasl"]);
}

#[test]
fn environment_overrides_the_file_and_is_checked_too() {
    let (code, err, t) = l2f(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
        &["dlq", "list"],
        &[("L2F_KAFKA__BOOTSTRAP_SERVERS", "no-port-here")],
    );
    assert_one_line_error(
        code,
        &err,
        t,
        &[
            "no-port-here",
            "host:port",
            "from environment variable L2F_KAFKA__BOOTSTRAP_SERVERS",
        ],
    );
}

#[test]
fn a_salesforce_sandbox_paired_with_a_production_zuora_is_refused_naming_both_keys() {
    let sections = |sf: &str, zuora: &str| {
        format!(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n\
             [connectors.salesforce]\nlogin_url = \"{sf}\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             [connectors.zuora]\nbase_url = \"{zuora}\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        )
    };
    for (sf, zuora) in [
        ("https://test.salesforce.com", "https://rest.zuora.com"),
        (
            "https://login.salesforce.com",
            "https://rest.apisandbox.zuora.com",
        ),
    ] {
        let (code, err, t) = l2f(&sections(sf, zuora), &["run"], &[]);
        assert_ne!(code, 0);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("handbook rule 12"), "{err}");
        assert!(
            err.contains("connectors.salesforce.login_url")
                && err.contains("connectors.zuora.base_url"),
            "{err}"
        );
        assert!(err.contains(sf) && err.contains(zuora), "{err}");
        assert!(t < Duration::from_secs(10));
    }
    // A matching pair gets past the check (and then fails on the unreachable broker).
    let (code, err, _) = l2f(
        &sections(
            "https://test.salesforce.com",
            "https://rest.apisandbox.zuora.com",
        ),
        &["run"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        !err.contains("rule 12") && err.contains("unreachable"),
        "{err}"
    );
}

#[test]
fn a_mail_template_with_a_variable_not_provided_stops_the_start_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/templates/mail");
    let templates = dir.path().join("mail-templates");
    std::fs::create_dir(&templates).unwrap();
    for entry in std::fs::read_dir(shipped).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, templates.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        templates.join("license.html"),
        "<p>{{ license_id }} expires {{ expires_at }}</p>",
    )
    .unwrap();
    let path = dir.path().join("l2f.toml");
    // templates_dir is relative to the config file, not to the working directory.
    std::fs::write(
        &path,
        format!("[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n[connectors.mail]\nbase_url = \"http://127.0.0.1:1\"\ndomain = \"mg.example.com\"\napi_key = \"{SECRET}\"\nfrom = \"noreply@mg.example.com\"\ntemplates_dir = \"mail-templates\"\nreseller_notification_to = \"partners@example.com\"\n"),
    )
    .unwrap();
    for args in [&["run"][..], &["config", "check"]] {
        let (code, err, t) = l2f_at(&path, args, &[]);
        assert_one_line_error(
            code,
            &err,
            t,
            &[
                "connectors.mail.templates_dir",
                "template license.html",
                "variable expires_at",
            ],
        );
    }
}
