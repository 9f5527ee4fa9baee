//! Evolution: the working schemas stay compatible with every released version, newer readers
//! read older data and older readers read newer data, and breaking changes are caught with
//! the field named.

use l2f_contracts::compat::{check, check_level, Level};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::{golden_json, lead_captured};
use l2f_contracts::{Catalog, Codec, Schema};
use serde::Deserialize;

fn history() -> &'static [(String, Catalog)] {
    Catalog::embedded_history()
}

fn v1_lead() -> &'static Schema {
    history()[0].1.get("LeadCaptured").unwrap()
}

/// Events added since the last release (schemas/history): released with the next version.
const UNRELEASED: &[&str] = &["CommunicationProfileChanged", "EmailSuppressed"];

#[test]
fn working_schemas_are_compatible_with_history_at_every_level() {
    let working = Catalog::embedded();
    assert!(!history().is_empty());
    for (name, schema) in working.events() {
        let previous: Vec<(String, Schema)> = history()
            .iter()
            .filter_map(|(label, c)| c.get(name).map(|s| (label.clone(), s.clone())))
            .collect();
        if previous.is_empty() {
            // Added since the last release: nothing old to stay compatible with, but each must
            // be named here, so no event loses its history by accident.
            assert!(
                UNRELEASED.contains(&name),
                "{name} has no released version and is not listed as new"
            );
            continue;
        }
        for level in Level::ALL {
            let problems = check_level(schema, &previous, level);
            assert!(problems.is_empty(), "{name} at {level:?}: {problems:?}");
        }
    }
    // The catalog on disk is the one compiled in.
    let on_disk =
        Catalog::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas"))
            .unwrap();
    for (name, s) in working.events() {
        assert_eq!(
            on_disk.get(name).unwrap().canonical_form(),
            s.canonical_form(),
            "{name}"
        );
    }
}

#[test]
fn a_newer_reader_reads_data_written_with_v1() {
    // Write a LeadCaptured frame the way a v1 producer did: v1 schema, no utm_campaign.
    let v1 = v1_lead();
    let fast: serde_avro_fast::Schema = v1.to_full_json().to_string().parse().unwrap();
    let mut json = golden_json("LeadCaptured").unwrap();
    json.as_object_mut().unwrap().remove("utm_campaign");
    let mut frame = vec![0xC3, 0x01];
    frame.extend_from_slice(&v1.fingerprint().to_le_bytes());
    let frame = serde_avro_fast::to_datum(
        &json,
        frame,
        &mut serde_avro_fast::ser::SerializerConfig::new(&fast),
    )
    .unwrap();

    let codec = Codec::new();
    assert_ne!(
        v1.fingerprint(),
        codec.schema("LeadCaptured").unwrap().fingerprint()
    );
    let decoded: LeadCaptured = codec.decode(&frame).unwrap();
    let mut expected = lead_captured();
    expected.utm_campaign = None;
    assert_eq!(decoded, expected);
}

/// The Rust type a v1 consumer was built with.
#[derive(Debug, PartialEq, Deserialize)]
struct LeadCapturedV1 {
    lead_id: String,
    email: String,
    first_name: Option<String>,
    country: Option<String>,
    marketing_opt_in: bool,
}

#[test]
fn a_v1_reader_reads_data_written_with_the_working_schema() {
    let codec = Codec::new();
    let lead = lead_captured();
    let frame = codec.encode(&lead).unwrap();
    // The checker agrees that v1 can read it ...
    assert_eq!(
        check(v1_lead(), codec.schema("LeadCaptured").unwrap()),
        vec![]
    );
    // ... and a v1 consumer does: it resolves the writer's schema (found by fingerprint) to its
    // own fields, skipping utm_campaign.
    let (writer, payload) = codec.writer_of(&frame).unwrap();
    let fast: serde_avro_fast::Schema = writer.schema.to_full_json().to_string().parse().unwrap();
    let old: LeadCapturedV1 = serde_avro_fast::from_datum_slice(payload, &fast).unwrap();
    assert_eq!(
        old,
        LeadCapturedV1 {
            lead_id: lead.lead_id,
            email: lead.email,
            first_name: lead.first_name,
            country: Some("GB".into()),
            marketing_opt_in: true,
        }
    );
}

