//! Contract tests for every event: golden examples round-trip; records that break the
//! contract cannot be encoded, and the error names the field.

use l2f_contracts::events::*;
use l2f_contracts::examples::{self, encode_all, golden_json};
use l2f_contracts::validate::check_json;
use l2f_contracts::{lint, Catalog, Codec, Error, Framing};
use serde_json::Value;

fn violations(e: Error) -> Vec<l2f_contracts::Violation> {
    match e {
        Error::Invalid(v) => v,
        other => panic!("expected Error::Invalid, got {other}"),
    }
}

#[test]
fn catalog_has_every_event_of_design_md_and_passes_lint() {
    let catalog = Catalog::embedded();
    let names: Vec<&str> = catalog.events().map(|(n, _)| n).collect();
    for e in EVENT_NAMES {
        assert!(names.contains(e), "{e} missing from schemas/");
    }
    assert_eq!(names.len(), EVENT_NAMES.len());
    assert_eq!(lint::lint(catalog), Vec::<String>::new());
}

#[test]
fn golden_examples_round_trip_for_every_event() {
    let codec = Codec::new();
    let encoded = encode_all(&codec).unwrap();
    assert_eq!(encoded.len(), l2f_contracts::events::EVENT_NAMES.len());
    assert_eq!(encoded.len(), 16);
    for (name, bytes) in encoded {
        assert_eq!(&bytes[..2], &[0xC3, 0x01], "{name}");
        assert!(
            examples::decodes_to_golden(&codec, name, &bytes).unwrap(),
            "{name}"
        );
        let (decoded_name, json) = codec.decode_json(&bytes).unwrap();
        assert_eq!(decoded_name, name);
        assert!(json.get("envelope").is_some(), "{name}: {json}");
    }
}

