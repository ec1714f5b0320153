//! Signed checkpoints: a C2SP `tlog-checkpoint` body carried in a C2SP `signed-note`.
//!
//! ```text
//! tally.example/ledger/00112233445566778899aabbccddeeff/blake3   origin
//! 5                                                               tree size
//! 3q2+7w...=                                                      base64 Merkle root
//! chain-head 9f86d0...                                            Tally extension: hex entry hash
//! time 1700000000000000000                                        Tally extension: Unix ns
//!                                                                 blank line
//! — tally.example/key-1 AAAAAA...                                 base64(key id || ed25519 sig)
//! ```
//!
//! The ed25519 signature covers the note text: every body line, each ended by `\n`. The key
//! id is `SHA-256(key name || 0x0A || 0x01 || public key)[:4]`, read as a big-endian u32. A
//! public key is exported as a C2SP vkey: `<name>+<hex key id>+<base64(0x01 || public key)>`.
//! Parsing is strict: one spelling per value, every malformed byte is a precise error.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::merkle::Hash;

/// The hash named by the origin line (`.../blake3`).
pub const ORIGIN_HASH_NAME: &str = "blake3";
/// C2SP signature type of ed25519 keys.
pub const SIGNATURE_TYPE_ED25519: u8 = 0x01;
/// The largest signed note accepted (a Tally checkpoint is well under 1 KiB).
pub const NOTE_BYTES_MAX: usize = 16 * 1024;
/// The most signature lines a note may carry (the Go `sumdb/note` limit).
pub const SIGNATURES_MAX: usize = 100;

const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
const CHAIN_HEAD_KEY: &str = "chain-head ";
const TIME_KEY: &str = "time ";
const LEDGER_ID_BYTES: usize = 16;

/// What is wrong with a checkpoint, a note, a key or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("note is {len} bytes, more than the {max} allowed")]
    NoteTooLarge { len: usize, max: usize },
    #[error("note is not valid UTF-8 (byte {offset})")]
    NoteNotUtf8 { offset: usize },
    #[error("note contains a control character other than newline at byte {offset}")]
    NoteControlCharacter { offset: usize },
    #[error("note has no blank line followed by signature lines")]
    NoteUnsigned,
    #[error("note has {count} signature lines, more than the {max} allowed")]
    TooManySignatures { count: usize, max: usize },
    #[error("signature line {line}: {reason}")]
    SignatureLineMalformed { line: usize, reason: &'static str },
    #[error("signature line {line} repeats the signature of key {key_name} ({key_id:08x})")]
    DuplicateSignature {
        line: usize,
        key_name: String,
        key_id: u32,
    },
    #[error("checkpoint line {line} ({field}): {reason}")]
    BodyLineMalformed {
        line: usize,
        field: &'static str,
        reason: &'static str,
    },
    #[error("checkpoint has {count} lines; a Tally checkpoint has exactly 5")]
    BodyLineCount { count: usize },
    #[error("invalid log host: {reason}")]
    InvalidLogHost { reason: &'static str },
    #[error("invalid key name: {reason}")]
    InvalidKeyName { reason: &'static str },
    #[error("invalid verifier key: {reason}")]
    InvalidVerifierKey { reason: &'static str },
    #[error("no signature by a known key")]
    NoKnownSignature,
    #[error("signature by key {key_name} ({key_id:08x}) does not verify")]
    SignatureInvalid { key_name: String, key_id: u32 },
}

/// What a checkpoint states: the ledger's journal of `tree_size` entries has Merkle root
/// `root` and chain head `chain_head`, as of `time_unix_nanos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log operator, e.g. `tally.example`; the origin line starts with it.
    pub log_host: String,
    pub ledger_id: [u8; LEDGER_ID_BYTES],
    pub tree_size: u64,
    pub root: Hash,
    /// The entry hash of entry `tree_size - 1` (32 zero bytes when the tree is empty).
    pub chain_head: Hash,
    /// Nanoseconds since the Unix epoch, as `recorded_at` in the journal format.
    pub time_unix_nanos: i64,
}

/// `<log_host>/ledger/<ledger id, 32 lowercase hex digits>/blake3`: the first line of every
/// note a ledger signs (checkpoints and key rotations).
pub fn origin(log_host: &str, ledger_id: &[u8; LEDGER_ID_BYTES]) -> String {
    format!(
        "{log_host}/ledger/{}/{ORIGIN_HASH_NAME}",
        hex::encode(ledger_id)
    )
}

impl Checkpoint {
    /// See [`origin`].
    pub fn origin(&self) -> String {
        origin(&self.log_host, &self.ledger_id)
    }

    /// The note text: five lines, each ended by `\n`.
    pub fn to_note_text(&self) -> Result<String, CheckpointError> {
        validate_log_host(&self.log_host)?;
        Ok(format!(
            "{}\n{}\n{}\n{CHAIN_HEAD_KEY}{}\n{TIME_KEY}{}\n",
            self.origin(),
            self.tree_size,
            BASE64.encode(self.root),
            hex::encode(self.chain_head),
            self.time_unix_nanos
        ))
    }

    /// Parses a note text (without the blank line and signatures), strictly.
    pub fn from_note_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::BodyLineMalformed {
                line: text.split('\n').count(),
                field: "end of text",
                reason: "the last line must end with a newline",
            })?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, chain_head, time] = lines[..] else {
            return Err(CheckpointError::BodyLineCount { count: lines.len() });
        };
        let (log_host, ledger_id) = parse_origin(origin)?;
        Ok(Checkpoint {
            log_host,
            ledger_id,
            tree_size: parse_canonical::<u64>(size, 2, "tree size")?,
            root: parse_root(root)?,
            chain_head: parse_chain_head(chain_head)?,
            time_unix_nanos: parse_time(time)?,
        })
    }
}

