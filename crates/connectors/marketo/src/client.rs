//! Marketo's REST API, the connector's only I/O: the identity service's client-credentials
//! token (refreshed when stale, and once more when Marketo answers 601/602) and the leads
//! endpoints.

use l2f_connector_kit::calls::call;
use l2f_connector_kit::http::{answer, refused, ClientCredentials, Result};
use l2f_secrets::Secret;
use reqwest::RequestBuilder;
use serde_json::{json, Value};

/// Marketo REST with the identity service's client credentials.
pub struct MarketoClient {
    cc: ClientCredentials,
}

/// The most leads one `POST /rest/v1/leads.json` takes.
pub const MAX_LEADS_PER_CALL: usize = 300;

impl MarketoClient {
    /// A client for the instance at `base` (e.g. `https://123-ABC-456.mktorest.com`).
    pub fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            cc: ClientCredentials::new(http, base, client_id, client_secret, |cc| {
                cc.http
                    .get(format!("{}/identity/oauth/token", cc.base))
                    .query(&cc.grant())
            }),
        }
    }

    /// One REST call with the current token; Marketo's `success:false` answers become
    /// [`l2f_connector_kit::ClientError::Api`], except 601/602 (token invalid or expired), which
    /// fetch a fresh token and call once more.
    async fn call(&self, request: impl Fn(&str) -> RequestBuilder) -> Result<Vec<Value>> {
        let request = &request;
        self.cc
            .with_token("marketo", |token, last| async move {
                let (status, v) =
                    answer("marketo", call("marketo", request(&token)).await?).await?;
                if v["success"] == json!(true) {
                    return Ok(Some(v["result"].as_array().cloned().unwrap_or_default()));
                }
                let code = v["errors"][0]["code"].as_str().unwrap_or("");
                if (code == "601" || code == "602") && !last {
                    return Ok(None);
                }
                Err(refused("marketo", status, v))
            })
            .await
    }

    /// Pushes up to 300 leads (`createOrUpdate` by `lookup_field`); answers the per-record
    /// results, in input order.
    pub async fn push_leads(&self, leads: &[Value], lookup_field: &str) -> Result<Vec<Value>> {
        let body =
            json!({ "action": "createOrUpdate", "lookupField": lookup_field, "input": leads });
        let url = format!("{}/rest/v1/leads.json", self.cc.base);
        self.call(|token| self.cc.http.post(&url).bearer_auth(token).json(&body))
            .await
    }

    /// Leads whose `field` is one of `values` (Marketo's "Get Leads by Filter Type").
    pub async fn leads_by(&self, field: &str, values: &[&str]) -> Result<Vec<Value>> {
        let values = values.join(",");
        let url = format!("{}/rest/v1/leads.json", self.cc.base);
        self.call(|token| {
            self.cc
                .http
                .get(&url)
                .query(&[("filterType", field), ("filterValues", values.as_str())])
                .bearer_auth(token)
        })
        .await
    }

    /// Whether the identity service grants a token with these credentials (the probe).
    pub async fn healthcheck(&self) -> Result<()> {
        self.cc
            .with_token("marketo", |_, _| async { Ok(Some(())) })
            .await
    }
}
