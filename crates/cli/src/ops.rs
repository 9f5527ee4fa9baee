//! The operations endpoint of `l2f run`: `/metrics` in Prometheus text format, `/healthz`
//! (the process answers), `/readyz` (the cluster answered and every pipeline has joined its
//! group or started its source), and per connector `/readyz/<connector>` (its pipelines) and
//! `/healthz/<connector>` (its app answers with the connector's credentials, checked at most
//! every 10 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use l2f_bus::source::SourceStats;
use l2f_bus::LoopStats;
use l2f_connector_kit::{PipelineStats, Pipelines};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of every sink metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    connector: String,
    group: String,
}

/// Labels of a per-partition sink metric (lag).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    connector: String,
    group: String,
    topic: String,
    partition: String,
}

/// Labels of the build-info metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// A histogram whose buckets the bus already counted (in atomics, lock-free on the hot path),
/// encoded as an OpenMetrics histogram; set once per scrape.
#[derive(Debug, Default)]
struct Counted(std::sync::Mutex<Option<l2f_bus::consumer::LatencySnapshot>>);

impl prometheus_client::metrics::TypedMetric for Counted {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for Counted {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.lock().map_err(|_| std::fmt::Error)?;
        match &*snapshot {
            Some(h) => encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum, h.count, &h.buckets, None,
            ),
            None => Ok(()),
        }
    }
    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// Labels of a paused partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PausedLabels {
    connector: String,
    group: String,
    topic: String,
    partition: String,
    reason: String,
}

/// Labels of the app-call histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    app: String,
    call: String,
    outcome: String,
}

/// Labels of every source metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    connector: String,
    source: String,
}

/// Labels of a connector's own counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Ops {
    pipelines: Pipelines,
    ready: Arc<AtomicBool>,
    health: Arc<Health>,
}

/// The connectors whose apps `/healthz/<connector>` asks, and the last answers.
#[derive(Default)]
struct Health {
    connectors: Vec<Box<dyn l2f_connector_kit::Connector>>,
    last: tokio::sync::Mutex<std::collections::HashMap<&'static str, Checked>>,
}

/// When an app was last checked, and what it answered.
type Checked = (std::time::Instant, Result<(), String>);

/// How long an app's health answer is reused (the endpoint must not load the apps).
const HEALTH_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an app may take to answer a health check.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

type SinkGet = fn(&LoopStats) -> u64;
type SourceGet = fn(&SourceStats) -> u64;

impl Ops {
    /// Metrics for the pipelines registered in `pipelines` (as they start).
    pub fn new(pipelines: Pipelines) -> Self {
        Ops {
            pipelines,
            ready: Arc::new(AtomicBool::new(false)),
            health: Arc::default(),
        }
    }

    /// The same, with `connectors` (instances built for the purpose, never started) whose
    /// apps `/healthz/<connector>` checks.
    pub fn with_health(
        pipelines: Pipelines,
        connectors: Vec<Box<dyn l2f_connector_kit::Connector>>,
    ) -> Self {
        Ops {
            health: Arc::new(Health {
                connectors,
                last: Default::default(),
            }),
            ..Ops::new(pipelines)
        }
    }

    /// The pipelines of `connector` (all, with `None`) that are not ready yet: a sink that
    /// has not joined its group's generation. A source is ready once it runs (active or
    /// standby).
    fn not_ready(&self, connector: Option<&str>) -> Vec<String> {
        self.pipelines
            .list()
            .into_iter()
            .filter(|p| connector.is_none_or(|c| c == p.connector))
            .filter(|p| match &p.stats {
                PipelineStats::Sink(s) => !s.joined(),
                PipelineStats::Source(_) => false,
            })
            .map(|p| p.name)
            .collect()
    }

