//! Bus throughput on a real broker, beside two baselines run in the same invocation with the
//! same records: kcat (librdkafka's own command-line client: the limit of the library l2f is
//! built on) and Kafka's Java perf tools. Machines are noisy: read the ratios, which compare
//! figures of one run, and the load average printed with them.
//!
//! Needs `KAFKA_BOOTSTRAP` (`make bench` starts the local Apache Kafka) and `kcat` on the
//! PATH (`scripts/install-tools.sh`). Knobs: `BENCH_RECORDS` (comma-separated counts,
//! default `200000,1000000`), `BENCH_RECORD_SIZE` (default 1024 bytes), `BENCH_JAVA=0`
//! (skip Kafka's tools), `BENCH_ONLY` (comma-separated subset of
//! `produce,consume,traced,stage,source`).
//!
//! For each count, on 6-partition topics, records keyed `acct-<i mod 1000>`:
//! - produce: `l2f_bus::Producer::send_all` (idempotent, acks=all, every delivery reported)
//!   vs `kcat -P -K '\t' -X enable.idempotence=true -X acks=all -l FILE` with the same keys
//!   and values (whole process timed), and `kafka-producer-perf-test` (acks=all,
//!   idempotent; unkeyed, its own rate).
//! - consume: the at-least-once `ConsumerLoop` with a no-op handler (offsets committed),
//!   first record to last handled, vs `kcat -C -e -o beginning -q` over the same topic (whole
//!   process: start-up included), and `kafka-consumer-perf-test` (its
//!   fetch rate, which excludes its group join as ours does).
//! - traced: the same consume loop again with spans made and exported over OTLP/HTTP (to a
//!   loopback receiver that answers 200), beside the untraced run: what tracing costs.
//! - stage: the exactly-once `TransactionalStage` (identity transform) over the same input,
//!   first record transformed to last committed, at the default 500 records per transaction
//!   (on up to 50,000 records) and at 5,000 (on up to 500,000).
//! - source: the exactly-once `SourceLoop` (a feed that answers pages of 500, then 5,000,
//!   records at once; records + cursor in one transaction), first poll to last committed.

/// The allocator `l2f` runs on (see its `main.rs`): the figures are the hub's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::consumer::LoopSettings;
use l2f_bus::dlq::DeadLetters;
use l2f_bus::record::OutRecord;
use l2f_bus::source::{Polled, Source, SourceLoop, SourceSettings};
use l2f_bus::transactional::{StageSettings, TransactionalStage};
use l2f_bus::{CancellationToken, ConsumerLoop, Handler, HandlerError, Producer, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

struct NoOp {
    first: Mutex<Option<Instant>>,
}

impl Handler for NoOp {
    async fn handle(&self, _r: &Record) -> Result<(), HandlerError> {
        let mut f = self.first.lock().unwrap();
        if f.is_none() {
            *f = Some(Instant::now());
        }
        Ok(())
    }
}

/// A feed of `n` records answered in pages, as fast as the loop asks.
struct Feed {
    topic: String,
    n: u64,
    page: u64,
    payload: Vec<u8>,
    first: Arc<Mutex<Option<Instant>>>,
}

impl Source for Feed {
    async fn poll(&mut self, cursor: Option<&serde_json::Value>) -> Result<Polled, HandlerError> {
        self.first.lock().unwrap().get_or_insert_with(Instant::now);
        let from = cursor.and_then(|c| c.as_u64()).unwrap_or(0);
        let to = (from + self.page).min(self.n);
        let records = (from..to)
            .map(|i| {
                OutRecord::new(
                    &self.topic,
                    format!("acct-{}", i % 1000),
                    self.payload.clone(),
                )
            })
            .collect();
        Ok(Polled {
            records,
            cursor: serde_json::json!(to),
            more: to < self.n,
        })
    }
}

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// CPU seconds used so far by this process and by its waited-for children (kcat, the Java
/// tools), from /proc/self/stat: a figure that the machine's load does not inflate.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0; // USER_HZ on Linux
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    // utime, stime, cutime, cstime are fields 14-17 of stat; 12-15 after the name.
    (at(11) + at(12), at(13) + at(14))
}

