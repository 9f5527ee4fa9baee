//! Rules the Avro schema cannot express (email syntax, seats > 0, terms that end after they
//! start, money that is not negative), and a check of a JSON value against a schema that
//! names the path of every problem.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::Violation;
use crate::events::*;
use crate::schema::{Logical, Named, Node, Primitive, Schema};

/// Semantic validation of an event; `violations` gets one entry per broken rule.
pub trait Validate {
    /// Pushes every broken rule, with paths starting at `path`.
    fn validate_into(&self, path: &FieldPath<'_>, violations: &mut Vec<Violation>);

    /// All broken rules, with paths starting at the event name.
    fn violations(&self) -> Vec<Violation>
    where
        Self: Event,
    {
        let mut v = Vec::new();
        self.validate_into(&FieldPath::Root(Self::NAME), &mut v);
        v
    }
}

/// The path of a field (`OrderPlaced.lines[1].quantity`), built on the stack and only
/// rendered when a rule is broken, so that validating a valid record allocates nothing.
#[derive(Debug, Clone, Copy)]
pub enum FieldPath<'a> {
    /// The event (or record) name.
    Root(&'a str),
    /// A field of the parent.
    Field(&'a FieldPath<'a>, &'a str),
    /// An array element of the parent.
    Index(&'a FieldPath<'a>, usize),
}

impl<'a> FieldPath<'a> {
    /// The path of a child field.
    pub fn field(&'a self, name: &'a str) -> FieldPath<'a> {
        FieldPath::Field(self, name)
    }

    /// The path of an array element.
    pub fn index(&'a self, i: usize) -> FieldPath<'a> {
        FieldPath::Index(self, i)
    }
}

impl std::fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Root(n) => f.write_str(n),
            FieldPath::Field(p, n) => write!(f, "{p}.{n}"),
            FieldPath::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// Email syntax: one `@`, a non-empty local part, a dotted domain, no spaces or controls.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(label_ok)
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

fn email(path: &FieldPath<'_>, field: &str, s: &str, v: &mut Vec<Violation>) {
    if !is_email(s) {
        v.push(Violation::new(
            path.field(field).to_string(),
            format!("{s:?}"),
            "not a valid email address",
        ));
    }
}

fn positive(path: &FieldPath<'_>, field: &str, n: i32, v: &mut Vec<Violation>) {
    if n <= 0 {
        v.push(Violation::new(
            path.field(field).to_string(),
            n.to_string(),
            "must be greater than zero",
        ));
    }
}

fn not_negative(path: &FieldPath<'_>, field: &str, n: i32, v: &mut Vec<Violation>) {
    if n < 0 {
        v.push(Violation::new(
            path.field(field).to_string(),
            n.to_string(),
            "must not be negative",
        ));
    }
}

fn non_empty(path: &FieldPath<'_>, field: &str, s: &str, v: &mut Vec<Violation>) {
    if s.trim().is_empty() {
        v.push(Violation::new(
            path.field(field).to_string(),
            format!("{s:?}"),
            "must not be empty",
        ));
    }
}

fn term(
    path: &FieldPath<'_>,
    start_field: &str,
    start: NaiveDate,
    end_field: &str,
    end: NaiveDate,
    v: &mut Vec<Violation>,
) {
    if end <= start {
        v.push(Violation::new(
            path.field(end_field).to_string(),
            end.to_string(),
            format!("must be after {start_field} ({start})"),
        ));
    }
}

impl Validate for Money {
    fn validate_into(&self, path: &FieldPath<'_>, v: &mut Vec<Violation>) {
        if self.amount < Decimal::ZERO {
            v.push(Violation::new(
                path.field("amount").to_string(),
                self.amount.to_string(),
                "money must not be negative",
            ));
        }
        if self.amount.scale() > 2 {
            v.push(Violation::new(
                path.field("amount").to_string(),
                self.amount.to_string(),
                "at most two decimal places (schema decimal(18,2))",
            ));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            v.push(Violation::new(
                path.field("currency").to_string(),
                format!("{:?}", self.currency),
                "not an ISO 4217 alphabetic currency code (three capital letters)",
            ));
        }
    }
}

impl Validate for Envelope {
    fn validate_into(&self, path: &FieldPath<'_>, v: &mut Vec<Violation>) {
        if self.causation_id == Some(self.event_id) {
            v.push(Violation::new(
                path.field("causation_id").to_string(),
                self.event_id.to_string(),
                "an event cannot cause itself",
            ));
        }
    }
}

macro_rules! validate {
    ($ty:ty, |$s:ident, $p:ident, $v:ident| $body:block) => {
        impl Validate for $ty {
            fn validate_into(&self, $p: &FieldPath<'_>, $v: &mut Vec<Violation>) {
                let $s = self;
                $s.envelope.validate_into(&$p.field("envelope"), $v);
                $body
            }
        }
    };
}

validate!(LeadCaptured, |s, p, v| {
    non_empty(p, "lead_id", &s.lead_id, v);
    email(p, "email", &s.email, v);
});

validate!(OrderPlaced, |s, p, v| {
    non_empty(p, "order_id", &s.order_id, v);
    non_empty(p, "account_id", &s.account_id, v);
    email(p, "sold_to_email", &s.sold_to_email, v);
    if s.lines.is_empty() {
        v.push(Violation::new(
            p.field("lines").to_string(),
            "[]",
            "an order has at least one line",
        ));
    }
    for (i, line) in s.lines.iter().enumerate() {
        let lines = p.field("lines");
        let lp = lines.index(i);
        non_empty(&lp, "sku", &line.sku, v);
        positive(&lp, "quantity", line.quantity, v);
        line.unit_price.validate_into(&lp.field("unit_price"), v);
    }
    s.total.validate_into(&p.field("total"), v);
    term(p, "term_start", s.term_start, "term_end", s.term_end, v);
    match (s.sales_channel, &s.reseller) {
        (SalesChannel::Reseller, None) => v.push(Violation::new(
            p.field("reseller").to_string(),
            "null",
            "a RESELLER order names its reseller",
        )),
        (c, Some(_)) if c != SalesChannel::Reseller => v.push(Violation::new(
            p.field("reseller").to_string(),
            "present",
            format!(
                "only RESELLER orders have a reseller, this one is {}",
                c.symbol()
            ),
        )),
        _ => {}
    }
});

validate!(SubscriptionCreated, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    positive(p, "seats", s.seats, v);
    term(p, "term_start", s.term_start, "term_end", s.term_end, v);
    s.amount.validate_into(&p.field("amount"), v);
    if let Some(e) = &s.bill_to_email {
        email(p, "bill_to_email", e, v);
    }
});

validate!(SubscriptionAmended, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    positive(p, "previous_seats", s.previous_seats, v);
    positive(p, "seats", s.seats, v);
    s.amount.validate_into(&p.field("amount"), v);
});

