//! The per-app clients against the mocks on real loopback sockets: token fetch, reuse,
//! and refresh after the server expires every token.

use l2f_mocks::client::{
    ClientError, MailClient, MarketoClient, OwnApiClient, SalesforceClient, Secret, Upserted,
    ZuoraClient,
};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_mocks::{marketo, salesforce, zuora};
use reqwest::Method;
use serde_json::json;

async fn serve() -> (Running, reqwest::Client) {
    let mut cfg = MocksConfig::default();
    cfg.without_https();
    (
        server::start(&cfg).await.expect("start"),
        reqwest::Client::new(),
    )
}

fn url(r: &Running, app: &str) -> String {
    r.endpoint(app).expect("endpoint").http.clone()
}

async fn expire(http: &reqwest::Client, base: &str) {
    let s = http
        .post(format!("{base}/__admin/tokens/expire"))
        .send()
        .await
        .expect("expire")
        .status();
    assert_eq!(s, 204);
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s} {s:?}"), "*** ***");
    assert_eq!(s.expose(), "hunter2");
}

#[tokio::test]
async fn salesforce_client_refreshes_its_session_after_a_401() {
    let (running, http) = serve().await;
    let base = url(&running, "salesforce");
    let c = salesforce::Config::default();
    let sf = SalesforceClient::new(
        http.clone(),
        &base,
        &c.client_id,
        Secret::new(&c.client_secret),
        Some((c.username.clone(), Secret::new(&c.password))),
    );
    let id = sf
        .create("Account", &json!({ "Name": "Acme" }))
        .await
        .expect("create");
    expire(&http, &base).await;
    sf.update(
        "Account",
        &id,
        &json!({ "Website": "https://acme.example" }),
    )
    .await
    .expect("update after refresh");
    assert_eq!(
        sf.get("Account", &id).await.expect("get")["Website"],
        "https://acme.example"
    );
    assert!(matches!(
        sf.upsert(
            "Account",
            "L2f_Account_Id__c",
            "A/1",
            &json!({ "Name": "Slash" })
        )
        .await,
        Ok(Upserted::Created(_))
    ));
    assert_eq!(
        sf.upsert(
            "Account",
            "L2f_Account_Id__c",
            "A/1",
            &json!({ "Name": "Slash 2" })
        )
        .await
        .expect("upsert"),
        Upserted::Updated
    );
    let rows = sf
        .query("SELECT Id, Name FROM Account WHERE L2f_Account_Id__c = 'A/1'")
        .await
        .expect("query");
    assert_eq!(rows[0]["Name"], "Slash 2");
    let err = sf
        .create("Account", &json!({}))
        .await
        .expect_err("missing Name");
    assert!(matches!(err, ClientError::Api { status: 400, .. }), "{err}");

    let wrong = SalesforceClient::new(http, &base, &c.client_id, Secret::new("nope"), None);
    assert!(matches!(
        wrong.create("Account", &json!({ "Name": "x" })).await,
        Err(ClientError::Auth(_))
    ));
    running.shutdown().await;
}

