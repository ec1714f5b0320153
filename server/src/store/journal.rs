//! The journal on disk: append-only segment files of group records, outside
//! sled.
//!
//! Why not sled: a group of thousands of entries is a few MiB of bytes that
//! are written once and never changed; sled stored them as large values (blob
//! files) inside its own log, and its `apply_batch` plus `flush` was most of
//! the writer's storage time. Here a group costs ONE `write` and ONE
//! `fdatasync` of the file it is appended to.
//!
//! Layout: `<data dir>/journal/<first seq, 20 digits>.seg`. A segment is a
//! sequence of group records and nothing else; the next group goes to a new
//! segment once the current one has reached [`SEGMENT_BYTES_MAX`] (a group is
//! never split). A group record, every integer big endian (like the entry
//! encoding and the sled keys):
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..4   | magic `TJGR`                                                 |
//! | 4..6   | record format version u16 (1)                                |
//! | 6..8   | zero                                                         |
//! | 8..16  | seq of the group's first entry u64                           |
//! | 16..20 | entry count u32 (at least 1)                                 |
//! | 20..24 | zero                                                         |
//! | 24..32 | body length u64                                              |
//! | 32..64 | blake3 of the body                                           |
//! | 64..72 | the first 8 bytes of blake3 of bytes 0..64 (header check)     |
//! | 72..   | body: for each entry, in seq order, `entry_hash (32) ‖ length (u32) ‖ canonical bytes` |
//!
//! The header check tells a damaged header from a sane one before its body
//! length is trusted, so a flipped bit in a length is never taken for a short
//! (torn) write.
//!
//! Durability: a group is durable, and may be acknowledged, once
//! [`Journal::append`] has returned: its record was written and `fdatasync`ed.
//! A crash can leave at most one record in flight, the last one of the last
//! segment; opening drops it if it is torn (it was never acknowledged).
//! Anything else that does not check out is `StoreError::Corrupt`: nothing
//! acknowledged is ever dropped silently.
//!
//! Reads: an in-memory index holds, for each block of at most
//! [`BLOCK_ENTRIES_MAX`] consecutive entries of a record, its first seq and
//! where its bytes are; reading one entry is a binary search and one `pread`
//! of its block.

use super::Store;
use crate::error::StoreError;
use crate::ledger::state::Journaled;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tally_core::chain::GENESIS_PREV_HASH;
use tally_core::entry::Digest;

/// A segment takes no more groups once it is this long: large enough that the
/// directory stays short, small enough to copy or archive one at a time.
pub const SEGMENT_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Entries per index block: reading one entry reads its block (about 25 KiB
/// for transfers), and the index costs 24 bytes per block.
pub const BLOCK_ENTRIES_MAX: usize = 128;

/// A stored journal entry: seq, stored hash, canonical bytes.
pub type JournalRow = (u64, Digest, Vec<u8>);

const MAGIC: [u8; 4] = *b"TJGR";
const RECORD_VERSION: u16 = 1;
pub(super) const HEADER_LEN: usize = 72;
const ENTRY_HEADER_LEN: usize = 36;
const SEGMENT_SUFFIX: &str = ".seg";
/// Bytes a sequential reader asks for at once (several blocks per `pread`).
const READ_SPAN: u64 = 1 << 20;
/// Bytes examined at a time when looking for a valid record after damage.
const SEARCH_WINDOW: u64 = 8 << 20;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The file name of the segment whose first entry is `first_seq`.
fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The segments in `dir`, by first seq. Other files are not the journal's.
pub(super) fn segment_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(segments),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        match digits.parse::<u64>() {
            Ok(first_seq) if digits.len() == 20 => segments.push((first_seq, entry.path())),
            _ => tracing::warn!(file = name, "not a journal segment name; ignored"),
        }
    }
    segments.sort();
    Ok(segments)
}

/// Makes a directory's entries (a new or renamed file) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---- records ---------------------------------------------------------------

/// One group record being built: header room, then the body.
pub(super) struct RecordBuilder {
    bytes: Vec<u8>,
    first_seq: u64,
    count: u64,
    last_hash: Digest,
    /// Where each block starts in `bytes`, with its first seq.
    blocks: Vec<(u64, usize)>,
}