validate!(SubscriptionRenewed, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    positive(p, "seats", s.seats, v);
    term(p, "term_start", s.term_start, "term_end", s.term_end, v);
    s.amount.validate_into(&p.field("amount"), v);
});

validate!(SubscriptionCancelled, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    if let Some(r) = &s.refund {
        r.validate_into(&p.field("refund"), v);
    }
});

validate!(AutoRenewChanged, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    if !matches!(
        s.flag_owner,
        SourceSystem::Zuora | SourceSystem::CustomersApp
    ) {
        v.push(Violation::new(
            p.field("flag_owner").to_string(),
            s.flag_owner.symbol(),
            "only ZUORA and CUSTOMERS_APP keep an auto-renew flag",
        ));
    }
});

validate!(PaymentDeclined, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
    s.amount.validate_into(&p.field("amount"), v);
});

validate!(EulaAccepted, |s, p, v| {
    non_empty(p, "account_id", &s.account_id, v);
    email(p, "accepted_by_email", &s.accepted_by_email, v);
});

validate!(LicenseIssued, |s, p, v| {
    non_empty(p, "license_id", &s.license_id, v);
    positive(p, "seats", s.seats, v);
    term(p, "starts_on", s.starts_on, "expires_on", s.expires_on, v);
    email(p, "licensee_email", &s.licensee_email, v);
});

