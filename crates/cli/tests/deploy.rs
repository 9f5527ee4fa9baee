//! Checks of what `deploy/compose` and `deploy/k8s` ship, without a Docker engine or a
//! Kubernetes cluster: the files parse, every image and mounted file exists, every
//! configuration loads with the hub's own loader (`l2f config check`, secrets from the
//! environment the manifests give it), every probe path and port is one a running hub really
//! serves (`l2f run` on the embedded broker, asked over HTTP), the scrape target is the hub's
//! `ops.listen`, every secret comes from a Secret that deploy/k8s/README.md declares, and the
//! Strimzi topics are exactly `l2f topics export`'s output.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{l2f_command, run};
use serde_yaml::Value;

/// The four connectors deploy/k8s runs, one Deployment each.
const CONNECTORS: [&str; 4] = ["customers", "salesforce", "zuora", "marketo"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every document of a YAML file, merge keys (`<<: *anchor`) applied.
fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            v.apply_merge().unwrap();
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|x| match x {
            Value::Number(n) => n.to_string(),
            other => s(other).to_string(),
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// `http://host:port/path` → (host, port, path).
fn split_url(url: &str) -> (String, u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not http: {url}"));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap(), format!("/{path}"))
}

/// The status of `GET path` on `addr`, or `None` if nothing answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    stream.read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (by its own pid) when the test is done with it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a real hub answers on each of `paths`: `l2f run` on the embedded broker with
/// `ops.listen` on a free loopback port, asked once it is ready.
fn hub_answers(paths: &BTreeSet<String>) -> BTreeMap<String, u16> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("l2f.toml");
    std::fs::write(&cfg, format!("[ops]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let child = l2f_command("warn")
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--audit-out")
        .arg(dir.path().join("audit.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _hub = Running(child);
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while http_status(&addr, "/readyz") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the hub never became ready on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    paths
        .iter()
        .map(|p| (p.clone(), http_status(&addr, p).unwrap_or(0)))
        .collect()
}

/// Asserts each path is served (200) by the hub, and that a path it does not serve is not
/// (so the check can fail).
fn assert_hub_serves(paths: BTreeSet<String>) {
    let mut asked = paths.clone();
    asked.insert("/no-such-path".into());
    let answers = hub_answers(&asked);
    assert_eq!(answers["/no-such-path"], 404, "{answers:?}");
    for p in &paths {
        assert_eq!(answers[p], 200, "the hub does not serve {p}: {answers:?}");
    }
}

/// `l2f config check --config FILE` with exactly these extra variables (no L2F_* settings
/// inherited): the summary, or the one-line error.
fn config_check(file: &Path, env: &BTreeMap<String, String>) -> Result<serde_json::Value, String> {
    let mut cmd = l2f_command("warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("L2F_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env)
        .args(["config", "check", "--config"])
        .arg(file);
    let ran = run(&mut cmd);
    if ran.code == 0 {
        Ok(serde_json::from_str(&ran.stdout).expect("config check prints JSON"))
    } else {
        Err(ran.stderr.trim().to_string())
    }
}

/// Every `{ env = "VAR" }` (a secret from the environment) in a configuration, with its key.
fn env_secrets(table: &toml::Table, at: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        if let toml::Value::Table(t) = v {
            match (t.len(), t.get("env")) {
                (1, Some(toml::Value::String(var))) => out.push((key, var.clone())),
                _ => env_secrets(t, &key, out),
            }
        }
    }
}

/// Keys that hold a credential must name where it comes from, never hold it.
fn assert_no_inline_secret(table: &toml::Table, at: &str) {
    const SECRET_KEYS: &[&str] = &[
        "password",
        "client_secret",
        "api_token",
        "callout_password",
        "key_password",
        "token",
        "secret",
    ];
    for (k, v) in table {
        let key = format!("{at}.{k}");
        match v {
            toml::Value::String(_) if SECRET_KEYS.contains(&k.as_str()) => {
                panic!("{key} is written inline: use {{ env = \"VAR\" }} or {{ file = \"PATH\" }}")
            }
            toml::Value::Table(t) => assert_no_inline_secret(t, &key),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// deploy/compose

fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

fn compose() -> Value {
    let mut docs = yaml_docs(&compose_dir().join("compose.yaml"));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn services(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (s(k).to_string(), v.clone()))
        .collect()
}

fn service<'a>(services: &'a [(String, Value)], name: &str) -> &'a Value {
    &services
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no service {name}"))
        .1
}

/// `./file:/in/container[:ro]` bind mounts of a service: (host path, container path).
fn bind_mounts(svc: &Value) -> Vec<(PathBuf, String)> {
    svc["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let spec = s(v);
            let mut parts = spec.split(':');
            let host = parts.next()?;
            let inside = parts.next()?;
            host.starts_with('.')
                .then(|| (compose_dir().join(host), inside.to_string()))
        })
        .collect()
}

/// The environment a compose service's process gets.
fn compose_env(svc: &Value) -> BTreeMap<String, String> {
    svc["environment"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let value = match v {
                Value::String(x) => x.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            (s(k).to_string(), value)
        })
        .collect()
}

/// The host file a service sees at `inside`.
fn mounted(svc: &Value, inside: &str) -> PathBuf {
    bind_mounts(svc)
        .into_iter()
        .find(|(_, i)| i == inside)
        .map(|(h, _)| h)
        .unwrap_or_else(|| panic!("nothing mounted at {inside}"))
}

/// The value after `flag` in a command line.
fn flag<'a>(cmd: &'a [String], flag: &str) -> &'a str {
    let i = cmd
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {cmd:?}"));
    &cmd[i + 1]
}

/// The compose hub: its service, its configuration file and `config check`'s summary of it.
fn compose_hub(services: &[(String, Value)]) -> (Value, PathBuf, serde_json::Value) {
    let hub = service(services, "hub").clone();
    let cmd = strings(&hub["command"]);
    assert_eq!(cmd[0], "run", "the hub runs `l2f run`: {cmd:?}");
    let file = mounted(&hub, flag(&cmd, "--config"));
    let summary = config_check(&file, &compose_env(&hub))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (hub, file, summary)
}

#[test]
fn every_compose_service_names_an_image_or_a_build_and_its_mounts_exist() {
    let compose = compose();
    let services = services(&compose);
    for want in [
        "kafka",
        "topics",
        "hub",
        "mocks",
        "otel-collector",
        "prometheus",
    ] {
        assert!(services.iter().any(|(n, _)| n == want), "no {want} service");
    }
    for (name, svc) in &services {
        let image = svc["image"].as_str();
        let build = &svc["build"];
        assert!(
            image.is_some() || !build.is_null(),
            "{name} has neither an image nor a build"
        );
        if let Some(image) = image {
            assert!(image.contains(':'), "{name}: pin the image's tag: {image}");
        }
        if !build.is_null() {
            let context = compose_dir().join(s(&build["context"]));
            let dockerfile = context.join(s(&build["dockerfile"]));
            assert!(
                context.join("Cargo.toml").is_file(),
                "{name}: build context"
            );
            assert!(dockerfile.is_file(), "{name}: {}", dockerfile.display());
            let ignore = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
            assert!(
                std::fs::read_to_string(&ignore).unwrap().contains("target"),
                "{name}: the build context leaves out target/"
            );
        }
        for (host, inside) in bind_mounts(svc) {
            assert!(
                host.exists(),
                "{name} mounts {} at {inside}, which does not exist",
                host.display()
            );
        }
    }
    let kafka = service(&services, "kafka");
    let image = s(&kafka["image"]);
    assert!(
        image.starts_with("apache/kafka:4."),
        "Apache Kafka's own image, 4.x: {image}"
    );
    let env = compose_env(kafka);
    assert!(
        env["KAFKA_PROCESS_ROLES"].contains("controller"),
        "KRaft: the node is its own controller"
    );
    assert!(!env.keys().any(|k| k.contains("ZOOKEEPER")));
    // The sources commit in transactions: one broker must accept a transaction state log of one.
    assert_eq!(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"], "1");
    assert_eq!(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], "1");
}

#[test]
fn the_compose_hub_config_loads_and_its_probes_scrape_target_kafka_and_mocks_are_its_own() {
    let compose = compose();
    let services = services(&compose);
    let (hub, file, summary) = compose_hub(&services);
    let ops = summary["ops_listen"].as_str().expect("ops.listen is set");
    let ops_port = port_of(ops);

    // Kafka: the hub's bootstrap servers are an advertised listener of the kafka service.
    let bootstrap = summary["kafka"]["bootstrap_servers"].as_str().unwrap();
    let kafka_env = compose_env(service(&services, "kafka"));
    assert!(
        kafka_env["KAFKA_ADVERTISED_LISTENERS"].contains(&format!("://{bootstrap}")),
        "{bootstrap} is not advertised: {}",
        kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    );
    // The topics exist before the hub starts: created from the same configuration.
    let topics = service(&services, "topics");
    let cmd = strings(&topics["command"]);
    assert_eq!(&cmd[..2], ["topics", "apply"]);
    assert_eq!(mounted(topics, flag(&cmd, "--config")), file);
    assert_eq!(
        s(&hub["depends_on"]["topics"]["condition"]),
        "service_completed_successfully"
    );
    config_check(&file, &compose_env(topics)).expect("the topics service has the secrets too");

    // The mocks serve loopback only: the hub shares their network namespace, which publishes
    // the hub's ops port and carries the name Prometheus scrapes.
    let netns = s(&hub["network_mode"])
        .strip_prefix("service:")
        .expect("the hub joins another service's network namespace")
        .to_string();
    let mocks = service(&services, &netns);
    let mocks_cmd = strings(&mocks["command"]);
    assert_eq!(mocks_cmd[0], "mocks");
    let base: u16 = flag(&mocks_cmd, "--port-base").parse().unwrap();
    for e in summary["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["endpoints"].as_array().unwrap())
    {
        let app = e["app"].as_str().unwrap();
        let i = l2f_mocks::server::APPS
            .iter()
            .position(|a| *a == app)
            .unwrap_or_else(|| panic!("no mock for {app}"));
        let (host, port, _) = split_url(e["url"].as_str().unwrap());
        assert_eq!(
            (host.as_str(), port),
            ("127.0.0.1", base + i as u16),
            "{} = {} is not where `l2f mocks --port-base {base}` serves {app}",
            e["key"],
            e["url"]
        );
    }
    // With --port-base, the Zuora mock posts its callouts to base+100 with its test user:
    // the hub's callout listener is there, in the same network namespace.
    let cfg: toml::Table = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    let zuora = &cfg["connectors"]["zuora"];
    assert_eq!(
        port_of(zuora["callout_listen"].as_str().unwrap()),
        base + l2f_mocks::server::CALLOUT_PORT_OFFSET
    );
    assert_eq!(
        zuora["callout_username"].as_str(),
        Some(l2f_mocks::server::CALLOUT_USERNAME)
    );
    let var = zuora["callout_password"]["env"].as_str().unwrap();
    assert_eq!(compose_env(&hub)[var], l2f_mocks::server::CALLOUT_PASSWORD);
    let published: Vec<u16> = strings(&mocks["ports"])
        .iter()
        .map(|p| p.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        published.contains(&ops_port),
        "ops port {ops_port} not published: {published:?}"
    );
    let aliases = strings(&mocks["networks"]["default"]["aliases"]);

    // The hub's health check asks the hub's readiness on its ops port.
    let check = strings(&hub["healthcheck"]["test"]);
    let url = check.iter().find(|a| a.starts_with("http://")).unwrap();
    let (_, port, ready_path) = split_url(url);
    assert_eq!(port, ops_port, "{url}");
    assert_eq!(ready_path, "/readyz");

    // Prometheus scrapes the hub's ops.listen, by the name its namespace has.
    let prometheus = service(&services, "prometheus");
    let pcmd = strings(&prometheus["command"]);
    let pconf = mounted(
        prometheus,
        pcmd[0]
            .strip_prefix("--config.file=")
            .expect("--config.file"),
    );
    let pdoc = yaml_docs(&pconf).remove(0);
    let job = pdoc["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "l2f")
        .expect("an l2f scrape job");
    let metrics_path = job["metrics_path"]
        .as_str()
        .unwrap_or("/metrics")
        .to_string();
    let targets = strings(&job["static_configs"][0]["targets"]);
    assert_eq!(targets.len(), 1);
    let (host, port) = targets[0].rsplit_once(':').unwrap();
    assert_eq!(
        port.parse::<u16>().unwrap(),
        ops_port,
        "scrape port ≠ ops.listen"
    );
    assert!(
        aliases.iter().any(|a| a == host) || host == netns,
        "{host} does not name the hub's network namespace ({netns}, aliases {aliases:?})"
    );
    // Its rule files are the mounted alert rules.
    let rules_glob = strings(&pdoc["rule_files"]);
    let mounted_rules = bind_mounts(prometheus)
        .into_iter()
        .find(|(_, inside)| inside.starts_with(rules_glob[0].trim_end_matches("*.yaml")))
        .expect("the alert rules are mounted where rule_files looks");
    assert!(mounted_rules.0.ends_with("observability/alerts.yaml"));

    // The collector listens where the hub is told to send OTLP.
    let endpoint = &compose_env(&hub)["OTEL_EXPORTER_OTLP_ENDPOINT"];
    let (otel_host, otel_port, _) = split_url(endpoint);
    let otel = service(&services, &otel_host);
    let ocmd = strings(&otel["command"]);
    let oconf = mounted(otel, ocmd[0].strip_prefix("--config=").unwrap());
    let odoc = yaml_docs(&oconf).remove(0);
    let grpc = s(&odoc["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]);
    assert_eq!(port_of(grpc), otel_port);
    for (name, pipeline) in odoc["service"]["pipelines"].as_mapping().unwrap() {
        for (kind, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for c in strings(&pipeline[kind]) {
                assert!(
                    odoc[section].get(c.as_str()).is_some(),
                    "pipeline {name:?} names {kind} {c}, which is not defined"
                );
            }
        }
    }

    // The mocks' health check is a path the mocks serve, on Marketo's port.
    let mcheck = strings(&mocks["healthcheck"]["test"]);
    let murl = mcheck.iter().find(|a| a.starts_with("http://")).unwrap();
    let (_, mport, mpath) = split_url(murl);
    let marketo = l2f_mocks::server::APPS
        .iter()
        .position(|a| *a == "marketo")
        .unwrap();
    assert_eq!(mport, base + marketo as u16);
    assert_eq!(mock_answers("marketo", &mpath), 200, "{murl}");

    // And the paths are the hub's own.
    assert_hub_serves([ready_path, metrics_path, "/healthz".to_string()].into());
}

/// What `l2f mocks --only APP` (free ports) answers on `path`.
fn mock_answers(app: &str, path: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("endpoints.json");
    let child = l2f_command("warn")
        .args(["mocks", "--only", app, "--endpoints-file"])
        .arg(&endpoints)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _mocks = Running(child);
    let start = Instant::now();
    let list: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&endpoints) {
            if let Ok(v) = serde_json::from_str(&text) {
                break v;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "mocks never listed endpoints"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let http = list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["app"] == app)
        .unwrap()["http"]
        .as_str()
        .unwrap()
        .to_string();
    let (host, port, _) = split_url(&format!("{http}/"));
    http_status(&format!("{host}:{port}"), path).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// deploy/k8s

fn k8s_dir() -> PathBuf {
    repo().join("deploy/k8s")
}

/// Every resource of deploy/k8s, with the file it is in.
fn k8s_resources() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(k8s_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") && !path.ends_with("kustomization.yaml") {
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            for doc in yaml_docs(&path) {
                out.push((file.clone(), doc));
            }
        }
    }
    out
}

fn resource<'a>(all: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &all.iter()
        .find(|(_, r)| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

/// A connector's Deployment, its container and its configuration (parsed).
struct Deployed<'a> {
    deployment: &'a Value,
    container: &'a Value,
    config_text: String,
    config: toml::Table,
    config_arg: String,
}

fn deployed<'a>(all: &'a [(String, Value)], connector: &str) -> Deployed<'a> {
    let name = format!("l2f-{connector}");
    let deployment = resource(all, "Deployment", &name);
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1, "{name}: one container");
    let container = &containers[0];
    let args = strings(&container["args"]);
    assert_eq!(args[0], "run", "{name}: runs `l2f run`");
    let config_arg = flag(&args, "--config").to_string();
    let (dir, file) = config_arg.rsplit_once('/').unwrap();
    // The config file comes from this connector's ConfigMap, projected at the file's directory.
    let (volume, _) = mount_of(deployment, container, dir);
    let cm_name = volume["projected"]["sources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|src| {
            let cm = &src["configMap"];
            (!cm.is_null()).then(|| {
                let item = cm["items"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .find(|i| i["path"] == file)
                    .unwrap_or_else(|| panic!("{name}: {file} not projected"));
                (s(&cm["name"]).to_string(), s(&item["key"]).to_string())
            })
        })
        .unwrap_or_else(|| panic!("{name}: no ConfigMap in its config volume"));
    let cm = resource(all, "ConfigMap", &cm_name.0);
    let config_text = s(&cm["data"][cm_name.1.as_str()]).to_string();
    let config: toml::Table = config_text
        .parse()
        .unwrap_or_else(|e| panic!("{name}: its l2f.toml is not TOML: {e}"));
    Deployed {
        deployment,
        container,
        config_text,
        config,
        config_arg,
    }
}

/// The pod volume mounted at `dir` in `container`, and the mount.
fn mount_of<'a>(deployment: &'a Value, container: &'a Value, dir: &str) -> (&'a Value, &'a Value) {
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {:?}", mount["name"]));
    (volume, mount)
}

/// The container port a probe or Service names (by name or number).
fn container_port(container: &Value, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
            .as_u64()
            .unwrap() as u16,
        other => panic!("a port is a name or a number: {other:?}"),
    }
}

