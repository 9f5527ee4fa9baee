//! Issue 7's flows end to end, as an operator runs the hub: one `l2f run` with every connector
//! (customers, Salesforce, Zuora, Marketo, license) on the real broker, the six mock apps served
//! by the test over HTTP, and every step driven through the apps' own APIs and read back from
//! them.
//! - a. forms → a lead in Marketo and in Salesforce, `UK` → GB; an incomplete lead reaches
//!   neither and is dead-lettered naming the field; "Untied Kingdom" is dead-lettered at the edge;
//! - b. a web-store SaaS purchase → Zuora (GitLab Inc., Batch1, Default, auto-renew on) → the
//!   subscription mirrored into Salesforce and back into the customers app; no echo;
//! - d. a sales-assisted deal closed-won for DE → GmbH, Batch2, auto-renew off, the account in
//!   the customers app; the customer turns auto-renew on there → Zuora follows, Salesforce shows it;
//! - f. a cancellation on customer request → auto-renew off and cancelled in Zuora with its
//!   reason, Salesforce and the customers app updated;
//! - h. the deal's customer moves to GB and renews → the old subscription cancelled (entity
//!   change), a new one on GitLab Ltd, both in Salesforce;
//! - i. an order for a SKU the catalog does not know is dead-lettered with its reason;
//! - c (issue 8, the license's part). a web-store self-managed purchase → Zuora → the terms
//!   accepted in the customers app → the license issued once and shown there; with the profile
//!   made Silent in Zuora the license is held and shown to no one until the profile is lifted
//!   in Zuora, then released.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::l2f_command;
use l2f_bus::dlq::DeadLetter;
use l2f_bus::headers::TraceParent;
use l2f_bus::reader::read_all;
use l2f_e2e::{client, create_topic, require_kafka, unique};
use l2f_mocks::customers::Plan;
use l2f_mocks::server::{self, MocksConfig, Running};
use serde_json::{json, Value};

/// A span the collector was sent: (trace id, span id, parent span id, name, attributes).
type Span = (String, String, String, String, Value);

