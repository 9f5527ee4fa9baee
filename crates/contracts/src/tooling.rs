//! What `l2f schemas ...` does, as functions that return the lines to print and whether the
//! check passed, so the CLI stays a thin shell and the behaviour is tested here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::{Catalog, COMMON_FILE};
use crate::compat::{self, Level};
use crate::error::SchemaError;
use crate::lint;
use crate::schema::Schema;

/// Lines to print and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Output, one line each.
    pub lines: Vec<String>,
    /// Whether the check passed (exit 0).
    pub ok: bool,
}

fn file_err(path: &Path, e: impl ToString) -> SchemaError {
    SchemaError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Reads one `.avsc`; named types of a `common.avsc` beside it are in scope.
pub fn load_schema_file(path: &Path) -> Result<Schema, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let common_path = path.with_file_name(COMMON_FILE);
    let is_common = path.file_name().is_some_and(|n| n == COMMON_FILE);
    let known = if !is_common && common_path.is_file() {
        let common =
            std::fs::read_to_string(&common_path).map_err(|e| file_err(&common_path, e))?;
        Schema::parse_str(&common)
            .map_err(|e| file_err(&common_path, e))?
            .named
    } else {
        Default::default()
    };
    Schema::parse_str_with(&text, &known).map_err(|e| file_err(path, e))
}

/// `l2f schemas fingerprint FILE`: the Parsing Canonical Form, then the CRC-64-AVRO
/// fingerprint as a signed 64-bit decimal (as Apache Avro's test data writes it), then what
/// a producer writing this schema puts on the wire: the `l2f.schema-id` header (the
/// fingerprint as 16 lowercase hex digits, big-endian) and the single-object header that
/// starts the value (`c3 01`, then the fingerprint little-endian).
pub fn fingerprint(path: &Path) -> Result<Report, SchemaError> {
    let s = load_schema_file(path)?;
    let fp = s.fingerprint();
    Ok(Report {
        lines: vec![
            s.canonical_form(),
            (fp as i64).to_string(),
            format!("l2f.schema-id: {}", schema_id(fp)),
            format!("single-object header: {}", single_object_header(fp)),
        ],
        ok: true,
    })
}

