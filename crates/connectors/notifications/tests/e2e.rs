//! The notifications scheduler end to end: real Kafka (`KAFKA_BOOTSTRAP`), the connector
//! started as `l2f run` starts it (its `Connector::start` in a kit `Context`) on a
//! [`ManualClock`] the test advances, real Avro subscription events in and `RenewalNoticeDue`
//! read back `read_committed`.
//!
//! - a term walked step by step: every combination of rule 7 gets its exact notices, each on
//!   its day, once;
//! - the scheduler restarted and rebalanced mid-year (a second instance joins, the first
//!   leaves): each notice exactly once;
//! - a year of 200 subscriptions on the simulated clock: exactly the notice set rule 7
//!   computes for each, compared one by one with its sender; the elapsed time is printed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use l2f_bus::clock::{Clock, ManualClock, SharedClock};
use l2f_bus::config::{ConsumerConfig, RetryConfig, SourcesConfig};
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{CancellationToken, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Configured, Connector, Context, KitError, Pipelines};
use l2f_connector_notifications::mapping::due_at;
use l2f_connector_notifications::{NotificationsConfig, NotificationsConnector, StatsHandle};
use l2f_contracts::events::*;
use l2f_contracts::record::Keyed;
use l2f_contracts::{examples, Codec};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique, wait_until};
use l2f_rules::notices::Renewal;
use l2f_rules::Rules;
use tokio::task::JoinHandle;

const PARTITIONS: i32 = 3;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The topics of one test.
struct Bench {
    b: String,
    subscriptions: String,
    notifications: String,
    changelog: String,
    dead_letters: String,
    group: String,
    codec: Arc<Codec>,
    clock: Arc<ManualClock>,
}

/// One running instance of the connector.
struct Instance {
    shutdown: CancellationToken,
    join: JoinHandle<Result<(), KitError>>,
    stats: StatsHandle,
}

impl Instance {
    async fn stop(self) {
        self.shutdown.cancel();
        self.join
            .await
            .expect("joined")
            .expect("the scheduler stopped cleanly");
    }
}

/// A notice as read back: (subscription, days before) → (sender, term end, recipient).
type Notices = BTreeMap<(String, u16), (SourceSystem, NaiveDate, String)>;

impl Bench {
    async fn new(b: &str, start: DateTime<Utc>) -> Bench {
        let bench = Bench {
            b: b.to_string(),
            subscriptions: unique("subscriptions"),
            notifications: unique("notifications"),
            changelog: unique("notifications-schedule"),
            dead_letters: unique("dead-letters"),
            group: unique("g-notifications"),
            codec: Arc::new(Codec::new()),
            clock: ManualClock::at(start),
        };
        for t in [&bench.subscriptions, &bench.notifications, &bench.changelog] {
            create_topic(b, t, PARTITIONS).await;
        }
        create_topic(b, &bench.dead_letters, 1).await;
        bench
    }

    fn start(&self) -> Instance {
        let cfg = NotificationsConfig {
            subscriptions_topic: self.subscriptions.clone(),
            notifications_topic: self.notifications.clone(),
            changelog_topic: self.changelog.clone(),
            group: self.group.clone(),
            tick: Duration::from_millis(20),
            batch_size: 500,
            transaction_timeout: Duration::from_secs(10),
        };
        let connector = NotificationsConnector::build(cfg).unwrap();
        let stats = connector.stats();
        let kafka = client(&self.b);
        let shutdown = CancellationToken::new();
        let clock: SharedClock = self.clock.clone();
        let ctx = Context {
            kafka: kafka.clone(),
            consumer: ConsumerConfig {
                session_timeout: Duration::from_secs(6),
                ..ConsumerConfig::default()
            },
            retry: RetryConfig::default(),
            dead_letter_topic: self.dead_letters.clone(),
            sources: SourcesConfig::default(),
            producer: Producer::new(&kafka).unwrap(),
            codec: self.codec.clone(),
            rules: Arc::new(Rules::embedded()),
            shutdown: shutdown.clone(),
            pipelines: Pipelines::default(),
            clock,
        };
        let join = tokio::spawn(Box::new(connector).start(ctx));
        Instance {
            shutdown,
            join,
            stats,
        }
    }

    fn record<E: Keyed>(&self, e: &E) -> OutRecord {
        event_record(&self.codec, &self.subscriptions, e, None).unwrap()
    }

    async fn send(&self, records: &[OutRecord]) {
        produce(&self.b, records).await;
    }

