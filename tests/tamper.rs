// Goal: tampering with a stopped ledger's data directory is detected, and the
// message names what is wrong. Each test writes a small real journal with a real
// `tallyd`, stops it, then changes it the way an attacker or a bad disk would:
//
// - on the journal's entries, rewriting its segment files with every record
//   checksum recomputed, as an attacker would (`DATA_DIR/journal/*.seg`, group
//   records of `entry_hash (32) ‖ length (u32 BE) ‖ canonical bytes`, per
//   server/src/store/journal.rs): a changed byte, a removed entry, two entries
//   swapped, a changed stored hash, a whole re-hashed chain;
// - a raw byte of a segment file, checksums left as they were (a bad disk).
//
// `tallyd verify` must exit non-zero naming the first bad entry, and `tallyd`
// must refuse to start. A control test re-groups an untouched journal with the
// same helpers and checks that it still verifies, so a detection is never an
// artefact of the rewriting itself.
//
// Then what only an auditor outside the server can catch, with the `tally
// audit` commands: a fork (a copy of the data directory regrown differently)
// and a rollback (an older copy served again) against the watcher's state
// file, and a tampered export file against `tally audit verify-export`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tally::Tallyd;
use tally_client::{
    AccountSpec, AccountType, Batch, Client, Decimal, Transaction, TransactionSpec,
};
use tally_core::entry::{Digest, Entry, EntryBody};

const CASH: &str = "assets:cash";
const SALES: &str = "revenue:sales";
/// Entries per group record when the tests rewrite the journal (the server
/// writes one record per group).
const REWRITE_CHUNK: usize = 3;
/// How long a `tallyd` that should refuse to start may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(60);

fn description(id: &str) -> String {
    format!("tamper test payment {id}")
}

fn payment(id: &str, cents: i64) -> TransactionSpec {
    let amount = Decimal::new(cents, 2);
    Transaction::builder(id)
        .debit(CASH, amount)
        .credit(SALES, amount)
        .description(description(id))
}

/// A running `tallyd` and a client of it (on a runtime of its own, so that the
/// tests stay synchronous).
struct Running {
    server: Tallyd,
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Running {
    fn start(data_dir: &Path) -> Running {
        let server = Tallyd::start(data_dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(tally::connect(server.url.clone()))
            .unwrap();
        Running {
            server,
            runtime,
            client,
        }
    }

    /// A currency and the two accounts the payments use.
    fn set_up(&self) {
        self.runtime.block_on(async {
            self.client.define_currency("USD", 2).await.unwrap();
            let accounts = [
                AccountSpec::new(CASH, AccountType::Asset, "USD"),
                AccountSpec::new(SALES, AccountType::Revenue, "USD"),
            ];
            for result in self.client.create_accounts(accounts).await.unwrap() {
                result.unwrap();
            }
        });
    }

    /// The payments, in one batch (one group, so one group record).
    fn pay_in_one_batch(&self, ids: &[&str]) {
        let mut batch = Batch::new();
        for (index, id) in ids.iter().enumerate() {
            batch.push(payment(id, 100 * (index as i64 + 1)));
        }
        self.runtime.block_on(async {
            for result in self.client.submit(batch).await.unwrap() {
                result.unwrap();
            }
        });
    }

    /// The payments, one call each.
    fn pay_one_by_one(&self, ids: &[&str]) {
        for id in ids {
            self.pay_in_one_batch(&[id]);
        }
    }

    /// Signs a checkpoint of the journal as it is now; returns its tree size.
    fn checkpoint(&self) -> u64 {
        self.runtime
            .block_on(self.client.create_checkpoint())
            .unwrap()
            .tree_size
    }

    fn url(&self) -> String {
        self.server.url.clone()
    }

    /// Closes the client, then stops the server cleanly.
    fn stop(self) {
        let Running {
            server,
            runtime,
            client,
        } = self;
        drop(client);
        drop(runtime);
        let status = server.terminate();
        assert!(status.success(), "tallyd exited with {status}");
    }
}

/// A journal of about fifteen entries: the ledger's own entries, a currency,
/// two accounts, payments t1-t4 in one batch (one record of several entries), a
/// checkpoint, payments t5-t8 one by one, and another checkpoint. Returns the
/// stopped server's data directory.
fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Running::start(dir.path());
    ledger.set_up();
    ledger.pay_in_one_batch(&["t1", "t2", "t3", "t4"]);
    ledger.checkpoint();
    ledger.pay_one_by_one(&["t5", "t6", "t7", "t8"]);
    ledger.checkpoint();
    ledger.stop();
    dir
}

// ---- the journal's segment files ------------------------------------------

/// One stored journal entry: stored hash and canonical bytes (the seq is its
/// position).
#[derive(Clone)]
struct Row {
    hash: Digest,
    canonical: Vec<u8>,
}

impl Row {
    fn entry(&self) -> Entry {
        tally_core::codec::decode(&self.canonical).expect("a stored entry decodes")
    }
}

/// The stopped server's journal segments (the server must not be running),
/// in seq order.
fn segment_paths(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir.join("journal"))
        .expect("the data directory has a journal")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[..8].try_into().unwrap())
}

