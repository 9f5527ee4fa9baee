//! Client for a Confluent-compatible schema registry (register, fetch by id, compatibility
//! check), with a cache so each schema crosses the network once. The hub works without a
//! registry (single-object framing); with one, records use the Confluent wire format.
//!
//! Subjects follow the record-name strategy (`dev.l2f.events.LeadCaptured`), because a topic
//! carries several event types.
//!
//! For a managed registry ([`RegistryConfig`]): HTTP basic auth (the user and a
//! [`SecretRef`]: Confluent Cloud's API key and secret), a CA file to trust beside the
//! system's roots, and retries as Confluent's own clients make them (`max.retries`,
//! `retries.wait.ms`, `retries.max.wait.ms`: full-jitter exponential backoff on 408, 429, 5xx
//! and on connection failures; see docs.confluent.io, "Configuration Reference for Schema
//! Registry Clients"), obeying a `Retry-After`. A refused credential (401/403) or any other
//! 4xx is answered at once, never retried.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use l2f_secrets::{Secret, SecretRef};
use rand::Rng;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::schema::Schema;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where a schema registry is and how to reach it; every field but `url` has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `https://psrc-123.eu-central-1.aws.confluent.cloud`.
    pub url: String,
    /// Basic-auth user (Confluent Cloud: the API key); unset sends no credentials.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret): `{ env = "VAR" }` or
    /// `{ file = "PATH" }`; required with `username`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// PEM file of the CA(s) that signed the registry's certificate, trusted beside the
    /// system's roots (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Deadline of one request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries after the first attempt (Confluent's `max.retries`, 3).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Backoff before the first retry, doubling after (Confluent's `retries.wait.ms`, 1 s).
    #[serde(default = "default_retry_wait", with = "humantime_serde")]
    pub retry_wait: Duration,
    /// Longest backoff (Confluent's `retries.max.wait.ms`, 20 s); also caps a `Retry-After`.
    #[serde(default = "default_retry_max_wait", with = "humantime_serde")]
    pub retry_max_wait: Duration,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_retries() -> u32 {
    3
}
fn default_retry_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max_wait() -> Duration {
    Duration::from_secs(20)
}

impl RegistryConfig {
    /// A configuration for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        RegistryConfig {
            url: url.into(),
            username: None,
            password: None,
            ca_file: None,
            request_timeout: default_request_timeout(),
            max_retries: default_max_retries(),
            retry_wait: default_retry_wait(),
            retry_max_wait: default_retry_max_wait(),
        }
    }
}

/// How a failed attempt is followed up.
enum Attempt {
    /// Worth another try (408, 429, 5xx, no connection), after the server's hint if it gave one.
    Retry(Error, Option<Duration>),
    /// Final.
    Fail(Error),
}

/// A cached registry client.
#[derive(Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, Secret)>,
    max_retries: u32,
    retry_wait: Duration,
    retry_max_wait: Duration,
    by_id: Mutex<HashMap<u32, String>>,
    ids: Mutex<HashMap<(String, u64), u32>>,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize)]
struct CompatBody {
    is_compatible: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

impl RegistryClient {
    /// A client for the registry at `base_url` (e.g. `http://localhost:8081`), without
    /// credentials, trusting the system's roots, with the default retries.
    pub fn new(base_url: &str) -> RegistryClient {
        Self::with_config(&RegistryConfig::new(base_url))
            .expect("a configuration without secrets or files cannot fail")
    }

    /// A client as `cfg` says: the password resolved and the CA file read now, so a missing
    /// variable or file stops the start rather than the first request.
    pub fn with_config(cfg: &RegistryConfig) -> Result<RegistryClient> {
        let bad = |what: String| Error::Registry(what);
        let auth = match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => Some((
                user.clone(),
                password
                    .resolve("registry password")
                    .map_err(|e| bad(e.to_string()))?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad("a registry username is set but no password".into()))
            }
            (None, Some(_)) => {
                return Err(bad("a registry password is set but no username".into()))
            }
        };
        let mut http = reqwest::Client::builder().timeout(cfg.request_timeout);
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                bad(format!(
                    "registry CA file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                bad(format!(
                    "registry CA file: {} is not PEM: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(bad(format!(
                    "registry CA file: {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        Ok(RegistryClient {
            base: cfg.url.trim_end_matches('/').to_owned(),
            http: http.build().map_err(|e| bad(format!("HTTP client: {e}")))?,
            auth,
            max_retries: cfg.max_retries,
            retry_wait: cfg.retry_wait,
            retry_max_wait: cfg.retry_max_wait,
            by_id: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
        })
    }

    /// The subject of an event under the record-name strategy.
    pub fn subject(schema: &Schema) -> Result<String> {
        schema
            .root_named()
            .map(|n| n.name().to_owned())
            .ok_or_else(|| Error::Registry("an event schema's root must be a record".into()))
    }

