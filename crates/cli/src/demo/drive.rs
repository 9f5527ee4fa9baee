//! The year, step by step: the clock moved, each customer's calls made over the apps' APIs,
//! then a wait until the hub is quiet, with a progress display that log lines never break.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use l2f_bus::clock::ManualClock;
use l2f_connector_kit::{PipelineView, Pipelines, ViewCounts};
use reqwest::Method;
use serde_json::{json, Value};

use super::apps::AppsHttp;
use super::scenario::{step_date, Action, Bad, Customer, Kind, Scenario, STEPS};
use super::{activity, per_connector};

/// How long the pipelines must stay unchanged for the hub to count as quiet: a few of the
/// sources' poll intervals and Zuora's callout retry.
const QUIET: Duration = Duration::from_millis(500);
/// How long no new pipeline may appear before the hub counts as started (a connector whose
/// first call met a fault starts its pipelines a little later).
const STARTED: Duration = Duration::from_secs(2);
/// How long a later action waits for the record it acts on (a mirror still on its way).
const LOOKUP: Duration = Duration::from_secs(10);
/// How long one step may take to become quiet before the demo calls the hub stalled.
const STALL: Duration = Duration::from_secs(60);

/// What the demo made of a customer in the apps.
#[derive(Debug, Clone, Default)]
pub struct Made {
    /// The customers app's account id, or the Salesforce Account id of a deal.
    pub account: String,
    /// The order id: the customers app's subscription id, or the Opportunity id.
    pub order: Option<String>,
    /// The renewal Opportunity of an account that moved country.
    pub renewal: Option<String>,
}

/// Counts of what the demo asked the apps to do.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// Per kind of call (`store purchase`, `EULA accepted`, ...).
    pub calls: BTreeMap<&'static str, usize>,
}

/// Where the driver sees the hub's pipelines: in this process (the demo), or read over
/// other processes' `/status` (the soak).
pub trait Watch: Send + Sync {
    /// Every pipeline's counters now.
    fn views(&self) -> Vec<PipelineView>;
}

impl Watch for Pipelines {
    fn views(&self) -> Vec<PipelineView> {
        Pipelines::views(self)
    }
}

/// How the hub's clock follows the apps' when the driver moves it.
pub enum HubClock {
    /// The hub runs in this process on this clock: set beside the apps'.
    Shared(Arc<ManualClock>),
    /// The hub's processes read the apps' clock (`clock.source = "follow"`) every so often:
    /// the driver waits that long, three times over, before it acts on a new date.
    Follows(Duration),
}

/// Drives the planned year.
pub struct Driver<'a> {
    apps: &'a AppsHttp,
    pipelines: &'a dyn Watch,
    clock: HubClock,
    /// What each customer (by number) became.
    pub made: BTreeMap<usize, Made>,
    /// What was asked.
    pub asked: Asked,
    bar: ProgressBar,
    events_at_start: u64,
    outage: Option<Outage>,
    after_actions: Option<AfterActions>,
}

/// Called with a step's number once its customers have acted, before the hub settles: where
/// the soak makes its faults.
pub type AfterActions = Box<dyn FnMut(usize) + Send>;

/// An app taken down at a step for a wall-clock while, then given back its usual faults.
struct Outage {
    app: &'static str,
    step: usize,
    lasts: Duration,
    faults_after: Vec<l2f_mocks::kit::FaultRule>,
}

impl<'a> Driver<'a> {
    /// A driver over `apps`, watching `pipelines`, moving the hub's `clock` with the apps'.
    pub fn new(apps: &'a AppsHttp, pipelines: &'a dyn Watch, clock: HubClock) -> Self {
        let bar = ProgressBar::with_draw_target(Some(STEPS as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:27} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            apps,
            pipelines,
            clock,
            made: BTreeMap::new(),
            asked: Asked::default(),
            bar,
            events_at_start: 0,
            outage: None,
            after_actions: None,
        }
    }

    /// Takes `app` down at `step` for `lasts` (every call answered 503 with Retry-After),
    /// then puts `faults_after` back.
    pub fn outage(
        &mut self,
        app: &'static str,
        step: usize,
        lasts: Duration,
        faults_after: Vec<l2f_mocks::kit::FaultRule>,
    ) {
        self.outage = Some(Outage {
            app,
            step,
            lasts,
            faults_after,
        });
    }

