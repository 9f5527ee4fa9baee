//! Mailgun's events API, `GET /v3/{domain}/events` and the page URLs it hands out
//! (`GET /v3/{domain}/events/{page}`), as documented:
//! - query options: `begin` and `end` (epoch seconds, fractions allowed, or RFC 2822 such
//!   as `Tue, 24 Nov 2020 09:00:00 -0000`), `ascending` (`yes`/`no`; must agree with
//!   `begin`/`end` when both are given, else it is deduced from them; without `end` it
//!   defaults to `no`, from `begin` into the past), `limit` (default 100, at most 300),
//!   `pretty` (accepted, ignored);
//!   https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events
//!   https://github.com/mailgun/documentation/blob/master/source/api-events.rst
//! - filter fields `event`, `recipient`, `recipients`, `from`, `to`, `subject`,
//!   `message-id` (as the send answers it, with or without the angle brackets), `tags`,
//!   `list`, `attachment`, `size`, `severity`, each a filter expression: `foo bar` (both),
//!   `foo OR bar`, `"foo bar"`, `foo -bar`, `>10000 <20000` (numeric fields);
//!   https://documentation.mailgun.com/docs/mailgun/user-manual/events/filter-field
//! - `user-variables`: a JSON object; an event matches when its `user-variables` has each
//!   key with that value (a string compares equal to the same text). **Not in Mailgun's
//!   documented filter fields** — a connector should not depend on it against the real
//!   service; filter by `message-id` or `recipient` and read `user-variables` from the
//!   items instead;
//! - the answer `{"items":[...],"paging":{"first","last","next","previous"}}`, every page URL
//!   absolute and always given; the next page of the last page (and the previous page of
//!   the first) is empty; with an open end, an ascending `next` URL fetched later returns
//!   what happened since (continuous polling);
//! - items in the shape of the documented samples and webhook payloads (`event`, `id`,
//!   `timestamp` in epoch seconds with microseconds, `log-level`, `envelope`, `flags`,
//!   `message.headers.{to,message-id,from,subject}`, `message.attachments`,
//!   `message.recipients`, `message.size`, `recipient`, `recipient-domain`, `tags`,
//!   `campaigns`, `user-variables`, `storage`, and for `delivered` `delivery-status`);
//!   https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
//!
//! Unknown query parameters are ignored. A page token that does not decode answers 400.
//! With `events_delay_ms`, an event shows only that long (wall clock) after it happened,
//! as Mailgun's events reach their storage late ("Event Polling" in the same document):
//! a reader must poll past a threshold before trusting a page.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{authorised_headers, Data, Mail, MailError, Message};
use crate::kit::{self, Scheme};

/// Mailgun's page size limit.
const MAX_LIMIT: usize = 300;
/// The page size when none is given.
const DEFAULT_LIMIT: usize = 100;

/// One stored event: its time and position, and its body without the request-dependent
/// storage URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailEvent {
    /// Order among events of one instant.
    pub seq: u64,
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// The sending domain.
    pub domain: String,
    /// The event as the API shows it.
    pub item: Value,
    /// Wall-clock ms from which the events API shows it (`events_delay_ms`).
    #[serde(default)]
    pub visible_ms: i64,
}

/// A 22-character url-safe id, as Mailgun's event ids look.
fn event_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The bare address of `Name <a@b>` or `a@b`.
fn bare(addr: &str) -> &str {
    match (addr.find('<'), addr.rfind('>')) {
        (Some(i), Some(j)) if i < j => addr[i + 1..j].trim(),
        _ => addr.trim(),
    }
}

