//! `l2f schemas ...` — owned by the contracts work (issue 3).
use clap::Subcommand;

/// Schema tooling for CI and for engineers changing the contracts.
#[derive(Debug, Subcommand)]
pub enum SchemasCmd {
    /// Print the working schemas' names.
    List,
}

/// Runs one `schemas` subcommand; the returned value is the process exit code.
pub fn run(cmd: SchemasCmd) -> anyhow::Result<i32> {
    match cmd {
        SchemasCmd::List => Ok(0),
    }
}
