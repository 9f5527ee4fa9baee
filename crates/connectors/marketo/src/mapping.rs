//! `LeadCaptured` → the lead record Marketo's `POST /rest/v1/leads.json` takes. Pure: no I/O,
//! so the rule that decides what may reach Marketo is tested without a server.
//!
//! Handbook rule 2: a lead goes to Marketo only with email, first name, last name, company,
//! country and lead source; anything less is a permanent failure naming the missing fields,
//! so it lands in the dead-letter topic and sales rotation never gets a half lead.

use l2f_bus::HandlerError;
use l2f_contracts::events::{LeadCaptured, LeadSource};
use serde_json::{json, Value};

/// The Marketo lead for `lead`, or a permanent error naming every missing required field.
pub fn to_marketo(lead: &LeadCaptured) -> Result<Value, HandlerError> {
    let missing = lead.missing_for_marketo();
    if !missing.is_empty() {
        return Err(HandlerError::permanent(format!(
            "lead {} is not ready for Marketo (handbook rule 2): missing required field(s) {}",
            lead.lead_id,
            missing.join(", ")
        )));
    }
    let text = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or_default().to_string();
    let mut out = json!({
        "email": lead.email.trim(),
        "firstName": text(&lead.first_name),
        "lastName": text(&lead.last_name),
        "company": text(&lead.company),
        "country": lead.country.map(|c| c.as_str()).unwrap_or_default(),
        "leadSource": lead_source(lead.lead_source),
        "externalLeadId": lead.lead_id,
        "unsubscribed": !lead.marketing_opt_in,
    });
    if let Some(c) = lead
        .utm_campaign
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        out["leadSourceDetail"] = json!(c.trim());
    }
    Ok(out)
}

/// The label Marketo's `leadSource` picklist shows for each source.
pub fn lead_source(s: LeadSource) -> &'static str {
    match s {
        LeadSource::SignUp => "Sign-up",
        LeadSource::Trial => "Trial",
        LeadSource::ContactSales => "Contact Sales",
        LeadSource::AbandonedCart => "Abandoned Cart",
        LeadSource::WebForm => "Web Form",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l2f_contracts::examples::lead_captured;

    #[test]
    fn a_complete_lead_maps_field_for_field() {
        let lead = lead_captured();
        let v = to_marketo(&lead).unwrap();
        assert_eq!(v["email"], "ada.lovelace@example.co.uk");
        assert_eq!(v["firstName"], "Ada");
        assert_eq!(v["lastName"], "Lovelace");
        assert_eq!(v["company"], "Analytical Engines Ltd");
        assert_eq!(v["country"], "GB");
        assert_eq!(v["leadSource"], "Web Form");
        assert_eq!(v["externalLeadId"], "lead-0001");
        assert_eq!(v["unsubscribed"], false);
        assert_eq!(v["leadSourceDetail"], "devops-platform-2026");
    }

    #[test]
    fn an_incomplete_lead_is_permanent_and_names_every_missing_field() {
        let mut lead = lead_captured();
        lead.company = None;
        lead.first_name = Some("  ".into());
        lead.country = None;
        let e = to_marketo(&lead).unwrap_err();
        assert_eq!(e.class(), "permanent");
        let m = e.message();
        for f in [
            "LeadCaptured.first_name",
            "LeadCaptured.company",
            "LeadCaptured.country",
        ] {
            assert!(m.contains(f), "{f} not in {m}");
        }
        assert!(!m.contains("LeadCaptured.last_name"), "{m}");
        assert!(m.contains("lead-0001"), "{m}");
    }

    #[test]
    fn no_campaign_means_no_detail_field() {
        let mut lead = lead_captured();
        lead.utm_campaign = None;
        lead.marketing_opt_in = false;
        let v = to_marketo(&lead).unwrap();
        assert!(v.get("leadSourceDetail").is_none());
        assert_eq!(v["unsubscribed"], true);
    }
}
