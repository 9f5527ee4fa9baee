//! Handbook rule 6: communication profiles. New accounts get Default; Silent mutes
//! notifications and holds the license back from the customers app until it is lifted.

use std::collections::BTreeMap;

use l2f_contracts::events::{CommunicationProfile, LicenseHoldReason};
use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// What a profile does to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// No notification emails are sent.
    pub mute_notifications: bool,
    /// The license is not delivered to the customers app.
    pub hold_license: bool,
}

/// `communication.toml`: the new-account profile and each profile's effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunicationTable {
    new_account: CommunicationProfile,
    profiles: BTreeMap<&'static str, Effects>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    new_account: String,
    profiles: BTreeMap<String, RawEffects>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEffects {
    mute_notifications: bool,
    hold_license: bool,
}

impl CommunicationTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "communication.toml";

    /// Parse and validate the table's text: every profile has its effects.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let profiles = src.every::<CommunicationProfile, _, _>(
            "profiles",
            raw.profiles,
            "profile needs its effects",
            |_, e| {
                Ok(Effects {
                    mute_notifications: e.mute_notifications,
                    hold_license: e.hold_license,
                })
            },
        )?;
        Ok(CommunicationTable {
            new_account: src.symbol("new_account", &raw.new_account)?,
            profiles,
        })
    }

    /// The profile a new account gets.
    pub fn new_account(&self) -> CommunicationProfile {
        self.new_account
    }

    /// What `profile` does.
    pub fn effects(&self, profile: CommunicationProfile) -> Effects {
        self.profiles[profile.symbol()]
    }

    /// Why a license must be held back under `profile`, if it must: the `LicenseHeld` event's
    /// reason.
    pub fn license_hold(&self, profile: CommunicationProfile) -> Option<LicenseHoldReason> {
        self.effects(profile)
            .hold_license
            .then_some(LicenseHoldReason::SilentProfile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;

    /// "New accounts get the Default profile; the Silent profile mutes notifications and
    /// also holds the license back from the customers app until it is lifted."
    #[test]
    fn handbook_rule_6_profiles() {
        let t = &rules().communication;
        assert_eq!(t.new_account(), CommunicationProfile::Default);
        assert_eq!(
            t.effects(CommunicationProfile::Default),
            Effects {
                mute_notifications: false,
                hold_license: false
            }
        );
        assert_eq!(
            t.effects(CommunicationProfile::Silent),
            Effects {
                mute_notifications: true,
                hold_license: true
            }
        );
        assert_eq!(
            t.license_hold(CommunicationProfile::Silent),
            Some(LicenseHoldReason::SilentProfile)
        );
        assert_eq!(t.license_hold(CommunicationProfile::Default), None);
    }
}
