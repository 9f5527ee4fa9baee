//! `l2f`: the lead-to-fulfillment integration hub's one binary.
//!
//! Errors end the process with a one-line message on stderr that names the problem, and a
//! non-zero exit; secrets never appear in them (see `l2f_bus::config`).

mod cluster;
mod cmd_config;
mod cmd_dlq;
mod cmd_history;
mod cmd_mocks;
mod cmd_reconcile;
mod cmd_replay;
mod cmd_run;
mod cmd_schemas;
mod cmd_topics;
mod connectors;
mod demo;
#[cfg(test)]
mod deploy_observability;
mod ops;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the consume loop allocates each record on its poll thread and
/// frees it on a worker, and glibc's arenas made that cross-thread free most of the loop's CPU
/// (1M records: 3.5 CPU s with glibc, 1.4–1.6 with mimalloc; see the README's benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The lead-to-fulfillment integration hub: keeps Salesforce, Zuora, Marketo, the customers
/// app and the license service in sync over Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "l2f", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "L2F_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The hub's configuration file (TOML; environment `L2F_<SECTION>__<KEY>` overrides it).
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Configuration file; relative paths in it are read from its directory. Without one,
    /// defaults and environment only (embedded broker, built-in catalog and rules).
    #[arg(long, short = 'c', env = "L2F_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the hub's pipelines against the configured cluster until SIGINT/SIGTERM.
    Run(cmd_run::RunArgs),
    /// A year of customers through every connector, on the embedded broker and the mock
    /// apps in-process, with a summary and a reconciliation (non-zero exit if anything is
    /// unaccounted for).
    Demo(demo::DemoArgs),
    /// The demo's year on a real cluster under faults: each connector its own process, the
    /// apps failing calls, one app down, processes SIGKILLed, the broker restarted; then
    /// every app must hold exactly the expected records (non-zero exit otherwise).
    Soak(demo::soak::SoakArgs),
    /// The topic catalog.
    #[command(subcommand)]
    Topics(cmd_topics::TopicsCmd),
    /// The dead-letter topic: list and redrive.
    #[command(subcommand)]
    Dlq(cmd_dlq::DlqCmd),
    /// Schema contracts: compatibility, fingerprints, lint.
    #[command(subcommand)]
    Schemas(cmd_schemas::SchemasCmd),
    /// Serve the mock enterprise apps on loopback.
    Mocks(cmd_mocks::MocksArgs),
    /// Export a time or offset range of topics (JSON lines or Avro) with a verifiable
    /// summary, or check an export with --verify; joins no consumer group.
    Replay(Box<cmd_replay::ReplayArgs>),
    /// One customer's, lead's or subscription's story across topics, with causation links.
    History(cmd_history::HistoryArgs),
    /// Fold the event log into the expected state of every account and subscription and
    /// report where Zuora, Salesforce and the customers app drifted (exit 0 none, 1 drift,
    /// 2 error); --fix re-emits the events that repair it.
    Reconcile(cmd_reconcile::ReconcileArgs),
    /// The hub's configuration: check it as `run` would, without connecting.
    #[command(subcommand)]
    Config(cmd_config::ConfigCmd),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match &cli.cmd {
        Cmd::Run(a) => a.traces(),
        _ => None,
    };
    let log_file = match &cli.cmd {
        Cmd::Demo(a) if !a.verbose => Some(a.log_file.clone()),
        Cmd::Soak(a) if !a.verbose => Some(a.log_file.clone()),
        _ => None,
    };
    match telemetry::init(cli.log_format, traces.as_ref(), log_file.as_deref()) {
        Ok(Some(url)) => tracing::info!(%url, "exporting each record's spans over OTLP"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return ExitCode::from(1);
        }
    }
    let result = match cli.cmd {
        Cmd::Run(a) => cmd_run::run(a).await,
        Cmd::Demo(a) => demo::run(a).await,
        Cmd::Soak(a) => demo::soak::run(a).await,
        Cmd::Topics(c) => cmd_topics::run(c).await,
        Cmd::Dlq(c) => cmd_dlq::run(c).await,
        Cmd::Schemas(c) => cmd_schemas::run(c),
        Cmd::Mocks(a) => cmd_mocks::run(a).await,
        Cmd::Replay(a) => cmd_replay::run(*a).await,
        Cmd::History(a) => cmd_history::run(a).await,
        Cmd::Reconcile(a) => cmd_reconcile::run(a).await,
        Cmd::Config(c) => cmd_config::run(c),
    };
    telemetry::shutdown();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            // One line, the whole cause chain.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
