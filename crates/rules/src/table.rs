//! Helpers every table uses: parse a file into its raw shape, and turn the raw strings into
//! typed values with errors that name the file, the key and the value.

use l2f_contracts::events::{
    BillingBatch, CancellationReason, CommunicationProfile, Deployment, SalesChannel, SourceSystem,
    ZuoraEntity,
};
use l2f_contracts::CountryCode;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// One table file being read: carries its name into every error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Src<'a> {
    pub(crate) file: &'a str,
}

impl<'a> Src<'a> {
    /// A table named `file`.
    pub(crate) fn new(file: &'a str) -> Self {
        Src { file }
    }

    /// Parse `text` into the table's raw (deny_unknown_fields) shape.
    pub(crate) fn parse<T: DeserializeOwned>(self, text: &str) -> Result<T> {
        toml::from_str(text).map_err(|e| Error::Parse {
            file: self.file.to_owned(),
            source: Box::new(e),
        })
    }

    /// An [`Error::Invalid`] for `key = value`.
    pub(crate) fn invalid(
        self,
        key: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The enum variant whose Avro symbol is `value`.
    pub(crate) fn symbol<T: Symbol>(self, key: &str, value: &str) -> Result<T> {
        T::VARIANTS
            .iter()
            .zip(T::SYMBOLS)
            .find(|(_, s)| **s == value)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                self.invalid(
                    key,
                    format!("{value:?}"),
                    format!(
                        "not a {}; expected one of {}",
                        T::NAME,
                        T::SYMBOLS.join(", ")
                    ),
                )
            })
    }

    /// A table keyed by the symbols of `K` that must list every one of them (so no input
    /// can fall through): each key parsed as a `K`, each entry converted by `value`, and the
    /// result keyed by the symbol. `what` ends the "missing" error: "every {what}".
    pub(crate) fn every<K: Symbol, R, V>(
        self,
        prefix: &str,
        raw: BTreeMap<String, R>,
        what: &str,
        mut value: impl FnMut(&str, R) -> Result<V>,
    ) -> Result<BTreeMap<&'static str, V>> {
        let mut out = BTreeMap::new();
        for (k, r) in raw {
            let key = format!("{prefix}.{k}");
            let variant: K = self.symbol(&key, &k)?;
            out.insert(variant.sym(), value(&key, r)?);
        }
        match K::SYMBOLS.iter().find(|s| !out.contains_key(**s)) {
            Some(missing) => Err(self.invalid(
                format!("{prefix}.{missing}"),
                "(missing)",
                format!("every {what}"),
            )),
            None => Ok(out),
        }
    }

    /// The country whose ISO 3166-1 alpha-2 code is exactly `value`.
    pub(crate) fn country(self, key: &str, value: &str) -> Result<CountryCode> {
        CountryCode::from_code(value).ok_or_else(|| {
            self.invalid(
                key,
                format!("{value:?}"),
                "not an officially assigned ISO 3166-1 alpha-2 code (upper case; GB, not UK)",
            )
        })
    }
}

/// A contracts enum written in the tables by its Avro symbol (`GITLAB_BV`, `BATCH2`).
pub(crate) trait Symbol: Copy + 'static {
    /// The Avro enum's name, for error messages.
    const NAME: &'static str;
    /// Every variant, in symbol order.
    const VARIANTS: &'static [Self];
    /// Every symbol, in the same order.
    const SYMBOLS: &'static [&'static str];
    /// This variant's symbol.
    fn sym(self) -> &'static str;
}

macro_rules! symbol {
    ($($t:ident),+) => {$(
        impl Symbol for $t {
            const NAME: &'static str = stringify!($t);
            const VARIANTS: &'static [Self] = $t::VARIANTS;
            const SYMBOLS: &'static [&'static str] = $t::SYMBOLS;
            fn sym(self) -> &'static str {
                self.symbol()
            }
        }
    )+};
}

symbol!(
    BillingBatch,
    CancellationReason,
    CommunicationProfile,
    Deployment,
    SalesChannel,
    SourceSystem,
    ZuoraEntity
);
