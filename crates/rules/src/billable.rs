//! Handbook rule 9: billable users = active users (not blocked, not deactivated) minus
//! service bots, and minus guests on the tiers the table names (Ultimate). A billable count
//! above the seats bought is a true-up.

use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// A subscription's tier; the contracts carry it only inside the SKU, so the rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Free.
    Free,
    /// Premium.
    Premium,
    /// Ultimate.
    Ultimate,
}

impl Tier {
    /// The tier a plan SKU sells (`ultimate-self-managed-1y` → Ultimate): its first word;
    /// `None` for a SKU that is no tier's plan (an add-on such as `ci-minutes-1000`).
    pub fn of_sku(sku: &str) -> Option<Tier> {
        let word = sku.split(['-', '_']).next()?;
        Tier::SYMBOLS
            .iter()
            .find(|(_, sym)| sym.eq_ignore_ascii_case(word))
            .map(|(t, _)| *t)
    }

    /// Every tier with its table symbol.
    const SYMBOLS: [(Tier, &'static str); 3] = [
        (Tier::Free, "FREE"),
        (Tier::Premium, "PREMIUM"),
        (Tier::Ultimate, "ULTIMATE"),
    ];
}

/// A user's account state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Can sign in.
    Active,
    /// Blocked by an admin.
    Blocked,
    /// Deactivated (dormant).
    Deactivated,
}

/// One user, as far as billing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// Account state.
    pub state: UserState,
    /// A service bot (not a person).
    pub service_bot: bool,
    /// Has only the Guest role.
    pub guest: bool,
}

/// `billable_users.toml`: the tiers on which guests are free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillableTable {
    guests_free_on: Vec<Tier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    guests_free_on: Vec<String>,
}

impl BillableTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "billable_users.toml";

    /// Parse and validate the table's text.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let guests_free_on = raw
            .guests_free_on
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Tier::SYMBOLS
                    .iter()
                    .find(|(_, sym)| sym == s)
                    .map(|(t, _)| *t)
                    .ok_or_else(|| {
                        src.invalid(
                            format!("guests_free_on[{i}]"),
                            format!("{s:?}"),
                            "expected one of FREE, PREMIUM, ULTIMATE",
                        )
                    })
            })
            .collect::<Result<_>>()?;
        Ok(BillableTable { guests_free_on })
    }

    /// How many of `users` are billed on `tier`.
    pub fn billable<'a>(&self, tier: Tier, users: impl IntoIterator<Item = &'a User>) -> u64 {
        let guests_free = self.guests_free_on.contains(&tier);
        let billed =
            |u: &&User| u.state == UserState::Active && !u.service_bot && !(guests_free && u.guest);
        users.into_iter().filter(billed).count() as u64
    }
}

/// Seats to true up: how far `billable` exceeds `seats_bought` (0 when within).
pub fn true_up(billable: u64, seats_bought: u64) -> u64 {
    billable.saturating_sub(seats_bought)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;
    use proptest::prelude::*;
    use UserState::*;

    fn user(state: UserState, service_bot: bool, guest: bool) -> User {
        User {
            state,
            service_bot,
            guest,
        }
    }

    /// "Billable users = active users (not blocked, not deactivated) minus service bots, and
    /// minus guests on the Ultimate tier. A billable count above the seats bought is a true-up."
    #[test]
    fn handbook_rule_9() {
        let users = [
            user(Active, false, false),
            user(Active, false, false),
            user(Active, false, true), // guest
            user(Active, true, false), // service bot
            user(Blocked, false, false),
            user(Deactivated, false, false),
        ];
        let t = &rules().billable;
        assert_eq!(t.billable(Tier::Premium, &users), 3);
        assert_eq!(t.billable(Tier::Ultimate, &users), 2);
        assert_eq!(true_up(3, 2), 1);
        assert_eq!(true_up(2, 2), 0);
        assert_eq!(true_up(1, 5), 0);
        assert_eq!(
            Tier::of_sku("ultimate-self-managed-1y"),
            Some(Tier::Ultimate)
        );
        assert_eq!(Tier::of_sku("premium-saas-1y"), Some(Tier::Premium));
        assert_eq!(Tier::of_sku("ci-minutes-1000"), None);
    }

    fn any_user() -> impl Strategy<Value = User> {
        let state = proptest::sample::select(vec![Active, Blocked, Deactivated]);
        (state, any::<bool>(), any::<bool>()).prop_map(|(s, b, g)| user(s, b, g))
    }

    proptest! {
        /// Billable never exceeds active people, and Ultimate never bills more than Premium.
        #[test]
        fn billable_is_bounded(users in proptest::collection::vec(any_user(), 0..50)) {
            let t = &rules().billable;
            let people = users.iter().filter(|u| u.state == Active && !u.service_bot).count() as u64;
            let premium = t.billable(Tier::Premium, &users);
            let ultimate = t.billable(Tier::Ultimate, &users);
            prop_assert_eq!(premium, people);
            prop_assert!(ultimate <= premium);
        }
    }
}
