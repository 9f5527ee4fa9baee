//! `l2f schemas ...` behaviour, through the library functions the CLI calls.

use std::path::{Path, PathBuf};

use l2f_contracts::compat::Level;
use l2f_contracts::tooling::{check, compat, fingerprint, lint_dir, load_baseline, show};

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn fingerprint_prints_canonical_form_then_signed_crc64() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pig.avsc");
    // schema-tests.txt case 033.
    std::fs::write(
        &f,
        r#"{"name":"PigValue","type":"record","fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
    )
    .unwrap();
    let r = fingerprint(&f).unwrap();
    assert_eq!(
        r.lines,
        [
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            "-1759257747318642341",
            "l2f.schema-id: e795dc6656b7e95b",
            "single-object header: c3 01 5b e9 b7 56 66 dc 95 e7",
        ]
    );
    // An event file resolves the shared types of common.avsc beside it.
    let r = fingerprint(&schemas().join("LeadCaptured.avsc")).unwrap();
    assert!(r.lines[0].starts_with(r#"{"name":"dev.l2f.events.LeadCaptured","type":"record","fields":[{"name":"envelope","type":{"name":"dev.l2f.events.Envelope""#));
    let codec = l2f_contracts::Codec::new();
    assert_eq!(
        r.lines[1],
        (codec.schema("LeadCaptured").unwrap().fingerprint() as i64).to_string()
    );
}

#[test]
fn show_prints_a_self_contained_schema_with_the_hubs_fingerprint() {
    let r = show("LeadCaptured", None).unwrap();
    let text = r.lines.join("\n");
    let dir = tempfile::tempdir().unwrap();
    // Alone in its directory: no common.avsc to lean on, every named type inlined.
    let f = dir.path().join("LeadCaptured.avsc");
    std::fs::write(&f, &text).unwrap();
    let fp = fingerprint(&f).unwrap();
    let codec = l2f_contracts::Codec::new();
    let hub = codec.schema("LeadCaptured").unwrap().fingerprint();
    assert_eq!(fp.lines[1], (hub as i64).to_string());
    assert_eq!(fp.lines[2], format!("l2f.schema-id: {hub:016x}"));
    assert!(
        text.contains("\"logicalType\": \"timestamp-millis\""),
        "{text}"
    );
    assert!(show("LeadCapture", None).is_err());
}

#[test]
fn check_passes_against_history_and_a_git_ref() {
    for level in Level::ALL {
        let baseline =
            load_baseline(schemas().join("history").to_str().unwrap(), &schemas()).unwrap();
        let r = check(&schemas(), &baseline, level).unwrap();
        assert!(r.ok, "{level:?}: {:?}", r.lines);
        assert!(
            r.lines.last().unwrap().ends_with(": compatible"),
            "{:?}",
            r.lines
        );
    }
    let at_head = load_baseline("HEAD", &schemas()).unwrap();
    assert_eq!(at_head.len(), 1);
    assert!(at_head[0].1.get("OrderPlaced").is_some());
    assert!(load_baseline("no-such-ref-xyz", &schemas()).is_err());
}

#[test]
fn check_fails_and_names_the_field_when_a_change_breaks_readers() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(schemas()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "avsc") {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let common = dir.path().join("common.avsc");
    let text = std::fs::read_to_string(&common)
        .unwrap()
        .replacen("\"ZW\"", "\"ZW\", \"XK\"", 1);
    std::fs::write(&common, text).unwrap();
    let baseline = load_baseline(schemas().join("history").to_str().unwrap(), &schemas()).unwrap();
    let r = check(dir.path(), &baseline, Level::FullTransitive).unwrap();
    assert!(!r.ok);
    assert!(
        r.lines.iter().any(|l| l.starts_with(
            "LeadCaptured.country: enum symbol XK missing in reader [forward against"
        )),
        "{:?}",
        r.lines
    );
    assert!(r.lines.iter().any(|l| l.starts_with("OrderPlaced.bill_to_country: enum symbol XK missing in reader")), "{:?}", r.lines);
    // Backward alone accepts the new symbol.
    assert!(check(dir.path(), &baseline, Level::Backward).unwrap().ok);
}

#[test]
fn compat_prints_compatible_or_one_problem_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.avsc");
    let b = dir.path().join("b.avsc");
    std::fs::write(&a, r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long"},{"name":"y","type":"string"}]}"#).unwrap();
    std::fs::write(
        &b,
        r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#,
    )
    .unwrap();
    let r = compat(&a, &b).unwrap();
    assert!(!r.ok);
    assert_eq!(r.lines.len(), 1);
    assert!(
        r.lines[0].starts_with("R.y: reader field has no default"),
        "{:?}",
        r.lines
    );
    let r = compat(&b, &b).unwrap();
    assert_eq!((r.ok, r.lines), (true, vec!["compatible".to_owned()]));
}

#[test]
fn lint_accepts_the_working_schemas_and_rejects_undocumented_or_nullable_required_fields() {
    let r = lint_dir(&schemas()).unwrap();
    assert!(r.ok, "{:?}", r.lines);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        schemas().join("common.avsc"),
        dir.path().join("common.avsc"),
    )
    .unwrap();
    let text = std::fs::read_to_string(schemas().join("EmailSent.avsc"))
        .unwrap()
        .replace("\"doc\": \"Template name, e.g. accept_terms, license, reseller_notification, renewal_notice.\"", "\"doc\": \"\"")
        .replace("\"name\": \"subject\",\n      \"type\": \"string\"", "\"name\": \"subject\",\n      \"type\": [\"null\", \"string\"]");
    std::fs::write(dir.path().join("EmailSent.avsc"), text).unwrap();
    let r = lint_dir(dir.path()).unwrap();
    assert!(!r.ok);
    assert!(
        r.lines
            .iter()
            .any(|l| l.starts_with("EmailSent.template: field has no doc")),
        "{:?}",
        r.lines
    );
    assert!(
        r.lines
            .iter()
            .any(|l| l.starts_with("EmailSent.subject: nullable")),
        "{:?}",
        r.lines
    );
}
