//! A small process the end-to-end tests start, kill with SIGKILL and restart, to prove the
//! bus's guarantees across real process deaths.
//!
//! `consume`: a consumer-loop member whose effect is appending `partition offset key value`
//! lines to a file (written through before the handler returns).
//! `transform`: a transactional stage copying one topic to another.
//! `remind`: a keyed scheduler: each input record (value: a due time in ms since the epoch)
//! arms a reminder for its key, which fires once, on the wall clock, as an output record.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::consumer::{shutdown_on_signals, LoopSettings};
use l2f_bus::dlq::DeadLetters;
use l2f_bus::record::OutRecord;
use l2f_bus::scheduler::{Change, KeyedScheduler, Schedule, SchedulerSettings, Step};
use l2f_bus::transactional::{StageSettings, TransactionalStage};
use l2f_bus::{ConsumerLoop, Handler, HandlerError, Producer, Record};
use rdkafka::ClientConfig;

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    bootstrap: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    Transform {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        txn_id: String,
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    Remind {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        changelog: String,
        #[arg(long)]
        group: String,
    },
}

/// A reminder per key: armed by a record, fired once when the clock reaches it.
struct Reminders {
    output: String,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Reminder {
    due_ms: i64,
    fired: bool,
}

impl Schedule for Reminders {
    type State = Reminder;

    fn on_record(
        &mut self,
        _key: &str,
        _state: Option<&Reminder>,
        record: &Record,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Step<Reminder>, HandlerError> {
        let due_ms = String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default())
            .parse()
            .map_err(|_| HandlerError::permanent("value is not a due time"))?;
        Ok(Step {
            change: Change::Set(Reminder {
                due_ms,
                fired: false,
            }),
            out: vec![],
        })
    }

    fn on_due(
        &mut self,
        key: &str,
        state: &Reminder,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Step<Reminder> {
        Step {
            change: Change::Set(Reminder {
                fired: true,
                ..state.clone()
            }),
            out: vec![OutRecord::new(&self.output, key, "reminded")],
        }
    }

    fn next_due(&self, state: &Reminder) -> Option<chrono::DateTime<chrono::Utc>> {
        (!state.fired)
            .then(|| chrono::DateTime::from_timestamp_millis(state.due_ms))
            .flatten()
    }
}

struct AppendToFile {
    file: Mutex<std::fs::File>,
    delay: Duration,
}

impl Handler for AppendToFile {
    async fn handle(&self, r: &Record) -> Result<(), HandlerError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let line = format!(
            "{} {} {} {}\n",
            r.partition,
            r.offset,
            r.key_str(),
            String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default())
        );
        let mut f = self
            .file
            .lock()
            .map_err(|_| HandlerError::permanent("poisoned"))?;
        f.write_all(line.as_bytes())
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &cli.bootstrap);
    let shutdown = shutdown_on_signals();
    match cli.cmd {
        Cmd::Consume {
            topic,
            group,
            out,
            delay_ms,
        } => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .with_context(|| format!("open {}", out.display()))?;
            let handler = Arc::new(AppendToFile {
                file: Mutex::new(file),
                delay: Duration::from_millis(delay_ms),
            });
            let producer = Producer::new(&client)?;
            let settings = LoopSettings {
                group_id: group.clone(),
                topics: vec![topic.clone()],
                consumer: ConsumerConfig {
                    max_in_flight_per_partition: 50,
                    ..ConsumerConfig::default()
                },
                retry: RetryConfig::default(),
            };
            let dlq = DeadLetters::new(producer, format!("{topic}.dlq"), group);
            ConsumerLoop::new(&client, settings, handler, dlq)
                .run(shutdown)
                .await?;
        }
        Cmd::Transform {
            input,
            output,
            group,
            txn_id,
            delay_ms,
        } => {
            let mut settings = StageSettings::new(&group, &input, &txn_id, &format!("{input}.dlq"));
            settings.batch_size = 100;
            settings.transaction_timeout = Duration::from_secs(10);
            let delay = Duration::from_millis(delay_ms);
            let stage = TransactionalStage::new(&client, settings, move |r: &Record| {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                Ok(vec![OutRecord {
                    topic: output.clone(),
                    partition: Some(r.partition),
                    key: r.key.clone(),
                    payload: r.payload.clone(),
                    headers: r.headers.clone(),
                }])
            });
            stage.run(shutdown).await?;
        }
        Cmd::Remind {
            input,
            output,
            changelog,
            group,
        } => {
            let mut settings =
                SchedulerSettings::new(&group, &input, &changelog, &format!("{input}.dlq"));
            settings.session_timeout = Duration::from_secs(6);
            settings.transaction_timeout = Duration::from_secs(10);
            settings.batch_size = 100;
            KeyedScheduler::new(
                &client,
                settings,
                Reminders { output },
                l2f_bus::clock::wall(),
            )
            .run(shutdown)
            .await?;
        }
    }
    Ok(())
}
