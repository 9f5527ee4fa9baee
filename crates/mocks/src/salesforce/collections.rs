//! sObject Collections: many records in one API request, as the REST API developer guide
//! describes them (each call counts once against the API allocation):
//! - create: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
//! - update: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
//! - upsert: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
//! - retrieve: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
//! - delete: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
//!
//! A well-formed request answers 200 with one result per record, in input order:
//! `{"id","success":true,"errors":[]}` (+ `"created"` on upsert) or
//! `{"success":false,"errors":[{"statusCode","message","fields"}]}`. With `allOrNone:
//! true` one failure rolls every change back: the failed record keeps its error, the
//! others get `ALL_OR_NONE_OPERATION_ROLLED_BACK`. More than 200 records (2,000 ids on a
//! retrieve) is 400 `EXCEEDED_ID_LIMIT` ("record limit reached. cannot submit more than
//! 200 records into this call").

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    field_list, insert_record, missing_required, parse_body, render_record, update_record,
    version_number, Data, Record, SObjectType, Salesforce, SfError,
};

/// Records one create, update, upsert or delete call takes.
const MAX_RECORDS: usize = 200;
/// Ids one retrieve call takes.
const MAX_RETRIEVE: usize = 2000;

/// One record's failure: `{"statusCode","message","fields"}`.
fn error(code: &str, message: impl Into<String>, fields: Vec<String>) -> Value {
    json!({ "success": false, "errors": [{ "statusCode": code, "message": message.into(), "fields": fields }] })
}

/// A single-record error as a collection result.
fn record_error(e: SfError) -> Value {
    let message = e.to_string();
    match e {
        SfError::InvalidField { fields, .. } => error("INVALID_FIELD", message, fields),
        SfError::RequiredMissing(fields) => error("REQUIRED_FIELD_MISSING", message, fields),
        SfError::InvalidType(t) => error(
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported."),
            vec![],
        ),
        SfError::NoSuchExternalId(_) | SfError::NotFound => error("NOT_FOUND", message, vec![]),
        _ => error("UNKNOWN_EXCEPTION", message, vec![]),
    }
}

fn rolled_back() -> Value {
    error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        vec![],
    )
}

fn ok(id: &str) -> Value {
    json!({ "id": id, "success": true, "errors": [] })
}

/// `{allOrNone, records}` of a create, update or upsert.
struct Batch {
    all_or_none: bool,
    records: Vec<Value>,
}

fn parse_batch(body: &Bytes) -> Result<Batch, SfError> {
    let body = parse_body(body)?;
    let all_or_none = match body.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(SfError::JsonParser(format!(
                "Cannot deserialize value of type `boolean` from {other}"
            )))
        }
    };
    let records = match body.get("records") {
        Some(Value::Array(r)) => r.clone(),
        _ => {
            return Err(SfError::JsonParser(
                "records is required and must be an array".into(),
            ))
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(SfError::ExceededIdLimit(MAX_RECORDS));
    }
    Ok(Batch {
        all_or_none,
        records,
    })
}

/// sObject Collections exist from API 42.0 (upsert from 46.0).
fn check_version(version: &str, min: u32) -> Result<(), SfError> {
    match version_number(&format!("/services/data/{version}/")) {
        Some(v) if v >= min => Ok(()),
        _ => Err(SfError::NotFound),
    }
}

/// What a call changed, to put back when `allOrNone` rolls it back: the records as they
/// were before (none for a record the call created). Costs only the records touched.
#[derive(Default)]
struct Undo {
    before: Vec<(String, Option<Record>)>,
}

impl Undo {
    /// Keeps the record `id` as it is now, before a change.
    fn touch(&mut self, d: &Data, id: &str) {
        if !self.before.iter().any(|(k, _)| k == id) {
            self.before
                .push((id.to_string(), d.records.get(id).cloned()));
        }
    }

    /// Notes a record the call created.
    fn created(&mut self, id: &str) {
        self.before.push((id.to_string(), None));
    }

    fn roll_back(self, d: &mut Data) {
        for (id, before) in self.before.into_iter().rev() {
            match before {
                Some(r) => {
                    d.records.insert(id, r);
                }
                None => {
                    d.records.remove(&id);
                }
            }
        }
    }
}

/// Runs `op` on every record; with `all_or_none`, one failure undoes every change.
fn run(
    d: &mut Data,
    all_or_none: bool,
    n: usize,
    mut op: impl FnMut(&mut Data, &mut Undo, usize) -> Result<Value, Value>,
) -> Vec<Value> {
    let (seq, stamp) = (d.seq, d.last_modstamp_ms);
    let mut undo = Undo::default();
    let results: Vec<Result<Value, Value>> = (0..n).map(|i| op(d, &mut undo, i)).collect();
    if all_or_none && results.iter().any(Result::is_err) {
        undo.roll_back(d);
        d.seq = seq;
        d.last_modstamp_ms = stamp;
        return results
            .into_iter()
            .map(|r| r.err().unwrap_or_else(rolled_back))
            .collect();
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| e))
        .collect()
}

