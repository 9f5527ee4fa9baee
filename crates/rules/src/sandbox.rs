//! Handbook rule 12: a Salesforce sandbox is only ever paired with a Zuora sandbox, and a
//! production Salesforce only with a production Zuora; the hub refuses a configuration that
//! mixes them, or whose endpoint it cannot classify.

use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// Which side of the pairing an endpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Test data only (also the local mocks).
    Sandbox,
    /// Real customers and real money.
    Production,
}

/// The two systems that must be paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Salesforce.
    Salesforce,
    /// Zuora.
    Zuora,
}

/// Why a pair of endpoints is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// The endpoint is not a URL with a host.
    #[error("{system:?} endpoint {url:?}: not a URL with a host")]
    NotAUrl {
        /// The system.
        system: System,
        /// The configured endpoint.
        url: String,
    },
    /// The host is in neither list of sandbox.toml.
    #[error("{system:?} endpoint {url:?}: host {host:?} is neither a known sandbox nor a known production host (deploy/rules/sandbox.toml)")]
    Unknown {
        /// The system.
        system: System,
        /// The configured endpoint.
        url: String,
        /// Its host.
        host: String,
    },
    /// Sandbox and production mixed.
    #[error("Salesforce {salesforce:?} ({salesforce_env:?}) cannot be paired with Zuora {zuora:?} ({zuora_env:?}): a sandbox is only ever paired with a sandbox")]
    Mixed {
        /// Salesforce endpoint.
        salesforce: String,
        /// Its environment.
        salesforce_env: Environment,
        /// Zuora endpoint.
        zuora: String,
        /// Its environment.
        zuora_env: Environment,
    },
}

/// `sandbox.toml`: host patterns of each system's sandboxes and production, and the local
/// hosts (the mocks) that count as sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTable {
    local_hosts: Vec<String>,
    salesforce: Hosts,
    zuora: Hosts,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hosts {
    sandbox: Vec<String>,
    production: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    local_hosts: Vec<String>,
    salesforce: Hosts,
    zuora: Hosts,
}

/// `host` matches `pattern`: equal, or a subdomain of `*.suffix`.
fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => pattern == host,
    }
}

/// The lower-case host of `url` (scheme required; user info, port and path dropped).
fn host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.split(':').next()?,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