/// (Secret, key) pairs declared in deploy/k8s/README.md's table.
fn readme_secrets() -> BTreeSet<(String, String)> {
    std::fs::read_to_string(k8s_dir().join("README.md"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | `secret` | `key` | ...
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let key = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), key.to_string()))
        })
        .collect()
}

#[test]
fn the_k8s_manifests_parse_and_the_kustomization_lists_every_file() {
    let all = k8s_resources();
    for (file, r) in &all {
        for field in ["apiVersion", "kind"] {
            assert!(
                r[field].as_str().is_some(),
                "{file}: a document without {field}"
            );
        }
        assert!(
            r["metadata"]["name"].as_str().is_some(),
            "{file}: a resource without a name"
        );
        if r["kind"] != "Namespace" {
            assert_eq!(
                r["metadata"]["namespace"], "l2f",
                "{file}: {:?}",
                r["metadata"]
            );
        }
    }
    let kustomization = yaml_docs(&k8s_dir().join("kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = all.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(
        listed, files,
        "kustomization.yaml resources ≠ the files of deploy/k8s"
    );
}

#[test]
fn the_k8s_topics_are_the_export_of_the_catalog() {
    let ran = run(l2f_command("warn").args([
        "topics",
        "export",
        "--format",
        "strimzi",
        "--namespace",
        "l2f",
        "--cluster",
        "l2f",
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let shipped = std::fs::read_to_string(k8s_dir().join("topics.yaml")).unwrap();
    assert!(
        shipped == ran.stdout,
        "deploy/k8s/topics.yaml is not what the catalog exports now: regenerate it with\n  l2f topics export --format strimzi --namespace l2f --cluster l2f > deploy/k8s/topics.yaml"
    );
    // The KafkaTopics belong to the cluster the KafkaUser and the bootstrap address name.
    let all = k8s_resources();
    let user = resource(&all, "KafkaUser", "l2f");
    assert_eq!(user["metadata"]["labels"]["strimzi.io/cluster"], "l2f");
    let json = run(l2f_command("warn").args(["topics", "export", "--format", "json"]));
    let catalog: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    let topics: Vec<&Value> = all
        .iter()
        .filter(|(f, _)| f == "topics.yaml")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(topics.len(), catalog.len());
    for (t, c) in topics.iter().zip(&catalog) {
        assert_eq!(t["metadata"]["name"], c["name"].as_str().unwrap());
        assert_eq!(t["metadata"]["labels"]["strimzi.io/cluster"], "l2f");
    }
}

#[test]
fn each_connector_is_a_deployment_of_two_with_its_own_config_probes_and_resources() {
    let all = k8s_resources();
    let mut probe_paths = BTreeSet::new();
    for c in CONNECTORS {
        let d = deployed(&all, c);
        let name = format!("l2f-{c}");
        assert_eq!(d.deployment["spec"]["replicas"], 2, "{name}");
        let selector = d.deployment["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .unwrap();
        let labels = &d.deployment["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(&labels[s(k)], v, "{name}: the selector matches its pods");
        }
        // Only this connector's section.
        let sections: Vec<&String> = d.config["connectors"]
            .as_table()
            .expect("[connectors]")
            .keys()
            .collect();
        assert_eq!(sections, [c], "{name}: only its own connector section");
        // Probes: the hub's paths on the hub's ops.listen port.
        let ops = d.config["ops"]["listen"].as_str().expect("ops.listen");
        for (probe, want) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            let get = &d.container[probe]["httpGet"];
            assert_eq!(s(&get["path"]), want, "{name}: {probe}");
            assert_eq!(
                container_port(d.container, &get["port"]),
                port_of(ops),
                "{name}: {probe} is not on ops.listen ({ops})"
            );
            probe_paths.insert(want.to_string());
        }
        let annotations = &d.deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            s(&annotations["prometheus.io/port"])
                .parse::<u16>()
                .unwrap(),
            port_of(ops)
        );
        probe_paths.insert(s(&annotations["prometheus.io/path"]).to_string());
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                assert!(
                    !d.container["resources"][kind][r].is_null(),
                    "{name}: no {kind}.{r}"
                );
            }
        }
        let pdb = resource(&all, "PodDisruptionBudget", &name);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"].as_mapping().unwrap(),
            selector
        );
    }
    assert_hub_serves(probe_paths);
}

