//! The shape every connector shares: a [`Connector`] built from its `[connectors.<name>]`
//! section, a [`Registration`] that names it for the registry `l2f run` and `l2f demo` walk,
//! and the [`Context`] it starts its pipelines in.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use l2f_bus::clock::SharedClock;
use l2f_bus::config::{ConsumerConfig, RetryConfig, SourcesConfig};
use l2f_bus::consumer::LoopSettings;
use l2f_bus::dlq::DeadLetters;
use l2f_bus::source::{Source, SourceLoop, SourceSettings, SourceStats};
use l2f_bus::{BusError, CancellationToken, ConsumerLoop, Handler, LoopStats, Producer};
use l2f_contracts::Codec;
use l2f_rules::Rules;
use rdkafka::ClientConfig;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

/// Why a connector cannot be built or run.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// Its configuration section is invalid.
    #[error("{key}: {message}")]
    Config {
        /// The dotted key at fault (`connectors.marketo.base_url`).
        key: String,
        /// What is wrong (never a secret's value).
        message: String,
    },
    /// One of its pipelines failed in the plumbing (Kafka, a listener).
    #[error("connector {connector}: {source}")]
    Pipeline {
        /// The connector.
        connector: &'static str,
        /// The failure.
        #[source]
        source: BusError,
    },
    /// It could not start (a listener's address taken, a catalog lookup failed...).
    #[error("connector {connector}: {message}")]
    Start {
        /// The connector.
        connector: &'static str,
        /// What failed.
        message: String,
    },
}

impl KitError {
    /// A configuration error of `connector`'s key `key` (relative to its section; empty for
    /// the section itself).
    pub fn config(connector: &str, key: &str, message: impl std::fmt::Display) -> Self {
        KitError::Config {
            key: if key.is_empty() {
                format!("connectors.{connector}")
            } else {
                format!("connectors.{connector}.{key}")
            },
            message: message.to_string(),
        }
    }
}

/// The external systems a connector talks to, so the hub can check their pairing (rule 12:
/// a Salesforce sandbox only with a Zuora sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The app: `salesforce`, `zuora`, `marketo`, `mail`, `customers`, `license`.
    pub app: &'static str,
    /// The configuration key that names it (`connectors.zuora.base_url`).
    pub key: String,
    /// Its base URL.
    pub url: String,
}

/// A connector: the pipelines (sinks and sources) that keep one app in sync with the topics.
pub trait Connector: Send + Sync + 'static {
    /// Its name, the key of its `[connectors.<name>]` section.
    fn name(&self) -> &'static str;
    /// The topics it reads or writes; the hub checks they exist before it starts anything.
    fn topics(&self) -> Vec<String>;
    /// The apps it calls, with the keys that name them.
    fn endpoints(&self) -> Vec<Endpoint>;
    /// Whether it runs a source (which needs the offsets topic of `[sources]`).
    fn has_source(&self) -> bool {
        false
    }
    /// Whether its app answers with its credentials (a token fetch, a cheap read).
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Starts its pipelines in `ctx` and runs until `ctx.shutdown` (or the first pipeline
    /// fails, which stops the others).
    fn start(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Result<(), KitError>>;
}

/// A connector type that knows how to build itself from its configuration section.
pub trait Configured: Connector + Sized {
    /// The section's name.
    const NAME: &'static str;
    /// The section, parsed with unknown keys refused.
    type Config: DeserializeOwned;
    /// Validates the configuration and resolves its secrets — no I/O beyond reading a secret.
    fn build(config: Self::Config) -> Result<Self, KitError>;
}

/// One line of the registry: a connector's name and how to build it from its section.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The `[connectors.<name>]` key.
    pub name: &'static str,
    /// Parses, validates and builds.
    pub build: fn(&serde_json::Value) -> Result<Box<dyn Connector>, KitError>,
}

fn build<C: Configured>(section: &serde_json::Value) -> Result<Box<dyn Connector>, KitError> {
    let cfg: C::Config = parse_section(C::NAME, section)?;
    Ok(Box::new(C::build(cfg)?))
}

