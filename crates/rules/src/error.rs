//! The one error type of rule loading: every variant names the file, and a bad value also
//! names its key and the value, so finance can fix a table without reading code.

use std::path::PathBuf;

/// Why the rule tables could not be loaded. Loading fails as a whole: the hub never runs
/// with a table it could not fully validate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read (missing, permissions).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the table's shape (an unknown key, a
    /// missing key, a wrong type); toml's message carries the line and the key.
    #[error("{file}: {source}")]
    Parse {
        /// The file name, e.g. `entity.toml`.
        file: String,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value has the right type but breaks a rule of the table (an unknown symbol, a
    /// country that is not ISO, a SKU sold before its announcement period ends).
    #[error("{file}: {key} = {value}: {reason}")]
    Invalid {
        /// The file name.
        file: String,
        /// The dotted key, e.g. `sales_assisted.countries.UK`.
        key: String,
        /// The offending value as written.
        value: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// The rules directory holds a `.toml` file no table is read from (a typo'd name would
    /// otherwise be silently ignored while the real table keeps its old content).
    #[error("{}: not a rule table (expected one of: {expected})", path.display())]
    UnexpectedFile {
        /// The file.
        path: PathBuf,
        /// The table file names that are read.
        expected: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
