//! ISO 3166-1 alpha-2 country codes and the normalisation of free-text country input
//! (the handbook's rule 1: "UK" and country names map to codes; the rest is refused).

/// The officially assigned ISO 3166-1 alpha-2 codes.
pub const ISO_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Common spellings seen in forms, mapped to their code.
const NAMES: &[(&str, &str)] = &[
    ("united states", "US"),
    ("united states of america", "US"),
    ("usa", "US"),
    ("u.s.a.", "US"),
    ("u.s.", "US"),
    ("america", "US"),
    ("united kingdom", "GB"),
    ("uk", "GB"),
    ("u.k.", "GB"),
    ("great britain", "GB"),
    ("britain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("germany", "DE"),
    ("deutschland", "DE"),
    ("netherlands", "NL"),
    ("the netherlands", "NL"),
    ("holland", "NL"),
    ("nederland", "NL"),
    ("australia", "AU"),
    ("canada", "CA"),
    ("france", "FR"),
    ("spain", "ES"),
    ("españa", "ES"),
    ("italy", "IT"),
    ("ireland", "IE"),
    ("belgium", "BE"),
    ("switzerland", "CH"),
    ("austria", "AT"),
    ("sweden", "SE"),
    ("norway", "NO"),
    ("denmark", "DK"),
    ("finland", "FI"),
    ("poland", "PL"),
    ("portugal", "PT"),
    ("japan", "JP"),
    ("china", "CN"),
    ("india", "IN"),
    ("brazil", "BR"),
    ("mexico", "MX"),
    ("new zealand", "NZ"),
    ("singapore", "SG"),
    ("south africa", "ZA"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("israel", "IL"),
    ("ukraine", "UA"),
    ("argentina", "AR"),
    ("czech republic", "CZ"),
    ("czechia", "CZ"),
    ("greece", "GR"),
    ("hungary", "HU"),
    ("romania", "RO"),
    ("turkey", "TR"),
    ("türkiye", "TR"),
];

/// Whether `code` is an assigned alpha-2 code (exact, upper case).
pub fn is_iso_alpha2(code: &str) -> bool {
    ISO_ALPHA2.binary_search(&code).is_ok()
}

/// Maps free text ("UK", "germany", "de") to an ISO alpha-2 code, or `None`.
pub fn normalise(input: &str) -> Option<&'static str> {
    let t = input.trim();
    let upper = t.to_ascii_uppercase();
    if let Ok(i) = ISO_ALPHA2.binary_search(&upper.as_str()) {
        return Some(ISO_ALPHA2[i]);
    }
    let lower = t.to_lowercase();
    NAMES.iter().find(|(n, _)| *n == lower).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_for_binary_search() {
        assert!(ISO_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ISO_ALPHA2.len(), 249);
    }

    #[test]
    fn uk_is_not_a_code_but_maps_to_gb() {
        assert!(!is_iso_alpha2("UK"));
        assert_eq!(normalise("UK"), Some("GB"));
        assert_eq!(normalise(" germany "), Some("DE"));
        assert_eq!(normalise("nl"), Some("NL"));
        assert_eq!(normalise("Atlantis"), None);
    }
}