/// Records the `accepted` and `delivered` events of every recipient of `m`, at `at_ms`.
/// They show in the events API from `visible_ms` (wall clock) on.
pub(super) fn record(d: &mut Data, m: &Message, at_ms: i64, visible_ms: i64) {
    let message_id =
        m.id.trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
    let recipients: Vec<String> = m.to.iter().chain(&m.cc).chain(&m.bcc).cloned().collect();
    let size = m.subject.len()
        + m.text.as_deref().map_or(0, str::len)
        + m.html.as_deref().map_or(0, str::len)
        + m.attachments.iter().map(|(_, s)| s).sum::<usize>();
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|(name, size)| json!({ "filename": name, "size": size }))
        .collect();
    let message = json!({
        "headers": {
            "to": m.to.join(", "),
            "message-id": message_id,
            "from": m.from,
            "subject": m.subject,
        },
        "attachments": attachments,
        "recipients": recipients,
        "size": size,
    });
    let test_mode = m
        .options
        .get("o:testmode")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1"));
    let storage_key = kit::random_hex(16);
    let ts_us = at_ms.saturating_mul(1000);
    for r in &recipients {
        let address = bare(r).to_string();
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let base = json!({
            "id": event_id(),
            "timestamp": ts_us as f64 / 1e6,
            "log-level": "info",
            "method": "HTTP",
            "flags": { "is-authenticated": true, "is-test-mode": test_mode },
            "message": message,
            "recipient": address,
            "recipient-domain": domain,
            "tags": m.tags,
            "campaigns": [],
            "user-variables": m.user_variables,
            "storage": { "key": storage_key },
        });
        let mut accepted = base.clone();
        accepted["event"] = json!("accepted");
        accepted["envelope"] =
            json!({ "sender": bare(&m.from), "targets": address, "transport": "smtp" });
        let mut delivered = base;
        delivered["event"] = json!("delivered");
        delivered["id"] = json!(event_id());
        delivered["recipient-provider"] = json!("Other");
        delivered["envelope"] = json!({
            "sender": bare(&m.from), "targets": address, "transport": "smtp", "sending-ip": "127.0.0.1"
        });
        delivered["delivery-status"] = json!({
            "tls": true, "mx-host": format!("mx.{domain}"), "code": 250, "description": "",
            "session-seconds": 0.1, "utf8": true, "attempt-no": 1, "message": "OK",
            "certificate-verified": true
        });
        for item in [accepted, delivered] {
            d.seq += 1;
            d.events.push(MailEvent {
                seq: d.seq,
                ts_us,
                domain: m.domain.clone(),
                item,
                visible_ms,
            });
        }
    }
}

/// Where a page starts, in traversal order (keys are `(ts, seq)` negated for a descending
/// traversal, so every traversal runs up the keys).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
enum Pos {
    /// The first page.
    Start,
    /// The last page.
    Last,
    /// The page after this key.
    After(i64, i64),
    /// The page before this key.
    Before(i64, i64),
    /// The page that ends with this key.
    UpTo(i64, i64),
}

/// A query in progress: everything a page URL encodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// Filter fields and their expressions.
    f: Vec<(String, String)>,
    /// Ascending traversal.
    asc: bool,
    /// Range begin (µs).
    b: i64,
    /// Range end (µs), if any.
    e: Option<i64>,
    /// Page size.
    l: usize,
    /// Where this page starts.
    p: Pos,
}

impl Cursor {
    fn token(&self) -> String {
        let text = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn from_token(t: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&raw).ok()
    }

    fn at(&self, p: Pos) -> Self {
        Self { p, ..self.clone() }
    }

    fn key(&self, e: &MailEvent) -> (i64, i64) {
        let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
        if self.asc {
            (e.ts_us, seq)
        } else {
            (-e.ts_us, -seq)
        }
    }

    fn in_range(&self, e: &MailEvent) -> bool {
        if self.asc {
            e.ts_us >= self.b && self.e.is_none_or(|end| e.ts_us <= end)
        } else {
            e.ts_us <= self.b && self.e.is_none_or(|end| e.ts_us >= end)
        }
    }
}

