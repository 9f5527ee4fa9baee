//! Pure: what the scheduler knows of one subscription ([`Tracked`], its changelog state), how
//! each subscription event changes it, and which notices of rule 7 fall due when.
//!
//! The rules of the cadence, beyond the table's days:
//! - a term's cadence is the rule 7 table applied to the subscription as it is now (deployment,
//!   Zuora's auto-renew flag, seats above those bought at the term's start); a step due before
//!   the term started is not part of it;
//! - each step is emitted once per term (`sent`), when the clock reaches its day — late, when
//!   the clock jumped or the hub was down, never early;
//! - a change (auto-renew turned on, seats added) first emits what fell due under the old
//!   state up to the change, then applies it; a step the change newly brings in whose day had
//!   already passed at the change is passed over (`skipped`), not sent late;
//! - a cancellation stops the notices; a renewal starts the next term's cadence;
//! - the change's time is its event's `occurred_at`, never later than the hub's clock.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use l2f_contracts::events::{Deployment, RenewalNoticeDue, SourceSystem};
use l2f_contracts::record::AnyEvent;
use l2f_rules::notices::{NoticeTable, Renewal};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mapping::{due_at, notice_event, Due};

/// What the scheduler keeps per subscription, in its changelog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// The hub's account id.
    pub account_id: String,
    /// Who receives the notices (Zuora's bill-to email).
    pub recipient: String,
    /// SaaS or self-managed.
    pub deployment: Deployment,
    /// Zuora's auto-renew flag (the one that renews; the customers app's follows it).
    pub auto_renew: bool,
    /// Seats at the start of the term.
    pub seats_bought: i32,
    /// Seats now.
    pub seats: i32,
    /// The term's first day.
    pub term_start: NaiveDate,
    /// The term's last day.
    pub term_end: NaiveDate,
    /// Cancelled: no more notices.
    pub cancelled: bool,
    /// Steps of this term emitted (days before the term end).
    pub sent: BTreeSet<u16>,
    /// Steps of this term passed over (brought in by a change after their day).
    pub skipped: BTreeSet<u16>,
    /// The flow the subscription belongs to (its creation's correlation id).
    pub correlation_id: Uuid,
    /// The last event applied (the notices' cause).
    pub causation_id: Uuid,
}

impl Tracked {
    /// Seats above those bought at the term's start (rule 7's "seat increase").
    pub fn seat_increase(&self) -> bool {
        self.seats > self.seats_bought
    }

    fn renewal(&self) -> Renewal {
        Renewal {
            deployment: self.deployment,
            auto_renew: self.auto_renew,
            seat_increase: self.seat_increase(),
        }
    }
}

/// The term's cadence as the subscription stands: rule 7's steps, those due before the term
/// started left out; nothing once cancelled. Earliest first.
pub fn cadence(s: &Tracked, table: &NoticeTable) -> Vec<Due> {
    if s.cancelled {
        return Vec::new();
    }
    let start = due_at(s.term_start, 0);
    table
        .notices(s.renewal())
        .into_iter()
        .map(|n| Due {
            days_before: n.days_before,
            sender: n.sender,
            term_end: s.term_end,
            at: due_at(s.term_end, n.days_before),
        })
        .filter(|d| d.at >= start)
        .collect()
}

/// The steps of the cadence neither sent nor passed over, earliest first.
pub fn pending(s: &Tracked, table: &NoticeTable) -> Vec<Due> {
    cadence(s, table)
        .into_iter()
        .filter(|d| !s.sent.contains(&d.days_before) && !s.skipped.contains(&d.days_before))
        .collect()
}

/// When the next notice falls due, if one will.
pub fn next_due(s: &Tracked, table: &NoticeTable) -> Option<DateTime<Utc>> {
    pending(s, table).into_iter().map(|d| d.at).min()
}

/// The notices due at or before `now`, earliest first, and the state with them sent.
pub fn fire(
    subscription_id: &str,
    s: &Tracked,
    now: DateTime<Utc>,
    table: &NoticeTable,
) -> (Tracked, Vec<RenewalNoticeDue>) {
    let mut next = s.clone();
    let mut out = Vec::new();
    for d in pending(s, table).into_iter().filter(|d| d.at <= now) {
        next.sent.insert(d.days_before);
        out.push(notice_event(subscription_id, s, &d));
    }
    (next, out)
}

