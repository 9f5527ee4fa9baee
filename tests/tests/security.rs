//! Client security settings against the real broker's SASL listener: every supported
//! mechanism authenticates and moves a record; a wrong password fails fast, naming the
//! cluster, without the password in the error; TLS verifies the broker against the configured CA.

use std::time::{Duration, Instant};

use l2f_bus::admin::check_reachable;
use l2f_bus::config::{
    KafkaConfig, SaslConfig, SaslMechanism, SecretRef, SecurityProtocol, TlsConfig,
};
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::Producer;
use l2f_e2e::{create_topic, sasl_bootstrap, unique};

fn sasl_config(bootstrap: &str, mechanism: SaslMechanism, password_var: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: Some(bootstrap.into()),
        security_protocol: SecurityProtocol::SaslPlaintext,
        sasl: Some(SaslConfig {
            mechanism,
            username: "l2f".into(),
            password: SecretRef::Env {
                env: password_var.into(),
            },
        }),
        connect_timeout: Duration::from_secs(5),
        ..KafkaConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sasl_mechanism_authenticates_and_moves_a_record() {
    let Some((sasl, password)) = sasl_bootstrap() else {
        return;
    };
    let plain = l2f_e2e::bootstrap().unwrap();
    // Each test uses its own variable, so parallel tests never see each other's value.
    std::env::set_var("L2F_TEST_SASL_PASSWORD_OK", &password);
    for mechanism in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let topic = unique("sasl");
        create_topic(&plain, &topic, 1).await;
        let cfg = sasl_config(&sasl, mechanism, "L2F_TEST_SASL_PASSWORD_OK");
        let client = cfg.client_config(&sasl).unwrap();
        check_reachable(&client, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}"));
        Producer::new(&client)
            .unwrap()
            .send(&OutRecord::new(&topic, "acct-1", format!("{mechanism:?}")))
            .await
            .unwrap_or_else(|e| panic!("{mechanism:?} produce: {e}"));
        let got = read_all(&client, &topic, Duration::from_secs(10)).unwrap();
        assert_eq!(got.len(), 1, "{mechanism:?}");
        assert_eq!(
            got[0].payload.as_deref(),
            Some(format!("{mechanism:?}").as_bytes())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_without_leaking_it() {
    let Some((sasl, _)) = sasl_bootstrap() else {
        return;
    };
    let wrong = "wrong-Pa55-never-printed";
    std::env::set_var("L2F_TEST_SASL_PASSWORD_WRONG", wrong);
    let cfg = sasl_config(
        &sasl,
        SaslMechanism::ScramSha512,
        "L2F_TEST_SASL_PASSWORD_WRONG",
    );
    let client = cfg.client_config(&sasl).unwrap();
    let start = Instant::now();
    let err = check_reachable(&client, cfg.connect_timeout)
        .unwrap_err()
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.contains(&sasl), "{err}");
    assert!(!err.contains(wrong), "password leaked: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_configured_ca_connects_and_a_foreign_ca_is_refused() {
    let Some((tls, ca)) = l2f_e2e::tls_bootstrap() else {
        return;
    };
    let plain = l2f_e2e::bootstrap().unwrap();
    let topic = unique("tls");
    create_topic(&plain, &topic, 1).await;
    let cfg = KafkaConfig {
        bootstrap_servers: Some(tls.clone()),
        security_protocol: SecurityProtocol::Ssl,
        tls: Some(TlsConfig {
            ca_location: Some(ca.into()),
            ..TlsConfig::default()
        }),
        ..KafkaConfig::default()
    };
    let client = cfg.client_config(&tls).unwrap();
    check_reachable(&client, Duration::from_secs(10)).unwrap();
    Producer::new(&client)
        .unwrap()
        .send(&OutRecord::new(&topic, "acct-1", "over TLS"))
        .await
        .unwrap();
    assert_eq!(
        read_all(&client, &topic, Duration::from_secs(10))
            .unwrap()
            .len(),
        1
    );

    // A CA that did not sign the broker's certificate: the handshake must fail.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the broker's CA",
            "-keyout",
        ])
        .arg(dir.path().join("k.pem"))
        .arg("-out")
        .arg(&other_ca)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let wrong = KafkaConfig {
        tls: Some(TlsConfig {
            ca_location: Some(other_ca),
            ..TlsConfig::default()
        }),
        connect_timeout: Duration::from_secs(4),
        ..cfg
    };
    let start = Instant::now();
    let err =
        check_reachable(&wrong.client_config(&tls).unwrap(), wrong.connect_timeout).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(err.to_string().contains(&tls), "{err}");
}