pub(crate) fn malformed(line: usize, field: &'static str, reason: &'static str) -> CheckpointError {
    CheckpointError::BodyLineMalformed {
        line,
        field,
        reason,
    }
}

pub(crate) fn validate_log_host(log_host: &str) -> Result<(), CheckpointError> {
    if log_host.is_empty() {
        return Err(CheckpointError::InvalidLogHost { reason: "empty" });
    }
    if !log_host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CheckpointError::InvalidLogHost {
            reason: "only printable ASCII without spaces is allowed",
        });
    }
    Ok(())
}

pub(crate) fn parse_origin(line: &str) -> Result<(String, [u8; LEDGER_ID_BYTES]), CheckpointError> {
    let rest = line
        .strip_suffix(ORIGIN_HASH_NAME)
        .and_then(|rest| rest.strip_suffix('/'))
        .ok_or(malformed(1, "origin", "must end with /blake3"))?;
    let (prefix, ledger_hex) = rest.rsplit_once('/').ok_or(malformed(
        1,
        "origin",
        "must be <log host>/ledger/<ledger id>/blake3",
    ))?;
    let log_host = prefix.strip_suffix("/ledger").ok_or(malformed(
        1,
        "origin",
        "must be <log host>/ledger/<ledger id>/blake3",
    ))?;
    validate_log_host(log_host).map_err(|_| malformed(1, "origin", "invalid log host"))?;
    let ledger_id = parse_lower_hex::<LEDGER_ID_BYTES>(ledger_hex).ok_or(malformed(
        1,
        "origin",
        "ledger id must be 32 lowercase hex digits",
    ))?;
    Ok((log_host.to_string(), ledger_id))
}

