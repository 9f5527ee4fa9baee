//! The handbook's business rules (DESIGN.md, rules 3–12) as small pure functions over
//! tables that finance can change, kept in `deploy/rules/*.toml`.
//!
//! Guarantees: [`Rules::load`] reads and validates every table before the hub starts, and
//! fails as a whole with an [`Error`] that names the file, the key and the value, so a
//! running hub never holds a half-valid table. Once loaded, every rule is total over its
//! inputs: every ISO country has exactly one Zuora entity for every party kind, every sales
//! channel a billing batch, every deployment × channel a starting auto-renew flag, every
//! communication profile and cancellation reason its effects; no SKU in the catalog can be
//! sold before its announcement period is over. The rule functions do no I/O and keep no
//! state: the same inputs give the same answer.

pub mod auto_renew;
pub mod batch;
pub mod billable;
pub mod cancellation;
pub mod communication;
pub mod entity;
pub mod error;
pub mod notices;
pub mod sandbox;
pub mod sku;
mod table;

use std::path::{Path, PathBuf};

pub use auto_renew::AutoRenewTable;
pub use batch::BatchTable;
pub use billable::BillableTable;
pub use cancellation::CancellationTable;
pub use communication::CommunicationTable;
pub use entity::{EntityTable, PartyKind};
pub use error::{Error, Result};
pub use notices::NoticeTable;
pub use sandbox::SandboxTable;
pub use sku::{SkuRejection, SkuTable};

/// Every rule table, loaded and validated: what the hub consults to decide an entity, a
/// batch, a notice or a sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Rule 3: Zuora entity by party kind and billing country.
    pub entity: EntityTable,
    /// Rule 4: billing batch.
    pub batch: BatchTable,
    /// Rule 5: auto-renew defaults.
    pub auto_renew: AutoRenewTable,
    /// Rule 6: communication profiles.
    pub communication: CommunicationTable,
    /// Rule 7: renewal notice cadence.
    pub notices: NoticeTable,
    /// Rule 9: billable users.
    pub billable: BillableTable,
    /// Rule 10: cancellation reasons.
    pub cancellation: CancellationTable,
    /// Rule 11: SKU catalog.
    pub skus: SkuTable,
    /// Rule 12: sandbox pairing.
    pub sandbox: SandboxTable,
}

/// Every table file [`Rules::load`] reads, so a stray file in the directory is noticed.
pub const FILES: [&str; 9] = [
    EntityTable::FILE,
    BatchTable::FILE,
    AutoRenewTable::FILE,
    CommunicationTable::FILE,
    NoticeTable::FILE,
    BillableTable::FILE,
    CancellationTable::FILE,
    SkuTable::FILE,
    SandboxTable::FILE,
];

impl Rules {
    /// Read and validate every table of `dir` (normally `deploy/rules`). A missing table, a
    /// `.toml` file that is no table, or any invalid value fails the whole load.
    pub fn load(dir: impl AsRef<Path>) -> Result<Rules> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| Error::Read {
                    path: dir.to_owned(),
                    source,
                })?
                .path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.extension().is_some_and(|e| e == "toml") && !FILES.contains(&name) {
                return Err(Error::UnexpectedFile {
                    path,
                    expected: FILES.join(", "),
                });
            }
        }
        let read = |file: &str| -> Result<String> {
            let path: PathBuf = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
        };
        Rules::parse_with(read)
    }

    /// The tables shipped in `deploy/rules`, compiled into the binary, so an installed hub
    /// runs without a copy of the repository; a test proves they load.
    pub fn embedded() -> Rules {
        let text = |file: &str| -> Result<String> {
            EMBEDDED
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, text)| (*text).to_string())
                .ok_or_else(|| Error::Read {
                    path: PathBuf::from("built-in").join(file),
                    source: std::io::ErrorKind::NotFound.into(),
                })
        };
        // The shipped tables are validated by `the_built_in_tables_are_the_shipped_ones`.
        Rules::parse_with(text).unwrap_or_else(|e| panic!("built-in rule tables: {e}"))
    }

    fn parse_with(read: impl Fn(&str) -> Result<String>) -> Result<Rules> {
        Ok(Rules {
            entity: EntityTable::parse(&read(EntityTable::FILE)?)?,
            batch: BatchTable::parse(&read(BatchTable::FILE)?)?,
            auto_renew: AutoRenewTable::parse(&read(AutoRenewTable::FILE)?)?,
            communication: CommunicationTable::parse(&read(CommunicationTable::FILE)?)?,
            notices: NoticeTable::parse(&read(NoticeTable::FILE)?)?,
            billable: BillableTable::parse(&read(BillableTable::FILE)?)?,
            cancellation: CancellationTable::parse(&read(CancellationTable::FILE)?)?,
            skus: SkuTable::parse(&read(SkuTable::FILE)?)?,
            sandbox: SandboxTable::parse(&read(SandboxTable::FILE)?)?,
        })
    }
}

/// The shipped tables, by file name, as compiled in.
const EMBEDDED: [(&str, &str); 9] = [
    (
        EntityTable::FILE,
        include_str!("../../../deploy/rules/entity.toml"),
    ),
    (
        BatchTable::FILE,
        include_str!("../../../deploy/rules/billing_batch.toml"),
    ),
    (
        AutoRenewTable::FILE,
        include_str!("../../../deploy/rules/auto_renew.toml"),
    ),
    (
        CommunicationTable::FILE,
        include_str!("../../../deploy/rules/communication.toml"),
    ),
    (
        NoticeTable::FILE,
        include_str!("../../../deploy/rules/renewal_notices.toml"),
    ),
    (
        BillableTable::FILE,
        include_str!("../../../deploy/rules/billable_users.toml"),
    ),
    (
        CancellationTable::FILE,
        include_str!("../../../deploy/rules/cancellation.toml"),
    ),
    (
        SkuTable::FILE,
        include_str!("../../../deploy/rules/sku.toml"),
    ),
    (
        SandboxTable::FILE,
        include_str!("../../../deploy/rules/sandbox.toml"),
    ),
];

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use l2f_contracts::CountryCode;

    use super::Rules;

    /// The shipped tables of `deploy/rules`, loaded once: the handbook-case tests protect
    /// the data the hub actually runs with.
    pub(crate) fn rules() -> &'static Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES.get_or_init(|| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rules");
            Rules::load(dir).unwrap_or_else(|e| panic!("shipped rules: {e}"))
        })
    }

    /// A country by its code, for test tables.
    pub(crate) fn country(code: &str) -> CountryCode {
        CountryCode::from_code(code).unwrap_or_else(|| panic!("{code} is ISO"))
    }

    #[test]
    fn the_built_in_tables_are_the_shipped_ones() {
        assert_eq!(&Rules::embedded(), rules());
        let names: Vec<&str> = super::EMBEDDED.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, super::FILES);
    }
}