/// A time as Mailgun takes it: epoch seconds (fractions allowed) or RFC 2822.
fn parse_time(name: &str, v: &str) -> Result<i64, MailError> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            return Ok((secs * 1e6).round() as i64);
        }
    }
    chrono::DateTime::parse_from_rfc2822(v)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            MailError::BadRequest(format!(
                "Invalid value for '{name}': {v:?}; use epoch seconds or an RFC 2822 date"
            ))
        })
}

/// The filter fields the mock knows (the documented ones and `user-variables`).
const FILTERS: &[&str] = &[
    "event",
    "recipient",
    "recipients",
    "from",
    "to",
    "subject",
    "message-id",
    "tags",
    "list",
    "attachment",
    "size",
    "severity",
    "user-variables",
];

fn new_cursor(raw: Option<&str>, now_ms: i64) -> Result<Cursor, MailError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| MailError::BadRequest(format!("invalid query: {e}")))?;
    let one = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let begin = one("begin").map(|v| parse_time("begin", v)).transpose()?;
    let end = one("end").map(|v| parse_time("end", v)).transpose()?;
    let ascending = match one("ascending") {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(other) => {
            return Err(MailError::BadRequest(format!(
                "Invalid value for 'ascending': {other:?}; use yes or no"
            )))
        }
    };
    let b = begin.unwrap_or(now_ms.saturating_mul(1000));
    let asc = match (end, ascending) {
        (Some(e), Some(a)) => {
            if e != b && (e > b) != a {
                return Err(MailError::BadRequest(
                    "'ascending' does not agree with the order of 'begin' and 'end'".into(),
                ));
            }
            a
        }
        (Some(e), None) => e >= b,
        (None, a) => a.unwrap_or(false),
    };
    let l = match one("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(MailError::BadRequest(format!(
                    "Invalid value for 'limit': {v:?}; it is 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let mut f = Vec::new();
    for (k, v) in &pairs {
        if !FILTERS.contains(&k.as_str()) {
            continue;
        }
        if k == "user-variables"
            && !matches!(serde_json::from_str::<Value>(v), Ok(Value::Object(_)))
        {
            return Err(MailError::BadRequest(
                "Invalid value for 'user-variables': a JSON object is expected".into(),
            ));
        }
        f.push((k.clone(), v.clone()));
    }
    Ok(Cursor {
        f,
        asc,
        b,
        e: end,
        l,
        p: Pos::Start,
    })
}

/// A filter expression's tokens: words, quoted phrases, `OR`, `-negations`, `>N`.
fn tokens(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in expr.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `values` (the field's values on one event; `number` when numeric) satisfy the
/// expression. `exact` fields (event type, message id, tags, severity) match whole values.
fn matches_expr(expr: &str, values: &[String], number: Option<f64>, exact: bool) -> bool {
    let toks = tokens(expr);
    toks.split(|t| t == "OR").any(|alt| {
        alt.iter().filter(|t| *t != "AND").all(|t| {
            let (neg, t) = match t.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest),
                _ => (false, t.as_str()),
            };
            let cmp = [">=", "<=", ">", "<"]
                .iter()
                .find_map(|op| t.strip_prefix(op).map(|n| (*op, n)))
                .and_then(|(op, n)| n.parse::<f64>().ok().map(|n| (op, n)));
            let hit = match (cmp, number) {
                (Some((op, n)), Some(x)) => match op {
                    ">=" => x >= n,
                    "<=" => x <= n,
                    ">" => x > n,
                    _ => x < n,
                },
                (Some(_), None) => false,
                (None, _) => {
                    let word = t.trim_matches('"').to_lowercase();
                    values.iter().any(|v| {
                        let v = v.to_lowercase();
                        if exact {
                            v == word
                        } else {
                            v.contains(&word)
                        }
                    })
                }
            };
            hit != neg
        })
    })
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

fn user_variables_match(item: &Value, want: &str) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(want) else {
        return false;
    };
    let have = item.get("user-variables").and_then(Value::as_object);
    want.iter().all(|(k, v)| {
        let got = have.and_then(|h| h.get(k));
        match (got, v) {
            (Some(g), w) if g == w => true,
            (Some(Value::String(g)), w) => serde_json::from_str::<Value>(g).is_ok_and(|g| g == *w),
            (Some(g), Value::String(w)) => serde_json::from_str::<Value>(w).is_ok_and(|w| w == *g),
            _ => false,
        }
    })
}