/// The record's `attributes.type`, resolved.
fn record_type<'a>(
    app: &'a Salesforce,
    rec: &Map<String, Value>,
) -> Result<&'a SObjectType, Value> {
    let ty = rec
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| error("INVALID_TYPE", "Must send a concrete entity type.", vec![]))?;
    app.sobject_type(ty).map_err(record_error)
}

fn as_object(rec: &Value) -> Result<Map<String, Value>, Value> {
    rec.as_object().cloned().ok_or_else(|| {
        error(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from non-object value",
            vec![],
        )
    })
}

fn create_one(
    app: &Salesforce,
    d: &mut Data,
    undo: &mut Undo,
    rec: &Value,
) -> Result<Value, Value> {
    let obj = as_object(rec)?;
    let t = record_type(app, &obj)?;
    let fields = t.check_body(obj).map_err(record_error)?;
    missing_required(t, &fields).map_err(record_error)?;
    let id = insert_record(d, t, fields);
    undo.created(&id);
    Ok(ok(&id))
}

/// `POST /composite/sobjects`: create up to 200 records of any types.
pub(super) async fn create(
    State(app): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Result<Json<Vec<Value>>, SfError> {
    check_version(&version, 42)?;
    let b = parse_batch(&body)?;
    Ok(Json(app.write(|d| {
        run(d, b.all_or_none, b.records.len(), |d, undo, i| {
            create_one(&app, d, undo, &b.records[i])
        })
    })))
}

/// Whether `id` looks like a Salesforce Id (15 or 18 letters and digits).
fn well_formed_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

fn update_one(
    app: &Salesforce,
    d: &mut Data,
    undo: &mut Undo,
    rec: &Value,
) -> Result<Value, Value> {
    let mut obj = as_object(rec)?;
    let t = record_type(app, &obj)?;
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case("id")).cloned();
    let id = key
        .and_then(|k| obj.remove(&k))
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| {
            error(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
                vec![],
            )
        })?;
    if !well_formed_id(&id) {
        return Err(error("MALFORMED_ID", format!("malformed id {id}"), vec![]));
    }
    if d.records.get(&id).is_none_or(|r| r.sobject != t.name) {
        return Err(error(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![],
        ));
    }
    let changes = t.check_body(obj).map_err(record_error)?;
    undo.touch(d, &id);
    update_record(d, t, &id, changes);
    Ok(ok(&id))
}

/// `PATCH /composite/sobjects`: update up to 200 records, each with its `id`.
pub(super) async fn update(
    State(app): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Result<Json<Vec<Value>>, SfError> {
    check_version(&version, 42)?;
    let b = parse_batch(&body)?;
    Ok(Json(app.write(|d| {
        run(d, b.all_or_none, b.records.len(), |d, undo, i| {
            update_one(&app, d, undo, &b.records[i])
        })
    })))
}

/// The external id value of a record, as the string it is matched as.
fn key_value(obj: &Map<String, Value>, field: &str) -> Option<(String, String)> {
    let (k, v) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(field))?;
    let v = match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((k.clone(), v))
}

fn upsert_one(
    t: &SObjectType,
    field: &str,
    d: &mut Data,
    undo: &mut Undo,
    rec: &Value,
    duplicated: &HashMap<String, usize>,
) -> Result<Value, Value> {
    let mut obj = as_object(rec)?;
    let ty = obj
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| error("INVALID_TYPE", "Must send a concrete entity type.", vec![]))?;
    if !ty.eq_ignore_ascii_case(&t.name) {
        return Err(error(
            "INVALID_TYPE",
            format!(
                "The record's type {ty} is not the {} of the request URI",
                t.name
            ),
            vec![],
        ));
    }
    let (key, value) = key_value(&obj, field).ok_or_else(|| {
        error(
            "MISSING_ARGUMENT",
            format!("{field} not specified"),
            vec![field.to_string()],
        )
    })?;
    if duplicated.get(&value).is_some_and(|n| *n > 1) {
        return Err(error(
            "DUPLICATE_VALUE",
            format!("Duplicate external id specified: {value}"),
            vec![field.to_string()],
        ));
    }
    obj.remove(&key);
    let changes = t.check_body(obj).map_err(record_error)?;
    let ids = d.external_ids(t, field, &value);
    match ids.as_slice() {
        [] => {
            let mut fields = changes;
            fields.insert(field.to_string(), json!(value));
            missing_required(t, &fields).map_err(record_error)?;
            let id = insert_record(d, t, fields);
            undo.created(&id);
            Ok(json!({ "id": id, "success": true, "errors": [], "created": true }))
        }
        [id] => {
            let id = id.clone();
            undo.touch(d, &id);
            update_record(d, t, &id, changes);
            Ok(json!({ "id": id, "success": true, "errors": [], "created": false }))
        }
        many => Err(error(
            "DUPLICATE_EXTERNAL_ID",
            format!(
                "More than one record found for external id field: [{}]",
                many.join(", ")
            ),
            vec![field.to_string()],
        )),
    }
}

