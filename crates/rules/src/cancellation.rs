//! Handbook rule 10: the cancellation reasons and what each one entails.

use std::collections::BTreeMap;

use l2f_contracts::events::{CancellationReason, Deployment, ZuoraEntity};
use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// What a cancellation entails, beyond ending the subscription (which also turns
/// auto-renew off, rule 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The customer is refunded.
    pub refund: bool,
    /// The subscription is re-created under the new entity's account.
    pub recreate_under_new_entity: bool,
}

/// Why a reason does not apply to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The reason applies only to SaaS auto-renewals.
    #[error("{} applies only to a SaaS auto-renewal", reason.symbol())]
    NotSaasAutoRenewal {
        /// The reason given.
        reason: CancellationReason,
    },
}

/// `cancellation.toml`: each reason's outcome and where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationTable {
    reasons: BTreeMap<&'static str, Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    refund: bool,
    recreate_under_new_entity: bool,
    #[serde(default)]
    only_saas_auto_renewal: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    reasons: BTreeMap<String, Entry>,
}

impl CancellationTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "cancellation.toml";

    /// Parse and validate the table's text: every reason of the contracts has an entry.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let reasons = src.every::<CancellationReason, _, _>(
            "reasons",
            raw.reasons,
            "cancellation reason needs an entry",
            |_, e| Ok(e),
        )?;
        Ok(CancellationTable { reasons })
    }

    /// What cancelling for `reason` entails, or why the reason does not fit the subscription.
    pub fn outcome(
        &self,
        reason: CancellationReason,
        deployment: Deployment,
        auto_renewal: bool,
    ) -> Result<Outcome, Refused> {
        let e = self.reasons[reason.symbol()];
        if e.only_saas_auto_renewal && !(deployment == Deployment::Saas && auto_renewal) {
            return Err(Refused::NotSaasAutoRenewal { reason });
        }
        Ok(Outcome {
            refund: e.refund,
            recreate_under_new_entity: e.recreate_under_new_entity,
        })
    }
}

/// The cancellation a renewal needs: a renewal whose entity changes (rule 3 gives another
/// entity now) is cancelled and re-created under the new entity's account.
pub fn at_renewal(current: ZuoraEntity, renewing: ZuoraEntity) -> Option<CancellationReason> {
    (current != renewing).then_some(CancellationReason::EntityChangeAtRenewal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;
    use CancellationReason::*;
    use Deployment::*;

    /// "Cancellation reasons: customer request; wrong seat count (refund, no downgrade);
    /// entity change at renewal (cancel and re-create under the new entity's account); card
    /// declined on a SaaS auto-renewal."
    #[test]
    fn handbook_rule_10() {
        let t = &rules().cancellation;
        let out = |refund, recreate_under_new_entity| {
            Ok(Outcome {
                refund,
                recreate_under_new_entity,
            })
        };
        assert_eq!(
            t.outcome(CustomerRequest, SelfManaged, false),
            out(false, false)
        );
        assert_eq!(t.outcome(WrongSeatCount, Saas, false), out(true, false));
        assert_eq!(
            t.outcome(EntityChangeAtRenewal, SelfManaged, true),
            out(false, true)
        );
        assert_eq!(
            t.outcome(CardDeclinedOnAutoRenewal, Saas, true),
            out(false, false)
        );
        assert_eq!(
            t.outcome(CardDeclinedOnAutoRenewal, SelfManaged, true),
            Err(Refused::NotSaasAutoRenewal {
                reason: CardDeclinedOnAutoRenewal
            })
        );
        assert_eq!(
            t.outcome(CardDeclinedOnAutoRenewal, Saas, false)
                .unwrap_err()
                .to_string(),
            "CARD_DECLINED_ON_AUTO_RENEWAL applies only to a SaaS auto-renewal"
        );
    }

    /// A sales-assisted customer that moved from the US to the Netherlands renews under
    /// GitLab BV: the old subscription is cancelled for an entity change.
    #[test]
    fn entity_change_at_renewal() {
        assert_eq!(
            at_renewal(ZuoraEntity::GitlabInc, ZuoraEntity::GitlabBv),
            Some(EntityChangeAtRenewal)
        );
        assert_eq!(
            at_renewal(ZuoraEntity::GitlabBv, ZuoraEntity::GitlabBv),
            None
        );
    }
}
