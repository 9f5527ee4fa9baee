//! Issue 8's flows e (renewal at term end, declined card) and g (true-ups) end to end, as an
//! operator runs the hub: one `l2f run` with the customers, Salesforce and Zuora connectors
//! on the real broker, the mock apps served by the test on one simulated clock, every step
//! driven through the apps' own APIs and read back from them.
//! - e. three web-store SaaS purchases, the clock advanced across their term's end: the one
//!   with auto-renew renews (Batch3 invoice at the catalog's price, the new term in
//!   Salesforce and the customers app); the one with auto-renew turned off ends its term
//!   unrenewed; the one whose card declines is cancelled with reason card declined, auto-renew
//!   off in Zuora and the customers app, Salesforce updated;
//! - g. a self-managed Ultimate subscription's usage (billable = active − bots − guests)
//!   above its seats → one true-up in Salesforce; the identical report again → nothing new;
//!   another subscription's report within its seats → nothing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::l2f_command;
use l2f_e2e::{create_topic, require_kafka, unique};
use l2f_mocks::clock::{ClockConfig, ClockMode};
use l2f_mocks::server::{self, MocksConfig, Running};
use serde_json::{json, Value};

const CUSTOMERS_TOKEN: &str = "l2f-customers-token";
const CALLOUT_USER: &str = "l2f-callouts";
const CALLOUT_PASSWORD: &str = "l2f-callout-secret";
const LIMIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Hub {
    mocks: Running,
    child: Child,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Hub {
    fn base(&self, app: &str) -> String {
        self.mocks.endpoint(app).unwrap().http.clone()
    }

    async fn customers(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base("customers")))
            .bearer_auth(CUSTOMERS_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn subscription(&self, id: &str) -> Value {
        self.customers(
            reqwest::Method::GET,
            &format!("/api/v1/subscriptions/{id}"),
            Value::Null,
        )
        .await
    }

    async fn state(&self, app: &str) -> Value {
        self.http
            .get(format!("{}/__admin/state", self.base(app)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A call to Zuora's REST API with a fresh OAuth token.
    async fn zuora(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let base = self.base("zuora");
        let t: Value = self
            .http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("client_id", "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01"),
                ("client_secret", "l2f-zuora-secret"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(t["access_token"].as_str().unwrap());
        if !body.is_null() {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(v["success"], true, "{path}: {v}");
        v
    }

    async fn admin(&self, app: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base(app)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Polls `check` until it answers `Some`, or fails after `limit`.
    async fn until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl AsyncFnMut(&Hub) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = check(self).await {
                return t;
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A web-store purchase; answers the app's subscription id and, once the hub has placed
    /// it in Zuora and mirrored it back, its Zuora number and account.
    async fn purchase(&self, email: &str, body: Value) -> (String, String, String) {
        let acct = self
            .customers(
                reqwest::Method::POST,
                "/api/v1/accounts",
                json!({"email": email, "name": email, "country": "United Kingdom"}),
            )
            .await;
        let account = acct["id"].as_str().unwrap().to_string();
        let mut body = body;
        body["account_id"] = json!(account);
        let bought = self
            .customers(reqwest::Method::POST, "/api/v1/purchases", body)
            .await;
        let id = bought["id"].as_str().unwrap().to_string();
        let number = self
            .until("the purchase mirrored back from Zuora", LIMIT, async |h| {
                let c = h.subscription(&id).await;
                c["zuora_subscription_number"].as_str().map(str::to_string)
            })
            .await;
        (id, number, format!("{account}-INC"))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn start_hub(b: &str) -> Hub {
    let callout_port = free_port();
    let mut mc = MocksConfig {
        clock: ClockConfig {
            mode: ClockMode::Simulated,
            start: "2026-12-01T09:00:00Z".into(),
            tick_ms: 100,
        },
        ..Default::default()
    };
    mc.without_https();
    mc.zuora.callout_url = Some(format!("http://127.0.0.1:{callout_port}/callouts/zuora"));
    mc.zuora.callout_username = Some(CALLOUT_USER.into());
    mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
    mc.zuora.callout_retry_base_ms = 200;
    let mocks = server::start(&mc).await.unwrap();
    let base = |app: &str| mocks.endpoint(app).unwrap().http.clone();
    let t = |n: &str| unique(&format!("renewals-{n}"));
    let (leads, orders, subs, lic, usage, notes, dlq, offsets) = (
        t("leads"),
        t("orders"),
        t("subs"),
        t("lic"),
        t("usage"),
        t("notes"),
        t("dlq"),
        t("offsets"),
    );
    for topic in [&leads, &orders, &subs, &lic, &usage, &notes, &dlq] {
        create_topic(b, topic, 3).await;
    }
    create_topic(b, &offsets, 1).await;
    let g = |n: &str| unique(&format!("g-renewals-{n}"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l2f.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[kafka]
bootstrap_servers = "{b}"
[dead_letter]
topic = "{dlq}"
[sources]
offsets_topic = "{offsets}"
poll_interval = "200ms"
session_timeout = "6s"
[consumer]
commit_interval = "200ms"
[retry]
initial = "100ms"
max = "1s"
[connectors.customers]
base_url = "{customers}"
api_token = "{CUSTOMERS_TOKEN}"
source_name = "{customers_source}"
mirror_group = "{customers_group}"
[connectors.customers.topics]
leads = "{leads}"
orders = "{orders}"
subscriptions = "{subs}"
licenses = "{lic}"
usage = "{usage}"
notifications = "{notes}"
[connectors.salesforce]
login_url = "{salesforce}"
client_id = "l2f-client-id"
client_secret = "l2f-client-secret"
username = "integration@l2f.example"
password = "l2f-password"
source = "{sf_source}"
orders_topic = "{orders}"
leads_topic = "{leads}"
subscriptions_topic = "{subs}"
usage_topic = "{usage}"
licenses_topic = "{lic}"
leads_group = "{sf_leads}"
mirror_group = "{sf_mirror}"
true_up_group = "{sf_true_ups}"
[connectors.zuora]
base_url = "{zuora}"
client_id = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01"
client_secret = "l2f-zuora-secret"
orders_topic = "{orders}"
subscriptions_topic = "{subs}"
licenses_topic = "{lic}"
group = "{zuora_group}"
source = "{zuora_source}"
callout_listen = "127.0.0.1:{callout_port}"
callout_username = "{CALLOUT_USER}"
callout_password = "{CALLOUT_PASSWORD}"
history_poll_interval = "2s"
"#,
            customers = base("customers"),
            salesforce = base("salesforce"),
            zuora = base("zuora"),
            customers_source = unique("customers"),
            customers_group = g("customers"),
            sf_source = unique("sf-opps"),
            sf_leads = g("sf-leads"),
            sf_mirror = g("sf-mirror"),
            sf_true_ups = g("sf-true-ups"),
            zuora_group = g("zuora"),
            zuora_source = unique("zuora"),
        ),
    )
    .unwrap();
    let child = l2f_command("warn")
        .args([
            "run",
            "--topics",
            &orders,
            "--group",
            &g("audit"),
            "--audit-out",
            "/dev/null",
            "--config",
        ])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Hub {
        mocks,
        child,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

fn sf_subscription<'a>(state: &'a Value, number: &str) -> Option<&'a Value> {
    state["records"]
        .as_object()?
        .values()
        .filter(|r| r["sobject"] == "Zuora__Subscription__c")
        .map(|r| &r["fields"])
        .find(|f| f["Zuora__SubscriptionNumber__c"] == number)
}

fn sf_records(state: &Value, sobject: &str) -> Vec<Value> {
    state["records"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["sobject"] == sobject)
        .map(|r| r["fields"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_declined_cards_and_true_ups_run_end_to_end_on_the_simulated_clock() {
    let b = require_kafka!();
    let hub = start_hub(&b).await;
    let saas = json!({"deployment": "saas", "plan": "premium", "seats": 10});

    // e. Three web-store SaaS purchases (auto-renew on by rule 5), their terms 2026-12-01 to
    // 2027-12-01.
    let (renews_id, renews, renews_acct) = hub.purchase("renews@example.com", saas.clone()).await;
    let (ends_id, ends, _) = hub.purchase("ends@example.com", saas.clone()).await;
    let (declines_id, declines, declines_acct) =
        hub.purchase("declines@example.com", saas.clone()).await;
    let z = hub.state("zuora").await;
    for n in [&renews, &ends, &declines] {
        assert_eq!(z["subscriptions"][n]["termEndDate"], "2027-12-01");
        assert_eq!(z["subscriptions"][n]["autoRenew"], true);
    }
    // The customer of the second turns auto-renew off in the customers app; Zuora follows.
    hub.customers(
        reqwest::Method::PUT,
        &format!("/api/v1/subscriptions/{ends_id}/auto-renew"),
        json!({"auto_renew": false}),
    )
    .await;
    hub.until("auto-renew off in Zuora", LIMIT, async |h| {
        let z = h.state("zuora").await;
        (z["subscriptions"][&ends]["autoRenew"] == false).then_some(())
    })
    .await;
    // Cards on file (Zuora collects from autoPay accounts); the third one's declines.
    for acct in [&renews_acct, &declines_acct] {
        hub.zuora(
            reqwest::Method::PUT,
            &format!("/v1/accounts/{acct}"),
            json!({"autoPay": true}),
        )
        .await;
    }
    hub.admin(
        "zuora",
        &format!("/__admin/accounts/{declines_acct}/card"),
        json!({"declines": true, "gatewayResponseCode": "05", "gatewayResponse": "Do not honor"}),
    )
    .await;

    // The clock across the term's end.
    let moved = hub
        .admin(
            "customers",
            "/__admin/clock",
            json!({"set": "2027-12-02T09:00:00Z"}),
        )
        .await;
    assert_eq!(moved["now"], "2027-12-02T09:00:00.000Z");

    // Auto-renewed: the new term in Zuora, Salesforce and the customers app; the Batch3
    // invoice at the catalog's price (10 × 29.00) paid.
    let z = hub.state("zuora").await;
    let r = &z["subscriptions"][&renews];
    assert_eq!(
        (r["status"].clone(), r["termEndDate"].clone()),
        (json!("Active"), json!("2028-12-01"))
    );
    let invoices: Vec<&Value> = z["invoices"]
        .as_object()
        .unwrap()
        .values()
        .filter(|i| i["accountNumber"] == renews_acct.as_str())
        .collect();
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0]["amount"], 290.0);
    assert_eq!(invoices[0]["balance"], 0.0);
    let run = invoices[0]["billRunId"].as_str().unwrap();
    let bill_run = z["bill_runs"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["id"] == run)
        .unwrap();
    assert_eq!(bill_run["batches"], json!(["Batch3"]), "rule 4");
    hub.until(
        "the renewal in Salesforce and the customers app",
        LIMIT,
        async |h| {
            let s = h.state("salesforce").await;
            let sf = sf_subscription(&s, &renews)?;
            let app = h.subscription(&renews_id).await;
            (sf["Zuora__TermEndDate__c"] == "2028-12-01"
                && sf["Zuora__TermStartDate__c"] == "2027-12-01"
                && app["term_end"] == "2028-12-01")
                .then_some(())
        },
    )
    .await;

    // Without auto-renew the term ends: not renewed, nothing invoiced.
    let e = &z["subscriptions"][&ends];
    assert_eq!(
        (e["termEndDate"].clone(), e["autoRenew"].clone()),
        (json!("2027-12-01"), json!(false))
    );
    assert_eq!(hub.subscription(&ends_id).await["term_end"], "2027-12-01");

    // The declined card: cancelled (card declined), auto-renew off in Zuora and the customers
    // app, Salesforce updated.
    hub.until(
        "the declined card's cancellation everywhere",
        LIMIT,
        async |h| {
            let z = h.state("zuora").await;
            let zs = &z["subscriptions"][&declines];
            let s = h.state("salesforce").await;
            let sf = sf_subscription(&s, &declines)?.clone();
            let app = h.subscription(&declines_id).await;
            let done = zs["status"] == "Cancelled"
                && sf["Zuora__Status__c"] == "Cancelled"
                && app["status"] == "cancelled";
            done.then_some((zs.clone(), sf, app))
        },
    )
    .await;
    let z = hub.state("zuora").await;
    let zs = &z["subscriptions"][&declines];
    assert_eq!(zs["autoRenew"], false);
    assert_eq!(
        zs["L2fCancellationReason__c"],
        "CARD_DECLINED_ON_AUTO_RENEWAL"
    );
    assert_eq!(zs["cancelledDate"], "2027-12-01", "the unpaid term undone");
    let s = hub.state("salesforce").await;
    let sf = sf_subscription(&s, &declines).unwrap();
    assert_eq!(sf["Zuora__AutoRenew__c"], false);
    assert_eq!(
        sf["Cancellation_Reason__c"],
        "CARD_DECLINED_ON_AUTO_RENEWAL"
    );
    let app = hub.subscription(&declines_id).await;
    assert_eq!(app["auto_renew"], false);
    assert_eq!(app["cancellation_reason"], "card_declined");
    let declined_payments = z["payments"]
        .as_object()
        .unwrap()
        .values()
        .filter(|p| p["status"] == "Error")
        .count();
    assert_eq!(declined_payments, 1);

    // g. Usage of a self-managed Ultimate subscription of 25 seats: 40 active, 3 service bots,
    // 7 guests → 30 billable (rule 9) → a true-up of 5 for December.
    let sm = json!({"deployment": "self_managed", "plan": "ultimate", "seats": 25});
    let (sm_id, sm_number, _) = hub.purchase("usage@example.com", sm).await;
    let usage = format!("/api/v1/subscriptions/{sm_id}/usage");
    let report = json!({"active_users": 40, "service_bots": 3, "guests": 7});
    hub.customers(reqwest::Method::POST, &usage, report.clone())
        .await;
    let true_up = async |key: String| {
        hub.until("the true-up in Salesforce", LIMIT, async |h| {
            let s = h.state("salesforce").await;
            sf_records(&s, "L2f_True_Up__c")
                .into_iter()
                .find(|r| r["L2f_True_Up_Id__c"] == key.as_str())
        })
        .await
    };
    let december = format!("{sm_number}:2027-12");
    let flagged = true_up(december.clone()).await;
    assert_eq!(flagged["Billable_Users__c"], 30, "{flagged}");
    assert_eq!(flagged["True_Up_Seats__c"], 5);
    // The identical report again, then one within the seats (35 active, 3 bots, 7 guests →
    // 25 billable); then, a month on, one above them again. Reports of one subscription are
    // handled in order, so once January's true-up is there the two before it are through.
    hub.customers(reqwest::Method::POST, &usage, report.clone())
        .await;
    hub.customers(
        reqwest::Method::POST,
        &usage,
        json!({"active_users": 35, "service_bots": 3, "guests": 7}),
    )
    .await;
    hub.admin(
        "customers",
        "/__admin/clock",
        json!({"set": "2028-01-05T09:00:00Z"}),
    )
    .await;
    hub.customers(reqwest::Method::POST, &usage, report).await;
    let january = true_up(format!("{sm_number}:2028-01")).await;
    assert_eq!(january["True_Up_Seats__c"], 5);
    let s = hub.state("salesforce").await;
    let t = sf_records(&s, "L2f_True_Up__c");
    assert_eq!(t.len(), 2, "December once, January once: {t:?}");
    let dec = t
        .iter()
        .find(|r| r["L2f_True_Up_Id__c"] == december.as_str())
        .unwrap();
    assert_eq!(
        (
            dec["Billable_Users__c"].clone(),
            dec["True_Up_Seats__c"].clone()
        ),
        (json!(30), json!(5)),
        "the identical report changed nothing, the one within the seats flagged nothing"
    );
    assert_ne!(
        dec["L2f_Event_Id__c"], flagged["L2f_Event_Id__c"],
        "the identical report reached Salesforce, as an update of the same true-up"
    );
}
