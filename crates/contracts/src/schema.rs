//! Our own model of an Avro schema, parsed from JSON.
//!
//! We parse schemas ourselves (rather than through a codec crate) because the
//! compatibility checker, the Parsing Canonical Form and the lint all need the
//! full picture: docs, defaults, aliases, logical types and named references
//! across files. Named types live in one table; the tree refers to them by
//! full name, so recursive and shared types need no special casing.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::error::SchemaError;

/// Primitive Avro types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// `null`
    Null,
    /// `boolean`
    Boolean,
    /// `int` (32-bit)
    Int,
    /// `long` (64-bit)
    Long,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `bytes`
    Bytes,
    /// `string`
    String,
}

impl Primitive {
    /// The type's name in schema JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Primitive::Null => "null",
            Primitive::Boolean => "boolean",
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::Bytes => "bytes",
            Primitive::String => "string",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "null" => Primitive::Null,
            "boolean" => Primitive::Boolean,
            "int" => Primitive::Int,
            "long" => Primitive::Long,
            "float" => Primitive::Float,
            "double" => Primitive::Double,
            "bytes" => Primitive::Bytes,
            "string" => Primitive::String,
            _ => return None,
        })
    }
}

/// Logical types we recognise; unknown ones are kept by name and ignored, as the spec says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logical {
    /// `decimal` with precision and scale.
    Decimal {
        /// Total number of digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `uuid` over string.
    Uuid,
    /// `date`: days since the epoch, over int.
    Date,
    /// `time-millis` over int.
    TimeMillis,
    /// `time-micros` over long.
    TimeMicros,
    /// `timestamp-millis` over long.
    TimestampMillis,
    /// `timestamp-micros` over long.
    TimestampMicros,
    /// `local-timestamp-millis` over long.
    LocalTimestampMillis,
    /// `local-timestamp-micros` over long.
    LocalTimestampMicros,
    /// `duration` over fixed(12).
    Duration,
    /// Any other name: the spec says readers ignore it.
    Other(String),
}

impl Logical {
    /// The logical type's name in schema JSON.
    pub fn name(&self) -> &str {
        match self {
            Logical::Decimal { .. } => "decimal",
            Logical::Uuid => "uuid",
            Logical::Date => "date",
            Logical::TimeMillis => "time-millis",
            Logical::TimeMicros => "time-micros",
            Logical::TimestampMillis => "timestamp-millis",
            Logical::TimestampMicros => "timestamp-micros",
            Logical::LocalTimestampMillis => "local-timestamp-millis",
            Logical::LocalTimestampMicros => "local-timestamp-micros",
            Logical::Duration => "duration",
            Logical::Other(s) => s,
        }
    }
}

/// A node of the schema tree; named types are referenced by full name.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A primitive, possibly annotated with a logical type.
    Primitive(Primitive, Option<Logical>),
    /// `array` of items.
    Array(Box<Node>),
    /// `map` with string keys.
    Map(Box<Node>),
    /// A union of branches.
    Union(Vec<Node>),
    /// A reference to a record, enum or fixed by full name.
    Named(String),
}

/// A record field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field documentation.
    pub doc: Option<String>,
    /// Field type.
    pub node: Node,
    /// Default value, as JSON.
    pub default: Option<Value>,
    /// Field aliases.
    pub aliases: Vec<String>,
}

/// A record type.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Full name.
    pub name: String,
    /// Full names of aliases.
    pub aliases: Vec<String>,
    /// Documentation.
    pub doc: Option<String>,
    /// Fields in order.
    pub fields: Vec<Field>,
}

/// An enum type.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumType {
    /// Full name.
    pub name: String,
    /// Full names of aliases.
    pub aliases: Vec<String>,
    /// Documentation.
    pub doc: Option<String>,
    /// Symbols in order.
    pub symbols: Vec<String>,
    /// Symbol a reader uses for an unknown writer symbol.
    pub default: Option<String>,
}

/// A fixed type.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedType {
    /// Full name.
    pub name: String,
    /// Full names of aliases.
    pub aliases: Vec<String>,
    /// Size in bytes.
    pub size: usize,
    /// Logical type, if any.
    pub logical: Option<Logical>,
}

/// A named type definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    /// `record` (or `error`)
    Record(Record),
    /// `enum`
    Enum(EnumType),
    /// `fixed`
    Fixed(FixedType),
}

