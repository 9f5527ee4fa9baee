//! The demo's year, planned before anything runs: which customers arrive when, through which
//! channel, and what each does afterwards. Pure and seeded, so the same `--seed` plans the same
//! year (and the demo prints the same summary).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Steps of the simulated year: the 1st and the 15th of each month from January 2026, then
/// 2027-01-01, 2027-01-15 and 2027-02-01 so January's terms end and renew inside the demo.
pub const STEPS: usize = 27;

/// The step at which `l2f demo --outage` takes an app down (2026-03-01).
pub const OUTAGE_STEP: usize = 4;

/// The date of step `k` (`YYYY-MM-DD`).
pub fn step_date(k: usize) -> chrono::NaiveDate {
    let month = (k / 2) as u32;
    let (y, m) = (2026 + (month / 12) as i32, month % 12 + 1);
    let day = if k % 2 == 0 { 1 } else { 15 };
    chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
}

/// A web form of the customers app (`POST /api/v1/<path>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `/api/v1/trials`.
    Trial,
    /// `/api/v1/signups`.
    Signup,
    /// `/api/v1/contact-requests`.
    ContactSales,
    /// `/api/v1/web-forms`.
    Generic,
    /// `/api/v1/carts/abandoned`.
    AbandonedCart,
}

impl Form {
    /// The customers app's path for this form.
    pub fn path(self) -> &'static str {
        match self {
            Form::Trial => "/api/v1/trials",
            Form::Signup => "/api/v1/signups",
            Form::ContactSales => "/api/v1/contact-requests",
            Form::Generic => "/api/v1/web-forms",
            Form::AbandonedCart => "/api/v1/carts/abandoned",
        }
    }
}

/// How a customer buys (or does not).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Only a web form: a lead for Marketo and Salesforce.
    Lead {
        /// Which form.
        form: Form,
        /// The company typed in.
        company: String,
    },
    /// A purchase in the customers app.
    Store {
        /// `saas` or `self_managed`.
        deployment: &'static str,
        /// `premium`, `ultimate`.
        plan: &'static str,
        /// Seats bought.
        seats: u32,
        /// `web_store`, `aws_marketplace`, `govuk_digital_marketplace`, `reseller`.
        channel: &'static str,
        /// The reseller's name and whether it is authorized (channel `reseller`).
        reseller: Option<(&'static str, bool)>,
    },
    /// A sales-assisted deal closed won in Salesforce.
    Deal {
        /// The account's billing country (ISO code).
        country: &'static str,
        /// `SaaS` or `Self-Managed`.
        deployment: &'static str,
        /// The catalog SKU.
        sku: &'static str,
        /// Seats.
        seats: u32,
        /// `Direct`, `Authorized Reseller`, `Unauthorized Reseller`.
        party: &'static str,
    },
}

/// What a customer does after buying, at a later step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Accepts the EULA in the customers app (self-managed).
    AcceptEula,
    /// A billing admin adds seats in Zuora (an UpdateProduct order).
    AddSeats(u32),
    /// A usage report in the customers app (self-managed): active users, service bots, guests.
    Usage(u32, u32, u32),
    /// Auto-renew turned on or off in the customers app.
    AutoRenew(bool),
    /// Cancelled in the customers app with this reason.
    Cancel(&'static str),
    /// Finance sets the Zuora account's communication profile to Silent.
    Silent,
    /// The card on file starts declining (Zuora autoPay on, the gateway refuses).
    DeclineCard,
    /// The account moves to this country and renews through a Renewal deal (entity change).
    MoveAndRenew(&'static str),
}

/// One customer of the year.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// 1-based number, part of the email.
    pub n: usize,
    /// Email (unique).
    pub email: String,
    /// Display name.
    pub name: String,
    /// The country as the customer typed it (free text; the edge normalises it).
    pub country: &'static str,
    /// How they arrive.
    pub kind: Kind,
    /// The step they arrive at.
    pub joined: usize,
    /// What they do later: (step, action), steps after `joined`.
    pub later: Vec<(usize, Action)>,
}

/// An input meant to fail, with the reason the hub must give.
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    /// A contact request whose country no one can map.
    UnmappableCountry,
    /// A signup without a company (rule 2: required for Marketo and Salesforce).
    LeadWithoutCompany,
    /// A store purchase of a plan whose SKU is not in Zuora's catalog.
    UnknownSku,
    /// A deal whose Party__c is not a party kind.
    UnknownParty,
    /// An Unauthorized Reseller deal without Reseller_Name__c.
    ResellerWithoutName,
}