fn passes(e: &MailEvent, filters: &[(String, String)]) -> bool {
    let item = &e.item;
    let h = &item["message"]["headers"];
    filters.iter().all(|(field, expr)| match field.as_str() {
        "event" => matches_expr(expr, &strings(&item["event"]), None, true),
        "recipient" => matches_expr(expr, &strings(&item["recipient"]), None, false),
        "recipients" => matches_expr(expr, &strings(&item["message"]["recipients"]), None, false),
        "from" => matches_expr(expr, &strings(&h["from"]), None, false),
        "to" => matches_expr(expr, &strings(&h["to"]), None, false),
        "subject" => matches_expr(expr, &strings(&h["subject"]), None, false),
        "message-id" => {
            let want = expr.trim().trim_start_matches('<').trim_end_matches('>');
            h["message-id"].as_str() == Some(want)
        }
        "tags" => matches_expr(expr, &strings(&item["tags"]), None, true),
        "severity" => matches_expr(expr, &strings(&item["severity"]), None, true),
        "list" => matches_expr(expr, &[], None, true),
        "attachment" => {
            let names: Vec<String> = item["message"]["attachments"]
                .as_array()
                .map(|a| a.iter().flat_map(|x| strings(&x["filename"])).collect())
                .unwrap_or_default();
            matches_expr(expr, &names, None, false)
        }
        "size" => matches_expr(expr, &[], item["message"]["size"].as_f64(), false),
        "user-variables" => user_variables_match(item, expr),
        _ => true,
    })
}

/// One page of `c` over the domain's events, and the cursors of its neighbours.
fn page_of(d: &Data, domain: &str, c: &Cursor) -> (Vec<Value>, Cursor, Cursor) {
    let wall = kit::now_ms();
    let mut matching: Vec<((i64, i64), &MailEvent)> = d
        .events
        .iter()
        .filter(|e| e.visible_ms <= wall)
        .filter(|e| e.domain == domain && c.in_range(e) && passes(e, &c.f))
        .map(|e| (c.key(e), e))
        .collect();
    matching.sort_by_key(|(k, _)| *k);
    let keys: Vec<(i64, i64)> = matching.iter().map(|(k, _)| *k).collect();
    let (from, to) = match c.p {
        Pos::Start => (0, c.l.min(keys.len())),
        Pos::After(a, b) => {
            let i = keys.partition_point(|k| *k <= (a, b));
            (i, (i + c.l).min(keys.len()))
        }
        Pos::Before(a, b) => {
            let j = keys.partition_point(|k| *k < (a, b));
            (j.saturating_sub(c.l), j)
        }
        Pos::UpTo(a, b) => {
            let j = keys.partition_point(|k| *k <= (a, b));
            (j.saturating_sub(c.l), j)
        }
        Pos::Last => (keys.len().saturating_sub(c.l), keys.len()),
    };
    let shown = &matching[from..to];
    let items = shown.iter().map(|(_, e)| e.item.clone()).collect();
    let (next, previous) = match (shown.first(), shown.last()) {
        (Some((first, _)), Some((last, _))) => (
            c.at(Pos::After(last.0, last.1)),
            c.at(Pos::Before(first.0, first.1)),
        ),
        _ => match c.p {
            // Polling: the same URL later returns what happened since.
            Pos::Start => (c.clone(), c.at(Pos::Before(i64::MIN, i64::MIN))),
            Pos::After(a, b) => (c.clone(), c.at(Pos::UpTo(a, b))),
            _ => (c.at(Pos::Start), c.at(Pos::Before(i64::MIN, i64::MIN))),
        },
    };
    (items, next, previous)
}

