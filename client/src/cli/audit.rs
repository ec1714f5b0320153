//! `tally audit`: fetch signed checkpoints, proofs and exports from the ledger (online), and
//! verify them from files with nothing but the ledger's public keys (offline, `verify-*`).
//!
//! Nothing the server sends is trusted. The online commands still check each proof against
//! the checkpoint it came with before writing it, so that a broken server is noticed when
//! the proof is fetched rather than when an auditor reads it; only the offline commands and
//! `watch` check signatures, against keys the auditor pinned.
//!
//! Bundles are JSON files (`docs/audit-proofs.md`): the proof together with the signed
//! checkpoint(s) it is checked against. The verifier takes sizes and roots from the signed
//! checkpoints only, never from the bundle's own fields.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tally_audit::bundle::{self, ExtendError};
use tally_audit::checkpoint::SignedNote;
use tally_audit::{
    open_checkpoint, open_rotation, verify_export, Checkpoint, CheckpointError, Hash, NoteVerifier,
    VerifiedCheckpoint,
};
use tally_client::{Client, SignedCheckpoint};
use tally_core::chain::entry_hash;
use tally_core::codec;
use tally_core::entry::{Digest, EntryBody};

use super::args::{AuditCommand, VerifyArgs, WatchArgs};
use super::audit_event;
use super::commands::Printer;
use super::CliError;

/// `format` of an inclusion proof bundle.
pub const INCLUSION_FORMAT: &str = "tally-inclusion-proof v1";
/// `format` of a consistency proof bundle.
pub const CONSISTENCY_FORMAT: &str = "tally-consistency-proof v1";
/// The largest bundle or note file read: an entry is at most 4 MiB, 8 MiB in hex.
const INPUT_BYTES_MAX: u64 = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Dispatch

/// Runs a `verify-*` command. Never connects to a server.
pub fn offline(command: &AuditCommand, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let mut printer = Printer { json, out };
    match command {
        AuditCommand::VerifyCheckpoint(args) => verify_checkpoint_file(args, &mut printer),
        AuditCommand::VerifyInclusion(args) => verify_inclusion_file(args, &mut printer),
        AuditCommand::VerifyConsistency(args) => verify_consistency_file(args, &mut printer),
        AuditCommand::VerifyExport(args) => verify_export_file(args, &mut printer),
        AuditCommand::VerifyEvent(args) => audit_event::verify_event_file(args, &mut printer),
        _ => Err(CliError::Usage(
            "this audit command needs a server; it is not an offline command".into(),
        )),
    }
}

/// Runs an audit command that talks to the server.
pub async fn online(
    client: &Client,
    printer: &mut Printer<'_>,
    command: AuditCommand,
) -> Result<(), CliError> {
    match command {
        AuditCommand::Checkpoint { size, create, out } => {
            checkpoint(client, printer, size, create, out).await
        }
        AuditCommand::Keys => keys(client, printer).await,
        AuditCommand::ProveInclusion { seq, size, out } => {
            prove_inclusion(client, printer, seq, size, &out).await
        }
        AuditCommand::ProveConsistency { old, size, out } => {
            prove_consistency(client, printer, &old, size, &out).await
        }
        AuditCommand::Export { out, size } => export(client, printer, size, &out).await,
        AuditCommand::Watch(args) => watch(client, printer, args).await,
        AuditCommand::ProveEvent {
            event_id,
            tree_size,
            out,
        } => audit_event::prove_event(client, printer, &event_id, tree_size, &out).await,
        offline_command => offline(&offline_command, printer.json, printer.out),
    }
}

// ---------------------------------------------------------------------------------------
// Inputs and outputs

/// The trusted keys of `--key`: each a vkey, or `@PATH` of a file with one vkey per line
/// (blank lines skipped, so that `tallyd pubkey > FILE` works as is).
pub fn load_keys(specs: &[String]) -> Result<Vec<NoteVerifier>, CliError> {
    let mut keys = Vec::new();
    for spec in specs {
        match spec.strip_prefix('@') {
            Some(path) => keys.extend(keys_file(Path::new(path))?),
            None => keys.push(parse_key(spec, "--key")?),
        }
    }
    Ok(keys)
}

