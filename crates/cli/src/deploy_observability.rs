//! Checks of `deploy/observability/`: the Grafana dashboard and the Prometheus alert rules
//! query only metrics the hub exports ([`crate::ops::metric_names`]), every query parses as
//! PromQL, and the rules pass `promtool` (its syntax check and the unit tests of
//! `alerts.test.yaml`) where promtool is installed (`scripts/install-tools.sh promtool`, which
//! `make test` runs; under `CI` or `REQUIRE_PROMTOOL` a missing promtool fails the test).
//!
//! They live in the binary's own tests because the metric names are what `Ops::render`
//! emits, which no outside crate can see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;

use crate::ops::metric_names;

/// Metrics the queries may name before the hub exports them, each with where it comes from.
/// An entry must go once the metric is exported (a test says so), so the list cannot hide a
/// typo for long.
const PLANNED: &[(&str, &str)] = &[];

fn observability() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/observability")
}

fn read(name: &str) -> String {
    let path = observability().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Grafana's built-in interval variables, replaced as Grafana would before the query runs.
fn expand_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// Collects the metric names of every selector of a query.
struct Names<'a>(&'a mut BTreeSet<String>, &'a str);

impl ExprVisitor for Names<'_> {
    type Error = String;
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        match &vs.name {
            Some(name) => {
                self.0.insert(name.clone());
                Ok(true)
            }
            None => Err(format!("{}: a selector without a metric name", self.1)),
        }
    }
}

/// The metric names a PromQL query selects; panics, naming the query, if it does not parse.
fn selected(query: &str, into: &mut BTreeSet<String>) {
    let expanded = expand_grafana_variables(query);
    let ast =
        parser::parse(&expanded).unwrap_or_else(|e| panic!("query does not parse: {query}: {e}"));
    walk_expr(&mut Names(into, query), &ast).unwrap_or_else(|e| panic!("{e}"));
}

/// Every `expr` of the dashboard's panels (rows' nested panels included), and the metric of
/// each `label_values(METRIC, LABEL)` variable.
fn dashboard_queries(dashboard: &Value) -> (Vec<String>, Vec<String>) {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    let mut variables = Vec::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(...): {q}", v["name"]));
        let (metric, _label) = inner.rsplit_once(',').unwrap_or((inner, ""));
        variables.push(metric.trim().to_string());
    }
    (exprs, variables)
}

struct Rule {
    alert: String,
    expr: String,
}

fn alert_rules() -> Vec<Rule> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&read("alerts.yaml")).expect("alerts.yaml");
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        assert!(group["name"].as_str().is_some(), "a group without a name");
        for r in group["rules"].as_sequence().expect("rules") {
            let alert = r["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_string();
            let expr = r["expr"].as_str().expect("expr").trim().to_string();
            assert!(
                r["labels"]["severity"].as_str().is_some(),
                "{alert}: no severity"
            );
            assert!(
                r["annotations"]["summary"].as_str().is_some(),
                "{alert}: no summary"
            );
            if let Some(d) = r["for"].as_str() {
                promql_parser::util::parse_duration(d)
                    .unwrap_or_else(|e| panic!("{alert}: for {d:?}: {e}"));
            }
            rules.push(Rule { alert, expr });
        }
    }
    rules
}

/// Fails naming every queried metric the hub does not export and the allow-list does not name.
fn assert_exported(what: &str, names: &BTreeSet<String>) {
    let exported: BTreeSet<String> = metric_names().into_iter().collect();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !exported.contains(*n) && !PLANNED.iter().any(|(p, _)| p == n))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} queries metrics the hub does not export: {unknown:?} (exported: {exported:?})"
    );
}