impl Bad {
    /// Every kind, in the order the demo sends them.
    pub const ALL: [Bad; 5] = [
        Bad::UnmappableCountry,
        Bad::LeadWithoutCompany,
        Bad::UnknownSku,
        Bad::UnknownParty,
        Bad::ResellerWithoutName,
    ];

    /// A text the dead letter's reason must contain.
    pub fn needle(&self) -> &'static str {
        match self {
            Bad::UnmappableCountry => "Untied Kingdom",
            Bad::LeadWithoutCompany => "LeadCaptured.company",
            Bad::UnknownSku => "enterprise-saas-1y",
            Bad::UnknownParty => "Party__c",
            Bad::ResellerWithoutName => "Reseller_Name__c",
        }
    }

    /// How many dead letters it makes (the lead without company: one per lead app).
    pub fn letters(&self) -> usize {
        match self {
            Bad::LeadWithoutCompany => 2,
            _ => 1,
        }
    }

    /// Its line in the summary.
    pub fn label(&self) -> &'static str {
        match self {
            Bad::UnmappableCountry => "country no one can map (contact request)",
            Bad::LeadWithoutCompany => {
                "lead without company (rule 2), in Marketo's and Salesforce's sinks"
            }
            Bad::UnknownSku => "purchase of a SKU not in Zuora's catalog",
            Bad::UnknownParty => "deal with an unknown Party__c",
            Bad::ResellerWithoutName => "Unauthorized Reseller deal without Reseller_Name__c",
        }
    }

    /// The step it is sent at.
    pub fn step(&self) -> usize {
        match self {
            Bad::UnmappableCountry => 3,
            Bad::LeadWithoutCompany => 6,
            Bad::UnknownSku => 9,
            Bad::UnknownParty => 12,
            Bad::ResellerWithoutName => 15,
        }
    }
}

/// Later actions of one customer: (step, action).
type Later = Vec<(usize, Action)>;

/// The planned year.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Every customer, in the order they are created.
    pub customers: Vec<Customer>,
    /// The intentionally bad inputs.
    pub bad: Vec<Bad>,
}

const TYPED_COUNTRIES: [&str; 10] = [
    "UK",
    "United Kingdom",
    "Germany",
    "us",
    "United States",
    "Holland",
    "France",
    "Australia",
    "Japan",
    "Canada",
];
const DEAL_COUNTRIES: [&str; 9] = ["DE", "GB", "US", "FR", "NL", "AU", "JP", "CA", "IE"];
const RESELLERS: [(&str, bool); 3] = [
    ("Northwind Partners", true),
    ("Contoso Resale", true),
    ("Grey Market Ltd", false),
];