    /// Marks the process ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The Prometheus text exposition of the current counters.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("l2f");
        let pipelines = self.pipelines.list();
        let sinks: Vec<(PipelineLabels, &LoopStats)> = pipelines
            .iter()
            .filter_map(|p| match &p.stats {
                PipelineStats::Sink(s) => Some((
                    PipelineLabels {
                        connector: p.connector.to_string(),
                        group: p.name.clone(),
                    },
                    s,
                )),
                PipelineStats::Source(_) => None,
            })
            .collect();
        let sources: Vec<(SourceLabels, &SourceStats)> = pipelines
            .iter()
            .filter_map(|p| match &p.stats {
                PipelineStats::Source(s) => Some((
                    SourceLabels {
                        connector: p.connector.to_string(),
                        source: p.name.clone(),
                    },
                    s,
                )),
                PipelineStats::Sink(_) => None,
            })
            .collect();
        let sink_counters: [(&str, &str, SinkGet); 6] = [
            (
                "records_handled",
                "Records whose effect succeeded",
                LoopStats::handled,
            ),
            (
                "retries",
                "Retries of failed records (transient or app unavailable)",
                LoopStats::retries,
            ),
            (
                "dead_letters",
                "Records written to the dead-letter topic",
                LoopStats::dead_lettered,
            ),
            (
                "records_abandoned",
                "Records left uncommitted at revocation or shutdown (redelivered later)",
                LoopStats::abandoned,
            ),
            (
                "app_unavailable",
                "Times a partition began waiting for its app to answer again",
                LoopStats::unavailable,
            ),
            (
                "handler_calls",
                "Calls to the app (a batch counts once)",
                LoopStats::calls,
            ),
        ];
        for (name, help, get) in sink_counters {
            let family = Family::<PipelineLabels, Counter>::default();
            for (labels, stats) in &sinks {
                family.get_or_create(labels).inc_by(get(stats));
            }
            registry.register(name, help, family);
        }
        type Level = fn(&LoopStats) -> i64;
        let sink_gauges: [(&str, &str, Level); 2] = [
            (
                "records_in_memory",
                "Records fetched and not yet finished, held in the pipeline's bounded queues",
                LoopStats::in_memory,
            ),
            (
                "partitions_waiting",
                "Partitions paused because their app is unavailable",
                LoopStats::waiting,
            ),
        ];
        for (name, help, get) in sink_gauges {
            let family = Family::<PipelineLabels, Gauge>::default();
            for (labels, stats) in &sinks {
                family.get_or_create(labels).set(get(stats));
            }
            registry.register(name, help, family);
        }
        let lag = Family::<PartitionLabels, Gauge>::default();
        let committed = Family::<PartitionLabels, Gauge>::default();
        let high = Family::<PartitionLabels, Gauge>::default();
        for (labels, stats) in &sinks {
            for ((topic, partition), l) in stats.lag() {
                let at = PartitionLabels {
                    connector: labels.connector.clone(),
                    group: labels.group.clone(),
                    topic,
                    partition: partition.to_string(),
                };
                lag.get_or_create(&at).set(l.lag);
                committed.get_or_create(&at).set(l.committed);
                high.get_or_create(&at).set(l.high);
            }
        }
        let paused = Family::<PausedLabels, Gauge>::default();
        for (labels, stats) in &sinks {
            for ((topic, partition), reason) in stats.paused() {
                paused
                    .get_or_create(&PausedLabels {
                        connector: labels.connector.clone(),
                        group: labels.group.clone(),
                        topic,
                        partition: partition.to_string(),
                        reason: reason.to_string(),
                    })
                    .set(1);
            }
        }
        registry.register(
            "partition_paused",
            "1 for each partition the pipeline stopped fetching, with why: app_unavailable (the records wait for their app) or backpressure (the workers are behind)",
            paused,
        );
        registry.register(
            "consumer_lag",
            "Records between the group's committed offset and the partition's end (librdkafka's consumer_lag, -1 while unknown)",
            lag,
        );
        registry.register(
            "consumer_committed_offset",
            "The group's committed offset of each partition the pipeline holds (-1 when none yet)",
            committed,
        );
        registry.register(
            "consumer_high_watermark",
            "The end of each partition the pipeline holds (last stable offset under read_committed)",
            high,
        );
        let latency = Family::<PipelineLabels, Counted>::default();
        for (labels, stats) in &sinks {
            if let Ok(mut h) = latency.get_or_create(labels).0.lock() {
                *h = Some(stats.latency());
            }
        }
        registry.register_with_unit(
            "handler_latency",
            "Duration of each handler call (the app's answer included; a batch counts once)",
            prometheus_client::registry::Unit::Seconds,
            latency,
        );
        let api = Family::<ApiLabels, Counted>::default();
        for (call, h) in l2f_connector_kit::calls::api_calls() {
            let labels = ApiLabels {
                app: call.app.to_string(),
                call: call.call,
                outcome: call.outcome.to_string(),
            };
            if let Ok(mut slot) = api.get_or_create(&labels).0.lock() {
                *slot = Some(h);
            }
        }
        registry.register_with_unit(
            "api_call_duration",
            "Duration of each call a connector made to its app, by app, call (method and path without ids) and outcome",
            prometheus_client::registry::Unit::Seconds,
            api,
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("build_info", "The running l2f build (always 1)", build);
        let source_counters: [(&str, &str, SourceGet); 5] = [
            (
                "source_polls",
                "Polls of the app's change feed while active",
                SourceStats::polls,
            ),
            (
                "source_failed_polls",
                "Polls that failed (the app did not answer or refused)",
                SourceStats::failed_polls,
            ),
            (
                "source_transactions",
                "Transactions committed (events and cursor together)",
                SourceStats::transactions,
            ),
            (
                "source_records",
                "Records committed by the source (events and dead letters)",
                SourceStats::records,
            ),
            (
                "source_aborted",
                "Source transactions aborted and polled again",
                SourceStats::aborted,
            ),
        ];
        for (name, help, get) in source_counters {
            let family = Family::<SourceLabels, Counter>::default();
            for (labels, stats) in &sources {
                family.get_or_create(labels).inc_by(get(stats));
            }
            registry.register(name, help, family);
        }
        let active = Family::<SourceLabels, Gauge>::default();
        for (labels, stats) in &sources {
            active.get_or_create(labels).set(i64::from(stats.active()));
        }
        registry.register(
            "source_active",
            "1 on the replica that holds the source's lease and polls, 0 on standbys",
            active,
        );
        let backing_off = Family::<SourceLabels, Gauge>::default();
        for (labels, stats) in &sources {
            backing_off
                .get_or_create(labels)
                .set(i64::from(stats.backing_off()));
        }
        registry.register(
            "source_backing_off",
            "1 while the source waits out a failed poll or commit (its feed is not being read)",
            backing_off,
        );
        let feed_lag = Family::<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let behind = Family::<SourceLabels, Gauge>::default();
        for (labels, stats) in &sources {
            // A standby owes nothing: 0 (and -1, unknown) until it holds the lease.
            let lag = stats.feed_lag().unwrap_or_default();
            feed_lag.get_or_create(labels).set(lag.as_secs_f64());
            let n = stats.behind().filter(|_| stats.active());
            behind
                .get_or_create(labels)
                .set(n.map_or(-1, |n| n.min(i64::MAX as u64) as i64));
        }
        registry.register_with_unit(
            "source_feed_lag",
            "How far behind its app's feed the active source is (0 on standbys): time since the start of its last poll that read the feed to the end and committed it (about the poll interval while it keeps up; rising while it drains a backlog or its polls fail)",
            prometheus_client::registry::Unit::Seconds,
            feed_lag,
        );
        registry.register(
            "source_feed_behind",
            "Changes the app holds past the active source's committed cursor, as the app reports it (the feed's newest position, Zuora's callouts not yet committed); -1 when the app does not say",
            behind,
        );
        let mut own: Vec<(&str, &str, Family<ConnectorLabels, Counter>)> = Vec::new();
        for m in self.pipelines.metrics() {
            let i = match own.iter().position(|(n, _, _)| *n == m.name) {
                Some(i) => i,
                None => {
                    own.push((m.name, m.help, Family::default()));
                    own.len() - 1
                }
            };
            let labels = ConnectorLabels {
                connector: m.connector.to_string(),
            };
            own[i]
                .2
                .get_or_create(&labels)
                .inc_by(m.value.load(Ordering::Relaxed));
        }
        for (name, help, family) in own {
            registry.register(name, help, family);
        }
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }

    fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/status", get(status))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/readyz/{connector}", get(connector_ready))
            .route("/healthz/{connector}", get(connector_health))
            .with_state(self)
    }

    /// Serves the endpoint on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("ops.listen: cannot listen on {addr}"))?;
        tracing::info!(%addr, "operations endpoint: /metrics /status /healthz /readyz");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, self.router()).await {
                tracing::error!(error = %e, "operations endpoint stopped");
            }
        });
        Ok(())
    }
}

/// `/status`: every pipeline's counters as JSON ([`l2f_connector_kit::PipelineView`]), for a
/// supervisor that watches the process (the soak tells a quiet hub from a busy one with it).
async fn status(State(ops): State<Ops>) -> axum::Json<Vec<l2f_connector_kit::PipelineView>> {
    axum::Json(ops.pipelines.views())
}

/// `/metrics`: OpenMetrics when the scraper asks for it (Prometheus does, in its `Accept`),
/// the Prometheus text format 0.0.4 otherwise (curl, older agents).
async fn metrics(State(ops): State<Ops>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            ops.render(),
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus_text(&ops.render()),
        )
    }
}

/// OpenMetrics text as the Prometheus 0.0.4 text format: a counter's family is named with its
/// `_total` (as its samples are), no `# UNIT` and no `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let waiting = ops.not_ready(None);
    if !ops.ready.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
    } else if !waiting.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: not joined yet: {}\n", waiting.join(", ")),
        )
    } else {
        (StatusCode::OK, "ready\n".to_string())
    }
}

