//! Mailgun's answers, sorted in one `match` by who is at fault:
//! - the record is bad (permanent, dead-lettered with Mailgun's message): 400 (a parameter
//!   missing or invalid, e.g. the recipient), 413 and any other refusal of a send;
//! - not yet (transient, bounded retries honouring `Retry-After`): 429 and 5xx, and an events
//!   search that could not decide;
//! - Mailgun is unavailable (the record waits, never dead-lettered): credentials refused
//!   (401), the domain unknown to Mailgun (404: the connector's configuration), no answer.

use std::time::Duration;

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;

/// The verdict on a failed Mailgun call made for a record.
pub fn verdict(e: &ClientError) -> HandlerError {
    match e {
        ClientError::Status {
            status,
            retry_after: Some(s),
            ..
        } => HandlerError::retry_after(
            format!("mailgun answered HTTP {status}"),
            Duration::from_secs(*s),
        ),
        ClientError::Status { status, .. } => {
            HandlerError::transient(format!("mailgun answered HTTP {status}"))
        }
        ClientError::Api { status: 404, body, .. } => HandlerError::unavailable(
            format!("mailgun does not know the sending domain (404: {body}); records wait until connectors.mail.domain is fixed"),
            None,
        ),
        ClientError::Api { status: 200, body, .. } => {
            HandlerError::transient(format!("mailgun: {}", body.as_str().unwrap_or_default()))
        }
        ClientError::Api { status, body, .. } => {
            let m = body["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            HandlerError::permanent(format!("mailgun refused the message ({status}): {m}"))
        }
        other => other
            .outage()
            .unwrap_or_else(|| HandlerError::unavailable(other.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_answer_has_one_verdict() {
        let s = |status, retry_after| ClientError::Status {
            api: "mailgun",
            status,
            retry_after,
        };
        let v = verdict(&s(429, Some(7)));
        assert_eq!(
            (v.class(), v.hint()),
            ("transient", Some(Duration::from_secs(7)))
        );
        assert_eq!(verdict(&s(503, None)).class(), "transient");
        assert_eq!(
            verdict(&ClientError::Auth("401".into())).class(),
            "unavailable"
        );
        let api = |status, body| ClientError::Api {
            api: "mailgun",
            status,
            body,
        };
        let v = verdict(&api(
            400,
            json!({"message": "to parameter is not a valid address"}),
        ));
        assert_eq!(v.class(), "permanent");
        assert!(v.message().contains("not a valid address"), "{v}");
        assert_eq!(
            verdict(&api(404, json!({"message": "Domain not found"}))).class(),
            "unavailable"
        );
    }
}