impl Scenario {
    /// The year of `customers` customers planned from `seed`. Whatever the seed, it holds at
    /// least one of everything the demo shows (the first customers are placed by hand).
    pub fn plan(customers: usize, seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(customers);
        for i in 0..customers {
            let n = i + 1;
            let country = TYPED_COUNTRIES[rng.gen_range(0..TYPED_COUNTRIES.len())];
            // A quarter arrive in January, so their terms end (and renew) inside the demo.
            let joined = if rng.gen_bool(0.25) {
                rng.gen_range(0..2)
            } else {
                rng.gen_range(0..23)
            };
            let roll: f64 = rng.gen();
            let kind = if roll < 0.25 {
                let forms = [
                    Form::Trial,
                    Form::Signup,
                    Form::ContactSales,
                    Form::Generic,
                    Form::AbandonedCart,
                ];
                Kind::Lead {
                    form: forms[rng.gen_range(0..forms.len())],
                    company: format!("Company {n}"),
                }
            } else if roll < 0.75 {
                let deployment = if rng.gen_bool(0.6) {
                    "saas"
                } else {
                    "self_managed"
                };
                let c: f64 = rng.gen();
                let (channel, reseller) = if c < 0.75 {
                    ("web_store", None)
                } else if c < 0.85 {
                    ("aws_marketplace", None)
                } else if c < 0.92 {
                    ("govuk_digital_marketplace", None)
                } else {
                    (
                        "reseller",
                        Some(RESELLERS[rng.gen_range(0..RESELLERS.len())]),
                    )
                };
                Kind::Store {
                    deployment,
                    plan: if rng.gen_bool(0.7) {
                        "premium"
                    } else {
                        "ultimate"
                    },
                    seats: rng.gen_range(1..60),
                    channel,
                    reseller,
                }
            } else {
                let saas = rng.gen_bool(0.6);
                let p: f64 = rng.gen();
                let party = if p < 0.8 {
                    "Direct"
                } else if p < 0.9 {
                    "Authorized Reseller"
                } else {
                    "Unauthorized Reseller"
                };
                let tier = if rng.gen_bool(0.5) {
                    "premium"
                } else {
                    "ultimate"
                };
                Kind::Deal {
                    country: DEAL_COUNTRIES[rng.gen_range(0..DEAL_COUNTRIES.len())],
                    deployment: if saas { "SaaS" } else { "Self-Managed" },
                    sku: match (tier, saas) {
                        ("premium", true) => "premium-saas-1y",
                        ("premium", false) => "premium-self-managed-1y",
                        (_, true) => "ultimate-saas-1y",
                        (_, false) => "ultimate-self-managed-1y",
                    },
                    seats: rng.gen_range(10..500),
                    party,
                }
            };
            let mut later = Vec::new();
            // Later actions fall inside the first term and before January 2027, where terms
            // end and renew.
            let after = |rng: &mut StdRng, from: usize| rng.gen_range((from + 1).min(23)..24);
            let self_managed = matches!(
                kind,
                Kind::Store {
                    deployment: "self_managed",
                    ..
                } | Kind::Deal {
                    deployment: "Self-Managed",
                    ..
                }
            );
            match &kind {
                Kind::Lead { .. } => {}
                Kind::Store {
                    deployment, seats, ..
                } => {
                    if *deployment == "self_managed" {
                        if rng.gen_bool(0.85) {
                            let s = after(&mut rng, joined);
                            later.push((s, Action::AcceptEula));
                        }
                    } else if rng.gen_bool(0.15) {
                        later.push((
                            after(&mut rng, joined),
                            Action::AddSeats(rng.gen_range(1..20)),
                        ));
                    }
                    if self_managed && rng.gen_bool(0.3) {
                        let active = seats + 5 + rng.gen_range(0..10);
                        later.push((after(&mut rng, joined), Action::Usage(active, 2, 3)));
                    }
                    let c: f64 = rng.gen();
                    if c < 0.08 {
                        let reason = if rng.gen_bool(0.7) {
                            "customer_request"
                        } else {
                            "wrong_seat_count"
                        };
                        later.push((after(&mut rng, joined), Action::Cancel(reason)));
                    } else if c < 0.2 && *deployment == "saas" {
                        later.push((after(&mut rng, joined), Action::AutoRenew(false)));
                    }
                }
                Kind::Deal { .. } => {
                    if rng.gen_bool(0.3) {
                        later.push((after(&mut rng, joined), Action::AutoRenew(true)));
                    }
                    if self_managed && rng.gen_bool(0.6) {
                        later.push((after(&mut rng, joined), Action::AcceptEula));
                    }
                }
            }
            // A cancelled subscription takes no more seats: a cancellation drawn before the
            // seats are added moves to their step (and acts after them).
            if let Some(seats) = later
                .iter()
                .filter(|(_, a)| matches!(a, Action::AddSeats(_)))
                .map(|(s, _)| *s)
                .max()
            {
                for (s, a) in &mut later {
                    if matches!(a, Action::Cancel(_)) {
                        *s = (*s).max(seats);
                    }
                }
            }
            later.sort_by_key(|(s, _)| *s);
            out.push(Customer {
                n,
                email: format!("customer{n}@example.com"),
                name: format!("Customer {n}"),
                country,
                kind,
                joined,
                later,
            });
        }
        // The shows every year has, placed on the first customers whatever the seed drew.
        let fixed: [(Kind, usize, Later); 4] = [
            // A January web-store SaaS customer whose card declines at renewal.
            (
                Kind::Store {
                    deployment: "saas",
                    plan: "premium",
                    seats: 10,
                    channel: "web_store",
                    reseller: None,
                },
                0,
                vec![(20, Action::DeclineCard)],
            ),
            // A self-managed customer whose account finance sets Silent before the EULA.
            (
                Kind::Store {
                    deployment: "self_managed",
                    plan: "ultimate",
                    seats: 25,
                    channel: "web_store",
                    reseller: None,
                },
                2,
                vec![(4, Action::Silent), (6, Action::AcceptEula)],
            ),
            // A German deal whose account moves to the UK and renews on GitLab Ltd.
            (
                Kind::Deal {
                    country: "DE",
                    deployment: "SaaS",
                    sku: "premium-saas-1y",
                    seats: 40,
                    party: "Direct",
                },
                0,
                vec![(24, Action::MoveAndRenew("GB"))],
            ),
            // A self-managed customer above its seats: a true-up.
            (
                Kind::Store {
                    deployment: "self_managed",
                    plan: "premium",
                    seats: 20,
                    channel: "web_store",
                    reseller: None,
                },
                1,
                vec![(3, Action::AcceptEula), (8, Action::Usage(30, 3, 7))],
            ),
        ];
        for (c, (kind, joined, later)) in out.iter_mut().zip(fixed) {
            c.kind = kind;
            c.joined = joined;
            c.later = later;
        }
        out.sort_by_key(|c| (c.joined, c.n));
        Scenario {
            customers: out,
            bad: Bad::ALL.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_plans_the_same_year_and_another_seed_another() {
        assert_eq!(Scenario::plan(300, 7), Scenario::plan(300, 7));
        assert_ne!(Scenario::plan(300, 7), Scenario::plan(300, 8));
    }

    #[test]
    fn every_later_action_comes_after_its_customer_arrives_and_inside_the_year() {
        for seed in 0..20 {
            for c in Scenario::plan(200, seed).customers {
                assert!(c.joined < STEPS, "{c:?}");
                for (s, _) in &c.later {
                    assert!(*s > c.joined && *s < STEPS, "{c:?}");
                }
            }
        }
    }

    #[test]
    fn no_seats_are_added_to_a_subscription_after_it_is_cancelled() {
        // 2,000 customers of seed 2026 (the soak's) drew one such pair before this rule.
        for seed in [2026, 7, 1] {
            for c in Scenario::plan(2000, seed).customers {
                let cancel = c
                    .later
                    .iter()
                    .position(|(_, a)| matches!(a, Action::Cancel(_)));
                let seats = c
                    .later
                    .iter()
                    .rposition(|(_, a)| matches!(a, Action::AddSeats(_)));
                if let (Some(cancel), Some(seats)) = (cancel, seats) {
                    assert!(seats < cancel, "{c:?}");
                }
            }
        }
    }

    #[test]
    fn the_year_holds_each_kind_of_customer_and_action() {
        let s = Scenario::plan(300, 2026);
        let kinds = |f: &dyn Fn(&Customer) -> bool| s.customers.iter().filter(|c| f(c)).count();
        assert!(kinds(&|c| matches!(c.kind, Kind::Lead { .. })) > 30);
        for ch in [
            "web_store",
            "aws_marketplace",
            "govuk_digital_marketplace",
            "reseller",
        ] {
            assert!(
                kinds(&|c| matches!(&c.kind, Kind::Store { channel, .. } if *channel == ch)) > 0,
                "{ch}"
            );
        }
        for party in ["Direct", "Authorized Reseller", "Unauthorized Reseller"] {
            assert!(
                kinds(&|c| matches!(&c.kind, Kind::Deal { party: p, .. } if *p == party)) > 0,
                "{party}"
            );
        }
        let actions: Vec<&Action> = s
            .customers
            .iter()
            .flat_map(|c| c.later.iter().map(|(_, a)| a))
            .collect();
        for want in [
            Action::AcceptEula,
            Action::Silent,
            Action::DeclineCard,
            Action::MoveAndRenew("GB"),
            Action::AutoRenew(false),
            Action::AutoRenew(true),
        ] {
            assert!(actions.contains(&&want), "{want:?}");
        }
        assert!(actions.iter().any(|a| matches!(a, Action::Cancel(_))));
        assert!(actions.iter().any(|a| matches!(a, Action::AddSeats(_))));
        assert!(actions.iter().any(|a| matches!(a, Action::Usage(..))));
    }

    #[test]
    fn the_steps_run_from_new_year_2026_to_february_2027() {
        assert_eq!(step_date(0).to_string(), "2026-01-01");
        assert_eq!(step_date(1).to_string(), "2026-01-15");
        assert_eq!(step_date(23).to_string(), "2026-12-15");
        assert_eq!(step_date(24).to_string(), "2027-01-01");
        assert_eq!(step_date(STEPS - 1).to_string(), "2027-02-01");
    }
}
