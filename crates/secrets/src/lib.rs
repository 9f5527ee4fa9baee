//! Credentials that never print.
//!
//! Every l2f part that holds a password, a client secret or an API key (the Kafka client, the
//! connectors, the mock apps' clients) takes it through these two types, so there is one
//! place that guarantees a secret cannot reach a log line or an error: [`Secret`]'s Debug and
//! Display print `***`, and [`SecretRef`] — where the configuration says the secret comes
//! from — prints only the variable or file name.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why a secret could not be resolved; names the config key and the variable or file, never
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is missing or empty.
    #[error("{field}: environment variable {var} is {state}")]
    Env {
        /// The config key, e.g. `kafka.sasl.password`.
        field: String,
        /// The variable's name.
        var: String,
        /// `not set` or `empty`.
        state: &'static str,
    },
    /// The file could not be read.
    #[error("{field}: cannot read secret file {path}: {cause}")]
    File {
        /// The config key.
        field: String,
        /// The file's path.
        path: String,
        /// The OS error.
        cause: std::io::Error,
    },
}

/// Where a secret comes from. Inline values are accepted for local use but never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    /// Read from an environment variable at start-up.
    Env {
        /// The variable's name.
        env: String,
    },
    /// Read from a file at start-up (trailing newline trimmed), e.g. a mounted Kubernetes secret.
    File {
        /// The file's path.
        file: PathBuf,
    },
    /// Written in the config file itself.
    Inline(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "env:{env}"),
            SecretRef::File { file } => write!(f, "file:{}", file.display()),
            SecretRef::Inline(_) => f.write_str("***"),
        }
    }
}

impl SecretRef {
    /// Resolves the secret; `field` names the config key in the error.
    pub fn resolve(&self, field: &str) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Inline(v) => Ok(Secret::new(v.clone())),
            SecretRef::Env { env } => {
                let missing = |state| SecretError::Env {
                    field: field.to_string(),
                    var: env.clone(),
                    state,
                };
                match std::env::var(env) {
                    Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                    Ok(_) => Err(missing("empty")),
                    Err(_) => Err(missing("not set")),
                }
            }
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map(|v| Secret::new(v.trim_end_matches(['\n', '\r'])))
                .map_err(|cause| SecretError::File {
                    field: field.to_string(),
                    path: file.display().to_string(),
                    cause,
                }),
        }
    }
}

/// A resolved secret: its Debug and Display print `***`, so it cannot leak into a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that must hand it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        let r: SecretRef = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(format!("{r:?}"), "***");
    }

    #[test]
    fn env_and_file_sources_resolve_and_name_what_is_missing() {
        let r: SecretRef = serde_json::from_str(r#"{"env": "L2F_SECRETS_TEST_UNSET"}"#).unwrap();
        let e = r.resolve("x.password").unwrap_err().to_string();
        assert_eq!(
            e,
            "x.password: environment variable L2F_SECRETS_TEST_UNSET is not set"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        let r = SecretRef::File { file: path.clone() };
        assert_eq!(r.resolve("x").unwrap().expose(), "from-file");
        assert_eq!(format!("{r:?}"), format!("file:{}", path.display()));
        let gone = SecretRef::File {
            file: dir.path().join("nope"),
        };
        assert!(gone
            .resolve("y.secret")
            .unwrap_err()
            .to_string()
            .starts_with("y.secret: cannot read secret file"));
    }
}