/// What an event did to a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The new state (`None`: unchanged, nothing to record).
    pub state: Option<Tracked>,
    /// Notices that fell due up to the change, under the state before it.
    pub notices: Vec<RenewalNoticeDue>,
}

impl Outcome {
    fn unchanged() -> Self {
        Outcome {
            state: None,
            notices: Vec::new(),
        }
    }
}

/// Why an event cannot be scheduled: the record's fault, named by field and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Applies one event of topic `subscriptions` to the state of `subscription_id` at the hub's
/// time `now`. Events about a subscription never created here (the customers app's own ids,
/// history before the hub) change nothing.
pub fn apply(
    subscription_id: &str,
    state: Option<&Tracked>,
    event: &AnyEvent,
    now: DateTime<Utc>,
    table: &NoticeTable,
) -> Result<Outcome, Refusal> {
    let at = event.envelope().occurred_at.min(now);
    let cause = event.envelope().event_id;
    // What fell due under the old state up to the change goes out first.
    let (base, notices) = match state {
        Some(s) => {
            let (s, n) = fire(subscription_id, s, at, table);
            (Some(s), n)
        }
        None => (None, Vec::new()),
    };
    let new = match (event, &base) {
        (AnyEvent::SubscriptionCreated(c), _) => {
            let recipient = c.bill_to_email.clone().ok_or_else(|| {
                Refusal(format!(
                    "SubscriptionCreated {}: bill_to_email is missing, so its renewal notices have no recipient",
                    c.subscription_id
                ))
            })?;
            let same_term = base.as_ref().filter(|b| b.term_end == c.term_end);
            Tracked {
                account_id: c.account_id.clone(),
                recipient,
                deployment: c.deployment,
                auto_renew: c.auto_renew,
                seats_bought: c.seats,
                seats: c.seats,
                term_start: c.term_start,
                term_end: c.term_end,
                cancelled: false,
                sent: same_term.map(|b| b.sent.clone()).unwrap_or_default(),
                skipped: same_term.map(|b| b.skipped.clone()).unwrap_or_default(),
                correlation_id: c.envelope.correlation_id,
                causation_id: cause,
            }
        }
        (_, None) => return Ok(Outcome::unchanged()),
        (AnyEvent::SubscriptionAmended(a), Some(b)) => Tracked {
            seats: a.seats,
            causation_id: cause,
            ..b.clone()
        },
        (AnyEvent::SubscriptionRenewed(r), Some(b)) => {
            let same_term = b.term_end == r.term_end;
            Tracked {
                seats_bought: r.seats,
                seats: r.seats,
                term_start: r.term_start,
                term_end: r.term_end,
                cancelled: false,
                sent: if same_term {
                    b.sent.clone()
                } else {
                    BTreeSet::new()
                },
                skipped: if same_term {
                    b.skipped.clone()
                } else {
                    BTreeSet::new()
                },
                causation_id: cause,
                ..b.clone()
            }
        }
        (AnyEvent::SubscriptionCancelled(_), Some(b)) => Tracked {
            cancelled: true,
            causation_id: cause,
            ..b.clone()
        },
        (AnyEvent::AutoRenewChanged(a), Some(b)) if a.flag_owner == SourceSystem::Zuora => {
            Tracked {
                auto_renew: a.auto_renew,
                causation_id: cause,
                ..b.clone()
            }
        }
        (_, Some(b)) => {
            // Not a change of the cadence (the customers app's flag, a declined payment):
            // only what fell due is recorded.
            return Ok(Outcome {
                state: (!notices.is_empty()).then(|| b.clone()),
                notices,
            });
        }
    };
    let new = pass_over_late_steps(base.as_ref(), new, at, table);
    Ok(Outcome {
        state: Some(new),
        notices,
    })
}

