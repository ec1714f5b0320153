//! The store on real disk: groups through `write_group` and a restart, caches
//! that lag the journal by several groups, and the move out of sled.

use super::*;
use crate::engine::recover;
use crate::ledger::state::{Journaled, LedgerState};
use tally_core::entry::{Entry, EntryBody};

/// Tiny segments, so that the tests roll several.
const SEGMENT_LIMIT: u64 = 4096;

/// Opens a store, waiting for sled's lock, which a dropped database releases
/// from a background thread a moment later (spacejam/sled#1234).
fn open(dir: &Path) -> Store {
    for _ in 0..200 {
        match Store::open_with(dir, 1 << 20, SEGMENT_LIMIT) {
            Err(StoreError::Sled(error)) if error.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.unwrap(),
        }
    }
    panic!("sled's lock was never released");
}

fn open_result(dir: &Path) -> Result<Store, StoreError> {
    for _ in 0..200 {
        match Store::open_with(dir, 1 << 20, SEGMENT_LIMIT) {
            Err(StoreError::Sled(error)) if error.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result,
        }
    }
    panic!("sled's lock was never released");
}

fn open_sled(dir: &Path) -> sled::Db {
    for _ in 0..200 {
        match sled::Config::new().path(dir.join("sled")).open() {
            Err(error) if error.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.unwrap(),
        }
    }
    panic!("sled's lock was never released");
}

/// Real entries in groups of `sizes`: the ledger's first entry, then
/// currencies (each a stored cache row).
fn groups(sizes: &[usize]) -> (Vec<Vec<Journaled>>, LedgerState) {
    let mut state = LedgerState::new();
    let mut groups = Vec::new();
    for &size in sizes {
        let mut group = Vec::with_capacity(size);
        for _ in 0..size {
            let seq = state.next_seq();
            let body = match seq {
                0 => EntryBody::LedgerCreated { ledger_id: [7; 16] },
                _ => EntryBody::CurrencyDefined {
                    code: format!("C{seq:05}"),
                    scale: (seq % 10) as u8,
                },
            };
            let recorded_at = state.next_recorded_at(1_700_000_000_000_000_000 + seq as i64);
            group.push(state.append(Entry {
                recorded_at,
                key_id: String::new(),
                body,
            }));
        }
        groups.push(group);
    }
    (groups, state)
}

const SIZES: [usize; 7] = [1, 200, 3, 130, 50, 129, 300];

fn write_all(store: &Store, groups: &[Vec<Journaled>], state: &LedgerState) {
    for group in groups {
        store.write_group(group, state).unwrap();
        store.publish(group);
    }
}

fn check_journal(store: &Store, groups: &[Vec<Journaled>]) {
    let all: Vec<&Journaled> = groups.iter().flatten().collect();
    let length = all.len() as u64;
    assert_eq!(store.head().unwrap(), (length, all.last().unwrap().hash));
    for journaled in &all {
        let (seq, hash, canonical) = store.journal_row(journaled.seq).unwrap().unwrap();
        assert_eq!((seq, hash), (journaled.seq, journaled.hash));
        assert_eq!(canonical, journaled.canonical);
    }
    assert!(store.journal_row(length).unwrap().is_none());
    for from in [0, 1, 128, 129, 333, length - 1, length] {
        let rows: Vec<JournalRow> = store.journal_rows(from).map(Result::unwrap).collect();
        let expected: Vec<JournalRow> = all[from as usize..]
            .iter()
            .map(|j| (j.seq, j.hash, j.canonical.clone()))
            .collect();
        assert_eq!(rows, expected, "from {from}");
    }
}

#[test]
fn groups_survive_a_restart_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, state) = groups(&SIZES);
    let store = open(dir.path());
    write_all(&store, &groups, &state);
    check_journal(&store, &groups);
    assert!(
        journal::segment_files(&dir.path().join(JOURNAL_DIR))
            .unwrap()
            .len()
            > 3
    );
    drop(store);

    let store = open(dir.path());
    check_journal(&store, &groups);
    let replayed = recover(&store).unwrap();
    assert_eq!(replayed.next_seq(), state.next_seq());
    assert_eq!(replayed.head(), state.head());
    assert_eq!(store.committed(), state.next_seq());
}

#[test]
fn caches_lagging_the_journal_by_several_groups_are_caught_up() {
    // What a crash leaves: the journal holds groups whose sled batches were
    // never flushed. The start must rewrite their cache rows exactly.
    catch_up_matches_a_complete_start(&SIZES, 2);
}

#[test]
fn a_replay_of_several_chunks_folds_beside_and_then_catches_up() {
    // Start-up folds chunks of 10,000 entries on a second thread while their
    // cache rows are stored, then switches to catching up in the middle of a
    // chunk: the frontier must carry over exactly.
    catch_up_matches_a_complete_start(&[1, 9_000, 9_000, 9_000, 5_000], 2);
}

