//! Serves the mocks without the `l2f` binary (same options as `l2f mocks`):
//! `cargo run -p l2f-mocks --example serve -- [--config F] [--only a,b] [--sqlite F]
//! [--ca-file F] [--port-base N] [--endpoints-file F]`.

use std::path::PathBuf;

use l2f_mocks::server::{serve_until_signal, MocksConfig, Overrides};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut o = Overrides::default();
    let mut config = None;
    let mut endpoints = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--only" => o.only = value()?.split(',').map(str::to_string).collect(),
            "--sqlite" => o.sqlite = Some(PathBuf::from(value()?)),
            "--ca-file" => o.ca_file = Some(PathBuf::from(value()?)),
            "--port-base" => o.port_base = Some(value()?.parse()?),
            "--endpoints-file" => endpoints = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let mut cfg = match config {
        Some(p) => MocksConfig::from_toml_file(&p)?,
        None => MocksConfig::default(),
    };
    cfg.apply(&o)?;
    serve_until_signal(&cfg, endpoints.as_deref()).await?;
    Ok(())
}
