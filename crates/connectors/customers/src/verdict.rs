//! The customers app's answers, sorted in one `match` by who is at fault:
//! - the app is unavailable (no answer, 429, 5xx, the token refused): the record waits;
//! - the record depends on one not there yet (a mirror of a subscription whose account the
//!   hub has not created in the app yet, `422` on `account_id`; a change to a subscription the
//!   app does not have yet, `404`): transient, retried a few times in place;
//! - anything else the app refuses (`400`, `409`, `422` on another field) is the record's
//!   fault: permanent, naming the field and value the app named.

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;

/// The verdict on a failed call.
pub fn verdict(e: &ClientError) -> HandlerError {
    if let Some(wait) = e.outage() {
        return wait;
    }
    let ClientError::Api { status, body, .. } = e else {
        return HandlerError::unavailable(format!("customers app: {e}"), None);
    };
    let err = &body["error"];
    let field = err["field"].as_str();
    let said = format!(
        "{} (code {}{}{})",
        err["message"].as_str().unwrap_or("no message"),
        err["code"].as_str().unwrap_or("?"),
        field.map(|f| format!(", field {f}")).unwrap_or_default(),
        err.get("value")
            .filter(|v| !v.is_null())
            .map(|v| format!(", value {v}"))
            .unwrap_or_default(),
    );
    match (*status, field) {
        (422, Some("account_id")) | (404, _) => HandlerError::transient(format!(
            "the customers app does not have what this record refers to yet: {said}"
        )),
        (status, _) => HandlerError::permanent(format!(
            "the customers app refused the record (HTTP {status}): {said}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(status: u16, field: Option<&str>) -> ClientError {
        ClientError::Api {
            api: "customers",
            status,
            body: json!({"error": {"code": "invalid_field", "message": "m", "field": field, "value": "v"}}),
        }
    }

    #[test]
    fn a_missing_account_is_worth_a_few_retries_and_a_bad_value_is_not() {
        assert_eq!(verdict(&api(422, Some("account_id"))).class(), "transient");
        assert_eq!(verdict(&api(404, None)).class(), "transient");
        let e = verdict(&api(422, Some("deployment")));
        assert_eq!(e.class(), "permanent");
        assert!(
            e.message().contains("field deployment") && e.message().contains("\"v\""),
            "{e}"
        );
        assert_eq!(verdict(&api(409, None)).class(), "permanent");
    }

    #[test]
    fn an_outage_or_a_refused_token_waits() {
        let e = ClientError::Status {
            api: "customers",
            status: 503,
            retry_after: None,
        };
        assert_eq!(verdict(&e).class(), "unavailable");
        assert_eq!(
            verdict(&ClientError::Auth("401".into())).class(),
            "unavailable"
        );
    }
}
