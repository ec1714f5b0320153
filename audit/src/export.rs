//! The journal export file and its full offline verification.
//!
//! ```text
//! header   the 24 ASCII bytes "tally-journal-export v1\n"
//! frames   for seq = 0, 1, 2, ...: u32 BE length n (1 ..= ENTRY_BYTES_MAX), then the n
//!          canonical bytes of entry seq
//! end      u32 BE 0
//! trailer  the signed checkpoint note of the whole journal (tree size = entry count),
//!          then end of file
//! ```
//!
//! [`verify_export`] checks everything an auditor can check without the server: the framing,
//! every entry's strict decoding, the hash chain, the times, the Merkle tree, every checkpoint
//! recorded in the journal, the chain of signing keys, the trailer checkpoint, and the
//! balances re-derived from the entries ([`crate::rederive`]). It streams: memory holds the
//! Merkle right edge (O(log n) hashes), the key chain, the accounts and one record per
//! transaction id, never the entries. `docs/audit-proofs.md` §11 specifies the format.

use std::fmt;
use std::io::{self, BufReader, Read, Write};

use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};
use tally_core::codec::{self, ENTRY_BYTES_MAX};
use tally_core::entry::{Digest, Entry, EntryBody};

use crate::checkpoint::{
    open_checkpoint, Checkpoint, CheckpointError, NoteVerifier, NOTE_BYTES_MAX,
};
use crate::merkle::{Blake3, CompactRange, Hash};
use crate::rederive::{
    AccountBalance, Currency, LedgerFault, Rederiver, TransactionCounts, TrialBalanceLine,
};
use crate::rotation::open_rotation;

/// The first bytes of every export file.
pub const EXPORT_HEADER: &[u8; 24] = b"tally-journal-export v1\n";

/// What is wrong with an export, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("read error at byte {offset}: {message}")]
    Io { offset: u64, message: String },
    #[error("not a Tally journal export: it must start with \"tally-journal-export v1\\n\"")]
    BadHeader,
    #[error("the file ends at byte {offset}, inside {what}")]
    Truncated { offset: u64, what: String },
    #[error("entry {seq}: frame length {len} at byte {offset} is above the {ENTRY_BYTES_MAX}-byte limit")]
    FrameTooLarge { seq: u64, offset: u64, len: u32 },
    #[error("the export holds no entry")]
    Empty,
    #[error("entry {seq}: {reason}")]
    Entry { seq: u64, reason: String },
    #[error("entry {seq}: {fault}")]
    Ledger { seq: u64, fault: LedgerFault },
    #[error("entry {seq} ({kind}): {field}: {reason}")]
    Key {
        seq: u64,
        kind: &'static str,
        field: &'static str,
        reason: String,
    },
    #[error("entry {seq} (checkpoint_signed): {field}: {reason}")]
    Checkpoint {
        seq: u64,
        field: &'static str,
        reason: String,
    },
    #[error("trailer checkpoint: {field}: {reason}")]
    Trailer { field: &'static str, reason: String },
    #[error("trailing bytes after the trailer checkpoint, from byte {offset}")]
    TrailingBytes { offset: u64 },
    #[error("the trailer was read before the end marker (at entry {seq})")]
    NotAtEnd { seq: u64 },
    #[error("the journal adopts no signing key, so nothing in it can be verified")]
    NoSigningKey,
    #[error("none of the pinned keys is a signing key of this journal (its keys: {})", journal_keys.join(", "))]
    UntrustedKeys { journal_keys: Vec<String> },
    #[error("{0}")]
    TrialBalance(LedgerFault),
}

/// Writes an export: the header now, then one frame per entry, then the end and trailer.
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    out: W,
    entries: u64,
}