#[test]
fn every_metric_the_dashboard_and_the_rules_query_is_exported_by_the_hub() {
    let dashboard: Value =
        serde_json::from_str(&read("grafana-dashboard.json")).expect("dashboard JSON");
    let (exprs, variables) = dashboard_queries(&dashboard);
    assert!(exprs.len() >= 10, "only {} queries found", exprs.len());
    let mut on_dashboard = BTreeSet::new();
    for e in &exprs {
        selected(e, &mut on_dashboard);
    }
    on_dashboard.extend(variables);
    assert_exported("the dashboard", &on_dashboard);

    let mut in_rules = BTreeSet::new();
    for r in alert_rules() {
        selected(&r.expr, &mut in_rules);
    }
    assert_exported("the alert rules", &in_rules);

    // What the dashboard is for: each of these is on it.
    for m in [
        "l2f_consumer_lag",
        "l2f_dead_letters_total",
        "l2f_records_handled_total",
        "l2f_retries_total",
        "l2f_partitions_waiting",
        "l2f_source_active",
        "l2f_records_in_memory",
    ] {
        assert!(on_dashboard.contains(m), "the dashboard shows no {m}");
    }
}

#[test]
fn a_planned_metric_leaves_the_allow_list_once_the_hub_exports_it() {
    let exported = metric_names();
    for (name, from) in PLANNED {
        assert!(
            !exported.iter().any(|n| n == name),
            "{name} is exported now ({from} landed): remove it from PLANNED"
        );
    }
    // And the check bites: a name nobody exports is refused.
    let typo: BTreeSet<String> = ["l2f_dead_leters_total".to_string()].into();
    let refused = std::panic::catch_unwind(|| assert_exported("a typo", &typo));
    assert!(refused.is_err());
}

#[test]
fn the_alert_rules_parse_and_cover_the_operators_alerts() {
    let rules = alert_rules();
    let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    for a in [
        "L2fDeadLettersAppearing",
        "L2fAppUnavailable",
        "L2fSourceNoActiveReplica",
        "L2fRecordsInMemoryNearBound",
        "L2fConsumerLagRising",
    ] {
        assert!(names.contains(&a), "no alert {a} in {names:?}");
    }
    for r in &rules {
        let mut seen = BTreeSet::new();
        selected(&r.expr, &mut seen);
        assert!(!seen.is_empty(), "{}: queries no metric", r.alert);
    }
    let unavailable = rules
        .iter()
        .find(|r| r.alert == "L2fAppUnavailable")
        .unwrap();
    assert!(unavailable.expr.contains("l2f_partitions_waiting"));
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_runbook_link_of_the_alerts_is_a_section_of_the_operators_guide() {
    let guide_path = observability().join("../../docs/operators-guide.md");
    let guide = std::fs::read_to_string(&guide_path).expect("docs/operators-guide.md");
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .map(anchor)
        .collect();
    let rules = read("alerts.yaml");
    let links: Vec<&str> = rules
        .split("docs/operators-guide.md#")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(links.len() >= 6, "{links:?}");
    for l in links {
        assert!(
            anchors.contains(l),
            "alerts.yaml links docs/operators-guide.md#{l}, which has no such section"
        );
    }
    assert_eq!(anchor("A poison record"), "a-poison-record");
}

/// promtool, when installed: `check rules`, the rules' unit tests, and the compose
/// Prometheus configuration.
#[test]
fn promtool_accepts_the_rules_their_unit_tests_the_compose_prometheus_config_and_the_exposition() {
    let promtool = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    let Some(promtool) = promtool else {
        // `make test` installs it (scripts/install-tools.sh promtool); CI must not skip.
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("REQUIRE_PROMTOOL").is_none(),
            "promtool is not installed: scripts/install-tools.sh promtool"
        );
        eprintln!(
            "promtool not installed (scripts/install-tools.sh promtool): rules checked with promql-parser only"
        );
        return;
    };
    let dir = observability();
    let compose = dir.join("../compose/prometheus.yml");
    for args in [
        vec!["check", "rules", "alerts.yaml"],
        vec!["test", "rules", "alerts.test.yaml"],
        vec!["check", "config", compose.to_str().unwrap()],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `/metrics` as Prometheus scrapes it parses (and lints clean) with Prometheus's own parser.
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(crate::ops::sample_exposition().as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
