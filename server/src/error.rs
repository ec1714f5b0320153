//! Errors of the engine. Input errors (what a client did wrong) are kept apart
//! from storage errors (what went wrong here).

use tally_core::error_code::ErrorCode;

/// A request the ledger refuses: a stable code, the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message} (field: {field})")]
pub struct LedgerError {
    pub code: ErrorCode,
    /// Path of the offending field, e.g. `postings[1].amount`; empty if none.
    pub field: String,
    pub message: String,
}

impl LedgerError {
    pub fn new(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        LedgerError {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix` put before its field path
    /// (`postings[0].amount` under `items[3].transaction`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Failures of the storage layer or the server itself; never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("journal corrupt: {0}")]
    Corrupt(String),
    /// A position (seq, tree size) past what the journal holds.
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer stopped (shutdown, or a storage failure made it stop).
    #[error("the ledger is not accepting writes: {0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
