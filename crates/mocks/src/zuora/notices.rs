//! Zuora's renewal notices (handbook rule 7: every notice but the 14-day one is Zuora's)
//! and the email notification history they are recorded in.
//!
//! - The notices are emails of a custom scheduled event on `Subscription.TermEndDate`
//!   (eventCategory `user.notification:SubscriptionRenewalNotice`), one notification per
//!   rule of `zuora.notices` (`days` before term end, `when` = `always` or `auto_renew`),
//!   due at 00:00 UTC of that day and sent once per subscription and term, when the clock
//!   passes it;
//!   https://developer.zuora.com/v1-api-reference/api/custom-scheduled-events.md
//! - a communication profile whose notifications are inactive sends nothing and records
//!   nothing (Zuora's notification definitions are per profile, `active: false` ones do
//!   not fire); `zuora.silent_profiles` (default `["Silent"]`) are such profiles;
//!   https://docs.zuora.com/en/zuora-platform/system-management/settings-api/settings-api-tutorials/notification-definition-settings/get-all-notifications-under-a-particular-communication-profile
//! - `GET /v1/notification-history/email`: `page` (1), `pageSize` (20, at most 40),
//!   `accountId`, `objectId`, `startTime`/`endTime` (`yyyy-MM-ddTHH:mm:ss`, end defaults to
//!   now, start to end − 1 day, at most three days apart), `failedOnly` (default **true**),
//!   `eventCategory`; answers `{"emailHistories":[{accountId, bcc, cc, errorMessage,
//!   eventCategory, fromEmail, notification, replyTo, result, sendTime, subject,
//!   toEmail}], "nextPage"?, "success": true}`.
//!   https://developer.zuora.com/v1-api-reference/api/operation/GET_EmailHistory/

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{base_url, Data, Subscription, ZError, Zuora, RES_NOTIFICATION};
use crate::kit;

/// The custom scheduled event the notices belong to.
pub const NOTICE_EVENT: &str = "SubscriptionRenewalNotice";

/// When a notice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeWhen {
    /// For every subscription.
    Always,
    /// Only while the subscription's `autoRenew` is on (at the time it falls due).
    AutoRenew,
}

/// One renewal notice: so many days before the term ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRule {
    /// Days before the term end date.
    pub days: u32,
    /// Always, or only with auto-renew on.
    pub when: NoticeWhen,
}

/// Rule 7 without the 14-day notice (the customers app's): 90, 45, 15, 0 always, 21 and 3
/// with auto-renew.
pub fn default_notices() -> Vec<NoticeRule> {
    let rule = |days, when| NoticeRule { days, when };
    vec![
        rule(90, NoticeWhen::Always),
        rule(45, NoticeWhen::Always),
        rule(21, NoticeWhen::AutoRenew),
        rule(15, NoticeWhen::Always),
        rule(3, NoticeWhen::AutoRenew),
        rule(0, NoticeWhen::Always),
    ]
}

/// One email in the notification history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmailRecord {
    /// The account's id.
    pub account_id: String,
    /// The subscription's id (the object that triggered it).
    pub object_id: String,
    /// The subscription's number.
    pub subscription_number: String,
    /// Days before term end.
    pub days: u32,
    /// The term end it announces.
    pub term_end_date: String,
    /// `user.notification:SubscriptionRenewalNotice`.
    pub event_category: String,
    /// `Renewal notice 90 days`.
    pub notification: String,
    /// Sender.
    pub from_email: String,
    /// Recipient ("" when the account has none).
    pub to_email: String,
    /// Subject.
    pub subject: String,
    /// `OK` or `Failed`.
    pub result: String,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When it was sent (ms): the time it fell due.
    pub send_ms: i64,
}

/// The contact email the notices go to: sold-to, then bill-to; work, then personal.
fn recipient(d: &Data, sub: &Subscription) -> Option<String> {
    let a = d.accounts.get(&sub.account_number)?;
    [&a.sold_to_contact, &a.bill_to_contact]
        .iter()
        .flat_map(|c| [c.get("workEmail"), c.get("personalEmail")])
        .flatten()
        .filter_map(Value::as_str)
        .find(|e| !e.trim().is_empty())
        .map(str::to_string)
}

impl Zuora {
    /// The `days`-before-term-end notice of `sub`, due at `at`: sent (recorded in the email
    /// history) unless its rule needs auto-renew that is off (skipped) or the account's
    /// profile is silent (muted, nothing recorded). Once per term either way.
    pub(super) fn send_notice(&self, d: &mut Data, sub: &Subscription, days: u32, at: i64) {
        let needs_auto = self
            .cfg
            .notices
            .iter()
            .filter(|r| r.days == days)
            .all(|r| r.when == NoticeWhen::AutoRenew);
        let profile = d
            .accounts
            .get(&sub.account_number)
            .map(|a| a.communication_profile_id.clone())
            .unwrap_or_default();
        let outcome = if needs_auto && !sub.auto_renew {
            "skipped"
        } else if self
            .cfg
            .silent_profiles
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&profile))
        {
            "muted"
        } else {
            "sent"
        };
        Self::ledger(d, sub).notices.insert(days, outcome.into());
        if outcome != "sent" {
            return;
        }
        let to = recipient(d, sub);
        let account_id = d
            .accounts
            .get(&sub.account_number)
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let subject = if days == 0 {
            format!("Your subscription {} ends today", sub.subscription_number)
        } else {
            format!(
                "Your subscription {} ends on {} ({days} days)",
                sub.subscription_number, sub.term_end_date
            )
        };
        d.email_history.push(EmailRecord {
            account_id,
            object_id: sub.id.clone(),
            subscription_number: sub.subscription_number.clone(),
            days,
            term_end_date: sub.term_end_date.clone(),
            event_category: format!("{}:{NOTICE_EVENT}", super::callouts::EVENT_NAMESPACE),
            notification: format!("Renewal notice {days} days"),
            from_email: self.cfg.notice_from.clone(),
            result: if to.is_some() { "OK" } else { "Failed" }.into(),
            error_message: to
                .is_none()
                .then(|| "The recipient email address is empty.".to_string()),
            to_email: to.unwrap_or_default(),
            subject,
            send_ms: at,
        });
    }
}

