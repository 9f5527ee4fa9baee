//! Writes the Avro replay export that `tools/xlang/run.sh` has Apache Avro Java and fastavro
//! read back: every golden event, a record with a binary key and header, a tombstone and a
//! value that is not an Avro frame, produced to a fresh 3-partition topic of the broker at
//! `KAFKA_BOOTSTRAP` and replayed with `l2f_audit` as `l2f replay --format avro` does.
//!
//! Usage: xlang_replay OUT_DIR   (writes OUT_DIR/replay.avro and OUT_DIR/replay.summary.json)

use std::time::Duration;

use anyhow::{Context, Result};
use l2f_audit::export::Format;
use l2f_audit::range::{Bound, Filters};
use l2f_audit::replay::{export, plan};
use l2f_bus::reader::Isolation;
use l2f_bus::record::OutRecord;
use l2f_bus::Producer;
use l2f_contracts::events::EVENT_NAMES;
use l2f_contracts::{examples, Codec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[tokio::main]
async fn main() -> Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: xlang_replay OUT_DIR")?,
    );
    std::fs::create_dir_all(&out)?;
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").context("KAFKA_BOOTSTRAP is not set")?;
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let topic = format!("xlang-replay-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("create {t}: {e}"))?;
    }
    let codec = Codec::new();
    let mut records: Vec<OutRecord> = examples::encode_all(&codec)?
        .into_iter()
        .enumerate()
        .map(|(i, (name, bytes))| {
            OutRecord::new(&topic, format!("key-{i}"), bytes).with_header("l2f.event-type", name)
        })
        .collect();
    assert_eq!(records.len(), EVENT_NAMES.len());
    let mut odd = OutRecord::new(
        &topic,
        vec![0xff, 0x00, 0xfe],
        b"not an avro frame".to_vec(),
    );
    odd.headers.push(("binary".into(), Some(vec![0xc3, 0x28])));
    odd.headers.push(("empty".into(), None));
    records.push(odd);
    let mut tombstone = OutRecord::new(&topic, "key-deleted", Vec::new());
    tombstone.payload = None;
    records.push(tombstone);
    Producer::new(&client)?.send_all(&records, 100).await?;

    let header = plan(
        &client,
        std::slice::from_ref(&topic),
        &Bound::Beginning,
        &Bound::End,
        Filters::default(),
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    )?;
    let summary = export(
        &client,
        &header,
        Format::Avro,
        Some(&out.join("replay.avro")),
        Duration::from_secs(20),
        2,
        &mut |_| {},
    )?;
    std::fs::write(
        out.join("replay.summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    let _ = admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await;
    let ok = summary.records == records.len() as u64;
    println!(
        "{} rust replays {} records of {topic} to an Avro export (digest {})",
        if ok { "PASS" } else { "FAIL" },
        summary.records,
        summary.digest
    );
    std::process::exit(if ok { 0 } else { 1 })
}