impl Named {
    /// Full name.
    pub fn name(&self) -> &str {
        match self {
            Named::Record(r) => &r.name,
            Named::Enum(e) => &e.name,
            Named::Fixed(f) => &f.name,
        }
    }

    /// Full names of aliases.
    pub fn aliases(&self) -> &[String] {
        match self {
            Named::Record(r) => &r.aliases,
            Named::Enum(e) => &e.aliases,
            Named::Fixed(f) => &f.aliases,
        }
    }

    /// The Avro type name of this definition.
    pub fn kind(&self) -> &'static str {
        match self {
            Named::Record(_) => "record",
            Named::Enum(_) => "enum",
            Named::Fixed(_) => "fixed",
        }
    }
}

/// A parsed schema: the root node plus every named type it can reach (and possibly more).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The root of the tree.
    pub root: Node,
    /// Named types by full name.
    pub named: BTreeMap<String, Named>,
}

/// The simple name of a full name (`a.b.C` → `C`).
pub fn simple_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

impl Schema {
    /// Parses one schema from JSON text.
    pub fn parse_str(text: &str) -> Result<Schema, SchemaError> {
        Schema::parse_str_with(text, &BTreeMap::new())
    }

    /// Parses one schema from JSON text that may refer to named types already known
    /// (for example those of `common.avsc`).
    pub fn parse_str_with(
        text: &str,
        known: &BTreeMap<String, Named>,
    ) -> Result<Schema, SchemaError> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Json(e.to_string()))?;
        Schema::parse_value_with(&json, known)
    }

    /// Parses one schema from a JSON value, with named types already known.
    pub fn parse_value_with(
        json: &Value,
        known: &BTreeMap<String, Named>,
    ) -> Result<Schema, SchemaError> {
        let mut p = Parser {
            named: known.clone(),
        };
        let root = p.node(json, None)?;
        Ok(Schema {
            root,
            named: p.named,
        })
    }

    /// Looks up a named type.
    pub fn lookup(&self, name: &str) -> Option<&Named> {
        self.named.get(name)
    }

    /// The root's named type, when the root is a record, enum or fixed.
    pub fn root_named(&self) -> Option<&Named> {
        match &self.root {
            Node::Named(n) => self.named.get(n),
            _ => None,
        }
    }

    /// The Parsing Canonical Form, as the Avro specification defines it (and as Java's
    /// `SchemaNormalization` writes it: logical types and every other attribute stripped).
    pub fn canonical_form(&self) -> String {
        let mut out = String::new();
        let mut seen = HashSet::new();
        self.write_canonical(&self.root, &mut out, &mut seen);
        out
    }

    fn write_canonical(&self, node: &Node, out: &mut String, seen: &mut HashSet<String>) {
        match node {
            Node::Primitive(p, _) => {
                out.push('"');
                out.push_str(p.as_str());
                out.push('"');
            }
            Node::Array(items) => {
                out.push_str("{\"type\":\"array\",\"items\":");
                self.write_canonical(items, out, seen);
                out.push('}');
            }
            Node::Map(values) => {
                out.push_str("{\"type\":\"map\",\"values\":");
                self.write_canonical(values, out, seen);
                out.push('}');
            }
            Node::Union(branches) => {
                out.push('[');
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_canonical(b, out, seen);
                }
                out.push(']');
            }
            Node::Named(name) => {
                if !seen.insert(name.clone()) {
                    out.push_str(&json_string(name));
                    return;
                }
                let Some(def) = self.named.get(name) else {
                    out.push_str(&json_string(name));
                    return;
                };
                out.push_str("{\"name\":");
                out.push_str(&json_string(name));
                out.push_str(",\"type\":\"");
                out.push_str(def.kind());
                out.push('"');
                match def {
                    Named::Record(r) => {
                        out.push_str(",\"fields\":[");
                        for (i, f) in r.fields.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str("{\"name\":");
                            out.push_str(&json_string(&f.name));
                            out.push_str(",\"type\":");
                            self.write_canonical(&f.node, out, seen);
                            out.push('}');
                        }
                        out.push(']');
                    }
                    Named::Enum(e) => {
                        out.push_str(",\"symbols\":[");
                        let syms: Vec<String> = e.symbols.iter().map(|s| json_string(s)).collect();
                        out.push_str(&syms.join(","));
                        out.push(']');
                    }
                    Named::Fixed(f) => {
                        out.push_str(",\"size\":");
                        out.push_str(&f.size.to_string());
                    }
                }
                out.push('}');
            }
        }
    }

    /// CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form.
    pub fn fingerprint(&self) -> u64 {
        crc64_avro(self.canonical_form().as_bytes())
    }

    /// A self-contained JSON form (every named type defined at its first use), with
    /// logical types, docs, defaults and aliases kept: what other Avro libraries parse.
    pub fn to_full_json(&self) -> Value {
        let mut seen = HashSet::new();
        self.full_json(&self.root, &mut seen)
    }

    /// [`Schema::to_full_json`] for one of several schemas written into one document (a
    /// union of events, say): named types already in `seen` are referred to by name, the
    /// others are defined here and added to `seen`.
    pub fn to_full_json_sharing(&self, seen: &mut HashSet<String>) -> Value {
        self.full_json(&self.root, seen)
    }

    fn full_json(&self, node: &Node, seen: &mut HashSet<String>) -> Value {
        match node {
            Node::Primitive(p, None) => Value::String(p.as_str().into()),
            Node::Primitive(p, Some(l)) => {
                let mut m = Map::new();
                m.insert("type".into(), p.as_str().into());
                logical_json(l, &mut m);
                Value::Object(m)
            }
            Node::Array(items) => {
                serde_json::json!({"type": "array", "items": self.full_json(items, seen)})
            }
            Node::Map(values) => {
                serde_json::json!({"type": "map", "values": self.full_json(values, seen)})
            }
            Node::Union(bs) => Value::Array(bs.iter().map(|b| self.full_json(b, seen)).collect()),
            Node::Named(name) => {
                if !seen.insert(name.clone()) {
                    return Value::String(name.clone());
                }
                let Some(def) = self.named.get(name) else {
                    return Value::String(name.clone());
                };
                let mut m = Map::new();
                m.insert("type".into(), def.kind().into());
                m.insert("name".into(), name.clone().into());
                if !def.aliases().is_empty() {
                    m.insert("aliases".into(), def.aliases().to_vec().into());
                }
                match def {
                    Named::Record(r) => {
                        if let Some(d) = &r.doc {
                            m.insert("doc".into(), d.clone().into());
                        }
                        let fields: Vec<Value> = r
                            .fields
                            .iter()
                            .map(|f| {
                                let mut fm = Map::new();
                                fm.insert("name".into(), f.name.clone().into());
                                fm.insert("type".into(), self.full_json(&f.node, seen));
                                if let Some(d) = &f.doc {
                                    fm.insert("doc".into(), d.clone().into());
                                }
                                if let Some(d) = &f.default {
                                    fm.insert("default".into(), d.clone());
                                }
                                if !f.aliases.is_empty() {
                                    fm.insert("aliases".into(), f.aliases.clone().into());
                                }
                                Value::Object(fm)
                            })
                            .collect();
                        m.insert("fields".into(), fields.into());
                    }
                    Named::Enum(e) => {
                        if let Some(d) = &e.doc {
                            m.insert("doc".into(), d.clone().into());
                        }
                        m.insert("symbols".into(), e.symbols.clone().into());
                        if let Some(d) = &e.default {
                            m.insert("default".into(), d.clone().into());
                        }
                    }
                    Named::Fixed(f) => {
                        m.insert("size".into(), f.size.into());
                        if let Some(l) = &f.logical {
                            logical_json(l, &mut m);
                        }
                    }
                }
                Value::Object(m)
            }
        }
    }
}

