//! `l2f soak`: the demo's year on a real Apache Kafka cluster, every connector its own `l2f
//! run` process, while things go wrong — every app failing a share of its calls, one app down
//! for a while, connector processes SIGKILLed and started again, the broker killed and
//! started again on its data — and then the same account as the demo's: every app must hold
//! exactly what the plan expects, no record missing and none doubled, and the dead letters
//! only the intended bad inputs.
//!
//! The soak is the processes' supervisor, as Kubernetes would be: a process that dies (killed
//! by the soak or by itself) is started again, and counted. It watches the hub through each
//! process's `/status` (and `/readyz`): a process that does not answer, or is not ready, holds
//! the hub "busy", so a step is never called quiet while a connector is down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use l2f_bus::config::ClockSource;
use l2f_connector_kit::{PipelineView, ViewCounts};
use l2f_mocks::server;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::drive::{Driver, HubClock, Watch};
use super::{
    apps, connector_sections, fault_rules, faulted, free_port, mocks_config, report, scenario,
};
use crate::cluster::{connect, load, LoadedConfig};
use crate::ConfigArg;

/// Options of `l2f soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How many customers the year brings.
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Seed of the year's plan and of the faults' timing.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Percent of the calls to every app that fail (429 and 503 with Retry-After, 500, a
    /// connection reset, 200 ms of latency).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=50))]
    faults: u64,
    /// How long Marketo is down (every call answered 503), from the first of March.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    outage: Duration,
    /// How many times a connector process, chosen at random, is SIGKILLed mid-step and
    /// started again.
    #[arg(long, default_value_t = 2)]
    kills: usize,
    /// A shell command that kills the broker (SIGKILL) and starts it again on the same data,
    /// run once mid-year (`deploy/local/kafka/kafka.sh restart`); unset, the broker is left be.
    #[arg(long)]
    broker_restart: Option<String>,
    /// Where the connector processes' configuration files and logs go.
    #[arg(long, default_value = "target/soak")]
    work_dir: PathBuf,
    /// Log lines to stderr; otherwise to `--log-file`.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Where the soak's own log lines go without `-v`.
    #[arg(long, default_value = "target/soak/l2f-soak.log")]
    pub log_file: PathBuf,
}

/// The connectors, one process each.
const PROCESSES: [&str; 7] = [
    "customers",
    "license",
    "salesforce",
    "zuora",
    "marketo",
    "mail",
    "notifications",
];

/// One connector's `l2f run` process.
struct Proc {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    audit: PathBuf,
    ops: u16,
    child: Option<std::process::Child>,
    /// Times started.
    starts: u32,
    /// Times it ended without being killed by the soak.
    exits: u32,
}

impl Proc {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--audit-out")
            .arg(&self.audit)
            .env_remove("L2F_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the {} connector's process", self.name))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL: no clean shutdown, nothing flushed, no offset committed on the way out.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The connector processes, and what the soak last read of each.
struct Fleet {
    procs: Mutex<Vec<Proc>>,
    views: Mutex<Vec<PipelineView>>,
    /// Something is being done to the hub (a kill, the broker's restart): not quiet.
    disturbed: Mutex<Vec<String>>,
}

impl Watch for Fleet {
    fn views(&self) -> Vec<PipelineView> {
        let mut v = self.views.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for what in self
            .disturbed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            v.push(busy(what));
        }
        v
    }
}

/// A stand-in pipeline that holds the hub busy: a process not answering or not ready, or a
/// fault being made.
fn busy(what: &str) -> PipelineView {
    PipelineView {
        connector: "soak".into(),
        name: what.to_string(),
        counts: ViewCounts::Sink {
            joined: false,
            handled: 0,
            retries: 0,
            dead_lettered: 0,
            in_memory: 1,
            waiting: 0,
        },
    }
}

