//! The license service's answers, sorted in one `match` by who is at fault:
//! - the service is unavailable (no answer, 429, 5xx, the token refused): the record waits
//!   (the kit's [`l2f_connector_kit::ClientError::outage`]);
//! - the record refers to a subscription the service has not registered yet (`404`: an
//!   acceptance read before its `SubscriptionCreated`, which comes on another topic):
//!   transient, retried in place;
//! - anything else the service refuses (`400`, `409`, `422`) is the record's fault:
//!   permanent, naming the field and value the service named.

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;

/// The verdict on a failed call.
pub fn verdict(e: &ClientError) -> HandlerError {
    if let Some(wait) = e.outage() {
        return wait;
    }
    let ClientError::Api { status, body, .. } = e else {
        return HandlerError::unavailable(format!("license service: {e}"), None);
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
    match *status {
        404 => HandlerError::transient(format!(
            "the license service does not have the subscription yet: {said}"
        )),
        status => HandlerError::permanent(format!(
            "the license service refused the record (HTTP {status}): {said}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(status: u16, field: Option<&str>) -> ClientError {
        ClientError::Api {
            api: "license",
            status,
            body: json!({"error": {"code": "invalid_field", "message": "m", "field": field, "value": 0}}),
        }
    }

    #[test]
    fn an_unknown_subscription_is_retried_and_a_bad_value_is_dead_lettered() {
        assert_eq!(verdict(&api(404, None)).class(), "transient");
        let e = verdict(&api(422, Some("seats")));
        assert_eq!(e.class(), "permanent");
        assert!(
            e.message().contains("field seats") && e.message().contains("value 0"),
            "{e}"
        );
        assert_eq!(verdict(&api(400, None)).class(), "permanent");
    }

    #[test]
    fn an_outage_or_a_refused_token_waits() {
        let e = ClientError::Status {
            api: "license",
            status: 503,
            retry_after: Some(2),
        };
        assert_eq!(verdict(&e).class(), "unavailable");
        assert_eq!(
            verdict(&ClientError::Auth("401".into())).class(),
            "unavailable"
        );
    }
}