    /// Calls `f` with each step's number after its customers acted.
    pub fn after_actions(&mut self, f: AfterActions) {
        self.after_actions = Some(f);
    }

    /// Starts the outage planned for step `k`, if any; a task ends it.
    async fn start_outage(&self, k: usize) -> Result<()> {
        let Some(o) = self.outage.as_ref().filter(|o| o.step == k) else {
            return Ok(());
        };
        let down = serde_json::to_value(l2f_mocks::kit::FaultRule::on(
            "",
            l2f_mocks::kit::FaultAction::Status {
                status: 503,
                retry_after: Some(1),
            },
        ))?;
        self.apps
            .admin(o.app, "/__admin/faults", Some(down))
            .await?;
        self.line(format!(
            "{} is down (every call answered 503) for {:?}",
            o.app, o.lasts
        ));
        let base = self.apps.base(o.app)?.to_string();
        let (lasts, after, app) = (o.lasts, o.faults_after.clone(), o.app);
        tokio::spawn(async move {
            tokio::time::sleep(lasts).await;
            let http = reqwest::Client::new();
            let url = format!("{base}/__admin/faults");
            let mut ok = http.delete(&url).send().await.is_ok();
            for rule in &after {
                ok &= http.post(&url).json(rule).send().await.is_ok();
            }
            if ok {
                tracing::info!(app, "outage over");
            } else {
                tracing::error!(app, "the outage could not be ended");
            }
        });
        Ok(())
    }

    /// Records the hub's sinks retried (transient failures, outages waited out).
    pub fn retries(&self) -> u64 {
        self.pipelines
            .views()
            .iter()
            .map(|p| match p.counts {
                ViewCounts::Sink { retries, .. } => retries,
                ViewCounts::Source { .. } => 0,
            })
            .sum()
    }

    fn count(&mut self, what: &'static str) {
        *self.asked.calls.entry(what).or_insert(0) += 1;
    }

    /// A line above the display (or on stdout when there is no terminal).
    fn line(&self, s: String) {
        if self.bar.is_hidden() {
            println!("{s}");
        } else {
            self.bar.println(s);
        }
    }

    /// Runs every step of `plan`.
    pub async fn year(&mut self, plan: &Scenario) -> Result<()> {
        self.ready().await?;
        let start = Instant::now();
        self.events_at_start = activity(&self.pipelines.views()).work;
        for k in 0..STEPS {
            let date = step_date(k);
            let step_start = Instant::now();
            let at = format!("{date}T09:00:00Z");
            self.apps.set_clock(&at).await?;
            match &self.clock {
                HubClock::Shared(c) => {
                    c.set(chrono::DateTime::parse_from_rfc3339(&at)?.with_timezone(&chrono::Utc))
                }
                HubClock::Follows(every) => tokio::time::sleep(*every * 3).await,
            }
            self.start_outage(k).await?;
            for c in plan.customers.iter().filter(|c| c.joined == k) {
                self.arrive(c, &date.to_string())
                    .await
                    .with_context(|| format!("{} arriving on {date}", c.email))?;
            }
            for c in &plan.customers {
                for (_, a) in c.later.iter().filter(|(s, _)| *s == k) {
                    self.act(c, a, &date.to_string())
                        .await
                        .with_context(|| format!("{} on {date}: {a:?}", c.email))?;
                }
            }
            for b in plan.bad.iter().filter(|b| b.step() == k) {
                self.bad(b, &date.to_string())
                    .await
                    .with_context(|| format!("bad input {b:?} on {date}"))?;
            }
            let acted = step_start.elapsed();
            if let Some(f) = self.after_actions.as_mut() {
                f(k);
            }
            self.settle(&date.to_string(), start).await?;
            tracing::info!(%date, acted_ms = acted.as_millis() as u64, settled_ms = (step_start.elapsed() - acted).as_millis() as u64, "demo step");
            self.bar.inc(1);
            let per = per_connector(&self.pipelines.views());
            let work = activity(&self.pipelines.views()).work - self.events_at_start;
            self.line(format!(
                "{date}  {:>6} records through the hub ({:>5.0}/s)  {}",
                work,
                work as f64 / start.elapsed().as_secs_f64().max(0.001),
                per.iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(" · ")
            ));
        }
        self.bar.finish_and_clear();
        Ok(())
    }

