//! The demo's account of the year: events per topic, effects per app read back over the
//! apps, each beside what the plan expects, dead letters by reason, notices by step and
//! sender, and the reconciliation of the event log against Zuora, Salesforce and the
//! customers app. Every line is a count of the plan's making (no ids, no timings), so the
//! same seed prints the same summary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use l2f_bus::dlq::DeadLetter;
use l2f_bus::headers::EVENT_TYPE;
use l2f_bus::reader::read_all;
use l2f_bus::BusConfig;
use l2f_connector_zuora::mapping::Notification;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use rdkafka::ClientConfig;
use serde_json::Value;

use super::apps::AppsHttp;
use super::drive::Driver;
use super::scenario::{Action, Kind, Scenario};
use super::ZUORA_TENANT;

/// How long a read of a topic may wait without progress.
const READ: Duration = Duration::from_secs(10);
/// How long the demo waits for the last effects before it counts what is missing.
const LAST_EFFECTS: Duration = Duration::from_secs(20);

/// One line of the effects table.
pub struct Line {
    /// The app read back.
    pub app: &'static str,
    /// What was counted.
    pub what: &'static str,
    /// What the plan expects.
    pub expected: usize,
    /// What the app holds.
    pub held: usize,
}

/// The account's outcome: the exit code and the effects table, for the soak's own table.
pub struct Summary {
    /// 0 when everything is accounted for and nothing drifted.
    pub code: i32,
    /// Effects per app, expected vs held.
    pub lines: Vec<Line>,
    /// Dead letters beyond the intended bad inputs, or intended ones missing.
    pub letters_off: usize,
    /// The reconciliation found drift.
    pub drift: bool,
    /// Faults the apps injected.
    pub faults: u64,
}