validate!(LicenseHeld, |s, p, v| {
    non_empty(p, "subscription_id", &s.subscription_id, v);
});

validate!(RenewalNoticeDue, |s, p, v| {
    if ![90, 45, 21, 15, 14, 3, 0].contains(&s.days_before_term_end) {
        v.push(Violation::new(
            p.field("days_before_term_end").to_string(),
            s.days_before_term_end.to_string(),
            "not a step of the renewal notice cadence (90, 45, 21, 15, 14, 3, 0)",
        ));
    }
    email(p, "recipient_email", &s.recipient_email, v);
});

validate!(EmailSent, |s, p, v| {
    email(p, "recipient_email", &s.recipient_email, v);
    non_empty(p, "template", &s.template, v);
});

validate!(CommunicationProfileChanged, |s, p, v| {
    non_empty(p, "account_id", &s.account_id, v);
});

validate!(EmailSuppressed, |s, p, v| {
    non_empty(p, "account_id", &s.account_id, v);
    email(p, "recipient_email", &s.recipient_email, v);
    non_empty(p, "template", &s.template, v);
});

validate!(UsageReported, |s, p, v| {
    not_negative(p, "active_users", s.active_users, v);
    not_negative(p, "billable_users", s.billable_users, v);
    positive(p, "seats", s.seats, v);
    if s.billable_users > s.active_users {
        v.push(Violation::new(
            p.field("billable_users").to_string(),
            s.billable_users.to_string(),
            format!("cannot exceed active_users ({})", s.active_users),
        ));
    }
});

/// Checks a JSON value (serde's rendering of an event: unions as the bare value, enums as
/// their symbol) against a schema. Each problem names its path, e.g. `LeadCaptured.country`.
pub fn check_json(schema: &Schema, value: &Value, path: &str) -> Vec<Violation> {
    let mut v = Vec::new();
    check_node(schema, &schema.root, value, path, &mut v);
    v
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 60 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn check_node(schema: &Schema, node: &Node, value: &Value, path: &str, v: &mut Vec<Violation>) {
    match node {
        Node::Primitive(p, logical) => check_primitive(*p, logical.as_ref(), value, path, v),
        Node::Array(items) => match value {
            Value::Array(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    check_node(schema, items, x, &format!("{path}[{i}]"), v);
                }
            }
            other => v.push(Violation::new(path, short(other), "expected an array")),
        },
        Node::Map(values) => match value {
            Value::Object(m) => {
                for (k, x) in m {
                    check_node(schema, values, x, &format!("{path}[{k:?}]"), v);
                }
            }
            other => v.push(Violation::new(path, short(other), "expected a map")),
        },
        Node::Union(branches) => {
            if value.is_null() {
                if !branches
                    .iter()
                    .any(|b| matches!(b, Node::Primitive(Primitive::Null, _)))
                {
                    v.push(Violation::new(
                        path,
                        "null",
                        "required field is missing or null",
                    ));
                }
                return;
            }
            let mut best: Option<Vec<Violation>> = None;
            for b in branches
                .iter()
                .filter(|b| !matches!(b, Node::Primitive(Primitive::Null, _)))
            {
                let mut attempt = Vec::new();
                check_node(schema, b, value, path, &mut attempt);
                if attempt.is_empty() {
                    return;
                }
                if best.as_ref().is_none_or(|x| attempt.len() < x.len()) {
                    best = Some(attempt);
                }
            }
            v.extend(best.unwrap_or_else(|| {
                vec![Violation::new(
                    path,
                    short(value),
                    "matches no union branch",
                )]
            }));
        }
        Node::Named(name) => match schema.lookup(name) {
            Some(Named::Record(r)) => {
                let Value::Object(m) = value else {
                    v.push(Violation::new(
                        path,
                        short(value),
                        format!("expected a {} record", r.name),
                    ));
                    return;
                };
                for f in &r.fields {
                    let fp = format!("{path}.{}", f.name);
                    match m.get(&f.name) {
                        Some(x) => check_node(schema, &f.node, x, &fp, v),
                        None if f.default.is_some() => {}
                        None => v.push(Violation::new(fp, "missing", "required field is missing")),
                    }
                }
                for k in m.keys() {
                    if !r.fields.iter().any(|f| &f.name == k) {
                        v.push(Violation::new(
                            format!("{path}.{k}"),
                            "present",
                            "no such field in the schema",
                        ));
                    }
                }
            }
            Some(Named::Enum(e)) => match value.as_str() {
                Some(s) if e.symbols.iter().any(|x| x == s) => {}
                _ => v.push(Violation::new(
                    path,
                    short(value),
                    format!(
                        "not a symbol of enum {}",
                        crate::schema::simple_name(&e.name)
                    ),
                )),
            },
            Some(Named::Fixed(f)) => {
                if value.as_str().is_none_or(|s| s.chars().count() != f.size) {
                    v.push(Violation::new(
                        path,
                        short(value),
                        format!("expected {} bytes", f.size),
                    ));
                }
            }
            None => v.push(Violation::new(
                path,
                short(value),
                format!("unknown type {name}"),
            )),
        },
    }
}