/// Parses a decimal integer that must be spelled exactly as Rust prints it (no sign on
/// positives, no leading zeros, no `-0`).
pub(crate) fn parse_canonical<T: std::str::FromStr + ToString>(
    text: &str,
    line: usize,
    field: &'static str,
) -> Result<T, CheckpointError> {
    let reason = "must be a decimal integer without leading zeros or plus sign";
    let value: T = text.parse().map_err(|_| malformed(line, field, reason))?;
    if value.to_string() != text {
        return Err(malformed(line, field, reason));
    }
    Ok(value)
}

fn parse_root(text: &str) -> Result<Hash, CheckpointError> {
    decode_base64_canonical(text)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(malformed(
            3,
            "root",
            "must be 32 bytes in standard padded base64",
        ))
}

fn parse_chain_head(line: &str) -> Result<Hash, CheckpointError> {
    let hex_text = line.strip_prefix(CHAIN_HEAD_KEY).ok_or(malformed(
        4,
        "chain-head",
        "must start with \"chain-head \"",
    ))?;
    parse_lower_hex::<32>(hex_text).ok_or(malformed(
        4,
        "chain-head",
        "must be 64 lowercase hex digits",
    ))
}

fn parse_time(line: &str) -> Result<i64, CheckpointError> {
    let text =
        line.strip_prefix(TIME_KEY)
            .ok_or(malformed(5, "time", "must start with \"time \""))?;
    parse_canonical::<i64>(text, 5, "time")
}

fn parse_lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    if hex::encode(&bytes) != text {
        return None;
    }
    bytes.try_into().ok()
}

/// Standard padded base64 with exactly one spelling per byte string.
fn decode_base64_canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
}

