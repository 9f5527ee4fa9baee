//! Mailgun's API, the connector's only I/O: `POST /v3/{domain}/messages` (basic auth
//! `api:<key>`, a form body with `from`, `to`, `subject`, `text`, `html` and `v:` custom
//! variables) and `GET /v3/{domain}/events` (filters `event` and `recipient`, paging by the
//! absolute `paging.next` URLs it hands out).
//!
//! The body is sent url-encoded, which Mailgun takes as it takes `multipart/form-data` (the
//! connector sends no attachments). Looking for an earlier send uses only documented query
//! options (filters `event` and `recipient`, the range `begin` + `ascending`) and reads the
//! `user-variables` of the items itself: a `user-variables` filter is not among Mailgun's
//! documented filter fields.

use l2f_connector_kit::calls::call;
use l2f_connector_kit::http::{answer, refused, Result};
use l2f_connector_kit::ClientError;
use l2f_secrets::Secret;
use reqwest::StatusCode;
use serde_json::Value;

/// The custom variable that carries a message's idempotency key (`v:l2f-key`).
pub const KEY_VARIABLE: &str = "l2f-key";

/// The most pages one search for an earlier send reads (300 events each).
const MAX_PAGES: usize = 50;

/// Mailgun's API for one sending domain.
pub struct MailgunClient {
    http: reqwest::Client,
    base: String,
    domain: String,
    key: Secret,
}

/// Mailgun's id of a message without the angle brackets the send answers it in (events
/// show it bare), so a message sent and one found in the events have the same id.
pub fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

impl MailgunClient {
    /// A client for `domain` at `base` (e.g. `https://api.mailgun.net`).
    pub fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        domain: impl Into<String>,
        key: Secret,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            domain: domain.into(),
            key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/v3/{}/{path}",
            self.base,
            l2f_connector_kit::http::path_segment(&self.domain)
        )
    }

    /// A 401 is the connector's credentials refused; another non-2xx is Mailgun's refusal.
    fn judge(status: StatusCode, body: Value) -> Result<Value> {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::Auth(format!("mailgun answered {status}")));
        }
        if !status.is_success() {
            return Err(refused("mailgun", status, body));
        }
        Ok(body)
    }

    /// Sends one message (`fields` as Mailgun's form parameters); answers its bare id.
    pub async fn send(&self, fields: &[(String, String)]) -> Result<String> {
        let resp = call(
            "mailgun",
            self.http
                .post(self.url("messages"))
                .basic_auth("api", Some(self.key.expose()))
                .form(fields),
        )
        .await?;
        let (status, body) = answer("mailgun", resp).await?;
        let body = Self::judge(status, body)?;
        match body["id"].as_str() {
            Some(id) => Ok(bare_id(id)),
            None => Err(refused("mailgun", status, body)),
        }
    }

    /// The bare id of a message to `recipient` that Mailgun accepted with custom variable
    /// [`KEY_VARIABLE`] = `key` since `since` (epoch seconds), if there is one. The range is
    /// given as Mailgun's time-range rules ask (a `begin` and a direction), ascending and
    /// open-ended, so it reaches whatever time Mailgun stamps its events with.
    pub async fn accepted(&self, recipient: &str, key: &str, since: i64) -> Result<Option<String>> {
        let mut req = self.http.get(self.url("events")).query(&[
            ("event", "accepted"),
            ("recipient", recipient),
            ("begin", &since.to_string()),
            ("ascending", "yes"),
            ("limit", "300"),
        ]);
        for _ in 0..MAX_PAGES {
            let resp = call("mailgun", req.basic_auth("api", Some(self.key.expose()))).await?;
            let (status, body) = answer("mailgun", resp).await?;
            let body = Self::judge(status, body)?;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return Ok(None);
            }
            if let Some(found) = items.iter().find(|i| has_key(i, key)) {
                let id = found["message"]["headers"]["message-id"]
                    .as_str()
                    .unwrap_or_default();
                return Ok(Some(bare_id(id)));
            }
            match body["paging"]["next"].as_str() {
                Some(next) => req = self.http.get(next),
                None => return Ok(None),
            }
        }
        Err(ClientError::Api {
            api: "mailgun",
            status: 200,
            body: Value::String(format!(
                "more than {MAX_PAGES} pages of accepted events for {recipient}; cannot tell whether {key} was sent"
            )),
        })
    }

    /// Whether Mailgun answers with these credentials (one event of the domain).
    pub async fn ping(&self) -> Result<()> {
        let resp = call(
            "mailgun",
            self.http
                .get(self.url("events"))
                .query(&[("limit", "1")])
                .basic_auth("api", Some(self.key.expose())),
        )
        .await?;
        let (status, body) = answer("mailgun", resp).await?;
        Self::judge(status, body).map(|_| ())
    }
}

/// Whether an event item carries the idempotency key (a string, or JSON text of one).
fn has_key(item: &Value, key: &str) -> bool {
    match &item["user-variables"][KEY_VARIABLE] {
        Value::String(s) => s == key || serde_json::from_str::<String>(s).is_ok_and(|s| s == key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_lose_their_brackets_and_keys_are_read_from_user_variables() {
        assert_eq!(bare_id("<20260203.abc@mg.x>"), "20260203.abc@mg.x");
        assert_eq!(bare_id("20260203.abc@mg.x"), "20260203.abc@mg.x");
        let item = json!({"user-variables": {"l2f-key": "k1"}});
        assert!(has_key(&item, "k1"));
        assert!(!has_key(&item, "k2"));
        assert!(!has_key(&json!({}), "k1"));
    }
}
