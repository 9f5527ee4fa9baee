//! Handbook rule 3: the Zuora entity that invoices a party, by its ISO-2 billing country.

use std::collections::BTreeMap;

use l2f_contracts::events::{Reseller, SalesChannel, ZuoraEntity};
use l2f_contracts::CountryCode;
use serde::Deserialize;

use crate::error::Result;
use crate::table::Src;

/// Who is being invoiced: the entity table has one column per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartyKind {
    /// A web-direct (web store) first purchase.
    WebDirect,
    /// A customer of a sales-assisted deal.
    SalesAssisted,
    /// A reseller without GitLab's authorization.
    UnauthorizedReseller,
    /// An authorized reseller.
    AuthorizedReseller,
}

impl PartyKind {
    /// Every kind, so tests and callers can cover the whole table.
    pub const ALL: [PartyKind; 4] = [
        PartyKind::WebDirect,
        PartyKind::SalesAssisted,
        PartyKind::UnauthorizedReseller,
        PartyKind::AuthorizedReseller,
    ];

    /// The party kind of an order, so callers need not repeat the mapping: a reseller on the
    /// order is the invoiced party whatever the channel; the web store is web direct; every
    /// other channel (sales-assisted, the AWS and GOV.UK marketplaces) is sales-assisted.
    pub fn of_order(channel: SalesChannel, reseller: Option<&Reseller>) -> PartyKind {
        match (reseller, channel) {
            (Some(r), _) if r.authorized => PartyKind::AuthorizedReseller,
            (Some(_), _) | (None, SalesChannel::Reseller) => PartyKind::UnauthorizedReseller,
            (None, SalesChannel::WebStore) => PartyKind::WebDirect,
            (None, _) => PartyKind::SalesAssisted,
        }
    }
}

/// `entity.toml`: per party kind, the entity for listed countries and for every other one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTable {
    columns: [Column; 4],
}

/// One party kind's column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    other: ZuoraEntity,
    countries: BTreeMap<CountryCode, ZuoraEntity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    web_direct: RawColumn,
    sales_assisted: RawColumn,
    unauthorized_reseller: RawColumn,
    authorized_reseller: RawColumn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    other: String,
    #[serde(default)]
    countries: BTreeMap<String, String>,
}

impl EntityTable {
    /// The table's file name in the rules directory.
    pub const FILE: &'static str = "entity.toml";

    /// Parse and validate the table's text.
    pub fn parse(text: &str) -> Result<Self> {
        let src = Src::new(Self::FILE);
        let raw: Raw = src.parse(text)?;
        let column = |name: &str, c: RawColumn| -> Result<Column> {
            let other = src.symbol(&format!("{name}.other"), &c.other)?;
            let countries = c
                .countries
                .iter()
                .map(|(k, v)| {
                    let key = format!("{name}.countries.{k}");
                    Ok((src.country(&key, k)?, src.symbol(&key, v)?))
                })
                .collect::<Result<_>>()?;
            Ok(Column { other, countries })
        };
        Ok(EntityTable {
            columns: [
                column("web_direct", raw.web_direct)?,
                column("sales_assisted", raw.sales_assisted)?,
                column("unauthorized_reseller", raw.unauthorized_reseller)?,
                column("authorized_reseller", raw.authorized_reseller)?,
            ],
        })
    }

