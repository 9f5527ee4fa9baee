//! `l2f mocks ...` — serve the mock enterprise apps (Salesforce, Zuora, Marketo,
//! Mailgun, the customers app, the license service) on loopback, over HTTP and HTTPS.
use std::path::PathBuf;

use clap::Args;
use l2f_mocks::server::{serve_until_signal, MocksConfig, Overrides};

/// Serve the mock enterprise apps on loopback.
#[derive(Debug, Args)]
pub struct MocksArgs {
    /// TOML configuration (credentials, limits, ports, fault rules); defaults otherwise.
    #[arg(long, env = "L2F_MOCKS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve only these apps (salesforce, zuora, marketo, mail, customers, license).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// SQLite file that keeps the mocks' state across restarts.
    #[arg(long)]
    pub sqlite: Option<PathBuf>,
    /// Where to write the CA certificate of the HTTPS listeners (PEM).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Fixed ports: app i gets base+i (HTTP) and base+10+i (HTTPS); free ports otherwise.
    #[arg(long)]
    pub port_base: Option<u16>,
    /// Write the endpoints (JSON) here once listening, instead of to stdout.
    #[arg(long)]
    pub endpoints_file: Option<PathBuf>,
}

/// Runs the mocks until SIGINT/SIGTERM; the returned value is the process exit code.
pub async fn run(args: MocksArgs) -> anyhow::Result<i32> {
    let mut cfg = match &args.config {
        Some(p) => MocksConfig::from_toml_file(p)?,
        None => MocksConfig::default(),
    };
    cfg.apply(&Overrides {
        only: args.only,
        sqlite: args.sqlite,
        ca_file: args.ca_file,
        port_base: args.port_base,
    })?;
    serve_until_signal(&cfg, args.endpoints_file.as_deref()).await?;
    Ok(0)
}