    /// Every notice committed so far; panics on a notice twice.
    fn notices(&self) -> Notices {
        let records = read_all(
            &client(&self.b),
            &self.notifications,
            Duration::from_secs(20),
        )
        .expect("read notices");
        let mut out = Notices::new();
        for r in &records {
            let n: RenewalNoticeDue = self.codec.decode(r.payload.as_deref().unwrap()).unwrap();
            assert_eq!(r.key_str(), n.subscription_id, "keyed by subscription");
            assert!(
                n.envelope.occurred_at <= self.clock.now(),
                "{} {}-day notice due {} emitted before its time (clock {})",
                n.subscription_id,
                n.days_before_term_end,
                n.envelope.occurred_at,
                self.clock.now()
            );
            let before = out.insert(
                (n.subscription_id.clone(), n.days_before_term_end as u16),
                (n.sender, n.term_end, n.recipient_email.clone()),
            );
            assert!(
                before.is_none(),
                "{} {}-day notice of term {} twice",
                n.subscription_id,
                n.days_before_term_end,
                n.term_end
            );
        }
        out
    }

    /// Waits until the notices are exactly `want` (a notice twice panics on the way).
    async fn expect(&self, want: &Notices, limit: Duration) {
        let ok = wait_until(limit, || self.notices() == *want).await;
        if !ok {
            let got = self.notices();
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
            panic!(
                "at {}: {} notices, {} expected; missing {missing:?}; unexpected {extra:?}",
                self.clock.now(),
                got.len(),
                want.len()
            );
        }
    }
}

/// A subscription of the test: what rule 7 decides on.
#[derive(Clone)]
struct Sub {
    id: String,
    deployment: Deployment,
    auto_renew: bool,
    seat_increase: bool,
    term_start: NaiveDate,
    term_end: NaiveDate,
    email: String,
}

impl Sub {
    fn created(&self, at: DateTime<Utc>) -> SubscriptionCreated {
        let mut c = examples::subscription_created();
        c.envelope.event_id = uuid::Uuid::new_v4();
        c.envelope.occurred_at = at;
        c.subscription_id = self.id.clone();
        c.account_id = format!("acct-{}", self.id);
        c.deployment = self.deployment;
        c.auto_renew = self.auto_renew;
        c.seats = 20;
        c.term_start = self.term_start;
        c.term_end = self.term_end;
        c.bill_to_email = Some(self.email.clone());
        c
    }

    fn amended(&self, at: DateTime<Utc>) -> SubscriptionAmended {
        let mut a = examples::subscription_amended();
        a.envelope.event_id = uuid::Uuid::new_v4();
        a.envelope.occurred_at = at;
        a.subscription_id = self.id.clone();
        a.account_id = format!("acct-{}", self.id);
        a.previous_seats = 20;
        a.seats = 25;
        a.effective_date = at.date_naive();
        a
    }

    /// Rule 7's notices for this subscription, computed by the rules crate.
    fn expected(&self, rules: &Rules) -> Notices {
        rules
            .notices
            .notices(Renewal {
                deployment: self.deployment,
                auto_renew: self.auto_renew,
                seat_increase: self.seat_increase,
            })
            .into_iter()
            .map(|n| {
                (
                    (self.id.clone(), n.days_before),
                    (n.sender, self.term_end, self.email.clone()),
                )
            })
            .collect()
    }
}

fn combos(prefix: &str, term_start: NaiveDate, term_end: NaiveDate) -> Vec<Sub> {
    let mut subs = Vec::new();
    for deployment in [Deployment::Saas, Deployment::SelfManaged] {
        for auto_renew in [false, true] {
            for seat_increase in [false, true] {
                let id = format!(
                    "{prefix}-{}-{}-{}",
                    deployment.symbol(),
                    if auto_renew { "auto" } else { "manual" },
                    if seat_increase { "seats" } else { "flat" }
                );
                subs.push(Sub {
                    email: format!("billing+{}@example.com", subs.len()),
                    id,
                    deployment,
                    auto_renew,
                    seat_increase,
                    term_start,
                    term_end,
                });
            }
        }
    }
    subs
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    due_at(d, 0)
}

