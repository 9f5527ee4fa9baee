//! Marketo's answers, sorted in one `match` by who is at fault.
//!
//! Marketo reports most failures as HTTP 200 with an error code, so the HTTP status alone
//! says little. [`Answer::of`] takes a reply apart; [`verdict`] decides:
//! - done: a per-record `created` or `updated`;
//! - the lead is bad (permanent, dead-lettered): a per-record `skipped` with its reasons,
//!   1003 (invalid data), 1006 (unknown field), 609/612 (malformed request), 413/414, any code
//!   not known to be about Marketo itself;
//! - Marketo is unavailable (the lead waits, never dead-lettered): 606 (rate limit: after the
//!   rate window), 607 (daily quota: an hour), 615 (concurrency), 601/602 (token, after the
//!   client's own refresh failed), 604/608/611/713/1029 (Marketo busy or timed out), HTTP
//!   429/5xx (with their Retry-After), timeouts, connection errors, credentials refused.

use std::time::Duration;

use l2f_bus::HandlerError;
use l2f_connector_kit::ClientError;
use serde_json::Value;

/// How long a 607 (daily quota) asks to wait before the next try (the loop probes again then;
/// the quota resets at midnight Marketo time).
pub const DAILY_QUOTA_WAIT: Duration = Duration::from_secs(3600);

/// What Marketo did with a pushed lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new lead with this id.
    Created(Option<u64>),
    /// The lead matched by the lookup field was updated (a redelivery lands here).
    Updated(Option<u64>),
}

/// Marketo's answer about one lead, taken apart (no decisions here; see [`verdict`]).
#[derive(Debug)]
pub enum Answer<'a> {
    /// The call succeeded; the record's own status (`created`, `updated`, `skipped`).
    Lead {
        /// The per-record status.
        status: &'a str,
        /// The lead id, when Marketo gave one.
        id: Option<u64>,
        /// `code: message` of each reason, joined.
        reasons: String,
    },
    /// The call succeeded but carried no result for this lead.
    NoResult,
    /// Marketo refused the call with an error code (HTTP 200 `success:false`, or 413/414).
    Api {
        /// The HTTP status.
        status: u16,
        /// The first error's code (`"606"`), empty when the body has none.
        code: &'a str,
        /// The first error's message, or the body.
        message: String,
    },
    /// The call failed without Marketo's word on it (no answer, 429/5xx, credentials).
    Outage(&'a ClientError),
}

impl<'a> Answer<'a> {
    /// The answer about the `i`-th lead of a call.
    pub fn of(result: &'a Result<Vec<Value>, ClientError>, i: usize) -> Self {
        match result {
            Ok(results) => match results.get(i) {
                Some(r) => Answer::Lead {
                    status: r["status"].as_str().unwrap_or(""),
                    id: r["id"].as_u64(),
                    reasons: reasons(r),
                },
                None => Answer::NoResult,
            },
            Err(ClientError::Api { status, body, .. }) => Answer::Api {
                status: *status,
                code: body["errors"][0]["code"].as_str().unwrap_or(""),
                message: body["errors"][0]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| body.to_string()),
            },
            Err(e) => Answer::Outage(e),
        }
    }
}

