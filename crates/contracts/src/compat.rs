//! Schema compatibility by the Avro specification's schema-resolution rules, computed the way
//! Apache Avro Java's `SchemaCompatibility` computes it (same incompatibility kinds, messages
//! and locations), plus a readable path per problem (`LeadCaptured.country: enum symbol XK
//! missing in reader`). Written over our own parsed [`Schema`]: the apache-avro crate's
//! checker gives wrong answers in known cases.

use std::collections::HashSet;
use std::fmt;

use crate::schema::{simple_name, Named, Node, Primitive, Schema};

/// The kinds of incompatibility Apache Avro Java reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reader and writer types cannot be resolved.
    TypeMismatch,
    /// Named types have different names (and no reader alias matches).
    NameMismatch,
    /// Fixed sizes differ.
    FixedSizeMismatch,
    /// The writer has enum symbols the reader lacks, and the reader enum has no default.
    MissingEnumSymbols,
    /// A reader field absent from the writer has no default.
    ReaderFieldMissingDefaultValue,
    /// A writer union branch has no compatible reader branch.
    MissingUnionBranch,
}

/// One reason the reader cannot read what the writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Kind, as Java names it.
    pub kind: Kind,
    /// Java's message, e.g. `reader type: INT not compatible with writer type: LONG`.
    pub message: String,
    /// Java's location in the reader schema, e.g. `/fields/0/type`.
    pub location: String,
    /// Readable path through records and fields, e.g. `LeadCaptured.country`.
    pub path: String,
    /// Readable explanation, e.g. `enum symbol XK missing in reader`.
    pub detail: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// Can a reader with schema `reader` read data written with schema `writer`? Empty when yes.
pub fn check(reader: &Schema, writer: &Schema) -> Vec<Incompatibility> {
    let mut c = Checker {
        reader,
        writer,
        in_progress: HashSet::new(),
        location: Vec::new(),
        path: root_path(reader),
    };
    c.check(&reader.root, &writer.root)
}

fn root_path(s: &Schema) -> String {
    match &s.root {
        Node::Named(n) => simple_name(n).to_owned(),
        _ => "(root)".to_owned(),
    }
}

/// Compatibility levels, as Confluent Schema Registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// New readers read data of the latest previous version.
    Backward,
    /// Readers of the latest previous version read new data.
    Forward,
    /// Both.
    Full,
    /// New readers read data of every previous version.
    BackwardTransitive,
    /// Readers of every previous version read new data.
    ForwardTransitive,
    /// Both, against every previous version.
    FullTransitive,
}

impl Level {
    /// All levels.
    pub const ALL: [Level; 6] = [
        Level::Backward,
        Level::Forward,
        Level::Full,
        Level::BackwardTransitive,
        Level::ForwardTransitive,
        Level::FullTransitive,
    ];

    /// The CLI name (`full_transitive`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Backward => "backward",
            Level::Forward => "forward",
            Level::Full => "full",
            Level::BackwardTransitive => "backward_transitive",
            Level::ForwardTransitive => "forward_transitive",
            Level::FullTransitive => "full_transitive",
        }
    }

    fn backward(self) -> bool {
        !matches!(self, Level::Forward | Level::ForwardTransitive)
    }

    fn forward(self) -> bool {
        !matches!(self, Level::Backward | Level::BackwardTransitive)
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Level::ALL
            .into_iter()
            .find(|l| l.name() == norm)
            .ok_or_else(|| format!("unknown compatibility level {s:?}"))
    }
}

/// A problem found by [`check_level`]: which previous version, and which direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelProblem {
    /// Label of the previous version (e.g. its directory).
    pub previous: String,
    /// `backward` (new reader, old writer) or `forward` (old reader, new writer).
    pub direction: &'static str,
    /// The incompatibility.
    pub incompatibility: Incompatibility,
}

impl fmt::Display for LevelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{} against {}]",
            self.incompatibility, self.direction, self.previous
        )
    }
}

/// Checks `new` against previous versions (oldest first) at a level.
pub fn check_level(new: &Schema, previous: &[(String, Schema)], level: Level) -> Vec<LevelProblem> {
    let against: &[(String, Schema)] = if level.transitive() {
        previous
    } else {
        previous.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut out = Vec::new();
    for (label, old) in against {
        if level.backward() {
            out.extend(check(new, old).into_iter().map(|i| LevelProblem {
                previous: label.clone(),
                direction: "backward",
                incompatibility: i,
            }));
        }
        if level.forward() {
            out.extend(check(old, new).into_iter().map(|i| LevelProblem {
                previous: label.clone(),
                direction: "forward",
                incompatibility: i,
            }));
        }
    }
    out
}

struct Checker<'a> {
    reader: &'a Schema,
    writer: &'a Schema,
    in_progress: HashSet<(String, String)>,
    location: Vec<String>,
    path: String,
}