#[tokio::test]
async fn zuora_client_refreshes_and_sends_idempotency_keys() {
    let (running, http) = serve().await;
    let base = url(&running, "zuora");
    let c = zuora::Config::default();
    let z = ZuoraClient::new(
        http.clone(),
        &base,
        &c.client_id,
        Secret::new(&c.client_secret),
    );
    let acct = z.create_account(&json!({ "name": "Acme", "billToContact": { "firstName": "A", "lastName": "B", "country": "US" } })).await.expect("account");
    let number = acct["accountNumber"].as_str().expect("number").to_string();
    expire(&http, &base).await;
    let order = json!({
        "orderDate": "2026-01-01", "existingAccountNumber": number,
        "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": { "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }] } }] }]
    });
    let a = z.create_order(&order, "evt-1").await.expect("order");
    let b = z.create_order(&order, "evt-1").await.expect("replayed");
    assert_eq!(a, b);
    let sub = a["subscriptionNumbers"][0].as_str().expect("sub");
    assert_eq!(z.subscription(sub).await.expect("sub")["status"], "Active");
    let err = z.create_account(&json!({})).await.expect_err("no name");
    assert!(
        matches!(&err, ClientError::Api { status: 200, body, .. } if body["reasons"][0]["code"] == 50000022),
        "{err}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn marketo_client_refreshes_on_602() {
    let (running, http) = serve().await;
    let base = url(&running, "marketo");
    let c = marketo::Config::default();
    let m = MarketoClient::new(
        http.clone(),
        &base,
        &c.client_id,
        Secret::new(&c.client_secret),
    );
    let lead = json!({ "email": "a@example.com", "firstName": "A", "lastName": "B", "company": "C", "country": "US", "leadSource": "Web" });
    assert_eq!(
        m.push_leads(std::slice::from_ref(&lead), "email")
            .await
            .expect("push")[0]["status"],
        "created"
    );
    expire(&http, &base).await;
    assert_eq!(
        m.push_leads(&[lead], "email")
            .await
            .expect("push after refresh")[0]["status"],
        "updated"
    );
    let err = m
        .push_leads(&[json!({ "email": "x@example.com", "bogus": 1 })], "email")
        .await
        .expect_err("1006");
    assert!(
        matches!(&err, ClientError::Api { body, .. } if body["errors"][0]["code"] == "1006"),
        "{err}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn mail_and_own_api_clients() {
    let (running, http) = serve().await;
    let mail = MailClient::new(
        http.clone(),
        url(&running, "mail"),
        "mg.l2f.example",
        Secret::new("key-l2f-mock"),
    );
    let id = mail
        .send(
            "licensing@mg.l2f.example",
            &["ada@example.com"],
            "Your license",
            "key",
        )
        .await
        .expect("send");
    assert!(id.ends_with("@mg.l2f.example>"));
    let bad = MailClient::new(
        http.clone(),
        url(&running, "mail"),
        "mg.l2f.example",
        Secret::new("nope"),
    );
    assert!(matches!(
        bad.send("a@b.example", &["c@d.example"], "s", "t").await,
        Err(ClientError::Auth(_))
    ));

    let customers = OwnApiClient::new(
        http.clone(),
        "customers",
        url(&running, "customers"),
        Secret::new("l2f-customers-token"),
    );
    customers
        .call(
            Method::POST,
            "/api/v1/trials",
            Some(&json!({ "email": "t@example.com", "country": "UK" })),
        )
        .await
        .expect("trial");
    let (events, next) = customers.events(0).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(next, 1);
    assert!(customers.events(next).await.expect("events").0.is_empty());
    let err = customers
        .call(
            Method::POST,
            "/api/v1/trials",
            Some(&json!({ "email": "not-an-address", "country": "Narnia" })),
        )
        .await
        .expect_err("email");
    assert!(
        matches!(&err, ClientError::Api { status: 422, .. }),
        "{err}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn transient_statuses_carry_retry_after() {
    let mut cfg = MocksConfig::default();
    cfg.only(&["license".into()]).expect("only");
    cfg.license.listen.https_port = None;
    cfg.license.faults = vec![l2f_mocks::kit::FaultRule {
        path: "/api/".into(),
        method: None,
        action: l2f_mocks::kit::FaultAction::Status {
            status: 429,
            retry_after: Some(3),
        },
        nth: None,
        times: Some(1),
        seen: 0,
        fired: 0,
    }];
    let running = server::start(&cfg).await.expect("start");
    let lic = OwnApiClient::new(
        reqwest::Client::new(),
        "license",
        url(&running, "license"),
        Secret::new("l2f-license-token"),
    );
    let err = lic.events(0).await.expect_err("429");
    assert!(
        matches!(
            err,
            ClientError::Status {
                status: 429,
                retry_after: Some(3),
                ..
            }
        ),
        "{err}"
    );
    assert!(lic.events(0).await.is_ok());
    running.shutdown().await;
}