    /// Waits until every pipeline has started and holds its work: each sink has partitions
    /// assigned and each source its lease, and no new pipeline appeared for a while.
    async fn ready(&self) -> Result<()> {
        let began = Instant::now();
        let mut seen = 0;
        let mut since = Instant::now();
        loop {
            let list = self.pipelines.views();
            let waiting: Vec<String> = list
                .iter()
                .filter(|p| match p.counts {
                    ViewCounts::Sink { joined, .. } => !joined,
                    // A standby holds no lease: only one source of a name is active.
                    ViewCounts::Source { active, .. } => {
                        !active && !list.iter().any(|q| q.name == p.name && q.is_active())
                    }
                })
                .map(|p| p.name.clone())
                .collect();
            if list.len() != seen {
                seen = list.len();
                since = Instant::now();
            } else if waiting.is_empty() && seen > 0 && since.elapsed() >= STARTED {
                self.line(format!(
                    "the hub is up: {seen} pipelines in {:.1} s",
                    began.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            self.bar
                .set_message(format!("starting: waiting for {}", waiting.join(", ")));
            if began.elapsed() > STALL {
                bail!(
                    "pipelines not started within {STALL:?}: {}",
                    waiting.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no pipeline has moved for [`QUIET`], none holds a record, and every
    /// source has read its feed without an error twice since the last move: a source waiting
    /// out a failed poll moves no counter, but it is not done.
    async fn settle(&self, date: &str, start: Instant) -> Result<()> {
        let began = Instant::now();
        let mut last = activity(&self.pipelines.views());
        let mut since = Instant::now();
        let mut read_at = good_polls(&self.pipelines.views());
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = activity(&self.pipelines.views());
            if now != last {
                tracing::debug!(%date, ms = began.elapsed().as_millis() as u64, pipelines = ?per_pipeline(&self.pipelines.views()), "demo settling");
                last = now;
                since = Instant::now();
                read_at = good_polls(&self.pipelines.views());
            } else if now.pending == 0
                && since.elapsed() >= QUIET
                && good_polls(&self.pipelines.views())
                    .iter()
                    .zip(&read_at)
                    .all(|(now, then)| *now >= then + 2)
            {
                return Ok(());
            }
            let work = now.work - self.events_at_start;
            self.bar.set_message(format!(
                "simulated {date}  {work} records ({:.0}/s)",
                work as f64 / start.elapsed().as_secs_f64().max(0.001)
            ));
            if began.elapsed() > STALL {
                bail!("the hub did not become quiet within {STALL:?} on {date}: {now:?}");
            }
        }
    }

    async fn arrive(&mut self, c: &Customer, date: &str) -> Result<()> {
        let post = Method::POST;
        match &c.kind {
            Kind::Lead { form, company } => {
                self.apps
                    .customers(
                        post,
                        form.path(),
                        Some(
                            json!({"email": c.email, "first_name": "Ada", "last_name": c.name,
                                    "company": company, "country": c.country}),
                        ),
                    )
                    .await?;
                self.count("web form (lead)");
                self.made.insert(c.n, Made::default());
            }
            Kind::Store {
                deployment,
                plan,
                seats,
                channel,
                reseller,
            } => {
                let acct = self
                    .apps
                    .customers(
                        post.clone(),
                        "/api/v1/accounts",
                        Some(json!({"email": c.email, "name": c.name, "country": c.country})),
                    )
                    .await?;
                let account = str_of(&acct, "id")?;
                let mut body = json!({"account_id": account, "deployment": deployment,
                                      "plan": plan, "seats": seats, "channel": channel});
                if let Some((name, authorized)) = reseller {
                    body["reseller"] = json!({"name": name, "authorized": authorized});
                }
                let bought = self
                    .apps
                    .customers(post, "/api/v1/purchases", Some(body))
                    .await?;
                self.count(match *channel {
                    "web_store" => "web-store purchase",
                    "aws_marketplace" => "AWS Marketplace purchase",
                    "govuk_digital_marketplace" => "GOV.UK Digital Marketplace purchase",
                    _ => "reseller purchase",
                });
                self.made.insert(
                    c.n,
                    Made {
                        account,
                        order: Some(str_of(&bought, "id")?),
                        renewal: None,
                    },
                );
            }
            Kind::Deal {
                country,
                deployment,
                sku,
                seats,
                party,
            } => {
                let account = self.sf_account(&c.name, country).await?;
                let opp = self
                    .deal(
                        &account,
                        c,
                        date,
                        "New Business",
                        deployment,
                        sku,
                        *seats,
                        party,
                    )
                    .await?;
                self.count("closed-won deal");
                self.made.insert(
                    c.n,
                    Made {
                        account,
                        order: Some(opp),
                        renewal: None,
                    },
                );
            }
        }
        Ok(())
    }

    async fn sf_account(&self, name: &str, country: &str) -> Result<String> {
        let a = self
            .apps
            .salesforce(
                Method::POST,
                "/sobjects/Account",
                Some(json!({"Name": name, "BillingCountryCode": country})),
            )
            .await?;
        str_of(&a, "id")
    }

    #[allow(clippy::too_many_arguments)]
    async fn deal(
        &self,
        account: &str,
        c: &Customer,
        date: &str,
        kind: &str,
        deployment: &str,
        sku: &str,
        seats: u32,
        party: &str,
    ) -> Result<String> {
        let per_seat = if sku.starts_with("ultimate") {
            1188
        } else {
            348
        };
        let mut body = json!({"Name": format!("{} {kind}", c.name), "AccountId": account,
            "StageName": "Closed Won", "CloseDate": date, "Amount": per_seat * seats, "Type": kind,
            "Deployment__c": deployment, "Sku__c": sku, "Seats__c": seats, "Term_Months__c": 12,
            "Party__c": party, "Sold_To_Email__c": c.email});
        if party != "Direct" {
            body["Reseller_Name__c"] = json!(if party == "Authorized Reseller" {
                "Northwind Partners"
            } else {
                "Grey Market Ltd"
            });
        }
        let o = self
            .apps
            .salesforce(Method::POST, "/sobjects/Opportunity", Some(body))
            .await?;
        str_of(&o, "id")
    }

    /// The customers app's id of a customer's subscription (a deal's is the hub's mirror),
    /// waiting a little for a mirror still on its way.
    async fn app_subscription(&self, c: &Customer) -> Result<String> {
        eventually(|| self.app_subscription_now(c)).await
    }

    async fn app_subscription_now(&self, c: &Customer) -> Result<String> {
        let made = self.made.get(&c.n).context("customer not made")?;
        let order = made.order.clone().context("no order")?;
        if matches!(c.kind, Kind::Store { .. }) {
            return Ok(order);
        }
        let list = self
            .apps
            .customers(
                Method::GET,
                &format!("/api/v1/subscriptions?account_id={}", made.account),
                None,
            )
            .await?;
        list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|s| s["order_id"] == order.as_str()))
            .and_then(|s| s["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("the deal {order} is not mirrored in the customers app"))
    }

    /// The Zuora subscription (as Zuora holds it) of a customer's order, waiting a little
    /// for one still on its way.
    async fn zuora_subscription(&self, c: &Customer) -> Result<Value> {
        eventually(|| self.zuora_subscription_now(c)).await
    }

    async fn zuora_subscription_now(&self, c: &Customer) -> Result<Value> {
        let order = self
            .made
            .get(&c.n)
            .and_then(|m| m.order.clone())
            .context("no order")?;
        let z = self.apps.admin("zuora", "/__admin/state", None).await?;
        z["subscriptions"]
            .as_object()
            .and_then(|m| m.values().find(|s| s["L2fOrderId__c"] == order.as_str()))
            .cloned()
            .with_context(|| format!("order {order} has no Zuora subscription"))
    }

    async fn act(&mut self, c: &Customer, a: &Action, date: &str) -> Result<()> {
        match a {
            Action::AcceptEula => {
                let id = self.app_subscription(c).await?;
                self.apps
                    .customers(
                        Method::POST,
                        &format!("/api/v1/subscriptions/{id}/eula"),
                        Some(json!({"accepted_by": c.email})),
                    )
                    .await?;
                self.count("EULA accepted");
            }
            Action::Usage(active, bots, guests) => {
                let id = self.app_subscription(c).await?;
                self.apps
                    .customers(
                        Method::POST,
                        &format!("/api/v1/subscriptions/{id}/usage"),
                        Some(
                            json!({"active_users": active, "service_bots": bots, "guests": guests}),
                        ),
                    )
                    .await?;
                self.count("usage report");
            }
            Action::AutoRenew(on) => {
                let id = self.app_subscription(c).await?;
                self.apps
                    .customers(
                        Method::PUT,
                        &format!("/api/v1/subscriptions/{id}/auto-renew"),
                        Some(json!({"auto_renew": on})),
                    )
                    .await?;
                self.count(if *on {
                    "auto-renew turned on"
                } else {
                    "auto-renew turned off"
                });
            }
            Action::Cancel(reason) => {
                let id = self.app_subscription(c).await?;
                self.apps
                    .customers(
                        Method::POST,
                        &format!("/api/v1/subscriptions/{id}/cancel"),
                        Some(json!({"reason": reason})),
                    )
                    .await?;
                self.count("cancellation");
            }
            Action::AddSeats(more) => {
                let z = self.zuora_subscription(c).await?;
                let number = str_of(&z, "subscriptionNumber")?;
                let account = str_of(&z, "accountNumber")?;
                let plan = z["ratePlans"][0].clone();
                let prp = str_of(&plan, "productRatePlanId")?;
                let now = plan["quantity"].as_f64().unwrap_or(1.0) as u32;
                self.apps
                    .zuora(
                        Method::POST,
                        "/v1/orders",
                        Some(json!({
                            "orderDate": date,
                            "existingAccountNumber": account,
                            "subscriptions": [{
                                "subscriptionNumber": number,
                                "orderActions": [{
                                    "type": "UpdateProduct",
                                    "triggerDates": [
                                        {"name": "ContractEffective", "triggerDate": date},
                                        {"name": "ServiceActivation", "triggerDate": date},
                                        {"name": "CustomerAcceptance", "triggerDate": date}
                                    ],
                                    "updateProduct": {
                                        "productRatePlanId": prp,
                                        "chargeUpdates": [{"pricing": {"recurringPerUnit": {"quantity": now + more}}}]
                                    }
                                }]
                            }]
                        })),
                    )
                    .await?;
                self.count("seats added in Zuora");
            }
            Action::Silent => {
                let z = self.zuora_subscription(c).await?;
                let account = str_of(&z, "accountNumber")?;
                self.apps
                    .zuora(
                        Method::PUT,
                        &format!("/v1/accounts/{account}"),
                        Some(json!({"communicationProfileId": "Silent"})),
                    )
                    .await?;
                self.count("Zuora profile set Silent");
            }
            Action::DeclineCard => {
                let z = self.zuora_subscription(c).await?;
                let account = str_of(&z, "accountNumber")?;
                self.apps
                    .zuora(
                        Method::PUT,
                        &format!("/v1/accounts/{account}"),
                        Some(json!({"autoPay": true})),
                    )
                    .await?;
                self.apps
                    .admin(
                        "zuora",
                        &format!("/__admin/accounts/{account}/card"),
                        Some(json!({"declines": true, "gatewayResponseCode": "05", "gatewayResponse": "Do not honor"})),
                    )
                    .await?;
                self.count("card on file declines");
            }
            Action::MoveAndRenew(country) => {
                let Kind::Deal {
                    deployment,
                    sku,
                    seats,
                    party,
                    ..
                } = &c.kind
                else {
                    bail!("only a deal's account moves");
                };
                let account = self.made.get(&c.n).context("not made")?.account.clone();
                self.apps
                    .salesforce(
                        Method::PATCH,
                        &format!("/sobjects/Account/{account}"),
                        Some(json!({"BillingCountryCode": country})),
                    )
                    .await?;
                let opp = self
                    .deal(&account, c, date, "Renewal", deployment, sku, *seats, party)
                    .await?;
                if let Some(m) = self.made.get_mut(&c.n) {
                    m.renewal = Some(opp);
                }
                self.count("renewal deal after a move (entity change)");
            }
        }
        Ok(())
    }

    async fn bad(&mut self, b: &Bad, date: &str) -> Result<()> {
        let post = Method::POST;
        let form = |email: &str, company: Option<&str>, country: &str| json!({"email": email, "first_name": "Bad", "last_name": "Input", "company": company, "country": country});
        let nobody = Customer {
            n: 0,
            email: "bad-deal@example.com".into(),
            name: "Bad Deal".into(),
            country: "DE",
            kind: Kind::Lead {
                form: super::scenario::Form::Trial,
                company: String::new(),
            },
            joined: 0,
            later: vec![],
        };
        match b {
            Bad::UnmappableCountry => {
                self.apps
                    .customers(
                        post,
                        "/api/v1/contact-requests",
                        Some(form("typo@example.com", Some("Typo Inc"), "Untied Kingdom")),
                    )
                    .await?;
            }
            Bad::LeadWithoutCompany => {
                self.apps
                    .customers(
                        post,
                        "/api/v1/signups",
                        Some(form("nocompany@example.com", None, "France")),
                    )
                    .await?;
            }
            Bad::UnknownSku => {
                let acct = self
                    .apps
                    .customers(
                        post.clone(),
                        "/api/v1/accounts",
                        Some(json!({"email": "enterprise@example.com", "name": "Enterprise Buyer", "country": "US"})),
                    )
                    .await?;
                let account = str_of(&acct, "id")?;
                self.apps
                    .customers(
                        post,
                        "/api/v1/purchases",
                        Some(json!({"account_id": account, "deployment": "saas", "plan": "enterprise", "seats": 3})),
                    )
                    .await?;
            }
            Bad::UnknownParty => {
                let account = self.sf_account("Distributor Deal GmbH", "DE").await?;
                self.deal(
                    &account,
                    &nobody,
                    date,
                    "New Business",
                    "SaaS",
                    "premium-saas-1y",
                    5,
                    "Distributor",
                )
                .await?;
            }
            Bad::ResellerWithoutName => {
                let account = self.sf_account("Nameless Reseller Deal", "FR").await?;
                let o = self
                    .apps
                    .salesforce(
                        post,
                        "/sobjects/Opportunity",
                        Some(json!({"Name": "Nameless reseller", "AccountId": account,
                            "StageName": "Closed Won", "CloseDate": date, "Amount": 1740, "Type": "New Business",
                            "Deployment__c": "SaaS", "Sku__c": "premium-saas-1y", "Seats__c": 5, "Term_Months__c": 12,
                            "Party__c": "Unauthorized Reseller", "Sold_To_Email__c": "nameless@example.com"})),
                    )
                    .await?;
                str_of(&o, "id")?;
            }
        }
        self.count("bad input");
        Ok(())
    }
}

/// `lookup`'s answer, asked again every 100 ms for up to [`LOOKUP`] while it fails.
async fn eventually<T, F: std::future::Future<Output = Result<T>>>(
    mut lookup: impl FnMut() -> F,
) -> Result<T> {
    let deadline = Instant::now() + LOOKUP;
    loop {
        match lookup().await {
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            r => return r,
        }
    }
}

/// A string field of an answer, or an error naming it.
fn str_of(v: &Value, field: &str) -> Result<String> {
    v[field]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {field} in {v}"))
}

/// Work done so far per pipeline name (for the log while a step settles).
fn per_pipeline(views: &[PipelineView]) -> Vec<(String, u64)> {
    views
        .iter()
        .map(|v| {
            let n = match v.counts {
                ViewCounts::Sink {
                    handled,
                    dead_lettered,
                    ..
                } => handled + dead_lettered,
                ViewCounts::Source { records, .. } => records,
            };
            (v.name.clone(), n)
        })
        .collect()
}

/// Each active source's polls that succeeded, in the pipelines' order.
fn good_polls(views: &[PipelineView]) -> Vec<u64> {
    views
        .iter()
        .filter_map(|v| match v.counts {
            ViewCounts::Source {
                active: true,
                polls,
                failed_polls,
                ..
            } => Some(polls.saturating_sub(failed_polls)),
            _ => None,
        })
        .collect()
}