impl<W: Write> ExportWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(EXPORT_HEADER)?;
        Ok(ExportWriter { out, entries: 0 })
    }

    /// Appends the canonical bytes of the next entry (seq = entries written so far).
    pub fn entry(&mut self, canonical_bytes: &[u8]) -> io::Result<()> {
        let len = frame_length(canonical_bytes.len()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "entry of {} bytes: a frame holds 1 to {ENTRY_BYTES_MAX} bytes",
                    canonical_bytes.len()
                ),
            )
        })?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(canonical_bytes)?;
        self.entries += 1;
        Ok(())
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the end marker and the trailer (the signed checkpoint note of all the entries
    /// written), flushes, and returns the output.
    pub fn finish(mut self, note: &str) -> io::Result<W> {
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out.write_all(note.as_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn frame_length(len: usize) -> Option<u32> {
    (1..=ENTRY_BYTES_MAX)
        .contains(&len)
        .then(|| u32::try_from(len).ok())
        .flatten()
}

/// Reads an export frame by frame. Lengths are checked against `ENTRY_BYTES_MAX` before
/// anything is allocated, so adversarial lengths cost nothing.
pub struct ExportReader<R: Read> {
    input: BufReader<R>,
    /// Bytes consumed so far: error positions are file offsets.
    offset: u64,
    next_seq: u64,
    ended: bool,
    buffer: Vec<u8>,
}

impl<R: Read> ExportReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self, ExportError> {
        let mut reader = ExportReader {
            input: BufReader::new(input),
            offset: 0,
            next_seq: 0,
            ended: false,
            buffer: Vec::new(),
        };
        let mut header = [0u8; EXPORT_HEADER.len()];
        let read = reader.read_full(&mut header)?;
        if header[..read] != EXPORT_HEADER[..read] {
            return Err(ExportError::BadHeader);
        }
        if read < header.len() {
            return Err(reader.truncated("the header".to_string()));
        }
        Ok(reader)
    }

    /// The seq of the next entry (after the end marker: the number of entries).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The canonical bytes of the next entry, or `None` at the end marker.
    pub fn next_entry(&mut self) -> Result<Option<&[u8]>, ExportError> {
        if self.ended {
            return Ok(None);
        }
        let seq = self.next_seq;
        let length_offset = self.offset;
        let mut length = [0u8; 4];
        if self.read_full(&mut length)? < length.len() {
            let what = format!("the length of entry {seq} (or the end marker)");
            return Err(self.truncated(what));
        }
        let len = u32::from_be_bytes(length);
        if len == 0 {
            self.ended = true;
            return Ok(None);
        }
        if len as usize > ENTRY_BYTES_MAX {
            let offset = length_offset;
            return Err(ExportError::FrameTooLarge { seq, offset, len });
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(len as usize, 0);
        let read = self.read_full(&mut buffer);
        self.buffer = buffer;
        if read? < len as usize {
            return Err(self.truncated(format!("entry {seq} ({len} bytes)")));
        }
        self.next_seq += 1;
        Ok(Some(&self.buffer))
    }

    /// The trailer: every byte after the end marker (at most `NOTE_BYTES_MAX + 1` are read,
    /// which is enough to tell an over-long trailer). Call after `next_entry` gave `None`.
    pub fn read_trailer(mut self) -> Result<(u64, Vec<u8>), ExportError> {
        if !self.ended {
            return Err(ExportError::NotAtEnd { seq: self.next_seq });
        }
        let start = self.offset;
        let mut trailer = Vec::new();
        let limit = NOTE_BYTES_MAX as u64 + 1;
        (&mut self.input)
            .take(limit)
            .read_to_end(&mut trailer)
            .map_err(|e| io_error(start, &e))?;
        if trailer.is_empty() {
            return Err(self.truncated("the trailer checkpoint".to_string()));
        }
        Ok((start, trailer))
    }

    /// Fills `buf` unless the input ends first; returns how many bytes were read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, ExportError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(self.offset + filled as u64, &e)),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    fn truncated(&self, what: String) -> ExportError {
        ExportError::Truncated {
            offset: self.offset,
            what,
        }
    }
}

fn io_error(offset: u64, error: &io::Error) -> ExportError {
    ExportError::Io {
        offset,
        message: error.to_string(),
    }
}

/// A signing key of the journal and the entry that made it current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub vkey: String,
    pub seq: u64,
    /// `signing_key_adopted` (the first key) or `signing_key_rotated`.
    pub kind: &'static str,
}

/// Everything a verified export establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub ledger_id: [u8; 16],
    pub entry_count: u64,
    pub chain_head: Digest,
    pub root: Hash,
    /// `checkpoint_signed` entries, each verified.
    pub checkpoint_count: u64,
    /// The trailer's checkpoint, and the (key name, key id) of the keys that signed it.
    pub trailer: Checkpoint,
    pub trailer_signed_by: Vec<(String, u32)>,
    /// The journal's signing keys, in the order they became current.
    pub keys: Vec<SigningKeyRecord>,
    /// The pinned keys found among them.
    pub pinned: Vec<String>,
    pub transactions: TransactionCounts,
    pub currencies: Vec<Currency>,
    pub accounts: Vec<AccountBalance>,
    pub trial_balance: Vec<TrialBalanceLine>,
}

