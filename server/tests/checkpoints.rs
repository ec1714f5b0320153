//! Signed checkpoints and signing keys in the engine: recorded as journal
//! entries, made on request, every N entries and every T, consistent with each
//! other, and verifiable with the public key alone; keys adopted on first
//! start and rotated only by a note the old key signs.

use std::time::Duration;
use tally_audit::merkle::{verify_consistency, Blake3};
use tally_audit::{NoteVerifier, VerifiedCheckpoint};
use tally_core::entry::{AccountType, BalanceConstraint, EntryBody, Side};
use tally_server::audit::checkpoints::CheckpointPolicy;
use tally_server::audit::keys;
use tally_server::ledger::command::*;
use tally_server::ledger::view::CheckpointView;
use tally_server::{Engine, EngineConfig};

fn config(dir: &std::path::Path, policy: CheckpointPolicy) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.checkpoints = policy;
    config
}

/// Checkpoints only on request (and after a million entries or an hour).
fn on_request() -> CheckpointPolicy {
    CheckpointPolicy {
        every_entries: 1_000_000,
        interval: Duration::from_secs(3600),
        ..CheckpointPolicy::default()
    }
}

fn open(dir: &std::path::Path, policy: CheckpointPolicy) -> Engine {
    // sled releases its file lock from a background thread after a drop.
    for _ in 0..100 {
        match Engine::open(config(dir, policy.clone())) {
            Ok(engine) => return engine,
            Err(tally_server::Error::Store(tally_server::StoreError::Sled(_))) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(other) => panic!("open failed: {other}"),
        }
    }
    panic!("the data directory stayed locked");
}

async fn reopen(engine: Engine, dir: &std::path::Path, policy: CheckpointPolicy) -> Engine {
    engine.shutdown().await;
    drop(engine);
    open(dir, policy)
}

async fn setup(engine: &Engine) {
    let currencies = engine
        .create_currencies(vec![CurrencySpec {
            code: "USD".into(),
            scale: 2,
        }])
        .await
        .unwrap();
    assert!(currencies.iter().all(|r| r.is_ok()));
    let accounts = ["assets:cash", "revenue:sales"]
        .iter()
        .zip([AccountType::Asset, AccountType::Revenue])
        .map(|(name, account_type)| AccountSpec {
            name: name.to_string(),
            account_type,
            currency: "USD".into(),
            constraint: BalanceConstraint::None,
            metadata: Default::default(),
        })
        .collect();
    let opened = engine.create_accounts(accounts).await.unwrap();
    assert!(opened.iter().all(|r| r.is_ok()));
}

async fn sell(engine: &Engine, id: &str) {
    let posting = |account: &str, side| PostingSpec {
        account: account.into(),
        side,
        amount: "1.25".parse().unwrap(),
        currency: None,
    };
    let item = TransactionItem {
        command: TransactionCommand::Transaction(TransactionSpec {
            id: id.into(),
            postings: vec![
                posting("assets:cash", Side::Debit),
                posting("revenue:sales", Side::Credit),
            ],
            effective_at: None,
            description: String::new(),
            metadata: Default::default(),
            pending: false,
            timeout_seconds: 0,
        }),
        linked: false,
    };
    let results = engine.create_transactions(vec![item]).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
}

fn vkey(dir: &std::path::Path) -> NoteVerifier {
    keys::load(dir).unwrap().verifier()
}

/// Opens the checkpoint with `key` and checks it states the journal before
/// its own entry: size, root, chain head, and the entry is the checkpoint.
fn check(engine: &Engine, view: &CheckpointView, key: &NoteVerifier) -> VerifiedCheckpoint {
    let verified =
        tally_audit::open_checkpoint(view.note.as_bytes(), std::slice::from_ref(key)).unwrap();
    let checkpoint = &verified.checkpoint;
    assert_eq!(checkpoint.tree_size, view.tree_size);
    assert_eq!(checkpoint.root, engine.merkle_root(view.tree_size).unwrap());
    let before = engine.journal_entry(view.tree_size - 1).unwrap();
    assert_eq!(checkpoint.chain_head, before.entry_hash);
    let own = engine.journal_entry(view.tree_size).unwrap();
    assert_eq!(
        own.entry.body,
        EntryBody::CheckpointSigned {
            note: view.note.clone()
        }
    );
    assert_eq!(checkpoint.time_unix_nanos, own.entry.recorded_at);
    verified
}

