//! `GET /services/data/vXX.X/query?q=` and its paging, as the REST API developer guide
//! describes them:
//! - Query: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
//! - Query More Results (`/query/{locator}`): https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query_more_results.htm
//! - Query Options header (`Sforce-Query-Options: batchSize=N`, 200 to 2,000):
//!   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
//!
//! A result larger than the batch answers `done:false` with `nextRecordsUrl`
//! `/services/data/vXX.X/query/01gL2F0000000001-2000`; the rest is a snapshot taken at the
//! first call, so writes in between do not shift pages. A locator expires
//! `query_locator_ttl_secs` after its last use (Salesforce: 15 minutes of inactivity) and
//! then answers 400 `INVALID_QUERY_LOCATOR`. Parent fields (`Account.BillingCountryCode`)
//! are rendered nested under the relationship name with their own `attributes`, or
//! `null` when the record has no parent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{record_url, Data, Record, SObjectType, Salesforce, SfError};
use crate::kit;

/// Open query cursors of one mock.
#[derive(Default)]
pub(crate) struct Cursors {
    inner: Mutex<CursorState>,
}

#[derive(Default)]
struct CursorState {
    seq: u64,
    open: HashMap<String, Cursor>,
}

struct Cursor {
    records: Arc<Vec<Value>>,
    batch: usize,
    expires_ms: i64,
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, CursorState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `records` for paging and returns the new locator.
    fn open(&self, records: Vec<Value>, batch: usize, ttl_ms: i64) -> String {
        let now = kit::now_ms();
        let mut st = self.lock();
        st.open.retain(|_, c| c.expires_ms > now);
        st.seq += 1;
        let locator = format!("01gL2F{:010}", st.seq);
        st.open.insert(
            locator.clone(),
            Cursor {
                records: Arc::new(records),
                batch,
                expires_ms: now + ttl_ms,
            },
        );
        locator
    }

    /// The records and batch size of a live locator, its lifetime renewed.
    fn get(&self, locator: &str, ttl_ms: i64) -> Option<(Arc<Vec<Value>>, usize)> {
        let now = kit::now_ms();
        let mut st = self.lock();
        let c = st.open.get_mut(locator).filter(|c| c.expires_ms > now)?;
        c.expires_ms = now + ttl_ms;
        Some((c.records.clone(), c.batch))
    }
}

/// A field path of a query: a field of the record, or one of its parent's.
#[derive(Debug, Clone)]
enum FieldPath {
    Own(String),
    Parent {
        /// The relationship name as rendered (`Account`, `Zuora__CustomerAccount__r`).
        rel: String,
        /// The lookup field holding the parent's Id (`AccountId`).
        lookup: String,
        /// The parent's field.
        field: String,
    },
}

impl FieldPath {
    fn get(&self, d: &Data, rec: &Record) -> Option<Value> {
        match self {
            FieldPath::Own(f) => rec.fields.get(f).cloned(),
            FieldPath::Parent { lookup, field, .. } => {
                parent(d, rec, lookup)?.fields.get(field).cloned()
            }
        }
    }
}

fn parent<'a>(d: &'a Data, rec: &Record, lookup: &str) -> Option<&'a Record> {
    let id = rec.fields.get(lookup)?.as_str()?;
    d.records.get(id)
}

/// Resolves a field as written in a query against the type `t`.
fn resolve(app: &Salesforce, t: &SObjectType, name: &str) -> Result<FieldPath, SfError> {
    let no_column = |f: &str, on: &str| SfError::InvalidField {
        message: format!("No such column '{f}' on entity '{on}'"),
        fields: vec![f.to_string()],
    };
    let Some((rel, field)) = name.split_once('.') else {
        return t
            .field(name)
            .map(FieldPath::Own)
            .ok_or_else(|| no_column(name, &t.name));
    };
    let lower = rel.to_ascii_lowercase();
    let (lookup, rel_name) = if lower.ends_with("__r") {
        let lookup = format!("{}__c", &rel[..rel.len() - 3]);
        let rel_name = format!("{}__r", &rel[..rel.len() - 3]);
        (Some(lookup), rel_name)
    } else {
        let lookup = t.field(&format!("{rel}Id"));
        let rel_name = lookup
            .as_deref()
            .and_then(|l| l.strip_suffix("Id"))
            .unwrap_or(rel)
            .to_string();
        (lookup, rel_name)
    };
    let lookup = lookup.ok_or_else(|| SfError::InvalidField {
        message: format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
        fields: vec![name.to_string()],
    })?;
    // The parent's type, where the mock knows it; a field of an unknown parent type is
    // taken as written.
    let parent_type = match lookup.as_str() {
        "AccountId" => app.sobject_type("Account").ok(),
        "ContactId" => app.sobject_type("Contact").ok(),
        "ParentId" => Some(t),
        l if l.ends_with("__c") => app.sobject_type(l).ok(),
        _ => None,
    };
    let field = match parent_type {
        Some(p) => p.field(field).ok_or_else(|| no_column(field, &p.name))?,
        None => field.to_string(),
    };
    Ok(FieldPath::Parent {
        rel: rel_name,
        lookup,
        field,
    })
}