/// Verifies an export file read from `reader`, trusting the journal's key chain if it
/// contains one of `trusted` (the keys the auditor pinned).
pub fn verify_export<R: Read>(
    reader: R,
    trusted: &[NoteVerifier],
) -> Result<ExportReport, ExportError> {
    let mut reader = ExportReader::new(reader)?;
    let mut verifier = JournalVerifier::new();
    while let Some(bytes) = reader.next_entry()? {
        verifier.push(bytes)?;
    }
    let (offset, trailer) = reader.read_trailer()?;
    let note_len = split_trailer(&trailer);
    if note_len < trailer.len() {
        let offset = offset + note_len as u64;
        return Err(ExportError::TrailingBytes { offset });
    }
    verifier.finish(&trailer, trusted)
}

/// The length of the signed note at the start of `trailer`: its text up to the first blank
/// line, then the signature lines (each starting with an em dash and a space and ending
/// with `\n`). When no signature line is complete, the whole trailer, so that the note
/// parser names what is wrong.
fn split_trailer(trailer: &[u8]) -> usize {
    const SIGNATURE_LINE_START: &[u8] = "\u{2014} ".as_bytes();
    let Some(blank) = trailer.windows(2).position(|w| w == b"\n\n") else {
        return trailer.len();
    };
    let first_signature = blank + 2;
    let mut end = first_signature;
    while trailer[end..].starts_with(SIGNATURE_LINE_START) {
        match trailer[end..].iter().position(|&b| b == b'\n') {
            Some(newline) => end += newline + 1,
            None => break,
        }
    }
    if end == first_signature {
        trailer.len()
    } else {
        end
    }
}

/// Checks a journal entry by entry (in seq order from 0) and then its trailer checkpoint.
/// [`verify_export`] uses it over a file; it works as well over entries from elsewhere.
pub struct JournalVerifier {
    next_seq: u64,
    head: Digest,
    last_recorded_at: Option<i64>,
    tree: CompactRange<Blake3>,
    ledger_id: Option<[u8; 16]>,
    /// The key chain; the last one is current.
    keys: Vec<(NoteVerifier, SigningKeyRecord)>,
    checkpoints: u64,
    ledger: Rederiver,
}

impl Default for JournalVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl JournalVerifier {
    pub fn new() -> Self {
        JournalVerifier {
            next_seq: 0,
            head: GENESIS_PREV_HASH,
            last_recorded_at: None,
            tree: CompactRange::new(Blake3),
            ledger_id: None,
            keys: Vec::new(),
            checkpoints: 0,
            ledger: Rederiver::new(),
        }
    }