/// `SHA-256(key name || 0x0A || 0x01 || public key)[:4]` as a big-endian u32 (C2SP
/// signed-note, ed25519 keys).
pub fn key_id(key_name: &str, verifying_key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(key_name.as_bytes());
    hasher.update([b'\n', SIGNATURE_TYPE_ED25519]);
    hasher.update(verifying_key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// C2SP: a key name is non-empty and contains no Unicode space and no `+`.
fn validate_key_name(key_name: &str) -> Result<(), CheckpointError> {
    if key_name.is_empty() {
        return Err(CheckpointError::InvalidKeyName { reason: "empty" });
    }
    if key_name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(CheckpointError::InvalidKeyName {
            reason: "contains a space, a control character or '+'",
        });
    }
    Ok(())
}

/// A named ed25519 signing key.
#[derive(Clone)]
pub struct NoteSigner {
    key_name: String,
    key_id: u32,
    signing_key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret key.
        f.debug_struct("NoteSigner")
            .field("key_name", &self.key_name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    pub fn new(key_name: &str, signing_key: SigningKey) -> Result<NoteSigner, CheckpointError> {
        validate_key_name(key_name)?;
        let key_id = key_id(key_name, &signing_key.verifying_key());
        Ok(NoteSigner {
            key_name: key_name.to_string(),
            key_id,
            signing_key,
        })
    }

    /// The key whose 32-byte ed25519 secret (RFC 8032 seed) is `seed`.
    pub fn from_seed(key_name: &str, seed: &[u8; 32]) -> Result<NoteSigner, CheckpointError> {
        NoteSigner::new(key_name, SigningKey::from_bytes(seed))
    }

    /// A new random key; the caller supplies the random source (e.g. `rand_core::OsRng`).
    pub fn generate(
        key_name: &str,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<NoteSigner, CheckpointError> {
        NoteSigner::new(key_name, SigningKey::generate(rng))
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32-byte seed, for the server to store (with owner-only permissions).
    pub fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            key_name: self.key_name.clone(),
            key_id: self.key_id,
            verifying_key: self.signing_key.verifying_key(),
        }
    }

    /// Signs a note text (which must end with `\n` and hold no blank line).
    pub fn sign(&self, text: &str) -> NoteSignature {
        NoteSignature {
            key_name: self.key_name.clone(),
            key_id: self.key_id,
            signature: self.signing_key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }
}

/// A named ed25519 public key, as a verifier knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    key_name: String,
    key_id: u32,
    verifying_key: VerifyingKey,
}

impl NoteVerifier {
    pub fn new(
        key_name: &str,
        verifying_key: VerifyingKey,
    ) -> Result<NoteVerifier, CheckpointError> {
        validate_key_name(key_name)?;
        if verifying_key.is_weak() {
            return Err(CheckpointError::InvalidVerifierKey {
                reason: "public key has small order",
            });
        }
        Ok(NoteVerifier {
            key_id: key_id(key_name, &verifying_key),
            key_name: key_name.to_string(),
            verifying_key,
        })
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// The C2SP vkey: `<name>+<8 lowercase hex digits of key id>+<base64(0x01 || public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut typed_key = vec![SIGNATURE_TYPE_ED25519];
        typed_key.extend_from_slice(self.verifying_key.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.key_name,
            self.key_id,
            BASE64.encode(typed_key)
        )
    }

    /// Parses a C2SP vkey strictly; the key id must match the name and key.
    pub fn from_vkey(vkey: &str) -> Result<NoteVerifier, CheckpointError> {
        let invalid = |reason| CheckpointError::InvalidVerifierKey { reason };
        // The name holds no '+', the key id neither; the base64 key may (as in Go's note).
        let Some((name, id_and_key)) = vkey.split_once('+') else {
            return Err(invalid("must be <name>+<key id>+<key>"));
        };
        let Some((id_hex, key_b64)) = id_and_key.split_once('+') else {
            return Err(invalid("must be <name>+<key id>+<key>"));
        };
        let key_id = parse_lower_hex::<4>(id_hex)
            .map(u32::from_be_bytes)
            .ok_or(invalid("key id must be 8 lowercase hex digits"))?;
        let typed_key = decode_base64_canonical(key_b64)
            .ok_or(invalid("key must be standard padded base64"))?;
        let Some((&SIGNATURE_TYPE_ED25519, key_bytes)) = typed_key.split_first() else {
            return Err(invalid("key type must be 0x01 (ed25519)"));
        };
        let key_bytes: [u8; 32] = key_bytes
            .try_into()
            .map_err(|_| invalid("ed25519 key must be 32 bytes"))?;
        let verifying_key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| invalid("not a valid ed25519 public key"))?;
        let verifier = NoteVerifier::new(name, verifying_key)?;
        if verifier.key_id != key_id {
            return Err(invalid("key id does not match the name and key"));
        }
        Ok(verifier)
    }

    fn verifies(&self, text: &str, signature: &NoteSignature) -> bool {
        let Ok(signature_bytes) = <[u8; 64]>::try_from(signature.signature.as_slice()) else {
            return false;
        };
        let signature = Signature::from_bytes(&signature_bytes);
        self.verifying_key
            .verify_strict(text.as_bytes(), &signature)
            .is_ok()
    }
}

/// One signature line: `— <key name> <base64(key id, 4 bytes BE || signature)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub key_name: String,
    pub key_id: u32,
    /// 64 bytes for ed25519; other C2SP signature types (from unknown keys) may differ.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    fn to_line(&self) -> String {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.key_name,
            BASE64.encode(bytes)
        )
    }

    fn parse_line(line: &str, number: usize) -> Result<NoteSignature, CheckpointError> {
        let malformed = |reason| CheckpointError::SignatureLineMalformed {
            line: number,
            reason,
        };
        let rest = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or(malformed("must start with an em dash (U+2014) and a space"))?;
        let (key_name, signature_b64) = rest.split_once(' ').ok_or(malformed(
            "must be: em dash, space, key name, space, signature",
        ))?;
        validate_key_name(key_name).map_err(|_| malformed("invalid key name"))?;
        let bytes = decode_base64_canonical(signature_b64)
            .ok_or(malformed("signature must be standard padded base64"))?;
        if bytes.len() <= 4 {
            return Err(malformed(
                "signature must be a 4-byte key id and a signature",
            ));
        }
        Ok(NoteSignature {
            key_name: key_name.to_string(),
            key_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            signature: bytes[4..].to_vec(),
        })
    }
}

