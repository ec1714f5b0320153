//! The on-disk layout: ONE sled tree, keys prefixed by a byte per kind, so that
//! a group of entries and every cache row derived from them land in one atomic
//! `apply_batch`.
//!
//! | prefix | key                         | value                                        | what       |
//! |--------|-----------------------------|----------------------------------------------|------------|
//! | `J`    | first seq u64 BE            | a chunk of entries (see `journal.rs`)        | journal    |
//! | `M`    | `head`                      | journal length u64 BE ‖ chain head (32)      | journal    |
//! | `M`    | `caches`                    | journal length the caches reflect, u64 BE    | cache      |
//! | `C`    | currency code               | scale u8                                     | cache      |
//! | `N`    | account name                | account id u64 BE                            | cache      |
//! | `A`    | account id u64 BE           | `AccountRecord` (bincode)                    | cache      |
//! | `X`    | level u8 ‖ index u64 BE     | Merkle subtree hash (32; see `merkle.rs`)    | cache      |
//!
//! Everything but `J` and `M head` is a cache of the journal: `tallyd rebuild`
//! drops and regenerates it. The caches that change with every transaction
//! (balance history, transaction index) are kept in memory instead
//! (`read_model.rs`) and rebuilt on every start.

pub const JOURNAL: u8 = b'J';
pub const META: u8 = b'M';
pub const CURRENCY: u8 = b'C';
pub const NAME: u8 = b'N';
pub const ACCOUNT: u8 = b'A';
pub const MERKLE: u8 = b'X';

/// Prefixes of the stored caches (dropped by a rebuild).
pub const CACHE_PREFIXES: [u8; 4] = [CURRENCY, NAME, ACCOUNT, MERKLE];

pub const META_HEAD: &[u8] = b"Mhead";
pub const META_CACHES: &[u8] = b"Mcaches";

pub fn journal(seq: u64) -> [u8; 9] {
    let mut key = [JOURNAL; 9];
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
