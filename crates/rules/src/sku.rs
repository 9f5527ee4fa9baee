//! Handbook rule 11: new SKUs must be announced 30 days before they can be sold; an order
//! for an unknown or not-yet-effective SKU is rejected with a clear reason.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use l2f_contracts::events::OrderLine;
use serde::Deserialize;
use toml::value::Datetime;

use crate::error::Result;
use crate::table::Src;

/// One sellable SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku {
    /// The id orders use, e.g. `premium-self-managed-1y`.
    pub id: String,
    /// When it was announced.
    pub announced: NaiveDate,
    /// The first day it can be sold.
    pub effective: NaiveDate,
}

/// Why an order line cannot be sold; the message is meant for the dead letters and the
/// sales rep, so it says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuRejection {
    /// The SKU is not in the catalog.
    #[error("SKU {sku:?} is not in the catalog (deploy/rules/sku.toml)")]
    Unknown {
        /// The SKU as ordered.
        sku: String,
    },
    /// The SKU exists but cannot be sold yet.
    #[error("SKU {sku:?} cannot be sold before {effective} (ordered on {ordered})")]
    NotYetEffective {
        /// The SKU as ordered.
        sku: String,
        /// Its first sellable day.
        effective: NaiveDate,
        /// The order's date.
        ordered: NaiveDate,
    },
}

/// `sku.toml`: the catalog, and the announcement period every SKU must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuTable {
    min_announce_days: u16,
    skus: BTreeMap<String, Sku>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    min_announce_days: u16,
    sku: Vec<RawSku>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSku {
    id: String,
    announced: Datetime,
    effective: Datetime,
}

/// A TOML local date (`2026-01-15`, no time, no offset) as a calendar date.
fn date(src: Src<'_>, key: &str, d: &Datetime) -> Result<NaiveDate> {
    match (d.date, d.time, d.offset) {
        (Some(x), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(x.year), u32::from(x.month), u32::from(x.day))
        }
        _ => None,
    }
    .ok_or_else(|| src.invalid(key, d, "expected a date such as 2026-01-15, without a time"))
}