fn check_primitive(
    p: Primitive,
    logical: Option<&Logical>,
    value: &Value,
    path: &str,
    v: &mut Vec<Violation>,
) {
    let ok = match (p, logical) {
        (Primitive::Null, _) => value.is_null(),
        (Primitive::Boolean, _) => value.is_boolean(),
        (Primitive::Int, _) => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        (Primitive::Long, _) => value.is_i64() || value.is_u64() && value.as_i64().is_some(),
        (Primitive::Float | Primitive::Double, _) => value.is_number(),
        (Primitive::Bytes, Some(Logical::Decimal { .. })) => {
            value.as_str().is_some_and(|s| s.parse::<Decimal>().is_ok()) || value.is_number()
        }
        (Primitive::String, Some(Logical::Uuid)) => value
            .as_str()
            .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
        (Primitive::Bytes | Primitive::String, _) => value.is_string(),
    };
    if !ok {
        let what = match value {
            Value::Null => "required field is missing or null".to_owned(),
            _ => match logical {
                Some(l) => format!("expected {} ({})", p.as_str(), l.name()),
                None => format!("expected {}", p.as_str()),
            },
        };
        v.push(Violation::new(path, short(value), what));
    }
}

impl LeadCaptured {
    /// The fields Marketo requires (handbook rule 2: email, first name, last name, company,
    /// country, lead source) that this lead lacks, as paths; empty when it may be pushed.
    /// The schema lets a lead be captured incomplete so that the Marketo connector, not the
    /// form, decides to dead-letter it with these names.
    pub fn missing_for_marketo(&self) -> Vec<&'static str> {
        let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
        let mut missing = Vec::new();
        if !is_email(&self.email) {
            missing.push("LeadCaptured.email");
        }
        if blank(&self.first_name) {
            missing.push("LeadCaptured.first_name");
        }
        if blank(&self.last_name) {
            missing.push("LeadCaptured.last_name");
        }
        if blank(&self.company) {
            missing.push("LeadCaptured.company");
        }
        if self.country.is_none() {
            missing.push("LeadCaptured.country");
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn email_syntax() {
        for ok in [
            "a@b.co",
            "first.last+tag@example.com",
            "x_y@sub.example.org",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.com",
            "a@b",
            "a b@c.com",
            "a@@b.com",
            "a@b..com",
            ".a@b.com",
            "a@-b.com",
            "a@b.c0m",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
