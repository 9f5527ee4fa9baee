//! The operations endpoint of `l2f run`: `/metrics` in Prometheus text format, `/healthz`
//! (the process answers) and `/readyz` (the cluster answered and the pipelines run).

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
}

type SinkGet = fn(&LoopStats) -> u64;
type SourceGet = fn(&SourceStats) -> u64;

impl Ops {
    /// Metrics for the pipelines registered in `pipelines` (as they start).
    pub fn new(pipelines: Pipelines) -> Self {
        Ops {
            pipelines,
            ready: Arc::new(AtomicBool::new(false)),
        }
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
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(self)
    }

    /// Serves the endpoint on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("ops.listen: cannot listen on {addr}"))?;
        tracing::info!(%addr, "operations endpoint: /metrics /healthz /readyz");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, self.router()).await {
                tracing::error!(error = %e, "operations endpoint stopped");
            }
        });
        Ok(())
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.render(),
    )
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Every metric name `/metrics` can carry, as a query writes it (a counter with its `_total`):
/// the exposition of one pipeline of each kind, read back. The dashboards and alert rules in
/// `deploy/observability/` are checked against it.
#[cfg(test)]
pub fn metric_names() -> Vec<String> {
    use l2f_connector_kit::Pipeline;
    let pipelines = Pipelines::default();
    pipelines.add(Pipeline {
        connector: "sink",
        name: "group".into(),
        stats: PipelineStats::Sink(LoopStats::default()),
    });
    pipelines.add(Pipeline {
        connector: "source",
        name: "source".into(),
        stats: PipelineStats::Source(SourceStats::default()),
    });
    let mut names: Vec<String> = Ops::new(pipelines)
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

#[cfg(test)]
mod tests {
    use super::*;

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
