//! The set of event schemas: `common.avsc` (shared named types, a JSON array) plus one
//! `.avsc` per event that refers to the shared types by name.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::SchemaError;
use crate::schema::{Named, Schema};

/// The file holding the named types every event shares.
pub const COMMON_FILE: &str = "common.avsc";

/// Parsed schemas of every event, by event name (the `.avsc` file's stem).
#[derive(Debug, Clone)]
pub struct Catalog {
    common: BTreeMap<String, Named>,
    events: BTreeMap<String, Schema>,
}

macro_rules! embedded_files {
    ($dir:literal, $($name:ident),+) => {
        &[
            ("common", include_str!(concat!("../../../schemas/", $dir, "common.avsc"))),
            $((stringify!($name), include_str!(concat!("../../../schemas/", $dir, stringify!($name), ".avsc")))),+
        ]
    };
}

macro_rules! catalog_files {
    ($dir:literal) => {
        for_each_event!(embedded_files, $dir)
    };
}

/// The working schemas, compiled into the binary so the codec needs no files at run time.
const EMBEDDED: &[(&str, &str)] = catalog_files!("");

/// Released versions (`schemas/history/`), oldest first: the codec decodes their frames too.
/// v1 is the first release: the catalog's first fourteen events (events added since have no
/// older version to stay compatible with).
const HISTORY: &[(&str, &[(&str, &str)])] = &[(
    "v1",
    embedded_files!(
        "history/v1/",
        LeadCaptured,
        OrderPlaced,
        SubscriptionCreated,
        SubscriptionAmended,
        SubscriptionRenewed,
        SubscriptionCancelled,
        AutoRenewChanged,
        PaymentDeclined,
        EulaAccepted,
        LicenseIssued,
        LicenseHeld,
        RenewalNoticeDue,
        EmailSent,
        UsageReported
    ),
)];

fn from_embedded(files: &[(&str, &str)]) -> Catalog {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (format!("{n}.avsc"), (*t).to_owned()))
        .collect();
    // The embedded schemas are checked by this crate's tests; failing here is a build defect.
    Catalog::from_files(&files).unwrap_or_else(|e| panic!("embedded schemas are invalid: {e}"))
}

impl Catalog {
    /// The working schemas of `schemas/`, as compiled in.
    pub fn embedded() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| from_embedded(EMBEDDED))
    }

    /// The released versions of `schemas/history/`, as compiled in, oldest first.
    pub fn embedded_history() -> &'static [(String, Catalog)] {
        static HIST: OnceLock<Vec<(String, Catalog)>> = OnceLock::new();
        HIST.get_or_init(|| {
            HISTORY
                .iter()
                .map(|(label, files)| ((*label).to_owned(), from_embedded(files)))
                .collect()
        })
    }

    /// Loads `common.avsc` (if present) and every other `*.avsc` of a directory.
    pub fn load_dir(dir: &Path) -> Result<Catalog, SchemaError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| SchemaError::File {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let entries = std::fs::read_dir(dir).map_err(|e| SchemaError::File {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "avsc") && p.is_file() {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((name, read(&p)?));
            }
        }
        files.sort();
        Catalog::from_files(&files)
    }

    /// Builds a catalog from `(file name, text)` pairs.
    pub fn from_files(files: &[(String, String)]) -> Result<Catalog, SchemaError> {
        let wrap = |name: &str, e: SchemaError| SchemaError::File {
            path: name.to_owned(),
            message: e.to_string(),
        };
        let mut common = BTreeMap::new();
        if let Some((name, text)) = files.iter().find(|(n, _)| n == COMMON_FILE) {
            common = Schema::parse_str(text).map_err(|e| wrap(name, e))?.named;
        }
        let mut events = BTreeMap::new();
        for (name, text) in files.iter().filter(|(n, _)| n != COMMON_FILE) {
            let schema = Schema::parse_str_with(text, &common).map_err(|e| wrap(name, e))?;
            let stem = name.trim_end_matches(".avsc").to_owned();
            events.insert(stem, schema);
        }
        Ok(Catalog { common, events })
    }

    /// The schema of one event.
    pub fn get(&self, event: &str) -> Option<&Schema> {
        self.events.get(event)
    }

    /// Every event schema, by name.
    pub fn events(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.events.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The shared named types.
    pub fn common(&self) -> &BTreeMap<String, Named> {
        &self.common
    }
}
