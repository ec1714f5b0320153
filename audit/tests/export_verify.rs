//! The journal export file end to end: real journals built from `tally_core` entries, written
//! with `ExportWriter`, verified with `verify_export` — the figures an auditor gets, and the
//! precise error for each way an export can be wrong.

use proptest::prelude::*;
use tally_audit::checkpoint::{sign_checkpoint, Checkpoint, NoteSigner, NoteVerifier};
use tally_audit::entry_leaf_hash;
use tally_audit::export::{verify_export, ExportError, ExportReport, ExportWriter};
use tally_audit::merkle::{self, Blake3, Hash};
use tally_audit::rederive::LedgerFault;
use tally_audit::rotation::{sign_rotation, KeyRotation};
use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};
use tally_core::codec::encode;
use tally_core::entry::{
    AccountOpened, AccountType, BalanceConstraint, Digest, Entry, EntryBody, Metadata,
    PendingPosted, PendingVoided, Posting, Side, TransactionMode, TransactionRecorded,
    TransactionRejected,
};
use tally_core::money::AMOUNT_MINOR_MAX;

const LEDGER_ID: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];
const T0: i64 = 1_700_000_000_000_000_000;
const STEP: i64 = 1_000_000_000;

/// The test key of `docs/audit-proofs.md` (seed 00 01 .. 1f) and two more.
fn key(n: u8) -> NoteSigner {
    let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_add(32 * (n - 1)));
    NoteSigner::from_seed(&format!("tally.example/key-{n}"), &seed).unwrap()
}

/// A journal being built: canonical bytes, and the chain and leaves to sign checkpoints.
struct Journal {
    entries: Vec<Vec<u8>>,
    head: Digest,
    leaves: Vec<Hash>,
}

impl Journal {
    fn new() -> Journal {
        let mut journal = Journal {
            entries: Vec::new(),
            head: GENESIS_PREV_HASH,
            leaves: Vec::new(),
        };
        journal.push(EntryBody::LedgerCreated {
            ledger_id: LEDGER_ID,
        });
        journal
    }

