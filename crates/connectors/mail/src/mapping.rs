//! Pure: which events become which emails (handbook rules 7 and 8), with the variables their
//! templates get, the recipient checked, and the idempotency key of each message; and a
//! rendered email as Mailgun's form fields.
//!
//! - `SubscriptionCreated`, self-managed, in a billing batch that needs the terms
//!   (`accept_terms_batches`: web direct and reseller) → `accept_terms` to `bill_to_email`;
//! - `LicenseIssued` → `license` to `licensee_email`, and with `reseller_notified` also
//!   `reseller_notification` (to the configured partner desk);
//! - `RenewalNoticeDue` sent by the customers app (the 14-day SaaS auto-renewal notice) →
//!   `renewal_notice` to `recipient_email`; every other notice is Zuora's to send (rule 7).
//!
//! Each message's key is `derived_id(event id, "mail:<template>")`: stable across
//! redeliveries, distinct for the two emails of one license.

use std::collections::BTreeMap;

use l2f_bus::HandlerError;
use l2f_contracts::events::{
    BillingBatch, Deployment, LicenseIssued, RenewalNoticeDue, SourceSystem, SubscriptionCreated,
};
use l2f_contracts::record::derived_id;
use l2f_contracts::Event;

use crate::client::KEY_VARIABLE;
use crate::templates::{Kind, Rendered};

/// One email to send (or to suppress), before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Which template.
    pub kind: Kind,
    /// The idempotency key (`v:l2f-key`).
    pub key: uuid::Uuid,
    /// The account whose profile decides whether it is muted.
    pub account_id: String,
    /// The subscription, for `EmailSent`.
    pub subscription_id: Option<String>,
    /// The bare recipient address.
    pub recipient: String,
    /// The template's variables (exactly [`Kind::variables`]).
    pub vars: BTreeMap<&'static str, String>,
}

/// Checks an address (`a@b.c` or `Name <a@b.c>`) and answers its bare form; the error names
/// `field` and the value.
pub fn check_address(field: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    let bare = match (v.find('<'), v.rfind('>')) {
        (Some(i), Some(j)) if i < j && j == v.len() - 1 => &v[i + 1..j],
        _ => v,
    };
    let ok = match bare.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !bare.contains(|c: char| c.is_whitespace() || ",;<>\"".contains(c))
        }
        None => false,
    };
    if ok {
        Ok(bare.to_string())
    } else {
        Err(format!("{field}: not an email address (value: {value:?})"))
    }
}

fn recipient<E: Event>(field: &str, value: Option<&str>) -> Result<String, HandlerError> {
    let at = format!("{}.{field}", E::NAME);
    match value {
        None => Err(HandlerError::permanent(format!(
            "{at}: missing (the email has no recipient)"
        ))),
        Some(v) if v.trim().is_empty() => Err(HandlerError::permanent(format!(
            "{at}: missing (the email has no recipient; value: {v:?})"
        ))),
        Some(v) => check_address(&at, v).map_err(HandlerError::permanent),
    }
}

fn key<E: Event>(e: &E, kind: Kind) -> uuid::Uuid {
    derived_id(e.envelope().event_id, &format!("mail:{}", kind.name()))
}

/// The accept-terms email of a subscription that needs the terms accepted (rule 8), if it
/// does.
pub fn accept_terms(
    s: &SubscriptionCreated,
    batches: &[BillingBatch],
) -> Result<Option<Email>, HandlerError> {
    if s.deployment != Deployment::SelfManaged || !batches.contains(&s.billing_batch) {
        return Ok(None);
    }
    let to = recipient::<SubscriptionCreated>("bill_to_email", s.bill_to_email.as_deref())?;
    let vars = BTreeMap::from([
        ("recipient", to.clone()),
        ("account_id", s.account_id.clone()),
        ("subscription_id", s.subscription_id.clone()),
        ("plan_sku", s.plan_sku.clone()),
        ("seats", s.seats.to_string()),
        ("deployment", "self-managed".to_string()),
        ("term_start", s.term_start.to_string()),
        ("term_end", s.term_end.to_string()),
    ]);
    Ok(Some(Email {
        kind: Kind::AcceptTerms,
        key: key(s, Kind::AcceptTerms),
        account_id: s.account_id.clone(),
        subscription_id: Some(s.subscription_id.clone()),
        recipient: to,
        vars,
    }))
}