fn answer(
    app: &Mail,
    headers: &HeaderMap,
    scheme: Option<Scheme>,
    domain: &str,
    c: &Cursor,
) -> Json<Value> {
    let base = kit::base_url(headers, scheme);
    let url = |c: &Cursor| format!("{base}/v3/{domain}/events/{}", c.token());
    let (mut items, next, previous) = app.shared.read(|d| page_of(d, domain, c));
    for item in &mut items {
        if let Some(key) = item["storage"]["key"].as_str().map(str::to_string) {
            item["storage"]["url"] = json!(format!("{base}/v3/domains/{domain}/messages/{key}"));
        }
    }
    let mut paging = Map::new();
    paging.insert("first".into(), json!(url(&c.at(Pos::Start))));
    paging.insert("last".into(), json!(url(&c.at(Pos::Last))));
    paging.insert("next".into(), json!(url(&next)));
    paging.insert("previous".into(), json!(url(&previous)));
    Json(json!({ "items": items, "paging": paging }))
}

fn check(app: &Mail, headers: &HeaderMap, domain: &str) -> Result<(), MailError> {
    if !authorised_headers(app, headers) {
        return Err(MailError::Forbidden);
    }
    if !app.cfg.domains.is_empty() && !app.cfg.domains.iter().any(|d| d == domain) {
        return Err(MailError::DomainNotFound(domain.to_string()));
    }
    Ok(())
}

/// `GET /v3/{domain}/events?begin=&end=&ascending=&limit=&<filter>=`.
pub(super) async fn list(
    State(app): State<Arc<Mail>>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, MailError> {
    check(&app, &headers, &domain)?;
    let c = new_cursor(raw.as_deref(), app.shared.clock().now_ms())?;
    Ok(answer(&app, &headers, scheme.map(|s| s.0), &domain, &c))
}

/// `GET /v3/{domain}/events/{page}`: a page URL from `paging`.
pub(super) async fn page(
    State(app): State<Arc<Mail>>,
    Path((domain, token)): Path<(String, String)>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<Scheme>>,
) -> Result<Json<Value>, MailError> {
    check(&app, &headers, &domain)?;
    let c = Cursor::from_token(&token)
        .ok_or_else(|| MailError::BadRequest("Invalid page token".into()))?;
    Ok(answer(&app, &headers, scheme.map(|s| s.0), &domain, &c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_expressions_combine_terms_or_negations_phrases_and_ranges() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches_expr(
            "accepted OR delivered",
            &v(&["delivered"]),
            None,
            true
        ));
        assert!(!matches_expr("accepted", &v(&["delivered"]), None, true));
        assert!(matches_expr(
            "renewal -reminder",
            &v(&["renewal notice"]),
            None,
            false
        ));
        assert!(!matches_expr(
            "renewal -notice",
            &v(&["renewal notice"]),
            None,
            false
        ));
        assert!(matches_expr(
            "\"renewal notice\"",
            &v(&["Your renewal notice"]),
            None,
            false
        ));
        assert!(matches_expr(">100 <200", &[], Some(150.0), false));
        assert!(!matches_expr(">100 <200", &[], Some(250.0), false));
    }

    #[test]
    fn page_tokens_round_trip_and_contain_no_slash() {
        let c = Cursor {
            f: vec![("event".into(), "accepted".into())],
            asc: true,
            b: 1,
            e: None,
            l: 10,
            p: Pos::After(5, 6),
        };
        let t = c.token();
        assert!(!t.contains('/') && !t.contains('+'), "{t}");
        assert_eq!(Cursor::from_token(&t), Some(c));
        assert_eq!(Cursor::from_token("!!"), None);
    }
}