impl Fleet {
    fn disturb(&self, what: &str, on: bool) {
        let mut d = self.disturbed.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            d.push(what.to_string());
        } else {
            d.retain(|w| w != what);
        }
    }

    /// Reads every process's `/status` and `/readyz`, and starts again any that ended.
    async fn watch(self: Arc<Self>, stop: l2f_bus::CancellationToken) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        while !stop.is_cancelled() {
            let ports: Vec<(&'static str, u16)> = {
                let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
                for p in procs.iter_mut() {
                    let ended = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    if let Some(status) = ended {
                        p.exits += 1;
                        p.child = None;
                        tracing::error!(connector = p.name, %status, "a connector process ended by itself; starting it again");
                        println!(
                            "the {} connector's process ended by itself ({status}); started again (see {})",
                            p.name,
                            p.log.display()
                        );
                        if let Err(e) = p.start() {
                            tracing::error!(error = %format!("{e:#}"), "restart failed");
                        }
                    }
                }
                procs.iter().map(|p| (p.name, p.ops)).collect()
            };
            let mut views = Vec::new();
            for (name, port) in ports {
                let base = format!("http://127.0.0.1:{port}");
                let ready = http
                    .get(format!("{base}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let status = match http.get(format!("{base}/status")).send().await {
                    Ok(r) => r.json::<Vec<PipelineView>>().await.ok(),
                    Err(_) => None,
                };
                match status {
                    Some(v) if ready => views.extend(v),
                    Some(v) => {
                        views.extend(v);
                        views.push(busy(&format!("{name} (not ready)")));
                    }
                    None => views.push(busy(&format!("{name} (not answering)"))),
                }
            }
            *self.views.lock().unwrap_or_else(|p| p.into_inner()) = views;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A fault the soak makes at a step of the year.
#[derive(Debug, Clone)]
enum Fault {
    /// SIGKILL the connector's process after this long into the step, start it again a
    /// second later.
    Kill(&'static str, Duration),
    /// Run the broker-restart command.
    BrokerRestart,
}

/// Runs the soak; returns the exit code.
pub async fn run(args: SoakArgs) -> Result<i32> {
    let started = Instant::now();
    let LoadedConfig {
        bus: mut cfg,
        catalog,
        rules,
        ..
    } = load(&args.config)?;
    let Some(bootstrap) = cfg.kafka.bootstrap_servers.clone() else {
        bail!("kafka.bootstrap_servers: the soak runs on a real cluster (e.g. L2F_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092); it is unset");
    };
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let work = args.work_dir.canonicalize()?;
    let plan = scenario::Scenario::plan(args.customers, args.seed);
    println!(
        "l2f soak: {} customers over a simulated year (seed {}) on {bootstrap}, each connector its own process; every app fails {}% of its calls, Marketo down for {:?}, {} connector process kill(s){}; logs in {}",
        args.customers,
        args.seed,
        args.faults,
        args.outage,
        args.kills,
        if args.broker_restart.is_some() { ", one broker kill and restart" } else { "" },
        work.display(),
    );

    // The cluster must hold none of the catalog's records: the account reads every topic.
    let cluster = connect(&cfg, false, "soak")?;
    let opts = l2f_bus::topics::ApplyOptions {
        dry_run: false,
        replication_factor: cfg.topics.replication_factor,
        timeout: Some(Duration::from_secs(30)),
    };
    l2f_bus::topics::apply(&cluster.client, &catalog, &opts).await?;
    let held = records_held(&cluster.client, &catalog)?;
    if !held.is_empty() {
        bail!(
            "the soak needs a cluster whose catalog topics are empty (it accounts for every record): {} hold records; start from a fresh broker (`scripts/soak.sh` does)",
            held.join(", ")
        );
    }
    crate::connectors::check_pairing(&crate::connectors::build_all(&cfg)?, &rules)?;

    let callout_port = free_port()?;
    let mc = faulted(mocks_config(callout_port), args.faults);
    let mocks = server::start(&mc).await?;
    let base = |app: &str| {
        mocks
            .endpoint(app)
            .map(|e| e.http.clone())
            .unwrap_or_default()
    };
    let templates = work.join("templates");
    std::fs::create_dir_all(&templates)?;
    for (name, text) in super::TEMPLATES {
        std::fs::write(templates.join(name), text)?;
    }

    // Each process's configuration: the cluster as given, one connector, the mocks' clock
    // followed, and the demo's quick retries.
    cfg.clock.source = ClockSource::Follow;
    cfg.clock.url = Some(base("zuora"));
    cfg.clock.poll_interval = Duration::from_millis(50);
    cfg.consumer.commit_interval = Duration::from_millis(200);
    cfg.consumer.session_timeout = Duration::from_secs(6);
    cfg.sources.session_timeout = Duration::from_secs(6);
    cfg.sources.poll_interval = Duration::from_millis(100);
    cfg.retry.initial = Duration::from_millis(100);
    cfg.retry.max = Duration::from_secs(2);
    cfg.retry.max_attempts = 30;
    cfg.topics.create_missing = false;
    cfg.kafka
        .properties
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| "50".into());
    let sections: BTreeMap<&str, serde_json::Value> =
        connector_sections(&mc, &base, callout_port, &templates)
            .into_iter()
            .collect();
    // The whole hub's configuration, for the account's reconciliation against the apps.
    let mut whole = cfg.clone();
    whole.connectors = sections
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut procs = Vec::new();
    for name in PROCESSES {
        let mut c = cfg.clone();
        c.connectors = [(name.to_string(), sections[name].clone())].into();
        let ops = free_port()?;
        c.ops.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], ops)));
        let config = work.join(format!("{name}.toml"));
        write_config(&config, &c)?;
        let log = work.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let audit = work.join(format!("{name}.audit.jsonl"));
        let _ = std::fs::remove_file(&audit);
        procs.push(Proc {
            name,
            config,
            log,
            audit,
            ops,
            child: None,
            starts: 0,
            exits: 0,
        });
    }
    for p in &mut procs {
        p.start()?;
    }
    let fleet = Arc::new(Fleet {
        procs: Mutex::new(procs),
        views: Mutex::new(Vec::new()),
        disturbed: Mutex::new(Vec::new()),
    });
    let stop = l2f_bus::CancellationToken::new();
    let watcher = tokio::spawn(fleet.clone().watch(stop.clone()));

    // When the faults come: kills at distinct random steps after the first months, the broker
    // restart in the middle of the year.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x50a4);
    let mut plan_faults: BTreeMap<usize, Vec<Fault>> = BTreeMap::new();
    let mut steps: Vec<usize> = (3..scenario::STEPS - 2).filter(|s| *s != 13).collect();
    for _ in 0..args.kills {
        if steps.is_empty() {
            break;
        }
        let s = steps.remove(rng.gen_range(0..steps.len()));
        let who = PROCESSES[rng.gen_range(0..PROCESSES.len())];
        let after = Duration::from_millis(rng.gen_range(0..400));
        plan_faults
            .entry(s)
            .or_default()
            .push(Fault::Kill(who, after));
    }
    if args.broker_restart.is_some() {
        plan_faults
            .entry(13)
            .or_default()
            .push(Fault::BrokerRestart);
    }
    let kills_done = Arc::new(Mutex::new(Vec::<String>::new()));
    let broker_restarts = Arc::new(Mutex::new(0u32));

    let endpoints = server::APPS
        .iter()
        .map(|a| (a.to_string(), base(a)))
        .collect();
    let apps = apps::AppsHttp::new(endpoints, mc.clone())?;
    let mut driver = Driver::new(
        &apps,
        fleet.as_ref(),
        HubClock::Follows(cfg.clock.poll_interval),
    );
    driver.outage(
        "marketo",
        scenario::OUTAGE_STEP,
        args.outage,
        fault_rules(args.faults),
    );
    {
        let (fleet, kills_done, broker_restarts) =
            (fleet.clone(), kills_done.clone(), broker_restarts.clone());
        let restart_cmd = args.broker_restart.clone();
        driver.after_actions(Box::new(move |k| {
            for f in plan_faults.get(&k).cloned().unwrap_or_default() {
                let (fleet, kills_done, broker_restarts, restart_cmd) = (
                    fleet.clone(),
                    kills_done.clone(),
                    broker_restarts.clone(),
                    restart_cmd.clone(),
                );
                let what = format!("{f:?}");
                fleet.disturb(&what, true);
                tokio::spawn(async move {
                    match f {
                        Fault::Kill(who, after) => {
                            tokio::time::sleep(after).await;
                            kill_and_start(&fleet, who).await;
                            kills_done
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(who.to_string());
                        }
                        Fault::BrokerRestart => {
                            let Some(cmd) = restart_cmd else { return };
                            println!("the broker: SIGKILL, then started again on its data ({cmd})");
                            let t = Instant::now();
                            let out = tokio::process::Command::new("sh")
                                .arg("-c")
                                .arg(&cmd)
                                .stdout(std::process::Stdio::null())
                                .output()
                                .await;
                            match out {
                                Ok(o) if o.status.success() => {
                                    *broker_restarts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                                    println!(
                                        "the broker is back after {:.1} s",
                                        t.elapsed().as_secs_f64()
                                    );
                                }
                                Ok(o) => eprintln!(
                                    "error: the broker restart failed ({}): {}",
                                    o.status,
                                    String::from_utf8_lossy(&o.stderr)
                                ),
                                Err(e) => eprintln!("error: the broker restart: {e}"),
                            }
                            // The clients reconnect with a backoff: the hub stays busy a while.
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                    }
                    fleet.disturb(&what, false);
                });
            }
        }));
    }
    let outcome = driver.year(&plan).await;
    let ran = started.elapsed();
    let result = match outcome {
        Ok(()) => report::summarise(&cluster.client, &whole, &apps, &plan, &driver, ran)
            .await
            .map(Some),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(None)
        }
    };
    stop.cancel();
    let _ = watcher.await;
    let (starts, exits) = {
        let mut procs = fleet.procs.lock().unwrap_or_else(|p| p.into_inner());
        let counts: Vec<(&str, u32, u32)> =
            procs.iter().map(|p| (p.name, p.starts, p.exits)).collect();
        for p in procs.iter_mut() {
            if let Some(c) = p.child.as_mut() {
                // SIGTERM: a clean stop, so the last offsets are committed.
                let _ = nix_term(c);
            }
        }
        for p in procs.iter_mut() {
            if let Some(mut c) = p.child.take() {
                let deadline = Instant::now() + Duration::from_secs(20);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        (
            counts.iter().map(|c| c.1).sum::<u32>(),
            counts.iter().map(|c| c.2).sum::<u32>(),
        )
    };
    mocks.shutdown().await;
    let summary = result?;
    let kills = kills_done.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let restarts = *broker_restarts.lock().unwrap_or_else(|p| p.into_inner());
    let Some(summary) = summary else {
        println!(
            "soak FAILED: the year did not finish (see the error above and {})",
            work.display()
        );
        return Ok(1);
    };
    println!();
    println!("soak: records per app, expected vs held");
    println!(
        "  {:<11} {:<52} {:>8} {:>6} {:>7} {:>5}",
        "app", "records", "expected", "held", "missing", "extra"
    );
    let (mut missing, mut extra) = (0, 0);
    for l in &summary.lines {
        let m = l.expected.saturating_sub(l.held);
        let x = l.held.saturating_sub(l.expected);
        missing += m;
        extra += x;
        println!(
            "  {:<11} {:<52} {:>8} {:>6} {:>7} {:>5}",
            l.app, l.what, l.expected, l.held, m, x
        );
    }
    println!(
        "  missing {missing}, extra (doubled) {extra}; dead letters beyond the bad inputs {}; reconciliation {}",
        summary.letters_off,
        if summary.drift { "DRIFT" } else { "no drift" }
    );
    println!(
        "  faults injected by the apps {}; the hub retried {}; connector processes SIGKILLed and started again {} ({}); ended by themselves {exits}; processes started {starts}; broker killed and restarted {restarts}",
        summary.faults,
        driver.retries(),
        kills.len(),
        kills.join(", "),
    );
    let wanted_restarts = u32::from(args.broker_restart.is_some());
    let ok = summary.code == 0
        && missing == 0
        && extra == 0
        && kills.len() == args.kills.min(scenario::STEPS)
        && restarts == wanted_restarts;
    println!(
        "soak {} in {:.1} s",
        if ok { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if ok { 0 } else { 1 })
}

/// Kills `who`'s process with SIGKILL and starts it again a second later, as a supervisor
/// would.
async fn kill_and_start(fleet: &Fleet, who: &'static str) {
    {
        let mut procs = fleet.procs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = procs.iter_mut().find(|p| p.name == who) {
            p.kill();
        }
    }
    println!("the {who} connector's process: SIGKILL; started again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut procs = fleet.procs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = procs.iter_mut().find(|p| p.name == who) {
        if let Err(e) = p.start() {
            eprintln!("error: starting {who} again: {e:#}");
        }
    }
}

/// SIGTERM to a child.
fn nix_term(c: &std::process::Child) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill -TERM failed"))
    }
}

/// Writes a process's configuration file.
fn write_config(path: &Path, cfg: &l2f_bus::BusConfig) -> Result<()> {
    let text = toml::to_string(cfg).context("writing a connector process's configuration")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The catalog topics that hold records.
fn records_held(
    client: &rdkafka::ClientConfig,
    catalog: &l2f_bus::topics::Catalog,
) -> Result<Vec<String>> {
    let consumer: BaseConsumer = client.create()?;
    let mut held = Vec::new();
    for t in &catalog.topics {
        let md = consumer.fetch_metadata(Some(&t.name), Duration::from_secs(10))?;
        let n: i64 = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| {
                consumer
                    .fetch_watermarks(&t.name, p.id(), Duration::from_secs(10))
                    .map_or(0, |(lo, hi)| hi - lo)
            })
            .sum();
        if n > 0 {
            held.push(format!("{} ({n})", t.name));
        }
    }
    Ok(held)
}