#[test]
fn every_configmap_loads_with_the_hubs_loader() {
    let all = k8s_resources();
    for c in CONNECTORS {
        let d = deployed(&all, c);
        let name = format!("l2f-{c}");
        // The pod's view of its config directory: the projected ConfigMap and Secret items.
        let root = tempfile::tempdir().unwrap();
        let (dir, file) = d.config_arg.rsplit_once('/').unwrap();
        let (volume, _) = mount_of(d.deployment, d.container, dir);
        for src in volume["projected"]["sources"].as_sequence().unwrap() {
            for (kind, data) in [("configMap", true), ("secret", false)] {
                let source = &src[kind];
                if source.is_null() {
                    continue;
                }
                for item in source["items"].as_sequence().unwrap() {
                    let text = if data {
                        let cm = resource(&all, "ConfigMap", s(&source["name"]));
                        s(&cm["data"][s(&item["key"])]).to_string()
                    } else {
                        format!("(Secret {} key {})\n", s(&source["name"]), s(&item["key"]))
                    };
                    std::fs::write(root.path().join(s(&item["path"])), text).unwrap();
                }
            }
        }
        // The container's environment, each secretKeyRef standing for its Secret's value.
        let env: BTreeMap<String, String> = d.container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                let value = match e["value"].as_str() {
                    Some(v) => v.to_string(),
                    None => format!("from-secret-{}", s(&e["valueFrom"]["secretKeyRef"]["name"])),
                };
                (s(&e["name"]).to_string(), value)
            })
            .collect();
        let config_file = root.path().join(file);
        let summary = config_check(&config_file, &env).unwrap_or_else(|e| {
            panic!(
                "{name}: its configuration does not load: {e}\n{}",
                d.config_text
            )
        });
        let loaded: Vec<&str> = summary["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(loaded, [c], "{name}");
        assert_eq!(summary["kafka"]["security_protocol"], "SASL_SSL", "{name}");
        assert_eq!(
            summary["kafka"]["bootstrap_servers"], "l2f-kafka-bootstrap:9093",
            "{name}"
        );
        // A missing secret fails the load, naming the variable (the check can fail).
        let mut short = env.clone();
        short.remove("L2F_KAFKA_PASSWORD");
        let e = config_check(&config_file, &short).unwrap_err();
        assert!(e.contains("L2F_KAFKA_PASSWORD"), "{name}: {e}");
    }
}