/// Recovers a store whose caches hold only the first `stored` groups, and
/// one whose caches hold them all: both end with the same rows.
fn catch_up_matches_a_complete_start(sizes: &[usize], stored: usize) {
    let (groups, state) = groups(sizes);
    let complete = tempfile::tempdir().unwrap();
    let store = open(complete.path());
    write_all(&store, &groups, &state);
    store.flush().unwrap();
    let live = store.cache_rows().unwrap();
    drop(store);
    let store = open(complete.path());
    recover(&store).unwrap();
    let expected = store.cache_rows().unwrap();
    assert_eq!(expected, live);
    assert!(expected.iter().any(|(key, _)| key[0] == keys::MERKLE));
    drop(store);

    let lagging = tempfile::tempdir().unwrap();
    let store = open(lagging.path());
    write_all(&store, &groups[..stored], &state);
    store.flush().unwrap();
    for group in &groups[stored..] {
        store.journal.append_group(group).unwrap();
    }
    drop(store);
    let store = open(lagging.path());
    let stored_entries: usize = sizes[..stored].iter().sum();
    assert_eq!(store.caches_length().unwrap(), stored_entries as u64);
    recover(&store).unwrap();
    assert_eq!(store.caches_length().unwrap(), state.next_seq());
    assert_eq!(store.cache_rows().unwrap(), expected);
}

#[test]
fn caches_ahead_of_the_journal_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, state) = groups(&SIZES);
    let store = open(dir.path());
    write_all(&store, &groups, &state);
    store.flush().unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.path().join(JOURNAL_DIR)).unwrap();
    let store = open(dir.path());
    assert!(matches!(recover(&store), Err(StoreError::Corrupt(_))));
}

/// Writes `groups` the way the previous version did: chunk rows of at most
/// 128 entries per group, the head record and the caches' length in sled.
fn write_old_layout(dir: &Path, groups: &[Vec<Journaled>]) {
    let db = open_sled(dir);
    for group in groups {
        let mut batch = sled::Batch::default();
        for chunk in group.chunks(128) {
            let mut value = Vec::new();
            for journaled in chunk {
                value.extend_from_slice(&journaled.hash);
                value.extend_from_slice(&(journaled.canonical.len() as u32).to_be_bytes());
                value.extend_from_slice(&journaled.canonical);
            }
            batch.insert(&keys::legacy_journal(chunk[0].seq), value);
        }
        let last = group.last().unwrap();
        let mut head = (last.seq + 1).to_be_bytes().to_vec();
        head.extend_from_slice(&last.hash);
        batch.insert(keys::LEGACY_HEAD, head);
        db.apply_batch(batch).unwrap();
    }
    db.flush().unwrap();
}

fn sled_journal_rows(dir: &Path) -> usize {
    let db = open_sled(dir);
    db.scan_prefix([keys::LEGACY_JOURNAL]).count()
        + usize::from(db.get(keys::LEGACY_HEAD).unwrap().is_some())
}

#[test]
fn a_journal_in_sled_moves_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, state) = groups(&SIZES);
    write_old_layout(dir.path(), &groups);
    // An earlier move that stopped half-way left its staging directory.
    let staging = dir.path().join(legacy::STAGING_DIR);
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("00000000000000000000.seg"), b"half").unwrap();

    let store = open(dir.path());
    assert!(!staging.exists());
    assert!(!journal::segment_files(&dir.path().join(JOURNAL_DIR))
        .unwrap()
        .is_empty());
    check_journal(&store, &groups);
    let replayed = recover(&store).unwrap();
    assert_eq!(replayed.head(), state.head());
    assert_eq!(store.caches_length().unwrap(), state.next_seq());
    drop(store);
    assert_eq!(sled_journal_rows(dir.path()), 0, "the sled rows are gone");

    // Opened again: nothing to move, the same journal.
    let store = open(dir.path());
    check_journal(&store, &groups);
    recover(&store).unwrap();
}

#[test]
fn sled_rows_left_by_a_move_that_stopped_are_checked_then_removed() {
    // A crash after the segments were in place but before the sled rows were
    // removed: both exist, and agree.
    let dir = tempfile::tempdir().unwrap();
    let (groups, _) = groups(&SIZES);
    write_old_layout(dir.path(), &groups);
    drop(open(dir.path()));
    write_old_layout(dir.path(), &groups);
    assert!(sled_journal_rows(dir.path()) > 0);
    let store = open(dir.path());
    check_journal(&store, &groups);
    drop(store);
    assert_eq!(sled_journal_rows(dir.path()), 0);

    // Rows that do not agree with the segments are not silently dropped.
    let mut changed = groups.clone();
    changed[3][5].canonical[3] ^= 1;
    write_old_layout(dir.path(), &changed);
    assert!(matches!(
        open_result(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
    assert!(sled_journal_rows(dir.path()) > 0);
}

#[test]
fn a_sled_journal_that_disagrees_with_its_head_record_is_not_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _) = groups(&SIZES);
    write_old_layout(dir.path(), &groups);
    let db = open_sled(dir.path());
    let mut head = 5u64.to_be_bytes().to_vec();
    head.extend_from_slice(&[1; 32]);
    db.insert(keys::LEGACY_HEAD, head).unwrap();
    db.flush().unwrap();
    drop(db);
    assert!(matches!(
        open_result(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
    assert!(journal::segment_files(&dir.path().join(JOURNAL_DIR))
        .unwrap()
        .is_empty());
    assert!(sled_journal_rows(dir.path()) > 0);
}
