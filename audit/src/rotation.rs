//! Key rotation notes: the ledger's signing key changes only by a note that the
//! old key and the new key both sign.
//!
//! ```text
//! tally.example/ledger/00112233445566778899aabbccddeeff/blake3   origin (as in checkpoints)
//! key-rotation                                                    what this note is
//! old tally.example/key-1+1f2e3d4c+AXQ0...                        the old key's vkey
//! new tally.example/key-2+5a6b7c8d+AZ1x...                        the new key's vkey
//! size 42                                                         the journal position
//!                                                                 blank line
//! — tally.example/key-1 ...                                       signature by the old key
//! — tally.example/key-2 ...                                       signature by the new key
//! ```
//!
//! The old key's signature hands the ledger over; the new key's proves that its
//! holder took it, and lets an auditor who pinned only the new key walk back to
//! the old one. Line 2 is not a number, so a rotation note never parses as a
//! checkpoint (and a checkpoint never as a rotation). `size` is the seq of the
//! journal entry that records the rotation, so a note cannot be replayed at
//! another position or in another ledger.

use crate::checkpoint::{
    malformed, parse_canonical, parse_origin, validate_log_host, CheckpointError, NoteSigner,
    NoteVerifier, SignedNote,
};

const KIND_LINE: &str = "key-rotation";
const OLD_KEY: &str = "old ";
const NEW_KEY: &str = "new ";
const SIZE_KEY: &str = "size ";

/// What a rotation note states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub log_host: String,
    pub ledger_id: [u8; 16],
    /// The seq of the journal entry that records the rotation.
    pub tree_size: u64,
    pub old_key: NoteVerifier,
    pub new_key: NoteVerifier,
}

impl KeyRotation {
    /// See [`crate::checkpoint::origin`].
    pub fn origin(&self) -> String {
        crate::checkpoint::origin(&self.log_host, &self.ledger_id)
    }

    /// The note text: five lines, each ended by `\n`.
    pub fn to_note_text(&self) -> Result<String, CheckpointError> {
        validate_log_host(&self.log_host)?;
        Ok(format!(
            "{}\n{KIND_LINE}\n{OLD_KEY}{}\n{NEW_KEY}{}\n{SIZE_KEY}{}\n",
            self.origin(),
            self.old_key.to_vkey(),
            self.new_key.to_vkey(),
            self.tree_size
        ))
    }

    /// Parses a note text (without the blank line and signatures), strictly.
    pub fn from_note_text(text: &str) -> Result<KeyRotation, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(malformed(
            text.split('\n').count(),
            "end of text",
            "the last line must end with a newline",
        ))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, kind, old, new, size] = lines[..] else {
            return Err(CheckpointError::BodyLineCount { count: lines.len() });
        };
        let (log_host, ledger_id) = parse_origin(origin)?;
        if kind != KIND_LINE {
            return Err(malformed(2, "kind", "must be \"key-rotation\""));
        }
        let vkey = |line: &str, number, prefix: &str, field| {
            let text = line.strip_prefix(prefix).ok_or(malformed(
                number,
                field,
                "must start with the field name",
            ))?;
            NoteVerifier::from_vkey(text)
                .map_err(|_| malformed(number, field, "must be a valid ed25519 vkey"))
        };
        let old_key = vkey(old, 3, OLD_KEY, "old")?;
        let new_key = vkey(new, 4, NEW_KEY, "new")?;
        if old_key == new_key {
            return Err(malformed(4, "new", "must differ from the old key"));
        }
        let size_text =
            size.strip_prefix(SIZE_KEY)
                .ok_or(malformed(5, "size", "must start with \"size \""))?;
        Ok(KeyRotation {
            log_host,
            ledger_id,
            tree_size: parse_canonical::<u64>(size_text, 5, "size")?,
            old_key,
            new_key,
        })
    }
}

/// Signs a rotation with the old key, then the new key; returns the whole note.
pub fn sign_rotation(
    rotation: &KeyRotation,
    old: &NoteSigner,
    new: &NoteSigner,
) -> Result<String, CheckpointError> {
    if old.verifier() != rotation.old_key || new.verifier() != rotation.new_key {
        return Err(CheckpointError::InvalidVerifierKey {
            reason: "the signers are not the rotation's old and new keys",
        });
    }
    let text = rotation.to_note_text()?;
    let note = SignedNote {
        signatures: vec![old.sign(&text), new.sign(&text)],
        text,
    }
    .to_text();
    SignedNote::parse(note.as_bytes())?;
    Ok(note)
}