impl SkuTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "sku.toml";

    /// Parse and validate the table's text: unique, non-empty ids, and every SKU effective
    /// at least `min_announce_days` after its announcement (the table itself cannot break
    /// the rule it enforces).
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let mut skus = BTreeMap::new();
        for (i, s) in raw.sku.into_iter().enumerate() {
            let key = |field: &str| format!("sku[{i}].{field}");
            if s.id.trim().is_empty() || s.id.trim() != s.id {
                return Err(src.invalid(
                    key("id"),
                    format!("{:?}", s.id),
                    "an id is non-empty, without surrounding spaces",
                ));
            }
            let announced = date(src, &key("announced"), &s.announced)?;
            let effective = date(src, &key("effective"), &s.effective)?;
            let notice = (effective - announced).num_days();
            if notice < i64::from(raw.min_announce_days) {
                return Err(src.invalid(
                    key("effective"),
                    effective,
                    format!(
                        "{} is announced on {announced}, only {notice} days before; it must be announced at least {} days before it can be sold",
                        s.id, raw.min_announce_days
                    ),
                ));
            }
            let sku = Sku {
                id: s.id.clone(),
                announced,
                effective,
            };
            if skus.insert(s.id.clone(), sku).is_some() {
                return Err(src.invalid(key("id"), format!("{:?}", s.id), "listed twice"));
            }
        }
        Ok(SkuTable {
            min_announce_days: raw.min_announce_days,
            skus,
        })
    }

    /// The minimum days between announcement and first sale, as the table says.
    pub fn min_announce_days(&self) -> u16 {
        self.min_announce_days
    }

    /// The SKU if it can be sold on `ordered`; otherwise why not.
    pub fn sellable(&self, sku: &str, ordered: NaiveDate) -> Result<&Sku, SkuRejection> {
        let found = self.skus.get(sku).ok_or_else(|| SkuRejection::Unknown {
            sku: sku.to_owned(),
        })?;
        if ordered < found.effective {
            return Err(SkuRejection::NotYetEffective {
                sku: sku.to_owned(),
                effective: found.effective,
                ordered,
            });
        }
        Ok(found)
    }

    /// Every line of an order is sellable on `ordered`; otherwise the first line that is not.
    pub fn check_order(&self, lines: &[OrderLine], ordered: NaiveDate) -> Result<(), SkuRejection> {
        lines
            .iter()
            .try_for_each(|l| self.sellable(&l.sku, ordered).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rules;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    const TABLE: &str = r#"
        min_announce_days = 30
        [[sku]]
        id = "ultimate-saas-1y"
        announced = 2026-01-01
        effective = 2026-01-31
    "#;

    /// "An order for an unknown or not-yet-effective SKU is rejected with a clear reason."
    #[test]
    fn handbook_rule_11_orders() {
        let t = SkuTable::parse(TABLE).expect("valid table");
        assert_eq!(
            t.sellable("ultimate-saas-2y", day(2026, 3, 1))
                .unwrap_err()
                .to_string(),
            "SKU \"ultimate-saas-2y\" is not in the catalog (deploy/rules/sku.toml)"
        );
        assert_eq!(
            t.sellable("ultimate-saas-1y", day(2026, 1, 30))
                .unwrap_err()
                .to_string(),
            "SKU \"ultimate-saas-1y\" cannot be sold before 2026-01-31 (ordered on 2026-01-30)"
        );
        assert_eq!(
            t.sellable("ultimate-saas-1y", day(2026, 1, 31))
                .map(|s| s.effective),
            Ok(day(2026, 1, 31))
        );
    }

    /// "New SKUs must be announced 30 days before they can be sold": a table with a SKU
    /// effective after 29 days is refused.
    #[test]
    fn handbook_rule_11_table_announcement_period() {
        let text = TABLE.replace("2026-01-31", "2026-01-30");
        let e = SkuTable::parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("sku.toml: sku[0].effective = 2026-01-30: ultimate-saas-1y is announced on 2026-01-01, only 29 days before"), "{e}");
    }

    /// A date with a time is not a day; refused naming key and value.
    #[test]
    fn a_timestamp_is_refused() {
        let text = TABLE.replace("2026-01-01", "2026-01-01T10:00:00Z");
        let e = SkuTable::parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("sku.toml: sku[0].announced = 2026-01-01T10:00:00Z"),
            "{e}"
        );
    }

    /// The contracts crate's example order (a reseller order of 2026-12-01) sells only SKUs
    /// of the shipped catalog.
    #[test]
    fn the_example_order_is_sellable() {
        let order = l2f_contracts::examples::order_placed();
        assert_eq!(
            rules().skus.check_order(&order.lines, order.term_start),
            Ok(())
        );
        let mut unknown = order.lines.clone();
        unknown[1].sku = "ci-minutes-999".into();
        assert!(matches!(
            rules().skus.check_order(&unknown, order.term_start),
            Err(SkuRejection::Unknown { sku }) if sku == "ci-minutes-999"
        ));
    }

    proptest! {
        /// A SKU is accepted in the table exactly when it is announced at least
        /// `min_announce_days` before it is effective, and then it is sellable from its
        /// effective day on and never before.
        #[test]
        fn announcement_period_is_enforced(start in 0i64..20_000, gap in -5i64..120, min in 0u16..90, after in -60i64..60) {
            let announced = day(1990, 1, 1) + chrono::Days::new(start as u64);
            let effective = announced + chrono::TimeDelta::days(gap);
            let text = format!("min_announce_days = {min}\n[[sku]]\nid = \"x\"\nannounced = {announced}\neffective = {effective}\n");
            match SkuTable::parse(&text) {
                Ok(t) => {
                    prop_assert!(gap >= i64::from(min));
                    let ordered = effective + chrono::TimeDelta::days(after);
                    prop_assert_eq!(t.sellable("x", ordered).is_ok(), after >= 0);
                }
                Err(e) => {
                    prop_assert!(gap < i64::from(min), "{}", e);
                    prop_assert!(e.to_string().starts_with("sku.toml: sku[0].effective = "), "{}", e);
                }
            }
        }
    }
}
