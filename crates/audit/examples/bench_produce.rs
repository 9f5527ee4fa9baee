//! Produces the records `make bench` replays: N `LeadCaptured` events (Avro, single-object
//! encoding, keyed by lead id, with the hub's `l2f.event-type` / `l2f.schema-id` headers and
//! a `traceparent`) into a fresh topic, then prints the topic's high watermarks.
//!
//! Usage: bench_produce BOOTSTRAP TOPIC RECORDS PARTITIONS
//!        bench_produce BOOTSTRAP TOPIC delete        (removes the topic afterwards)

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use l2f_bus::headers::{EVENT_TYPE, SCHEMA_ID};
use l2f_bus::record::OutRecord;
use l2f_bus::Producer;
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::{examples, Codec, Event};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, bootstrap, topic, delete] = args.as_slice() {
        anyhow::ensure!(
            delete == "delete",
            "usage: bench_produce BOOTSTRAP TOPIC delete"
        );
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", bootstrap);
        let admin: AdminClient<DefaultClientContext> = client.create()?;
        for r in admin
            .delete_topics(&[topic.as_str()], &AdminOptions::new())
            .await?
        {
            r.map_err(|(t, e)| anyhow::anyhow!("delete {t}: {e}"))?;
        }
        return Ok(());
    }
    let [_, bootstrap, topic, records, partitions] = args.as_slice() else {
        anyhow::bail!("usage: bench_produce BOOTSTRAP TOPIC RECORDS PARTITIONS");
    };
    let n: usize = records.parse().context("RECORDS")?;
    let partitions: i32 = partitions.parse().context("PARTITIONS")?;
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000");
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("create {t}: {e}"))?;
    }
    let codec = Codec::new();
    let producer = Producer::new(&client)?;
    let start = Instant::now();
    let chunk = 50_000;
    let mut done = 0;
    while done < n {
        let batch: Vec<OutRecord> = (done..(done + chunk).min(n))
            .map(|i| {
                let mut lead = examples::lead_captured();
                lead.envelope.event_id = uuid::Uuid::new_v4();
                lead.lead_id = format!("lead-{i:08}");
                lead.email = format!("buyer{i}@example.com");
                let bytes = codec.encode(&lead).expect("the example lead is valid");
                let fp = codec.writer_of(&bytes).expect("own frame").0.fingerprint;
                OutRecord::new(topic.as_str(), lead.lead_id.as_bytes(), bytes)
                    .with_header(EVENT_TYPE, LeadCaptured::NAME)
                    .with_header(SCHEMA_ID, format!("{fp:016x}"))
            })
            .collect();
        producer.send_all(&batch, 20_000).await?;
        done += batch.len();
    }
    eprintln!(
        "produced {n} LeadCaptured records to {topic} ({partitions} partitions) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