    /// Sends the request `build` makes, again after a backoff while the registry answers
    /// 408, 429 or 5xx or cannot be reached, up to `max_retries` times.
    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let mut attempt = 0u32;
        loop {
            let mut req = build().header(reqwest::header::ACCEPT, CONTENT_TYPE);
            if let Some((user, password)) = &self.auth {
                req = req.basic_auth(user, Some(password.expose()));
            }
            let error = match self.once(req).await {
                Ok(body) => return Ok(body),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(_, hint)) if attempt < self.max_retries => {
                    tokio::time::sleep(self.backoff(attempt, hint)).await;
                    attempt += 1;
                    continue;
                }
                Err(Attempt::Retry(e, _)) => e,
            };
            let tries = attempt + 1;
            let noun = if tries == 1 { "attempt" } else { "attempts" };
            return Err(match error {
                Error::Registry(m) => Error::Registry(format!("{m} (after {tries} {noun})")),
                other => other,
            });
        }
    }

    /// Full jitter (as Confluent's clients): a random wait up to `retry_wait` doubled per
    /// retry, capped at `retry_max_wait`; a server's `Retry-After` is obeyed (capped too).
    fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            return h.min(self.retry_max_wait);
        }
        let cap = self
            .retry_wait
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry_max_wait);
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
    }

    async fn once<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> std::result::Result<T, Attempt> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let e_text = chain(&e);
                let err = Error::Registry(format!("{}: {e_text}", self.base));
                // A certificate the client does not trust will not become trusted by retrying.
                let untrusted = e_text.contains("certificate");
                return Err(
                    if !untrusted && (e.is_connect() || e.is_timeout() || e.is_request()) {
                        Attempt::Retry(err, None)
                    } else {
                        Attempt::Fail(err)
                    },
                );
            }
        };
        let status = resp.status();
        let hint = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(Attempt::Retry(
                    Error::Registry(format!("{}: reading the answer: {}", self.base, chain(&e))),
                    None,
                ))
            }
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Attempt::Fail(Error::Registry(format!("unexpected body: {e}"))));
        }
        let detail = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| {
                format!(
                    "error_code {:?}: {}",
                    b.error_code,
                    b.message.unwrap_or_default()
                )
            })
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        let mut message = format!("HTTP {status}: {detail}");
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            message.push_str(if self.auth.is_some() {
                " (the registry refused the credentials: check its username and password)"
            } else {
                " (the registry wants credentials: set a username and password)"
            });
        }
        let err = Error::Registry(message);
        Err(
            if status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
            {
                Attempt::Retry(err, hint)
            } else {
                Attempt::Fail(err)
            },
        )
    }

    /// Registers a schema under its subject (idempotent on the registry side); returns its id.
    pub async fn register(&self, schema: &Schema) -> Result<u32> {
        let subject = Self::subject(schema)?;
        let key = (subject.clone(), schema.fingerprint());
        if let Some(id) = lock(&self.ids).get(&key) {
            return Ok(*id);
        }
        let text = schema.to_full_json().to_string();
        let body: IdBody = self
            .send(|| {
                self.http
                    .post(format!("{}/subjects/{subject}/versions", self.base))
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(json!({ "schema": text }).to_string())
            })
            .await?;
        lock(&self.ids).insert(key, body.id);
        lock(&self.by_id).insert(body.id, text);
        Ok(body.id)
    }

    /// Fetches a schema's text by id (cached: ids are immutable in a registry).
    pub async fn fetch(&self, id: u32) -> Result<String> {
        if let Some(s) = lock(&self.by_id).get(&id) {
            return Ok(s.clone());
        }
        let body: SchemaBody = self
            .send(|| self.http.get(format!("{}/schemas/ids/{id}", self.base)))
            .await?;
        lock(&self.by_id).insert(id, body.schema.clone());
        Ok(body.schema)
    }

    /// Asks the registry whether `schema` is compatible with the latest version of its subject.
    pub async fn is_compatible(&self, schema: &Schema) -> Result<bool> {
        let subject = Self::subject(schema)?;
        let body: CompatBody = self
            .send(|| {
                self.http
                    .post(format!(
                        "{}/compatibility/subjects/{subject}/versions/latest",
                        self.base
                    ))
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(json!({ "schema": schema.to_full_json().to_string() }).to_string())
            })
            .await?;
        Ok(body.is_compatible)
    }

    /// Registers every reader schema of the codec and tells the codec the ids to frame with.
    pub async fn register_all(&self, codec: &Codec) -> Result<()> {
        for name in crate::events::EVENT_NAMES {
            let schema = codec
                .schema(name)
                .ok_or_else(|| Error::UnknownEvent((*name).to_owned()))?
                .clone();
            let id = self.register(&schema).await?;
            codec.set_schema_id(name, id)?;
        }
        Ok(())
    }

    /// Makes sure the codec can decode frames written with registry id `id`: fetches the
    /// writer schema and adds it (after the compatibility check) when it is new.
    pub async fn learn(&self, codec: &Codec, id: u32) -> Result<()> {
        let text = self.fetch(id).await?;
        let schema = Schema::parse_str(&text)?;
        codec.add_writer_schema(schema, Some(id))?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error and its sources on one line (reqwest's own message omits the cause, such as the
/// certificate that was refused).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}
