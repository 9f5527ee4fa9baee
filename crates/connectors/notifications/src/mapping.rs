//! Pure: a due notice as the `RenewalNoticeDue` event it is, and the instant a cadence step
//! falls due.
//!
//! A notice `d` days before the term end is due at 00:00 UTC of the day `term_end - d` (0 is
//! the term's last day, as rule 7 counts). Its event id is derived from the subscription, the
//! term end and the step, so the same notice always has the same id: a reader that sees it
//! twice (it cannot, for `read_committed` readers, but an audit replay can) knows it is one.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use l2f_contracts::events::{Envelope, RenewalNoticeDue, SourceSystem};
use l2f_contracts::record::event_id;
use uuid::Uuid;

use crate::schedule::Tracked;

/// One notice of one term, due at [`Due::at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Days before the term's last day.
    pub days_before: u16,
    /// Who sends it (Zuora, or the customers app for the 14-day one).
    pub sender: SourceSystem,
    /// The term's last day.
    pub term_end: NaiveDate,
    /// When it falls due.
    pub at: DateTime<Utc>,
}

/// 00:00 UTC of the day `days_before` days before `term_end`.
pub fn due_at(term_end: NaiveDate, days_before: u16) -> DateTime<Utc> {
    let day = term_end
        .checked_sub_days(chrono::Days::new(u64::from(days_before)))
        .unwrap_or(NaiveDate::MIN);
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The id of the notice `days_before` of the term ending `term_end` of `subscription_id`.
pub fn notice_id(subscription_id: &str, term_end: NaiveDate, days_before: u16) -> Uuid {
    event_id(
        "notifications",
        subscription_id,
        &format!("renewal-notice/{term_end}/{days_before}"),
    )
}

/// The event of a due notice of `subscription_id`, from what is known of it.
pub fn notice_event(subscription_id: &str, s: &Tracked, due: &Due) -> RenewalNoticeDue {
    RenewalNoticeDue {
        envelope: Envelope {
            event_id: notice_id(subscription_id, due.term_end, due.days_before),
            occurred_at: due.at,
            source: SourceSystem::Notifications,
            correlation_id: s.correlation_id,
            causation_id: Some(s.causation_id),
        },
        subscription_id: subscription_id.to_string(),
        account_id: s.account_id.clone(),
        days_before_term_end: i32::from(due.days_before),
        term_end: due.term_end,
        sender: due.sender,
        recipient_email: s.recipient.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_due_at_midnight_utc_of_its_day_and_zero_is_the_last_day() {
        let end = NaiveDate::from_ymd_opt(2027, 11, 30).unwrap();
        assert_eq!(due_at(end, 0).to_rfc3339(), "2027-11-30T00:00:00+00:00");
        assert_eq!(due_at(end, 90).to_rfc3339(), "2027-09-01T00:00:00+00:00");
        assert_eq!(due_at(end, 14).to_rfc3339(), "2027-11-16T00:00:00+00:00");
    }

    #[test]
    fn a_notice_id_is_stable_and_distinct_per_term_and_step() {
        let end = NaiveDate::from_ymd_opt(2027, 11, 30).unwrap();
        let next = NaiveDate::from_ymd_opt(2028, 11, 30).unwrap();
        let a = notice_id("A-S1", end, 45);
        assert_eq!(a, notice_id("A-S1", end, 45));
        assert_ne!(a, notice_id("A-S1", end, 15));
        assert_ne!(a, notice_id("A-S1", next, 45));
        assert_ne!(a, notice_id("A-S2", end, 45));
    }
}