#[test]
fn types_match_schemas() {
    // Fails when a Rust type and its .avsc drift: a field renamed, added or removed on one
    // side, or a type that no longer fits (every optional field is filled in the goldens).
    let catalog = Catalog::embedded();
    for name in EVENT_NAMES {
        let json = golden_json(name).unwrap();
        let schema = catalog.get(name).unwrap();
        assert_eq!(check_json(schema, &json, name), vec![], "{name}");
        fn no_nulls(v: &Value, path: &str) {
            match v {
                Value::Null => panic!("{path}: golden examples fill every optional field"),
                Value::Object(m) => m
                    .iter()
                    .for_each(|(k, x)| no_nulls(x, &format!("{path}.{k}"))),
                Value::Array(xs) => xs.iter().for_each(|x| no_nulls(x, path)),
                _ => {}
            }
        }
        no_nulls(&json, name);
    }
    // Rust enums and Avro enums have the same symbols in the same order.
    let common = catalog.common();
    for (name, symbols) in [
        ("SourceSystem", SourceSystem::SYMBOLS),
        ("SalesChannel", SalesChannel::SYMBOLS),
        ("Deployment", Deployment::SYMBOLS),
        ("ZuoraEntity", ZuoraEntity::SYMBOLS),
        ("BillingBatch", BillingBatch::SYMBOLS),
        ("CommunicationProfile", CommunicationProfile::SYMBOLS),
        ("CancellationReason", CancellationReason::SYMBOLS),
        ("LeadSource", LeadSource::SYMBOLS),
        ("OrderType", OrderType::SYMBOLS),
        ("LicenseHoldReason", LicenseHoldReason::SYMBOLS),
    ] {
        match common.get(&format!("dev.l2f.events.{name}")) {
            Some(l2f_contracts::schema::Named::Enum(e)) => assert_eq!(e.symbols, symbols, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_missing_required_field_cannot_be_encoded_and_the_error_names_it() {
    let codec = Codec::new();
    let catalog = Catalog::embedded();
    let mut checked = 0;
    for name in EVENT_NAMES {
        let golden = golden_json(name).unwrap();
        let Some(l2f_contracts::schema::Named::Record(r)) = catalog.get(name).unwrap().root_named()
        else {
            panic!("{name} is not a record");
        };
        for f in r.fields.iter().filter(|f| f.default.is_none()) {
            let mut broken = golden.clone();
            broken.as_object_mut().unwrap().remove(&f.name);
            let v = violations(codec.encode_json(name, &broken).unwrap_err());
            let path = format!("{name}.{}", f.name);
            assert!(
                v.iter().any(|x| x.field == path && x.value == "missing"),
                "{path}: {v:?}"
            );
            checked += 1;
        }
        // The envelope's required fields too.
        for f in ["event_id", "occurred_at", "source", "correlation_id"] {
            let mut broken = golden.clone();
            broken["envelope"].as_object_mut().unwrap().remove(f);
            let v = violations(codec.encode_json(name, &broken).unwrap_err());
            assert!(
                v.iter().any(|x| x.field == format!("{name}.envelope.{f}")),
                "{v:?}"
            );
        }
        // A null in a required field is the same as missing.
        let mut broken = golden.clone();
        broken["envelope"]["event_id"] = Value::Null;
        assert!(codec.encode_json(name, &broken).is_err());
        // And the untouched golden encodes through the JSON path to the typed bytes.
        assert_eq!(
            codec.encode_json(name, &golden).unwrap(),
            encode_all(&codec)
                .unwrap()
                .into_iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
        );
    }
    assert!(checked > 80, "{checked}");
}

#[test]
fn country_uk_or_zz_cannot_be_encoded_and_the_error_names_the_field() {
    let codec = Codec::new();
    for (event, field) in [
        ("LeadCaptured", "country"),
        ("OrderPlaced", "bill_to_country"),
        ("SubscriptionCreated", "bill_to_country"),
    ] {
        for bad in ["UK", "ZZ", "gb", "United Kingdom", ""] {
            let mut json = golden_json(event).unwrap();
            json[field] = Value::String(bad.into());
            let err = codec.encode_json(event, &json).unwrap_err();
            let text = err.to_string();
            let v = violations(err);
            assert_eq!(v.len(), 1, "{v:?}");
            assert_eq!(v[0].field, format!("{event}.{field}"));
            assert_eq!(v[0].value, format!("{bad:?}"));
            assert!(
                text.contains(&format!("{event}.{field}")) && text.contains(bad),
                "{text}"
            );
        }
    }
    // The typed API cannot even hold such a value.
    assert!("UK".parse::<CountryCode>().is_err());
    assert!("ZZ".parse::<CountryCode>().is_err());
}

#[test]
fn semantic_rules_are_enforced_with_field_names() {
    let codec = Codec::new();
    let mut lead = examples::lead_captured();
    lead.email = "not-an-email".into();
    let v = violations(codec.encode(&lead).unwrap_err());
    assert_eq!(v[0].field, "LeadCaptured.email");
    assert_eq!(v[0].value, "\"not-an-email\"");

    let mut sub = examples::subscription_created();
    sub.seats = 0;
    sub.term_end = sub.term_start;
    sub.amount.amount = rust_decimal::Decimal::new(-100, 2);
    let fields: Vec<String> = violations(codec.encode(&sub).unwrap_err())
        .into_iter()
        .map(|x| x.field)
        .collect();
    assert_eq!(
        fields,
        [
            "SubscriptionCreated.seats",
            "SubscriptionCreated.term_end",
            "SubscriptionCreated.amount.amount"
        ]
    );

    let mut order = examples::order_placed();
    order.lines[1].quantity = -1;
    order.lines[0].unit_price.currency = "usd".into();
    order.reseller = None;
    let fields: Vec<String> = violations(codec.encode(&order).unwrap_err())
        .into_iter()
        .map(|x| x.field)
        .collect();
    assert_eq!(
        fields,
        [
            "OrderPlaced.lines[0].unit_price.currency",
            "OrderPlaced.lines[1].quantity",
            "OrderPlaced.reseller"
        ]
    );

    let mut usage = examples::usage_reported();
    usage.billable_users = 41;
    assert_eq!(
        violations(codec.encode(&usage).unwrap_err())[0].field,
        "UsageReported.billable_users"
    );

    let mut notice = examples::renewal_notice_due();
    notice.days_before_term_end = 30;
    assert_eq!(
        violations(codec.encode(&notice).unwrap_err())[0].field,
        "RenewalNoticeDue.days_before_term_end"
    );
}

#[test]
fn optional_fields_may_be_null_and_round_trip() {
    let codec = Codec::new();
    let mut lead = examples::lead_captured();
    lead.first_name = None;
    lead.company = None;
    lead.country = None;
    lead.envelope.causation_id = None;
    let bytes = codec.encode(&lead).unwrap();
    assert_eq!(codec.decode::<LeadCaptured>(&bytes).unwrap(), lead);
}

#[test]
fn frames_are_checked_before_they_are_sliced() {
    let codec = Codec::new();
    let bytes = codec.encode(&examples::lead_captured()).unwrap();
    for n in 0..10 {
        let e = codec.decode::<LeadCaptured>(&bytes[..n]).unwrap_err();
        assert!(matches!(e, Error::ShortFrame { .. }), "{n}: {e}");
    }
    let e = codec.decode::<LeadCaptured>(&bytes[..20]).unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    for n in 0..5 {
        let frame = [0u8, 0, 0, 0, 7];
        assert!(
            matches!(
                codec.decode::<LeadCaptured>(&frame[..n]),
                Err(Error::ShortFrame { .. })
            ),
            "{n}"
        );
    }
    assert!(matches!(
        codec.decode::<LeadCaptured>(&[0, 0, 0, 0, 7, 1]),
        Err(Error::UnknownSchemaId(7))
    ));
    assert!(matches!(
        codec.decode::<LeadCaptured>(&[0x7B, 1, 2]),
        Err(Error::BadMagic(_))
    ));
    let mut wrong_fp = bytes.clone();
    wrong_fp[2] ^= 0xFF;
    assert!(matches!(
        codec.decode::<LeadCaptured>(&wrong_fp),
        Err(Error::UnknownFingerprint(_))
    ));
    assert!(matches!(
        codec.decode::<OrderPlaced>(&bytes),
        Err(Error::WrongEvent { .. })
    ));
}

#[test]
fn confluent_framing_uses_the_registry_id() {
    let codec = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    let lead = examples::lead_captured();
    assert!(matches!(codec.encode(&lead), Err(Error::Registry(_))));
    codec.set_schema_id("LeadCaptured", 0x0102_0304).unwrap();
    let bytes = codec.encode(&lead).unwrap();
    assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
    assert_eq!(codec.decode::<LeadCaptured>(&bytes).unwrap(), lead);
    // Single-object frames still decode with the same codec.
    let so = Codec::new().encode(&lead).unwrap();
    assert_eq!(codec.decode::<LeadCaptured>(&so).unwrap(), lead);
}

#[test]
fn the_typed_fast_path_is_enabled_for_every_event_and_writes_what_the_schema_says() {
    let codec = Codec::new();
    for (name, bytes) in encode_all(&codec).unwrap() {
        let (writer, _) = codec.writer_of(&bytes).unwrap();
        assert!(
            writer.typed,
            "{name}: fast path disabled, type and schema drifted"
        );
    }
    // Amounts around every byte boundary of the two's-complement encoding.
    let schema = codec.schema("SubscriptionRenewed").unwrap();
    let slow_schema: serde_avro_fast::Schema = schema.to_full_json().to_string().parse().unwrap();
    for cents in [
        0i64,
        1,
        127,
        128,
        255,
        256,
        32767,
        32768,
        65535,
        8_388_607,
        8_388_608,
        999_999_999_999,
        123_456_789_012_345_678,
    ] {
        let mut e = examples::subscription_renewed();
        e.amount.amount = rust_decimal::Decimal::new(cents, 2);
        let mut fast = Vec::new();
        l2f_contracts::fast::AvroEncode::encode(&e, &mut fast);
        let slow = serde_avro_fast::to_datum(
            &e,
            Vec::new(),
            &mut serde_avro_fast::ser::SerializerConfig::new(&slow_schema),
        )
        .unwrap();
        assert_eq!(fast, slow, "{cents}");
        let frame = codec.encode(&e).unwrap();
        assert_eq!(
            codec.decode::<SubscriptionRenewed>(&frame).unwrap(),
            e,
            "{cents}"
        );
    }
    // A whole-unit amount with scale 0 is rescaled like the schema-driven encoder does.
    let mut e = examples::subscription_renewed();
    e.amount.amount = rust_decimal::Decimal::new(42, 0);
    let frame = codec.encode(&e).unwrap();
    assert_eq!(
        codec
            .decode::<SubscriptionRenewed>(&frame)
            .unwrap()
            .amount
            .amount,
        rust_decimal::Decimal::new(4200, 2)
    );
}

#[test]
fn a_schema_that_drifts_from_its_type_turns_the_fast_path_off_but_still_encodes_by_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let common = std::fs::read_to_string(dir.join("common.avsc")).unwrap();
    let mut lead: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("LeadCaptured.avsc")).unwrap())
            .unwrap();
    lead["fields"].as_array_mut().unwrap().swap(1, 2); // email before lead_id
    let catalog = Catalog::from_files(&[
        ("common.avsc".into(), common),
        ("LeadCaptured.avsc".into(), lead.to_string()),
    ])
    .unwrap();
    let codec = Codec::with_catalog(&catalog, Framing::SingleObject).unwrap();
    let frame = codec.encode(&examples::lead_captured()).unwrap();
    let (writer, payload) = codec.writer_of(&frame).unwrap();
    assert!(!writer.typed);
    // email is now the first string after the envelope.
    let email = b"ada.lovelace@example.co.uk";
    assert!(payload.windows(email.len()).any(|w| w == email));
    assert_eq!(
        codec.decode::<LeadCaptured>(&frame).unwrap(),
        examples::lead_captured()
    );
}

#[test]
fn truncated_or_corrupted_frames_fail_cleanly_for_every_event() {
    let codec = Codec::new();
    for (name, frame) in encode_all(&codec).unwrap() {
        for n in 10..frame.len() {
            let r = l2f_contracts::with_event_type!(name, T, {
                codec.decode::<T>(&frame[..n]).map(|_| ())
            });
            assert!(r.is_err(), "{name} truncated to {n} bytes decoded");
        }
        let mut longer = frame.clone();
        longer.push(0);
        let r =
            l2f_contracts::with_event_type!(name, T, { codec.decode::<T>(&longer).map(|_| ()) });
        assert!(
            matches!(r, Err(Error::Decode { .. })),
            "{name} with a trailing byte: {r:?}"
        );
        for i in 10..frame.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = frame.clone();
                bad[i] ^= flip;
                // Must not panic; the result may be a different valid record or an error.
                let _ = l2f_contracts::with_event_type!(name, T, {
                    codec.decode::<T>(&bad).map(|_| ())
                });
            }
        }
    }
}

#[test]
fn the_codec_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let codec = std::sync::Arc::new(Codec::new());
    shareable(&codec);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let codec = codec.clone();
            std::thread::spawn(move || {
                codec
                    .decode::<LeadCaptured>(&codec.encode(&examples::lead_captured()).unwrap())
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), examples::lead_captured());
    }
}

#[test]
fn an_incomplete_lead_names_the_fields_marketo_still_needs() {
    assert!(examples::lead_captured().missing_for_marketo().is_empty());
    let mut lead = examples::lead_captured();
    lead.company = Some("  ".into());
    lead.country = None;
    lead.first_name = None;
    assert_eq!(
        lead.missing_for_marketo(),
        [
            "LeadCaptured.first_name",
            "LeadCaptured.company",
            "LeadCaptured.country"
        ]
    );
    // It is still a valid event on the leads topic.
    assert!(Codec::new().encode(&lead).is_ok());
}
