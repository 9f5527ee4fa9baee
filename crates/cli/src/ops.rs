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
use l2f_bus::LoopStats;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of every pipeline metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    group: String,
}

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Ops {
    pipelines: Arc<Vec<(String, LoopStats)>>,
    ready: Arc<AtomicBool>,
}

impl Ops {
    /// Metrics for these pipelines (consumer group name, live counters).
    pub fn new(pipelines: Vec<(String, LoopStats)>) -> Self {
        Ops {
            pipelines: Arc::new(pipelines),
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
        type Get = fn(&LoopStats) -> u64;
        let families: [(&str, &str, Get); 4] = [
            (
                "records_handled",
                "Records whose effect succeeded",
                LoopStats::handled,
            ),
            (
                "retries",
                "Retries of transient failures",
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
        ];
        for (name, help, get) in families {
            let family = Family::<PipelineLabels, Counter>::default();
            for (group, stats) in self.pipelines.iter() {
                family
                    .get_or_create(&PipelineLabels {
                        group: group.clone(),
                    })
                    .inc_by(get(stats));
            }
            registry.register(name, help, family);
        }
        let in_memory = Family::<PipelineLabels, Gauge>::default();
        for (group, stats) in self.pipelines.iter() {
            in_memory
                .get_or_create(&PipelineLabels {
                    group: group.clone(),
                })
                .set(stats.in_memory());
        }
        registry.register(
            "records_in_memory",
            "Records fetched and not yet finished, held in the pipeline's bounded queues",
            in_memory,
        );
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