fn logical_json(l: &Logical, m: &mut Map<String, Value>) {
    m.insert("logicalType".into(), l.name().into());
    if let Logical::Decimal { precision, scale } = l {
        m.insert("precision".into(), (*precision).into());
        m.insert("scale".into(), (*scale).into());
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

struct Parser {
    named: BTreeMap<String, Named>,
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
            _ => name.to_owned(),
        }
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rfind('.').map(|i| &full[..i])
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser {
    fn resolve(&self, name: &str, ns: Option<&str>) -> Option<String> {
        let full = full_name(name, ns);
        if self.named.contains_key(&full) {
            return Some(full);
        }
        if self.named.contains_key(name) {
            return Some(name.to_owned());
        }
        None
    }

    fn node(&mut self, json: &Value, ns: Option<&str>) -> Result<Node, SchemaError> {
        match json {
            Value::String(s) => {
                if let Some(p) = Primitive::from_name(s) {
                    return Ok(Node::Primitive(p, None));
                }
                self.resolve(s, ns)
                    .map(Node::Named)
                    .ok_or_else(|| SchemaError::UnknownType(s.clone()))
            }
            Value::Array(branches) => {
                let nodes = branches
                    .iter()
                    .map(|b| self.node(b, ns))
                    .collect::<Result<Vec<_>, _>>()?;
                for b in &nodes {
                    if matches!(b, Node::Union(_)) {
                        return Err(SchemaError::Invalid(
                            "a union may not contain a union".into(),
                        ));
                    }
                }
                Ok(Node::Union(nodes))
            }
            Value::Object(m) => self.complex(m, ns),
            other => Err(SchemaError::Invalid(format!("not a schema: {other}"))),
        }
    }

    fn complex(&mut self, m: &Map<String, Value>, ns: Option<&str>) -> Result<Node, SchemaError> {
        let ty = match m.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(other) => return self.node(other, ns),
            None => return Err(SchemaError::Invalid("object without \"type\"".into())),
        };
        let logical = parse_logical(m);
        if let Some(p) = Primitive::from_name(ty) {
            let logical = logical.filter(|l| logical_fits(l, p));
            return Ok(Node::Primitive(p, logical));
        }
        match ty {
            "array" => {
                let items = m
                    .get("items")
                    .ok_or_else(|| SchemaError::Invalid("array without items".into()))?;
                Ok(Node::Array(Box::new(self.node(items, ns)?)))
            }
            "map" => {
                let values = m
                    .get("values")
                    .ok_or_else(|| SchemaError::Invalid("map without values".into()))?;
                Ok(Node::Map(Box::new(self.node(values, ns)?)))
            }
            "record" | "error" | "enum" | "fixed" => self.named_type(ty, m, ns, logical),
            other => self
                .resolve(other, ns)
                .map(Node::Named)
                .ok_or_else(|| SchemaError::UnknownType(other.to_owned())),
        }
    }

    fn named_type(
        &mut self,
        ty: &str,
        m: &Map<String, Value>,
        ns: Option<&str>,
        logical: Option<Logical>,
    ) -> Result<Node, SchemaError> {
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Invalid(format!("{ty} without a name")))?;
        let own_ns = match m.get("namespace").and_then(Value::as_str) {
            Some(n) if !name.contains('.') => Some(n),
            _ => ns,
        };
        let full = full_name(name, own_ns);
        if !full.split('.').all(valid_name) {
            return Err(SchemaError::Invalid(format!("invalid name {full:?}")));
        }
        if self.named.contains_key(&full) {
            return Err(SchemaError::Invalid(format!("{full} is defined twice")));
        }
        let inner_ns = namespace_of(&full).map(str::to_owned);
        let inner_ns = inner_ns.as_deref();
        let aliases: Vec<String> = m
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| full_name(s, inner_ns))
                    .collect()
            })
            .unwrap_or_default();
        let doc = m.get("doc").and_then(Value::as_str).map(str::to_owned);
        match ty {
            "enum" => {
                let symbols: Vec<String> = m
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or_else(|| SchemaError::Invalid(format!("enum {full} without symbols")))?
                    .iter()
                    .map(|s| {
                        s.as_str().map(str::to_owned).ok_or_else(|| {
                            SchemaError::Invalid(format!("enum {full}: symbol {s} is not a string"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let mut uniq = HashSet::new();
                for s in &symbols {
                    if !valid_name(s) || !uniq.insert(s) {
                        return Err(SchemaError::Invalid(format!(
                            "enum {full}: bad or repeated symbol {s:?}"
                        )));
                    }
                }
                let default = m.get("default").and_then(Value::as_str).map(str::to_owned);
                if let Some(d) = &default {
                    if !symbols.contains(d) {
                        return Err(SchemaError::Invalid(format!(
                            "enum {full}: default {d:?} is not a symbol"
                        )));
                    }
                }
                self.named.insert(
                    full.clone(),
                    Named::Enum(EnumType {
                        name: full.clone(),
                        aliases,
                        doc,
                        symbols,
                        default,
                    }),
                );
            }
            "fixed" => {
                let size = m
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| SchemaError::Invalid(format!("fixed {full} without size")))?;
                self.named.insert(
                    full.clone(),
                    Named::Fixed(FixedType {
                        name: full.clone(),
                        aliases,
                        size: size as usize,
                        logical,
                    }),
                );
            }
            _ => {
                // Register first so that fields may refer to the record itself.
                self.named.insert(
                    full.clone(),
                    Named::Record(Record {
                        name: full.clone(),
                        aliases: aliases.clone(),
                        doc: doc.clone(),
                        fields: Vec::new(),
                    }),
                );
                let raw_fields = m
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| SchemaError::Invalid(format!("record {full} without fields")))?;
                let mut fields = Vec::with_capacity(raw_fields.len());
                let mut uniq = HashSet::new();
                for f in raw_fields {
                    let fm = f.as_object().ok_or_else(|| {
                        SchemaError::Invalid(format!("record {full}: field is not an object"))
                    })?;
                    let fname = fm.get("name").and_then(Value::as_str).ok_or_else(|| {
                        SchemaError::Invalid(format!("record {full}: field without a name"))
                    })?;
                    if !valid_name(fname) || !uniq.insert(fname.to_owned()) {
                        return Err(SchemaError::Invalid(format!(
                            "record {full}: bad or repeated field name {fname:?}"
                        )));
                    }
                    let fty = fm.get("type").ok_or_else(|| {
                        SchemaError::Invalid(format!("{full}.{fname}: field without a type"))
                    })?;
                    let node = self.node(fty, inner_ns)?;
                    fields.push(Field {
                        name: fname.to_owned(),
                        doc: fm.get("doc").and_then(Value::as_str).map(str::to_owned),
                        node,
                        default: fm.get("default").cloned(),
                        aliases: fm
                            .get("aliases")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    });
                }
                if let Some(Named::Record(r)) = self.named.get_mut(&full) {
                    r.fields = fields;
                }
            }
        }
        Ok(Node::Named(full))
    }
}

fn parse_logical(m: &Map<String, Value>) -> Option<Logical> {
    let name = m.get("logicalType")?.as_str()?;
    Some(match name {
        "decimal" => {
            let precision = m.get("precision").and_then(Value::as_u64)? as u32;
            let scale = m.get("scale").and_then(Value::as_u64).unwrap_or(0) as u32;
            if precision == 0 || scale > precision {
                return None;
            }
            Logical::Decimal { precision, scale }
        }
        "uuid" => Logical::Uuid,
        "date" => Logical::Date,
        "time-millis" => Logical::TimeMillis,
        "time-micros" => Logical::TimeMicros,
        "timestamp-millis" => Logical::TimestampMillis,
        "timestamp-micros" => Logical::TimestampMicros,
        "local-timestamp-millis" => Logical::LocalTimestampMillis,
        "local-timestamp-micros" => Logical::LocalTimestampMicros,
        "duration" => Logical::Duration,
        other => Logical::Other(other.to_owned()),
    })
}

/// Whether a logical type may annotate a primitive; a misplaced one is ignored, per the spec.
fn logical_fits(l: &Logical, p: Primitive) -> bool {
    match l {
        Logical::Decimal { .. } => p == Primitive::Bytes,
        Logical::Uuid => p == Primitive::String,
        Logical::Date | Logical::TimeMillis => p == Primitive::Int,
        Logical::TimeMicros
        | Logical::TimestampMillis
        | Logical::TimestampMicros
        | Logical::LocalTimestampMillis
        | Logical::LocalTimestampMicros => p == Primitive::Long,
        Logical::Duration => false,
        Logical::Other(_) => true,
    }
}

const CRC64_EMPTY: u64 = 0xc15d_213a_a4d7_a795;

fn crc64_table() -> &'static [u64; 256] {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (CRC64_EMPTY & (0u64.wrapping_sub(fp & 1)));
            }
            *slot = fp;
        }
        t
    })
}

/// CRC-64-AVRO over bytes, as the Avro specification's fingerprint section defines it.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    let t = crc64_table();
    let mut fp = CRC64_EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ t[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}