/// The type of a node as Java's `Schema.Type` prints it.
fn type_name(s: &Schema, n: &Node) -> &'static str {
    match n {
        Node::Primitive(p, _) => match p {
            Primitive::Null => "NULL",
            Primitive::Boolean => "BOOLEAN",
            Primitive::Int => "INT",
            Primitive::Long => "LONG",
            Primitive::Float => "FLOAT",
            Primitive::Double => "DOUBLE",
            Primitive::Bytes => "BYTES",
            Primitive::String => "STRING",
        },
        Node::Array(_) => "ARRAY",
        Node::Map(_) => "MAP",
        Node::Union(_) => "UNION",
        Node::Named(name) => match s.lookup(name) {
            Some(Named::Record(_)) => "RECORD",
            Some(Named::Enum(_)) => "ENUM",
            Some(Named::Fixed(_)) => "FIXED",
            None => "UNKNOWN",
        },
    }
}

fn names_match(reader: &Named, writer: &Named) -> bool {
    simple_name(reader.name()) == simple_name(writer.name())
        || reader.aliases().iter().any(|a| a == writer.name())
}

impl Checker<'_> {
    fn incompatible(
        &self,
        kind: Kind,
        message: String,
        extra_loc: &[&str],
        detail: String,
    ) -> Incompatibility {
        let mut loc = self.location.clone();
        loc.extend(extra_loc.iter().map(|s| (*s).to_owned()));
        Incompatibility {
            kind,
            message,
            location: format!("/{}", loc.join("/")),
            path: self.path.clone(),
            detail,
        }
    }

    fn with<T>(
        &mut self,
        loc: &[String],
        path_suffix: Option<&str>,
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let n = loc.len();
        self.location.extend(loc.iter().cloned());
        let saved = self.path.clone();
        if let Some(sfx) = path_suffix {
            self.path.push_str(sfx);
        }
        let out = f(self);
        self.path = saved;
        self.location.truncate(self.location.len() - n);
        out
    }

    fn same_name(&self, r: &Node, w: &Node) -> bool {
        match (r, w) {
            (Node::Named(rn), Node::Named(wn)) => simple_name(rn) == simple_name(wn),
            _ => false,
        }
    }

    fn type_mismatch(&self, r: &Node, w: &Node) -> Incompatibility {
        let rt = type_name(self.reader, r);
        let wt = type_name(self.writer, w);
        self.incompatible(
            Kind::TypeMismatch,
            format!("reader type: {rt} not compatible with writer type: {wt}"),
            &[],
            format!(
                "reader type {} cannot read writer type {}",
                rt.to_ascii_lowercase(),
                wt.to_ascii_lowercase()
            ),
        )
    }

    fn check(&mut self, r: &Node, w: &Node) -> Vec<Incompatibility> {
        let (rt, wt) = (type_name(self.reader, r), type_name(self.writer, w));
        if rt == wt {
            return self.same_type(r, w);
        }
        if let Node::Union(branches) = w {
            // Every branch the writer may have used must be readable.
            let mut out = Vec::new();
            for b in branches {
                out.extend(self.check(r, b));
            }
            return out;
        }
        match (r, w) {
            (Node::Primitive(rp, _), Node::Primitive(wp, _)) => {
                use Primitive::*;
                let promotable = matches!(
                    (rp, wp),
                    (Long, Int)
                        | (Float, Int | Long)
                        | (Double, Int | Long | Float)
                        | (Bytes, String)
                        | (String, Bytes)
                );
                if promotable {
                    Vec::new()
                } else {
                    vec![self.type_mismatch(r, w)]
                }
            }
            (Node::Union(branches), _) => {
                // The branch named like the writer's type (if any) explains the failure best.
                let mut closest: Option<Incompatibility> = None;
                for b in branches {
                    let problems = self.check(b, w);
                    if problems.is_empty() {
                        return Vec::new();
                    }
                    if self.same_name(b, w) {
                        closest = problems.into_iter().next();
                    }
                }
                let mut inc = self.incompatible(
                    Kind::MissingUnionBranch,
                    format!("reader union lacking writer type: {wt}"),
                    &[],
                    format!("reader union lacks writer type {}", wt.to_ascii_lowercase()),
                );
                if let Some(c) = closest {
                    inc.path = c.path;
                    inc.detail = c.detail;
                }
                vec![inc]
            }
            _ => vec![self.type_mismatch(r, w)],
        }
    }

    fn same_type(&mut self, r: &Node, w: &Node) -> Vec<Incompatibility> {
        match (r, w) {
            (Node::Primitive(..), Node::Primitive(..)) => Vec::new(),
            (Node::Array(ri), Node::Array(wi)) => {
                self.with(&["items".into()], Some("[]"), |c| c.check(ri, wi))
            }
            (Node::Map(rv), Node::Map(wv)) => {
                self.with(&["values".into()], Some("{}"), |c| c.check(rv, wv))
            }
            (Node::Union(_), Node::Union(wbs)) => {
                let mut out = Vec::new();
                for (i, wb) in wbs.iter().enumerate() {
                    let found = self.with(&[i.to_string()], None, |c| c.check(r, wb));
                    if let Some(first) = found.into_iter().next() {
                        let wt = type_name(self.writer, wb);
                        let mut inc = self.incompatible(
                            Kind::MissingUnionBranch,
                            format!("reader union lacking writer type: {wt}"),
                            &[&i.to_string()],
                            String::new(),
                        );
                        inc.path = first.path;
                        inc.detail = first.detail;
                        out.push(inc);
                    }
                }
                out
            }
            (Node::Named(rn), Node::Named(wn)) => {
                let key = (rn.clone(), wn.clone());
                if !self.in_progress.insert(key.clone()) {
                    // Recursive types: assume compatible while the pair is being checked.
                    return Vec::new();
                }
                let out = match (self.reader.lookup(rn), self.writer.lookup(wn)) {
                    (Some(rd), Some(wd)) => self.named(rd, wd),
                    _ => vec![self.type_mismatch(r, w)],
                };
                self.in_progress.remove(&key);
                out
            }
            _ => vec![self.type_mismatch(r, w)],
        }
    }

    fn named(&mut self, rd: &Named, wd: &Named) -> Vec<Incompatibility> {
        if !names_match(rd, wd) {
            return vec![self.incompatible(
                Kind::NameMismatch,
                format!("expected: {}", wd.name()),
                &["name"],
                format!(
                    "reader type {} cannot read writer type {}",
                    rd.name(),
                    wd.name()
                ),
            )];
        }
        match (rd, wd) {
            (Named::Fixed(rf), Named::Fixed(wf)) => {
                if rf.size == wf.size {
                    Vec::new()
                } else {
                    vec![self.incompatible(
                        Kind::FixedSizeMismatch,
                        format!("expected: {}, found: {}", wf.size, rf.size),
                        &["size"],
                        format!("fixed size {} in reader, {} in writer", rf.size, wf.size),
                    )]
                }
            }
            (Named::Enum(re), Named::Enum(we)) => {
                let mut missing: Vec<&String> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .collect();
                missing.sort();
                if missing.is_empty() || re.default.is_some() {
                    return Vec::new();
                }
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                vec![self.incompatible(
                    Kind::MissingEnumSymbols,
                    format!("[{}]", list.join(", ")),
                    &["symbols"],
                    format!(
                        "enum symbol{} {} missing in reader",
                        if list.len() > 1 { "s" } else { "" },
                        list.join(", ")
                    ),
                )]
            }
            (Named::Record(rr), Named::Record(wr)) => {
                let mut out = Vec::new();
                for (i, rf) in rr.fields.iter().enumerate() {
                    let wf = wr
                        .fields
                        .iter()
                        .find(|wf| wf.name == rf.name)
                        .or_else(|| wr.fields.iter().find(|wf| rf.aliases.contains(&wf.name)));
                    let suffix = format!(".{}", rf.name);
                    match wf {
                        None => {
                            if rf.default.is_none() {
                                let inc = self.with(&[], Some(&suffix), |c| {
                                    c.incompatible(
                                        Kind::ReaderFieldMissingDefaultValue,
                                        rf.name.clone(),
                                        &["fields", &i.to_string()],
                                        "reader field has no default and the writer does not write it".into(),
                                    )
                                });
                                out.push(inc);
                            }
                        }
                        Some(wf) => {
                            let loc = ["fields".to_owned(), i.to_string(), "type".to_owned()];
                            out.extend(
                                self.with(&loc, Some(&suffix), |c| c.check(&rf.node, &wf.node)),
                            );
                        }
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }
}
