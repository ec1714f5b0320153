//! The ledger's ed25519 signing key on disk.
//!
//! `DATA_DIR/keys/signing.key`, owner-only (0600, in a 0700 directory), text:
//!
//! ```text
//! tally-signing-key v1
//! <key name, e.g. tally.example/ledger>
//! <32-byte ed25519 seed, hex>
//! ```
//!
//! The public half is exported as a C2SP vkey (`name+keyid+base64`), which is
//! all an auditor needs (`docs/audit-proofs.md`). A key is never overwritten:
//! rotation will be a journal entry signed by the old key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tally_audit::NoteSigner;

/// The first line of a key file.
const KEY_FILE_HEADER: &str = "tally-signing-key v1";

/// The key name used when none is given.
pub const DEFAULT_KEY_NAME: &str = "tally.local/ledger";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key exists already at {0} (keys are never overwritten)")]
    Exists(PathBuf),
    #[error("no signing key at {0}: create one with `tallyd keygen`")]
    Missing(PathBuf),
    #[error("{path} is readable by others (mode {mode:o}); it must be owner-only (0600)")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("the journal's signing key is {journal}, but keys/signing.key holds {file}; to rotate, keep the old key in keys/retired/ (`tallyd keygen --rotate` does)")]
    NotLedgerKey { journal: String, file: String },
    #[error("cannot sign: {0}")]
    Signing(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("signing.key")
}

/// Where rotated-out keys wait until the running ledger has recorded the
/// rotation (signed by them); kept afterwards, so that nothing is lost.
pub fn retired_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("retired")
}

/// Loads the key, or creates one named [`DEFAULT_KEY_NAME`] if there is none
/// (a ledger's first start).
pub fn load_or_generate(data_dir: &Path) -> Result<NoteSigner, KeyError> {
    match load(data_dir) {
        Err(KeyError::Missing(path)) => {
            let signer = generate(data_dir, DEFAULT_KEY_NAME)?;
            tracing::info!(path = %path.display(), vkey = %signer.verifier().to_vkey(), "created the ledger's signing key");
            Ok(signer)
        }
        other => other,
    }
}

/// Retires the current key and creates a new one named `key_name`. The
/// running ledger records the rotation, signed by both keys, on its next
/// start. Returns (old, new).
pub fn rotate(data_dir: &Path, key_name: &str) -> Result<(NoteSigner, NoteSigner), KeyError> {
    let old = load(data_dir)?;
    let retired = retired_dir(data_dir);
    fs::create_dir_all(&retired)?;
    fs::set_permissions(&retired, fs::Permissions::from_mode(0o700))?;
    let target = retired.join(format!("{:08x}.key", old.key_id()));
    if target.exists() {
        return Err(KeyError::Exists(target));
    }
    // A rename within one directory tree is atomic: the key is in exactly
    // one of the two places at every instant. A crash before `generate`
    // leaves no current key; rerunning `keygen` then creates one and the
    // rotation still goes through.
    fs::rename(key_path(data_dir), &target)?;
    sync_dir(&retired)?;
    if let Some(keys) = retired.parent() {
        sync_dir(keys)?;
    }
    let new = generate(data_dir, key_name)?;
    Ok((old, new))
}

/// Every retired key (see [`rotate`]).
pub fn load_retired(data_dir: &Path) -> Result<Vec<NoteSigner>, KeyError> {
    let retired = retired_dir(data_dir);
    let listing = match fs::read_dir(&retired) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut keys = Vec::new();
    for item in listing {
        let path = item?.path();
        if path.extension().is_some_and(|ext| ext == "key") {
            keys.push(load_file(&path)?);
        }
    }
    Ok(keys)
}

fn sync_dir(path: &Path) -> Result<(), KeyError> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

/// Creates a new random key named `key_name`; refuses if one exists.
pub fn generate(data_dir: &Path, key_name: &str) -> Result<NoteSigner, KeyError> {
    let path = key_path(data_dir);
    let signer =
        NoteSigner::generate(key_name, &mut rand_core::OsRng).map_err(|e| KeyError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let directory = path.parent().expect("key path has a directory");
    fs::create_dir_all(directory)?;
    fs::set_permissions(directory, fs::Permissions::from_mode(0o700))?;
    // `create_new` makes "never overwrite" atomic, and the mode applies from
    // the first byte written.
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeyError::Exists(path))
        }
        Err(error) => return Err(error.into()),
    };
    writeln!(
        file,
        "{KEY_FILE_HEADER}\n{key_name}\n{}",
        hex::encode(signer.seed())
    )?;
    file.sync_all()?;
    Ok(signer)
}

/// Loads the key; refuses a file that others can read.
pub fn load(data_dir: &Path) -> Result<NoteSigner, KeyError> {
    load_file(&key_path(data_dir))
}

fn load_file(path: &Path) -> Result<NoteSigner, KeyError> {
    let path = path.to_path_buf();
    let metadata = match fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(path))
        }
        Err(error) => return Err(error.into()),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { path, mode });
    }
    let text = fs::read_to_string(&path)?;
    let malformed = |reason: &str| KeyError::Malformed {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(KEY_FILE_HEADER) {
        return Err(malformed("not a Tally signing key (bad first line)"));
    }
    let name = lines.next().ok_or_else(|| malformed("no key name"))?;
    let seed_hex = lines.next().ok_or_else(|| malformed("no key"))?;
    let seed: [u8; 32] = hex::decode(seed_hex.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| malformed("the key is not 32 bytes of hex"))?;
    NoteSigner::from_seed(name, &seed).map_err(|e| malformed(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_audit::NoteVerifier;

    #[test]
    fn a_generated_key_is_private_loads_back_and_is_never_overwritten() {
        // Goal: keygen writes an owner-only key that loads to the same key,
        // exports a vkey an auditor can parse, and refuses a second keygen.
        let dir = tempfile::tempdir().unwrap();
        let signer = generate(dir.path(), "ledger.example/books").unwrap();
        let mode = fs::metadata(key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load(dir.path()).unwrap();
        assert_eq!(
            (loaded.key_name(), loaded.key_id()),
            (signer.key_name(), signer.key_id())
        );
        assert_eq!(loaded.seed(), signer.seed());
        let vkey = loaded.verifier().to_vkey();
        assert!(vkey.starts_with("ledger.example/books+"), "{vkey}");
        assert_eq!(
            NoteVerifier::from_vkey(&vkey).unwrap().key_id(),
            signer.key_id()
        );
        assert!(matches!(
            generate(dir.path(), "other"),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(
            load(dir.path()).unwrap().seed(),
            signer.seed(),
            "the first key stays"
        );
    }

    #[test]
    fn exposed_missing_and_malformed_keys_are_refused() {
        // Goal: a key others can read, no key, or a damaged file is a named error.
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Missing(_))));
        generate(dir.path(), DEFAULT_KEY_NAME).unwrap();
        let path = key_path(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(KeyError::Exposed { mode: 0o644, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "tally-signing-key v1\nname\nnot-hex\n").unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Malformed { .. })));
    }
}
