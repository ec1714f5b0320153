//! Offline maintenance of a stopped server's data directory.

use crate::engine::recover;
use crate::error::StoreError;
use crate::store::Store;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};
use tally_core::chain::ChainVerifier;
use tally_core::entry::EntryBody;

#[derive(Debug)]
pub struct RebuildReport {
    pub entries: u64,
    pub accounts: u64,
    pub elapsed: Duration,
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rebuilt caches from {} journal entries ({} accounts) in {:.2?}",
            self.entries, self.accounts, self.elapsed
        )
    }
}

/// Drops every cache and regenerates it by replaying the journal.
pub fn rebuild(data_dir: &Path) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let store = Store::open(data_dir, 256 * 1024 * 1024)?;
    store.clear_caches()?;
    let state = recover(&store)?;
    store.flush()?;
    Ok(RebuildReport {
        entries: state.next_seq(),
        accounts: state.account_count(),
        elapsed: started.elapsed(),
    })
}

#[derive(Debug)]
pub struct VerifyReport {
    pub entries: u64,
    pub chain_head: [u8; 32],
    /// Signed checkpoints whose signature and Merkle root were checked.
    pub checkpoints: u64,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok: {} entries, chain head {}, {} signed checkpoints",
            self.entries,
            hex::encode(self.chain_head),
            self.checkpoints
        )
    }
}

/// Checks every entry's hash and the chain, that every entry decodes, and that
/// the journal replays into a valid ledger; the error names the first bad entry.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, StoreError> {
    let store = Store::open(data_dir, 64 * 1024 * 1024)?;
    let mut chain = ChainVerifier::default();
    for row in store.journal_rows(0) {
        let (seq, hash, canonical) = row?;
        chain
            .push(seq, &canonical, &hash)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tally_core::codec::decode(&canonical)
            .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
    }
    let (length, head) = store.head()?;
    if chain.next_seq() != length || chain.head() != head {
        return Err(StoreError::Corrupt(format!(
            "the journal has {} entries but the head record says {length}",
            chain.next_seq()
        )));
    }
    crate::engine::check_mark(&store, length)?;
    // The stored Merkle nodes are a cache that may lag the journal after a
    // crash (the next start writes the rest): only those it claims are checked.
    let caches_length = store.caches_length()?;
    if caches_length > length {
        return Err(StoreError::Corrupt(format!(
            "the journal has {length} entries, but the caches reflect {caches_length}: storage \
             lost entries that were durable; restore the data directory from a backup"
        )));
    }
    let mut state = crate::ledger::state::LedgerState::new();
    let mut frontier = crate::store::merkle::Frontier::default();
    let mut nodes = Vec::new();
    let mut checkpoints = 0;
    for row in store.journal_rows(0) {
        let (seq, hash, canonical) = row?;
        // The fold checks a checkpoint's signature, size, chain head and time;
        // its root needs the tree of the entries before it.
        let journaled = state
            .replay(seq, canonical, &hash)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let EntryBody::CheckpointSigned { note } = &journaled.entry.body {
            let signed = tally_audit::checkpoint::SignedNote::parse(note.as_bytes())
                .and_then(|signed| tally_audit::Checkpoint::from_note_text(&signed.text))
                .map_err(|e| StoreError::Corrupt(format!("entry {seq}: checkpoint: {e}")))?;
            if signed.root != frontier.root() {
                return Err(StoreError::Corrupt(format!(
                    "entry {seq}: the signed checkpoint's Merkle root is not the root of the {seq} entries before it"
                )));
            }
            checkpoints += 1;
        }
        frontier.push(&hash, &mut nodes);
        if seq >= caches_length {
            nodes.clear();
        }
        for (level, index, expected) in nodes.drain(..) {
            if store.merkle_node(level, index)? != Some(expected) {
                return Err(StoreError::Corrupt(format!(
                    "Merkle node at level {level}, index {index} (completed by entry {seq}) is missing or wrong"
                )));
            }
        }
    }
    Ok(VerifyReport {
        entries: chain.next_seq(),
        chain_head: chain.head(),
        checkpoints,
    })
}