/// `PATCH /composite/sobjects/{SObjectName}/{ExternalIdFieldName}`: upsert up to 200
/// records of one type by a declared External ID field (never by record Id).
pub(super) async fn upsert(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Vec<Value>>, SfError> {
    check_version(&version, 46)?;
    let t = app.sobject_type(&sobject)?;
    let field = t.upsert_key(&field)?;
    if field == "Id" {
        return Err(SfError::InvalidField {
            message: "Only external ids are supported. Don't use record ids.".into(),
            fields: vec![field],
        });
    }
    let b = parse_batch(&body)?;
    let mut duplicated: HashMap<String, usize> = HashMap::new();
    for r in &b.records {
        if let Some((_, v)) = r.as_object().and_then(|o| key_value(o, &field)) {
            *duplicated.entry(v).or_default() += 1;
        }
    }
    Ok(Json(app.write(|d| {
        run(d, b.all_or_none, b.records.len(), |d, undo, i| {
            upsert_one(t, &field, d, undo, &b.records[i], &duplicated)
        })
    })))
}

#[derive(Deserialize)]
pub(super) struct IdsParams {
    ids: Option<String>,
    fields: Option<String>,
    #[serde(rename = "allOrNone")]
    all_or_none: Option<bool>,
}

fn split_ids(ids: Option<&str>) -> Vec<String> {
    ids.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn retrieve_ids(
    app: &Salesforce,
    version: &str,
    sobject: &str,
    ids: Vec<String>,
    fields: Option<&str>,
) -> Result<Json<Vec<Value>>, SfError> {
    check_version(version, 42)?;
    let t = app.sobject_type(sobject)?;
    if ids.len() > MAX_RETRIEVE {
        return Err(SfError::ExceededIdLimit(MAX_RETRIEVE));
    }
    let only = field_list(t, fields)?.ok_or_else(|| SfError::InvalidField {
        message: "fields is required".into(),
        fields: vec!["fields".into()],
    })?;
    Ok(Json(app.shared.read(|d| {
        ids.iter()
            .map(|id| {
                d.records
                    .get(id)
                    .filter(|r| r.sobject == t.name)
                    .map_or(Value::Null, |r| {
                        render_record(version, Some(t), r, Some(&only))
                    })
            })
            .collect()
    })))
}

/// `GET /composite/sobjects/{SObjectName}?ids=a,b&fields=F1,F2`: the records in the
/// order asked, `null` for an id that matches none.
pub(super) async fn retrieve(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject)): Path<(String, String)>,
    Query(p): Query<IdsParams>,
) -> Result<Json<Vec<Value>>, SfError> {
    retrieve_ids(
        &app,
        &version,
        &sobject,
        split_ids(p.ids.as_deref()),
        p.fields.as_deref(),
    )
}

/// `POST /composite/sobjects/{SObjectName}` `{"ids":[...],"fields":[...]}`: the same
/// as the GET, for id lists too long for a URL.
pub(super) async fn retrieve_by_body(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Vec<Value>>, SfError> {
    let body = parse_body(&body)?;
    let strings = |k: &str| -> Vec<String> {
        body.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let fields = strings("fields").join(",");
    retrieve_ids(
        &app,
        &version,
        &sobject,
        strings("ids"),
        (!fields.is_empty()).then_some(fields.as_str()),
    )
}

/// `DELETE /composite/sobjects?ids=a,b&allOrNone=false`.
pub(super) async fn delete(
    State(app): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    Query(p): Query<IdsParams>,
) -> Result<Json<Vec<Value>>, SfError> {
    check_version(&version, 42)?;
    let ids = split_ids(p.ids.as_deref());
    if ids.len() > MAX_RECORDS {
        return Err(SfError::ExceededIdLimit(MAX_RECORDS));
    }
    Ok(Json(app.write(|d| {
        run(
            d,
            p.all_or_none.unwrap_or(false),
            ids.len(),
            |d, undo, i| {
                let id = &ids[i];
                if !well_formed_id(id) {
                    return Err(error("MALFORMED_ID", format!("malformed id {id}"), vec![]));
                }
                undo.touch(d, id);
                match d.records.remove(id) {
                    Some(_) => Ok(ok(id)),
                    None => Err(error("ENTITY_IS_DELETED", "entity is deleted", vec![])),
                }
            },
        )
    })))
}