/// Every journal entry, in seq order, checking that the records are gapless.
/// A record: a 72-byte header (magic `TJGR`, version, first seq u64 at 8,
/// entry count u32 at 16, body length u64 at 24, checksums), then the body.
fn read_journal(data_dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for path in segment_paths(data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let header = &bytes[at..at + 72];
            assert_eq!(&header[..4], b"TJGR");
            assert_eq!(
                be_u64(&header[8..]),
                rows.len() as u64,
                "records are gapless"
            );
            let count = u32::from_be_bytes(header[16..20].try_into().unwrap());
            let body_len = be_u64(&header[24..]) as usize;
            let mut rest = &bytes[at + 72..at + 72 + body_len];
            for _ in 0..count {
                let hash: Digest = rest[..32].try_into().unwrap();
                let length = u32::from_be_bytes(rest[32..36].try_into().unwrap()) as usize;
                rows.push(Row {
                    hash,
                    canonical: rest[36..36 + length].to_vec(),
                });
                rest = &rest[36 + length..];
            }
            assert!(rest.is_empty(), "a record holds its count of entries");
            at += 72 + body_len;
        }
    }
    rows
}

/// Replaces the journal with `rows`, in one segment of group records of
/// [`REWRITE_CHUNK`] entries from seq 0, every checksum recomputed (they
/// catch a bad disk, not an attacker); leaves sled (the caches) as it was.
fn write_journal(data_dir: &Path, rows: &[Row]) {
    for path in segment_paths(data_dir) {
        std::fs::remove_file(path).unwrap();
    }
    let mut bytes = Vec::new();
    for (index, chunk) in rows.chunks(REWRITE_CHUNK).enumerate() {
        let entries: Vec<(Digest, Vec<u8>)> = chunk
            .iter()
            .map(|row| (row.hash, row.canonical.clone()))
            .collect();
        let first_seq = (index * REWRITE_CHUNK) as u64;
        bytes.extend(tally_server::store::group_record_bytes(first_seq, &entries).unwrap());
    }
    let segment = data_dir.join("journal").join(format!("{:020}.seg", 0));
    std::fs::write(segment, bytes).unwrap();
}

/// Reads the journal of the stopped server in `data_dir`, lets `tamper` change
/// the rows, and writes them back.
fn tamper_journal(data_dir: &Path, tamper: impl FnOnce(&mut Vec<Row>)) {
    let mut rows = read_journal(data_dir);
    tamper(&mut rows);
    write_journal(data_dir, &rows);
}

/// The seq of payment `id`'s entry.
fn seq_of_payment(rows: &[Row], id: &str) -> usize {
    rows.iter()
        .position(
            |row| matches!(row.entry().body, EntryBody::TransactionRecorded(ref t) if t.id == id),
        )
        .unwrap_or_else(|| panic!("payment {id} is not in the journal"))
}

/// The seqs of the checkpoint entries.
fn checkpoint_seqs(rows: &[Row]) -> Vec<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, row)| matches!(row.entry().body, EntryBody::CheckpointSigned { .. }))
        .map(|(seq, _)| seq)
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .expect("needle in haystack")
}

// ---- running tallyd on the tampered directory ----------------------------

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `tallyd verify` must fail; returns what it said.
fn verify_fails(data_dir: &Path) -> String {
    let output = tally::verify_data_dir(data_dir);
    let said = text(&output);
    assert!(
        !output.status.success(),
        "tallyd verify accepted a tampered journal: {said}"
    );
    said
}

