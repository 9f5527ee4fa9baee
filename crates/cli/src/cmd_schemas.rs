//! `l2f schemas ...` — schema tooling for CI and for engineers changing the contracts.
//! The behaviour lives in `l2f_contracts::tooling` (tested there); this file parses arguments
//! and prints.
use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use l2f_contracts::compat::Level;
use l2f_contracts::tooling::{self, Report};

/// Schema tooling for CI and for engineers changing the contracts.
#[derive(Debug, Subcommand)]
pub enum SchemasCmd {
    /// Print the working schemas' names and fingerprints.
    List {
        /// Directory of the working schemas.
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Check the working schemas against released versions; exit 1 when incompatible.
    ///
    /// The default level, full_transitive, is the one l2f needs: auditors replay topics
    /// written with every older version (backward, transitive), and consumers upgrade one at
    /// a time while producers already write the new version (forward).
    Check {
        /// Released versions: a directory of version directories, a directory of .avsc
        /// files, or a git ref (its `schemas/` is the one version).
        #[arg(long, default_value = "schemas/history")]
        baseline: String,
        /// backward, forward, full, backward_transitive, forward_transitive, full_transitive.
        #[arg(long, default_value = "full_transitive")]
        level: Level,
        /// Directory of the working schemas.
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Can a reader with READER read data written with WRITER? Prints `compatible` or one
    /// incompatibility a line; exit 0 or 1.
    Compat {
        /// Reader schema (.avsc; a common.avsc beside it is in scope).
        reader: PathBuf,
        /// Writer schema.
        writer: PathBuf,
    },
    /// Print the Parsing Canonical Form, the CRC-64-AVRO fingerprint (signed decimal), the
    /// `l2f.schema-id` header a producer writes (16 hex digits, big-endian) and the
    /// single-object header that starts the value (`c3 01` + fingerprint little-endian).
    Fingerprint {
        /// Schema file (.avsc; a common.avsc beside it is in scope).
        file: PathBuf,
    },
    /// Print an event's schema as one self-contained JSON document (the named types of
    /// common.avsc inlined), ready for another language's Avro library: its fingerprint is
    /// the hub's.
    Show {
        /// The event, e.g. LeadCaptured.
        event: String,
        /// Directory of schemas to read instead of the ones built into l2f.
        #[arg(long)]
        schemas: Option<PathBuf>,
    },
    /// Every field documented, required fields not nullable, one namespace; exit 1 otherwise.
    Lint {
        /// Directory of the working schemas.
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
}

/// Prints the lines (stopping quietly if stdout is closed, e.g. piped into `head`) and
/// returns the exit code.
fn print(report: Report) -> i32 {
    let mut out = std::io::stdout().lock();
    for line in &report.lines {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    if report.ok {
        0
    } else {
        1
    }
}

/// Runs one `schemas` subcommand; the returned value is the process exit code.
pub fn run(cmd: SchemasCmd) -> anyhow::Result<i32> {
    Ok(match cmd {
        SchemasCmd::List { schemas } => {
            let catalog = l2f_contracts::Catalog::load_dir(&schemas)?;
            let lines = catalog
                .events()
                .map(|(name, schema)| format!("{name}\t{}", schema.fingerprint() as i64))
                .collect();
            print(Report { lines, ok: true })
        }
        SchemasCmd::Check {
            baseline,
            level,
            schemas,
        } => {
            let versions = tooling::load_baseline(&baseline, &schemas)?;
            print(tooling::check(&schemas, &versions, level)?)
        }
        SchemasCmd::Compat { reader, writer } => print(tooling::compat(&reader, &writer)?),
        SchemasCmd::Fingerprint { file } => print(tooling::fingerprint(&file)?),
        SchemasCmd::Lint { schemas } => print(tooling::lint_dir(&schemas)?),
        SchemasCmd::Show { event, schemas } => print(tooling::show(&event, schemas.as_deref())?),
    })
}