fn reasons(r: &Value) -> String {
    r["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|x| {
                    format!(
                        "{}: {}",
                        x["code"].as_str().unwrap_or("?"),
                        x["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// The one decision: done, permanent (dead letter) or unavailable (wait; `rate_window` is how
/// long a 606 asks to wait).
pub fn verdict(answer: Answer<'_>, rate_window: Duration) -> Result<Pushed, HandlerError> {
    use HandlerError as E;
    let unavailable = |m: String, wait: Option<Duration>| Err(E::unavailable(m, wait));
    match answer {
        Answer::Lead {
            status: "created",
            id,
            ..
        } => Ok(Pushed::Created(id)),
        Answer::Lead {
            status: "updated",
            id,
            ..
        } => Ok(Pushed::Updated(id)),
        Answer::Lead {
            status, reasons, ..
        } => Err(E::permanent(format!(
            "Marketo answered {status:?} for the lead: {reasons}"
        ))),
        Answer::NoResult => Err(E::permanent(
            "Marketo accepted the call but returned no result for the lead",
        )),
        Answer::Api {
            code: "606",
            message,
            ..
        } => unavailable(
            format!("Marketo 606 (rate limit): {message}"),
            Some(rate_window),
        ),
        Answer::Api {
            code: "607",
            message,
            ..
        } => unavailable(
            format!("Marketo 607 (daily quota): {message}"),
            Some(DAILY_QUOTA_WAIT),
        ),
        Answer::Api {
            code: code @ ("615" | "601" | "602" | "604" | "608" | "611" | "713" | "1029"),
            message,
            ..
        } => unavailable(format!("Marketo {code}: {message}"), None),
        Answer::Api {
            status,
            code,
            message,
        } => Err(E::permanent(format!(
            "Marketo refused the lead (HTTP {status}, code {code:?}): {message}"
        ))),
        Answer::Outage(e) => Err(e
            .outage()
            .unwrap_or_else(|| E::unavailable(format!("Marketo call failed: {e}"), None))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WINDOW: Duration = Duration::from_secs(20);

    fn api(code: &str, status: u16) -> Result<Vec<Value>, ClientError> {
        Err(ClientError::Api {
            api: "marketo",
            status,
            body: json!({"success": false, "errors": [{"code": code, "message": "m"}]}),
        })
    }

    fn judge(r: &Result<Vec<Value>, ClientError>) -> Result<Pushed, HandlerError> {
        verdict(Answer::of(r, 0), WINDOW)
    }

    #[test]
    fn created_and_updated_are_done_per_record() {
        let r = Ok(vec![
            json!({"id": 7, "status": "created"}),
            json!({"id": 8, "status": "updated"}),
        ]);
        assert_eq!(judge(&r).unwrap(), Pushed::Created(Some(7)));
        assert_eq!(
            verdict(Answer::of(&r, 1), WINDOW).unwrap(),
            Pushed::Updated(Some(8))
        );
        assert_eq!(
            verdict(Answer::of(&r, 2), WINDOW).unwrap_err().class(),
            "permanent"
        );
    }

    #[test]
    fn rate_limit_606_waits_the_window_and_is_never_dead_lettered() {
        let e = judge(&api("606", 200)).unwrap_err();
        assert_eq!(e.class(), "unavailable");
        assert_eq!(e.hint(), Some(WINDOW));
        assert!(e.message().contains("606"), "{e}");
    }

    #[test]
    fn marketo_limits_busy_codes_and_outages_make_the_lead_wait() {
        for code in [
            "615", "601", "602", "604", "608", "611", "713", "607", "1029",
        ] {
            assert_eq!(
                judge(&api(code, 200)).unwrap_err().class(),
                "unavailable",
                "{code}"
            );
        }
        let r = Err(ClientError::Status {
            api: "marketo",
            status: 429,
            retry_after: Some(3),
        });
        let e = judge(&r).unwrap_err();
        assert_eq!(
            (e.class(), e.hint()),
            ("unavailable", Some(Duration::from_secs(3)))
        );
        let r = Err(ClientError::Auth("401".into()));
        assert_eq!(judge(&r).unwrap_err().class(), "unavailable");
    }

    #[test]
    fn invalid_data_and_unknown_fields_are_permanent() {
        for (code, status) in [("1003", 200), ("1006", 200), ("609", 200), ("", 413)] {
            let e = judge(&api(code, status)).unwrap_err();
            assert_eq!(e.class(), "permanent", "{code}");
            assert!(e.message().contains(&status.to_string()), "{e}");
        }
    }

    #[test]
    fn a_skipped_record_is_permanent_with_its_reasons() {
        let r = Ok(vec![json!({"status": "skipped", "reasons": [
            {"code": "1004", "message": "Lead not found"},
            {"code": "1003", "message": "Value for required field 'company' not specified"}]})]);
        let e = judge(&r).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(e.message().contains("1004: Lead not found"), "{e}");
        assert!(e.message().contains("'company'"), "{e}");
        assert_eq!(judge(&Ok(vec![])).unwrap_err().class(), "permanent");
    }
}
