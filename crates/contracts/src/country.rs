//! Countries: the [`CountryCode`] type (only officially assigned ISO 3166-1 alpha-2 codes can
//! exist) and the edge normaliser for free-text input (handbook rule 1).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::countries::COUNTRIES;
use crate::error::Violation;

/// An officially assigned ISO 3166-1 alpha-2 code. "UK" and "ZZ" cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(u8);

impl CountryCode {
    /// Every assigned code, sorted: the symbols of the Avro enum `CountryCode`.
    pub fn all() -> impl Iterator<Item = &'static str> {
        COUNTRIES.iter().map(|(c, _)| *c)
    }

    /// The code if `code` is exactly an assigned alpha-2 code (upper case, no spaces).
    pub fn from_code(code: &str) -> Option<CountryCode> {
        COUNTRIES
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .ok()
            .map(|i| CountryCode(i as u8))
    }

    /// Like [`CountryCode::from_code`], but an error naming the field and the value.
    pub fn parse_strict(field: &str, code: &str) -> Result<CountryCode, Violation> {
        CountryCode::from_code(code).ok_or_else(|| {
            Violation::new(
                field,
                format!("{code:?}"),
                "not an officially assigned ISO 3166-1 alpha-2 code",
            )
        })
    }

    /// Position in the sorted list of codes: the Avro enum symbol index.
    pub fn index(self) -> u8 {
        self.0
    }

    /// The code at a symbol index, if there is one.
    pub fn from_index(i: u8) -> Option<CountryCode> {
        (usize::from(i) < COUNTRIES.len()).then_some(CountryCode(i))
    }

    /// The two-letter code.
    pub fn as_str(self) -> &'static str {
        COUNTRIES[self.0 as usize].0
    }

    /// Edge normaliser for free text from forms: ISO codes in any case, country names
    /// (English short, common or official), alpha-3 codes and everyday spellings such as
    /// "UK", "USA" or "Holland", with surrounding spaces; anything else is an error that
    /// names the field and the value.
    pub fn normalise(field: &str, input: &str) -> Result<CountryCode, Violation> {
        let key = normalise_key(input);
        if key.len() == 2 {
            if let Some(c) = CountryCode::from_code(&key.to_ascii_uppercase()) {
                return Ok(c);
            }
        }
        COUNTRIES
            .iter()
            .position(|(_, names)| names.contains(&key.as_str()))
            .map(|i| CountryCode(i as u8))
            .ok_or_else(|| {
                Violation::new(
                    field,
                    format!("{input:?}"),
                    "not a country this hub recognises: give an ISO 3166-1 alpha-2 code or an English country name",
                )
            })
    }
}

fn normalise_key(input: &str) -> String {
    input
        .trim()
        .to_lowercase()
        .replace('.', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CountryCode {
    type Err = Violation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CountryCode::parse_strict("country", s)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CountryCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 3166-1 alpha-2 code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CountryCode, E> {
                CountryCode::from_code(v).ok_or_else(|| {
                    E::custom(format!(
                        "{v:?} is not an officially assigned ISO 3166-1 alpha-2 code"
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_249_assigned_codes_and_no_uk() {
        assert_eq!(CountryCode::all().count(), 249);
        assert!(CountryCode::from_code("UK").is_none());
        assert!(CountryCode::from_code("ZZ").is_none());
        assert!(CountryCode::from_code("XK").is_none());
        assert_eq!(CountryCode::from_code("GB").unwrap().as_str(), "GB");
    }

    #[test]
    fn form_spellings_normalise_to_iso_codes() {
        for (input, code) in [
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            (" uk ", "GB"),
            ("u.k.", "GB"),
            ("gb", "GB"),
            ("  germany", "DE"),
            ("Deutschland", "DE"),
            ("United States", "US"),
            ("USA", "US"),
            ("united   states of america", "US"),
            ("the netherlands", "NL"),
            ("Netherlands", "NL"),
            ("Côte d'Ivoire", "CI"),
            ("cote d'ivoire", "CI"),
            ("AUS", "AU"),
            ("Türkiye", "TR"),
        ] {
            assert_eq!(
                CountryCode::normalise("country", input).map(|c| c.as_str()),
                Ok(code),
                "{input:?}"
            );
        }
    }

    #[test]
    fn unknown_country_error_names_field_and_value() {
        let e = CountryCode::normalise("LeadCaptured.country", "Atlantis").unwrap_err();
        assert_eq!(e.field, "LeadCaptured.country");
        assert_eq!(e.value, "\"Atlantis\"");
        let text = e.to_string();
        assert!(
            text.contains("LeadCaptured.country") && text.contains("Atlantis"),
            "{text}"
        );
        assert!(CountryCode::normalise("country", "ZZ").is_err());
        assert!(CountryCode::normalise("country", "").is_err());
    }
}
