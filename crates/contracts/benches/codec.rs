//! Records per second for the Avro codec (validation, framing and schema checks included)
//! beside serde_json on the same structs, for LeadCaptured and OrderPlaced.
//! Targets (issue 3): Avro encode at least as fast as serde_json encode; Avro decode
//! ≥ 1.5 M records/s on one core. Run with `cargo bench -p l2f-contracts --bench codec`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use l2f_contracts::events::{LeadCaptured, OrderPlaced};
use l2f_contracts::examples::{lead_captured, order_placed};
use l2f_contracts::{Codec, Event};

fn bench_event<E: Event>(c: &mut Criterion, codec: &Codec, event: E) {
    let mut group = c.benchmark_group(E::NAME);
    group.throughput(Throughput::Elements(1));
    let avro = codec.encode(&event).expect("golden encodes");
    let json = serde_json::to_vec(&event).expect("golden serialises");
    let mut buf = Vec::with_capacity(1024);
    group.bench_function("avro_encode", |b| {
        b.iter(|| {
            buf.clear();
            codec
                .encode_into(black_box(&event), &mut buf)
                .expect("encodes");
            black_box(buf.len())
        })
    });
    group.bench_function("json_encode", |b| {
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&event)).expect("serialises");
            black_box(buf.len())
        })
    });
    group.bench_function("avro_decode", |b| {
        b.iter(|| black_box(codec.decode::<E>(black_box(&avro)).expect("decodes")))
    });
    group.bench_function("json_decode", |b| {
        b.iter(|| black_box(serde_json::from_slice::<E>(black_box(&json)).expect("parses")))
    });
    group.finish();
}

/// Schema resolution: a frame written with the released v1 schema, read into today's type
/// through the schema-driven path (serde_avro_fast over the writer's schema).
fn bench_resolution(c: &mut Criterion, codec: &Codec) {
    let v1 = &l2f_contracts::Catalog::embedded_history()[0].1;
    let schema = v1.get("LeadCaptured").expect("v1 has LeadCaptured");
    let fast: serde_avro_fast::Schema = schema
        .to_full_json()
        .to_string()
        .parse()
        .expect("v1 parses");
    let mut json = serde_json::to_value(lead_captured()).expect("golden serialises");
    json.as_object_mut().expect("record").remove("utm_campaign");
    let mut frame = vec![0xC3, 0x01];
    frame.extend_from_slice(&schema.fingerprint().to_le_bytes());
    let frame = serde_avro_fast::to_datum(
        &json,
        frame,
        &mut serde_avro_fast::ser::SerializerConfig::new(&fast),
    )
    .expect("v1 frame");
    let mut group = c.benchmark_group("LeadCaptured");
    group.throughput(Throughput::Elements(1));
    group.bench_function("avro_decode_v1_writer_resolved", |b| {
        b.iter(|| {
            black_box(
                codec
                    .decode::<LeadCaptured>(black_box(&frame))
                    .expect("decodes"),
            )
        })
    });
    group.finish();
}

fn codec_benches(c: &mut Criterion) {
    let codec = Codec::new();
    bench_event::<LeadCaptured>(c, &codec, lead_captured());
    bench_event::<OrderPlaced>(c, &codec, order_placed());
    bench_resolution(c, &codec);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = codec_benches
}
criterion_main!(benches);
