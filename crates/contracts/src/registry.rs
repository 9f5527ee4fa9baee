//! Client for a Confluent-compatible schema registry (register, fetch by id, compatibility
//! check), with a cache so each schema crosses the network once. The hub works without a
//! registry (single-object framing); with one, records use the Confluent wire format.
//!
//! Subjects follow the record-name strategy (`dev.l2f.events.LeadCaptured`), because a topic
//! carries several event types.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::json;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::schema::Schema;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A cached registry client.
#[derive(Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
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
    /// A client for the registry at `base_url` (e.g. `http://localhost:8081`).
    pub fn new(base_url: &str) -> RegistryClient {
        RegistryClient {
            base: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            by_id: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The subject of an event under the record-name strategy.
    pub fn subject(schema: &Schema) -> Result<String> {
        schema
            .root_named()
            .map(|n| n.name().to_owned())
            .ok_or_else(|| Error::Registry("an event schema's root must be a record".into()))
    }

    async fn send<T: for<'de> Deserialize<'de>>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Registry(e.to_string()))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| {
                    format!(
                        "error_code {:?}: {}",
                        b.error_code,
                        b.message.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Registry(format!("HTTP {status}: {detail}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Registry(format!("unexpected body: {e}")))
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
            .send(
                self.http
                    .post(format!("{}/subjects/{subject}/versions", self.base))
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(json!({ "schema": text }).to_string()),
            )
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
            .send(self.http.get(format!("{}/schemas/ids/{id}", self.base)))
            .await?;
        lock(&self.by_id).insert(id, body.schema.clone());
        Ok(body.schema)
    }

    /// Asks the registry whether `schema` is compatible with the latest version of its subject.
    pub async fn is_compatible(&self, schema: &Schema) -> Result<bool> {
        let subject = Self::subject(schema)?;
        let body: CompatBody = self
            .send(
                self.http
                    .post(format!(
                        "{}/compatibility/subjects/{subject}/versions/latest",
                        self.base
                    ))
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(json!({ "schema": schema.to_full_json().to_string() }).to_string()),
            )
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
