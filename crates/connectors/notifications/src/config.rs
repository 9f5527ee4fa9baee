//! `[connectors.notifications]`: the topics the scheduler reads and writes, its changelog, its
//! consumer group and how often it looks at the clock. Every key has a default; unknown keys
//! are refused, so a typo is an error, not a default.

use std::time::Duration;

use l2f_connector_kit::KitError;
use serde::{Deserialize, Serialize};

use crate::NAME;

/// `[connectors.notifications]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The subscription events read (created, amended, renewed, cancelled, auto-renew).
    pub subscriptions_topic: String,
    /// Where `RenewalNoticeDue` goes.
    pub notifications_topic: String,
    /// The scheduler's compacted changelog: as many partitions as `subscriptions_topic`.
    pub changelog_topic: String,
    /// The consumer group (and transactional id prefix) of the scheduler's instances.
    pub group: String,
    /// How often the clock is looked at when no record arrives.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Most records in one transaction.
    pub batch_size: usize,
    /// Broker-side transaction timeout.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            subscriptions_topic: "subscriptions".into(),
            notifications_topic: "notifications".into(),
            changelog_topic: "notifications-schedule".into(),
            group: "l2f-connector-notifications".into(),
            tick: Duration::from_millis(200),
            batch_size: 500,
            transaction_timeout: Duration::from_secs(30),
        }
    }
}

impl NotificationsConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), KitError> {
        let bad = |key: &str, why: &str| Err(KitError::config(NAME, key, why));
        for (key, v) in [
            ("subscriptions_topic", &self.subscriptions_topic),
            ("notifications_topic", &self.notifications_topic),
            ("changelog_topic", &self.changelog_topic),
            ("group", &self.group),
        ] {
            if v.trim().is_empty() {
                return bad(key, "is empty");
            }
        }
        if self.changelog_topic == self.subscriptions_topic
            || self.changelog_topic == self.notifications_topic
        {
            return bad("changelog_topic", "must be a topic of its own");
        }
        if self.tick.is_zero() {
            return bad("tick", "must be more than zero");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return bad("batch_size", "must be 1 to 10000");
        }
        if self.transaction_timeout < Duration::from_secs(1) {
            return bad("transaction_timeout", "must be at least 1s");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_connector_kit::connector::parse_section;

    #[test]
    fn an_empty_section_takes_the_defaults_and_a_typo_is_named() {
        let c: NotificationsConfig = parse_section(NAME, &serde_json::json!({})).unwrap();
        assert_eq!(c, NotificationsConfig::default());
        c.validate().unwrap();
        let e = parse_section::<NotificationsConfig>(NAME, &serde_json::json!({"tik": "1s"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("connectors.notifications.tik") && e.contains("unknown key"),
            "{e}"
        );
        let c: NotificationsConfig =
            parse_section(NAME, &serde_json::json!({"tick": "20ms", "group": "g"})).unwrap();
        assert_eq!(c.tick, Duration::from_millis(20));
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = NotificationsConfig {
            changelog_topic: "subscriptions".into(),
            ..NotificationsConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("connectors.notifications.changelog_topic"),
            "{e}"
        );
        let c = NotificationsConfig {
            batch_size: 0,
            ..NotificationsConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("batch_size"));
    }
}