/// The connectors this process knows: those with pipelines, and those it checks.
fn known(ops: &Ops) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = ops.pipelines.list().iter().map(|p| p.connector).collect();
    k.extend(ops.health.connectors.iter().map(|c| c.name()));
    k.sort_unstable();
    k.dedup();
    k
}

fn unknown(ops: &Ops, connector: &str) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no connector {connector} in this process (known: {})\n",
            known(ops).join(", ")
        ),
    )
}

async fn connector_ready(
    State(ops): State<Ops>,
    axum::extract::Path(connector): axum::extract::Path<String>,
) -> impl IntoResponse {
    if !known(&ops).contains(&connector.as_str()) {
        return unknown(&ops, &connector);
    }
    let started = ops
        .pipelines
        .list()
        .iter()
        .any(|p| p.connector == connector);
    let waiting = ops.not_ready(Some(&connector));
    if !started {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting\n".into(),
        )
    } else if !waiting.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: not joined yet: {}\n", waiting.join(", ")),
        )
    } else {
        (StatusCode::OK, "ready\n".into())
    }
}

async fn connector_health(
    State(ops): State<Ops>,
    axum::extract::Path(connector): axum::extract::Path<String>,
) -> impl IntoResponse {
    if !known(&ops).contains(&connector.as_str()) {
        return unknown(&ops, &connector);
    }
    let Some(c) = ops.health.connectors.iter().find(|c| c.name() == connector) else {
        return (StatusCode::OK, "ok (no app check configured)\n".into());
    };
    let mut last = ops.health.last.lock().await;
    let fresh = last
        .get(c.name())
        .filter(|(at, _)| at.elapsed() < HEALTH_TTL)
        .map(|(_, r)| r.clone());
    let result = match fresh {
        Some(r) => r,
        None => {
            let r = match tokio::time::timeout(HEALTH_TIMEOUT, c.healthcheck()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
            };
            last.insert(c.name(), (std::time::Instant::now(), r.clone()));
            r
        }
    };
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {e}\n")),
    }
}

/// Every metric name `/metrics` can carry, as a query writes it (a counter with its `_total`):
/// the exposition of one pipeline of each kind, read back. The dashboards and alert rules in
/// `deploy/observability/` are checked against it.
#[cfg(test)]
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = sample()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .flat_map(|(name, kind)| match kind {
            "counter" => vec![format!("{name}_total")],
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => vec![name.to_string()],
        })
        .collect();
    names.sort();
    names
}

/// The Prometheus text exposition of one pipeline of each kind (for promtool's parser).
#[cfg(test)]
pub fn sample_exposition() -> String {
    prometheus_text(&sample().render())
}