fn verify_passes(data_dir: &Path) -> String {
    let output = tally::verify_data_dir(data_dir);
    let said = text(&output);
    assert!(output.status.success(), "tallyd verify failed: {said}");
    said
}

/// `tallyd` must exit non-zero without ever listening; returns what it said.
fn start_refused(data_dir: &Path) -> String {
    let mut child = tally::tallyd_command(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tallyd");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > REFUSAL_TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "tallyd kept running on a tampered journal: {}",
                text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let said = text(&output);
    assert!(
        !output.status.success(),
        "tallyd exited 0 on a tampered journal: {said}"
    );
    assert!(
        !said.contains("tallyd listening on"),
        "tallyd served a tampered journal: {said}"
    );
    said
}

/// Whether `text` names entry `seq` ("entry 7:" or "entry 7 (...)", not
/// "entry 17" or "entry 70").
fn names_entry(text: &str, seq: usize) -> bool {
    let needle = format!("entry {seq}");
    text.match_indices(&needle).any(|(at, _)| {
        let before_ok = at == 0 || !text.as_bytes()[at - 1].is_ascii_digit();
        let after = text.as_bytes().get(at + needle.len());
        before_ok && !after.is_some_and(u8::is_ascii_digit)
    })
}

fn assert_names(said: &str, seq: usize, what: &str) {
    println!("entry {seq}: {}", said.trim());
    assert!(
        names_entry(said, seq),
        "the message does not name entry {seq}: {said}"
    );
    assert!(
        said.contains(what),
        "the message does not say {what:?}: {said}"
    );
}

/// Both `tallyd verify` and `tallyd` itself refuse the directory, naming entry
/// `seq` and saying `what`.
fn assert_detected(data_dir: &Path, seq: usize, what: &str) {
    assert_names(&verify_fails(data_dir), seq, what);
    assert_names(&start_refused(data_dir), seq, what);
}

// ---- the cases -----------------------------------------------------------

#[test]
fn rewriting_the_rows_unchanged_still_verifies() {
    // Control: the helpers below re-group the journal (3 entries per record instead
    // of the server's one per group); with no change that is still a valid
    // journal, so every failure in the other tests is the tampering's.
    let dir = populated();
    tamper_journal(dir.path(), |rows| {
        assert!(rows.len() >= 15, "{} entries", rows.len());
        assert_eq!(checkpoint_seqs(rows).len(), 2);
    });
    let said = verify_passes(dir.path());
    assert!(said.contains("2 signed checkpoints"), "{said}");
    let server = Tallyd::start(dir.path());
    assert!(server.terminate().success());
}

#[test]
fn a_changed_byte_in_an_entry_is_named() {
    // One byte of payment t3's canonical bytes (in its description, so the entry
    // still decodes): its stored hash no longer matches.
    let dir = populated();
    let mut k = 0;
    tamper_journal(dir.path(), |rows| {
        k = seq_of_payment(rows, "t3");
        let canonical = &mut rows[k].canonical;
        let at = find(canonical, description("t3").as_bytes());
        canonical[at] ^= 0x01;
        assert!(tally_core::codec::decode(canonical).is_ok());
    });
    assert_detected(dir.path(), k, "stored hash does not match its content");
}

#[test]
fn a_removed_entry_is_named() {
    // Payment t6 is gone and the later entries moved down one seq: the entry
    // now at t6's seq was hashed at the next seq, after t6.
    let dir = populated();
    let mut k = 0;
    tamper_journal(dir.path(), |rows| {
        k = seq_of_payment(rows, "t6");
        rows.remove(k);
    });
    assert_detected(dir.path(), k, "stored hash does not match its content");
}

#[test]
fn two_swapped_entries_are_named() {
    // Payments t2 and t3 (same record as written by the server) trade places,
    // hashes and all: the first of the two positions is named.
    let dir = populated();
    let mut k = 0;
    tamper_journal(dir.path(), |rows| {
        k = seq_of_payment(rows, "t2");
        assert_eq!(seq_of_payment(rows, "t3"), k + 1);
        rows.swap(k, k + 1);
    });
    assert_detected(dir.path(), k, "stored hash does not match its content");
}

#[test]
fn a_changed_stored_hash_is_named() {
    // Payment t7's stored entry_hash changed, its bytes kept.
    let dir = populated();
    let mut k = 0;
    tamper_journal(dir.path(), |rows| {
        k = seq_of_payment(rows, "t7");
        rows[k].hash[5] ^= 0x80;
    });
    assert_detected(dir.path(), k, "stored hash does not match its content");
}

#[test]
fn a_consistently_rehashed_chain_is_caught_by_the_next_checkpoint() {
    // A better forger: payment t5's description changed, then every entry hash
    // from t5 on recomputed and the head record rewritten, so the chain is
    // self-consistent. What gives it away is the signed checkpoint after t5,
    // whose chain head and root are those of the original journal.
    let dir = populated();
    let (mut k, mut checkpoint) = (0, 0);
    tamper_journal(dir.path(), |rows| {
        k = seq_of_payment(rows, "t5");
        checkpoint = *checkpoint_seqs(rows)
            .iter()
            .find(|seq| **seq > k)
            .expect("a checkpoint after t5");
        let canonical = &mut rows[k].canonical;
        let at = find(canonical, description("t5").as_bytes());
        canonical[at] = b'T';
        let mut prev = rows[k - 1].hash;
        for (seq, row) in rows.iter_mut().enumerate().skip(k) {
            row.hash = tally_core::chain::entry_hash(seq as u64, &prev, &row.canonical);
            prev = row.hash;
        }
    });
    let said = verify_fails(dir.path());
    assert_names(&said, checkpoint, "chain head");
    assert!(!names_entry(&said, k), "{said}");
    assert_names(&start_refused(dir.path()), checkpoint, "chain head");
}

/// Flips one byte of the journal's segment file in the middle of payment
/// `id`'s description, checksums left as they were: what a bad disk does.
fn flip_a_byte_of_payment(data_dir: &Path, id: &str) {
    let marker = description(id);
    let path = segment_paths(data_dir)
        .into_iter()
        .find(|path| find_in(&std::fs::read(path).unwrap(), marker.as_bytes()).is_some())
        .expect("the payment's description is in a segment");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = find_in(&bytes, marker.as_bytes()).unwrap();
    bytes[at + 3] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
}

fn find_in(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn assert_storage_corruption(said: &str, what: &str) {
    println!("{}", said.trim());
    assert!(
        said.contains("corrupt") && said.contains(what),
        "not a storage corruption message saying {what:?}: {said}"
    );
}

#[test]
fn a_flipped_byte_in_the_journal_files_fails_verify_and_start() {
    // Under the entries: one byte of payment t8's group record. A checkpoint's
    // group follows it, so it cannot be a write cut short by a crash: the
    // record's checksum refuses it, and nothing is dropped.
    let dir = populated();
    flip_a_byte_of_payment(dir.path(), "t8");
    assert_storage_corruption(&verify_fails(dir.path()), "checksum does not match");
    assert_storage_corruption(&start_refused(dir.path()), "checksum does not match");
}

#[test]
fn a_flipped_byte_in_the_last_group_is_not_silent() {
    // The same in the journal's last group record (the final checkpoint, one
    // entry). It looks like a write cut short by a crash, which is never
    // acknowledged, and is dropped as such (kept beside the segment); but the
    // checkpoint marked beside the storage (`checkpoint.latest`) is then past
    // the journal's end, so verify and start refuse it rather than serve it.
    let dir = populated();
    let rows = read_journal(dir.path());
    let last = rows.last().unwrap();
    assert!(matches!(
        last.entry().body,
        EntryBody::CheckpointSigned { .. }
    ));
    let path = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - last.canonical.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    assert_storage_corruption(&verify_fails(dir.path()), "storage lost");
    assert_storage_corruption(&start_refused(dir.path()), "storage lost");
}

// ---- what only an auditor outside the server catches ----------------------
//
// A fork (the journal truncated and regrown differently) and a rollback (an
// older copy of the data directory put back) are self-consistent journals:
// `tallyd verify` passes on them. A monitor that remembers the last checkpoint
// it verified (`tally audit watch --state FILE`) catches both; an export file
// (`tally audit export`) is checked offline by `tally audit verify-export`.

/// Copies a stopped server's data directory (journal and signing key, modes
/// kept) to a new temporary directory.
fn copy_data_dir(data_dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(data_dir.join("."))
        .arg(copy.path())
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a failed");
    copy
}

/// The ledger's public key, as `tallyd pubkey` prints it.
fn pubkey(data_dir: &Path) -> String {
    let output = Command::new(tally::tallyd_binary())
        .arg("pubkey")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run tallyd pubkey");
    assert!(output.status.success(), "tallyd pubkey: {}", text(&output));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Runs `tally --server URL ARGS...` with the admin key.
fn tally(server: &str, args: &[&str]) -> Output {
    tally::tally_command()
        .args(["--server", server, "--timeout", "20s"])
        .args(args)
        .env_remove("TALLY_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("run tally")
}

/// One round of the monitor against `server`.
fn watch_once(server: &str, state: &Path, vkey: &str) -> Output {
    let state = state.to_str().unwrap();
    tally(
        server,
        &["audit", "watch", "--once", "--state", state, "--key", vkey],
    )
}

fn assert_exit(output: &Output, code: i32, what: &str) -> String {
    let said = text(output);
    println!("{what}: exit {:?}: {}", output.status.code(), said.trim());
    assert_eq!(output.status.code(), Some(code), "{what}: {said}");
    said
}

/// A verification failure (exit 1) whose stderr says `word`.
fn assert_refused(output: &Output, word: &str, what: &str) {
    assert_exit(output, 1, what);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(word),
        "{what}: stderr does not say {word:?}: {stderr}"
    );
}

#[test]
fn a_fork_is_caught_by_the_watcher_though_tallyd_verify_passes() {
    // The ledger reaches a checkpoint of n1 entries and is copied; the original
    // goes on to a checkpoint of n2 > n1 entries, which the watcher verifies.
    // Then the copy (same signing key) is served instead and grows differently
    // past n2: its checkpoints are validly signed, but its tree does not extend
    // the verified one.
    let original = tempfile::tempdir().unwrap();
    let watcher = tempfile::tempdir().unwrap();
    let state = watcher.path().join("state");

    let ledger = Running::start(original.path());
    ledger.set_up();
    ledger.pay_in_one_batch(&["t1", "t2", "t3"]);
    let n1 = ledger.checkpoint();
    ledger.stop();
    let copy = copy_data_dir(original.path());
    let vkey = pubkey(original.path());
    assert_eq!(pubkey(copy.path()), vkey);

    let ledger = Running::start(original.path());
    let said = assert_exit(&watch_once(&ledger.url(), &state, &vkey), 0, "first watch");
    assert!(said.contains("trusted on first use"), "{said}");
    ledger.pay_one_by_one(&["t4", "t5", "t6", "t7", "t8"]);
    let n2 = ledger.checkpoint();
    assert!(n2 > n1);
    let said = assert_exit(&watch_once(&ledger.url(), &state, &vkey), 0, "second watch");
    assert!(said.contains("extends"), "{said}");
    let verified = std::fs::read_to_string(&state).unwrap();
    ledger.stop();

    let fork = Running::start(copy.path());
    let ids: Vec<String> = (1..=8).map(|index| format!("fork-{index}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    fork.pay_one_by_one(&ids);
    let n3 = fork.checkpoint();
    assert!(
        n3 > n2,
        "the fork's checkpoint ({n3}) must pass the verified one ({n2})"
    );
    assert_refused(
        &watch_once(&fork.url(), &state, &vkey),
        "fork",
        "watch of the fork",
    );
    // The state still holds the verified checkpoint: the next round fails too.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), verified);
    assert_refused(
        &watch_once(&fork.url(), &state, &vkey),
        "fork",
        "watch again",
    );
    fork.stop();

    // The fork is a perfectly valid journal on its own: only the watcher's
    // memory of the checkpoint of n2 entries tells it apart.
    let said = verify_passes(copy.path());
    assert!(said.contains(&format!("ok: {} entries", n3 + 1)), "{said}");
}

#[test]
fn a_rollback_is_caught_by_the_watcher() {
    // The watcher has verified a checkpoint of n2 entries; the data directory
    // is then replaced by an older copy whose latest checkpoint is of n1 < n2.
    let original = tempfile::tempdir().unwrap();
    let watcher = tempfile::tempdir().unwrap();
    let state = watcher.path().join("state");

    let ledger = Running::start(original.path());
    ledger.set_up();
    ledger.pay_in_one_batch(&["t1", "t2", "t3"]);
    let n1 = ledger.checkpoint();
    ledger.stop();
    let older = copy_data_dir(original.path());
    let vkey = pubkey(original.path());

    let ledger = Running::start(original.path());
    ledger.pay_one_by_one(&["t4", "t5"]);
    let n2 = ledger.checkpoint();
    assert!(n2 > n1);
    let said = assert_exit(&watch_once(&ledger.url(), &state, &vkey), 0, "watch");
    assert!(said.contains(&n2.to_string()), "{said}");
    let verified = std::fs::read_to_string(&state).unwrap();
    ledger.stop();

    let rolled_back = Running::start(older.path());
    assert_refused(
        &watch_once(&rolled_back.url(), &state, &vkey),
        "rollback",
        "watch of the older copy",
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), verified);
    rolled_back.stop();
    verify_passes(older.path());
}

/// The byte ranges of an export file's frames (the canonical bytes, without
/// their length prefix), in seq order.
fn export_frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    assert_eq!(&bytes[..24], b"tally-journal-export v1\n");
    let mut frames = Vec::new();
    let mut at = 24;
    loop {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if length == 0 {
            return frames;
        }
        frames.push(at + 4..at + 4 + length);
        at += 4 + length;
    }
}

/// The seq of payment `id`'s frame.
fn frame_of_payment(bytes: &[u8], id: &str) -> usize {
    export_frames(bytes)
        .into_iter()
        .position(|frame| {
            let entry = tally_core::codec::decode(&bytes[frame]).expect("frame decodes");
            matches!(entry.body, EntryBody::TransactionRecorded(ref t) if t.id == id)
        })
        .unwrap_or_else(|| panic!("payment {id} is not in the export"))
}

#[test]
fn a_tampered_export_file_is_named() {
    // Export of the populated journal: every entry (14, plus any the server
    // records itself, such as its bootstrap admin key), a checkpoint entry
    // inside, and the trailer signed at the full size.
    let dir = populated();
    let vkey = pubkey(dir.path());
    let files = tempfile::tempdir().unwrap();
    let export = files.path().join("journal.export");
    let ledger = Running::start(dir.path());
    let said = assert_exit(
        &tally(
            &ledger.url(),
            &["audit", "export", "--out", export.to_str().unwrap()],
        ),
        0,
        "export",
    );
    ledger.stop();
    let original = std::fs::read(&export).unwrap();
    let frames = export_frames(&original);
    assert!(frames.len() >= 14, "{} frames", frames.len());
    assert!(
        said.contains(&format!("exported {} entries", frames.len())),
        "{said}"
    );
    let verify = |bytes: &[u8], what: &str| {
        let file = files.path().join(format!("{what}.export"));
        std::fs::write(&file, bytes).unwrap();
        let file = file.to_str().unwrap().to_string();
        // verify-export never connects; the address is never used.
        tally(
            "http://127.0.0.1:9",
            &["audit", "verify-export", &file, "--key", &vkey],
        )
    };
    assert_exit(&verify(&original, "untouched"), 0, "untouched export");

    // One byte of payment t3's amount (300 cents becomes 301 in its debit):
    // the entry no longer balances, and the verifier names it.
    let k = frame_of_payment(&original, "t3");
    let mut bytes = original.clone();
    let frame = frames[k].clone();
    let amount = find(&bytes[frame.clone()], &300u128.to_be_bytes());
    bytes[frame.start + amount + 15] ^= 0x01;
    let output = verify(&bytes, "amount");
    assert_refused(&output, &format!("entry {k}"), "changed amount");
    assert!(names_entry(&text(&output), k));

    // Frame of payment t4 dropped: the checkpoint entry right after it moves
    // down to t4's seq, and states one entry more than precede it there.
    let k = frame_of_payment(&original, "t4");
    let mut bytes = original.clone();
    bytes.drain(frames[k].start - 4..frames[k].end);
    let output = verify(&bytes, "dropped");
    assert_refused(&output, "tree size", "dropped frame");
    assert!(names_entry(&text(&output), k), "{}", text(&output));

    // A description byte of payment t7: the entry is still a valid one, so
    // only the recomputed chain gives it away, at the trailer checkpoint (no
    // checkpoint entry follows t7 in the export).
    let k = frame_of_payment(&original, "t7");
    let mut bytes = original.clone();
    let frame = frames[k].clone();
    let at = find(&bytes[frame.clone()], description("t7").as_bytes());
    bytes[frame.start + at] ^= 0x01;
    assert_refused(
        &verify(&bytes, "description"),
        "trailer",
        "changed description",
    );
}