impl RecordBuilder {
    pub(super) fn new(first_seq: u64, body_capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN + body_capacity);
        bytes.resize(HEADER_LEN, 0);
        RecordBuilder {
            bytes,
            first_seq,
            count: 0,
            last_hash: GENESIS_PREV_HASH,
            blocks: Vec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn count(&self) -> u64 {
        self.count
    }

    pub(super) fn body_len(&self) -> usize {
        self.bytes.len() - HEADER_LEN
    }

    pub(super) fn push(&mut self, hash: &Digest, canonical: &[u8]) -> Result<(), StoreError> {
        let length = u32::try_from(canonical.len())
            .map_err(|_| corrupt("an entry of 4 GiB or more cannot be stored"))?;
        if self.count.is_multiple_of(BLOCK_ENTRIES_MAX as u64) {
            self.blocks
                .push((self.first_seq + self.count, self.bytes.len()));
        }
        self.bytes.extend_from_slice(hash);
        self.bytes.extend_from_slice(&length.to_be_bytes());
        self.bytes.extend_from_slice(canonical);
        self.count += 1;
        self.last_hash = *hash;
        Ok(())
    }

    /// Fills in the header.
    pub(super) fn finish(mut self) -> Result<Record, StoreError> {
        let count = u32::try_from(self.count)
            .map_err(|_| corrupt("a group of 2^32 entries or more cannot be stored"))?;
        if count == 0 {
            return Err(corrupt("an empty group is not a record"));
        }
        let body_len = (self.bytes.len() - HEADER_LEN) as u64;
        let checksum = blake3::hash(&self.bytes[HEADER_LEN..]);
        let header = &mut self.bytes[..HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC);
        header[4..6].copy_from_slice(&RECORD_VERSION.to_be_bytes());
        header[8..16].copy_from_slice(&self.first_seq.to_be_bytes());
        header[16..20].copy_from_slice(&count.to_be_bytes());
        header[24..32].copy_from_slice(&body_len.to_be_bytes());
        header[32..64].copy_from_slice(checksum.as_bytes());
        let check = blake3::hash(&header[..64]);
        header[64..72].copy_from_slice(&check.as_bytes()[..8]);
        Ok(Record {
            bytes: self.bytes,
            first_seq: self.first_seq,
            count: self.count,
            last_hash: self.last_hash,
            blocks: self.blocks,
        })
    }
}

/// A finished group record, ready to append.
pub(super) struct Record {
    bytes: Vec<u8>,
    first_seq: u64,
    count: u64,
    last_hash: Digest,
    blocks: Vec<(u64, usize)>,
}

/// The record of one group of journaled entries.
fn group_record(group: &[Journaled]) -> Result<Record, StoreError> {
    let size = group
        .iter()
        .map(|j| ENTRY_HEADER_LEN + j.canonical.len())
        .sum();
    let first_seq = group[0].seq;
    let mut record = RecordBuilder::new(first_seq, size);
    for (journaled, seq) in group.iter().zip(first_seq..) {
        // The index counts entries from the record's first seq.
        if journaled.seq != seq {
            return Err(io::Error::other(format!(
                "a group with entry {} where entry {seq} belongs",
                journaled.seq
            ))
            .into());
        }
        record.push(&journaled.hash, &journaled.canonical)?;
    }
    record.finish()
}

/// The bytes of one group record holding `entries` (entry hash, canonical
/// bytes) from `first_seq` on, as [`Store::write_group`] appends them: for
/// tests and tools that write segment files by hand (`tests/tamper.rs`).
pub fn group_record_bytes(
    first_seq: u64,
    entries: &[(Digest, Vec<u8>)],
) -> Result<Vec<u8>, StoreError> {
    let mut record = RecordBuilder::new(first_seq, 0);
    for (hash, canonical) in entries {
        record.push(hash, canonical)?;
    }
    Ok(record.finish()?.bytes)
}

/// A sane header (magic, header check, version, fields).
#[derive(Debug)]
struct Header {
    first_seq: u64,
    count: u32,
    body_len: u64,
    checksum: [u8; 32],
}

/// Why the bytes at some offset are not a valid record.
enum Damage {
    /// What an interrupted append leaves (short, or a header or body that
    /// does not check out): dropped if it is the journal's last record.
    Torn(String),
    /// Never what an interrupted append leaves.
    Corrupt(String),
}

fn decode_header(header: &[u8; HEADER_LEN]) -> Result<Header, Damage> {
    if header[0..4] != MAGIC {
        return Err(Damage::Torn("no record magic".into()));
    }
    if blake3::hash(&header[..64]).as_bytes()[..8] != header[64..72] {
        return Err(Damage::Torn("the header check does not match".into()));
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != RECORD_VERSION {
        // A sane header of another version is not a torn write: never drop it.
        return Err(Damage::Corrupt(format!(
            "record format version {version} is not known to this tallyd"
        )));
    }
    let count = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes"));
    if header[6..8] != [0, 0] || header[20..24] != [0; 4] || count == 0 {
        return Err(Damage::Corrupt("malformed record header".into()));
    }
    Ok(Header {
        first_seq: u64::from_be_bytes(header[8..16].try_into().expect("8 bytes")),
        count,
        body_len: u64::from_be_bytes(header[24..32].try_into().expect("8 bytes")),
        checksum: header[32..64].try_into().expect("32 bytes"),
    })
}

/// A record's blocks: first seq, offset in the body, length.
type BodyBlocks = Vec<(u64, usize, usize)>;

/// Walks a checked body: its blocks and the last entry's hash. The body must
/// hold exactly `count` entries.
fn walk_body(body: &[u8], first_seq: u64, count: u32) -> Result<(BodyBlocks, Digest), String> {
    let mut starts = Vec::new();
    let mut at = 0;
    let mut last_hash = GENESIS_PREV_HASH;
    for index in 0..u64::from(count) {
        let seq = first_seq + index;
        if index.is_multiple_of(BLOCK_ENTRIES_MAX as u64) {
            starts.push((seq, at));
        }
        let header = body
            .get(at..at + ENTRY_HEADER_LEN)
            .ok_or_else(|| format!("entry {seq} is cut short"))?;
        let length = u32::from_be_bytes(header[32..36].try_into().expect("4 bytes")) as usize;
        let end = at + ENTRY_HEADER_LEN + length;
        if end > body.len() {
            return Err(format!("entry {seq} is cut short"));
        }
        last_hash.copy_from_slice(&header[..32]);
        at = end;
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last entry", body.len() - at));
    }
    let blocks = starts
        .iter()
        .enumerate()
        .map(|(i, &(seq, start))| {
            let end = starts.get(i + 1).map_or(at, |&(_, next)| next);
            (seq, start, end - start)
        })
        .collect();
    Ok((blocks, last_hash))
}

/// Splits the bytes of consecutive entries (a block, or a legacy sled chunk)
/// into rows.
pub(super) fn parse_entries(first_seq: u64, bytes: &[u8]) -> Result<Vec<JournalRow>, StoreError> {
    let cut = || corrupt(format!("journal block at seq {first_seq}: truncated entry"));
    let mut rows = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = rest.get(..ENTRY_HEADER_LEN).ok_or_else(cut)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&header[..32]);
        let length = u32::from_be_bytes(header[32..36].try_into().expect("4 bytes")) as usize;
        let body = rest
            .get(ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + length)
            .ok_or_else(cut)?;
        rows.push((first_seq + rows.len() as u64, hash, body.to_vec()));
        rest = &rest[ENTRY_HEADER_LEN + length..];
    }
    Ok(rows)
}