fn modified(
    event: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> Schema {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let mut common: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("common.avsc")).unwrap()).unwrap();
    let mut ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{event}.avsc"))).unwrap())
            .unwrap();
    edit(&mut common, &mut ev);
    let files = vec![
        ("common.avsc".to_owned(), common.to_string()),
        (format!("{event}.avsc"), ev.to_string()),
    ];
    Catalog::from_files(&files)
        .unwrap()
        .get(event)
        .unwrap()
        .clone()
}

fn problems(new: &Schema, level: Level) -> Vec<String> {
    let previous: Vec<(String, Schema)> = history()
        .iter()
        .map(|(l, c)| (l.clone(), c.get("LeadCaptured").unwrap().clone()))
        .collect();
    check_level(new, &previous, level)
        .iter()
        .map(|p| p.incompatibility.to_string())
        .collect()
}

#[test]
fn adding_a_country_symbol_breaks_forward_compatibility_and_names_the_field() {
    let with_xk = modified("LeadCaptured", |common, _| {
        let cc = common
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|t| t["name"] == "CountryCode")
            .unwrap();
        cc["symbols"].as_array_mut().unwrap().push("XK".into());
    });
    assert_eq!(problems(&with_xk, Level::Backward), Vec::<String>::new());
    assert_eq!(
        problems(&with_xk, Level::FullTransitive),
        vec!["LeadCaptured.country: enum symbol XK missing in reader"]
    );
}

#[test]
fn a_new_required_field_breaks_backward_compatibility_and_names_the_field() {
    let with_score = modified("LeadCaptured", |_, ev| {
        ev["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "score", "type": "int", "doc": "Lead score."}));
    });
    assert_eq!(
        problems(&with_score, Level::Backward),
        vec!["LeadCaptured.score: reader field has no default and the writer does not write it"]
    );
    assert_eq!(problems(&with_score, Level::Forward), Vec::<String>::new());
}

#[test]
fn changing_a_field_type_is_caught_in_nested_records() {
    let s = modified("OrderPlaced", |common, _| {
        let money = common
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|t| t["name"] == "Money")
            .unwrap();
        money["fields"][1]["type"] = "int".into();
    });
    let previous = vec![(
        "v1".to_owned(),
        history()[0].1.get("OrderPlaced").unwrap().clone(),
    )];
    let found: Vec<String> = check_level(&s, &previous, Level::Backward)
        .iter()
        .map(|p| p.incompatibility.to_string())
        .collect();
    assert!(found.contains(&"OrderPlaced.lines[].unit_price.currency: reader type int cannot read writer type string".to_owned()), "{found:?}");
}

#[test]
fn the_codec_refuses_a_writer_schema_its_reader_cannot_resolve() {
    let codec = Codec::new();
    let bad = modified("LeadCaptured", |_, ev| {
        ev["fields"][2]["type"] = "int".into(); // email: string -> int
    });
    let err = codec
        .add_writer_schema(bad, Some(99))
        .unwrap_err()
        .to_string();
    assert!(err.contains("LeadCaptured.email"), "{err}");
}

#[test]
fn frames_of_every_released_version_decode_into_todays_types() {
    // Guards the Rust side of resolution: a field added since a release must have a serde
    // default in the type that matches the schema default, or old frames would not decode.
    let codec = Codec::new();
    for (label, catalog) in history() {
        for (name, old) in catalog.events() {
            let Some(l2f_contracts::schema::Named::Record(r)) = old.root_named() else {
                panic!("{label}/{name}: not a record");
            };
            let mut json = golden_json(name).unwrap();
            json.as_object_mut()
                .unwrap()
                .retain(|k, _| r.fields.iter().any(|f| &f.name == k));
            let fast: serde_avro_fast::Schema = old.to_full_json().to_string().parse().unwrap();
            let mut frame = vec![0xC3, 0x01];
            frame.extend_from_slice(&old.fingerprint().to_le_bytes());
            let frame = serde_avro_fast::to_datum(
                &json,
                frame,
                &mut serde_avro_fast::ser::SerializerConfig::new(&fast),
            )
            .unwrap_or_else(|e| panic!("{label}/{name}: {e}"));
            let decoded = l2f_contracts::with_event_type!(name, T, {
                codec
                    .decode::<T>(&frame)
                    .map(|e| serde_json::to_value(e).unwrap())
            })
            .unwrap_or_else(|e| panic!("{label}/{name}: {e}"));
            assert_eq!(decoded["envelope"], json["envelope"], "{label}/{name}");
        }
    }
}
