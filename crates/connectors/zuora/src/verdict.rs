//! Zuora's answers, sorted in one `match` by who is at fault.
//!
//! Zuora answers most failures with HTTP 200 `{"success":false,"reasons":[{"code","message"}]}`
//! whose 8-digit code is a 6-digit resource and a 2-digit category
//! (<https://developer.zuora.com/docs/guides/error-codes>); the idempotency layer answers 409
//! (the same key still in flight) and 422 (the key reused with another request)
//! (<https://developer.zuora.com/docs/guides/idempotent-requests/>); the rate limiter 429
//! with `RateLimit-*` (<https://developer.zuora.com/docs/guides/rate-limits>).
//! [`Answer::of`] takes a failure apart; [`verdict`] decides:
//! - the record is bad (permanent, dead-lettered, the message names the record and Zuora's
//!   reason): categories 20 invalid value, 21 unknown field, 22/23 missing field or parameter,
//!   30 business rule, 40 not found, 45 unsupported, 90 malformed; 422; any other refusal;
//! - not yet (transient, bounded retries): 409 and category 50 (locking contention);
//! - Zuora is unavailable (the record waits, never dead-lettered): categories 10/11
//!   (permission, authentication: the connector's credentials), 60 (internal error), 70
//!   (limit), 99 (integration); HTTP 429 (after `Retry-After` / `RateLimit-Reset`) and 5xx;
//!   no answer; credentials refused.

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;
use serde_json::Value;

/// Zuora's answer about a record, taken apart (no decisions here; see [`verdict`]).
#[derive(Debug)]
pub enum Answer<'a> {
    /// Zuora refused: its HTTP status, the first reason's 8-digit code and message.
    Refused {
        /// HTTP status (200 for most refusals).
        status: u16,
        /// The first reason's code, if the body has one.
        code: Option<u64>,
        /// The reasons' messages (or the body).
        message: String,
    },
    /// The call failed without Zuora's word on the record (no answer, 429/5xx, credentials).
    Outage(&'a ClientError),
}

