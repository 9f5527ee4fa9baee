//! Bad configuration fails fast, on one line, naming the problem, and never leaks a secret.
//! These run without a broker: the unreachable one is a closed loopback port.

mod common;

use std::time::Duration;

use common::{l2f_command, run};

const SECRET: &str = "s3cr3t-Pa55w0rd-do-not-print";

/// Runs `l2f` with a config file; returns (exit code, stderr, elapsed).
fn l2f(config: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l2f.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = l2f_command("off");
    cmd.args(args)
        .arg("--config")
        .arg(&path)
        .envs(env.iter().copied());
    let r = run(&mut cmd);
    (r.code, r.stderr, r.elapsed)
}

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
fn unknown_key_is_named() {
    let (code, err, t) = l2f(
        "[kafka]\nbootstrap_server = \"127.0.0.1:9092\"\n",
        &["dlq", "list"],
        &[],
    );
    assert_one_line_error(code, &err, t, &["bootstrap_server"]);
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
    assert_one_line_error(code, &err, t, &["no-port-here", "host:port"]);
}