const CUSTOMERS_TOKEN: &str = "l2f-customers-token";
const CALLOUT_USER: &str = "l2f-callouts";
const CALLOUT_PASSWORD: &str = "l2f-callout-secret";

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
    bootstrap: String,
    dlq: String,
    orders: String,
    licenses: String,
    subscriptions: String,
    /// The spans `l2f run` exported to the test's collector.
    spans: common::Spans,
    /// The consumer groups, by connector: customers, zuora, salesforce (mirror), license.
    groups: Vec<(&'static str, String)>,
    zuora_source: String,
    customers_source: String,
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

    /// Sets a Zuora account's communication profile, as a billing admin would in Zuora.
    async fn zuora_profile(&self, account_number: &str, profile: &str) {
        let base = self.base("zuora");
        let t: Value = self
            .http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01"),
                ("client_secret", "l2f-zuora-secret"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = self
            .http
            .put(format!("{base}/v1/accounts/{account_number}"))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .json(&json!({ "communicationProfileId": profile }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }

    /// The names of the license service's events about `subscription` on the licenses topic.
    fn license_events(&self, subscription: &str) -> Vec<&'static str> {
        let codec = l2f_contracts::Codec::new();
        read_all(
            &client(&self.bootstrap),
            &self.licenses,
            Duration::from_secs(20),
        )
        .unwrap()
        .iter()
        .filter_map(|r| l2f_contracts::record::AnyEvent::decode(&codec, r.payload.as_deref()?).ok())
        .filter(|e| match e {
            l2f_contracts::record::AnyEvent::LicenseIssued(l) => l.subscription_id == subscription,
            l2f_contracts::record::AnyEvent::LicenseHeld(h) => h.subscription_id == subscription,
            _ => false,
        })
        .map(|e| e.name())
        .collect()
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

    async fn salesforce(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let base = self.base("salesforce");
        let t: Value = self
            .http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "l2f-client-id"),
                ("client_secret", "l2f-client-secret"),
                ("username", "integration@l2f.example"),
                ("password", "l2f-password"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = self
            .http
            .request(method, format!("{base}/services/data/v62.0{path}"))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    fn letters(&self) -> Vec<DeadLetter> {
        read_all(&client(&self.bootstrap), &self.dlq, Duration::from_secs(20))
            .unwrap()
            .into_iter()
            .filter_map(DeadLetter::parse)
            .collect()
    }

    /// Polls `check` (an app's state read) until it answers `Some`, or fails after `limit`.
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
}

/// The value of a span's attribute `key` as text.
fn attr(attrs: &Value, key: &str) -> Option<String> {
    let a = attrs.as_array()?.iter().find(|a| a["key"] == key)?;
    let v = &a["value"];
    v["stringValue"]
        .as_str()
        .map(String::from)
        .or_else(|| v["intValue"].as_str().map(String::from))
}

impl Hub {
    /// Asserts that the trace `traceparent` names (the one a subscription's last change was
    /// made under) is one whole trace of a purchase: rooted in the customers source's span,
    /// through the Zuora sink's span and its calls, Zuora's notification read by the Zuora
    /// source, to the span of every connector that took the subscription — every span's
    /// parent a span of the trace.
    async fn assert_one_purchase_trace(&self, traceparent: &str) {
        let tp = TraceParent::parse(traceparent).expect("a valid L2fTraceparent__c");
        let trace = tp.trace_id_hex();
        let group = |g: &str| self.groups.iter().find(|(n, _)| *n == g).unwrap().1.clone();
        let complete = |spans: &[Span]| {
            let ids: HashSet<&str> = spans.iter().map(|s| s.1.as_str()).collect();
            self.groups.iter().all(|(_, g)| {
                spans
                    .iter()
                    .any(|s| attr(&s.4, "messaging.consumer.group.name").as_ref() == Some(g))
            }) && spans
                .iter()
                .all(|s| s.2.is_empty() || ids.contains(s.2.as_str()))
        };
        let start = Instant::now();
        let spans: Vec<Span> = loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.0 == trace)
                .cloned()
                .collect();
            if complete(&spans) || start.elapsed() > LIMIT {
                break spans;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let show = |spans: &[Span]| {
            spans
                .iter()
                .map(|s| format!("{} {} <- {}", s.3, s.1, s.2))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let ids: HashSet<&str> = spans.iter().map(|s| s.1.as_str()).collect();
        for s in &spans {
            assert!(
                s.2.is_empty() || ids.contains(s.2.as_str()),
                "span {} names a parent {} not in trace {trace}:\n{}",
                s.3,
                s.2,
                show(&spans)
            );
        }
        let roots: Vec<&Span> = spans.iter().filter(|s| s.2.is_empty()).collect();
        assert_eq!(roots.len(), 1, "one root:\n{}", show(&spans));
        assert_eq!(roots[0].3, format!("{} create", self.orders));
        assert_eq!(
            attr(&roots[0].4, "l2f.source"),
            Some(self.customers_source.clone()),
            "the trace starts at the customers app's feed"
        );
        let process = |g: &str, topic: &str| -> &Span {
            spans
                .iter()
                .find(|s| {
                    attr(&s.4, "messaging.consumer.group.name") == Some(group(g))
                        && s.3 == format!("{topic} process")
                })
                .unwrap_or_else(|| panic!("a {g} span on {topic}:\n{}", show(&spans)))
        };
        let zuora = process("zuora", &self.orders);
        assert_eq!(
            zuora.2, roots[0].1,
            "the Zuora sink's span is the order's child"
        );
        assert!(
            spans
                .iter()
                .any(|s| s.2 == zuora.1 && s.3 == "zuora POST /v1/orders"),
            "the order's call to Zuora is a span under the sink's:\n{}",
            show(&spans)
        );
        let notified = spans
            .iter()
            .find(|s| {
                s.3 == format!("{} create", self.subscriptions)
                    && attr(&s.4, "l2f.source") == Some(self.zuora_source.clone())
            })
            .unwrap_or_else(|| panic!("the Zuora source's span:\n{}", show(&spans)));
        assert_eq!(
            notified.2, zuora.1,
            "Zuora's notification continues the span that made the change"
        );
        for g in ["customers", "salesforce", "license"] {
            assert_eq!(
                process(g, &self.subscriptions).2,
                notified.1,
                "{g} took the subscription under the Zuora source's span"
            );
        }
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
    let mut mc = MocksConfig::default();
    mc.without_https();
    mc.zuora.callout_url = Some(format!("http://127.0.0.1:{callout_port}/callouts/zuora"));
    mc.zuora.callout_username = Some(CALLOUT_USER.into());
    mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
    mc.zuora.callout_retry_base_ms = 200;
    // A plan the store sells whose SKU finance never put in the catalog (flow i).
    mc.customers.plans.insert(
        "enterprise".into(),
        Plan {
            saas_sku: "enterprise-saas-1y".into(),
            self_managed_sku: "enterprise-self-managed-1y".into(),
            unit_price: "199.00".into(),
        },
    );
    let mocks = server::start(&mc).await.unwrap();
    let base = |app: &str| mocks.endpoint(app).unwrap().http.clone();
    let t = |n: &str| unique(&format!("flow-{n}"));
    let (leads, orders, subs, lic, usage, dlq, offsets) = (
        t("leads"),
        t("orders"),
        t("subs"),
        t("lic"),
        t("usage"),
        t("dlq"),
        t("offsets"),
    );
    for topic in [&leads, &orders, &subs, &lic, &usage, &dlq] {
        create_topic(b, topic, 3).await;
    }
    create_topic(b, &offsets, 1).await;
    // The customers app's 14-day renewal notices are read from here (none in these flows).
    let notes = t("notes");
    create_topic(b, &notes, 3).await;
    let g = |n: &str| unique(&format!("g-flow-{n}"));
    let (license_group, customers_group, sf_mirror, zuora_group) =
        (g("license"), g("customers"), g("sf-mirror"), g("zuora"));
    let (zuora_source, customers_source) = (unique("zuora"), unique("customers"));
    let (otlp, spans) = common::collector().await;
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
[traces]
otlp_endpoint = "{otlp}"
protocol = "http/json"
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
leads_group = "{sf_leads}"
mirror_group = "{sf_mirror}"
usage_topic = "{usage}"
licenses_topic = "{lic}"
true_up_group = "{sf_true_ups}"
[connectors.zuora]
base_url = "{zuora}"
client_id = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01"
client_secret = "l2f-zuora-secret"
orders_topic = "{orders}"
subscriptions_topic = "{subs}"
group = "{zuora_group}"
source = "{zuora_source}"
callout_listen = "127.0.0.1:{callout_port}"
callout_username = "{CALLOUT_USER}"
callout_password = "{CALLOUT_PASSWORD}"
history_poll_interval = "2s"
licenses_topic = "{lic}"
[connectors.license]
base_url = "{license}"
api_token = "l2f-license-token"
subscriptions_topic = "{subs}"
licenses_topic = "{lic}"
group = "{license_group}"
source_name = "{license_source}"
[connectors.marketo]
base_url = "{marketo}"
client_id = "l2f-marketo-client"
client_secret = "l2f-marketo-secret"
topic = "{leads}"
group = "{marketo_group}"
rate_window = "2s"
"#,
            customers = base("customers"),
            salesforce = base("salesforce"),
            zuora = base("zuora"),
            marketo = base("marketo"),
            license = base("license"),
            license_source = unique("license"),
            sf_source = unique("sf-opps"),
            sf_leads = g("sf-leads"),
            sf_true_ups = g("sf-true-ups"),
            marketo_group = g("marketo"),
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
        // Spans leave in batches every 200 ms instead of 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Hub {
        spans,
        groups: vec![
            ("customers", customers_group),
            ("zuora", zuora_group),
            ("salesforce", sf_mirror),
            ("license", license_group),
        ],
        zuora_source,
        customers_source,
        mocks,
        child,
        http: reqwest::Client::new(),
        bootstrap: b.to_string(),
        dlq,
        orders,
        licenses: lic,
        subscriptions: subs,
        _dir: dir,
    }
}

fn sf_records<'a>(state: &'a Value, sobject: &str) -> Vec<&'a Value> {
    state["records"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["sobject"] == sobject)
        .map(|r| &r["fields"])
        .collect()
}

fn subscription_of<'a>(zuora: &'a Value, order_id: &str) -> Option<&'a Value> {
    zuora["subscriptions"]
        .as_object()?
        .values()
        .find(|s| s["L2fOrderId__c"] == order_id)
}

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_flows_run_end_to_end_through_l2f_run_and_the_apps_apis() {
    let b = require_kafka!();
    let hub = start_hub(&b).await;
    let post = reqwest::Method::POST;

    // a. Forms.
    let form = |email: &str, company: Option<&str>, country: &str| json!({"email": email, "first_name": "Grace", "last_name": "Hopper", "company": company, "country": country});
    hub.customers(
        post.clone(),
        "/api/v1/trials",
        form("grace@example.com", Some("Navy"), "UK"),
    )
    .await;
    hub.customers(
        post.clone(),
        "/api/v1/signups",
        form("nocompany@example.com", None, "France"),
    )
    .await;
    hub.customers(
        post.clone(),
        "/api/v1/contact-requests",
        form("typo@example.com", Some("X"), "Untied Kingdom"),
    )
    .await;
    hub.until("the lead in Marketo and Salesforce", LIMIT, async |h| {
        let m = h.state("marketo").await;
        let s = h.state("salesforce").await;
        let in_marketo = m["leads"]
            .as_object()?
            .values()
            .any(|l| l["email"] == "grace@example.com" && l["country"] == "GB");
        let in_sf = sf_records(&s, "Lead")
            .iter()
            .any(|l| l["Email"] == "grace@example.com" && l["CountryCode"] == "GB");
        (in_marketo && in_sf).then_some(())
    })
    .await;

    // b. A web-store SaaS purchase.
    let acct = hub
        .customers(post.clone(), "/api/v1/accounts", json!({"email": "ada@example.co.uk", "name": "Ada Lovelace", "country": "United Kingdom"}))
        .await;
    let account = acct["id"].as_str().unwrap().to_string();
    let web = hub
        .customers(
            post.clone(),
            "/api/v1/purchases",
            json!({"account_id": account, "deployment": "saas", "plan": "premium", "seats": 10}),
        )
        .await;
    let web_id = web["id"].as_str().unwrap().to_string();
    let number = hub
        .until("the web-store subscription in Zuora", LIMIT, async |h| {
            let z = h.state("zuora").await;
            let s = subscription_of(&z, &web_id)?;
            Some(s["subscriptionNumber"].as_str()?.to_string())
        })
        .await;
    let z = hub.state("zuora").await;
    let za = &z["accounts"][&format!("{account}-INC")];
    assert_eq!(
        za["entity"], "GITLAB_INC",
        "web direct: always Inc. at first purchase (rule 3)"
    );
    assert_eq!(za["batch"], "Batch1", "rule 4");
    assert_eq!(za["communicationProfileId"], "Default", "rule 6");
    assert_eq!(z["subscriptions"][&number]["autoRenew"], true, "rule 5");
    hub.until("the web-store subscription mirrored", LIMIT, async |h| {
        let s = h.state("salesforce").await;
        let in_sf = sf_records(&s, "Zuora__Subscription__c").iter().any(|r| {
            r["Zuora__SubscriptionNumber__c"] == number.as_str()
                && r["Zuora__Status__c"] == "Active"
        });
        let c = h
            .customers(
                reqwest::Method::GET,
                &format!("/api/v1/subscriptions/{web_id}"),
                Value::Null,
            )
            .await;
        (in_sf && c["zuora_subscription_number"] == number.as_str()).then_some(())
    })
    .await;
    // The purchase is one trace across the customers, Zuora, Salesforce and license connectors.
    let traceparent = z["subscriptions"][&number]["L2fTraceparent__c"]
        .as_str()
        .expect("the subscription keeps the trace it was made under")
        .to_string();
    hub.assert_one_purchase_trace(&traceparent).await;

    // d. A sales-assisted deal for DE, then auto-renew turned on in the customers app.
    let sf_account = hub
        .salesforce(
            post.clone(),
            "/sobjects/Account",
            json!({"Name": "Bauhaus GmbH", "BillingCountryCode": "DE"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deal = |name: &str, kind: &str| {
        json!({"Name": name, "AccountId": sf_account, "StageName": "Closed Won", "CloseDate": "2026-12-02",
               "Amount": 3480, "Type": kind, "Deployment__c": "SaaS", "Sku__c": "premium-saas-1y", "Seats__c": 10,
               "Term_Months__c": 12, "Party__c": "Direct", "Sold_To_Email__c": "buyer@bauhaus.example"})
    };
    let opp = hub
        .salesforce(
            post.clone(),
            "/sobjects/Opportunity",
            deal("Bauhaus", "New Business"),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deal_number = hub
        .until("the deal's subscription in Zuora", LIMIT, async |h| {
            let z = h.state("zuora").await;
            Some(
                subscription_of(&z, &opp)?["subscriptionNumber"]
                    .as_str()?
                    .to_string(),
            )
        })
        .await;
    let z = hub.state("zuora").await;
    let gmbh = &z["accounts"][&format!("{sf_account}-GMBH")];
    assert_eq!(
        gmbh["entity"], "GITLAB_GMBH",
        "sales-assisted DE → GmbH (rule 3)"
    );
    assert_eq!(gmbh["batch"], "Batch2", "rule 4");
    assert_eq!(
        z["subscriptions"][&deal_number]["autoRenew"], false,
        "sales-assisted deals start off (rule 5)"
    );
    let in_app = hub
        .until("the deal in the customers app", LIMIT, async |h| {
            let c = h
                .customers(
                    reqwest::Method::GET,
                    &format!("/api/v1/subscriptions?account_id={sf_account}"),
                    Value::Null,
                )
                .await;
            let item = c["items"]
                .as_array()?
                .iter()
                .find(|s| s["zuora_subscription_number"] == deal_number.as_str())?
                .clone();
            Some(item["id"].as_str()?.to_string())
        })
        .await;
    hub.customers(
        reqwest::Method::PUT,
        &format!("/api/v1/subscriptions/{in_app}/auto-renew"),
        json!({"auto_renew": true}),
    )
    .await;
    hub.until("auto-renew on in Zuora and Salesforce", LIMIT, async |h| {
        let z = h.state("zuora").await;
        let s = h.state("salesforce").await;
        let in_sf = sf_records(&s, "Zuora__Subscription__c").iter().any(|r| {
            r["Zuora__SubscriptionNumber__c"] == deal_number.as_str()
                && r["Zuora__AutoRenew__c"] == true
        });
        (z["subscriptions"][&deal_number]["autoRenew"] == true && in_sf).then_some(())
    })
    .await;

    // f. The web-store customer cancels.
    hub.customers(
        post.clone(),
        &format!("/api/v1/subscriptions/{web_id}/cancel"),
        json!({"reason": "customer_request"}),
    )
    .await;
    hub.until("cancelled everywhere with its reason", LIMIT, async |h| {
        let z = h.state("zuora").await;
        let zs = &z["subscriptions"][&number];
        let s = h.state("salesforce").await;
        let in_sf = sf_records(&s, "Zuora__Subscription__c").iter().any(|r| {
            r["Zuora__SubscriptionNumber__c"] == number.as_str()
                && r["Zuora__Status__c"] == "Cancelled"
                && r["Cancellation_Reason__c"] == "CUSTOMER_REQUEST"
        });
        let c = h
            .customers(
                reqwest::Method::GET,
                &format!("/api/v1/subscriptions/{web_id}"),
                Value::Null,
            )
            .await;
        (zs["status"] == "Cancelled"
            && zs["autoRenew"] == false
            && zs["L2fCancellationReason__c"] == "CUSTOMER_REQUEST"
            && in_sf
            && c["status"] == "cancelled"
            && c["auto_renew"] == false)
            .then_some(())
    })
    .await;

    // h. The deal's customer moves to GB and renews.
    hub.salesforce(
        reqwest::Method::PATCH,
        &format!("/sobjects/Account/{sf_account}"),
        json!({"BillingCountryCode": "GB"}),
    )
    .await;
    let renewal = hub
        .salesforce(
            post.clone(),
            "/sobjects/Opportunity",
            deal("Bauhaus renewal", "Renewal"),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let new_number = hub
        .until("the renewal on GitLab Ltd", LIMIT, async |h| {
            let z = h.state("zuora").await;
            let old = &z["subscriptions"][&deal_number];
            let new = subscription_of(&z, &renewal)?;
            (old["status"] == "Cancelled"
                && old["L2fCancellationReason__c"] == "ENTITY_CHANGE_AT_RENEWAL"
                && z["accounts"][&format!("{sf_account}-LTD")]["entity"] == "GITLAB_LTD"
                && new["accountNumber"] == format!("{sf_account}-LTD").as_str())
            .then(|| new["subscriptionNumber"].as_str().unwrap().to_string())
        })
        .await;
    hub.until("both subscriptions in Salesforce", LIMIT, async |h| {
        let s = h.state("salesforce").await;
        let subs = sf_records(&s, "Zuora__Subscription__c");
        let old = subs.iter().any(|r| {
            r["Zuora__SubscriptionNumber__c"] == deal_number.as_str()
                && r["Cancellation_Reason__c"] == "ENTITY_CHANGE_AT_RENEWAL"
        });
        let new = subs.iter().any(|r| {
            r["Zuora__SubscriptionNumber__c"] == new_number.as_str()
                && r["Entity__c"] == "GITLAB_LTD"
        });
        (old && new).then_some(())
    })
    .await;

    // i. An order for a SKU the catalog does not know.
    hub.customers(
        post.clone(),
        "/api/v1/purchases",
        json!({"account_id": account, "deployment": "saas", "plan": "enterprise", "seats": 3}),
    )
    .await;
    let letters = hub
        .until("the unknown SKU dead-lettered", LIMIT, async |h| {
            let l = h.letters();
            l.iter()
                .any(|l| l.error_message.contains("enterprise-saas-1y"))
                .then_some(l)
        })
        .await;

    // Every dead letter is an intended bad input, each named.
    let named = |needle: &str| {
        letters
            .iter()
            .filter(|l| l.error_message.contains(needle))
            .count()
    };
    assert_eq!(
        named("Untied Kingdom"),
        1,
        "the edge's rejection: {letters:#?}"
    );
    assert!(letters
        .iter()
        .any(|l| l.error_message.contains("Untied Kingdom") && l.from_feed()));
    assert_eq!(
        named("LeadCaptured.company"),
        2,
        "the incomplete lead, once per lead app: {letters:#?}"
    );
    assert_eq!(named("enterprise-saas-1y"), 1);
    assert_eq!(letters.len(), 4, "nothing else dead-lettered: {letters:#?}");
    let m = hub.state("marketo").await;
    assert!(!m["leads"]
        .as_object()
        .unwrap()
        .values()
        .any(|l| l["email"] == "nocompany@example.com"));
    let s = hub.state("salesforce").await;
    assert!(!sf_records(&s, "Lead")
        .iter()
        .any(|l| l["Email"] == "nocompany@example.com"));

    // No echo: the orders topic holds the store's two orders and the two deals, nothing the
    // hub's own writes caused.
    let orders = read_all(&client(&b), &hub.orders, Duration::from_secs(20)).unwrap();
    assert_eq!(
        orders.len(),
        4,
        "web order, enterprise order, deal, renewal"
    );
}

/// A self-managed web-store purchase of `email`'s new account, through to its Zuora number
/// mirrored in the customers app: (account, customers-app id, Zuora number).
async fn self_managed_purchase(hub: &Hub, email: &str) -> (String, String, String) {
    let post = reqwest::Method::POST;
    let acct = hub
        .customers(
            post.clone(),
            "/api/v1/accounts",
            json!({"email": email, "name": "Linus", "country": "Finland"}),
        )
        .await;
    let account = acct["id"].as_str().unwrap().to_string();
    let sub = hub
        .customers(
            post,
            "/api/v1/purchases",
            json!({"account_id": account, "deployment": "self_managed", "plan": "premium", "seats": 5}),
        )
        .await;
    assert_eq!(sub["license"]["status"], "pending_terms");
    let id = sub["id"].as_str().unwrap().to_string();
    let number = hub
        .until(
            "the subscription mirrored with its Zuora number",
            LIMIT,
            async |h| {
                let c = h
                    .customers(
                        reqwest::Method::GET,
                        &format!("/api/v1/subscriptions/{id}"),
                        Value::Null,
                    )
                    .await;
                Some(c["zuora_subscription_number"].as_str()?.to_string())
            },
        )
        .await;
    hub.until(
        "registered with the license service, waiting for its terms",
        LIMIT,
        async |h| {
            let l = h.state("license").await;
            (l["licenses"][&number]["status"] == "pending_terms").then_some(())
        },
    )
    .await;
    (account, id, number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_c_terms_accepted_in_the_customers_app_issue_the_license_held_while_silent() {
    let b = require_kafka!();
    let hub = start_hub(&b).await;
    let post = reqwest::Method::POST;

    // Default profile: accepted → issued once → shown in the customers app.
    let (_, id, number) = self_managed_purchase(&hub, "linus@example.com").await;
    hub.customers(
        post.clone(),
        &format!("/api/v1/subscriptions/{id}/eula"),
        json!({"accepted_by": "linus@example.com"}),
    )
    .await;
    let key = hub
        .until("the license shown in the customers app", LIMIT, async |h| {
            let c = h
                .customers(
                    reqwest::Method::GET,
                    &format!("/api/v1/subscriptions/{id}"),
                    Value::Null,
                )
                .await;
            (c["license"]["status"] == "issued").then(|| c["license"]["key"].clone())
        })
        .await;
    let l = hub.state("license").await;
    assert_eq!(
        l["licenses"][&number]["key"], key,
        "the service's key is shown"
    );
    assert_eq!(hub.license_events(&number), ["LicenseIssued"]);

    // Silent in Zuora: accepted, held, nothing shown; lifted in Zuora: released and shown.
    let (account, id, number) = self_managed_purchase(&hub, "tove@example.com").await;
    let zuora_account = format!("{account}-INC");
    hub.zuora_profile(&zuora_account, "Silent").await;
    hub.until(
        "the license service told of the Silent profile",
        LIMIT,
        async |h| {
            let l = h.state("license").await;
            (l["licenses"][&number]["communication_profile"] == "Silent").then_some(())
        },
    )
    .await;
    hub.customers(
        post.clone(),
        &format!("/api/v1/subscriptions/{id}/eula"),
        json!({"accepted_by": "tove@example.com"}),
    )
    .await;
    hub.until("the license held", LIMIT, async |h| {
        (h.license_events(&number) == ["LicenseHeld"]).then_some(())
    })
    .await;
    let c = hub
        .customers(
            reqwest::Method::GET,
            &format!("/api/v1/subscriptions/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(c["license"]["key"], Value::Null, "held: no key shown");
    hub.zuora_profile(&zuora_account, "Default").await;
    hub.until("the license released and shown", LIMIT, async |h| {
        let c = h
            .customers(
                reqwest::Method::GET,
                &format!("/api/v1/subscriptions/{id}"),
                Value::Null,
            )
            .await;
        (c["license"]["status"] == "issued").then_some(())
    })
    .await;
    assert_eq!(
        hub.license_events(&number),
        ["LicenseHeld", "LicenseIssued"]
    );
    assert!(
        hub.letters().is_empty(),
        "nothing dead-lettered: {:#?}",
        hub.letters()
    );
}