#[derive(Deserialize)]
struct HistoryParams {
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    #[serde(rename = "accountId")]
    account_id: Option<String>,
    #[serde(rename = "startTime")]
    start_time: Option<String>,
    #[serde(rename = "endTime")]
    end_time: Option<String>,
    #[serde(rename = "objectId")]
    object_id: Option<String>,
    #[serde(rename = "failedOnly")]
    failed_only: Option<bool>,
    #[serde(rename = "eventCategory")]
    event_category: Option<String>,
}

const THREE_DAYS_MS: i64 = 3 * 86_400_000;

/// `GET /v1/notification-history/email`.
pub(super) async fn history(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<kit::Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let p: HistoryParams = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ZError::invalid(RES_NOTIFICATION, format!("Invalid query: {e}")))?;
    let size = p.page_size.unwrap_or(20);
    if !(1..=40).contains(&size) {
        return Err(ZError::invalid(
            RES_NOTIFICATION,
            format!("Invalid value for field pageSize: {size}; it must be 1 to 40"),
        ));
    }
    let page = p.page.unwrap_or(1).max(1);
    let end = match &p.end_time {
        Some(s) => super::callouts::parse_time("endTime", s)?,
        None => app.shared.clock().now_ms(),
    }
    .div_euclid(1000)
        * 1000
        + 999;
    let start = match &p.start_time {
        Some(s) => super::callouts::parse_time("startTime", s)?,
        None => end - 999 - 86_400_000,
    }
    .div_euclid(1000)
        * 1000;
    if end - 999 - start > THREE_DAYS_MS {
        return Err(ZError::invalid(
            RES_NOTIFICATION,
            "The maximum date range (endTime - startTime) is three days.",
        ));
    }
    let failed_only = p.failed_only.unwrap_or(true);
    let rows: Vec<EmailRecord> = app.shared.read(|d| {
        let account_ids: Option<Vec<String>> = p.account_id.as_ref().map(|k| {
            super::find_account(d, k)
                .map(|a| vec![a.id.clone()])
                .unwrap_or_else(|| vec![k.clone()])
        });
        d.email_history
            .iter()
            .filter(|r| r.send_ms >= start && r.send_ms <= end)
            .filter(|r| {
                account_ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&r.account_id))
            })
            .filter(|r| {
                p.object_id
                    .as_ref()
                    .is_none_or(|o| *o == r.object_id || *o == r.subscription_number)
            })
            .filter(|r| !failed_only || r.result != "OK")
            .filter(|r| {
                p.event_category.as_ref().is_none_or(|c| {
                    *c == r.event_category || Some(c.as_str()) == r.event_category.split(':').nth(1)
                })
            })
            .cloned()
            .collect()
    });
    let from = (page - 1).saturating_mul(size);
    let shown: Vec<Value> = rows
        .iter()
        .skip(from)
        .take(size)
        .map(|r| {
            json!({
                "accountId": r.account_id,
                "bcc": null,
                "cc": null,
                "errorMessage": r.error_message,
                "eventCategory": r.event_category,
                "fromEmail": r.from_email,
                "notification": r.notification,
                "replyTo": r.from_email,
                "result": r.result,
                "sendTime": super::callouts::format_time(r.send_ms),
                "subject": r.subject,
                "toEmail": r.to_email,
            })
        })
        .collect();
    let mut out = json!({ "emailHistories": shown, "success": true });
    if from.saturating_add(size) < rows.len() {
        let mut q: Vec<(&str, String)> = vec![
            ("page", (page + 1).to_string()),
            ("pageSize", size.to_string()),
            ("startTime", super::callouts::format_time(start)),
            ("endTime", super::callouts::format_time(end)),
            ("failedOnly", failed_only.to_string()),
        ];
        if let Some(a) = &p.account_id {
            q.push(("accountId", a.clone()));
        }
        if let Some(o) = &p.object_id {
            q.push(("objectId", o.clone()));
        }
        if let Some(c) = &p.event_category {
            q.push(("eventCategory", c.clone()));
        }
        out["nextPage"] = json!(format!(
            "{}/v1/notification-history/email?{}",
            base_url(&headers, scheme.map(|s| s.0)),
            serde_urlencoded::to_string(&q).unwrap_or_default()
        ));
    }
    Ok(Json(out))
}