/// Parses a raw `[connectors.NAME]` section; an error names the dotted key inside it
/// (`connectors.marketo.client_secert: unknown key; expected one of: ...`).
pub fn parse_section<T: DeserializeOwned>(
    name: &str,
    section: &serde_json::Value,
) -> Result<T, KitError> {
    use serde_path_to_error::Segment;
    serde_path_to_error::deserialize(section.clone()).map_err(|e| {
        let mut at = format!("connectors.{name}");
        for segment in e.path().iter() {
            match segment {
                Segment::Map { key } | Segment::Enum { variant: key } => at = format!("{at}.{key}"),
                Segment::Seq { index } => at = format!("{at}.{index}"),
                _ => {}
            }
        }
        let message = e.inner().to_string();
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, rest)| (field.to_string(), rest.to_string()))
        };
        if let Some((field, rest)) = named("unknown field `") {
            if !at.ends_with(&format!(".{field}")) {
                at = format!("{at}.{field}");
            }
            let expected = rest
                .trim_start_matches(", ")
                .trim_start_matches("expected ")
                .trim_start_matches("one of ")
                .replace('`', "");
            return KitError::Config {
                key: at,
                message: format!("unknown key; expected one of: {expected}"),
            };
        }
        if let Some((field, _)) = named("missing field `") {
            return KitError::Config {
                key: format!("{at}.{field}"),
                message: "missing (this key is required)".into(),
            };
        }
        KitError::Config {
            key: at,
            message: message.replace('`', ""),
        }
    })
}

impl Registration {
    /// The registration of connector type `C`.
    pub const fn of<C: Configured>() -> Registration {
        Registration {
            name: C::NAME,
            build: build::<C>,
        }
    }
}

/// What a pipeline exposes while it runs, for `/metrics` and the demo.
#[derive(Debug, Clone)]
pub enum PipelineStats {
    /// A sink (consumer group).
    Sink(LoopStats),
    /// A source.
    Source(SourceStats),
}

/// A running pipeline: its connector, its name (consumer group or source name) and counters.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The connector it belongs to (`audit` for the hub's own audit log).
    pub connector: &'static str,
    /// Consumer group or source name.
    pub name: String,
    /// Live counters.
    pub stats: PipelineStats,
}

/// A pipeline's counters at one moment, as `/status` serves them: what a supervisor in
/// another process (the soak, an operator's script) needs to tell a busy hub from a quiet one
/// without parsing Prometheus text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PipelineView {
    /// The connector it belongs to.
    pub connector: String,
    /// Consumer group or source name.
    pub name: String,
    /// Its counters.
    #[serde(flatten)]
    pub counts: ViewCounts,
}

/// A sink's or a source's counters in a [`PipelineView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ViewCounts {
    /// A consumer group.
    Sink {
        /// Joined its group (partitions assigned, or a standby member).
        joined: bool,
        /// Records whose effect is done.
        handled: u64,
        /// Tries again after a transient failure.
        retries: u64,
        /// Records sent to the dead-letter topic.
        dead_lettered: u64,
        /// Records read but not yet committed.
        in_memory: i64,
        /// Partitions waiting (paused for an app).
        waiting: i64,
    },
    /// A source.
    Source {
        /// Holds its lease and polls.
        active: bool,
        /// Records it made.
        records: u64,
        /// Transactions committed.
        transactions: u64,
        /// Polls of its app's feed.
        polls: u64,
        /// Polls that failed.
        failed_polls: u64,
    },
}

impl PipelineView {
    /// A source that holds its lease (a sink counts as active once joined).
    pub fn is_active(&self) -> bool {
        match self.counts {
            ViewCounts::Sink { joined, .. } => joined,
            ViewCounts::Source { active, .. } => active,
        }
    }
}

impl Pipeline {
    /// Its counters now.
    pub fn view(&self) -> PipelineView {
        let counts = match &self.stats {
            PipelineStats::Sink(s) => ViewCounts::Sink {
                joined: s.joined(),
                handled: s.handled(),
                retries: s.retries(),
                dead_lettered: s.dead_lettered(),
                in_memory: s.in_memory(),
                waiting: s.waiting(),
            },
            PipelineStats::Source(s) => ViewCounts::Source {
                active: s.active(),
                records: s.records(),
                transactions: s.transactions(),
                polls: s.polls(),
                failed_polls: s.failed_polls(),
            },
        };
        PipelineView {
            connector: self.connector.to_string(),
            name: self.name.clone(),
            counts,
        }
    }
}

/// A count a connector keeps of its own outcomes (emails suppressed, ...), exported on
/// `/metrics` as `l2f_<name>_total{connector}` beside its pipelines' counters.
#[derive(Debug, Clone)]
pub struct Metric {
    /// The connector.
    pub connector: &'static str,
    /// The metric's name without prefix and suffix (`emails_suppressed`).
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// The live value.
    pub value: Arc<AtomicU64>,
}

/// Every pipeline of the process, registered as it starts, and the connectors' own counters.
#[derive(Debug, Clone, Default)]
pub struct Pipelines(Arc<Mutex<Vec<Pipeline>>>, Arc<Mutex<Vec<Metric>>>);