/// CPU seconds per million records spent between `since` and now, by us and by children.
fn cpu_since(since: (f64, f64), n: usize) -> (f64, f64) {
    let now = cpu();
    let per = 1e6 / n as f64;
    ((now.0 - since.0) * per, (now.1 - since.1) * per)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn create(client: &ClientConfig, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

async fn delete(client: &ClientConfig, names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    let _ = admin.delete_topics(names, &AdminOptions::new()).await;
}

fn kafka_tool(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/kafka/kafka.sh"
    );
    let out = Command::new(script)
        .arg("tool")
        .args(args)
        .output()
        .expect("run kafka.sh tool");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args[0],
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs kcat to its end and returns the whole process's wall time.
fn kcat(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new("kcat")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run kcat (scripts/install-tools.sh installs it)");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `N records sent, X records/sec (...)` — the summary line of ProducerPerformance.
fn parse_producer_perf(out: &str) -> f64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent"))
        .expect("summary line");
    let after = line.split(", ").nth(1).expect("rate field");
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// ConsumerPerformance's CSV line; `fetch.nMsg.sec` is its last column.
fn parse_consumer_perf(out: &str) -> f64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.split(',').count() >= 10)
        .expect("csv line");
    line.split(',').next_back().unwrap().trim().parse().unwrap()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn line(what: &str, ours: f64, kcat: Option<f64>, java: Option<f64>) {
    let mut s = format!("{what:<26} l2f {ours:>9.0} rec/s");
    if let Some(k) = kcat {
        s += &format!("   kcat {k:>9.0} rec/s   ratio {:.2}", ours / k);
    }
    if let Some(j) = java {
        s += &format!("   java tool {j:>9.0} rec/s   ratio {:.2}", ours / j);
    }
    println!("{s}");
}

struct Run {
    client: ClientConfig,
    bootstrap: String,
    n: usize,
    size: usize,
    java: bool,
    only: Vec<String>,
}

impl Run {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == part)
    }

    async fn go(&self) {
        let (n, size, bootstrap) = (self.n, self.size, self.bootstrap.as_str());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let ours = format!("bench-l2f-{id}");
        let kc = format!("bench-kcat-{id}");
        let java = format!("bench-java-{id}");
        for t in [&ours, &kc, &java] {
            create(&self.client, t, 6).await;
        }
        println!(
            "-- {n} records of {size} bytes, 6 partitions, load average {}",
            loadavg()
        );
        let payload = vec![b'x'; size];

        // Produce: ours. The topic it fills is the input of every consumer below.
        let records: Vec<OutRecord> = (0..n)
            .map(|i| OutRecord::new(&ours, format!("acct-{}", i % 1000), payload.clone()))
            .collect();
        let producer = Producer::new(&self.client).unwrap();
        let c = cpu();
        let t = Instant::now();
        let delivered = producer.send_all(&records, 100_000).await.unwrap();
        let ours_produce = rate(n, t.elapsed());
        let ours_cpu = cpu_since(c, n).0;
        assert!(
            delivered.iter().all(|d| d.offset >= 0),
            "every delivery reported"
        );
        drop(records);

        if self.wants("produce") {
            // kcat: the same keys and values from a file, the same acks and idempotence.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("records.tsv");
            {
                let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
                for i in 0..n {
                    write!(w, "acct-{}\t", i % 1000).unwrap();
                    w.write_all(&payload).unwrap();
                    w.write_all(b"\n").unwrap();
                }
            }
            let f = file.to_str().unwrap();
            let c = cpu();
            let kcat_produce = rate(
                n,
                kcat(&[
                    "-P",
                    "-b",
                    bootstrap,
                    "-t",
                    &kc,
                    "-K",
                    "\t",
                    "-X",
                    "enable.idempotence=true",
                    "-X",
                    "acks=all",
                    "-l",
                    f,
                ]),
            );
            let kcat_cpu = cpu_since(c, n).1;
            drop(dir);
            let java_produce = self.java.then(|| {
                let props = format!("bootstrap.servers={bootstrap}");
                let (ns, ss) = (n.to_string(), size.to_string());
                parse_producer_perf(&kafka_tool(&[
                    "org.apache.kafka.tools.ProducerPerformance",
                    "--topic",
                    &java,
                    "--num-records",
                    &ns,
                    "--record-size",
                    &ss,
                    "--throughput",
                    "-1",
                    "--producer-props",
                    &props,
                    "acks=all",
                    "enable.idempotence=true",
                ]))
            });
            line(
                "produce (acks=all, idem.)",
                ours_produce,
                Some(kcat_produce),
                java_produce,
            );
            println!("   (CPU s per 1M records: l2f {ours_cpu:.2}, kcat {kcat_cpu:.2})");
        }

        if self.wants("consume") {
            let c = cpu();
            let ours_consume = self.consume_loop(&ours, &producer, &id).await;
            let ours_cpu = cpu_since(c, n).0;
            let c = cpu();
            let took = kcat(&[
                "-C",
                "-b",
                bootstrap,
                "-t",
                &ours,
                "-e",
                "-o",
                "beginning",
                "-q",
            ]);
            let kcat_cpu = cpu_since(c, n).1;
            let java_consume = self.java.then(|| {
                let group = format!("bench-java-{id}");
                let ns = n.to_string();
                parse_consumer_perf(&kafka_tool(&[
                    "org.apache.kafka.tools.ConsumerPerformance",
                    "--bootstrap-server",
                    bootstrap,
                    "--topic",
                    &ours,
                    "--messages",
                    &ns,
                    "--group",
                    &group,
                    "--timeout",
                    "60000",
                ]))
            });
            line(
                "consume->no-op->commit",
                ours_consume,
                Some(rate(n, took)),
                java_consume,
            );
            println!(
                "   (CPU s per 1M records: l2f {ours_cpu:.2} (group join included), kcat {kcat_cpu:.2}; kcat -C whole process {:.2} s)",
                took.as_secs_f64()
            );
        }

        if self.wants("traced") {
            // Interleaved, two rounds, the best of each kept: the machine's noise then moves
            // every variant alike instead of whichever ran during a burst.
            let variants: [(&str, Option<f64>); 4] = [
                ("export off", None),
                ("consume, OTLP export on", Some(1.0)),
                ("consume, OTLP on, 10% sampled", Some(0.1)),
                ("consume, OTLP on, 1% sampled", Some(0.01)),
            ];
            let mut best = [0f64; 4];
            for round in 0..2 {
                for (i, (_, ratio)) in variants.iter().enumerate() {
                    match ratio {
                        None => l2f_bus::trace::disable(),
                        Some(r) => {
                            l2f_bus::trace::set_sample_ratio(*r);
                            l2f_bus::trace::enable();
                        }
                    }
                    let rate = self
                        .consume_loop(&ours, &producer, &format!("{id}-traced-{round}-{i}"))
                        .await;
                    best[i] = best[i].max(rate);
                }
            }
            l2f_bus::trace::set_sample_ratio(1.0);
            l2f_bus::trace::disable();
            let off = best[0];
            for ((what, _), rate) in variants.iter().zip(best).skip(1) {
                println!(
                    "{what:<34} {rate:>12.0} rec/s  export off {off:>10.0} rec/s  on/off {:.2}  (best of 2, interleaved)",
                    rate / off
                );
            }
        }

        // Each transaction costs a fixed ~100 ms on this broker whatever its size, so these
        // run on a bounded share of the records: at the default batch, and at ten times it.
        for (batch, m) in [(500, n.min(50_000)), (5000, n.min(500_000))] {
            if self.wants("stage") {
                let out = format!("bench-stage-{batch}-{id}");
                create(&self.client, &out, 6).await;
                let r = self
                    .stage(&ours, &out, &format!("{batch}-{id}"), batch, m)
                    .await;
                line(&format!("stage, {batch}/txn, {m} rec"), r, None, None);
                delete(&self.client, &[&out]).await;
            }
            if self.wants("source") {
                let out = format!("bench-source-{batch}-{id}");
                let offsets = format!("bench-source-offsets-{batch}-{id}");
                create(&self.client, &out, 6).await;
                create(&self.client, &offsets, 1).await;
                let r = self
                    .source(&out, &offsets, &format!("{batch}-{id}"), batch as u64, m)
                    .await;
                line(&format!("source, {batch}/txn, {m} rec"), r, None, None);
                delete(&self.client, &[&out, &offsets]).await;
            }
        }
        println!("   load average after: {}", loadavg());
        drop(producer);
        delete(&self.client, &[&ours, &kc, &java]).await;
    }

    async fn consume_loop(&self, topic: &str, producer: &Producer, id: &str) -> f64 {
        let n = self.n;
        let handler = Arc::new(NoOp {
            first: Mutex::new(None),
        });
        let dlq = DeadLetters::new(producer.clone(), format!("{topic}.dlq"), "bench");
        let settings = LoopSettings {
            group_id: format!("bench-l2f-{id}"),
            topics: vec![topic.to_string()],
            consumer: ConsumerConfig {
                max_in_flight_per_partition: 4096,
                ..ConsumerConfig::default()
            },
            retry: RetryConfig::default(),
        };
        let lp = ConsumerLoop::new(&self.client, settings, handler.clone(), dlq);
        let stats = lp.stats();
        let token = CancellationToken::new();
        let join = tokio::spawn(lp.run(token.clone()));
        while stats.handled() < n as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done = Instant::now();
        let first = handler.first.lock().unwrap().expect("records handled");
        token.cancel();
        join.await.unwrap().unwrap();
        rate(n, done - first)
    }

    async fn stage(&self, input: &str, output: &str, id: &str, batch: usize, m: usize) -> f64 {
        let first: Arc<Mutex<Option<Instant>>> = Arc::default();
        let seen = first.clone();
        let out = output.to_string();
        let transform = move |r: &Record| -> Result<Vec<OutRecord>, HandlerError> {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
            Ok(vec![OutRecord {
                topic: out.clone(),
                partition: None,
                key: r.key.clone(),
                payload: r.payload.clone(),
                headers: r.headers.clone(),
            }])
        };
        let mut settings = StageSettings::new(
            &format!("bench-stage-{id}"),
            input,
            &format!("bench-stage-{id}"),
            &format!("{output}.dlq"),
        );
        settings.batch_size = batch;
        let stage = TransactionalStage::new(&self.client, settings, transform);
        let stats = stage.stats();
        let token = CancellationToken::new();
        let join = tokio::spawn(stage.run(token.clone()));
        while stats.records_in() < m as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done = Instant::now();
        let got = stats.records_in() as usize;
        let first = first.lock().unwrap().expect("records transformed");
        token.cancel();
        join.await.unwrap().unwrap();
        rate(got, done - first)
    }

    async fn source(&self, output: &str, offsets: &str, id: &str, page: u64, m: usize) -> f64 {
        let first: Arc<Mutex<Option<Instant>>> = Arc::default();
        let feed = Feed {
            topic: output.to_string(),
            n: m as u64,
            page,
            payload: vec![b'x'; self.size],
            first: first.clone(),
        };
        let settings = SourceSettings::new(format!("bench-{id}"), offsets);
        let lp = SourceLoop::new(&self.client, settings, feed);
        let stats = lp.stats();
        let token = CancellationToken::new();
        let join = tokio::spawn(lp.run(token.clone()));
        while stats.records() < m as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done = Instant::now();
        let first = first.lock().unwrap().expect("feed polled");
        token.cancel();
        join.await.unwrap().unwrap();
        rate(m, done - first)
    }
}