/// The first reason's code of a Zuora error body (a number, or a string of digits as some
/// SDKs render it).
pub fn reason_code(body: &Value) -> Option<u64> {
    let c = &body["reasons"][0]["code"];
    c.as_u64()
        .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The error category of an 8-digit code (its last two digits).
pub fn category(code: u64) -> u64 {
    code % 100
}

fn messages(body: &Value) -> String {
    match body["reasons"].as_array() {
        Some(rs) if !rs.is_empty() => rs
            .iter()
            .map(|r| {
                let code = r["code"]
                    .as_u64()
                    .map(|c| c.to_string())
                    .or_else(|| r["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "?".into());
                format!("{code}: {}", r["message"].as_str().unwrap_or(""))
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.to_string(),
    }
}

impl<'a> Answer<'a> {
    /// The answer a failed call carries.
    pub fn of(e: &'a ClientError) -> Self {
        match e {
            ClientError::Api { status, body, .. } => Answer::Refused {
                status: *status,
                code: reason_code(body),
                message: messages(body),
            },
            other => Answer::Outage(other),
        }
    }
}

/// Whether a failure is Zuora's "not found" (category 40) — an answer, not an error, for a
/// lookup.
pub fn is_not_found(e: &ClientError) -> bool {
    matches!(Answer::of(e), Answer::Refused { code: Some(c), .. } if category(c) == 40)
}

/// The one decision over a failed call; `what` names the record and the call in the message
/// (`order ord-1: create subscription`).
pub fn verdict(answer: Answer<'_>, what: &str) -> HandlerError {
    use HandlerError as E;
    match answer {
        Answer::Refused {
            status: 409,
            message,
            ..
        } => E::transient(format!(
            "{what}: Zuora is still processing a request with the same Idempotency-Key (409): {message}"
        )),
        Answer::Refused {
            status: 422,
            message,
            ..
        } => E::permanent(format!(
            "{what}: Zuora refused the Idempotency-Key, already used with another request (422): {message}"
        )),
        Answer::Refused {
            code: Some(code),
            message,
            status,
        } => match category(code) {
            10 | 11 => E::unavailable(
                format!("{what}: Zuora refuses the connector's access ({message}); records wait until it is fixed"),
                None,
            ),
            50 => E::transient(format!("{what}: Zuora locking contention: {message}")),
            60 | 70 | 99 => E::unavailable(
                format!("{what}: Zuora cannot take it now (HTTP {status}): {message}"),
                None,
            ),
            _ => E::permanent(format!("{what}: Zuora refused it (HTTP {status}): {message}")),
        },
        Answer::Refused {
            status, message, ..
        } => E::permanent(format!(
            "{what}: Zuora refused it (HTTP {status}): {message}"
        )),
        Answer::Outage(e) => e
            .outage()
            .unwrap_or_else(|| E::unavailable(format!("{what}: Zuora call failed: {e}"), None)),
    }
}

/// [`verdict`] of a failed call.
pub fn judge(e: &ClientError, what: &str) -> HandlerError {
    verdict(Answer::of(e), what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn api(status: u16, code: u64) -> ClientError {
        ClientError::Api {
            api: "zuora",
            status,
            body: json!({"success": false, "processId": "X", "reasons": [{"code": code, "message": "m"}]}),
        }
    }

    #[test]
    fn the_documented_example_53100320_names_the_record_and_is_permanent() {
        let e = judge(&api(200, 53100320), "order ord-1: create subscription");
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("ord-1"), "{e}");
        assert!(e.message().contains("53100320: m"), "{e}");
    }

    #[test]
    fn invalid_missing_not_found_rule_and_malformed_codes_are_about_the_record() {
        for code in [
            50000020, 50000021, 53100022, 59000023, 53200030, 53200040, 59000045, 53100090,
        ] {
            assert_eq!(judge(&api(200, code), "x").class(), "permanent", "{code}");
        }
    }

    #[test]
    fn authentication_and_permission_codes_make_the_record_wait() {
        for code in [90000011, 50000010, 59000060, 59000070, 50000099] {
            assert_eq!(judge(&api(200, code), "x").class(), "unavailable", "{code}");
        }
    }

    #[test]
    fn idempotency_409_is_transient_and_422_permanent() {
        let e = judge(&api(409, 59000050), "x");
        assert_eq!(e.class(), "transient");
        assert!(e.message().contains("409"), "{e}");
        let e = judge(&api(422, 59000020), "x");
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("422"), "{e}");
        assert_eq!(judge(&api(200, 53200050), "x").class(), "transient");
    }

    #[test]
    fn rate_limits_outages_and_refused_credentials_wait_with_the_hint() {
        let e = judge(
            &ClientError::Status {
                api: "zuora",
                status: 429,
                retry_after: Some(12),
            },
            "x",
        );
        assert_eq!(e.class(), "unavailable");
        assert_eq!(e.hint(), Some(Duration::from_secs(12)));
        let e = judge(
            &ClientError::Status {
                api: "zuora",
                status: 503,
                retry_after: None,
            },
            "x",
        );
        assert_eq!(e.class(), "unavailable");
        assert_eq!(
            judge(&ClientError::Auth("401".into()), "x").class(),
            "unavailable"
        );
    }

    #[test]
    fn not_found_is_category_40_only_and_codes_may_be_strings() {
        assert!(is_not_found(&api(200, 50000040)));
        assert!(!is_not_found(&api(404, 59000045)));
        let string_code = ClientError::Api {
            api: "zuora",
            status: 200,
            body: json!({"success": false, "reasons": [{"code": "53200040", "message": "gone"}]}),
        };
        assert!(is_not_found(&string_code));
        let bare = ClientError::Api {
            api: "zuora",
            status: 404,
            body: json!("no route"),
        };
        let e = judge(&bare, "x");
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("404"), "{e}");
    }
}