fn keys_file(path: &Path) -> Result<Vec<NoteVerifier>, CliError> {
    let text = fs::read_to_string(path)
        .map_err(|error| CliError::Usage(format!("{}: {error}", path.display())))?;
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.is_empty() {
            let place = format!("{} line {}", path.display(), number + 1);
            keys.push(parse_key(line, &place)?);
        }
    }
    if keys.is_empty() {
        return Err(CliError::Usage(format!("{}: no key", path.display())));
    }
    Ok(keys)
}

fn parse_key(text: &str, place: &str) -> Result<NoteVerifier, CliError> {
    NoteVerifier::from_vkey(text).map_err(|error| CliError::Usage(format!("{place}: {error}")))
}

/// Reads an input file whole, refusing one too large to be what it claims.
pub(super) fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let usage = |error: io::Error| CliError::Usage(format!("{}: {error}", path.display()));
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(usage)?
        .take(INPUT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(usage)?;
    if bytes.len() as u64 > INPUT_BYTES_MAX {
        return Err(CliError::Usage(format!(
            "{}: larger than {INPUT_BYTES_MAX} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// A temp file beside `path`, so that the final rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Makes `temp` the file at `path`: flushed to disk first, so that a crash leaves either
/// the old file or the new one, never a torn one.
fn commit_temp(temp: &Path, file: File, path: &Path) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)?;
    // The rename itself is durable once the directory is synced (best effort: not every
    // platform lets a directory be opened).
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let temp = temp_path(path);
    let result = File::create(&temp)
        .and_then(|mut file| file.write_all(bytes).map(|()| file))
        .and_then(|file| commit_temp(&temp, file, path));
    result.map_err(|error| {
        let _ = fs::remove_file(&temp);
        CliError::Output(format!("{}: {error}", path.display()))
    })
}

// ---------------------------------------------------------------------------------------
// Bundle files (JSON)

/// An inclusion proof bundle as read from its file; nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionBundle {
    pub checkpoint: String,
    pub seq: u64,
    pub tree_size: u64,
    pub prev_hash: Digest,
    pub entry: Vec<u8>,
    pub proof: Vec<Hash>,
}

/// A consistency proof bundle as read from its file; nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyBundle {
    pub old_checkpoint: String,
    pub new_checkpoint: String,
    pub proof: Vec<Hash>,
}

pub(super) fn hex_list(proof: &[Hash]) -> Value {
    Value::Array(proof.iter().map(|hash| hex::encode(hash).into()).collect())
}

impl InclusionBundle {
    pub fn to_json(&self) -> Value {
        json!({
            "format": INCLUSION_FORMAT,
            "checkpoint": self.checkpoint,
            "seq": self.seq,
            "tree_size": self.tree_size,
            "prev_hash": hex::encode(self.prev_hash),
            "entry": hex::encode(&self.entry),
            "proof": hex_list(&self.proof),
        })
    }

    /// Parses a bundle strictly: every field present, of its type, and no other field.
    pub fn parse(bytes: &[u8]) -> Result<InclusionBundle, String> {
        const FIELDS: &[&str] = &[
            "format",
            "checkpoint",
            "seq",
            "tree_size",
            "prev_hash",
            "entry",
            "proof",
        ];
        let value = parse_json(bytes)?;
        let fields = bundle_fields(&value, INCLUSION_FORMAT, FIELDS)?;
        Ok(InclusionBundle {
            checkpoint: string_field(fields, "checkpoint")?.to_string(),
            seq: u64_field(fields, "seq")?,
            tree_size: u64_field(fields, "tree_size")?,
            prev_hash: hash_field(fields, "prev_hash")?,
            entry: hex_field(fields, "entry")?,
            proof: hashes_field(fields, "proof")?,
        })
    }
}

impl ConsistencyBundle {
    pub fn to_json(&self) -> Value {
        json!({
            "format": CONSISTENCY_FORMAT,
            "old_checkpoint": self.old_checkpoint,
            "new_checkpoint": self.new_checkpoint,
            "proof": hex_list(&self.proof),
        })
    }

    /// Parses a bundle strictly: every field present, of its type, and no other field.
    pub fn parse(bytes: &[u8]) -> Result<ConsistencyBundle, String> {
        const FIELDS: &[&str] = &["format", "old_checkpoint", "new_checkpoint", "proof"];
        let value = parse_json(bytes)?;
        let fields = bundle_fields(&value, CONSISTENCY_FORMAT, FIELDS)?;
        Ok(ConsistencyBundle {
            old_checkpoint: string_field(fields, "old_checkpoint")?.to_string(),
            new_checkpoint: string_field(fields, "new_checkpoint")?.to_string(),
            proof: hashes_field(fields, "proof")?,
        })
    }
}

pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|error| format!("not valid JSON: {error}"))
}