/// A collector that takes every OTLP export and answers 200 (what the exporter costs the hub,
/// not what a collector costs).
fn sink_collector() -> String {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The global tracer provider exporting over OTLP/HTTP to `collector`, as `l2f run` installs
/// it with `[traces]` set. Spans are made only while `l2f_bus::trace` is enabled.
fn install_tracing(collector: &str) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_otlp::WithExportConfig as _;
    let url = format!("{collector}/v1/traces");
    let exporter = std::thread::spawn(move || {
        // http/protobuf, as `l2f run` exports unless told otherwise (the crate's own default,
        // with its `http-json` feature on, would be JSON: a few times the encoding cost).
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .expect("OTLP exporter")
    })
    .join()
    .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    provider
}

#[tokio::main]
async fn main() {
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") else {
        eprintln!("bus bench: KAFKA_BOOTSTRAP is not set (run `make bench`)");
        std::process::exit(if std::env::var("REQUIRE_KAFKA").is_ok() {
            1
        } else {
            0
        });
    };
    let counts: Vec<usize> = env_str("BENCH_RECORDS", "200000,1000000")
        .split(',')
        .map(|c| c.trim().parse().expect("BENCH_RECORDS: counts"))
        .collect();
    let size: usize = env_str("BENCH_RECORD_SIZE", "1024")
        .parse()
        .expect("BENCH_RECORD_SIZE");
    let java = env_str("BENCH_JAVA", "1") != "0";
    let only: Vec<String> = env_str("BENCH_ONLY", "")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let traced = only.is_empty() || only.iter().any(|p| p == "traced");
    let provider = traced.then(|| install_tracing(&sink_collector()));
    let kcat_version = Command::new("kcat")
        .arg("-V")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.contains("librdkafka"))
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    println!(
        "bus bench: Apache Kafka at {bootstrap}; kcat {kcat_version}; l2f on librdkafka {}",
        rdkafka::util::get_rdkafka_version().1
    );
    for n in counts {
        Run {
            client: client.clone(),
            bootstrap: bootstrap.clone(),
            n,
            size,
            java,
            only: only.clone(),
        }
        .go()
        .await;
    }
    if let Some(p) = provider {
        let _ = std::thread::spawn(move || p.shutdown()).join();
    }
}