/// A C2SP signed note: text, a blank line, signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// Ends with `\n`; what the signatures cover.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn to_text(&self) -> String {
        let mut note = self.text.clone();
        note.push('\n');
        for signature in &self.signatures {
            note.push_str(&signature.to_line());
        }
        note
    }

    /// Parses the note's structure (not the checkpoint in it); checks no signature.
    pub fn parse(note: &[u8]) -> Result<SignedNote, CheckpointError> {
        if note.len() > NOTE_BYTES_MAX {
            return Err(CheckpointError::NoteTooLarge {
                len: note.len(),
                max: NOTE_BYTES_MAX,
            });
        }
        let note = std::str::from_utf8(note).map_err(|e| CheckpointError::NoteNotUtf8 {
            offset: e.valid_up_to(),
        })?;
        if let Some(offset) = note.bytes().position(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::NoteControlCharacter { offset });
        }
        let split = note.rfind("\n\n").ok_or(CheckpointError::NoteUnsigned)?;
        let (text, signature_block) = (&note[..split + 1], &note[split + 2..]);
        let lines = signature_block
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoteUnsigned)?;
        let signatures = parse_signature_lines(lines, text.split('\n').count() + 1)?;
        Ok(SignedNote {
            text: text.to_string(),
            signatures,
        })
    }
}

fn parse_signature_lines(
    lines: &str,
    first_line_number: usize,
) -> Result<Vec<NoteSignature>, CheckpointError> {
    let count = lines.split('\n').count();
    if count > SIGNATURES_MAX {
        return Err(CheckpointError::TooManySignatures {
            count,
            max: SIGNATURES_MAX,
        });
    }
    let mut signatures: Vec<NoteSignature> = Vec::with_capacity(count);
    for (i, line) in lines.split('\n').enumerate() {
        let number = first_line_number + i;
        let signature = NoteSignature::parse_line(line, number)?;
        let repeated = signatures
            .iter()
            .any(|s| s.key_name == signature.key_name && s.key_id == signature.key_id);
        if repeated {
            return Err(CheckpointError::DuplicateSignature {
                line: number,
                key_name: signature.key_name,
                key_id: signature.key_id,
            });
        }
        signatures.push(signature);
    }
    Ok(signatures)
}

/// A checkpoint whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    /// `(key name, key id)` of every known key that signed it.
    pub signed_by: Vec<(String, u32)>,
}

/// Signs `checkpoint`, returning the whole signed note.
pub fn sign_checkpoint(
    checkpoint: &Checkpoint,
    signer: &NoteSigner,
) -> Result<String, CheckpointError> {
    sign_note(&checkpoint.to_note_text()?, signer)
}

/// Signs a note text, returning the whole signed note. The text must end with `\n` and hold
/// no blank line and no control character other than newline (checked by parsing the result).
pub fn sign_note(text: &str, signer: &NoteSigner) -> Result<String, CheckpointError> {
    let note = SignedNote {
        text: text.to_string(),
        signatures: vec![signer.sign(text)],
    }
    .to_text();
    let parsed = SignedNote::parse(note.as_bytes())?;
    if parsed.text != text {
        return Err(CheckpointError::NoteUnsigned);
    }
    Ok(note)
}

/// A note whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    pub note: SignedNote,
    /// `(key name, key id)` of every known key that signed it.
    pub signed_by: Vec<(String, u32)>,
}

