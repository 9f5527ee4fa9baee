//! Salesforce's answers, sorted in one `match` by who is at fault.
//!
//! A collections call answers 200 with one result per record, so a call's own status says
//! little about a record. [`Answer::of`] takes a reply apart; [`verdict`] decides:
//! - done: a per-record `success: true` (`created` true or false — a redelivery is an update);
//! - the record is bad (permanent, dead-lettered, naming the code and the fields):
//!   `INVALID_FIELD`, `REQUIRED_FIELD_MISSING`, `DUPLICATE_VALUE`, `MALFORMED_ID`,
//!   `INVALID_TYPE`, `MISSING_ARGUMENT`, `INVALID_CROSS_REFERENCE_KEY`,
//!   `DUPLICATE_EXTERNAL_ID`, `STRING_TOO_LONG`, `FIELD_CUSTOM_VALIDATION_EXCEPTION`, and any
//!   other code or 4xx about the data;
//! - not yet (transient, bounded retries): `UNABLE_TO_LOCK_ROW` (another transaction holds
//!   the row; Salesforce waits 10 s for a lock), `ALL_OR_NONE_OPERATION_ROLLED_BACK`,
//!   `UNKNOWN_EXCEPTION`;
//! - Salesforce is unavailable (the record waits, partition paused, never dead-lettered):
//!   403 (`REQUEST_LIMIT_EXCEEDED`: the org's API allocation is spent; or the integration
//!   user's permissions refuse the call), 401 after a fresh login, `SERVER_UNAVAILABLE`,
//!   HTTP 429/5xx (with their Retry-After), timeouts, connection errors.
//!
//! Codes: Status Codes and Error Responses
//! (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm) and the
//! `StatusCode` list of the SOAP API (`sforce_api_calls_concepts_core_data_objects.htm`).

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;
use serde_json::Value;

/// What Salesforce did with an upserted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A new record with this id.
    Created(String),
    /// The record matched by the external id was updated (a redelivery lands here).
    Updated(String),
}

impl Upserted {
    /// The record's Salesforce id.
    pub fn id(&self) -> &str {
        match self {
            Upserted::Created(id) | Upserted::Updated(id) => id,
        }
    }
}

/// One error as Salesforce words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError<'a> {
    /// `errorCode` (REST) or `statusCode` (collections results).
    pub code: &'a str,
    /// The message.
    pub message: &'a str,
    /// The fields it names.
    pub fields: Vec<&'a str>,
}

