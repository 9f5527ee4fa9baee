//! The demo's hands on the apps: the calls a customer, a sales rep or a billing admin would
//! make, over each app's own API (tokens, paths and bodies as the real APIs take them), and
//! the mocks' `/__admin` endpoints for what no API offers (the clock, a card that declines,
//! a state dump to count effects).

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use l2f_mocks::server::MocksConfig;

/// HTTP to every mock app, with the credentials the mocks were started with.
pub struct AppsHttp {
    http: reqwest::Client,
    base: BTreeMap<String, String>,
    cfg: MocksConfig,
    sf_token: Mutex<Option<String>>,
    zuora_token: Mutex<Option<String>>,
}

/// Tries of one call before the demo gives up on an app.
const ATTEMPTS: u32 = 8;

/// Salesforce's REST version the demo speaks (the connector's own).
const SF_VERSION: &str = "v62.0";

impl AppsHttp {
    /// For the apps at `base` (app → `http://…`), started with `cfg`.
    pub fn new(base: BTreeMap<String, String>, cfg: MocksConfig) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base,
            cfg,
            sf_token: Mutex::new(None),
            zuora_token: Mutex::new(None),
        })
    }

    /// The base URL of `app`.
    pub fn base(&self, app: &str) -> Result<&str> {
        self.base
            .get(app)
            .map(String::as_str)
            .with_context(|| format!("the {app} mock is not running"))
    }

    /// Sends, as a patient user would: a 429 or 5xx, or a dropped connection, is tried
    /// again (after Retry-After, at most 2 s), up to [`ATTEMPTS`] times. The mocks refuse a
    /// faulted call before handling it, so trying again never doubles an effect.
    async fn call(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let mut attempt = 1;
        loop {
            let this = req
                .try_clone()
                .context("a request that cannot be sent again")?;
            let wait = match this.send().await {
                Ok(r) => {
                    let status = r.status();
                    let retry_after = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let text = r.text().await.unwrap_or_default();
                    let again = status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error();
                    if !again || attempt >= ATTEMPTS {
                        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        return Ok((status, v));
                    }
                    retry_after.map_or(Duration::from_millis(100), |s| {
                        Duration::from_secs(s).min(Duration::from_secs(2))
                    })
                }
                Err(e) if attempt >= ATTEMPTS => {
                    return Err(e).with_context(|| what.to_string());
                }
                Err(_) => Duration::from_millis(100),
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    fn ok(what: &str, (status, v): (reqwest::StatusCode, Value)) -> Result<Value> {
        if !status.is_success() {
            bail!("{what}: HTTP {status}: {v}");
        }
        Ok(v)
    }

    /// The customers app's API (bearer token).
    pub async fn customers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let what = format!("customers app {method} {path}");
        let req = self
            .http
            .request(method, format!("{}{path}", self.base("customers")?))
            .bearer_auth(&self.cfg.customers.api_token);
        Self::ok(&what, self.call(&what, req, body.as_ref()).await?)
    }

    /// Salesforce's REST API (`/services/data/vXX.X…`), logging in with the password flow and
    /// again when the session expires (the simulated clock moves fast).
    pub async fn salesforce(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let base = self.base("salesforce")?;
        let c = &self.cfg.salesforce;
        let login = [
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("username", c.username.as_str()),
            ("password", c.password.as_str()),
        ];
        let url = format!("{base}/services/data/{SF_VERSION}{path}");
        let token_url = format!("{base}/services/oauth2/token");
        let what = format!("Salesforce {method} {path}");
        self.with_token(
            &self.sf_token,
            &token_url,
            &login,
            method,
            &url,
            &what,
            body,
        )
        .await
    }

    /// Zuora's REST API (OAuth client credentials, again when the token expires); an answer
    /// with `success: false` is an error.
    pub async fn zuora(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let base = self.base("zuora")?;
        let c = &self.cfg.zuora;
        let grant = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ];
        let (url, token_url) = (format!("{base}{path}"), format!("{base}/oauth/token"));
        let what = format!("Zuora {method} {path}");
        let v = self
            .with_token(
                &self.zuora_token,
                &token_url,
                &grant,
                method,
                &url,
                &what,
                body,
            )
            .await?;
        if v["success"] == false {
            bail!("{what}: {v}");
        }
        Ok(v)
    }

    /// A call with an OAuth bearer token kept in `slot`, fetched from `token_url` with
    /// `form` when there is none and again once when the call is answered 401.
    #[allow(clippy::too_many_arguments)]
    async fn with_token(
        &self,
        slot: &Mutex<Option<String>>,
        token_url: &str,
        form: &[(&str, &str)],
        method: Method,
        url: &str,
        what: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        for fresh in [false, true] {
            let token = {
                let mut t = slot.lock().await;
                if t.is_none() || fresh {
                    let req = self.http.post(token_url).form(form);
                    let v = Self::ok(token_url, self.call(token_url, req, None).await?)?;
                    *t = v["access_token"].as_str().map(str::to_string);
                }
                t.clone()
                    .with_context(|| format!("{token_url} issued no token"))?
            };
            let req = self.http.request(method.clone(), url).bearer_auth(token);
            let (status, v) = self.call(what, req, body.as_ref()).await?;
            if status == reqwest::StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            return Self::ok(what, (status, v));
        }
        bail!("{what}: refused twice")
    }

    /// A mock's `/__admin` endpoint: GET without a body, POST with one.
    pub async fn admin(&self, app: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base(app)?);
        let what = format!("{app} {path}");
        let req = match body {
            Some(_) => self.http.post(url),
            None => self.http.get(url),
        };
        Self::ok(&what, self.call(&what, req, body.as_ref()).await?)
    }

    /// Sets the apps' one simulated clock.
    pub async fn set_clock(&self, at: &str) -> Result<()> {
        self.admin("zuora", "/__admin/clock", Some(json!({ "set": at })))
            .await?;
        Ok(())
    }

    /// How many faults each app has injected so far (its `/__admin/faults` counters).
    pub async fn faults_fired(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for app in self.base.keys() {
            let v = self.admin(app, "/__admin/faults", None).await?;
            let fired = v.as_array().map_or(0, |rules| {
                rules.iter().filter_map(|r| r["fired"].as_u64()).sum()
            });
            out.insert(app.clone(), fired);
        }
        Ok(out)
    }

    /// Lifts every app's fault rules (the read-back and the reconciliation see the apps as
    /// they are, not failing).
    pub async fn clear_faults(&self) -> Result<()> {
        for app in self.base.keys() {
            let url = format!("{}/__admin/faults", self.base(app)?);
            let what = format!("{app} DELETE /__admin/faults");
            Self::ok(&what, self.call(&what, self.http.delete(url), None).await?)?;
        }
        Ok(())
    }

    /// The records a SOQL query finds, every page (`nextRecordsUrl`) read.
    pub async fn soql(&self, soql: &str) -> Result<Vec<Value>> {
        let q = l2f_connector_kit::http::path_segment(soql);
        let mut v = self
            .salesforce(Method::GET, &format!("/query?q={q}"), None)
            .await?;
        let mut out = Vec::new();
        loop {
            out.extend(v["records"].as_array().cloned().unwrap_or_default());
            match v["nextRecordsUrl"].as_str() {
                Some(next) if v["done"] == false => {
                    let path = next
                        .split_once(&format!("/services/data/{SF_VERSION}"))
                        .map_or(next, |(_, p)| p)
                        .to_string();
                    v = self.salesforce(Method::GET, &path, None).await?;
                }
                _ => return Ok(out),
            }
        }
    }

    /// Every subscription the customers app lists, page by page (`per_page` up to 1000).
    pub async fn customers_subscriptions(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for page in 1.. {
            let v = self
                .customers(
                    Method::GET,
                    &format!("/api/v1/subscriptions?per_page=1000&page={page}"),
                    None,
                )
                .await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let total = v["total"].as_u64().unwrap_or(0) as usize;
            out.extend(items);
            if out.len() >= total {
                break;
            }
        }
        Ok(out)
    }
}