    /// Checks the next entry, given by its canonical bytes.
    pub fn push(&mut self, canonical_bytes: &[u8]) -> Result<(), ExportError> {
        let seq = self.next_seq;
        let entry = codec::decode(canonical_bytes).map_err(|e| ExportError::Entry {
            seq,
            reason: format!("canonical bytes: {e}"),
        })?;
        self.check_time(seq, entry.recorded_at)?;
        self.check_audit_entry(seq, &entry)?;
        self.ledger
            .apply(&entry)
            .map_err(|fault| ExportError::Ledger { seq, fault })?;
        if let (0, EntryBody::LedgerCreated { ledger_id }) = (seq, &entry.body) {
            self.ledger_id = Some(*ledger_id);
        }
        self.head = entry_hash(seq, &self.head, canonical_bytes);
        self.tree.push(crate::entry_leaf_hash(&self.head));
        self.last_recorded_at = Some(entry.recorded_at);
        self.next_seq += 1;
        Ok(())
    }

    /// Checks the trailer checkpoint and the key trust, and re-derives the balances.
    pub fn finish(
        self,
        trailer: &[u8],
        trusted: &[NoteVerifier],
    ) -> Result<ExportReport, ExportError> {
        let Some(ledger_id) = self.ledger_id else {
            return Err(ExportError::Empty);
        };
        if self.keys.is_empty() {
            return Err(ExportError::NoSigningKey);
        }
        let chain: Vec<NoteVerifier> = self.keys.iter().map(|(k, _)| k.clone()).collect();
        let opened = open_checkpoint(trailer, &chain).map_err(|e| ExportError::Trailer {
            field: checkpoint_error_field(&e),
            reason: e.to_string(),
        })?;
        self.expected(self.next_seq)
            .compare(&opened.checkpoint)
            .map_err(|(field, reason)| ExportError::Trailer { field, reason })?;
        let pinned: Vec<String> = chain
            .iter()
            .filter(|k| trusted.contains(k))
            .map(NoteVerifier::to_vkey)
            .collect();
        if pinned.is_empty() {
            let journal_keys = chain.iter().map(NoteVerifier::to_vkey).collect();
            return Err(ExportError::UntrustedKeys { journal_keys });
        }
        let balances = self.ledger.finish().map_err(ExportError::TrialBalance)?;
        Ok(ExportReport {
            ledger_id,
            entry_count: self.next_seq,
            chain_head: self.head,
            root: self.tree.root(),
            checkpoint_count: self.checkpoints,
            trailer: opened.checkpoint,
            trailer_signed_by: opened.signed_by,
            keys: self.keys.into_iter().map(|(_, record)| record).collect(),
            pinned,
            transactions: balances.transactions,
            currencies: balances.currencies,
            accounts: balances.accounts,
            trial_balance: balances.trial_balance,
        })
    }