/// Counts what the apps hold, as lines beside what the plan expects.
async fn effects(apps: &AppsHttp, plan: &Scenario, events: &Events) -> Result<Vec<Line>> {
    let mut store = 0;
    let mut deals = 0;
    let mut self_managed = 0;
    let mut leads = BTreeSet::new();
    let mut renewals = 0;
    for c in &plan.customers {
        match &c.kind {
            Kind::Lead { .. } => {
                leads.insert(c.email.clone());
            }
            Kind::Store { deployment, .. } => {
                store += 1;
                self_managed += usize::from(*deployment == "self_managed");
            }
            Kind::Deal { deployment, .. } => {
                deals += 1;
                self_managed += usize::from(*deployment == "Self-Managed");
            }
        }
        renewals += c
            .later
            .iter()
            .filter(|(_, a)| matches!(a, Action::MoveAndRenew(_)))
            .count();
    }
    let subscriptions = store + deals + renewals;
    let z = apps.admin("zuora", "/__admin/state", None).await?;
    // Every notification Zuora sent that the source maps (or cannot read: a dead letter),
    // beside the events carrying its id and the source's dead letters: one each.
    let sent: BTreeSet<uuid::Uuid> =
        z["callout_history"]
            .as_array()
            .map_or_else(BTreeSet::new, |rows| {
                rows.iter()
                    .filter_map(|r| {
                        let id = r["notificationId"].as_str()?;
                        Notification::parse(id, &r["eventContext"])
                            .map_or(true, |n| n.mapped())
                            .then(|| l2f_contracts::record::event_id("zuora", ZUORA_TENANT, id))
                    })
                    .collect()
            });
    let from_zuora = events
        .decoded
        .iter()
        .filter(|e| sent.contains(&e.envelope().event_id))
        .count()
        + events
            .letters
            .iter()
            .filter(|l| l.source_topic == l2f_connector_zuora::source::DEAD_LETTER_ORIGIN)
            .count();
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    let sf_subs = apps
        .soql("SELECT Id FROM Zuora__Subscription__c")
        .await?
        .len();
    let sf_leads = apps
        .soql("SELECT Id, Email FROM Lead")
        .await?
        .iter()
        .filter_map(|l| l["Email"].as_str().map(str::to_string))
        .filter(|e| leads.contains(e))
        .count();
    let m = apps.admin("marketo", "/__admin/state", None).await?;
    let marketo = m["leads"].as_object().map_or(0, |m| {
        m.values()
            .filter(|l| l["email"].as_str().is_some_and(|e| leads.contains(e)))
            .count()
    });
    let app_subs = apps.customers_subscriptions().await?;
    let lic = apps.admin("license", "/__admin/state", None).await?;
    let licenses = count(&lic["licenses"]);
    let issued = lic["licenses"]
        .as_object()
        .map_or(0, |m| m.values().filter(|l| l["key"].is_string()).count());
    let mail = apps.admin("mail", "/__admin/messages", None).await?;
    let listed = mail
        .as_array()
        .or_else(|| mail["items"].as_array())
        .or_else(|| mail["messages"].as_array())
        .cloned()
        .unwrap_or_default();
    let messages = listed.len();
    // An email twice: two messages with one idempotency key, or to one recipient with the
    // same text (a second key for the same email).
    let keys: BTreeSet<String> = listed
        .iter()
        .map(|m| {
            m["user-variables"]["l2f-key"]
                .as_str()
                .map_or_else(|| format!("{}|{}", m["to"], m["text"]), str::to_string)
        })
        .collect();
    let texts: BTreeSet<String> = listed
        .iter()
        .map(|m| format!("{}|{}|{}", m["to"], m["subject"], m["text"]))
        .collect();
    let twice = messages - keys.len().min(texts.len());
    let license_mails = listed
        .iter()
        .filter(|m| m["user-variables"]["l2f-template"].as_str() == Some("license"))
        .count();
    Ok(vec![
        Line {
            app: "marketo",
            what: "leads from the forms",
            expected: leads.len(),
            held: marketo,
        },
        Line {
            app: "salesforce",
            what: "leads from the forms",
            expected: leads.len(),
            held: sf_leads,
        },
        Line {
            app: "zuora",
            what: "subscriptions (store, deals, renewal after a move)",
            expected: subscriptions,
            held: count(&z["subscriptions"]),
        },
        Line {
            app: "zuora",
            what: "notifications sent, each one event or dead letter",
            expected: sent.len(),
            held: from_zuora,
        },
        Line {
            app: "salesforce",
            what: "Zuora__Subscription__c mirrored",
            expected: subscriptions,
            held: sf_subs,
        },
        Line {
            app: "customers",
            what: "subscriptions (the bad SKU's included)",
            expected: subscriptions + 1,
            held: app_subs.len(),
        },
        Line {
            app: "customers",
            what: "subscriptions with their Zuora number",
            expected: subscriptions,
            held: app_subs
                .iter()
                .filter(|s| s["zuora_subscription_number"].is_string())
                .count(),
        },
        Line {
            app: "license",
            what: "self-managed subscriptions registered",
            expected: self_managed,
            held: licenses,
        },
        Line {
            app: "license",
            what: "licenses issued (= distinct LicenseIssued events)",
            expected: events.of("LicenseIssued"),
            held: issued,
        },
        Line {
            app: "mail",
            what: "emails sent (= distinct EmailSent events)",
            expected: events.of("EmailSent"),
            held: messages,
        },
        Line {
            app: "mail",
            what: "license emails (= distinct LicenseIssued events)",
            expected: events.of("LicenseIssued"),
            held: license_mails,
        },
        Line {
            app: "mail",
            what: "emails sent twice (same key, or same text)",
            expected: 0,
            held: twice,
        },
    ])
}

/// Every topic's records, decoded where they are events.
struct Events {
    by_topic: BTreeMap<String, BTreeMap<String, usize>>,
    decoded: Vec<AnyEvent>,
    /// The dead-letter topic's letters.
    letters: Vec<DeadLetter>,
}

impl Events {
    /// The decoded events, each event id once (its first record): a connector that produces
    /// an output again after a redelivery (the mail sink's `EmailSent` for an email found
    /// already sent) gives it the same id, a duplicate every reader recognises, not a second
    /// effect. The per-topic counts stay counts of records.
    fn distinct(&self) -> impl Iterator<Item = &AnyEvent> {
        let mut seen = BTreeSet::new();
        self.decoded
            .iter()
            .filter(move |e| seen.insert(e.envelope().event_id))
    }