fn render(version: &str, d: &Data, rec: &Record, select: &[FieldPath]) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({
            "type": rec.sobject,
            "url": record_url(version, &rec.sobject, rec.fields["Id"].as_str().unwrap_or(""))
        }),
    );
    for f in select {
        match f {
            FieldPath::Own(name) => {
                out.insert(
                    name.clone(),
                    rec.fields.get(name).cloned().unwrap_or(Value::Null),
                );
            }
            FieldPath::Parent { rel, lookup, field } => match parent(d, rec, lookup) {
                None => {
                    out.insert(rel.clone(), Value::Null);
                }
                Some(p) => {
                    let entry = out.entry(rel.clone()).or_insert_with(|| {
                        json!({ "attributes": {
                            "type": p.sobject,
                            "url": record_url(version, &p.sobject, p.fields["Id"].as_str().unwrap_or(""))
                        } })
                    });
                    entry[field.as_str()] = p.fields.get(field).cloned().unwrap_or(Value::Null);
                }
            },
        }
    }
    Value::Object(out)
}

#[derive(Deserialize)]
pub(super) struct QueryParams {
    q: Option<String>,
}

/// `batchSize=N` of a `Sforce-Query-Options` header, kept within 200..=2000.
fn batch_size(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get("Sforce-Query-Options")?.to_str().ok()?;
    v.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
        .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        .map(|n| n.clamp(200, 2000))
}

fn page(
    version: &str,
    records: &[Value],
    from: usize,
    batch: usize,
    locator: Option<&str>,
) -> Value {
    let end = from.saturating_add(batch).min(records.len());
    let mut v = json!({
        "totalSize": records.len(),
        "done": end >= records.len(),
        "records": records[from.min(end)..end],
    });
    if let (false, Some(l)) = (end >= records.len(), locator) {
        v["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{l}-{end}"));
    }
    v
}

fn locator_ttl_ms(app: &Salesforce) -> i64 {
    i64::try_from(app.cfg.query_locator_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Runs a query; a result larger than one batch is kept for [`more`].
pub(super) async fn query(
    State(app): State<Arc<Salesforce>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(p): Query<QueryParams>,
) -> Result<Json<Value>, SfError> {
    let q =
        p.q.ok_or_else(|| SfError::MalformedQuery("A query string has to be specified".into()))?;
    let parsed = crate::soql::parse(&q).map_err(SfError::MalformedQuery)?;
    let t = app.sobject_type(&parsed.from)?;
    let select = parsed
        .fields
        .iter()
        .map(|f| resolve(&app, t, f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut paths: HashMap<String, FieldPath> = HashMap::new();
    let mut wanted: Vec<&str> = parsed
        .filter
        .as_ref()
        .map(|f| f.fields())
        .unwrap_or_default();
    wanted.extend(parsed.order_by.iter().map(|(f, _)| f.as_str()));
    for f in wanted {
        paths.insert(f.to_string(), resolve(&app, t, f)?);
    }
    let order: Vec<(FieldPath, bool)> = parsed
        .order_by
        .iter()
        .map(|(f, desc)| (paths[f].clone(), *desc))
        .collect();
    let records = app.shared.read(|d| {
        let mut rows: Vec<&Record> =
            d.records
                .values()
                .filter(|r| r.sobject == t.name)
                .filter(|r| {
                    parsed.filter.as_ref().is_none_or(|f| {
                        f.eval(&|name: &str| paths.get(name).and_then(|p| p.get(d, r)))
                    })
                })
                .collect();
        rows.sort_by(|a, b| {
            order
                .iter()
                .map(|(f, desc)| {
                    let o = crate::soql::compare_values(f.get(d, a).as_ref(), f.get(d, b).as_ref());
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        rows.into_iter()
            .take(parsed.limit.unwrap_or(usize::MAX))
            .map(|r| render(&version, d, r, &select))
            .collect::<Vec<_>>()
    });
    let batch = batch_size(&headers).unwrap_or(app.cfg.query_batch_size.max(1));
    if records.len() <= batch {
        return Ok(Json(page(&version, &records, 0, batch, None)));
    }
    let mut first = page(&version, &records, 0, batch, None);
    let locator = app.cursors.open(records, batch, locator_ttl_ms(&app));
    first["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{batch}"));
    Ok(Json(first))
}

/// The next batch of a query: `GET /services/data/vXX.X/query/{locator}-{offset}`.
pub(super) async fn more(
    State(app): State<Arc<Salesforce>>,
    Path((version, locator)): Path<(String, String)>,
) -> Result<Json<Value>, SfError> {
    let (id, offset) = locator
        .rsplit_once('-')
        .and_then(|(id, n)| Some((id, n.parse::<usize>().ok()?)))
        .ok_or(SfError::InvalidQueryLocator)?;
    let (records, batch) = app
        .cursors
        .get(id, locator_ttl_ms(&app))
        .ok_or(SfError::InvalidQueryLocator)?;
    if offset > records.len() {
        return Err(SfError::InvalidQueryLocator);
    }
    Ok(Json(page(&version, &records, offset, batch, Some(id))))
}