    fn check_time(&self, seq: u64, recorded_at: i64) -> Result<(), ExportError> {
        match self.last_recorded_at {
            Some(previous) if recorded_at <= previous => Err(ExportError::Entry {
                seq,
                reason: format!(
                    "recorded_at: {recorded_at} is not after the previous entry's {previous}"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn check_audit_entry(&mut self, seq: u64, entry: &Entry) -> Result<(), ExportError> {
        match &entry.body {
            EntryBody::CheckpointSigned { note } => {
                self.check_checkpoint(seq, note, entry.recorded_at)?;
                self.checkpoints += 1;
                Ok(())
            }
            EntryBody::SigningKeyAdopted { vkey } => self.adopt_key(seq, vkey),
            EntryBody::SigningKeyRotated { note } => self.rotate_key(seq, note),
            _ => Ok(()),
        }
    }

    /// What a checkpoint of the first `size` entries must state, given the entries so far.
    fn expected(&self, size: u64) -> Expected {
        Expected {
            ledger_id: self.ledger_id,
            size,
            root: self.tree.root(),
            chain_head: self.head,
        }
    }

    /// A checkpoint recorded at `seq` covers the entries before it, is signed by the current
    /// key, and carries the entry's own time.
    fn check_checkpoint(&self, seq: u64, note: &str, recorded_at: i64) -> Result<(), ExportError> {
        let error = |field, reason| ExportError::Checkpoint { seq, field, reason };
        let Some((key, _)) = self.keys.last() else {
            let reason = "no signing key is adopted before this checkpoint".to_string();
            return Err(error("signature", reason));
        };
        let opened = open_checkpoint(note.as_bytes(), std::slice::from_ref(key)).map_err(|e| {
            let reason = match &e {
                CheckpointError::NoKnownSignature => {
                    format!("not signed by the current signing key {}", key.to_vkey())
                }
                other => other.to_string(),
            };
            error(checkpoint_error_field(&e), reason)
        })?;
        let checkpoint = opened.checkpoint;
        self.expected(seq)
            .compare(&checkpoint)
            .map_err(|(field, reason)| error(field, reason))?;
        if checkpoint.time_unix_nanos != recorded_at {
            let reason = format!(
                "{} differs from the entry's recorded_at {recorded_at}",
                checkpoint.time_unix_nanos
            );
            return Err(error("time", reason));
        }
        Ok(())
    }

    fn adopt_key(&mut self, seq: u64, vkey: &str) -> Result<(), ExportError> {
        let kind = "signing_key_adopted";
        let error = |field, reason| ExportError::Key {
            seq,
            kind,
            field,
            reason,
        };
        if let Some((_, first)) = self.keys.first() {
            let reason = format!(
                "a signing key was already adopted at entry {}; keys change only by rotation",
                first.seq
            );
            return Err(error("vkey", reason));
        }
        let key = NoteVerifier::from_vkey(vkey).map_err(|e| error("vkey", e.to_string()))?;
        if key.to_vkey() != vkey {
            return Err(error("vkey", "not in canonical form".to_string()));
        }
        let record = SigningKeyRecord {
            vkey: vkey.to_string(),
            seq,
            kind,
        };
        self.keys.push((key, record));
        Ok(())
    }

    /// A rotation hands over from the current key to a new one; `open_rotation` checked
    /// that both signed it.
    fn rotate_key(&mut self, seq: u64, note: &str) -> Result<(), ExportError> {
        let kind = "signing_key_rotated";
        let error = |field, reason| ExportError::Key {
            seq,
            kind,
            field,
            reason,
        };
        let Some((current, _)) = self.keys.last() else {
            let reason = "no signing key is adopted to rotate from".to_string();
            return Err(error("old", reason));
        };
        let rotation = open_rotation(note.as_bytes()).map_err(|e| {
            let reason = match &e {
                CheckpointError::NoKnownSignature => {
                    "the old and the new key must both sign the rotation".to_string()
                }
                other => other.to_string(),
            };
            error(checkpoint_error_field(&e), reason)
        })?;
        if &rotation.old_key != current {
            let reason = format!(
                "{} is not the current signing key {}",
                rotation.old_key.to_vkey(),
                current.to_vkey()
            );
            return Err(error("old", reason));
        }
        if rotation.tree_size != seq {
            let reason = format!("{} is not the entry's seq {seq}", rotation.tree_size);
            return Err(error("size", reason));
        }
        if Some(rotation.ledger_id) != self.ledger_id {
            let reason = format!("names ledger {}", hex::encode(rotation.ledger_id));
            return Err(error("ledger id", reason));
        }
        let record = SigningKeyRecord {
            vkey: rotation.new_key.to_vkey(),
            seq,
            kind,
        };
        self.keys.push((rotation.new_key, record));
        Ok(())
    }
}

/// Which part of a note a note-level error is about.
fn checkpoint_error_field(error: &CheckpointError) -> &'static str {
    match error {
        CheckpointError::NoKnownSignature | CheckpointError::SignatureInvalid { .. } => "signature",
        _ => "note",
    }
}

/// The values a checkpoint must state.
struct Expected {
    ledger_id: Option<[u8; 16]>,
    size: u64,
    root: Hash,
    chain_head: Digest,
}

impl Expected {
    /// The first difference, as (field, reason).
    fn compare(&self, checkpoint: &Checkpoint) -> Result<(), (&'static str, String)> {
        if Some(checkpoint.ledger_id) != self.ledger_id {
            let stated = hex::encode(checkpoint.ledger_id);
            return Err(("ledger id", format!("names ledger {stated}")));
        }
        if checkpoint.tree_size != self.size {
            let reason = format!("{} instead of {}", checkpoint.tree_size, self.size);
            return Err(("tree size", reason));
        }
        if checkpoint.root != self.root {
            let reason = format!(
                "{} differs from the recomputed root {} of {} entries",
                hex::encode(checkpoint.root),
                hex::encode(self.root),
                self.size
            );
            return Err(("root", reason));
        }
        if checkpoint.chain_head != self.chain_head {
            let reason = format!(
                "{} differs from the hash {} of entry {}",
                hex::encode(checkpoint.chain_head),
                hex::encode(self.chain_head),
                self.size.saturating_sub(1)
            );
            return Err(("chain head", reason));
        }
        Ok(())
    }
}

impl ExportReport {
    /// The report as text (the same as `Display`): stable, one fact per line, tables of the
    /// accounts and the trial balance with amounts as exact decimals.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_summary(f)?;
        writeln!(f)?;
        writeln!(f, "accounts")?;
        f.write_str(&table(&self.account_rows(), 4))?;
        writeln!(f)?;
        writeln!(f, "trial balance")?;
        f.write_str(&table(&self.trial_balance_rows(), 1))
    }
}

impl ExportReport {
    fn fmt_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.entry_count.saturating_sub(1);
        writeln!(f, "journal export verified")?;
        writeln!(f, "ledger          {}", hex::encode(self.ledger_id))?;
        writeln!(f, "entries         {} (seq 0 to {last})", self.entry_count)?;
        writeln!(f, "chain head      {}", hex::encode(self.chain_head))?;
        writeln!(f, "merkle root     {}", hex::encode(self.root))?;
        let signers: Vec<String> = self
            .trailer_signed_by
            .iter()
            .map(|(name, id)| format!("{} ({id:08x})", printable(name)))
            .collect();
        writeln!(
            f,
            "trailer         size {}, time {}, signed by {}",
            self.trailer.tree_size,
            self.trailer.time_unix_nanos,
            signers.join(", ")
        )?;
        writeln!(
            f,
            "checkpoints     {} in the journal",
            self.checkpoint_count
        )?;
        for (i, key) in self.keys.iter().enumerate() {
            let label = if i == 0 { "signing keys" } else { "" };
            let vkey = printable(&key.vkey);
            let how = match key.kind {
                "signing_key_adopted" => "adopted",
                _ => "rotated in",
            };
            writeln!(f, "{label:<15} {vkey} ({how} at entry {})", key.seq)?;
        }
        for (i, vkey) in self.pinned.iter().enumerate() {
            let label = if i == 0 { "pinned" } else { "" };
            writeln!(f, "{label:<15} {}", printable(vkey))?;
        }
        let t = &self.transactions;
        writeln!(
            f,
            "transactions    {} standard, {} reversal, {} pending ({} posted, {} voided, {} expired, {} open), {} rejected",
            t.standard,
            t.reversal,
            t.pending,
            t.pending_posted,
            t.pending_voided,
            t.pending_expired,
            t.open_pending(),
            t.rejected
        )
    }

    fn account_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![[
            "id",
            "name",
            "type",
            "currency",
            "debits",
            "credits",
            "pending debits",
            "pending credits",
            "balance",
        ]
        .map(String::from)
        .to_vec()];
        for a in &self.accounts {
            let name = if a.closed {
                format!("{} (closed)", printable(&a.name))
            } else {
                printable(&a.name)
            };
            rows.push(vec![
                a.account_id.to_string(),
                name,
                type_name(a.account_type).to_string(),
                printable(&a.currency),
                a.format(a.debits_posted as i128),
                a.format(a.credits_posted as i128),
                a.format(a.debits_pending as i128),
                a.format(a.credits_pending as i128),
                a.format(a.balance()),
            ]);
        }
        rows
    }

    fn trial_balance_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![[
            "currency",
            "debits",
            "credits",
            "pending debits",
            "pending credits",
        ]
        .map(String::from)
        .to_vec()];
        for line in &self.trial_balance {
            // Totals over many accounts may pass i128 only beyond 2^127 minor units, which
            // u128 sums of 2^96-bounded accounts cannot reach in any real ledger; saturate.
            let amount = |minor: u128| {
                tally_core::money::format_minor(
                    i128::try_from(minor).unwrap_or(i128::MAX),
                    line.scale,
                )
            };
            rows.push(vec![
                printable(&line.currency),
                amount(line.debits_posted),
                amount(line.credits_posted),
                amount(line.debits_pending),
                amount(line.credits_pending),
            ]);
        }
        rows
    }
}

