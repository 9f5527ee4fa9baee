//! Handbook rule 5: auto-renew defaults and what changes it. The customers app's flag and
//! Zuora's flag are distinct; the hub sets both to [`AutoRenewTable::initial`] and then moves
//! both with [`after`], which keeps them in sync.

use std::collections::BTreeMap;

use l2f_contracts::events::{Deployment, SalesChannel};
use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// Something that changes a subscription's auto-renew flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The subscription was cancelled (for any reason).
    Cancelled,
    /// The customer turned it on in the customers app.
    TurnedOn,
    /// The customer turned it off in the customers app.
    TurnedOff,
}

/// The flag after `change`, whatever it was: a cancellation turns it off; the customer sets
/// it either way.
pub fn after(change: Change) -> bool {
    match change {
        Change::Cancelled | Change::TurnedOff => false,
        Change::TurnedOn => true,
    }
}

/// `auto_renew.toml`: the flag a new subscription starts with, by deployment and channel,
/// and Zuora's own default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRenewTable {
    zuora_default: bool,
    initial: BTreeMap<&'static str, BTreeMap<&'static str, bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    zuora_default: bool,
    initial: BTreeMap<String, BTreeMap<String, bool>>,
}

impl AutoRenewTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "auto_renew.toml";

    /// Parse and validate the table's text: every deployment × channel pair has a value.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let initial = src.every::<Deployment, _, _>(
            "initial",
            raw.initial,
            "deployment needs its sales channels",
            |key, channels| {
                src.every::<SalesChannel, _, _>(
                    key,
                    channels,
                    "deployment and sales channel needs a starting flag",
                    |_, on| Ok(on),
                )
            },
        )?;
        Ok(AutoRenewTable {
            zuora_default: raw.zuora_default,
            initial,
        })
    }

    /// The flag a new subscription starts with in both systems.
    pub fn initial(&self, deployment: Deployment, channel: SalesChannel) -> bool {
        self.initial[deployment.symbol()][channel.symbol()]
    }

    /// What Zuora assumes when a subscription is created without the flag: the hub must
    /// always send it, because this default differs from sales-assisted deals.
    pub fn zuora_default(&self) -> bool {
        self.zuora_default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;

    /// "SaaS purchases in the customers app default to on; ... Zuora defaults to on;
    /// sales-assisted deals start off, and the customer may turn it on in the customers app."
    #[test]
    fn handbook_rule_5_defaults() {
        let t = &rules().auto_renew;
        assert!(t.initial(Deployment::Saas, SalesChannel::WebStore));
        assert!(!t.initial(Deployment::Saas, SalesChannel::SalesAssisted));
        assert!(!t.initial(Deployment::SelfManaged, SalesChannel::SalesAssisted));
        assert!(t.zuora_default());
        assert!(after(Change::TurnedOn));
        assert!(!after(Change::TurnedOff));
    }

    /// "A cancellation turns it off", whatever it was.
    #[test]
    fn handbook_rule_5_cancellation_turns_it_off() {
        assert!(!after(Change::Cancelled));
    }

    /// A table without a starting flag for every pair is refused.
    #[test]
    fn a_missing_pair_is_refused() {
        let text = "zuora_default = true\n[initial.SAAS]\nWEB_STORE = true\n";
        let e = AutoRenewTable::parse(text).unwrap_err().to_string();
        assert!(
            e.starts_with("auto_renew.toml: initial.SAAS.SALES_ASSISTED = (missing)"),
            "{e}"
        );
    }
}
