//! The sled layout: ONE tree of caches, keys prefixed by a byte per kind, so
//! that every cache row derived from a group lands in one atomic
//! `apply_batch`. The journal itself is not here: it is in segment files
//! (`journal.rs`), written and fsynced before the group's cache rows.
//!
//! | prefix | key                         | value                                        | what       |
//! |--------|-----------------------------|----------------------------------------------|------------|
//! | `M`    | `caches`                    | journal length the caches reflect, u64 BE    | cache      |
//! | `C`    | currency code               | scale u8                                     | cache      |
//! | `N`    | account name                | account id u64 BE                            | cache      |
//! | `A`    | account id u64 BE           | `AccountRecord` (bincode)                    | cache      |
//! | `X`    | level u8 ‖ index u64 BE     | Merkle subtree hash (32; see `merkle.rs`)    | cache      |
//! | `J`    | first seq u64 BE            | legacy journal chunk (see `legacy.rs`)       | moved out  |
//! | `M`    | `head`                      | legacy head record                           | moved out  |
//!
//! Everything here is a cache of the journal: `tallyd rebuild` drops and
//! regenerates it, and a start catches it up when it lags the journal (sled
//! is not flushed per group, so a crash can lose its last batches; never more
//! than a prefix, and never ahead of the journal). `J` and `M head` exist only
//! in data directories written before the segment files, until the first open
//! moves them out. The caches that change with every transaction (balance
//! history, transaction index) are kept in memory instead (`read_model.rs`)
//! and rebuilt on every start.

/// Journal chunks of the old layout (`legacy.rs`).
pub const LEGACY_JOURNAL: u8 = b'J';
pub const META: u8 = b'M';
pub const CURRENCY: u8 = b'C';
pub const NAME: u8 = b'N';
pub const ACCOUNT: u8 = b'A';
pub const MERKLE: u8 = b'X';

/// Prefixes of the stored caches (dropped by a rebuild).
pub const CACHE_PREFIXES: [u8; 4] = [CURRENCY, NAME, ACCOUNT, MERKLE];

/// The old layout's head record (`legacy.rs`).
pub const LEGACY_HEAD: &[u8] = b"Mhead";
pub const META_CACHES: &[u8] = b"Mcaches";

/// The key of an old-layout journal chunk.
pub fn legacy_journal(seq: u64) -> [u8; 9] {
    let mut key = [LEGACY_JOURNAL; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub fn prefixed(prefix: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + text.len());
    key.push(prefix);
    key.extend_from_slice(text.as_bytes());
    key
}

pub fn account(id: u64) -> [u8; 9] {
    let mut key = [ACCOUNT; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The seq at the end of a history or journal key.
pub fn trailing_seq(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(bytes)
}