    /// The entity that invoices a `party` billed to `country`: exactly one for every pair,
    /// because a column lists some countries and names the entity for all others.
    pub fn entity(&self, party: PartyKind, country: CountryCode) -> ZuoraEntity {
        let column = &self.columns[party as usize];
        column
            .countries
            .get(&country)
            .copied()
            .unwrap_or(column.other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{country, rules};
    use proptest::prelude::*;
    use ZuoraEntity::*;

    /// "A sales assisted customer ... in the Netherlands (NL) will be billed out of GitLab BV";
    /// DESIGN.md rule 3, row by row, for every party kind.
    #[test]
    fn handbook_rule_3_table() {
        use PartyKind::*;
        let cases = [
            // Web-direct purchases: always GitLab Inc. (US) at first purchase.
            (WebDirect, "NL", GitlabInc),
            (WebDirect, "DE", GitlabInc),
            (WebDirect, "GB", GitlabInc),
            (WebDirect, "AU", GitlabInc),
            (WebDirect, "JP", GitlabInc),
            // Sales-assisted: NL → BV, DE → GmbH, GB → Ltd, AU → Pty Ltd, any other → Inc.
            (SalesAssisted, "NL", GitlabBv),
            (SalesAssisted, "DE", GitlabGmbh),
            (SalesAssisted, "GB", GitlabLtd),
            (SalesAssisted, "AU", GitlabPtyLtd),
            (SalesAssisted, "US", GitlabInc),
            (SalesAssisted, "FR", GitlabInc),
            // Unauthorized resellers: same as sales-assisted.
            (UnauthorizedReseller, "NL", GitlabBv),
            (UnauthorizedReseller, "DE", GitlabGmbh),
            (UnauthorizedReseller, "GB", GitlabLtd),
            (UnauthorizedReseller, "AU", GitlabPtyLtd),
            (UnauthorizedReseller, "BR", GitlabInc),
            // Authorized resellers: DE → GmbH, GB → Ltd, US → Inc, AU → Pty Ltd, any other → BV.
            (AuthorizedReseller, "DE", GitlabGmbh),
            (AuthorizedReseller, "GB", GitlabLtd),
            (AuthorizedReseller, "US", GitlabInc),
            (AuthorizedReseller, "AU", GitlabPtyLtd),
            (AuthorizedReseller, "NL", GitlabBv),
            (AuthorizedReseller, "JP", GitlabBv),
        ];
        let table = &rules().entity;
        for (party, code, want) in cases {
            assert_eq!(
                table.entity(party, country(code)),
                want,
                "{party:?} in {code}"
            );
        }
    }

    /// The order example of the contracts crate: an authorized reseller in Germany is
    /// invoiced by GitLab GmbH.
    #[test]
    fn party_kind_of_an_order() {
        let authorized = Reseller {
            name: "Partner GmbH".into(),
            authorized: true,
        };
        let unauthorized = Reseller {
            name: "Shop Ltd".into(),
            authorized: false,
        };
        let of = PartyKind::of_order;
        assert_eq!(
            of(SalesChannel::Reseller, Some(&authorized)),
            PartyKind::AuthorizedReseller
        );
        assert_eq!(
            of(SalesChannel::Reseller, Some(&unauthorized)),
            PartyKind::UnauthorizedReseller
        );
        assert_eq!(
            of(SalesChannel::Reseller, None),
            PartyKind::UnauthorizedReseller
        );
        assert_eq!(of(SalesChannel::WebStore, None), PartyKind::WebDirect);
        assert_eq!(
            of(SalesChannel::SalesAssisted, None),
            PartyKind::SalesAssisted
        );
        assert_eq!(
            of(SalesChannel::AwsMarketplace, None),
            PartyKind::SalesAssisted
        );
    }

    /// The error of parsing a table whose sales-assisted column lists `countries` and which
    /// has the `extra` lines besides.
    fn refusal(countries: &str, extra: &str) -> String {
        let text = format!(
            r#"
            web_direct = {{ other = "GITLAB_INC" }}
            sales_assisted = {{ other = "GITLAB_INC", countries = {{ {countries} }} }}
            unauthorized_reseller = {{ other = "GITLAB_INC" }}
            authorized_reseller = {{ other = "GITLAB_BV" }}
            {extra}
            "#
        );
        EntityTable::parse(&text).unwrap_err().to_string()
    }

    /// "UK" is not an ISO code: a table that uses it is refused, naming file, key and value.
    #[test]
    fn a_table_with_uk_is_refused() {
        let e = refusal(r#"UK = "GITLAB_LTD""#, "");
        assert!(
            e.starts_with("entity.toml: sales_assisted.countries.UK = \"UK\""),
            "{e}"
        );
    }

    /// A misspelt entity names the symbols that would be accepted.
    #[test]
    fn an_unknown_entity_is_refused() {
        let e = refusal(r#"NL = "GITLAB_B.V.""#, "");
        assert!(
            e.contains("sales_assisted.countries.NL = \"GITLAB_B.V.\""),
            "{e}"
        );
        assert!(e.contains("GITLAB_PTY_LTD"), "{e}");
    }

    /// An unknown column (a typo) is a parse error, not an ignored column.
    #[test]
    fn an_unknown_column_is_refused() {
        let e = refusal("", r#"unauthorised_reseller = { other = "GITLAB_INC" }"#);
        assert!(
            e.contains("entity.toml") && e.contains("unauthorised_reseller"),
            "{e}"
        );
    }

    fn any_country() -> impl Strategy<Value = CountryCode> {
        let n = CountryCode::all().count() as u8;
        (0..n).prop_map(|i| CountryCode::from_index(i).expect("index in range"))
    }

    fn any_party() -> impl Strategy<Value = PartyKind> {
        proptest::sample::select(PartyKind::ALL.to_vec())
    }

    proptest! {
        /// Every ISO country maps to exactly one entity for every party kind, and outside
        /// the four listed countries each kind gets its "any other" entity.
        #[test]
        fn every_country_has_one_entity(c in any_country(), party in any_party()) {
            let table = &rules().entity;
            let e = table.entity(party, c);
            prop_assert_eq!(e, table.entity(party, c));
            let listed = match party {
                PartyKind::WebDirect => &[][..],
                PartyKind::SalesAssisted | PartyKind::UnauthorizedReseller => &["NL", "DE", "GB", "AU"][..],
                PartyKind::AuthorizedReseller => &["DE", "GB", "US", "AU"][..],
            };
            if !listed.contains(&c.as_str()) {
                let other = if party == PartyKind::AuthorizedReseller { GitlabBv } else { GitlabInc };
                prop_assert_eq!(e, other);
            }
        }
    }
}