    fn seq(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Entry `seq` is recorded at `T0 + seq` seconds.
    fn time(seq: u64) -> i64 {
        T0 + seq as i64 * STEP
    }

    fn push(&mut self, body: EntryBody) {
        let seq = self.seq();
        let entry = Entry {
            recorded_at: Self::time(seq),
            key_id: if seq == 0 {
                String::new()
            } else {
                "key-7".into()
            },
            body,
        };
        self.push_bytes(encode(&entry));
    }

    fn push_bytes(&mut self, bytes: Vec<u8>) {
        self.head = entry_hash(self.seq(), &self.head, &bytes);
        self.leaves.push(entry_leaf_hash(&self.head));
        self.entries.push(bytes);
    }

    /// The checkpoint of the journal as it is now, timed `time`.
    fn checkpoint(&self, time: i64) -> Checkpoint {
        Checkpoint {
            log_host: "tally.example".into(),
            ledger_id: LEDGER_ID,
            tree_size: self.seq(),
            root: merkle::root(&Blake3, &self.leaves),
            chain_head: self.head,
            time_unix_nanos: time,
        }
    }

    fn push_checkpoint(&mut self, signer: &NoteSigner) {
        let checkpoint = self.checkpoint(Self::time(self.seq()));
        let note = sign_checkpoint(&checkpoint, signer).unwrap();
        self.push(EntryBody::CheckpointSigned { note });
    }

    fn push_rotation(&mut self, old: &NoteSigner, new: &NoteSigner) {
        let note = sign_rotation(&rotation(self.seq(), old, new), old, new).unwrap();
        self.push(EntryBody::SigningKeyRotated { note });
    }

    fn trailer(&self, signer: &NoteSigner) -> String {
        sign_checkpoint(&self.checkpoint(Self::time(self.seq())), signer).unwrap()
    }

    fn export(&self, signer: &NoteSigner) -> Vec<u8> {
        export_of(&self.entries, &self.trailer(signer))
    }
}

fn rotation(seq: u64, old: &NoteSigner, new: &NoteSigner) -> KeyRotation {
    KeyRotation {
        log_host: "tally.example".into(),
        ledger_id: LEDGER_ID,
        tree_size: seq,
        old_key: old.verifier(),
        new_key: new.verifier(),
    }
}

fn export_of(entries: &[Vec<u8>], trailer: &str) -> Vec<u8> {
    let mut writer = ExportWriter::new(Vec::new()).unwrap();
    for entry in entries {
        writer.entry(entry).unwrap();
    }
    writer.finish(trailer).unwrap()
}

fn currency(code: &str, scale: u8) -> EntryBody {
    EntryBody::CurrencyDefined {
        code: code.into(),
        scale,
    }
}

fn account(id: u64, name: &str, account_type: AccountType, currency: &str) -> EntryBody {
    EntryBody::AccountOpened(AccountOpened {
        account_id: id,
        name: name.into(),
        account_type,
        currency: currency.into(),
        constraint: BalanceConstraint::None,
        metadata: Metadata::new(),
    })
}

fn leg(account_id: u64, side: Side, amount_minor: u128) -> Posting {
    Posting {
        account_id,
        side,
        amount_minor,
    }
}

fn tx(id: &str, mode: TransactionMode, postings: Vec<Posting>) -> EntryBody {
    EntryBody::TransactionRecorded(TransactionRecorded {
        id: id.into(),
        request_digest: [7; 32],
        mode,
        postings,
        effective_at: None,
        description: String::new(),
        metadata: Metadata::new(),
    })
}

fn transfer(id: &str, mode: TransactionMode, debit: u64, credit: u64, amount: u128) -> EntryBody {
    let postings = vec![
        leg(debit, Side::Debit, amount),
        leg(credit, Side::Credit, amount),
    ];
    tx(id, mode, postings)
}

const CASH: u64 = 0;
const REVENUE: u64 = 1;
const CUSTOMER: u64 = 2;
const FEES: u64 = 3;
const YEN_CASH: u64 = 4;
const YEN_EQUITY: u64 = 5;

/// Currencies, six accounts, every kind of transaction, a key adoption, a checkpoint by the
/// first key, a rotation, a checkpoint by the second key. Seqs are noted for the tests.
fn full_journal() -> Journal {
    use TransactionMode::*;
    let (k1, k2) = (key(1), key(2));
    let mut j = Journal::new();
    j.push(currency("USD", 2)); // 1
    j.push(currency("JPY", 0)); // 2
    j.push(EntryBody::SigningKeyAdopted {
        vkey: k1.verifier().to_vkey(),
    }); // 3
    j.push(account(CASH, "cash", AccountType::Asset, "USD")); // 4
    j.push(account(REVENUE, "sales", AccountType::Revenue, "USD")); // 5
    j.push(account(CUSTOMER, "customer", AccountType::Liability, "USD")); // 6
    j.push(account(FEES, "fees", AccountType::Expense, "USD")); // 7
    j.push(account(YEN_CASH, "yen cash", AccountType::Asset, "JPY")); // 8
    j.push(account(
        YEN_EQUITY,
        "yen equity",
        AccountType::Equity,
        "JPY",
    )); // 9
    j.push(transfer("tx-1", Standard, CASH, REVENUE, 10_000)); // 10
    j.push_checkpoint(&k1); // 11
    j.push(transfer("tx-2", Standard, CASH, CUSTOMER, 5_000)); // 12
    let never = Pending { expires_at: None };
    j.push(transfer("pend-1", never.clone(), CUSTOMER, REVENUE, 3_000)); // 13
    j.push(EntryBody::PendingPosted(PendingPosted {
        id: "post-1".into(),
        request_digest: [8; 32],
        pending_id: "pend-1".into(),
        postings: vec![
            leg(CUSTOMER, Side::Debit, 2_000),
            leg(REVENUE, Side::Credit, 2_000),
        ],
        effective_at: None,
        description: "partial".into(),
        metadata: Metadata::new(),
    })); // 14
    j.push(transfer("pend-2", never.clone(), CUSTOMER, REVENUE, 1_000)); // 15
    j.push(EntryBody::PendingVoided(PendingVoided {
        id: "void-1".into(),
        request_digest: [9; 32],
        pending_id: "pend-2".into(),
        reason: "customer cancelled".into(),
    })); // 16
    let expires_at = Some(Journal::time(17) + 1);
    j.push(transfer("pend-3", Pending { expires_at }, FEES, CASH, 500)); // 17
    j.push(EntryBody::PendingExpired {
        pending_id: "pend-3".into(),
    }); // 18
    j.push_rotation(&k1, &k2); // 19
    let reverses = "tx-2".to_string();
    j.push(transfer(
        "rev-1",
        Reversal { reverses },
        CUSTOMER,
        CASH,
        5_000,
    )); // 20
    j.push(transfer("tx-jpy", Standard, YEN_CASH, YEN_EQUITY, 1_000)); // 21
    j.push(transfer("pend-4", never, CASH, REVENUE, 700)); // 22
    j.push(EntryBody::TransactionRejected(TransactionRejected {
        id: "tx-bad".into(),
        request_digest: [10; 32],
        error_code: 9,
        field: "postings[0].account_id".into(),
        message: "account 99 does not exist".into(),
    })); // 23
    j.push_checkpoint(&k2); // 24
    j.push(EntryBody::AccountClosed { account_id: FEES }); // 25
    j
}

fn verify(export: &[u8], pinned: &[NoteSigner]) -> Result<ExportReport, ExportError> {
    let trusted: Vec<NoteVerifier> = pinned.iter().map(NoteSigner::verifier).collect();
    verify_export(export, &trusted)
}

/// Splits an export into its entries' canonical bytes (for tests that rearrange them).
fn frames(journal: &Journal) -> Vec<Vec<u8>> {
    journal.entries.clone()
}

#[test]
fn a_full_journal_verifies_with_hand_computed_balances() {
    // Goal: every figure of the report equals the one computed by hand from the journal.
    let journal = full_journal();
    let report = verify(&journal.export(&key(2)), &[key(1)]).unwrap();
    assert_eq!(report.entry_count, 26);
    assert_eq!(report.ledger_id, LEDGER_ID);
    assert_eq!(report.chain_head, journal.head);
    assert_eq!(report.root, merkle::root(&Blake3, &journal.leaves));
    assert_eq!(report.checkpoint_count, 2);
    assert_eq!(report.trailer.tree_size, 26);
    let vkeys: Vec<&str> = report.keys.iter().map(|k| k.vkey.as_str()).collect();
    assert_eq!(
        vkeys,
        [key(1).verifier().to_vkey(), key(2).verifier().to_vkey()]
    );
    assert_eq!((report.keys[0].seq, report.keys[1].seq), (3, 19));
    assert_eq!(report.pinned, [key(1).verifier().to_vkey()]);

    let t = report.transactions;
    let counts = (
        t.standard,
        t.pending,
        t.reversal,
        t.pending_posted,
        t.pending_voided,
        t.pending_expired,
        t.rejected,
        t.open_pending(),
    );
    assert_eq!(counts, (3, 4, 1, 1, 1, 1, 1, 1));

    // (debits posted, credits posted, debits pending, credits pending, balance)
    let expected: [(u128, u128, u128, u128, i128); 6] = [
        (15_000, 5_000, 700, 0, 10_000), // cash: 100 + 50 in, reversal 50 out, 7 reserved
        (0, 12_000, 0, 700, 12_000),     // sales: 100 + 20 posted of 30
        (7_000, 5_000, 0, 0, -2_000),    // customer: 50 credited, 20 + 50 debited
        (0, 0, 0, 0, 0),                 // fees: 5 reserved, expired
        (1_000, 0, 0, 0, 1_000),         // yen cash
        (0, 1_000, 0, 0, 1_000),         // yen equity
    ];
    for (account, want) in report.accounts.iter().zip(expected) {
        let got = (
            account.debits_posted,
            account.credits_posted,
            account.debits_pending,
            account.credits_pending,
            account.balance(),
        );
        assert_eq!(got, want, "account {}", account.name);
    }
    assert!(report.accounts[FEES as usize].closed);
    let trial: Vec<(&str, u128, u128, u128, u128)> = report
        .trial_balance
        .iter()
        .map(|l| {
            let (d, c) = (l.debits_posted, l.credits_posted);
            (
                l.currency.as_str(),
                d,
                c,
                l.debits_pending,
                l.credits_pending,
            )
        })
        .collect();
    assert_eq!(
        trial,
        [
            ("USD", 22_000, 22_000, 700, 700),
            ("JPY", 1_000, 1_000, 0, 0)
        ]
    );
}

#[test]
fn the_report_renders_stably() {
    // Goal: the text `tally audit verify-export` prints is fixed: exact decimals at each
    // currency's scale, aligned columns, closed accounts marked.
    let report = verify(&full_journal().export(&key(2)), &[key(2)]).unwrap();
    let text = report.render();
    let tables = &text[text.find("\naccounts\n").unwrap() + 1..];
    let expected = "\
accounts
  id  name           type       currency  debits  credits  pending debits  pending credits  balance
  0   cash           asset      USD       150.00    50.00            7.00             0.00   100.00
  1   sales          revenue    USD         0.00   120.00            0.00             7.00   120.00
  2   customer       liability  USD        70.00    50.00            0.00             0.00   -20.00
  3   fees (closed)  expense    USD         0.00     0.00            0.00             0.00     0.00
  4   yen cash       asset      JPY         1000        0               0                0     1000
  5   yen equity     equity     JPY            0     1000               0                0     1000

trial balance
  currency  debits  credits  pending debits  pending credits
  USD       220.00   220.00            7.00             7.00
  JPY         1000     1000               0                0
";
    assert_eq!(tables, expected, "{text}");
    assert!(text.starts_with("journal export verified\nledger          00112233445566778899aabbccddeeff\nentries         26 (seq 0 to 25)\n"), "{text}");
    assert!(text.contains("transactions    3 standard, 1 reversal, 4 pending (1 posted, 1 voided, 1 expired, 1 open), 1 rejected\n"), "{text}");
    assert_eq!(report.to_string(), text);
}

#[test]
fn trusting_any_key_of_the_chain_trusts_the_chain() {
    // Goal: the auditor may pin the first key, the second, or both; pinning a key outside
    // the chain (or none) fails and lists the journal's keys.
    let export = full_journal().export(&key(2));
    for pinned in [vec![key(1)], vec![key(2)], vec![key(3), key(2)]] {
        assert!(verify(&export, &pinned).is_ok());
    }
    for pinned in [vec![key(3)], vec![]] {
        match verify(&export, &pinned) {
            Err(ExportError::UntrustedKeys { journal_keys }) => {
                assert_eq!(journal_keys.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
    // A trailer signed by the first key (still a key of the chain) is accepted too.
    assert!(verify(&full_journal().export(&key(1)), &[key(2)]).is_ok());
}

fn expect_entry_error(result: Result<ExportReport, ExportError>, seq: u64, words: &str) {
    match result {
        Err(ExportError::Entry { seq: s, reason }) if s == seq && reason.contains(words) => {}
        other => panic!("expected entry {seq} error with {words:?}, got {other:?}"),
    }
}

#[test]
fn removing_or_swapping_entries_is_caught_where_it_happens() {
    // Goal: a removed entry shows as the first later statement that no longer holds (the
    // rotation's position); swapped entries as time going backwards.
    let journal = full_journal();
    let trailer = journal.trailer(&key(2));
    let mut removed = frames(&journal);
    removed.remove(12);
    match verify(&export_of(&removed, &trailer), &[key(1)]) {
        Err(ExportError::Key {
            seq: 18,
            field: "size",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut removed_late = frames(&journal);
    removed_late.remove(20);
    match verify(&export_of(&removed_late, &trailer), &[key(1)]) {
        Err(ExportError::Checkpoint {
            seq: 23,
            field: "tree size",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut last_removed = frames(&journal);
    last_removed.pop();
    match verify(&export_of(&last_removed, &trailer), &[key(1)]) {
        Err(ExportError::Trailer {
            field: "tree size", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let mut swapped = frames(&journal);
    swapped.swap(12, 13);
    expect_entry_error(
        verify(&export_of(&swapped, &trailer), &[key(1)]),
        13,
        "recorded_at",
    );
}

#[test]
fn truncation_is_named_at_every_point() {
    // Goal: an export cut anywhere fails; inside the framing it says where and inside what.
    let export = full_journal().export(&key(2));
    let trailer_start = export.len() - full_journal().trailer(&key(2)).len();
    for cut in [
        0,
        10,
        24,
        26,
        28,
        30,
        100,
        trailer_start - 4,
        trailer_start - 1,
    ] {
        match verify(&export[..cut], &[key(1)]) {
            Err(ExportError::Truncated { offset, .. }) => assert_eq!(offset, cut as u64),
            Err(ExportError::BadHeader) if cut == 0 => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    match verify(&export[..trailer_start], &[key(1)]) {
        Err(ExportError::Truncated { what, .. }) => assert!(what.contains("trailer"), "{what}"),
        other => panic!("{other:?}"),
    }
    for cut in [trailer_start + 1, export.len() - 1] {
        assert!(matches!(
            verify(&export[..cut], &[key(1)]),
            Err(ExportError::Trailer { field: "note", .. })
        ));
    }
}

#[test]
fn bytes_after_the_trailer_and_bad_headers_are_refused() {
    // Goal: nothing may follow the trailer; the header is exact; a huge length is refused
    // before anything is allocated.
    let export = full_journal().export(&key(2));
    for junk in [&b"x"[..], b"\n", b"\n\n"] {
        let mut longer = export.clone();
        longer.extend_from_slice(junk);
        assert_eq!(
            verify(&longer, &[key(1)]).unwrap_err(),
            ExportError::TrailingBytes {
                offset: export.len() as u64
            }
        );
    }
    let mut header = export.clone();
    header[21] = b'2'; // "v2"
    assert_eq!(
        verify(&header, &[key(1)]).unwrap_err(),
        ExportError::BadHeader
    );
    let mut huge = b"tally-journal-export v1\n".to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        verify(&huge, &[key(1)]).unwrap_err(),
        ExportError::FrameTooLarge {
            seq: 0,
            offset: 24,
            len: u32::MAX
        }
    );
    let empty = export_of(&[], &full_journal().trailer(&key(2)));
    assert_eq!(verify(&empty, &[key(1)]).unwrap_err(), ExportError::Empty);
}

#[test]
fn a_trailer_of_another_size_root_head_or_ledger_is_refused() {
    // Goal: the trailer must state exactly the verified journal, field by field.
    let journal = full_journal();
    let sign = |checkpoint: Checkpoint| sign_checkpoint(&checkpoint, &key(2)).unwrap();
    let good = journal.checkpoint(Journal::time(26));
    let cases: [(Checkpoint, &str); 4] = [
        (
            Checkpoint {
                tree_size: 25,
                ..good.clone()
            },
            "tree size",
        ),
        (
            Checkpoint {
                root: merkle::root(&Blake3, &journal.leaves[..25]),
                ..good.clone()
            },
            "root",
        ),
        (
            Checkpoint {
                chain_head: [1; 32],
                ..good.clone()
            },
            "chain head",
        ),
        (
            Checkpoint {
                ledger_id: [9; 16],
                ..good.clone()
            },
            "ledger id",
        ),
    ];
    for (checkpoint, field) in cases {
        let export = export_of(&journal.entries, &sign(checkpoint));
        match verify(&export, &[key(1)]) {
            Err(ExportError::Trailer { field: f, .. }) if f == field => {}
            other => panic!("{field}: {other:?}"),
        }
    }
    // Signed by a key outside the chain.
    let export = export_of(&journal.entries, &journal.trailer(&key(3)));
    assert!(matches!(
        verify(&export, &[key(3)]),
        Err(ExportError::Trailer {
            field: "signature",
            ..
        })
    ));
}

/// The journal of `full_journal` up to seq 10, then `tail` (given the journal so far).
fn journal_with(tail: impl FnOnce(&mut Journal)) -> Journal {
    let full = full_journal();
    let mut journal = Journal::new();
    for bytes in &full.entries[1..11] {
        journal.push_bytes(bytes.clone());
    }
    tail(&mut journal);
    journal
}

#[test]
fn in_journal_checkpoints_are_checked_field_by_field() {
    // Goal: a checkpoint entry signed by an unrelated key, or stating another root, size or
    // time, fails at its own seq naming the field.
    let unrelated = journal_with(|j| j.push_checkpoint(&key(3)));
    match verify(&unrelated.export(&key(1)), &[key(1)]) {
        Err(ExportError::Checkpoint {
            seq: 11,
            field: "signature",
            reason,
        }) => assert!(reason.contains("current signing key"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let stale_root = journal_with(|j| {
        let mut checkpoint = j.checkpoint(Journal::time(11));
        checkpoint.root = merkle::root(&Blake3, &j.leaves[..10]);
        let note = sign_checkpoint(&checkpoint, &key(1)).unwrap();
        j.push(EntryBody::CheckpointSigned { note });
    });
    assert!(matches!(
        verify(&stale_root.export(&key(1)), &[key(1)]),
        Err(ExportError::Checkpoint {
            seq: 11,
            field: "root",
            ..
        })
    ));
    let wrong_time = journal_with(|j| {
        let note = sign_checkpoint(&j.checkpoint(Journal::time(11) - 1), &key(1)).unwrap();
        j.push(EntryBody::CheckpointSigned { note });
    });
    assert!(matches!(
        verify(&wrong_time.export(&key(1)), &[key(1)]),
        Err(ExportError::Checkpoint {
            seq: 11,
            field: "time",
            ..
        })
    ));
    // Before any key is adopted, no checkpoint can be checked.
    let mut early = Journal::new();
    early.push_checkpoint(&key(1));
    assert!(matches!(
        verify(&early.export(&key(1)), &[key(1)]),
        Err(ExportError::Checkpoint {
            seq: 1,
            field: "signature",
            ..
        })
    ));
}

#[test]
fn key_changes_follow_the_rules() {
    // Goal: a rotation signed only by the old key, one from a key that is not current, one
    // recorded at another position, and a second adoption each fail naming the field.
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let old_only = journal_with(|j| {
        let text = rotation(j.seq(), &k1, &k2);
        let signed_by_both = sign_rotation(&text, &k1, &k2).unwrap();
        // Keep the text and the old key's signature line only.
        let note = signed_by_both
            .lines()
            .filter(|line| !line.contains("key-2 "))
            .map(|line| format!("{line}\n"))
            .collect::<String>();
        j.push(EntryBody::SigningKeyRotated { note });
    });
    match verify(&old_only.export(&k2), std::slice::from_ref(&k1)) {
        Err(ExportError::Key {
            seq: 11,
            field: "signature",
            reason,
            ..
        }) => assert!(reason.contains("both"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let not_current = journal_with(|j| j.push_rotation(&k3, &k2));
    assert!(matches!(
        verify(&not_current.export(&k2), std::slice::from_ref(&k1)),
        Err(ExportError::Key {
            seq: 11,
            field: "old",
            ..
        })
    ));
    let misplaced = journal_with(|j| {
        let note = sign_rotation(&rotation(5, &k1, &k2), &k1, &k2).unwrap();
        j.push(EntryBody::SigningKeyRotated { note });
    });
    assert!(matches!(
        verify(&misplaced.export(&k2), std::slice::from_ref(&k1)),
        Err(ExportError::Key {
            seq: 11,
            field: "size",
            ..
        })
    ));
    let adopted_twice = journal_with(|j| {
        j.push(EntryBody::SigningKeyAdopted {
            vkey: k2.verifier().to_vkey(),
        })
    });
    assert!(matches!(
        verify(&adopted_twice.export(&k2), std::slice::from_ref(&k2)),
        Err(ExportError::Key {
            seq: 11,
            field: "vkey",
            kind: "signing_key_adopted",
            ..
        })
    ));
    let mut keyless = Journal::new();
    keyless.push(currency("USD", 2));
    assert_eq!(
        verify(&keyless.export(&k1), std::slice::from_ref(&k1)).unwrap_err(),
        ExportError::NoSigningKey
    );
}

#[test]
fn ledger_faults_name_the_entry() {
    // Goal: an unbalanced transaction, an overflowing total, a double release and a bad
    // first entry are refused at their seq with the fault.
    let fault = |journal: Journal| match verify(&journal.export(&key(1)), &[key(1)]) {
        Err(ExportError::Ledger { seq, fault }) => (seq, fault),
        other => panic!("{other:?}"),
    };
    let unbalanced = journal_with(|j| {
        let postings = vec![leg(CASH, Side::Debit, 100), leg(REVENUE, Side::Credit, 99)];
        j.push(tx("odd", TransactionMode::Standard, postings));
    });
    assert_eq!(
        fault(unbalanced),
        (
            11,
            LedgerFault::Unbalanced {
                currency: "USD".into(),
                debits: 100,
                credits: 99
            }
        )
    );
    let overflow = journal_with(|j| {
        // Cash already holds 100.00 of debits: this fills it to the limit exactly.
        let max = AMOUNT_MINOR_MAX - 10_000;
        j.push(transfer(
            "big-1",
            TransactionMode::Standard,
            CASH,
            REVENUE,
            max,
        ));
        j.push(transfer(
            "big-2",
            TransactionMode::Standard,
            CASH,
            REVENUE,
            1,
        ));
    });
    assert_eq!(
        fault(overflow),
        (
            12,
            LedgerFault::TotalOverflow {
                account_id: CASH,
                total: "debits posted"
            }
        )
    );
    let voided_twice = journal_with(|j| {
        let pending = TransactionMode::Pending { expires_at: None };
        j.push(transfer("p", pending, CASH, REVENUE, 5));
        for id in ["v1", "v2"] {
            j.push(EntryBody::PendingVoided(PendingVoided {
                id: id.into(),
                request_digest: [0; 32],
                pending_id: "p".into(),
                reason: String::new(),
            }));
        }
    });
    assert_eq!(
        fault(voided_twice),
        (
            13,
            LedgerFault::PendingAlreadyResolved {
                pending_id: "p".into()
            }
        )
    );
}

#[test]
fn time_must_go_forward() {
    // Goal: an entry recorded at the same instant as the one before is refused.
    let mut journal = journal_with(|_| {});
    let entry = Entry {
        recorded_at: Journal::time(10),
        key_id: String::new(),
        body: EntryBody::AccountClosed { account_id: CASH },
    };
    journal.push_bytes(encode(&entry));
    expect_entry_error(
        verify(&journal.export(&key(1)), &[key(1)]),
        11,
        "recorded_at",
    );
}

/// A small export: ledger created, key adopted, a currency, a checkpoint.
fn small_export() -> Vec<u8> {
    let mut journal = Journal::new();
    journal.push(EntryBody::SigningKeyAdopted {
        vkey: key(1).verifier().to_vkey(),
    });
    journal.push(currency("USD", 2));
    journal.push_checkpoint(&key(1));
    journal.export(&key(1))
}

#[test]
fn every_single_byte_change_of_a_small_export_is_caught() {
    // Goal: header, frame lengths, entry bytes, the end marker and the trailer are all
    // covered: no byte of the file can change without verification failing.
    let export = small_export();
    assert!(verify(&export, &[key(1)]).is_ok());
    for at in 0..export.len() {
        for mask in [0x01u8, 0x80] {
            let mut changed = export.clone();
            changed[at] ^= mask;
            assert!(
                verify(&changed, &[key(1)]).is_err(),
                "byte {at} ^ {mask:#x} went unnoticed"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_flipped_byte_of_the_full_export_fails(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        // Goal: the same holds for any byte of the full journal's export and any change.
        let export = full_export();
        let at = at.index(export.len());
        let mut changed = export.to_vec();
        changed[at] ^= mask;
        prop_assert!(verify(&changed, &[key(1)]).is_err(), "byte {} ^ {:#x}", at, mask);
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..200)) {
        // Goal: adversarial input after a valid header is an error, never a panic or a
        // large allocation.
        let mut input = b"tally-journal-export v1\n".to_vec();
        input.extend_from_slice(&tail);
        prop_assert!(verify(&input, &[key(1)]).is_err());
    }
}

fn full_export() -> &'static [u8] {
    static EXPORT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    EXPORT.get_or_init(|| full_journal().export(&key(2)))
}

/// `docs/audit-proofs.md` §11.6: the smallest useful export (ledger created, key adopted).
const DOC_EXPORT_NOTE: &str = "\
tally.example/ledger/00112233445566778899aabbccddeeff/blake3
2
6P504NFFvVidplAwy8t3koNvnudlOPh1jfBWRGZJsqY=
chain-head ddb13045ac3129cb5069734edd59907acab5ba999d42618d1cddcd71824a2f10
time 1700000002000000000

\u{2014} tally.example/key-1 TlE1JqoFGrvGFHqZkxL09zdwXXab3kFvADccamZD3BYP34sZaaZjaHJbSAFIkkmQDeP9NnhIRSgQwytjjQkma/zrJgM=
";

/// `docs/audit-proofs.md` §9.1 (and `docs/journal-format.md` §10.1, seq 13).
const DOC_ROTATION_NOTE: &str = "\
tally.example/ledger/00112233445566778899aabbccddeeff/blake3
key-rotation
old tally.example/key-1+4e513526+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4
new tally.example/key-2+6f670186+ASmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X
size 13

\u{2014} tally.example/key-1 TlE1JvZXXjlbVecbnDSMWrs667KVBRBNoaT1cTSXt6JjDduAPBZJsEQbNOB6OL06lo2vGNNbj5FDE5S5C7326HQtkAg=
\u{2014} tally.example/key-2 b2cBhngVG4I9C/rR/marc6AwkWrwfMb7VTJXSv2yg7suujpquvCpJTjCtJ1xczsiiqShUhRud7erjA2HeMBgfE9/GAQ=
";

#[test]
fn the_doc_export_vector_is_frozen() {
    // Goal: the example export of the doc, byte for byte (also recomputed independently
    // with Python `blake3` and `cryptography` when it was written), and it verifies.
    let adopted = Entry {
        recorded_at: T0 + STEP,
        key_id: String::new(),
        body: EntryBody::SigningKeyAdopted {
            vkey: key(1).verifier().to_vkey(),
        },
    };
    let mut journal = Journal::new();
    journal.push_bytes(encode(&adopted));
    assert_eq!(journal.trailer(&key(1)), DOC_EXPORT_NOTE);
    let export = journal.export(&key(1));
    assert_eq!(export.len(), 502);
    let framing = [
        (0, "74616c6c792d6a6f75726e616c2d6578706f72742076310a"),
        (24, "00000025"),
        (
            28,
            "0117979cfe362a000000000000000000000000000000112233445566778899aabbccddeeff",
        ),
        (65, "00000066"),
        (
            69,
            "0117979cfe71c4ca0000000000000000000000000a0000000000000049",
        ),
        (171, "00000000"),
    ];
    for (at, bytes) in framing {
        let bytes = hex::decode(bytes).unwrap();
        assert_eq!(&export[at..at + bytes.len()], bytes.as_slice(), "at {at}");
    }
    assert_eq!(&export[175..], DOC_EXPORT_NOTE.as_bytes());
    assert_eq!(
        blake3::hash(&export).to_hex().as_str(),
        "d89af3d120cdb53946775326daec2534568cfdd4a9b78f765e06141be263899c"
    );
    let report = verify(&export, &[key(1)]).unwrap();
    assert_eq!(
        hex::encode(report.root),
        "e8fe74e0d145bd589da65030cbcb7792836f9ee76538f8758df056446649b2a6"
    );
}

#[test]
fn the_doc_rotation_vector_is_frozen() {
    // Goal: the rotation note of the doc is what `sign_rotation` writes and opens to the
    // rotation it states.
    let rotation = rotation(13, &key(1), &key(2));
    assert_eq!(
        sign_rotation(&rotation, &key(1), &key(2)).unwrap(),
        DOC_ROTATION_NOTE
    );
    assert_eq!(
        tally_audit::open_rotation(DOC_ROTATION_NOTE.as_bytes()).unwrap(),
        rotation
    );
}