/// The bundle's object, once its `format` is the expected one and it holds no unknown
/// field (a field this verifier ignored could be one a reader relies on).
fn bundle_fields<'a>(
    value: &'a Value,
    format: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let fields = value.as_object().ok_or("a bundle must be a JSON object")?;
    let found = string_field(fields, "format")?;
    if found != format {
        return Err(format!("field \"format\": {found:?} is not {format:?}"));
    }
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(format!("unknown field {unknown:?}"));
    }
    Ok(fields)
}

pub(super) fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a Value, String> {
    fields
        .get(name)
        .ok_or_else(|| format!("missing field {name:?}"))
}

pub(super) fn string_field<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, String> {
    field(fields, name)?
        .as_str()
        .ok_or_else(|| format!("field {name:?}: must be a string"))
}

pub(super) fn u64_field(fields: &Map<String, Value>, name: &str) -> Result<u64, String> {
    field(fields, name)?
        .as_u64()
        .ok_or_else(|| format!("field {name:?}: must be an integer from 0 to 2^64-1"))
}

/// Lowercase hex only: one spelling per byte string, as everywhere in the audit formats.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok()?;
    (hex::encode(&bytes) == text).then_some(bytes)
}

pub(super) fn hex_field(fields: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    decode_hex(string_field(fields, name)?)
        .ok_or_else(|| format!("field {name:?}: must be lowercase hex"))
}

fn hash_from(value: &Value) -> Option<Hash> {
    decode_hex(value.as_str()?)?.try_into().ok()
}

pub(super) fn hash_field(fields: &Map<String, Value>, name: &str) -> Result<Hash, String> {
    hash_from(field(fields, name)?)
        .ok_or_else(|| format!("field {name:?}: must be 64 lowercase hex digits"))
}

pub(super) fn hashes_field(fields: &Map<String, Value>, name: &str) -> Result<Vec<Hash>, String> {
    let items = field(fields, name)?
        .as_array()
        .ok_or_else(|| format!("field {name:?}: must be an array of hashes"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            hash_from(item)
                .ok_or_else(|| format!("field {name:?}[{i}]: must be 64 lowercase hex digits"))
        })
        .collect()
}

pub(super) fn write_bundle(path: &Path, value: &Value) -> Result<(), CliError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|error| CliError::Output(error.to_string()))?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