#[tokio::test]
async fn the_first_start_adopts_the_key_and_a_requested_checkpoint_signs_the_journal() {
    // Goal: entry 1 records the key the data directory holds; a checkpoint on
    // request covers every entry before it, verifies with the public key
    // alone, and is not repeated while nothing new happens.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), on_request());
    let key = vkey(dir.path());
    let adopted = engine.journal_entry(1).unwrap();
    assert_eq!(
        adopted.entry.body,
        EntryBody::SigningKeyAdopted {
            vkey: key.to_vkey()
        }
    );
    setup(&engine).await;
    sell(&engine, "sale-1").await;
    let length = engine.ledger_info().unwrap().journal_length;
    let first = engine.create_checkpoint().await.unwrap();
    assert_eq!(first.tree_size, length);
    check(&engine, &first, &key);
    assert_eq!(
        engine.create_checkpoint().await.unwrap(),
        first,
        "nothing new, no new checkpoint"
    );
    assert_eq!(engine.checkpoint(None).unwrap(), first);
    assert_eq!(engine.checkpoint(Some(first.tree_size)).unwrap(), first);
    assert!(engine.checkpoint(Some(first.tree_size - 1)).is_err());
    let keys = engine.signing_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].vkey.as_str(), keys[0].since_seq),
        (key.to_vkey().as_str(), 1)
    );

    // The checkpoint survives a restart, and is still the latest.
    let engine = reopen(engine, dir.path(), on_request()).await;
    assert_eq!(engine.create_checkpoint().await.unwrap(), first);
    engine.shutdown().await;
}