#[test]
fn every_secret_comes_from_a_secret_key_ref_the_readme_declares() {
    let all = k8s_resources();
    let declared = readme_secrets();
    assert!(declared.len() >= 7, "README table: {declared:?}");
    let mut used = BTreeSet::new();
    for c in CONNECTORS {
        let d = deployed(&all, c);
        let name = format!("l2f-{c}");
        assert_no_inline_secret(&d.config, "");
        let mut secrets = Vec::new();
        env_secrets(&d.config, "", &mut secrets);
        assert!(!secrets.is_empty(), "{name}: names no secret");
        let env = d.container["env"].as_sequence().unwrap();
        for (key, var) in &secrets {
            let e = env
                .iter()
                .find(|e| e["name"] == var.as_str())
                .unwrap_or_else(|| panic!("{name}: {key} reads {var}, which the pod does not set"));
            let r = &e["valueFrom"]["secretKeyRef"];
            assert!(
                e["value"].is_null() && !r.is_null(),
                "{name}: {var} must come from a secretKeyRef, never a literal"
            );
        }
        for e in env {
            let var = s(&e["name"]);
            if ["PASSWORD", "SECRET", "TOKEN"]
                .iter()
                .any(|w| var.contains(w))
            {
                assert!(
                    e["value"].is_null(),
                    "{name}: {var} is written in the manifest"
                );
            }
            let r = &e["valueFrom"]["secretKeyRef"];
            if !r.is_null() {
                used.insert((s(&r["name"]).to_string(), s(&r["key"]).to_string()));
            }
        }
        for v in d.deployment["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
        {
            for src in v["projected"]["sources"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let secret = &src["secret"];
                for item in secret["items"].as_sequence().into_iter().flatten() {
                    used.insert((s(&secret["name"]).to_string(), s(&item["key"]).to_string()));
                }
            }
        }
    }
    let undeclared: Vec<_> = used.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "secrets the manifests use but deploy/k8s/README.md does not declare: {undeclared:?}"
    );
    let unused: Vec<_> = declared.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "README declares secrets nothing uses: {unused:?}"
    );
}

#[test]
fn the_zuora_callout_service_reaches_the_callout_listener() {
    let all = k8s_resources();
    let d = deployed(&all, "zuora");
    let svc = resource(&all, "Service", "l2f-zuora-callouts");
    let labels = &d.deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[s(k)], v, "the Service selects the Zuora pods");
    }
    let ports = svc["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    let listen = d.config["connectors"]["zuora"]["callout_listen"]
        .as_str()
        .expect("connectors.zuora.callout_listen");
    assert_eq!(
        container_port(d.container, &ports[0]["targetPort"]),
        port_of(listen),
        "the Service's targetPort is not callout_listen ({listen})"
    );
    let password = &d.config["connectors"]["zuora"]["callout_password"];
    assert!(
        password.get("env").is_some(),
        "the callout password comes from a Secret"
    );
}
