//! Bus throughput on a real broker, beside Kafka's own perf tools run in the same invocation
//! with the same record size and count (machines are noisy: read the ratios).
//!
//! Needs `KAFKA_BOOTSTRAP` (`make bench` starts the local Apache Kafka). Knobs:
//! `BENCH_RECORDS` (default 200000), `BENCH_RECORD_SIZE` (default 1024 bytes).
//!
//! - produce: `l2f_bus::Producer` (idempotent, acks=all, every delivery awaited) vs
//!   `kafka-producer-perf-test` with acks=all and idempotence on.
//! - consume: the at-least-once `ConsumerLoop` with a no-op handler (offsets committed)
//!   vs `kafka-consumer-perf-test` (fetch rate, which excludes its group join, as ours does).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use l2f_bus::config::{ConsumerConfig, RetryConfig};
use l2f_bus::consumer::LoopSettings;
use l2f_bus::dlq::DeadLetters;
use l2f_bus::record::OutRecord;
use l2f_bus::{CancellationToken, ConsumerLoop, Handler, HandlerError, Producer, Record};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

struct NoOp {
    first: std::sync::Mutex<Option<Instant>>,
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

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create(client: &ClientConfig, name: &str) {
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(name, 6, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
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

fn report(name: &str, ours: f64, theirs: f64, tool: &str) {
    println!(
        "{name:<28} l2f {ours:>12.0} rec/s   {tool} {theirs:>12.0} rec/s   ratio {:.2}",
        ours / theirs
    );
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
    let n = env_usize("BENCH_RECORDS", 200_000);
    let size = env_usize("BENCH_RECORD_SIZE", 1024);
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let ours = format!("bench-l2f-{id}");
    let theirs = format!("bench-kafka-{id}");
    create(&client, &ours).await;
    create(&client, &theirs).await;
    println!("bus bench: {n} records of {size} bytes, 6 partitions, Apache Kafka at {bootstrap}");

    // Produce: ours.
    let payload = vec![b'x'; size];
    let records: Vec<OutRecord> = (0..n)
        .map(|i| OutRecord::new(&ours, format!("acct-{}", i % 1000), payload.clone()))
        .collect();
    let producer = Producer::new(&client).unwrap();
    let t = Instant::now();
    producer.send_all(&records, 100_000).await.unwrap();
    let ours_produce = n as f64 / t.elapsed().as_secs_f64();
    drop(records);

    // Produce: Kafka's tool, same count and size, acks=all, idempotent.
    let props = format!("bootstrap.servers={bootstrap}");
    let (ns, ss) = (n.to_string(), size.to_string());
    let out = kafka_tool(&[
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        &theirs,
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
    ]);
    let theirs_produce = parse_producer_perf(&out);
    report(
        "produce (acks=all, idem.)",
        ours_produce,
        theirs_produce,
        "kafka-producer-perf-test",
    );

    // Consume -> no-op -> commit: ours.
    let handler = Arc::new(NoOp {
        first: std::sync::Mutex::new(None),
    });
    let dlq = DeadLetters::new(producer.clone(), format!("{ours}.dlq"), "bench");
    let settings = LoopSettings {
        group_id: format!("bench-l2f-{id}"),
        topics: vec![ours.clone()],
        consumer: ConsumerConfig {
            max_in_flight_per_partition: 4096,
            ..ConsumerConfig::default()
        },
        retry: RetryConfig::default(),
    };
    let lp = ConsumerLoop::new(&client, settings, handler.clone(), dlq);
    let stats = lp.stats();
    let token = CancellationToken::new();
    let join = tokio::spawn(lp.run(token.clone()));
    while stats.handled() < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = Instant::now();
    let first = handler.first.lock().unwrap().expect("records handled");
    let ours_consume = n as f64 / (done - first).as_secs_f64();
    token.cancel();
    join.await.unwrap().unwrap();

    // Consume: Kafka's tool on its own topic (same count and size).
    let group = format!("bench-kafka-{id}");
    let out = kafka_tool(&[
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &theirs,
        "--messages",
        &ns,
        "--group",
        &group,
        "--timeout",
        "60000",
    ]);
    let theirs_consume = parse_consumer_perf(&out);
    report(
        "consume->no-op->commit",
        ours_consume,
        theirs_consume,
        "kafka-consumer-perf-test",
    );
}