/// Each combination of auto-renew × deployment × seat increase over one term, the clock
/// moved to just before and then onto each cadence day: the notices due so far, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_walked_day_by_day_gets_each_combinations_exact_notices_once() {
    let b = require_kafka!();
    let rules = Rules::embedded();
    let (start, end) = (day(2026, 1, 1), day(2026, 12, 31));
    let bench = Bench::new(&b, midnight(start)).await;
    let subs = combos("walk", start, end);
    let instance = bench.start();
    let created: Vec<OutRecord> = subs
        .iter()
        .map(|s| bench.record(&s.created(midnight(start))))
        .collect();
    bench.send(&created).await;
    // Seats added on 1 June for the seat-increase cases.
    bench.clock.set(midnight(day(2026, 6, 1)));
    let amended: Vec<OutRecord> = subs
        .iter()
        .filter(|s| s.seat_increase)
        .map(|s| bench.record(&s.amended(midnight(day(2026, 6, 1)))))
        .collect();
    bench.send(&amended).await;
    let all: Notices = subs.iter().flat_map(|s| s.expected(&rules)).collect();
    // 4 + 4 without auto-renew per deployment, 6 with it, 7 for SaaS with seats added.
    assert_eq!(all.len(), 4 * 4 + 6 * 3 + 7, "8 combinations");
    let mut days: Vec<u16> = all.keys().map(|(_, d)| *d).collect();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    for d in days {
        let due = due_at(end, d);
        bench.clock.set(due - chrono::Duration::seconds(1));
        let so_far: Notices = all
            .iter()
            .filter(|((_, k), _)| *k > d)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        bench.expect(&so_far, Duration::from_secs(30)).await;
        bench.clock.set(due);
        let with_today: Notices = all
            .iter()
            .filter(|((_, k), _)| *k >= d)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        bench.expect(&with_today, Duration::from_secs(30)).await;
        eprintln!(
            "{d:>2} days before the term end: {} notices so far",
            with_today.len()
        );
    }
    // Past the term end: nothing more, nothing twice.
    bench.clock.set(midnight(day(2027, 3, 1)));
    // Absence cannot be polled for: give the scheduler a few ticks to do anything wrong.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bench.expect(&all, Duration::from_secs(10)).await;
    for s in &subs {
        let got: Vec<(u16, SourceSystem)> = bench
            .notices()
            .into_iter()
            .filter(|((id, _), _)| *id == s.id)
            .map(|((_, d), (sender, _, _))| (d, sender))
            .rev()
            .collect();
        eprintln!("{}: {got:?}", s.id);
    }
    instance.stop().await;
}

/// The scheduler restarted and rebalanced mid-year: a second instance joins in May (the
/// partitions split between them), the first leaves in September (the second takes all),
/// and a third replaces the second in November; each notice exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_and_rebalanced_mid_year_each_notice_exactly_once() {
    let b = require_kafka!();
    let rules = Rules::embedded();
    let bench = Bench::new(&b, midnight(day(2026, 1, 1))).await;
    // 24 subscriptions: the 8 combinations with three term ends spread over the year.
    let mut subs = Vec::new();
    for (i, end) in [day(2026, 7, 31), day(2026, 10, 15), day(2026, 12, 31)]
        .into_iter()
        .enumerate()
    {
        let start = end.checked_sub_months(Months::new(12)).unwrap() + chrono::Days::new(1);
        subs.extend(combos(&format!("rb{i}"), start, end));
    }
    let a = bench.start();
    let created: Vec<OutRecord> = subs
        .iter()
        .map(|s| bench.record(&s.created(midnight(day(2026, 1, 1)))))
        .collect();
    bench.send(&created).await;
    let amended: Vec<OutRecord> = subs
        .iter()
        .filter(|s| s.seat_increase)
        .map(|s| bench.record(&s.amended(midnight(day(2026, 1, 1)))))
        .collect();
    bench.send(&amended).await;
    let all: Notices = subs.iter().flat_map(|s| s.expected(&rules)).collect();
    let due_by = |t: DateTime<Utc>| -> Notices {
        all.iter()
            .filter(|((_, d), (_, end, _))| due_at(*end, *d) <= t)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let step = |to: NaiveDate| {
        bench.clock.set(midnight(to));
        due_by(midnight(to))
    };
    bench
        .expect(&step(day(2026, 5, 1)), Duration::from_secs(30))
        .await;
    let second = bench.start();
    assert!(
        wait_until(Duration::from_secs(30), || second
            .stats
            .get()
            .is_some_and(|c| c.restored_partitions > 0))
        .await,
        "the second instance never got a partition"
    );
    bench
        .expect(&step(day(2026, 7, 20)), Duration::from_secs(30))
        .await;
    bench
        .expect(&step(day(2026, 9, 1)), Duration::from_secs(30))
        .await;
    a.stop().await;
    bench
        .expect(&step(day(2026, 10, 10)), Duration::from_secs(30))
        .await;
    bench
        .expect(&step(day(2026, 11, 1)), Duration::from_secs(30))
        .await;
    second.stop().await;
    let third = bench.start();
    bench
        .expect(&step(day(2026, 12, 20)), Duration::from_secs(60))
        .await;
    bench
        .expect(&step(day(2027, 2, 1)), Duration::from_secs(30))
        .await;
    assert_eq!(bench.notices(), all);
    eprintln!(
        "{} notices for {} subscriptions, each once, across 3 instances",
        all.len(),
        subs.len()
    );
    third.stop().await;
}