fn license_vars(l: &LicenseIssued, to: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("recipient", to.to_string()),
        ("account_id", l.account_id.clone()),
        ("subscription_id", l.subscription_id.clone()),
        ("license_id", l.license_id.clone()),
        ("plan_sku", l.plan_sku.clone()),
        ("seats", l.seats.to_string()),
        ("starts_on", l.starts_on.to_string()),
        ("expires_on", l.expires_on.to_string()),
    ])
}

/// The license email (rule 8) and, for a reseller deal, the reseller notification sent to
/// `reseller_to`; without `reseller_to` such a license is a permanent failure naming the key.
pub fn license(l: &LicenseIssued, reseller_to: Option<&str>) -> Result<Vec<Email>, HandlerError> {
    let to = recipient::<LicenseIssued>("licensee_email", Some(&l.licensee_email))?;
    let mut out = vec![Email {
        kind: Kind::License,
        key: key(l, Kind::License),
        account_id: l.account_id.clone(),
        subscription_id: Some(l.subscription_id.clone()),
        recipient: to.clone(),
        vars: license_vars(l, &to),
    }];
    if l.reseller_notified {
        let desk = reseller_to.ok_or_else(|| {
            HandlerError::permanent(format!(
                "LicenseIssued.reseller_notified: true for license {} but connectors.mail.reseller_notification_to is not set",
                l.license_id
            ))
        })?;
        let desk = check_address("connectors.mail.reseller_notification_to", desk)
            .map_err(HandlerError::permanent)?;
        let mut vars = license_vars(l, &desk);
        vars.insert("licensee_email", to);
        out.push(Email {
            kind: Kind::ResellerNotification,
            key: key(l, Kind::ResellerNotification),
            account_id: l.account_id.clone(),
            subscription_id: Some(l.subscription_id.clone()),
            recipient: desk,
            vars,
        });
    }
    Ok(out)
}

/// The renewal notice the hub sends: only the customers app's (rule 7's 14-day SaaS notice);
/// Zuora sends the others.
pub fn renewal_notice(n: &RenewalNoticeDue) -> Result<Option<Email>, HandlerError> {
    if n.sender != SourceSystem::CustomersApp {
        return Ok(None);
    }
    let to = recipient::<RenewalNoticeDue>("recipient_email", Some(&n.recipient_email))?;
    let vars = BTreeMap::from([
        ("recipient", to.clone()),
        ("account_id", n.account_id.clone()),
        ("subscription_id", n.subscription_id.clone()),
        ("days_before_term_end", n.days_before_term_end.to_string()),
        ("term_end", n.term_end.to_string()),
    ]);
    Ok(Some(Email {
        kind: Kind::RenewalNotice,
        key: key(n, Kind::RenewalNotice),
        account_id: n.account_id.clone(),
        subscription_id: Some(n.subscription_id.clone()),
        recipient: to,
        vars,
    }))
}