    /// Distinct events of type `event`.
    fn of(&self, event: &str) -> usize {
        self.distinct().filter(|e| e.name() == event).count()
    }
}

fn read_events(client: &ClientConfig, cfg: &BusConfig, topics: &[String]) -> Result<Events> {
    let codec = Codec::new();
    let mut by_topic = BTreeMap::new();
    let mut decoded = Vec::new();
    let letters = read_all(client, &cfg.dead_letter.topic, READ)?
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect();
    for t in topics {
        if *t == cfg.dead_letter.topic || *t == cfg.sources.offsets_topic {
            continue;
        }
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for r in read_all(client, t, READ)? {
            let kind = r.header_str(EVENT_TYPE).unwrap_or("(state)").to_string();
            *kinds.entry(kind).or_insert(0) += 1;
            if let Some(e) = r
                .payload
                .as_deref()
                .and_then(|p| AnyEvent::decode(&codec, p).ok())
            {
                decoded.push(e);
            }
        }
        by_topic.insert(t.clone(), kinds);
    }
    Ok(Events {
        by_topic,
        decoded,
        letters,
    })
}

/// Prints the summary; answers the exit code (0: everything accounted for, no drift).
pub async fn summarise(
    client: &ClientConfig,
    cfg: &BusConfig,
    apps: &AppsHttp,
    plan: &Scenario,
    driver: &Driver<'_>,
    ran: Duration,
) -> Result<Summary> {
    let topics: Vec<String> = l2f_bus::topics::Catalog::embedded()
        .topics
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let fired = apps.faults_fired().await?;
    apps.clear_faults().await?;
    // The last effects may still be on their way (a callout, a mirror write): wait until the
    // apps hold what is expected, or the limit passes and the table shows what is missing.
    let deadline = tokio::time::Instant::now() + LAST_EFFECTS;
    let (events, lines) = loop {
        let (c, conf, t) = (client.clone(), cfg.clone(), topics.clone());
        let events = tokio::task::spawn_blocking(move || read_events(&c, &conf, &t)).await??;
        let lines = effects(apps, plan, &events).await?;
        if lines.iter().all(|l| l.expected == l.held) || tokio::time::Instant::now() >= deadline {
            break (events, lines);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!();
    let total: u64 = fired.values().sum();
    let retries: u64 = driver.retries();
    println!(
        "the year took {:.1} s of wall time; {total} faults injected by the apps ({}); the hub retried {retries} times",
        ran.as_secs_f64(),
        fired
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!("what the customers did (over the apps' APIs):");
    for (what, n) in &driver.asked.calls {
        println!("  {n:>5}  {what}");
    }
    println!();
    println!("events per topic:");
    // The changelogs (state, not events) are left out: how many state records a change
    // makes depends on how the scheduler batched it.
    for (topic, kinds) in events
        .by_topic
        .iter()
        .filter(|(_, k)| !k.contains_key("(state)"))
    {
        let total: usize = kinds.values().sum();
        let detail: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  {topic:<24} {total:>6}  {}", detail.join(", "));
    }
    println!();
    println!("effects per app (read back over each app), expected vs held:");
    let mut unaccounted = 0usize;
    let mut letters_off = 0usize;
    for l in &lines {
        let mark = if l.expected == l.held {
            "ok"
        } else {
            "MISSING OR EXTRA"
        };
        unaccounted += l.expected.abs_diff(l.held);
        println!(
            "  {:<11} {:<52} {:>6} {:>6}  {mark}",
            l.app, l.what, l.expected, l.held
        );
    }

    // Dead letters: each intended bad input by its reason, anything else unexpected.
    let letters = &events.letters;
    println!();
    println!("dead letters by reason, expected vs held:");
    let mut matched = vec![false; letters.len()];
    for b in &plan.bad {
        let held = letters
            .iter()
            .enumerate()
            .filter(|(_, l)| l.error_message.contains(b.needle()))
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        for i in &held {
            matched[*i] = true;
        }
        unaccounted += b.letters().abs_diff(held.len());
        letters_off += b.letters().abs_diff(held.len());
        println!(
            "  {:<70} {:>3} {:>3}  {}",
            b.label(),
            b.letters(),
            held.len(),
            if b.letters() == held.len() {
                "ok"
            } else {
                "MISSING OR EXTRA"
            }
        );
        if let Some(first) = held
            .iter()
            .map(|i| without_sf_ids(&letters[*i].error_message))
            .min()
        {
            println!("      e.g. {first}");
        }
    }
    for (l, _) in letters.iter().zip(&matched).filter(|(_, m)| !**m) {
        unaccounted += 1;
        letters_off += 1;
        println!(
            "  UNEXPECTED from {} ({}): {}",
            l.consumer_group, l.source_topic, l.error_message
        );
    }

    // Notices (rule 7) by step and sender; emails by template; suppressed.
    let mut notices: BTreeMap<(i32, String), usize> = BTreeMap::new();
    let mut templates: BTreeMap<String, usize> = BTreeMap::new();
    let mut suppressed = 0;
    let mut held_licenses = 0;
    for e in events.distinct() {
        match e {
            AnyEvent::RenewalNoticeDue(n) => {
                *notices
                    .entry((n.days_before_term_end, format!("{:?}", n.sender)))
                    .or_insert(0) += 1
            }
            AnyEvent::EmailSent(m) => *templates.entry(m.template.clone()).or_insert(0) += 1,
            AnyEvent::EmailSuppressed(_) => suppressed += 1,
            AnyEvent::LicenseHeld(_) => held_licenses += 1,
            _ => {}
        }
    }
    println!();
    println!("renewal notices (rule 7) by days before the term's end and sender:");
    for ((days, sender), n) in notices.iter().rev() {
        println!("  {days:>3} days  {sender:<14} {n:>5}");
    }
    println!();
    let t: Vec<String> = templates.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "emails by template: {}; held by a Silent profile: {held_licenses} license(s), {suppressed} email(s)",
        t.join(", ")
    );

    // Reconciliation of the log against the apps.
    let rules = Arc::new(l2f_rules::Rules::embedded());
    let (rapps, orders, subscriptions) = crate::cmd_reconcile::apps_of(cfg, &rules, &[])?;
    let opts = l2f_reconcile::Options {
        topics: vec![orders, subscriptions, "licenses".into()],
        timeout: READ,
        dead_letters: Some(cfg.dead_letter.topic.clone()),
    };
    let (report, _) = l2f_reconcile::check(client, &rapps, &opts).await?;
    println!();
    println!(
        "reconciliation: {} events folded into {} subscriptions and {} accounts, compared with {}: {} drift",
        report.folded,
        report.subscriptions,
        report.accounts,
        report.apps.join(", "),
        if report.drifted() { "SOME" } else { "no" },
    );
    if report.drifted() {
        print!("{}", report.table());
    }
    println!();
    println!(
        "summary: {} customers, {} unaccounted, reconciliation {}",
        plan.customers.len(),
        unaccounted,
        if report.drifted() {
            "drift"
        } else {
            "no drift"
        }
    );
    Ok(Summary {
        code: if unaccounted == 0 && !report.drifted() {
            0
        } else {
            1
        },
        lines,
        letters_off,
        drift: report.drifted(),
        faults: total,
    })
}

/// A reason with Salesforce's record ids (18 characters from `00`, given in the order the
/// org saw writes, which the hub makes concurrently) written as `<id>`, so the same seed
/// prints the same line.
fn without_sf_ids(reason: &str) -> String {
    reason
        .split(' ')
        .map(|w| {
            let core = w.trim_end_matches([':', ',', ';']);
            if core.len() == 18
                && core.starts_with("00")
                && core.chars().all(|c| c.is_ascii_alphanumeric())
            {
                w.replacen(core, "<id>", 1)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn salesforce_ids_are_masked_and_other_words_kept() {
        assert_eq!(
            super::without_sf_ids("Opportunity 006000000000453AAA: Party__c = \"Distributor\""),
            "Opportunity <id>: Party__c = \"Distributor\""
        );
        assert_eq!(
            super::without_sf_ids("lead lead_000211 is"),
            "lead lead_000211 is"
        );
    }
}
