//! The schema registry client against a tiny in-test server that speaks the Confluent Schema
//! Registry REST shapes (register, fetch by id, compatibility, error bodies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::lead_captured;
use l2f_contracts::registry::RegistryClient;
use l2f_contracts::{compat, Catalog, Codec, Error, Framing, Schema};
use serde_json::{json, Value};

#[derive(Default)]
struct Registry {
    schemas: Vec<String>,
    subjects: HashMap<String, Vec<usize>>,
    requests: HashMap<&'static str, usize>,
}

type Shared = Arc<Mutex<Registry>>;

fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": 40403, "message": "Schema not found"})),
    )
}

async fn register(
    State(s): State<Shared>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut r = s.lock().unwrap();
    *r.requests.entry("register").or_default() += 1;
    let text = body["schema"].as_str().unwrap_or_default().to_owned();
    let id = match r.schemas.iter().position(|x| *x == text) {
        Some(i) => i,
        None => {
            r.schemas.push(text);
            r.schemas.len() - 1
        }
    };
    r.subjects.entry(subject).or_default().push(id);
    Json(json!({ "id": id + 1 }))
}

async fn by_id(
    State(s): State<Shared>,
    Path(id): Path<usize>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let mut r = s.lock().unwrap();
    *r.requests.entry("fetch").or_default() += 1;
    match id.checked_sub(1).and_then(|i| r.schemas.get(i)) {
        Some(text) => Ok(Json(json!({ "schema": text }))),
        None => Err(not_found()),
    }
}

async fn compatibility(
    State(s): State<Shared>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let r = s.lock().unwrap();
    let latest = r
        .subjects
        .get(&subject)
        .and_then(|v| v.last())
        .ok_or_else(not_found)?;
    let new =
        Schema::parse_str(body["schema"].as_str().unwrap_or_default()).map_err(|_| not_found())?;
    let old = Schema::parse_str(&r.schemas[*latest]).map_err(|_| not_found())?;
    // BACKWARD, the registry's default level.
    Ok(Json(
        json!({ "is_compatible": compat::check(&new, &old).is_empty() }),
    ))
}

async fn serve() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(by_id))
        .route(
            "/compatibility/subjects/{subject}/versions/latest",
            post(compatibility),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn registered_ids_frame_records_and_a_second_hub_learns_them_by_id() {
    let (url, state) = serve().await;
    let client = RegistryClient::new(&url);
    let producer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    client.register_all(&producer).await.unwrap();
    assert_eq!(state.lock().unwrap().schemas.len(), 14);
    let lead = lead_captured();
    let frame = producer.encode(&lead).unwrap();
    assert_eq!(frame[0], 0);
    let id = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    assert_eq!(producer.decode::<LeadCaptured>(&frame).unwrap(), lead);

    // Registering again is served from the cache.
    client.register_all(&producer).await.unwrap();
    assert_eq!(state.lock().unwrap().requests["register"], 14);

    // Another hub, knowing no ids, fetches the writer schema by id once.
    let consumer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    assert!(
        matches!(consumer.decode::<LeadCaptured>(&frame), Err(Error::UnknownSchemaId(i)) if i == id)
    );
    let other = RegistryClient::new(&url);
    other.learn(&consumer, id).await.unwrap();
    other.learn(&consumer, id).await.unwrap();
    assert_eq!(state.lock().unwrap().requests["fetch"], 1);
    assert_eq!(consumer.decode::<LeadCaptured>(&frame).unwrap(), lead);
}

#[tokio::test]
async fn compatibility_and_errors_follow_the_registry() {
    let (url, _state) = serve().await;
    let client = RegistryClient::new(&url);
    let schema = Catalog::embedded().get("LeadCaptured").unwrap().clone();
    client.register(&schema).await.unwrap();
    assert!(client.is_compatible(&schema).await.unwrap());
    let mut json = schema.to_full_json();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "score", "type": "int", "doc": "x"}));
    let breaking = Schema::parse_str(&json.to_string()).unwrap();
    assert!(!client.is_compatible(&breaking).await.unwrap());
    let err = client.fetch(4242).await.unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("40403"), "{err}");
    let down = RegistryClient::new("http://127.0.0.1:9");
    assert!(matches!(down.fetch(1).await, Err(Error::Registry(_))));
}

#[tokio::test]
async fn a_frame_written_with_an_older_registered_version_is_resolved_by_id() {
    let (url, _state) = serve().await;
    let client = RegistryClient::new(&url);
    let v1 = Catalog::embedded_history()[0]
        .1
        .get("LeadCaptured")
        .unwrap()
        .clone();
    let v1_id = client.register(&v1).await.unwrap();

    // A v1 producer's frame: 00 + id + Avro written with the v1 schema (no utm_campaign).
    let fast: serde_avro_fast::Schema = v1.to_full_json().to_string().parse().unwrap();
    let mut json = serde_json::to_value(lead_captured()).unwrap();
    json.as_object_mut().unwrap().remove("utm_campaign");
    let mut frame = vec![0];
    frame.extend_from_slice(&v1_id.to_be_bytes());
    let frame = serde_avro_fast::to_datum(
        &json,
        frame,
        &mut serde_avro_fast::ser::SerializerConfig::new(&fast),
    )
    .unwrap();

    let consumer = Codec::with_catalog(Catalog::embedded(), Framing::Confluent).unwrap();
    RegistryClient::new(&url)
        .learn(&consumer, v1_id)
        .await
        .unwrap();
    let mut expected = lead_captured();
    expected.utm_campaign = None;
    assert_eq!(consumer.decode::<LeadCaptured>(&frame).unwrap(), expected);
}