/// Parses a rotation note and checks that both keys it names signed it.
///
/// Which key a verifier should trust is its own business: the caller checks
/// that `old_key` (or `new_key`) is one it already trusts.
pub fn open_rotation(note: &[u8]) -> Result<KeyRotation, CheckpointError> {
    let parsed = SignedNote::parse(note)?;
    let rotation = KeyRotation::from_note_text(&parsed.text)?;
    for key in [&rotation.old_key, &rotation.new_key] {
        let verified = crate::checkpoint::open_note(note, std::slice::from_ref(key))?;
        debug_assert_eq!(verified.signed_by.len(), 1);
    }
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, first: u8) -> NoteSigner {
        let seed: [u8; 32] = std::array::from_fn(|i| first.wrapping_add(i as u8));
        NoteSigner::from_seed(name, &seed).unwrap()
    }

    fn rotation(old: &NoteSigner, new: &NoteSigner) -> KeyRotation {
        KeyRotation {
            log_host: "tally.example".into(),
            ledger_id: [0x11; 16],
            tree_size: 42,
            old_key: old.verifier(),
            new_key: new.verifier(),
        }
    }

    #[test]
    fn a_rotation_signed_by_both_keys_opens() {
        // Goal: the note round-trips and names both keys and the position.
        let (old, new) = (signer("k/1", 0), signer("k/2", 100));
        let note = sign_rotation(&rotation(&old, &new), &old, &new).unwrap();
        let opened = open_rotation(note.as_bytes()).unwrap();
        assert_eq!(opened, rotation(&old, &new));
        assert!(note.contains("\nkey-rotation\nold k/1+"));
        assert!(note.ends_with('\n'));
    }

    #[test]
    fn a_rotation_missing_either_signature_is_refused() {
        // Goal: the old key alone cannot hand over, nor can the new key alone take over.
        let (old, new) = (signer("k/1", 0), signer("k/2", 100));
        let text = rotation(&old, &new).to_note_text().unwrap();
        for signatures in [vec![old.sign(&text)], vec![new.sign(&text)]] {
            let note = SignedNote {
                text: text.clone(),
                signatures,
            }
            .to_text();
            assert_eq!(
                open_rotation(note.as_bytes()),
                Err(CheckpointError::NoKnownSignature)
            );
        }
    }

    #[test]
    fn a_rotation_signed_by_another_key_is_refused() {
        // Goal: a third key cannot forge the old key's hand-over.
        let (old, new, other) = (signer("k/1", 0), signer("k/2", 100), signer("k/1", 200));
        let rot = rotation(&old, &new);
        assert!(sign_rotation(&rot, &other, &new).is_err());
        let text = rot.to_note_text().unwrap();
        let forged = SignedNote {
            signatures: vec![other.sign(&text), new.sign(&text)],
            text,
        }
        .to_text();
        assert_eq!(
            open_rotation(forged.as_bytes()),
            Err(CheckpointError::NoKnownSignature)
        );
    }

    #[test]
    fn every_changed_byte_of_the_text_is_caught() {
        // Goal: no byte of the note text can change without the note failing to open.
        let (old, new) = (signer("k/1", 0), signer("k/2", 100));
        let note = sign_rotation(&rotation(&old, &new), &old, &new).unwrap();
        let text_len = note.find("\n\n").unwrap();
        for at in 0..text_len {
            let mut bytes = note.clone().into_bytes();
            bytes[at] ^= 0x01;
            assert!(
                open_rotation(&bytes).is_err(),
                "byte {at} changed unnoticed"
            );
        }
    }

    #[test]
    fn checkpoints_and_rotations_do_not_parse_as_each_other() {
        let (old, new) = (signer("k/1", 0), signer("k/2", 100));
        let text = rotation(&old, &new).to_note_text().unwrap();
        assert!(crate::Checkpoint::from_note_text(&text).is_err());
    }
}