#[tokio::test]
async fn checkpoints_every_n_entries_are_consistent_with_each_other() {
    // Goal: with every_entries = 4, a checkpoint closes the group that makes
    // 4 new entries; each verifies, and each pair of them is proven consistent.
    let dir = tempfile::tempdir().unwrap();
    let policy = CheckpointPolicy {
        every_entries: 4,
        ..on_request()
    };
    let engine = open(dir.path(), policy);
    let key = vkey(dir.path());
    setup(&engine).await;
    for i in 0..20 {
        sell(&engine, &format!("sale-{i}")).await;
    }
    let length = engine.ledger_info().unwrap().journal_length;
    let mut views = Vec::new();
    for seq in 0..length {
        if let EntryBody::CheckpointSigned { note } = engine.journal_entry(seq).unwrap().entry.body
        {
            views.push(CheckpointView {
                tree_size: seq,
                note,
            });
        }
    }
    assert!(
        views.len() >= 4,
        "{} checkpoints in {length} entries",
        views.len()
    );
    let verified: Vec<_> = views
        .iter()
        .map(|view| check(&engine, view, &key))
        .collect();
    for pair in verified.windows(2) {
        let (old, new) = (&pair[0].checkpoint, &pair[1].checkpoint);
        assert!(
            new.tree_size - old.tree_size <= 5,
            "a checkpoint after 4 new entries"
        );
        let proof = engine
            .consistency_proof(old.tree_size, new.tree_size)
            .unwrap();
        verify_consistency(
            &Blake3,
            old.tree_size,
            new.tree_size,
            &old.root,
            &new.root,
            &proof,
        )
        .unwrap();
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_checkpoint_comes_by_itself_after_the_interval() {
    // Goal: entries written and then nothing: the ticker signs them within
    // about one interval.
    let dir = tempfile::tempdir().unwrap();
    let policy = CheckpointPolicy {
        interval: Duration::from_millis(200),
        ..on_request()
    };
    let engine = open(dir.path(), policy);
    setup(&engine).await;
    sell(&engine, "sale-1").await;
    let written = engine.ledger_info().unwrap().journal_length;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        if let Ok(view) = engine.checkpoint(None) {
            if view.tree_size >= written {
                break view;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    check(&engine, &view, &vkey(dir.path()));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_is_recorded_signed_by_both_keys_and_signs_from_then_on() {
    // Goal: `keygen --rotate` then a start records a rotation note that both
    // keys signed; the new key signs later checkpoints; the old checkpoint
    // still verifies with the old key; both keys are listed.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), on_request());
    setup(&engine).await;
    let old_checkpoint = engine.create_checkpoint().await.unwrap();
    engine.shutdown().await;
    drop(engine);
    let (old, new) = keys::rotate(dir.path(), "tally.local/ledger-2").unwrap();

    let engine = open(dir.path(), on_request());
    let rotated_at = engine.ledger_info().unwrap().journal_length - 1;
    let EntryBody::SigningKeyRotated { note } =
        engine.journal_entry(rotated_at).unwrap().entry.body
    else {
        panic!("entry {rotated_at} is not a rotation");
    };
    let rotation = tally_audit::open_rotation(note.as_bytes()).unwrap();
    assert_eq!(rotation.old_key, old.verifier());
    assert_eq!(rotation.new_key, new.verifier());
    assert_eq!(rotation.tree_size, rotated_at);

    sell(&engine, "sale-after-rotation").await;
    let new_checkpoint = engine.create_checkpoint().await.unwrap();
    check(&engine, &new_checkpoint, &new.verifier());
    assert!(
        tally_audit::open_checkpoint(new_checkpoint.note.as_bytes(), &[old.verifier()]).is_err()
    );
    check(&engine, &old_checkpoint, &old.verifier());
    let listed: Vec<_> = engine
        .signing_keys()
        .unwrap()
        .into_iter()
        .map(|k| (k.vkey, k.since_seq))
        .collect();
    assert_eq!(
        listed,
        vec![
            (old.verifier().to_vkey(), 1),
            (new.verifier().to_vkey(), rotated_at)
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_key_that_is_not_the_journals_is_refused_without_the_old_key() {
    // Goal: swapping the key file for another key, without the journal's key
    // at hand to sign the hand-over, stops the start with a message naming
    // both keys; nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), on_request());
    let length = engine.ledger_info().unwrap().journal_length;
    engine.shutdown().await;
    drop(engine);
    let journal_key = vkey(dir.path());
    std::fs::remove_file(keys::key_path(dir.path())).unwrap();
    let stranger = keys::generate(dir.path(), "tally.local/stranger").unwrap();

    let error = loop {
        match Engine::open(config(dir.path(), on_request())) {
            Err(tally_server::Error::Store(tally_server::StoreError::Sled(_))) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(error) => break error.to_string(),
            Ok(_) => panic!("a foreign key was accepted"),
        }
    };
    assert!(error.contains(&journal_key.to_vkey()), "{error}");
    assert!(error.contains(&stranger.verifier().to_vkey()), "{error}");
    let store = loop {
        match tally_server::store::Store::open(dir.path(), 1 << 20) {
            Ok(store) => break store,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(store.head().unwrap().0, length, "nothing was written");
}

#[tokio::test]
async fn storage_that_lost_its_tail_is_refused_not_served_as_a_new_ledger() {
    // Goal: the latest checkpoint is marked beside the storage; a journal that
    // no longer reaches it (here: the storage files gone entirely) stops the
    // start and `verify` instead of being served or taken for a new ledger.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), on_request());
    setup(&engine).await;
    let checkpoint = engine.create_checkpoint().await.unwrap();
    engine.shutdown().await;
    drop(engine);
    let mark = std::fs::read_to_string(dir.path().join("checkpoint.latest")).unwrap();
    assert_eq!(mark, checkpoint.note);

    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
    std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
    let error = match Engine::open(config(dir.path(), on_request())) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("an emptied storage was opened as a new ledger"),
    };
    let expected = format!(
        "the journal has 0 entries, but a checkpoint of {} entries was signed",
        checkpoint.tree_size
    );
    assert!(error.contains(&expected), "{error}");
    let verify = tally_server::maintenance::verify(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        verify.contains("storage lost acknowledged entries"),
        "{verify}"
    );
}