/// One sink (with a partition's lag) and one source.
#[cfg(test)]
fn sample() -> Ops {
    use l2f_connector_kit::Pipeline;
    let pipelines = Pipelines::default();
    let sink = LoopStats::default();
    let lag = l2f_bus::consumer::PartitionLag {
        committed: 5,
        high: 7,
        lag: 2,
    };
    sink.set_lag([(("leads".to_string(), 0), lag)].into());
    sink.set_paused(&("leads".to_string(), 0), Some("app_unavailable"));
    pipelines.add(Pipeline {
        connector: "sink",
        name: "group".into(),
        stats: PipelineStats::Sink(sink),
    });
    pipelines.add(Pipeline {
        connector: "source",
        name: "source".into(),
        stats: PipelineStats::Source(SourceStats::default()),
    });
    l2f_connector_kit::calls::observe(
        l2f_connector_kit::calls::ApiCall {
            app: "sample",
            call: "GET /v1/sample/{id}".into(),
            outcome: "2xx",
        },
        std::time::Duration::from_millis(5),
    );
    Ops::new(pipelines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector whose app refuses its credentials, counting the checks.
    struct Refused(Arc<std::sync::atomic::AtomicU64>);

    impl l2f_connector_kit::Connector for Refused {
        fn name(&self) -> &'static str {
            "zuora"
        }
        fn topics(&self) -> Vec<String> {
            vec![]
        }
        fn endpoints(&self) -> Vec<l2f_connector_kit::Endpoint> {
            vec![]
        }
        fn healthcheck(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err("HTTP 401: invalid client credentials".to_string()) })
        }
        fn start(
            self: Box<Self>,
            _ctx: l2f_connector_kit::Context,
        ) -> futures::future::BoxFuture<'static, Result<(), l2f_connector_kit::KitError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn per_connector_readiness_follows_the_group_join_and_health_asks_the_app_at_most_every_10_s(
    ) {
        use l2f_connector_kit::Pipeline;
        let pipelines = Pipelines::default();
        let sink = LoopStats::default();
        pipelines.add(Pipeline {
            connector: "marketo",
            name: "l2f-connector-marketo".into(),
            stats: PipelineStats::Sink(sink.clone()),
        });
        let checks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ops = Ops::with_health(pipelines, vec![Box::new(Refused(checks.clone()))]);
        ops.set_ready(true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, ops.router()).await });
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let (http, url) = (http.clone(), format!("{base}{path}"));
            async move {
                let r = http.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (code, body) = get("/readyz/marketo").await;
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("not joined yet: l2f-connector-marketo"),
            "{body}"
        );
        assert_eq!(get("/readyz").await.0, 503);
        // A member with no partitions (a standby) is joined, and ready.
        sink.set_joined(true);
        assert_eq!(get("/readyz/marketo").await, (200, "ready\n".to_string()));
        assert_eq!(get("/readyz").await.0, 200);
        // A connector that started no pipeline yet is not ready; an unknown one is named.
        let (code, body) = get("/readyz/zuora").await;
        assert_eq!((code, body.as_str()), (503, "not ready: starting\n"));
        let (code, body) = get("/readyz/salesforce").await;
        assert_eq!(code, 404);
        assert!(body.contains("known: marketo, zuora"), "{body}");
        // Health asks the app, and answers from the last check for 10 s.
        let (code, body) = get("/healthz/zuora").await;
        assert_eq!(code, 503);
        assert!(body.contains("unhealthy: HTTP 401"), "{body}");
        assert_eq!(get("/healthz/zuora").await.0, 503);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        assert_eq!(get("/healthz/marketo").await.0, 200);
    }

    #[test]
    fn metric_names_cover_sinks_and_sources_as_queries_spell_them() {
        let names = metric_names();
        for n in [
            "l2f_records_handled_total",
            "l2f_dead_letters_total",
            "l2f_records_in_memory",
            "l2f_partitions_waiting",
            "l2f_source_active",
            "l2f_source_failed_polls_total",
            "l2f_source_backing_off",
            "l2f_source_feed_lag_seconds",
            "l2f_source_feed_behind",
            "l2f_api_call_duration_seconds_bucket",
            "l2f_partition_paused",
            "l2f_consumer_lag",
            "l2f_handler_latency_seconds_bucket",
            "l2f_build_info",
        ] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        // Each name is one a sample line of a live exposition really carries.
        let pipelines = Pipelines::default();
        pipelines.add(l2f_connector_kit::Pipeline {
            connector: "marketo",
            name: "l2f-connector-marketo".into(),
            stats: PipelineStats::Sink(LoopStats::default()),
        });
        pipelines.add_metric(l2f_connector_kit::Metric {
            connector: "mail",
            name: "emails_suppressed",
            help: "Emails muted",
            value: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3)),
        });
        let text = Ops::new(pipelines).render();
        let plain = prometheus_text(&text);
        assert!(
            plain.contains("# TYPE l2f_records_handled_total counter\n"),
            "{plain}"
        );
        assert!(!plain.contains("# EOF"), "{plain}");
        assert!(
            plain.contains("# TYPE l2f_handler_latency_seconds histogram\n"),
            "{plain}"
        );
        assert!(
            text.contains(
                r#"l2f_records_handled_total{connector="marketo",group="l2f-connector-marketo"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"l2f_emails_suppressed_total{connector="mail"} 3"#),
            "a connector's own counter: {text}"
        );
    }
}