/// Marks as skipped the steps `new` brings into the term that `old` did not have, whose day
/// was already past at the change.
fn pass_over_late_steps(
    old: Option<&Tracked>,
    mut new: Tracked,
    at: DateTime<Utc>,
    table: &NoticeTable,
) -> Tracked {
    let had: BTreeSet<u16> = old
        .filter(|o| o.term_end == new.term_end)
        .map(|o| cadence(o, table).iter().map(|d| d.days_before).collect())
        .unwrap_or_default();
    for d in cadence(&new, table) {
        if !had.contains(&d.days_before) && !new.sent.contains(&d.days_before) && d.at < at {
            new.skipped.insert(d.days_before);
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use l2f_contracts::examples;
    use l2f_rules::Rules;
    use Deployment::*;

    const Z: SourceSystem = SourceSystem::Zuora;
    const C: SourceSystem = SourceSystem::CustomersApp;

    fn table() -> NoticeTable {
        Rules::embedded().notices
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn midnight(d: NaiveDate) -> DateTime<Utc> {
        due_at(d, 0)
    }

    const SUB: &str = "A-S00012345";

    fn created(deployment: Deployment, auto_renew: bool) -> AnyEvent {
        let mut c = examples::subscription_created();
        c.subscription_id = SUB.into();
        c.deployment = deployment;
        c.auto_renew = auto_renew;
        c.seats = 25;
        c.term_start = day(2026, 1, 1);
        c.term_end = day(2026, 12, 31);
        c.envelope.occurred_at = midnight(day(2026, 1, 1));
        AnyEvent::SubscriptionCreated(c)
    }

    fn amended(seats: i32, on: NaiveDate) -> AnyEvent {
        let mut a = examples::subscription_amended();
        a.subscription_id = SUB.into();
        a.previous_seats = 25;
        a.seats = seats;
        a.effective_date = on;
        a.envelope.occurred_at = midnight(on);
        a.envelope.event_id = Uuid::new_v4();
        AnyEvent::SubscriptionAmended(a)
    }

    fn auto_renew(owner: SourceSystem, on: bool, at: NaiveDate) -> AnyEvent {
        let mut a = examples::auto_renew_changed();
        a.subscription_id = SUB.into();
        a.flag_owner = owner;
        a.auto_renew = on;
        a.envelope.occurred_at = midnight(at) + Duration::hours(12);
        a.envelope.event_id = Uuid::new_v4();
        AnyEvent::AutoRenewChanged(a)
    }

    /// Runs a subscription's events in order and the clock day by day over `days` from
    /// 2026-01-01; answers `(days_before, sender, day emitted)` of every notice.
    fn run(events: &[(NaiveDate, AnyEvent)], days: i64) -> Vec<(u16, SourceSystem, NaiveDate)> {
        let t = table();
        let mut state: Option<Tracked> = None;
        let mut out = Vec::new();
        let mut record = |n: Vec<RenewalNoticeDue>, today: NaiveDate| {
            for e in n {
                assert_eq!(e.subscription_id, SUB);
                assert_eq!(e.recipient_email, "billing@example.de");
                out.push((e.days_before_term_end as u16, e.sender, today));
            }
        };
        let mut pending = events.to_vec();
        for i in 0..days {
            let today = day(2026, 1, 1) + Duration::days(i);
            // The clock at noon of each day: first the day's events, then the timers.
            let now = midnight(today) + Duration::hours(13);
            for (_, e) in pending.iter().filter(|(d, _)| *d == today) {
                let o = apply(SUB, state.as_ref(), e, now, &t).unwrap();
                record(o.notices, today);
                if let Some(s) = o.state {
                    state = Some(s);
                }
            }
            pending.retain(|(d, _)| *d != today);
            if let Some(s) = &state {
                if next_due(s, &t).is_some_and(|d| d <= now) {
                    let (s2, n) = fire(SUB, s, now, &t);
                    assert!(!n.is_empty(), "a due timer emits");
                    record(n, today);
                    assert!(next_due(&s2, &t).is_none_or(|d| d > now), "no busy loop");
                    state = Some(s2);
                }
            }
        }
        out
    }

    fn at(days_before: u16) -> NaiveDate {
        day(2026, 12, 31) - Duration::days(i64::from(days_before))
    }

    /// Every combination of rule 7 over a whole term, each notice on its day, once.
    #[test]
    fn each_combination_gets_its_exact_notice_days_over_a_term() {
        let always = vec![(90, Z), (45, Z), (15, Z), (0, Z)];
        let auto = vec![(90, Z), (45, Z), (21, Z), (15, Z), (3, Z), (0, Z)];
        let saas_seats = vec![(90, Z), (45, Z), (21, Z), (15, Z), (14, C), (3, Z), (0, Z)];
        for deployment in [Saas, SelfManaged] {
            for auto_renew in [false, true] {
                for seats in [false, true] {
                    let mut events = vec![(day(2026, 1, 1), created(deployment, auto_renew))];
                    if seats {
                        events.push((day(2026, 6, 1), amended(30, day(2026, 6, 1))));
                    }
                    let got = run(&events, 400);
                    let want = match (deployment, auto_renew, seats) {
                        (Saas, true, true) => &saas_seats,
                        (_, true, _) => &auto,
                        _ => &always,
                    };
                    let want: Vec<_> = want.iter().map(|(d, s)| (*d, *s, at(*d))).collect();
                    assert_eq!(
                        got, want,
                        "{deployment:?} auto_renew={auto_renew} seat_increase={seats}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_seat_decrease_back_to_the_bought_seats_is_no_increase() {
        let events = vec![
            (day(2026, 1, 1), created(Saas, true)),
            (day(2026, 6, 1), amended(30, day(2026, 6, 1))),
            (day(2026, 7, 1), amended(25, day(2026, 7, 1))),
        ];
        let days: Vec<u16> = run(&events, 400).iter().map(|n| n.0).collect();
        assert_eq!(days, vec![90, 45, 21, 15, 3, 0]);
    }

    #[test]
    fn a_cancellation_stops_the_notices() {
        let mut c = examples::subscription_cancelled();
        c.subscription_id = SUB.into();
        c.envelope.occurred_at = midnight(day(2026, 11, 1));
        let events = vec![
            (day(2026, 1, 1), created(Saas, true)),
            (day(2026, 11, 1), AnyEvent::SubscriptionCancelled(c)),
        ];
        let days: Vec<u16> = run(&events, 400).iter().map(|n| n.0).collect();
        assert_eq!(
            days,
            vec![90],
            "only the 90-day notice was due before the cancellation"
        );
    }

    #[test]
    fn a_renewal_starts_the_next_terms_cadence() {
        let mut r = examples::subscription_renewed();
        r.subscription_id = SUB.into();
        r.seats = 25;
        r.term_start = day(2027, 1, 1);
        r.term_end = day(2027, 12, 31);
        r.envelope.occurred_at = midnight(day(2027, 1, 1));
        let events = vec![
            (day(2026, 1, 1), created(SelfManaged, true)),
            (day(2027, 1, 1), AnyEvent::SubscriptionRenewed(r)),
        ];
        let got = run(&events, 800);
        let firsts: Vec<(u16, NaiveDate)> = got.iter().map(|n| (n.0, n.2)).collect();
        let mut want: Vec<(u16, NaiveDate)> = [90, 45, 21, 15, 3, 0].map(|d| (d, at(d))).into();
        let end2 = day(2027, 12, 31);
        want.extend([90, 45, 21, 15, 3, 0].map(|d| (d, end2 - Duration::days(i64::from(d)))));
        assert_eq!(firsts, want);
    }

    #[test]
    fn auto_renew_turned_on_late_passes_over_the_steps_already_gone_and_only_zuoras_flag_counts() {
        let events = vec![
            (day(2026, 1, 1), created(SelfManaged, false)),
            // The customers app's flag alone changes nothing: Zuora's follows it.
            (at(30), auto_renew(C, true, at(30))),
            // Zuora's flag on 10 days before the end: the 21-day step is gone, the 3-day one
            // is still ahead.
            (at(10), auto_renew(Z, true, at(10))),
        ];
        let got: Vec<(u16, NaiveDate)> = run(&events, 400).iter().map(|n| (n.0, n.2)).collect();
        assert_eq!(
            got,
            vec![
                (90, at(90)),
                (45, at(45)),
                (15, at(15)),
                (3, at(3)),
                (0, at(0))
            ]
        );
    }

    #[test]
    fn a_clock_that_jumps_emits_every_step_it_passed_once_in_order() {
        let t = table();
        let o = apply(
            SUB,
            None,
            &created(Saas, true),
            midnight(day(2026, 1, 1)),
            &t,
        )
        .unwrap();
        assert!(o.notices.is_empty());
        let s = o.state.unwrap();
        assert_eq!(next_due(&s, &t), Some(due_at(day(2026, 12, 31), 90)));
        let (s, n) = fire(SUB, &s, midnight(at(15)), &t);
        let days: Vec<i32> = n.iter().map(|e| e.days_before_term_end).collect();
        assert_eq!(days, vec![90, 45, 21, 15]);
        let (_, again) = fire(SUB, &s, midnight(at(15)), &t);
        assert!(again.is_empty(), "a step is sent once");
        assert_eq!(next_due(&s, &t), Some(due_at(day(2026, 12, 31), 3)));
    }

    #[test]
    fn a_change_first_emits_what_fell_due_before_it_under_the_old_state() {
        let t = table();
        let s = apply(
            SUB,
            None,
            &created(Saas, true),
            midnight(day(2026, 1, 1)),
            &t,
        )
        .unwrap()
        .state
        .unwrap();
        // The hub was down from before the 21-day step; auto-renew was turned off 18 days
        // before the end: the 21-day notice was due while it was on, so it goes out (late).
        let o = apply(
            SUB,
            Some(&s),
            &auto_renew(Z, false, at(18)),
            midnight(at(17)),
            &t,
        )
        .unwrap();
        let days: Vec<i32> = o.notices.iter().map(|e| e.days_before_term_end).collect();
        assert_eq!(days, vec![90, 45, 21]);
        let s = o.state.unwrap();
        assert!(!s.auto_renew);
        let (_, n) = fire(SUB, &s, midnight(at(0)), &t);
        let days: Vec<i32> = n.iter().map(|e| e.days_before_term_end).collect();
        assert_eq!(days, vec![15, 0], "no 3-day notice with auto-renew off");
    }

    #[test]
    fn a_subscription_created_late_in_its_term_gets_only_the_steps_ahead() {
        let t = table();
        let AnyEvent::SubscriptionCreated(mut c) = created(Saas, false) else {
            unreachable!()
        };
        c.envelope.occurred_at = midnight(at(30));
        let s = apply(
            SUB,
            None,
            &AnyEvent::SubscriptionCreated(c),
            midnight(at(30)),
            &t,
        )
        .unwrap()
        .state
        .unwrap();
        assert_eq!(s.skipped, BTreeSet::from([90, 45]));
        let (_, n) = fire(SUB, &s, midnight(at(0)), &t);
        let days: Vec<i32> = n.iter().map(|e| e.days_before_term_end).collect();
        assert_eq!(days, vec![15, 0]);
    }

    #[test]
    fn a_short_term_has_no_step_before_its_start_and_a_future_stamp_is_read_as_now() {
        let t = table();
        let AnyEvent::SubscriptionCreated(mut c) = created(Saas, false) else {
            unreachable!()
        };
        c.term_start = day(2026, 12, 1);
        // Stamped by a wall clock far ahead of the simulated one: read as the hub's now.
        c.envelope.occurred_at = midnight(day(2030, 1, 1));
        let now = midnight(day(2026, 12, 1));
        let s = apply(SUB, None, &AnyEvent::SubscriptionCreated(c), now, &t)
            .unwrap()
            .state
            .unwrap();
        let days: Vec<u16> = cadence(&s, &t).iter().map(|d| d.days_before).collect();
        assert_eq!(days, vec![15, 0]);
        assert!(s.skipped.is_empty());
    }

    #[test]
    fn events_of_an_unknown_subscription_change_nothing_and_a_missing_recipient_is_refused() {
        let t = table();
        let now = midnight(day(2026, 2, 1));
        let o = apply(SUB, None, &amended(30, day(2026, 2, 1)), now, &t).unwrap();
        assert_eq!(o, Outcome::unchanged());
        let AnyEvent::SubscriptionCreated(mut c) = created(Saas, false) else {
            unreachable!()
        };
        c.bill_to_email = None;
        let e = apply(SUB, None, &AnyEvent::SubscriptionCreated(c), now, &t).unwrap_err();
        assert!(e.0.contains("bill_to_email"), "{e}");
    }

    #[test]
    fn the_state_survives_its_changelog_form() {
        let t = table();
        let s = apply(
            SUB,
            None,
            &created(Saas, true),
            midnight(day(2026, 1, 1)),
            &t,
        )
        .unwrap()
        .state
        .unwrap();
        let (s, _) = fire(SUB, &s, midnight(at(45)), &t);
        let back: Tracked = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