impl SandboxTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "sandbox.toml";

    /// Parse and validate the table's text: patterns are lower-case host names or
    /// `*.suffix`, and no pattern is both sandbox and production.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let check = |key: &str, list: &[String]| -> Result<()> {
            for (i, p) in list.iter().enumerate() {
                let bare = p.strip_prefix("*.").unwrap_or(p);
                let ok = !bare.is_empty()
                    && bare.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | ':')
                    });
                if !ok {
                    return Err(src.invalid(
                        format!("{key}[{i}]"),
                        format!("{p:?}"),
                        "expected a lower-case host name or *.suffix",
                    ));
                }
            }
            Ok(())
        };
        check("local_hosts", &raw.local_hosts)?;
        for (name, h) in [("salesforce", &raw.salesforce), ("zuora", &raw.zuora)] {
            check(&format!("{name}.sandbox"), &h.sandbox)?;
            check(&format!("{name}.production"), &h.production)?;
            if let Some((i, p)) = h
                .production
                .iter()
                .enumerate()
                .find(|(_, p)| h.sandbox.contains(p))
            {
                return Err(src.invalid(
                    format!("{name}.production[{i}]"),
                    format!("{p:?}"),
                    "also listed as a sandbox",
                ));
            }
        }
        Ok(SandboxTable {
            local_hosts: raw.local_hosts,
            salesforce: raw.salesforce,
            zuora: raw.zuora,
        })
    }

    /// The environment of `system`'s endpoint `url`. The most specific matching pattern
    /// wins, so `*.sandbox.my.salesforce.com` beats `*.my.salesforce.com`.
    pub fn environment(&self, system: System, url: &str) -> Result<Environment, PairingError> {
        let host = host(url).ok_or_else(|| PairingError::NotAUrl {
            system,
            url: url.to_owned(),
        })?;
        if self.local_hosts.iter().any(|p| matches(p, &host)) {
            return Ok(Environment::Sandbox);
        }
        let hosts = match system {
            System::Salesforce => &self.salesforce,
            System::Zuora => &self.zuora,
        };
        let best = |list: &[String]| {
            list.iter()
                .filter(|p| matches(p, &host))
                .map(String::len)
                .max()
        };
        match (best(&hosts.sandbox), best(&hosts.production)) {
            (Some(s), Some(p)) if s >= p => Ok(Environment::Sandbox),
            (Some(_), None) => Ok(Environment::Sandbox),
            (_, Some(_)) => Ok(Environment::Production),
            (None, None) => Err(PairingError::Unknown {
                system,
                url: url.to_owned(),
                host,
            }),
        }
    }

    /// The environment both endpoints share, or why they cannot be paired.
    pub fn check_pairing(
        &self,
        salesforce: &str,
        zuora: &str,
    ) -> Result<Environment, PairingError> {
        let salesforce_env = self.environment(System::Salesforce, salesforce)?;
        let zuora_env = self.environment(System::Zuora, zuora)?;
        if salesforce_env != zuora_env {
            return Err(PairingError::Mixed {
                salesforce: salesforce.to_owned(),
                salesforce_env,
                zuora: zuora.to_owned(),
                zuora_env,
            });
        }
        Ok(salesforce_env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;
    use Environment::*;

    /// "A Salesforce sandbox is only ever paired with a Zuora sandbox; the config refuses to
    /// mix sandbox and production endpoints."
    #[test]
    fn handbook_rule_12_pairs() {
        let t = &rules().sandbox;
        let sf_sandbox = "https://acme--uat.sandbox.my.salesforce.com";
        let sf_prod = "https://acme.my.salesforce.com";
        let z_sandbox = "https://rest.apisandbox.zuora.com/v1";
        let z_prod = "https://rest.zuora.com/v1";
        assert_eq!(t.check_pairing(sf_sandbox, z_sandbox), Ok(Sandbox));
        assert_eq!(t.check_pairing(sf_prod, z_prod), Ok(Production));
        assert!(matches!(
            t.check_pairing(sf_sandbox, z_prod),
            Err(PairingError::Mixed { .. })
        ));
        assert!(matches!(
            t.check_pairing(sf_prod, z_sandbox),
            Err(PairingError::Mixed { .. })
        ));
        assert_eq!(
            t.check_pairing("http://localhost:8081", "http://127.0.0.1:8082"),
            Ok(Sandbox)
        );
        assert!(matches!(
            t.check_pairing("http://localhost:8081", z_prod),
            Err(PairingError::Mixed {
                zuora_env: Production,
                ..
            })
        ));
    }

    /// An endpoint the table does not know is refused rather than guessed.
    #[test]
    fn an_unknown_host_is_refused() {
        let t = &rules().sandbox;
        let e = t
            .check_pairing("https://crm.example.com", "https://rest.zuora.com")
            .unwrap_err();
        assert!(
            matches!(e, PairingError::Unknown { system: System::Salesforce, ref host, .. } if host == "crm.example.com")
        );
        assert!(matches!(
            t.environment(System::Zuora, "rest.zuora.com"),
            Err(PairingError::NotAUrl { .. })
        ));
    }

    /// Hosts are read from full URLs: user info, port, path, case and a trailing dot.
    #[test]
    fn host_parsing() {
        assert_eq!(
            host("https://u:p@Rest.Zuora.com.:443/v1?x").as_deref(),
            Some("rest.zuora.com")
        );
        assert_eq!(host("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(host("https:///path"), None);
        assert!(matches("*.my.salesforce.com", "acme.my.salesforce.com"));
        assert!(!matches("*.my.salesforce.com", "my.salesforce.com"));
        assert!(!matches("*.my.salesforce.com", "evilmy.salesforce.com"));
    }
}
