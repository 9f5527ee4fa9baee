//! Handbook rule 7: which renewal notices are due, how many days before the term ends, and
//! which system sends each.

use std::collections::BTreeSet;

use l2f_contracts::events::{Deployment, SourceSystem};
use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// What decides a subscription's notices, as plain inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// Where the product runs.
    pub deployment: Deployment,
    /// Auto-renew is on.
    pub auto_renew: bool,
    /// The renewal adds seats.
    pub seat_increase: bool,
}

/// One notice: due `days_before` the term ends, sent by `sender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// Days before the last day of the term (0 is the last day).
    pub days_before: u16,
    /// `Zuora` or `CustomersApp`.
    pub sender: SourceSystem,
}

/// `renewal_notices.toml`: the cadence, each step with the conditions it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeTable {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    notice: Notice,
    requires_auto_renew: bool,
    requires_saas: bool,
    requires_seat_increase: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    notice: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    days_before: u16,
    sender: String,
    #[serde(default)]
    requires_auto_renew: bool,
    #[serde(default)]
    requires_saas: bool,
    #[serde(default)]
    requires_seat_increase: bool,
}

/// Longest term the cadence can reach into; a larger number is a typo.
const MAX_DAYS: u16 = 366;

impl NoticeTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "renewal_notices.toml";

    /// Parse and validate the table's text: one step per day, within a year, sent by Zuora
    /// or the customers app.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let mut seen = BTreeSet::new();
        let mut steps = Vec::with_capacity(raw.notice.len());
        for (i, s) in raw.notice.into_iter().enumerate() {
            let key = |field: &str| format!("notice[{i}].{field}");
            if s.days_before > MAX_DAYS {
                return Err(src.invalid(
                    key("days_before"),
                    s.days_before,
                    format!("more than {MAX_DAYS} days"),
                ));
            }
            if !seen.insert(s.days_before) {
                return Err(src.invalid(
                    key("days_before"),
                    s.days_before,
                    "a second notice on the same day",
                ));
            }
            let sender: SourceSystem = src.symbol(&key("sender"), &s.sender)?;
            if !matches!(sender, SourceSystem::Zuora | SourceSystem::CustomersApp) {
                return Err(src.invalid(
                    key("sender"),
                    format!("{:?}", s.sender),
                    "notices are sent by ZUORA or CUSTOMERS_APP",
                ));
            }
            steps.push(Step {
                notice: Notice {
                    days_before: s.days_before,
                    sender,
                },
                requires_auto_renew: s.requires_auto_renew,
                requires_saas: s.requires_saas,
                requires_seat_increase: s.requires_seat_increase,
            });
        }
        steps.sort_by_key(|s| std::cmp::Reverse(s.notice.days_before));
        Ok(NoticeTable { steps })
    }

    /// The notices due for a renewal, earliest (most days before) first.
    pub fn notices(&self, renewal: Renewal) -> Vec<Notice> {
        self.steps
            .iter()
            .filter(|s| !s.requires_auto_renew || renewal.auto_renew)
            .filter(|s| !s.requires_saas || renewal.deployment == Deployment::Saas)
            .filter(|s| !s.requires_seat_increase || renewal.seat_increase)
            .map(|s| s.notice)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;
    use Deployment::*;

    fn days(
        deployment: Deployment,
        auto_renew: bool,
        seat_increase: bool,
    ) -> Vec<(u16, SourceSystem)> {
        rules()
            .notices
            .notices(Renewal {
                deployment,
                auto_renew,
                seat_increase,
            })
            .into_iter()
            .map(|n| (n.days_before, n.sender))
            .collect()
    }

    const Z: SourceSystem = SourceSystem::Zuora;
    const C: SourceSystem = SourceSystem::CustomersApp;

    /// "90, 45, 15 and 0 always; 21 and 3 when auto-renew is on; 14 only for SaaS with
    /// auto-renew on and a seat increase, sent by the customers app (every other notice is
    /// sent by Zuora)."
    #[test]
    fn handbook_rule_7_cadence() {
        let always = vec![(90, Z), (45, Z), (15, Z), (0, Z)];
        let auto = vec![(90, Z), (45, Z), (21, Z), (15, Z), (3, Z), (0, Z)];
        let saas_seats = vec![(90, Z), (45, Z), (21, Z), (15, Z), (14, C), (3, Z), (0, Z)];
        let cases = [
            (SelfManaged, false, false, &always),
            (SelfManaged, false, true, &always),
            (Saas, false, false, &always),
            (Saas, false, true, &always),
            (SelfManaged, true, false, &auto),
            (SelfManaged, true, true, &auto),
            (Saas, true, false, &auto),
            (Saas, true, true, &saas_seats),
        ];
        for (deployment, auto_renew, seats, want) in cases {
            assert_eq!(
                &days(deployment, auto_renew, seats),
                want,
                "{deployment:?} auto={auto_renew} seats={seats}"
            );
        }
    }

    /// Two notices on one day would send the customer two emails: refused.
    #[test]
    fn a_duplicate_day_is_refused() {
        let text = r#"
            [[notice]]
            days_before = 45
            sender = "ZUORA"
            [[notice]]
            days_before = 45
            sender = "CUSTOMERS_APP"
        "#;
        let e = NoticeTable::parse(text).unwrap_err().to_string();
        assert_eq!(
            e,
            "renewal_notices.toml: notice[1].days_before = 45: a second notice on the same day"
        );
    }

    /// Only Zuora and the customers app send notices.
    #[test]
    fn a_sender_that_sends_no_notices_is_refused() {
        let text = "[[notice]]\ndays_before = 45\nsender = \"MARKETO\"\n";
        let e = NoticeTable::parse(text).unwrap_err().to_string();
        assert!(e.contains("notice[0].sender = \"MARKETO\""), "{e}");
    }
}