// ---- the journal -----------------------------------------------------------

struct Segment {
    file: Arc<File>,
}

/// Up to [`BLOCK_ENTRIES_MAX`] consecutive entries of one record.
#[derive(Debug, Clone, Copy)]
struct Block {
    first_seq: u64,
    /// File offset of the block's first entry.
    offset: u64,
    len: u64,
    segment: u32,
}

/// What readers see: grows only, under the write lock, after a record is
/// durable.
struct Index {
    segments: Vec<Segment>,
    blocks: Vec<Block>,
    length: u64,
    head: Digest,
}

impl Index {
    /// The block holding `seq`, if written.
    fn block_of(&self, seq: u64) -> Option<usize> {
        if seq >= self.length {
            return None;
        }
        Some(self.blocks.partition_point(|block| block.first_seq <= seq) - 1)
    }

    fn add_blocks(&mut self, segment: u32, blocks: impl IntoIterator<Item = (u64, u64, usize)>) {
        for (first_seq, offset, len) in blocks {
            self.blocks.push(Block {
                first_seq,
                offset,
                len: len as u64,
                segment,
            });
        }
    }
}

/// The writer's side: where the next record goes.
struct Appender {
    /// Length of the last segment (where the next record goes).
    end: u64,
    /// An append failed: what is on disk past `end` is unknown, so nothing
    /// more is appended until a restart has scanned the segment.
    failed: bool,
}