/// The `l2f.schema-id` header value of a writer schema: its CRC-64-AVRO fingerprint as 16
/// lowercase hex digits, most significant first (big-endian). Note that the single-object
/// frame carries the same fingerprint little-endian, which is the order fastavro's
/// `fingerprint()` prints.
pub fn schema_id(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

/// The 10 bytes that start every l2f record value, in hex: `c3 01` and the fingerprint,
/// little-endian (Avro single-object encoding).
pub fn single_object_header(fingerprint: u64) -> String {
    let mut bytes = vec![0xc3, 0x01];
    bytes.extend_from_slice(&fingerprint.to_le_bytes());
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `l2f schemas show EVENT`: the event's schema as one self-contained JSON document, every
/// named type of `common.avsc` inlined where it is first used (logical types, docs and
/// defaults kept). This is what another language's Avro library should parse: its Parsing
/// Canonical Form, and so its fingerprint, is then the hub's. From the schemas built into
/// l2f, or from `dir` (a directory with `common.avsc`).
pub fn show(event: &str, dir: Option<&Path>) -> Result<Report, SchemaError> {
    let loaded;
    let catalog = match dir {
        Some(d) => {
            loaded = Catalog::load_dir(d)?;
            &loaded
        }
        None => Catalog::embedded(),
    };
    let schema = catalog.get(event).ok_or_else(|| {
        SchemaError::Invalid(format!(
            "no event {event:?}; known: {}",
            catalog
                .events()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let text = serde_json::to_string_pretty(&schema.to_full_json())
        .map_err(|e| SchemaError::Json(e.to_string()))?;
    Ok(Report {
        lines: text.lines().map(str::to_owned).collect(),
        ok: true,
    })
}

/// `l2f schemas compat READER WRITER`: `compatible`, or one incompatibility a line.
pub fn compat(reader: &Path, writer: &Path) -> Result<Report, SchemaError> {
    let problems = compat::check(&load_schema_file(reader)?, &load_schema_file(writer)?);
    if problems.is_empty() {
        return Ok(Report {
            lines: vec!["compatible".into()],
            ok: true,
        });
    }
    Ok(Report {
        lines: problems
            .iter()
            .map(|p| format!("{p} (Java: {:?} at {}: {})", p.kind, p.location, p.message))
            .collect(),
        ok: false,
    })
}

/// `l2f schemas lint`: house rules over a schema directory.
pub fn lint_dir(dir: &Path) -> Result<Report, SchemaError> {
    let catalog = Catalog::load_dir(dir)?;
    let problems = lint::lint(&catalog);
    let mut lines = problems.clone();
    lines.push(format!(
        "{} schemas linted, {} problem(s)",
        catalog.events().count(),
        problems.len()
    ));
    Ok(Report {
        lines,
        ok: problems.is_empty(),
    })
}

/// Loads the released versions to check against. `spec` is a directory of version
/// directories (`schemas/history`), a directory of `.avsc` files (one version), or a git
/// ref whose `schemas/` (the same path as `schemas_dir`) is the one version.
pub fn load_baseline(
    spec: &str,
    schemas_dir: &Path,
) -> Result<Vec<(String, Catalog)>, SchemaError> {
    let path = PathBuf::from(spec);
    if path.is_dir() {
        let has_avsc = |d: &Path| {
            std::fs::read_dir(d)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.path().extension().is_some_and(|x| x == "avsc"))
                })
                .unwrap_or(false)
        };
        if has_avsc(&path) {
            return Ok(vec![(spec.to_owned(), Catalog::load_dir(&path)?)]);
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| file_err(&path, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && has_avsc(p))
            .collect();
        versions.sort_by_key(|p| version_key(p));
        return versions
            .iter()
            .map(|v| Ok((v.display().to_string(), Catalog::load_dir(v)?)))
            .collect();
    }
    Ok(vec![(
        spec.to_owned(),
        catalog_at_git_ref(spec, schemas_dir)?,
    )])
}

fn version_key(p: &Path) -> (u64, String) {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    (digits.parse().unwrap_or(u64::MAX), name)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, SchemaError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| file_err(dir, format!("git: {e}")))?;
    if !out.status.success() {
        return Err(file_err(
            dir,
            format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn catalog_at_git_ref(rev: &str, schemas_dir: &Path) -> Result<Catalog, SchemaError> {
    let listing = git(schemas_dir, &["ls-tree", "--name-only", rev, "."])?;
    let mut files = Vec::new();
    for name in listing.lines().filter(|n| n.ends_with(".avsc")) {
        let base = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = git(schemas_dir, &["show", &format!("{rev}:./{base}")])?;
        files.push((base, text));
    }
    if files.is_empty() {
        return Err(file_err(
            schemas_dir,
            format!("no .avsc files at git ref {rev}"),
        ));
    }
    Catalog::from_files(&files)
}

/// `l2f schemas check`: every working schema against every baseline version at `level`.
pub fn check(
    schemas_dir: &Path,
    baseline: &[(String, Catalog)],
    level: Level,
) -> Result<Report, SchemaError> {
    let working = Catalog::load_dir(schemas_dir)?;
    let mut lines = Vec::new();
    let mut failures = 0;
    for (name, schema) in working.events() {
        let previous: Vec<(String, Schema)> = baseline
            .iter()
            .filter_map(|(label, c)| c.get(name).map(|s| (label.clone(), s.clone())))
            .collect();
        if previous.is_empty() {
            lines.push(format!(
                "{name}: new event, no released version to check against"
            ));
            continue;
        }
        let problems = compat::check_level(schema, &previous, level);
        failures += problems.len();
        lines.extend(problems.iter().map(ToString::to_string));
    }
    for (label, c) in baseline {
        for (name, _) in c.events() {
            if working.get(name).is_none() {
                failures += 1;
                lines.push(format!(
                    "{name}: released in {label} but missing from the working schemas"
                ));
            }
        }
    }
    lines.push(format!(
        "{} schemas checked against {} released version(s) at {}: {}",
        working.events().count(),
        baseline.len(),
        level.name(),
        if failures == 0 {
            "compatible".to_owned()
        } else {
            format!("{failures} incompatibilit(ies)")
        }
    ));
    Ok(Report {
        lines,
        ok: failures == 0,
    })
}