/// Parses a signed note and verifies it against `known_keys`.
///
/// As C2SP signed-note asks: signatures by unknown keys (other name or key id) are ignored;
/// a signature by a known key that does not verify rejects the whole note; at least one
/// known key must have signed. Signatures are checked with ed25519 `verify_strict`.
pub fn open_note(
    note: &[u8],
    known_keys: &[NoteVerifier],
) -> Result<VerifiedNote, CheckpointError> {
    let note = SignedNote::parse(note)?;
    let mut signed_by = Vec::new();
    for signature in &note.signatures {
        let known = known_keys
            .iter()
            .find(|k| k.key_name == signature.key_name && k.key_id == signature.key_id);
        let Some(verifier) = known else { continue };
        if !verifier.verifies(&note.text, signature) {
            return Err(CheckpointError::SignatureInvalid {
                key_name: signature.key_name.clone(),
                key_id: signature.key_id,
            });
        }
        signed_by.push((signature.key_name.clone(), signature.key_id));
    }
    if signed_by.is_empty() {
        return Err(CheckpointError::NoKnownSignature);
    }
    Ok(VerifiedNote { note, signed_by })
}

/// Parses and verifies a signed checkpoint note against `known_keys` (see [`open_note`]);
/// the checkpoint text is parsed strictly before any signature is checked.
pub fn open_checkpoint(
    note: &[u8],
    known_keys: &[NoteVerifier],
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let parsed = SignedNote::parse(note)?;
    let checkpoint = Checkpoint::from_note_text(&parsed.text)?;
    let verified = open_note(note, known_keys)?;
    Ok(VerifiedCheckpoint {
        checkpoint,
        signed_by: verified.signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test key of `docs/audit-proofs.md`: seed 00 01 02 .. 1f.
    fn test_signer() -> NoteSigner {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        NoteSigner::from_seed("tally.example/key-1", &seed).unwrap()
    }

    fn test_checkpoint() -> Checkpoint {
        Checkpoint {
            log_host: "tally.example".to_string(),
            ledger_id: hex::decode("00112233445566778899aabbccddeeff")
                .unwrap()
                .try_into()
                .unwrap(),
            tree_size: 5,
            root: [0xab; 32],
            chain_head: [0xcd; 32],
            time_unix_nanos: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn checkpoint_text_round_trips() {
        // Goal: the five body lines are as documented and parse back to the same checkpoint.
        let checkpoint = test_checkpoint();
        let text = checkpoint.to_note_text().unwrap();
        let expected = format!(
            "tally.example/ledger/00112233445566778899aabbccddeeff/blake3\n5\n{}\nchain-head {}\ntime 1700000000000000000\n",
            BASE64.encode([0xab; 32]),
            "cd".repeat(32)
        );
        assert_eq!(text, expected);
        assert_eq!(Checkpoint::from_note_text(&text).unwrap(), checkpoint);
    }

    #[test]
    fn signed_checkpoint_opens_with_its_key_only() {
        // Goal: a signed checkpoint verifies with its own key, and not with another key of the
        // same name (different key id) or with no known key.
        let signer = test_signer();
        let note = sign_checkpoint(&test_checkpoint(), &signer).unwrap();
        let verified = open_checkpoint(note.as_bytes(), &[signer.verifier()]).unwrap();
        assert_eq!(verified.checkpoint, test_checkpoint());
        assert_eq!(
            verified.signed_by,
            vec![("tally.example/key-1".to_string(), signer.key_id())]
        );
        let other = NoteSigner::from_seed("tally.example/key-1", &[9; 32]).unwrap();
        assert_eq!(
            open_checkpoint(note.as_bytes(), &[other.verifier()]),
            Err(CheckpointError::NoKnownSignature)
        );
        assert_eq!(
            open_checkpoint(note.as_bytes(), &[]),
            Err(CheckpointError::NoKnownSignature)
        );
    }

    #[test]
    fn a_forged_signature_by_a_known_key_rejects_the_note() {
        // Goal: a signature line naming a known key (name and key id) that does not verify
        // rejects the note, even when another known key signed it correctly.
        let signer = test_signer();
        let second = NoteSigner::from_seed("tally.example/key-2", &[7; 32]).unwrap();
        let text = test_checkpoint().to_note_text().unwrap();
        let mut forged = second.sign(&text);
        forged.signature[0] ^= 1;
        let note = SignedNote {
            text,
            signatures: vec![
                signer.sign(&test_checkpoint().to_note_text().unwrap()),
                forged,
            ],
        };
        let result = open_checkpoint(
            note.to_text().as_bytes(),
            &[signer.verifier(), second.verifier()],
        );
        assert_eq!(
            result,
            Err(CheckpointError::SignatureInvalid {
                key_name: "tally.example/key-2".to_string(),
                key_id: second.key_id()
            })
        );
    }

    #[test]
    fn go_sumdb_note_reference_vector() {
        // Goal: key ids, vkeys and signatures match the Go reference implementation's example
        // (golang.org/x/mod/sumdb/note, package documentation: PeterNeumann key and note).
        let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; // from PRIVATE+KEY+PeterNeumann+c74f20a3+...
        let typed_seed = BASE64.decode(skey).unwrap();
        assert_eq!(typed_seed[0], SIGNATURE_TYPE_ED25519);
        let seed: [u8; 32] = typed_seed[1..].try_into().unwrap();
        let signer = NoteSigner::from_seed("PeterNeumann", &seed).unwrap();
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier().to_vkey(), vkey);
        assert_eq!(NoteVerifier::from_vkey(vkey).unwrap(), signer.verifier());
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let note = format!("{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
        assert_eq!(sign_note(text, &signer).unwrap(), note);
        let verified =
            open_note(note.as_bytes(), &[NoteVerifier::from_vkey(vkey).unwrap()]).unwrap();
        assert_eq!(verified.note.text, text);
    }

    #[test]
    fn malformed_checkpoint_texts_are_named() {
        // Goal: each way a checkpoint body can be malformed yields an error naming the line.
        let good = test_checkpoint().to_note_text().unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let with_line = |index: usize, replacement: &str| {
            let mut changed = lines.clone();
            changed[index] = replacement;
            format!("{}\n", changed.join("\n"))
        };
        let cases = [
            (
                with_line(
                    0,
                    "tally.example/ledger/00112233445566778899aabbccddeeff/sha256",
                ),
                1,
                "origin",
            ),
            (
                with_line(
                    0,
                    "tally.example/ledger/00112233445566778899AABBCCDDEEFF/blake3",
                ),
                1,
                "origin",
            ),
            (
                with_line(0, "/ledger/00112233445566778899aabbccddeeff/blake3"),
                1,
                "origin",
            ),
            (
                with_line(
                    0,
                    "tally.example/books/00112233445566778899aabbccddeeff/blake3",
                ),
                1,
                "origin",
            ),
            (with_line(1, "05"), 2, "tree size"),
            (with_line(1, "+5"), 2, "tree size"),
            (with_line(1, "-1"), 2, "tree size"),
            (with_line(1, "18446744073709551616"), 2, "tree size"),
            (with_line(2, &BASE64.encode([0xab; 31])), 3, "root"),
            (
                with_line(2, &BASE64.encode([0xab; 32]).replace('=', "")),
                3,
                "root",
            ),
            (
                with_line(3, &format!("chain-head {}", "CD".repeat(32))),
                4,
                "chain-head",
            ),
            (
                with_line(3, &format!("chain-head  {}", "cd".repeat(32))),
                4,
                "chain-head",
            ),
            (
                with_line(3, &format!("chain-head {}", "cd".repeat(31))),
                4,
                "chain-head",
            ),
            (with_line(4, "time -0"), 5, "time"),
            (with_line(4, "time 1.5"), 5, "time"),
            (with_line(4, "Time 5"), 5, "time"),
        ];
        for (text, line, field) in cases {
            match Checkpoint::from_note_text(&text) {
                Err(CheckpointError::BodyLineMalformed {
                    line: l, field: f, ..
                }) => {
                    assert_eq!((l, f), (line, field), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            Checkpoint::from_note_text(&format!("{good}extra\n")),
            Err(CheckpointError::BodyLineCount { count: 6 })
        );
        assert!(matches!(
            Checkpoint::from_note_text(good.trim_end()),
            Err(CheckpointError::BodyLineMalformed {
                field: "end of text",
                ..
            })
        ));
    }

    #[test]
    fn malformed_notes_are_named() {
        // Goal: structural faults of a signed note are rejected with a precise error.
        let signer = test_signer();
        let note = sign_checkpoint(&test_checkpoint(), &signer).unwrap();
        let keys = [signer.verifier()];
        let open = |text: &str| open_checkpoint(text.as_bytes(), &keys);
        assert_eq!(
            open(&note.replace("\n\n", "\n")),
            Err(CheckpointError::NoteUnsigned)
        );
        assert_eq!(open(note.trim_end()), Err(CheckpointError::NoteUnsigned));
        assert!(matches!(
            open(&note.replace('\u{2014}', "--")),
            Err(CheckpointError::SignatureLineMalformed { line: 7, .. })
        ));
        assert!(matches!(
            open(&note.replace("\n", "\r\n")),
            Err(CheckpointError::NoteControlCharacter { .. })
        ));
        let signature_line = note.split("\n\n").nth(1).unwrap();
        assert!(matches!(
            open(&format!("{note}{signature_line}")),
            Err(CheckpointError::DuplicateSignature { line: 8, .. })
        ));
        assert!(matches!(
            open_checkpoint(&[0xff, 0x0a], &keys),
            Err(CheckpointError::NoteNotUtf8 { offset: 0 })
        ));
        let huge = "a".repeat(NOTE_BYTES_MAX + 1);
        assert!(matches!(
            open(&huge),
            Err(CheckpointError::NoteTooLarge { .. })
        ));
    }

    #[test]
    fn vkeys_round_trip_and_reject_manglings() {
        // Goal: a vkey parses back to its key; a wrong key id, type, length or spelling fails.
        let verifier = test_signer().verifier();
        let vkey = verifier.to_vkey();
        assert_eq!(NoteVerifier::from_vkey(&vkey).unwrap(), verifier);
        // This key's base64 contains a '+', which must not be taken for a separator.
        assert_eq!(vkey.matches('+').count(), 3, "{vkey}");
        let (name, rest) = vkey.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();
        let mut typed = BASE64.decode(key).unwrap();
        typed[0] = 0x02;
        let bad = [
            format!("{name}+{:08x}+{key}", verifier.key_id() ^ 1),
            format!("{name}+{}+{key}", id.to_uppercase()),
            format!("{name}+{id}+{}", BASE64.encode(&typed)),
            format!("{name}+{id}+{}", BASE64.encode(&typed[1..])),
            format!("{name}+{id}+{key}+extra"),
            format!("{name} x+{id}+{key}"),
            format!("+{id}+{key}"),
            format!("{name}+{id}"),
        ];
        for vkey in bad {
            assert!(NoteVerifier::from_vkey(&vkey).is_err(), "{vkey}");
        }
    }

    #[test]
    fn key_names_follow_c2sp() {
        // Goal: empty key names and names with spaces or '+' are refused.
        for name in ["", "a b", "a+b", "a\tb", "a\u{00a0}b"] {
            assert!(NoteSigner::from_seed(name, &[1; 32]).is_err(), "{name:?}");
        }
        assert!(NoteSigner::from_seed("tally.example/key-1", &[1; 32]).is_ok());
    }

    #[test]
    fn signer_debug_hides_the_secret() {
        // Goal: printing a signer shows its name and key id, never its seed.
        let signer = test_signer();
        let printed = format!("{signer:?}");
        assert!(printed.contains("tally.example/key-1"));
        assert!(!printed.contains("0, 1, 2"), "{printed}");
    }
}