impl Pipelines {
    /// Adds a pipeline.
    pub fn add(&self, p: Pipeline) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(p);
    }
    /// The pipelines so far.
    pub fn list(&self) -> Vec<Pipeline> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Every pipeline's counters now.
    pub fn views(&self) -> Vec<PipelineView> {
        self.list().iter().map(Pipeline::view).collect()
    }
    /// Adds a connector's own counter.
    pub fn add_metric(&self, m: Metric) {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).push(m);
    }
    /// The connectors' own counters so far.
    pub fn metrics(&self) -> Vec<Metric> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The sink of consumer group `group`, if it runs.
    pub fn sink(&self, group: &str) -> Option<LoopStats> {
        self.list().into_iter().find_map(|p| match p.stats {
            PipelineStats::Sink(s) if p.name == group => Some(s),
            _ => None,
        })
    }
    /// The sink of consumer group `group`, waiting up to `limit` for its connector to start it.
    pub async fn wait_sink(&self, group: &str, limit: std::time::Duration) -> Option<LoopStats> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.sink(group) {
                return Some(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The source named `name`, if it runs.
    pub fn source(&self, name: &str) -> Option<SourceStats> {
        self.list().into_iter().find_map(|p| match p.stats {
            PipelineStats::Source(s) if p.name == name => Some(s),
            _ => None,
        })
    }
}

/// Everything a connector needs to run its pipelines: the cluster, the loop settings, the
/// shared producer, codec and rules, the shutdown signal, the pipeline registry and the clock.
#[derive(Clone)]
pub struct Context {
    /// Client settings for the cluster (security included).
    pub kafka: ClientConfig,
    /// Consumer-group behaviour for sinks.
    pub consumer: ConsumerConfig,
    /// Backoff for failed records and polls.
    pub retry: RetryConfig,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Where sources keep their cursors, how often they poll, how soon a standby takes over.
    pub sources: SourcesConfig,
    /// The shared idempotent producer.
    pub producer: Producer,
    /// The event codec.
    pub codec: Arc<Codec>,
    /// The handbook's rules.
    pub rules: Arc<Rules>,
    /// Cancelled on SIGINT/SIGTERM or when a pipeline fails.
    pub shutdown: CancellationToken,
    /// Where pipelines register their counters.
    pub pipelines: Pipelines,
    /// The one clock every scheduler reads (`[clock]`: the wall clock, or the mocks'
    /// simulated clock followed), so a year of renewals can run in seconds.
    pub clock: SharedClock,
}

/// A pipeline task.
pub type Task = JoinHandle<Result<(), BusError>>;

impl Context {
    /// Starts a sink: a consumer group `group` over `topics` driving `handler`, its failures
    /// dead-lettered to the hub's dead-letter topic.
    pub fn sink<H: Handler>(
        &self,
        connector: &'static str,
        group: &str,
        topics: Vec<String>,
        handler: Arc<H>,
    ) -> Task {
        let settings = LoopSettings {
            group_id: group.to_string(),
            topics,
            consumer: self.consumer.clone(),
            retry: self.retry.clone(),
        };
        let dlq = DeadLetters::new(self.producer.clone(), &self.dead_letter_topic, group);
        let lp = ConsumerLoop::new(&self.kafka, settings, handler, dlq);
        self.pipelines.add(Pipeline {
            connector,
            name: group.to_string(),
            stats: PipelineStats::Sink(lp.stats()),
        });
        tokio::spawn(lp.run(self.shutdown.clone()))
    }

    /// Settings for a source named `name` with this context's offsets topic, poll interval,
    /// lease session timeout and retries.
    pub fn source_settings(&self, name: &str) -> SourceSettings {
        SourceSettings {
            retry: self.retry.clone(),
            poll_interval: self.sources.poll_interval,
            session_timeout: self.sources.session_timeout,
            ..SourceSettings::new(name, &self.sources.offsets_topic)
        }
    }

    /// Starts a source loop.
    pub fn source<S: Source>(
        &self,
        connector: &'static str,
        settings: SourceSettings,
        source: S,
    ) -> Task {
        let name = settings.name.clone();
        let lp = SourceLoop::new(&self.kafka, settings, source);
        self.pipelines.add(Pipeline {
            connector,
            name,
            stats: PipelineStats::Source(lp.stats()),
        });
        tokio::spawn(lp.run(self.shutdown.clone()))
    }
}

/// Waits for a connector's tasks; the first to fail stops the others (through `shutdown`)
/// and is the result.
pub async fn join_all(
    connector: &'static str,
    shutdown: CancellationToken,
    tasks: Vec<Task>,
) -> Result<(), KitError> {
    let results = futures::future::join_all(tasks.into_iter().map(|t| {
        let stop = shutdown.clone();
        async move {
            let r = t.await;
            if !matches!(r, Ok(Ok(()))) {
                stop.cancel();
            }
            r
        }
    }))
    .await;
    for r in results {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(KitError::Pipeline { connector, source }),
            Err(e) => {
                return Err(KitError::Start {
                    connector,
                    message: format!("pipeline task failed: {e}"),
                })
            }
        }
    }
    Ok(())
}