impl<'a> SfError<'a> {
    fn of(v: &'a Value) -> SfError<'a> {
        SfError {
            code: v["errorCode"]
                .as_str()
                .or_else(|| v["statusCode"].as_str())
                .unwrap_or(""),
            message: v["message"].as_str().unwrap_or(""),
            fields: v["fields"]
                .as_array()
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        let fields = if self.fields.is_empty() {
            String::new()
        } else {
            format!(" on field(s) {}", self.fields.join(", "))
        };
        format!("{}{fields}: {}", self.code, self.message)
    }
}

/// Salesforce's answer about one record, taken apart (no decisions here; see [`verdict`]).
#[derive(Debug)]
pub enum Answer<'a> {
    /// The call answered this record's result.
    Record(&'a Value),
    /// The call succeeded but carried no result for this record.
    NoResult,
    /// The whole call was refused with Salesforce's error body (its first error).
    Refused {
        /// HTTP status (0 when the client refused to send it).
        status: u16,
        /// The error.
        error: SfError<'a>,
        /// The body, when it was no error list.
        body: &'a Value,
    },
    /// The call failed without Salesforce's word on the record (no answer, 429/5xx,
    /// credentials refused even after a fresh login).
    Outage(&'a ClientError),
}

impl<'a> Answer<'a> {
    /// The answer about the `i`-th record of a call.
    pub fn of(result: &'a Result<Vec<Value>, ClientError>, i: usize) -> Self {
        match result {
            Ok(results) => results.get(i).map_or(Answer::NoResult, Answer::Record),
            Err(e) => Answer::call(e),
        }
    }

    /// The answer of a failed call (every record of it).
    pub fn call(e: &'a ClientError) -> Self {
        match e {
            ClientError::Api { status, body, .. } => Answer::Refused {
                status: *status,
                error: SfError::of(body.get(0).unwrap_or(body)),
                body,
            },
            e => Answer::Outage(e),
        }
    }
}

/// The one decision: done, permanent (dead letter), transient (bounded retries) or
/// unavailable (wait).
pub fn verdict(answer: Answer<'_>) -> Result<Upserted, HandlerError> {
    use HandlerError as E;
    match answer {
        Answer::Record(r) if r["success"] == Value::Bool(true) => {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            Ok(if r["created"] == Value::Bool(true) {
                Upserted::Created(id)
            } else {
                Upserted::Updated(id)
            })
        }
        Answer::Record(r) => {
            let e = SfError::of(&r["errors"][0]);
            match e.code {
                "UNABLE_TO_LOCK_ROW" | "ALL_OR_NONE_OPERATION_ROLLED_BACK" | "UNKNOWN_EXCEPTION" => {
                    Err(E::transient(format!(
                        "Salesforce cannot take the record yet: {}",
                        e.describe()
                    )))
                }
                "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" => Err(E::unavailable(
                    format!("Salesforce is unavailable: {}", e.describe()),
                    None,
                )),
                "" => Err(E::permanent(format!(
                    "Salesforce refused the record without a reason: {r}"
                ))),
                _ => Err(E::permanent(format!(
                    "Salesforce refused the record: {}",
                    e.describe()
                ))),
            }
        }
        Answer::NoResult => Err(E::permanent(
            "Salesforce accepted the call but returned no result for the record",
        )),
        Answer::Refused { status: 403, error, .. } => Err(E::unavailable(
            format!(
                "Salesforce refused the call (HTTP 403 {}): records wait until the API allocation or the user's permissions allow it",
                error.describe()
            ),
            None,
        )),
        Answer::Refused { error, .. }
            if matches!(
                error.code,
                "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "INVALID_SESSION_ID"
            ) =>
        {
            Err(E::unavailable(
                format!("Salesforce is unavailable: {}", error.describe()),
                None,
            ))
        }
        Answer::Refused { status, error, .. }
            if matches!(error.code, "UNABLE_TO_LOCK_ROW" | "EXCEEDED_ID_LIMIT") =>
        {
            Err(E::transient(format!(
                "Salesforce cannot take the call yet (HTTP {status}): {}",
                error.describe()
            )))
        }
        Answer::Refused {
            status,
            error,
            body,
        } if error.code.is_empty() => Err(E::permanent(format!(
            "Salesforce refused the call (HTTP {status}): {body}"
        ))),
        Answer::Refused { status, error, .. } => Err(E::permanent(format!(
            "Salesforce refused the call (HTTP {status}): {}",
            error.describe()
        ))),
        Answer::Outage(e) => Err(e
            .outage()
            .unwrap_or_else(|| E::unavailable(format!("Salesforce call failed: {e}"), None))),
    }
}

/// The verdict of a failed call that is not about one record (a query, a login).
pub fn of_call(e: &ClientError) -> HandlerError {
    match verdict(Answer::call(e)) {
        Err(e) => e,
        Ok(_) => HandlerError::permanent(format!("Salesforce call failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn record(r: Value) -> Result<Vec<Value>, ClientError> {
        Ok(vec![r])
    }

    fn failed(code: &str, fields: &[&str]) -> Result<Vec<Value>, ClientError> {
        record(json!({"success": false, "errors": [
            {"statusCode": code, "message": format!("{code} message"), "fields": fields}]}))
    }

    fn api(status: u16, code: &str) -> Result<Vec<Value>, ClientError> {
        Err(ClientError::Api {
            api: "salesforce",
            status,
            body: json!([{"message": "m", "errorCode": code}]),
        })
    }

    fn judge(r: &Result<Vec<Value>, ClientError>) -> Result<Upserted, HandlerError> {
        verdict(Answer::of(r, 0))
    }

    fn class(r: &Result<Vec<Value>, ClientError>) -> &'static str {
        judge(r).unwrap_err().class()
    }

    #[test]
    fn created_and_updated_are_done_per_record() {
        let r = Ok(vec![
            json!({"id": "00Q000000000001AAA", "success": true, "errors": [], "created": true}),
            json!({"id": "00Q000000000002AAA", "success": true, "errors": [], "created": false}),
        ]);
        assert_eq!(
            judge(&r).unwrap(),
            Upserted::Created("00Q000000000001AAA".into())
        );
        assert_eq!(
            verdict(Answer::of(&r, 1)).unwrap(),
            Upserted::Updated("00Q000000000002AAA".into())
        );
        assert_eq!(
            verdict(Answer::of(&r, 2)).unwrap_err().class(),
            "permanent",
            "no result for a record"
        );
    }

    #[test]
    fn record_errors_about_the_data_are_permanent_and_name_the_field() {
        for (code, field) in [
            ("INVALID_FIELD", "Email"),
            ("REQUIRED_FIELD_MISSING", "Company"),
            ("DUPLICATE_VALUE", "L2f_Lead_Id__c"),
            ("MALFORMED_ID", "Zuora__Account__c"),
            ("STRING_TOO_LONG", "Company"),
            ("INVALID_CROSS_REFERENCE_KEY", "Zuora__CustomerAccount__c"),
        ] {
            let e = judge(&failed(code, &[field])).unwrap_err();
            assert_eq!(e.class(), "permanent", "{code}");
            assert!(
                e.message().contains(code) && e.message().contains(field),
                "{e}"
            );
        }
        let e = judge(&record(json!({"success": false}))).unwrap_err();
        assert_eq!(e.class(), "permanent");
    }

    #[test]
    fn a_locked_row_is_transient() {
        let e = judge(&failed("UNABLE_TO_LOCK_ROW", &[])).unwrap_err();
        assert_eq!(e.class(), "transient");
        assert!(e.message().contains("UNABLE_TO_LOCK_ROW"), "{e}");
        assert_eq!(
            class(&failed("ALL_OR_NONE_OPERATION_ROLLED_BACK", &[])),
            "transient"
        );
        assert_eq!(class(&api(400, "UNABLE_TO_LOCK_ROW")), "transient");
    }

    #[test]
    fn a_spent_api_allocation_or_any_403_makes_records_wait() {
        let e = judge(&api(403, "REQUEST_LIMIT_EXCEEDED")).unwrap_err();
        assert_eq!(e.class(), "unavailable");
        assert!(e.message().contains("REQUEST_LIMIT_EXCEEDED"), "{e}");
        assert_eq!(class(&api(403, "INSUFFICIENT_ACCESS")), "unavailable");
        assert_eq!(class(&failed("REQUEST_LIMIT_EXCEEDED", &[])), "unavailable");
    }

    #[test]
    fn outages_and_refused_credentials_make_records_wait() {
        let r = Err(ClientError::Status {
            api: "salesforce",
            status: 503,
            retry_after: Some(4),
        });
        let e = judge(&r).unwrap_err();
        assert_eq!(
            (e.class(), e.hint()),
            ("unavailable", Some(Duration::from_secs(4)))
        );
        let r = Err(ClientError::Status {
            api: "salesforce",
            status: 429,
            retry_after: None,
        });
        assert_eq!(class(&r), "unavailable");
        let r = Err(ClientError::Auth(
            "Salesforce refused a fresh session (401)".into(),
        ));
        assert_eq!(class(&r), "unavailable");
    }

    #[test]
    fn a_refused_call_about_the_data_is_permanent() {
        let e = judge(&Err(ClientError::Api {
            api: "salesforce",
            status: 400,
            body: json!([{"message": "Field Email is not an External ID or indexed field for Lead",
                          "errorCode": "INVALID_FIELD", "fields": ["Email"]}]),
        }))
        .unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(
            e.message().contains("Email") && e.message().contains("400"),
            "{e}"
        );
        assert_eq!(class(&api(404, "NOT_FOUND")), "permanent");
        let e = judge(&Err(ClientError::Api {
            api: "salesforce",
            status: 400,
            body: json!("not a list"),
        }))
        .unwrap_err();
        assert!(e.message().contains("not a list"), "{e}");
    }

    #[test]
    fn a_failed_query_is_judged_like_a_call() {
        assert_eq!(
            of_call(&ClientError::Auth("x".into())).class(),
            "unavailable"
        );
        let e = of_call(&ClientError::Api {
            api: "salesforce",
            status: 400,
            body: json!([{"message": "No such column 'Party__c' on entity 'Opportunity'",
                          "errorCode": "INVALID_FIELD", "fields": ["Party__c"]}]),
        });
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("Party__c"), "{e}");
    }
}