pub(super) struct Journal {
    dir: PathBuf,
    segment_limit: u64,
    index: RwLock<Index>,
    appender: Mutex<Appender>,
}

impl Journal {
    /// Opens the journal in `dir` (which must exist): checks every record,
    /// drops a torn last one, builds the index.
    pub(super) fn open(dir: &Path, segment_limit: u64) -> Result<Journal, StoreError> {
        let files = segment_files(dir)?;
        let mut index = Index {
            segments: Vec::with_capacity(files.len()),
            blocks: Vec::new(),
            length: 0,
            head: GENESIS_PREV_HASH,
        };
        let mut end = 0;
        for (position, (first_seq, path)) in files.iter().enumerate() {
            let last = position + 1 == files.len();
            let name = segment_name(*first_seq);
            if *first_seq != index.length {
                return Err(corrupt(format!(
                    "journal segment {name} starts at seq {first_seq}, but the journal before it \
                     ends at seq {}",
                    index.length
                )));
            }
            let file = OpenOptions::new().read(true).write(last).open(path)?;
            index.segments.push(Segment {
                file: Arc::new(file),
            });
            end = scan_segment(&mut index, position, dir, &name, last)?;
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            segment_limit,
            index: RwLock::new(index),
            appender: Mutex::new(Appender { end, failed: false }),
        })
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Journal length and chain head (the last entry's hash).
    pub(super) fn head(&self) -> (u64, Digest) {
        let index = self.index();
        (index.length, index.head)
    }

    /// Appends a group's record and makes it durable (`fdatasync`) before
    /// returning: the durability point of a group.
    pub(super) fn append_group(&self, group: &[Journaled]) -> Result<(), StoreError> {
        if group.is_empty() {
            return Ok(());
        }
        self.append(group_record(group)?, true)
    }

    /// Appends a record with ONE write, then `fdatasync`s it if `sync`
    /// (otherwise [`Journal::sync`] must follow before it counts as written).
    /// Readers see it once this returns.
    pub(super) fn append(&self, record: Record, sync: bool) -> Result<(), StoreError> {
        let mut appender = self
            .appender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if appender.failed {
            return Err(io::Error::other(
                "an earlier journal write failed; restart to recover the journal",
            )
            .into());
        }
        let (length, current) = {
            let index = self.index();
            let current = index
                .segments
                .last()
                .map(|segment| (index.segments.len() - 1, Arc::clone(&segment.file)));
            (index.length, current)
        };
        if record.first_seq != length {
            return Err(io::Error::other(format!(
                "a group starting at seq {} does not follow the journal's {length} entries",
                record.first_seq
            ))
            .into());
        }
        let roll = match current {
            Some(_) => appender.end >= self.segment_limit,
            None => true,
        };
        let result = (|| -> io::Result<usize> {
            let (segment, file) = match current {
                Some(current) if !roll => current,
                _ => {
                    // A new segment: its directory entry must be durable too,
                    // or a crash could lose the whole file with its records.
                    let path = self.dir.join(segment_name(length));
                    let file = Arc::new(
                        OpenOptions::new()
                            .read(true)
                            .write(true)
                            .create_new(true)
                            .open(&path)?,
                    );
                    sync_dir(&self.dir)?;
                    let mut index = self.index_mut();
                    index.segments.push(Segment {
                        file: Arc::clone(&file),
                    });
                    appender.end = 0;
                    (index.segments.len() - 1, file)
                }
            };
            file.write_all_at(&record.bytes, appender.end)?;
            if sync {
                file.sync_data()?;
            }
            Ok(segment)
        })();
        let segment = match result {
            Ok(segment) => segment,
            Err(error) => {
                appender.failed = true;
                return Err(error.into());
            }
        };
        let start = appender.end;
        let total = record.bytes.len();
        let mut index = self.index_mut();
        let blocks = record.blocks.iter().enumerate().map(|(i, &(seq, at))| {
            let next = record.blocks.get(i + 1).map_or(total, |&(_, next)| next);
            (seq, start + at as u64, next - at)
        });
        index.add_blocks(segment as u32, blocks);
        index.length += record.count;
        index.head = record.last_hash;
        appender.end += total as u64;
        Ok(())
    }

    /// Makes every segment's data and the directory durable (after appends
    /// without `sync`).
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        for segment in &self.index().segments {
            segment.file.sync_data()?;
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// One entry, if written.
    pub(super) fn row(&self, seq: u64) -> Result<Option<JournalRow>, StoreError> {
        let (block, file) = {
            let index = self.index();
            let Some(position) = index.block_of(seq) else {
                return Ok(None);
            };
            let block = index.blocks[position];
            (
                block,
                Arc::clone(&index.segments[block.segment as usize].file),
            )
        };
        let mut bytes = vec![0u8; block.len as usize];
        file.read_exact_at(&mut bytes, block.offset)?;
        let mut rows = parse_entries(block.first_seq, &bytes)?;
        let position = (seq - block.first_seq) as usize;
        if position >= rows.len() {
            return Err(corrupt(format!("entry {seq} is missing from its block")));
        }
        Ok(Some(rows.swap_remove(position)))
    }

    /// Every entry from `from_seq`, in order, read a span of blocks at a time.
    pub(super) fn rows(&self, from_seq: u64) -> Rows<'_> {
        Rows {
            journal: self,
            from_seq,
            next_block: None,
            ready: Vec::new().into_iter(),
            done: false,
        }
    }
}

/// Scans one segment, adding its blocks to the index; returns the offset its
/// valid records end at (the segment's length once a torn tail is dropped).
fn scan_segment(
    index: &mut Index,
    position: usize,
    dir: &Path,
    name: &str,
    last: bool,
) -> Result<u64, StoreError> {
    let file = Arc::clone(&index.segments[position].file);
    let file_len = file.metadata()?.len();
    let mut offset = 0u64;
    let mut body = Vec::new();
    while offset < file_len {
        let damage = match read_record(&file, offset, file_len, index.length, &mut body)? {
            Ok(header) => {
                let (blocks, last_hash) = walk_body(&body, header.first_seq, header.count)
                    .map_err(|reason| {
                        corrupt(format!(
                            "journal segment {name}, group record at byte {offset}: {reason}"
                        ))
                    })?;
                let body_start = offset + HEADER_LEN as u64;
                index.add_blocks(
                    position as u32,
                    blocks
                        .into_iter()
                        .map(|(seq, at, len)| (seq, body_start + at as u64, len)),
                );
                index.length += u64::from(header.count);
                index.head = last_hash;
                offset = body_start + header.body_len;
                continue;
            }
            Err(damage) => damage,
        };
        let reason = match damage {
            Damage::Corrupt(reason) => {
                return Err(corrupt(format!(
                    "journal segment {name}, group record at byte {offset}: {reason}"
                )))
            }
            Damage::Torn(reason) => reason,
        };
        if !last {
            return Err(corrupt(format!(
                "journal segment {name}, group record at byte {offset}: {reason} (not the last \
                 segment)"
            )));
        }
        // A torn write has nothing valid after its own start: a valid record
        // further on means these bytes once were a written record.
        if let Some(valid) = find_valid_record(&file, offset + 1, file_len)? {
            return Err(corrupt(format!(
                "journal segment {name}, group record at byte {offset}: {reason}, and a valid \
                 record follows at byte {valid}"
            )));
        }
        // The bytes are kept beside the segment before they are cut off: an
        // interrupted write is all they should be, but if a disk damaged an
        // acknowledged last record instead (the checkpoint mark then stops
        // the start), a person can still look at them.
        let kept = dir.join(format!("{name}.torn-{offset}"));
        let mut tail = vec![0u8; (file_len - offset) as usize];
        file.read_exact_at(&mut tail, offset)?;
        std::fs::write(&kept, &tail)?;
        File::open(&kept)?.sync_all()?;
        sync_dir(dir)?;
        tracing::warn!(
            segment = name,
            at = offset,
            dropped_bytes = file_len - offset,
            reason,
            kept = %kept.display(),
            "dropping a torn group record at the journal's end (a write that was never acknowledged)"
        );
        file.set_len(offset)?;
        file.sync_all()?;
        return Ok(offset);
    }
    Ok(offset)
}

/// Reads and checks the record at `offset`: its header, then its body into
/// `body`. `expected_seq` is where the journal stands.
fn read_record(
    file: &File,
    offset: u64,
    file_len: u64,
    expected_seq: u64,
    body: &mut Vec<u8>,
) -> io::Result<Result<Header, Damage>> {
    let remaining = file_len - offset;
    if remaining < HEADER_LEN as u64 {
        return Ok(Err(Damage::Torn(format!(
            "{remaining} bytes, shorter than a record header"
        ))));
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, offset)?;
    let header = match decode_header(&header) {
        Ok(header) => header,
        Err(damage) => return Ok(Err(damage)),
    };
    if header.first_seq != expected_seq {
        return Ok(Err(Damage::Corrupt(format!(
            "it starts at seq {}, but the journal before it ends at seq {expected_seq}",
            header.first_seq
        ))));
    }
    let available = remaining - HEADER_LEN as u64;
    if header.body_len > available {
        return Ok(Err(Damage::Torn(format!(
            "its body of {} bytes is cut short at {available}",
            header.body_len
        ))));
    }
    body.resize(header.body_len as usize, 0);
    file.read_exact_at(body, offset + HEADER_LEN as u64)?;
    if blake3::hash(body).as_bytes() != &header.checksum {
        return Ok(Err(if header.body_len == available {
            // The last record of the file: an append whose pages were not
            // all written when the machine stopped.
            Damage::Torn("its body checksum does not match".into())
        } else {
            Damage::Corrupt("its body checksum does not match".into())
        }));
    }
    Ok(Ok(header))
}

/// The offset of the first valid record (sane header, body within the file,
/// matching checksum) at or after `from`, if any.
fn find_valid_record(file: &File, from: u64, file_len: u64) -> io::Result<Option<u64>> {
    let header_len = HEADER_LEN as u64;
    let mut window = Vec::new();
    let mut start = from;
    while start + header_len <= file_len {
        let len = (file_len - start).min(SEARCH_WINDOW + header_len);
        window.resize(len as usize, 0);
        file.read_exact_at(&mut window, start)?;
        for at in 0..=(window.len() - HEADER_LEN) {
            if window[at..at + 4] != MAGIC {
                continue;
            }
            let header: [u8; HEADER_LEN] = window[at..at + HEADER_LEN].try_into().expect("len");
            let Ok(header) = decode_header(&header) else {
                continue;
            };
            let offset = start + at as u64;
            let body_start = offset + header_len;
            if body_start
                .checked_add(header.body_len)
                .is_none_or(|end| end > file_len)
            {
                continue;
            }
            let mut body = vec![0u8; header.body_len as usize];
            file.read_exact_at(&mut body, body_start)?;
            if blake3::hash(&body).as_bytes() == &header.checksum {
                return Ok(Some(offset));
            }
        }
        start += len - header_len + 1;
    }
    Ok(None)
}

/// Journal entries from a seq on, in order; stops at the first error.
pub(super) struct Rows<'a> {
    journal: &'a Journal,
    from_seq: u64,
    /// The next block to read (found by binary search on the first read).
    next_block: Option<usize>,
    ready: std::vec::IntoIter<JournalRow>,
    done: bool,
}

