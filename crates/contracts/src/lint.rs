//! House rules for the schemas that Avro itself does not enforce: every type and field
//! documented, required fields never nullable, optional fields say so and default to null,
//! one namespace, every event starts with the envelope, and `CountryCode` is exactly the
//! assigned ISO 3166-1 alpha-2 list.

use crate::catalog::Catalog;
use crate::country::CountryCode;
use crate::schema::{simple_name, Named, Node, Primitive, Schema};

/// The one namespace of every named type.
pub const NAMESPACE: &str = "dev.l2f.events";

/// Envelope fields DESIGN.md calls required.
pub const REQUIRED_ENVELOPE_FIELDS: &[&str] =
    &["event_id", "occurred_at", "source", "correlation_id"];

/// Prefix of the doc of a field allowed to be null.
pub const OPTIONAL_DOC_PREFIX: &str = "Optional:";

fn is_nullable(n: &Node) -> bool {
    matches!(n, Node::Union(bs) if bs.iter().any(|b| matches!(b, Node::Primitive(Primitive::Null, _))))
}

/// Every broken rule, one line each, starting with the type or field at fault.
pub fn lint(catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    let mut types: std::collections::BTreeMap<&str, &Named> = catalog
        .common()
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    for (name, schema) in catalog.events() {
        lint_event(name, schema, &mut out);
        for (k, v) in &schema.named {
            types.insert(k.as_str(), v);
        }
    }
    for (full, def) in types {
        lint_named(full, def, &mut out);
    }
    out
}

fn lint_event(file: &str, schema: &Schema, out: &mut Vec<String>) {
    let Some(Named::Record(r)) = schema.root_named() else {
        out.push(format!(
            "{file}.avsc: an event schema's root must be a record"
        ));
        return;
    };
    if simple_name(&r.name) != file {
        out.push(format!(
            "{file}.avsc: defines {} (file and record names must match)",
            r.name
        ));
    }
    match r.fields.first() {
        Some(f)
            if f.name == "envelope" && f.node == Node::Named(format!("{NAMESPACE}.Envelope")) => {}
        _ => out.push(format!(
            "{file}: the first field must be `envelope` of type Envelope"
        )),
    }
}

fn lint_named(full: &str, def: &Named, out: &mut Vec<String>) {
    let short = simple_name(full);
    if full != format!("{NAMESPACE}.{short}") {
        out.push(format!("{full}: namespace must be {NAMESPACE}"));
    }
    match def {
        Named::Record(r) => {
            if r.doc.as_deref().is_none_or(|d| d.trim().is_empty()) {
                out.push(format!("{short}: record has no doc"));
            }
            for f in &r.fields {
                let path = format!("{short}.{}", f.name);
                let doc = f.doc.as_deref().unwrap_or("").trim();
                if doc.is_empty() {
                    out.push(format!("{path}: field has no doc"));
                }
                let says_optional = doc.starts_with(OPTIONAL_DOC_PREFIX);
                let nullable = is_nullable(&f.node);
                if short == "Envelope"
                    && REQUIRED_ENVELOPE_FIELDS.contains(&f.name.as_str())
                    && nullable
                {
                    out.push(format!(
                        "{path}: required by DESIGN.md, must not be nullable"
                    ));
                } else if nullable && !says_optional {
                    out.push(format!(
                        "{path}: nullable, but the doc does not start with {OPTIONAL_DOC_PREFIX:?} (required fields are never nullable)"
                    ));
                } else if says_optional && !nullable {
                    out.push(format!(
                        "{path}: doc says optional but the type is not nullable"
                    ));
                }
                if nullable {
                    let null_first = matches!(&f.node, Node::Union(bs) if matches!(bs.first(), Some(Node::Primitive(Primitive::Null, _))));
                    if !null_first || f.default != Some(serde_json::Value::Null) {
                        out.push(format!(
                            "{path}: optional fields are [\"null\", T] with default null"
                        ));
                    }
                }
            }
        }
        Named::Enum(e) => {
            if e.doc.as_deref().is_none_or(|d| d.trim().is_empty()) {
                out.push(format!("{short}: enum has no doc"));
            }
            if short == "CountryCode" {
                let iso: Vec<&str> = CountryCode::all().collect();
                let ours: Vec<&str> = e.symbols.iter().map(String::as_str).collect();
                if iso != ours {
                    let missing: Vec<&&str> = iso.iter().filter(|c| !ours.contains(c)).collect();
                    let extra: Vec<&&str> = ours.iter().filter(|c| !iso.contains(c)).collect();
                    out.push(format!(
                        "CountryCode: must be exactly the 249 assigned ISO 3166-1 alpha-2 codes, sorted (missing {missing:?}, not assigned {extra:?})"
                    ));
                }
            }
        }
        Named::Fixed(_) => {}
    }
}