/// A year of 200 subscriptions on the simulated clock (term ends spread from April to
/// December, a quarter of them with seats added in February): exactly the notice set rule 7
/// computes for each, compared one by one with its sender. The elapsed time is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_200_subscriptions_gets_exactly_rule_7s_notices() {
    let b = require_kafka!();
    let rules = Rules::embedded();
    let year = day(2026, 1, 1);
    let bench = Bench::new(&b, midnight(year)).await;
    let subs: Vec<Sub> = (0..200u32)
        .map(|i| {
            let end = day(2026, 4, 1) + chrono::Days::new(u64::from(i * 274 / 200));
            let deployment = if i % 2 == 0 {
                Deployment::Saas
            } else {
                Deployment::SelfManaged
            };
            Sub {
                id: format!("A-S{i:08}"),
                deployment,
                auto_renew: i % 3 != 0,
                seat_increase: i % 4 < 2,
                term_start: end.checked_sub_months(Months::new(12)).unwrap() + chrono::Days::new(1),
                term_end: end,
                email: format!("billing+{i}@example.com"),
            }
        })
        .collect();
    let all: Notices = subs.iter().flat_map(|s| s.expected(&rules)).collect();
    let fourteen = all.keys().filter(|(_, d)| *d == 14).count();
    assert!(fourteen > 10, "the 14-day case is well represented");
    let began = Instant::now();
    let instance = bench.start();
    let created: Vec<OutRecord> = subs
        .iter()
        .map(|s| bench.record(&s.created(midnight(year))))
        .collect();
    bench.send(&created).await;
    bench.clock.set(midnight(day(2026, 2, 1)));
    let amended: Vec<OutRecord> = subs
        .iter()
        .filter(|s| s.seat_increase)
        .map(|s| bench.record(&s.amended(midnight(day(2026, 2, 1)))))
        .collect();
    bench.send(&amended).await;
    let inputs = (created.len() + amended.len()) as u64;
    assert!(
        wait_until(Duration::from_secs(30), || instance
            .stats
            .get()
            .is_some_and(|c| c.records >= inputs))
        .await,
        "the scheduler never read its {inputs} input records"
    );
    // The year, a day at a time; every 30 days the notices so far are checked (none early,
    // none twice — `notices` panics on either).
    let mut today = day(2026, 2, 1);
    let mut checks = 0;
    while today < day(2027, 1, 1) {
        today = today.succ_opt().unwrap();
        bench.clock.set(midnight(today));
        tokio::time::sleep(Duration::from_millis(10)).await;
        if today.ordinal() % 30 == 0 {
            let _ = bench.notices();
            checks += 1;
        }
    }
    bench.expect(&all, Duration::from_secs(60)).await;
    let elapsed = began.elapsed();
    let got = bench.notices();
    for s in &subs {
        for ((id, d), (sender, end, to)) in s.expected(&rules) {
            let k = (id, d);
            assert_eq!(
                got.get(&k),
                Some(&(sender, end, to.clone())),
                "{} {d}-day notice",
                k.0
            );
        }
    }
    assert_eq!(got.len(), all.len());
    let by_sender = |s: SourceSystem| got.values().filter(|v| v.0 == s).count();
    eprintln!(
        "a year of 200 subscriptions: {} notices ({} by Zuora, {} by the customers app), exactly rule 7's, in {:.1} s of wall time ({checks} interim checks)",
        got.len(),
        by_sender(SourceSystem::Zuora),
        by_sender(SourceSystem::CustomersApp),
        elapsed.as_secs_f64()
    );
    instance.stop().await;
}

/// A changelog with fewer partitions than the subscriptions topic is refused at start,
/// naming the key: a key's state must sit on its input partition's changelog partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_partitioned_unlike_its_input_is_refused_at_start() {
    let b = require_kafka!();
    let mut bench = Bench::new(&b, midnight(day(2026, 1, 1))).await;
    bench.changelog = unique("notifications-schedule-1p");
    create_topic(&b, &bench.changelog, 1).await;
    let e = bench
        .start()
        .join
        .await
        .unwrap()
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("connectors.notifications.changelog_topic")
            && e.contains("1 partitions")
            && e.contains(&format!("has {PARTITIONS}")),
        "{e}"
    );
}
