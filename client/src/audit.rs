//! The Audit service: signed checkpoints, entries with their canonical bytes,
//! Merkle proofs and the journal export.
//!
//! Nothing the server answers here is trusted: `tally_audit` verifies each
//! answer against a signed checkpoint and a public key the auditor holds.

use std::io::Write;

use tally_audit::{ExportWriter, Hash};
use tally_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::client::{call_with, Client, Retry};
use crate::error::{ClientError, Result};

/// A signed checkpoint: the C2SP signed note, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Entries it covers; also the seq of its own journal entry.
    pub tree_size: u64,
    /// The whole signed note.
    pub note: String,
}

/// One of the ledger's signing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// C2SP vkey.
    pub vkey: String,
    /// The seq of the entry that adopted the key or rotated to it.
    pub since_seq: u64,
}

/// A journal entry as the auditor needs it: the bytes that were hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub canonical: Vec<u8>,
    pub entry_hash: Hash,
    pub prev_hash: Hash,
}

fn checkpoint(answer: pb::Checkpoint) -> SignedCheckpoint {
    SignedCheckpoint {
        tree_size: answer.tree_size,
        note: answer.note,
    }
}

fn hash(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| ClientError::InvalidResponse(format!("{what} is not 32 bytes")))
}

fn hashes(proof: Vec<Vec<u8>>) -> Result<Vec<Hash>> {
    proof
        .iter()
        .map(|bytes| hash(bytes, "a proof hash"))
        .collect()
}

fn io_error(error: std::io::Error) -> ClientError {
    ClientError::InvalidRequest(format!("cannot write the export: {error}"))
}

impl Client {
    /// The latest checkpoint (`None`) or the one of exactly `tree_size` entries.
    pub async fn checkpoint(&self, tree_size: Option<u64>) -> Result<SignedCheckpoint> {
        let request = pb::GetCheckpointRequest {
            tree_size: tree_size.unwrap_or(0),
        };
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            request,
            |mut raw, request| async move { raw.get_checkpoint(request).await },
        )
        .await?;
        Ok(checkpoint(answer))
    }

    /// Signs a checkpoint of the journal as it is now (unless the latest one
    /// already covers it) and returns it.
    pub async fn create_checkpoint(&self) -> Result<SignedCheckpoint> {
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            pb::CreateCheckpointRequest {},
            |mut raw, request| async move { raw.create_checkpoint(request).await },
        )
        .await?;
        Ok(checkpoint(answer))
    }

    /// The ledger's signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            pb::ListSigningKeysRequest {},
            |mut raw, request| async move { raw.list_signing_keys(request).await },
        )
        .await?;
        Ok(answer
            .keys
            .into_iter()
            .map(|key| SigningKey {
                vkey: key.vkey,
                since_seq: key.since_seq,
            })
            .collect())
    }

    /// Journal entry `seq` with its canonical bytes and chain hashes.
    pub async fn audit_entry(&self, seq: u64) -> Result<AuditEntry> {
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            pb::GetEntryRequest { seq },
            |mut raw, request| async move { raw.get_entry(request).await },
        )
        .await?;
        Ok(AuditEntry {
            seq: answer.seq,
            entry_hash: hash(&answer.entry_hash, "entry_hash")?,
            prev_hash: hash(&answer.prev_hash, "prev_hash")?,
            canonical: answer.canonical,
        })
    }

    /// The inclusion proof of entry `seq` in the tree of `tree_size` entries.
    pub async fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>> {
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            pb::GetInclusionProofRequest { seq, tree_size },
            |mut raw, request| async move { raw.get_inclusion_proof(request).await },
        )
        .await?;
        hashes(answer.hashes)
    }

    /// The consistency proof from the tree of `old_size` entries to `new_size`.
    pub async fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        let answer = call_with(
            &self.audit,
            &self.policy,
            Retry::Safe,
            pb::GetConsistencyProofRequest { old_size, new_size },
            |mut raw, request| async move { raw.get_consistency_proof(request).await },
        )
        .await?;
        hashes(answer.hashes)
    }

    /// Writes the journal up to a checkpoint (the latest when `None`) to `out`
    /// in the export file format (`docs/audit-proofs.md`); returns the
    /// checkpoint. Verify the file with `tally_audit::verify_export`.
    pub async fn export_journal<W: Write>(
        &self,
        tree_size: Option<u64>,
        out: W,
    ) -> Result<SignedCheckpoint> {
        let request = pb::ExportJournalRequest {
            tree_size: tree_size.unwrap_or(0),
        };
        let mut raw = self.audit.clone();
        let mut stream = raw.export_journal(request).await?.into_inner();
        let mut writer = ExportWriter::new(out).map_err(io_error)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if chunk.first_seq != writer.entries() {
                return Err(ClientError::InvalidResponse(format!(
                    "export chunk starts at entry {}, expected {}",
                    chunk.first_seq,
                    writer.entries()
                )));
            }
            for entry in &chunk.entries {
                writer.entry(entry).map_err(io_error)?;
            }
            if !chunk.checkpoint_note.is_empty() {
                let size = writer.entries();
                writer.finish(&chunk.checkpoint_note).map_err(io_error)?;
                return Ok(SignedCheckpoint {
                    tree_size: size,
                    note: chunk.checkpoint_note,
                });
            }
        }
        Err(ClientError::InvalidResponse(
            "the export stream ended before its checkpoint".into(),
        ))
    }
}
