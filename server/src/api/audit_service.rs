//! The `tally.v1.Audit` gRPC service: checkpoints, entries with their
//! canonical bytes, Merkle proofs and the journal export stream.
//!
//! Nothing here needs trusting: every answer is checked by the auditor
//! against a signed checkpoint (`tally audit`, the `tally-audit` crate).
//! Reads touch the disk, so they run on the blocking pool.

use std::sync::Arc;

use tally_proto::v1 as pb;
use tally_proto::v1::audit_server::Audit;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::{internal, status};
use crate::engine::Engine;
use crate::ledger::view::CheckpointView;

/// Entries per export chunk (one disk read each).
pub const EXPORT_CHUNK_ENTRIES_MAX: usize = 1_024;
/// Chunks buffered per export stream before the reader waits for the client.
const EXPORT_STREAM_BUFFER_MAX: usize = 8;

/// The Audit service over one engine.
pub struct AuditService {
    engine: Arc<Engine>,
}

impl AuditService {
    pub fn new(engine: Arc<Engine>) -> Self {
        AuditService { engine }
    }

    async fn read<T, F>(&self, read: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> crate::error::Result<T> + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || read(&engine))
            .await
            .map_err(|error| internal("a read task failed", error))?
            .map_err(status)
    }
}

fn checkpoint(view: CheckpointView) -> pb::Checkpoint {
    pb::Checkpoint {
        tree_size: view.tree_size,
        note: view.note,
    }
}

fn hashes(proof: Vec<tally_audit::Hash>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|hash| hash.to_vec()).collect()
}

/// 0 means "the latest" in requests that take a tree size.
fn size_or_latest(tree_size: u64) -> Option<u64> {
    (tree_size != 0).then_some(tree_size)
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let size = size_or_latest(request.into_inner().tree_size);
        let view = self.read(move |engine| engine.checkpoint(size)).await?;
        Ok(Response::new(checkpoint(view)))
    }

    async fn create_checkpoint(
        &self,
        _request: Request<pb::CreateCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let view = self.engine.create_checkpoint().await.map_err(status)?;
        Ok(Response::new(checkpoint(view)))
    }

    async fn list_signing_keys(
        &self,
        _request: Request<pb::ListSigningKeysRequest>,
    ) -> Result<Response<pb::ListSigningKeysResponse>, Status> {
        let keys = self.read(|engine| engine.signing_keys()).await?;
        Ok(Response::new(pb::ListSigningKeysResponse {
            keys: keys
                .into_iter()
                .map(|key| pb::SigningKey {
                    vkey: key.vkey,
                    since_seq: key.since_seq,
                })
                .collect(),
        }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::AuditEntry>, Status> {
        let seq = request.into_inner().seq;
        let record = self.read(move |engine| engine.journal_entry(seq)).await?;
        Ok(Response::new(pb::AuditEntry {
            seq: record.seq,
            canonical: record.canonical,
            entry_hash: record.entry_hash.to_vec(),
            prev_hash: record.prev_hash.to_vec(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let pb::GetInclusionProofRequest { seq, tree_size } = request.into_inner();
        let proof = self
            .read(move |engine| engine.inclusion_proof(seq, tree_size))
            .await?;
        Ok(Response::new(pb::InclusionProof {
            seq,
            tree_size,
            hashes: hashes(proof),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let pb::GetConsistencyProofRequest { old_size, new_size } = request.into_inner();
        let proof = self
            .read(move |engine| engine.consistency_proof(old_size, new_size))
            .await?;
        Ok(Response::new(pb::ConsistencyProof {
            old_size,
            new_size,
            hashes: hashes(proof),
        }))
    }

    type ExportJournalStream = ReceiverStream<Result<pb::ExportChunk, Status>>;

    async fn export_journal(
        &self,
        request: Request<pb::ExportJournalRequest>,
    ) -> Result<Response<Self::ExportJournalStream>, Status> {
        let size = size_or_latest(request.into_inner().tree_size);
        // A checkpoint that does not exist fails the call, not the stream.
        let view = self.read(move |engine| engine.checkpoint(size)).await?;
        let (tx, rx) = mpsc::channel(EXPORT_STREAM_BUFFER_MAX);
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || export(&engine, view, &tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Streams entries `0..view.tree_size`, then the checkpoint; stops early when
/// the client goes away or a read fails (the failure ends the stream).
fn export(
    engine: &Engine,
    view: CheckpointView,
    tx: &mpsc::Sender<Result<pb::ExportChunk, Status>>,
) {
    let mut next = 0;
    while next < view.tree_size {
        let limit = EXPORT_CHUNK_ENTRIES_MAX.min((view.tree_size - next) as usize);
        let chunk = match engine.journal(next, limit) {
            Ok(records) if !records.is_empty() => pb::ExportChunk {
                first_seq: next,
                entries: records.into_iter().map(|r| r.canonical).collect(),
                checkpoint_note: String::new(),
            },
            Ok(_) => {
                let _ = tx.blocking_send(Err(internal(
                    "exporting the journal",
                    format!("the journal ends before entry {next}"),
                )));
                return;
            }
            Err(error) => {
                let _ = tx.blocking_send(Err(status(error)));
                return;
            }
        };
        next += chunk.entries.len() as u64;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Ok(pb::ExportChunk {
        first_seq: next,
        entries: Vec::new(),
        checkpoint_note: view.note,
    }));
}
