//! The latest signed checkpoint, kept beside the storage as a plain file
//! (`DATA_DIR/checkpoint.latest`), so that storage that silently loses its
//! tail is caught on start rather than served.
//!
//! The storage engine treats a damaged record as a torn write and drops it
//! and everything after it; the journal then merely looks shorter, and its
//! hash chain still verifies. The mark says how long the journal was at
//! least: a journal that does not reach the marked checkpoint's own entry,
//! or holds another note there, has lost acknowledged entries. The file is
//! written after the checkpoint's entry is durable (temp file, fsync, rename).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the mark lives.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoint.latest")
}

/// Replaces the mark with `note` (a signed checkpoint note of `tree_size`).
pub fn write(data_dir: &Path, note: &str) -> std::io::Result<()> {
    let target = path(data_dir);
    let temporary = data_dir.join("checkpoint.latest.tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(note.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, &target)?;
    fs::File::open(data_dir)?.sync_all()
}

/// The marked checkpoint: (tree size, note), if there is a mark.
pub fn read(data_dir: &Path) -> Result<Option<(u64, String)>, String> {
    let target = path(data_dir);
    let note = match fs::read_to_string(&target) {
        Ok(note) => note,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", target.display())),
    };
    let tree_size = tally_audit::checkpoint::SignedNote::parse(note.as_bytes())
        .and_then(|signed| tally_audit::Checkpoint::from_note_text(&signed.text))
        .map_err(|e| format!("{}: {e}", target.display()))?
        .tree_size;
    Ok(Some((tree_size, note)))
}

/// Checks the journal against the mark: `note_at(seq)` gives the checkpoint
/// note recorded at `seq`, if that entry exists and is a checkpoint.
pub fn check(
    data_dir: &Path,
    length: u64,
    note_at: impl FnOnce(u64) -> Option<String>,
) -> Result<(), String> {
    let Some((tree_size, note)) = read(data_dir)? else {
        return Ok(());
    };
    if length <= tree_size {
        return Err(format!(
            "the journal has {length} entries, but a checkpoint of {tree_size} entries was signed and recorded as entry {tree_size} ({}): storage lost acknowledged entries; restore the data directory from a backup",
            path(data_dir).display()
        ));
    }
    if note_at(tree_size).as_deref() != Some(note.as_str()) {
        return Err(format!(
            "entry {tree_size} is not the checkpoint recorded in {}: the journal was replaced or rewritten",
            path(data_dir).display()
        ));
    }
    Ok(())
}