fn type_name(account_type: tally_core::entry::AccountType) -> &'static str {
    use tally_core::entry::AccountType::*;
    match account_type {
        Asset => "asset",
        Liability => "liability",
        Equity => "equity",
        Revenue => "revenue",
        Expense => "expense",
    }
}

/// Names come from the journal: escape control characters so that a hostile name cannot
/// drive the auditor's terminal or forge report lines.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Columns two spaces apart, each line indented by two; text columns left-aligned, the
/// amount columns (from `numeric_from` on) right-aligned so that decimal points line up.
fn table(rows: &[Vec<String>], numeric_from: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, (cell, &width)) in row.iter().zip(&widths).enumerate() {
            if c >= numeric_from {
                line.push_str(&format!("  {cell:>width$}"));
            } else {
                line.push_str(&format!("  {cell:<width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_24_bytes() {
        assert_eq!(EXPORT_HEADER.len(), 24);
    }

    #[test]
    fn the_trailer_note_ends_after_its_last_signature_line() {
        // Goal: bytes after the signature lines are found; a trailer without a complete
        // signature line is left whole for the note parser to judge.
        let note = "a\nb\n\n\u{2014} k AAAA\n\u{2014} j BBBB\n";
        assert_eq!(split_trailer(note.as_bytes()), note.len());
        let junk = format!("{note}\n\u{2014} x Y\n");
        assert_eq!(split_trailer(junk.as_bytes()), note.len());
        assert_eq!(split_trailer(b"a\nb\n\nxyz"), 8);
        assert_eq!(split_trailer(b"a\nb\n\n\xe2\x80\x94 k AAAA"), 15);
        assert_eq!(split_trailer(b""), 0);
    }

    #[test]
    fn the_writer_refuses_frames_the_reader_would_refuse() {
        // Goal: an empty or over-long entry cannot be written (it would not read back).
        let mut writer = ExportWriter::new(Vec::new()).unwrap();
        assert!(writer.entry(&[]).is_err());
        assert!(writer.entry(&vec![1; ENTRY_BYTES_MAX + 1]).is_err());
        writer.entry(&[1, 2, 3]).unwrap();
        assert_eq!(writer.entries(), 1);
        let bytes = writer.finish("note\n").unwrap();
        let mut reader = ExportReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.next_entry().unwrap(), Some(&[1u8, 2, 3][..]));
        assert_eq!(reader.next_entry().unwrap(), None);
        assert_eq!(reader.next_seq(), 1);
        assert_eq!(reader.read_trailer().unwrap(), (35, b"note\n".to_vec()));
    }

    #[test]
    fn the_trailer_is_read_only_after_the_end_marker() {
        let mut bytes = EXPORT_HEADER.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1, 1]);
        let reader = ExportReader::new(bytes.as_slice()).unwrap();
        assert_eq!(
            reader.read_trailer().unwrap_err(),
            ExportError::NotAtEnd { seq: 0 }
        );
    }
}
