//! The registry: every connector `l2f run` and `l2f demo` can start, one line each. Adding a
//! connector to the hub is adding its crate's `REGISTRATION` here.

use anyhow::{bail, Result};
use l2f_bus::BusConfig;
use l2f_connector_kit::{Connector, KitError, Registration};
use l2f_rules::sandbox::Environment;
use l2f_rules::Rules;

/// Every connector the hub knows.
pub const REGISTRY: &[Registration] = &[
    l2f_connector_customers::REGISTRATION,
    l2f_connector_license::REGISTRATION,
    l2f_connector_mail::REGISTRATION,
    l2f_connector_marketo::REGISTRATION,
    l2f_connector_salesforce::REGISTRATION,
    l2f_connector_zuora::REGISTRATION,
];

/// Builds every connector configured under `[connectors.*]` (parsed with unknown keys
/// refused, validated, secrets resolved), in the order of the file — no I/O.
pub fn build_all(cfg: &BusConfig) -> Result<Vec<Box<dyn Connector>>, KitError> {
    cfg.connectors
        .iter()
        .map(|(name, section)| {
            let known: Vec<&str> = REGISTRY.iter().map(|r| r.name).collect();
            let reg = REGISTRY.iter().find(|r| r.name == name).ok_or_else(|| {
                let why = format!("no such connector (known: {})", known.join(", "));
                KitError::config(name, "", why)
            })?;
            (reg.build)(section)
        })
        .collect()
}

/// Handbook rule 12: a Salesforce sandbox only with a Zuora sandbox, production only with
/// production. Checked across every connector's endpoints; the error names both keys.
pub fn check_pairing(connectors: &[Box<dyn Connector>], rules: &Rules) -> Result<()> {
    let endpoints: Vec<_> = connectors.iter().flat_map(|c| c.endpoints()).collect();
    let of = |app: &str| {
        endpoints
            .iter()
            .filter(|e| e.app == app)
            .collect::<Vec<_>>()
    };
    for sf in of("salesforce") {
        for z in of("zuora") {
            if let Err(e) = rules.sandbox.check_pairing(&sf.url, &z.url) {
                let env = |sys, url: &str| match rules.sandbox.environment(sys, url) {
                    Ok(Environment::Sandbox) => "a sandbox",
                    Ok(Environment::Production) => "production",
                    Err(_) => "unknown",
                };
                bail!(
                    "handbook rule 12: {} = {:?} ({}) cannot be paired with {} = {:?} ({}): a Salesforce sandbox only with a Zuora sandbox, production only with production ({e})",
                    sf.key,
                    sf.url,
                    env(l2f_rules::sandbox::System::Salesforce, &sf.url),
                    z.key,
                    z.url,
                    env(l2f_rules::sandbox::System::Zuora, &z.url),
                );
            }
        }
    }
    Ok(())
}