/// Mailgun's form fields for a rendered email: the parts, the template as `o:tag`, and the
/// idempotency key and template as custom variables.
pub fn form(email: &Email, r: &Rendered, from: &str) -> Vec<(String, String)> {
    let f = |k: &str, v: &str| (k.to_string(), v.to_string());
    vec![
        f("from", from),
        f("to", &email.recipient),
        f("subject", &r.subject),
        f("text", &r.text),
        f("html", &r.html),
        f("o:tag", email.kind.name()),
        (format!("v:{KEY_VARIABLE}"), email.key.to_string()),
        f("v:l2f-template", email.kind.name()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples;

    #[test]
    fn addresses_are_checked_and_named() {
        assert_eq!(check_address("f", "a@b.co").unwrap(), "a@b.co");
        assert_eq!(check_address("f", "Ann <a@b.co>").unwrap(), "a@b.co");
        for bad in ["", "nobody", "a@b", "a@b.co, c@d.co", "a b@c.co", "@b.co"] {
            let e = check_address("X.to", bad).unwrap_err();
            assert!(e.starts_with("X.to: not an email address"), "{e}");
        }
    }

    #[test]
    fn only_self_managed_subscriptions_that_need_terms_get_the_accept_terms_email() {
        let batches = [BillingBatch::Batch1, BillingBatch::Batch4];
        let mut s = examples::subscription_created();
        s.deployment = Deployment::SelfManaged;
        s.billing_batch = BillingBatch::Batch1;
        s.bill_to_email = Some("buyer@example.com".into());
        let e = accept_terms(&s, &batches).unwrap().unwrap();
        assert_eq!(e.recipient, "buyer@example.com");
        assert_eq!(e.key, accept_terms(&s, &batches).unwrap().unwrap().key);
        let names: Vec<&str> = e.vars.keys().copied().collect();
        let mut want = Kind::AcceptTerms.variables().to_vec();
        want.sort();
        assert_eq!(names, want);
        s.billing_batch = BillingBatch::Batch2;
        assert!(accept_terms(&s, &batches).unwrap().is_none());
        s.billing_batch = BillingBatch::Batch1;
        s.deployment = Deployment::Saas;
        assert!(accept_terms(&s, &batches).unwrap().is_none());
        s.deployment = Deployment::SelfManaged;
        s.bill_to_email = None;
        let e = accept_terms(&s, &batches).unwrap_err();
        assert_eq!(e.class(), "permanent");
        assert!(
            e.message()
                .contains("SubscriptionCreated.bill_to_email: missing"),
            "{e}"
        );
        s.bill_to_email = Some("not-an-address".into());
        let e = accept_terms(&s, &batches).unwrap_err();
        assert!(e.message().contains("\"not-an-address\""), "{e}");
    }

    #[test]
    fn a_reseller_license_sends_two_emails_with_distinct_keys() {
        let mut l = examples::license_issued();
        l.reseller_notified = true;
        let e = license(&l, Some("partners@example.com")).unwrap();
        assert_eq!(e.len(), 2);
        assert_ne!(e[0].key, e[1].key);
        assert_eq!(e[1].recipient, "partners@example.com");
        assert_eq!(e[1].vars["licensee_email"], l.licensee_email);
        let err = license(&l, None).unwrap_err();
        assert!(err.message().contains("reseller_notification_to"), "{err}");
        l.reseller_notified = false;
        assert_eq!(license(&l, None).unwrap().len(), 1);
        l.licensee_email = "x".into();
        let err = license(&l, None).unwrap_err();
        assert!(
            err.message()
                .contains("LicenseIssued.licensee_email: not an email address (value: \"x\")"),
            "{err}"
        );
    }

    #[test]
    fn only_the_customers_apps_renewal_notice_is_sent_by_the_hub() {
        let mut n = examples::renewal_notice_due();
        n.sender = SourceSystem::Zuora;
        assert!(renewal_notice(&n).unwrap().is_none());
        n.sender = SourceSystem::CustomersApp;
        n.days_before_term_end = 14;
        let e = renewal_notice(&n).unwrap().unwrap();
        assert_eq!(e.vars["days_before_term_end"], "14");
        let r = Rendered {
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let f = form(&e, &r, "hub@mg.example.com");
        assert!(f.contains(&("v:l2f-key".into(), e.key.to_string())));
        assert!(f.contains(&("to".into(), n.recipient_email.clone())));
    }
}