impl Rows<'_> {
    /// Reads the next span of blocks (one `pread`); `false` at the journal's end.
    fn fill(&mut self) -> Result<bool, StoreError> {
        let (file, blocks) = {
            let index = self.journal.index();
            let first = match self.next_block {
                Some(block) => block,
                None => match index.block_of(self.from_seq) {
                    Some(block) => block,
                    None => return Ok(false),
                },
            };
            let Some(head) = index.blocks.get(first) else {
                return Ok(false);
            };
            let mut last = first + 1;
            while let Some(block) = index.blocks.get(last) {
                if block.segment != head.segment
                    || block.offset + block.len - head.offset > READ_SPAN
                {
                    break;
                }
                last += 1;
            }
            self.next_block = Some(last);
            let file = Arc::clone(&index.segments[head.segment as usize].file);
            (file, index.blocks[first..last].to_vec())
        };
        let start = blocks[0].offset;
        let end = blocks.last().map_or(start, |b| b.offset + b.len);
        let mut bytes = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut bytes, start)?;
        let mut rows = Vec::new();
        for block in &blocks {
            let at = (block.offset - start) as usize;
            let parsed = parse_entries(block.first_seq, &bytes[at..at + block.len as usize])?;
            rows.extend(
                parsed
                    .into_iter()
                    .filter(|(seq, _, _)| *seq >= self.from_seq),
            );
        }
        self.ready = rows.into_iter();
        Ok(true)
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<JournalRow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.ready.next() {
                return Some(Ok(row));
            }
            if self.done {
                return None;
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

impl Store {
    /// One stored journal row.
    pub fn journal_row(&self, seq: u64) -> Result<Option<JournalRow>, StoreError> {
        self.journal.row(seq)
    }

    /// Every stored journal row from `from_seq`, in order.
    pub fn journal_rows(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<JournalRow, StoreError>> + '_ {
        self.journal.rows(from_seq)
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