pub(super) fn failed(path: &Path, message: impl std::fmt::Display) -> CliError {
    CliError::Verification(format!("{}: {message}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Online: checkpoints and keys

pub(super) async fn fetch_checkpoint(
    client: &Client,
    size: Option<u64>,
    create: bool,
) -> Result<SignedCheckpoint, CliError> {
    let checkpoint = match (size, create) {
        (Some(size), _) => client.checkpoint(Some(size)).await?,
        (None, true) => client.create_checkpoint().await?,
        (None, false) => client.checkpoint(None).await?,
    };
    let stated = unsigned_checkpoint(&checkpoint.note).map_err(|error| {
        CliError::Verification(format!("the server's checkpoint note: {error}"))
    })?;
    // The size the server reports beside the note must be the one signed in it.
    if stated.tree_size != checkpoint.tree_size {
        return Err(CliError::Verification(format!(
            "the server says its checkpoint has {} entries, its note says {}",
            checkpoint.tree_size, stated.tree_size
        )));
    }
    if size.is_some_and(|size| size != stated.tree_size) {
        return Err(CliError::Verification(format!(
            "asked for the checkpoint of {} entries, the server sent one of {}",
            size.unwrap_or_default(),
            stated.tree_size
        )));
    }
    Ok(checkpoint)
}

/// What a note states, without checking any signature (for the online self-checks).
pub(super) fn unsigned_checkpoint(note: &str) -> Result<Checkpoint, CheckpointError> {
    let parsed = SignedNote::parse(note.as_bytes())?;
    Checkpoint::from_note_text(&parsed.text)
}

async fn checkpoint(
    client: &Client,
    printer: &mut Printer<'_>,
    size: Option<u64>,
    create: bool,
    out: Option<PathBuf>,
) -> Result<(), CliError> {
    let checkpoint = fetch_checkpoint(client, size, create).await?;
    let Some(path) = out else {
        return printer.show(
            || json!({ "tree_size": checkpoint.tree_size, "note": checkpoint.note }),
            || checkpoint.note.clone(),
        );
    };
    write_atomically(&path, checkpoint.note.as_bytes())?;
    let line = format!(
        "wrote the checkpoint of {} entries to {}",
        checkpoint.tree_size,
        path.display()
    );
    printer.line(&line)
}

async fn keys(client: &Client, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = client.signing_keys().await?;
    printer.show(
        || {
            let keys = keys
                .iter()
                .map(|key| json!({ "vkey": key.vkey, "since_seq": key.since_seq }));
            Value::Array(keys.collect())
        },
        || {
            let mut text = String::from("since  vkey\n");
            for key in &keys {
                text.push_str(&format!("{:<5}  {}\n", key.since_seq, key.vkey));
            }
            text
        },
    )
}

// ---------------------------------------------------------------------------------------
// Online: proofs and the export

async fn prove_inclusion(
    client: &Client,
    printer: &mut Printer<'_>,
    seq: u64,
    size: Option<u64>,
    out: &Path,
) -> Result<(), CliError> {
    let checkpoint = fetch_checkpoint(client, size, size.is_none()).await?;
    if seq >= checkpoint.tree_size {
        return Err(CliError::Usage(format!(
            "entry {seq} is not covered by the checkpoint of {} entries",
            checkpoint.tree_size
        )));
    }
    let entry = client.audit_entry(seq).await?;
    if entry.seq != seq {
        return Err(CliError::Verification(format!(
            "asked for entry {seq}, the server sent entry {}",
            entry.seq
        )));
    }
    let proof = client.inclusion_proof(seq, checkpoint.tree_size).await?;
    let bundle = InclusionBundle {
        checkpoint: checkpoint.note,
        seq,
        tree_size: checkpoint.tree_size,
        prev_hash: entry.prev_hash,
        entry: entry.canonical,
        proof,
    };
    self_check_inclusion(&bundle)?;
    write_bundle(out, &bundle.to_json())?;
    let line = format!(
        "wrote the inclusion proof of entry {seq} in the checkpoint of {} entries to {}",
        bundle.tree_size,
        out.display()
    );
    printer.line(&line)
}

/// The proof must verify against the checkpoint it came with (signature not checked here).
fn self_check_inclusion(bundle: &InclusionBundle) -> Result<(), CliError> {
    let server = |message: String| {
        CliError::Verification(format!("the server's inclusion proof: {message}"))
    };
    let checkpoint = unsigned_checkpoint(&bundle.checkpoint).map_err(|e| server(e.to_string()))?;
    let hash = entry_hash(bundle.seq, &bundle.prev_hash, &bundle.entry);
    let leaf = tally_audit::entry_leaf_hash(&hash);
    tally_audit::merkle::verify_inclusion(
        &tally_audit::Blake3,
        &leaf,
        bundle.seq,
        checkpoint.tree_size,
        &bundle.proof,
        &checkpoint.root,
    )
    .map_err(|error| server(error.to_string()))
}

async fn prove_consistency(
    client: &Client,
    printer: &mut Printer<'_>,
    old_path: &Path,
    size: Option<u64>,
    out: &Path,
) -> Result<(), CliError> {
    let old_note = String::from_utf8(read_input(old_path)?)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8 text", old_path.display())))?;
    let old = unsigned_checkpoint(&old_note)
        .map_err(|error| CliError::Usage(format!("{}: {error}", old_path.display())))?;
    let new = fetch_checkpoint(client, size, size.is_none()).await?;
    if new.tree_size < old.tree_size {
        return Err(CliError::Usage(format!(
            "the old checkpoint has {} entries, more than the {} of the new one",
            old.tree_size, new.tree_size
        )));
    }
    let stated_new = unsigned_checkpoint(&new.note)
        .map_err(|error| CliError::Verification(format!("the server's checkpoint: {error}")))?;
    if old.origin() != stated_new.origin() {
        return Err(CliError::Usage(format!(
            "{}: a checkpoint of {}, not of this server's {}",
            old_path.display(),
            old.origin(),
            stated_new.origin()
        )));
    }
    let proof = client
        .consistency_proof(old.tree_size, new.tree_size)
        .await?;
    bundle::check_extends(&old, &stated_new, &proof).map_err(|error| {
        CliError::Verification(format!("the server's consistency proof: {error}"))
    })?;
    let bundle = ConsistencyBundle {
        old_checkpoint: old_note,
        new_checkpoint: new.note,
        proof,
    };
    write_bundle(out, &bundle.to_json())?;
    let line = format!(
        "wrote the consistency proof from {} to {} entries to {}",
        old.tree_size,
        new.tree_size,
        out.display()
    );
    printer.line(&line)
}

async fn export(
    client: &Client,
    printer: &mut Printer<'_>,
    size: Option<u64>,
    out: &Path,
) -> Result<(), CliError> {
    let size = match size {
        Some(size) => size,
        None => client.create_checkpoint().await?.tree_size,
    };
    let temp = temp_path(out);
    let written = export_to(client, size, &temp, out).await;
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    let checkpoint = written?;
    let line = format!(
        "exported {} entries (the checkpoint of {} entries) to {}",
        checkpoint.tree_size,
        checkpoint.tree_size,
        out.display()
    );
    printer.line(&line)
}

/// Streams the export into `temp`, then moves it to `out`: an interrupted export never
/// leaves a file that looks complete.
async fn export_to(
    client: &Client,
    size: u64,
    temp: &Path,
    out: &Path,
) -> Result<SignedCheckpoint, CliError> {
    let output = |error: io::Error| CliError::Output(format!("{}: {error}", out.display()));
    let file = File::create(temp).map_err(output)?;
    let mut writer = BufWriter::new(file);
    let checkpoint = client.export_journal(Some(size), &mut writer).await?;
    let file = writer
        .into_inner()
        .map_err(|error| output(error.into_error()))?;
    commit_temp(temp, file, out).map_err(output)?;
    Ok(checkpoint)
}

// ---------------------------------------------------------------------------------------
// Offline verification

pub(super) fn signers(verified: &VerifiedCheckpoint) -> String {
    let names: Vec<String> = verified
        .signed_by
        .iter()
        .map(|(name, id)| format!("{name} ({id:08x})"))
        .collect();
    names.join(", ")
}

pub(super) fn checkpoint_json(verified: &VerifiedCheckpoint) -> Value {
    let checkpoint = &verified.checkpoint;
    json!({
        "origin": checkpoint.origin(),
        "tree_size": checkpoint.tree_size,
        "root": hex::encode(checkpoint.root),
        "chain_head": hex::encode(checkpoint.chain_head),
        "time_unix_nanos": checkpoint.time_unix_nanos,
        "signed_by": signers(verified),
    })
}

pub(super) fn checkpoint_text(verified: &VerifiedCheckpoint) -> String {
    let checkpoint = &verified.checkpoint;
    format!(
        "origin      {}\ntree size   {}\nroot        {}\nchain head  {}\ntime        {}\nsigned by   {}\n",
        checkpoint.origin(),
        checkpoint.tree_size,
        hex::encode(checkpoint.root),
        hex::encode(checkpoint.chain_head),
        checkpoint.time_unix_nanos,
        signers(verified)
    )
}

fn verify_checkpoint_file(args: &VerifyArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = load_keys(&args.keys)?;
    let note = read_input(&args.file)?;
    let verified = open_checkpoint(&note, &keys).map_err(|error| failed(&args.file, error))?;
    printer.show(
        || checkpoint_json(&verified),
        || format!("checkpoint verified\n{}", checkpoint_text(&verified)),
    )
}

fn verify_inclusion_file(args: &VerifyArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = load_keys(&args.keys)?;
    let bytes = read_input(&args.file)?;
    let bundle = InclusionBundle::parse(&bytes).map_err(|error| failed(&args.file, error))?;
    let verified = bundle::verify_inclusion(
        bundle.checkpoint.as_bytes(),
        &keys,
        bundle.seq,
        &bundle.prev_hash,
        &bundle.entry,
        &bundle.proof,
    )
    .map_err(|error| failed(&args.file, error))?;
    let signed_size = verified.checkpoint.checkpoint.tree_size;
    // The proof was checked against the signed size; a bundle that states another one is
    // lying about something, and a reader of its fields would be misled.
    if bundle.tree_size != signed_size {
        return Err(failed(
            &args.file,
            format!(
                "field \"tree_size\" is {} but the signed checkpoint has {signed_size} entries",
                bundle.tree_size
            ),
        ));
    }
    let entry_json = serde_json::to_string(&verified.entry)
        .map_err(|error| CliError::Output(error.to_string()))?;
    let kind = verified.entry.body.kind_name();
    if printer.json {
        // Written by hand: amounts are u128, which serde_json's `Value` cannot hold.
        let text = format!(
            "{{\"seq\":{},\"kind\":\"{kind}\",\"entry_hash\":\"{}\",\"checkpoint\":{},\"entry\":{entry_json}}}",
            verified.seq,
            hex::encode(verified.entry_hash),
            checkpoint_json(&verified.checkpoint)
        );
        return printer.line(&text);
    }
    let text = format!(
        "entry verified\nseq         {}\nkind        {kind}\nentry hash  {}\ncheckpoint  {} entries, root {}, signed by {}\nentry       {entry_json}",
        verified.seq,
        hex::encode(verified.entry_hash),
        signed_size,
        hex::encode(verified.checkpoint.checkpoint.root),
        signers(&verified.checkpoint)
    );
    printer.line(&text)
}

fn verify_consistency_file(args: &VerifyArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = load_keys(&args.keys)?;
    let bytes = read_input(&args.file)?;
    let bundle = ConsistencyBundle::parse(&bytes).map_err(|error| failed(&args.file, error))?;
    let verified = bundle::verify_consistency(
        bundle.old_checkpoint.as_bytes(),
        bundle.new_checkpoint.as_bytes(),
        &keys,
        &bundle.proof,
    )
    .map_err(|error| failed(&args.file, error))?;
    printer.show(
        || json!({ "old": checkpoint_json(&verified.old), "new": checkpoint_json(&verified.new) }),
        || {
            format!(
                "consistency verified: the checkpoint of {} entries extends the checkpoint of {} entries\n\nold\n{}\nnew\n{}",
                verified.new.checkpoint.tree_size,
                verified.old.checkpoint.tree_size,
                checkpoint_text(&verified.old),
                checkpoint_text(&verified.new)
            )
        },
    )
}

fn verify_export_file(args: &VerifyArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = load_keys(&args.keys)?;
    let file = File::open(&args.file)
        .map_err(|error| CliError::Usage(format!("{}: {error}", args.file.display())))?;
    let report =
        verify_export(BufReader::new(file), &keys).map_err(|error| failed(&args.file, error))?;
    write!(printer.out, "{}", report.render())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Watch

/// A monitor of one ledger: the pinned keys plus those it learned through rotations.
struct Watcher<'a> {
    client: &'a Client,
    state: PathBuf,
    trusted: Vec<NoteVerifier>,
}

async fn watch(
    client: &Client,
    printer: &mut Printer<'_>,
    args: WatchArgs,
) -> Result<(), CliError> {
    let mut watcher = Watcher {
        client,
        state: args.state,
        trusted: load_keys(&args.keys)?,
    };
    loop {
        match watcher.round().await {
            Ok(line) => printer.line(&line)?,
            // A server that is down or restarting is not evidence of anything; a monitor
            // keeps watching. `--once` reports it, so that a cron job sees it.
            Err(CliError::Client(error)) if !args.once => {
                eprintln!("warning: {error}; retrying in {} ms", args.interval_ms);
            }
            Err(error) => return Err(error),
        }
        if args.once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
}

impl Watcher<'_> {
    /// One round: the server's latest checkpoint must extend the verified one.
    async fn round(&mut self) -> Result<String, CliError> {
        let previous = self.read_state()?;
        let latest = self.client.checkpoint(None).await?;
        let new = self
            .open_trusted(&latest.note, "the server's checkpoint")
            .await?;
        let new_size = new.checkpoint.tree_size;
        let Some(old_note) = previous else {
            write_atomically(&self.state, latest.note.as_bytes())?;
            return Ok(format!(
                "trusted on first use: the checkpoint of {new_size} entries, root {}, signed by {}",
                hex::encode(new.checkpoint.root),
                signers(&new)
            ));
        };
        let state_what = format!("state file {}", self.state.display());
        let old = self.open_trusted(&old_note, &state_what).await?;
        let old_size = old.checkpoint.tree_size;
        let proof = if new_size > old_size {
            self.client.consistency_proof(old_size, new_size).await?
        } else {
            Vec::new()
        };
        bundle::check_extends(&old.checkpoint, &new.checkpoint, &proof)
            .map_err(|error| CliError::Verification(watch_failure(&error)))?;
        if latest.note == old_note {
            return Ok(format!("the checkpoint of {new_size} entries is unchanged"));
        }
        write_atomically(&self.state, latest.note.as_bytes())?;
        Ok(format!(
            "the checkpoint of {new_size} entries, root {}, extends the verified checkpoint of {old_size} entries",
            hex::encode(new.checkpoint.root)
        ))
    }

    fn read_state(&self) -> Result<Option<String>, CliError> {
        match fs::read_to_string(&self.state) {
            Ok(note) => Ok(Some(note)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(CliError::Usage(format!(
                "{}: {error}",
                self.state.display()
            ))),
        }
    }

    /// Opens `note` with the trusted keys; when no trusted key signed it, first learns the
    /// keys the ledger rotated to from a trusted one, then tries again.
    async fn open_trusted(
        &mut self,
        note: &str,
        what: &str,
    ) -> Result<VerifiedCheckpoint, CliError> {
        let failure = |error: CheckpointError| CliError::Verification(format!("{what}: {error}"));
        match open_checkpoint(note.as_bytes(), &self.trusted) {
            Err(CheckpointError::NoKnownSignature) => {
                let origin = unsigned_checkpoint(note).map_err(failure)?.origin();
                self.learn_rotations(&origin).await?;
                open_checkpoint(note.as_bytes(), &self.trusted).map_err(|error| match error {
                    CheckpointError::NoKnownSignature => CliError::Verification(format!(
                        "{what}: signed by no trusted key, nor by a key the ledger rotated to from one"
                    )),
                    error => failure(error),
                })
            }
            opened => opened.map_err(failure),
        }
    }

    /// Walks the ledger's key chain, oldest first, trusting each rotation's new key when
    /// its old key is trusted: the holder of a trusted key handed the ledger over, and the
    /// note carries both signatures.
    async fn learn_rotations(&mut self, origin: &str) -> Result<(), CliError> {
        for key in self.client.signing_keys().await? {
            let Some(note) = self.rotation_note(key.since_seq).await? else {
                continue;
            };
            let seq = key.since_seq;
            let rotation = open_rotation(note.as_bytes()).map_err(|error| {
                CliError::Verification(format!("entry {seq} (signing_key_rotated): {error}"))
            })?;
            // The note names its own position and ledger; one from elsewhere hands over
            // nothing here.
            if rotation.tree_size != seq || rotation.origin() != origin {
                return Err(CliError::Verification(format!(
                    "entry {seq} (signing_key_rotated): the note is for entry {} of {}, not entry {seq} of {origin}",
                    rotation.tree_size,
                    rotation.origin()
                )));
            }
            if self.trusted.contains(&rotation.old_key) && !self.trusted.contains(&rotation.new_key)
            {
                self.trusted.push(rotation.new_key);
            }
        }
        Ok(())
    }

    /// The rotation note of the entry that made a key current; `None` for the adoption of
    /// the first key, which extends no trust.
    async fn rotation_note(&self, seq: u64) -> Result<Option<String>, CliError> {
        let entry = self.client.audit_entry(seq).await?;
        let decoded = codec::decode(&entry.canonical)
            .map_err(|error| CliError::Verification(format!("entry {seq}: {error}")))?;
        if entry.seq != seq {
            return Err(CliError::Verification(format!(
                "asked for entry {seq}, the server sent entry {}",
                entry.seq
            )));
        }
        match decoded.body {
            EntryBody::SigningKeyRotated { note } => Ok(Some(note)),
            EntryBody::SigningKeyAdopted { .. } => Ok(None),
            other => Err(CliError::Verification(format!(
                "entry {seq}: the server lists a signing key from it, but it is {}",
                other.kind_name()
            ))),
        }
    }
}

/// The failure in a monitor's words: the new checkpoint is the server's, the old one is
/// the one already verified.
fn watch_failure(error: &ExtendError) -> String {
    match error {
        ExtendError::OriginMismatch { old, new } => format!(
            "the server's checkpoint is of {new}, not {old} like the verified checkpoint"
        ),
        ExtendError::Rollback { old_size, new_size } => format!(
            "rollback: the server's checkpoint has {new_size} entries, fewer than the {old_size} already verified"
        ),
        ExtendError::SameSizeFork {
            size,
            old_root,
            new_root,
        } => format!(
            "fork: the server's checkpoint of {size} entries has root {new_root}, the verified one {old_root}"
        ),
        ExtendError::Inconsistent {
            old_size,
            new_size,
            error,
        } => format!(
            "fork: checkpoint of {new_size} entries is not consistent with the verified checkpoint of {old_size} entries ({error})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inclusion() -> InclusionBundle {
        InclusionBundle {
            checkpoint: "note\n\n\u{2014} k sig\n".into(),
            seq: 3,
            tree_size: 9,
            prev_hash: [7; 32],
            entry: vec![1, 2, 0xab],
            proof: vec![[1; 32], [0xfe; 32]],
        }
    }

    fn with(mut value: Value, path: &[&str], new: Value) -> Vec<u8> {
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut value;
        for key in parents {
            target = &mut target[*key];
        }
        match new {
            Value::Null => {
                target.as_object_mut().unwrap().remove(*last);
            }
            new => target[*last] = new,
        }
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn bundles_round_trip_through_json() {
        // Goal: what prove-* writes, verify-* reads back field for field.
        let bundle = inclusion();
        let bytes = serde_json::to_vec(&bundle.to_json()).unwrap();
        assert_eq!(InclusionBundle::parse(&bytes), Ok(bundle));
        let consistency = ConsistencyBundle {
            old_checkpoint: "a".into(),
            new_checkpoint: "b".into(),
            proof: vec![],
        };
        let bytes = serde_json::to_vec(&consistency.to_json()).unwrap();
        assert_eq!(ConsistencyBundle::parse(&bytes), Ok(consistency));
    }

    #[test]
    fn malformed_bundles_name_the_field() {
        // Goal: no input panics; each error says which field is wrong and how.
        let good = inclusion().to_json();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{".to_vec(), "not valid JSON"),
            (b"[]".to_vec(), "must be a JSON object"),
            (
                with(
                    good.clone(),
                    &["format"],
                    "tally-consistency-proof v1".into(),
                ),
                "field \"format\"",
            ),
            (
                with(good.clone(), &["seq"], Value::Null),
                "missing field \"seq\"",
            ),
            (
                with(good.clone(), &["seq"], json!(-1)),
                "field \"seq\": must be an integer",
            ),
            (
                with(good.clone(), &["tree_size"], json!("9")),
                "field \"tree_size\"",
            ),
            (
                with(good.clone(), &["prev_hash"], json!("07")),
                "field \"prev_hash\": must be 64",
            ),
            (
                with(good.clone(), &["entry"], json!("0102AB")),
                "field \"entry\": must be lowercase hex",
            ),
            (
                with(good.clone(), &["entry"], json!("012")),
                "field \"entry\"",
            ),
            (
                with(good.clone(), &["proof"], json!("00")),
                "field \"proof\": must be an array",
            ),
            (
                with(
                    good.clone(),
                    &["proof"],
                    json!([hex::encode([1; 32]), "zz"]),
                ),
                "field \"proof\"[1]: must be 64 lowercase hex digits",
            ),
            (
                with(good.clone(), &["checkpoint"], json!(5)),
                "field \"checkpoint\": must be a string",
            ),
            (with(good, &["extra"], json!(1)), "unknown field \"extra\""),
        ];
        for (bytes, expected) in cases {
            let error = InclusionBundle::parse(&bytes).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} does not contain {expected:?}"
            );
        }
        let error = ConsistencyBundle::parse(
            br#"{"format":"tally-consistency-proof v1","old_checkpoint":"a","new_checkpoint":"b"}"#,
        )
        .unwrap_err();
        assert_eq!(error, "missing field \"proof\"");
    }

    #[test]
    fn keys_come_from_the_command_line_or_files() {
        // Goal: a vkey file as `tallyd pubkey` writes it loads; a bad key is a usage error
        // that names the file and line.
        let vkey = "tally.example/key-1+4e513526+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        fs::write(&file, format!("{vkey}\n\n")).unwrap();
        let keys = load_keys(&[vkey.to_string(), format!("@{}", file.display())]).unwrap();
        assert_eq!(keys.len(), 2);
        fs::write(&file, format!("{vkey}\nnot-a-key\n")).unwrap();
        let error = load_keys(&[format!("@{}", file.display())]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(load_keys(&["x+1+2".to_string()]).is_err());
    }

    #[test]
    fn the_state_file_is_replaced_whole() {
        // Goal: an atomic write leaves the new content and no temp file behind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
