//! The stored Merkle tree answers like an in-memory reference tree built from
//! the journal's entry hashes, for every size, across group boundaries, after a
//! restart and after a rebuild.

use rust_decimal::Decimal;
use tally_audit::merkle::{self, Blake3};
use tally_audit::{entry_leaf_hash, MerkleTree};
use tally_core::entry::{AccountType, BalanceConstraint, Side};
use tally_server::ledger::command::*;
use tally_server::{Engine, EngineConfig};

fn transfer(id: String) -> TransactionItem {
    let posting = |account: &str, side| PostingSpec {
        account: account.into(),
        side,
        amount: Decimal::new(1, 2),
        currency: None,
    };
    TransactionItem {
        command: TransactionCommand::Transaction(TransactionSpec {
            id,
            postings: vec![
                posting("assets:a", Side::Debit),
                posting("assets:b", Side::Credit),
            ],
            effective_at: None,
            description: String::new(),
            metadata: Default::default(),
            pending: false,
            timeout_seconds: 0,
        }),
        linked: false,
    }
}

async fn setup(engine: &Engine) {
    let usd = CurrencySpec {
        code: "USD".into(),
        scale: 2,
    };
    assert!(engine.create_currencies(vec![usd]).await.unwrap()[0].is_ok());
    let account = |name: &str| AccountSpec {
        name: name.into(),
        account_type: AccountType::Asset,
        currency: "USD".into(),
        constraint: BalanceConstraint::None,
        metadata: Default::default(),
    };
    let opened = engine
        .create_accounts(vec![account("assets:a"), account("assets:b")])
        .await
        .unwrap();
    assert!(opened.iter().all(|r| r.is_ok()));
}

/// Appends `count` transfers in batches of the given sizes, cycling.
async fn append(engine: &Engine, next_id: &mut usize, count: usize, batch_sizes: &[usize]) {
    let mut written = 0;
    let mut sizes = batch_sizes.iter().cycle();
    while written < count {
        let size = (*sizes.next().unwrap()).min(count - written);
        let items = (0..size)
            .map(|i| transfer(format!("t{}", *next_id + i)))
            .collect();
        let results = engine.create_transactions(items).await.unwrap();
        assert!(results.iter().all(|r| r.is_ok()));
        *next_id += size;
        written += size;
    }
}

/// The reference: a tree of every committed entry's leaf hash.
fn reference(engine: &Engine) -> MerkleTree<Blake3> {
    let records = engine.journal(0, usize::MAX).unwrap();
    let leaves: Vec<_> = records
        .iter()
        .map(|r| entry_leaf_hash(&r.entry_hash))
        .collect();
    MerkleTree::from_leaf_hashes(Blake3, &leaves)
}

/// Roots for every size; inclusion and consistency proofs for a spread of
/// indexes and sizes, equal to the reference's and verifying.
fn check_against_reference(engine: &Engine) {
    let tree = reference(engine);
    let n = tree.size();
    for size in 0..=n {
        assert_eq!(
            engine.merkle_root(size).unwrap(),
            tree.root(size).unwrap(),
            "root of size {size}"
        );
    }
    let sizes: Vec<u64> = (1..=n)
        .filter(|s| s % 37 == 0 || *s <= 3 || s.is_power_of_two() || *s >= n - 2)
        .collect();
    for &size in &sizes {
        let root = tree.root(size).unwrap();
        for index in (0..size)
            .step_by(((size / 9) as usize).max(1))
            .chain([size - 1])
        {
            let proof = engine.inclusion_proof(index, size).unwrap();
            assert_eq!(
                proof,
                tree.inclusion_proof(index, size).unwrap(),
                "inclusion {index} in {size}"
            );
            let records = engine.journal(index, 1).unwrap();
            let leaf = entry_leaf_hash(&records[0].entry_hash);
            merkle::verify_inclusion(&Blake3, &leaf, index, size, &proof, &root).unwrap();
        }
        for &old in sizes.iter().filter(|old| **old <= size) {
            let proof = engine.consistency_proof(old, size).unwrap();
            assert_eq!(
                proof,
                tree.consistency_proof(old, size).unwrap(),
                "consistency {old} -> {size}"
            );
            let old_root = tree.root(old).unwrap();
            merkle::verify_consistency(&Blake3, old, size, &old_root, &root, &proof).unwrap();
        }
    }
    assert!(
        engine.merkle_root(n + 1).is_err(),
        "a size past the journal is refused"
    );
}

#[tokio::test]
async fn stored_tree_matches_the_reference_across_restart_and_rebuild() {
    // Goal: roots and proofs from the store equal those of a reference tree
    // for every size, with groups straddling the stored 128-leaf subtrees, and
    // stay so after a restart (the right edge rebuilt by replay) and a rebuild.
    let dir = tempfile::tempdir().unwrap();
    let mut next_id = 0;
    {
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        setup(&engine).await;
        append(&engine, &mut next_id, 300, &[1, 7, 50, 130, 3]).await;
        check_against_reference(&engine);
        engine.shutdown().await;
    }
    let reopen = || loop {
        // sled releases its file lock from a background thread after a drop.
        match Engine::open(EngineConfig::new(dir.path())) {
            Ok(engine) => return engine,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    {
        let engine = reopen();
        append(&engine, &mut next_id, 330, &[129, 2, 64]).await;
        check_against_reference(&engine);
        engine.shutdown().await;
    }
    let rows_before = {
        let engine = reopen();
        engine.shutdown().await;
        drop(engine);
        let store = loop {
            match tally_server::store::Store::open(dir.path(), 1 << 20) {
                Ok(store) => break store,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        store.cache_rows().unwrap()
    };
    assert!(
        rows_before.iter().any(|(key, _)| key[0] == b'X'),
        "stored Merkle nodes exist"
    );
    let rebuilt = loop {
        match tally_server::maintenance::rebuild(dir.path()) {
            Ok(report) => break report,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    assert!(rebuilt.entries > 600);
    let engine = reopen();
    check_against_reference(&engine);
    engine.shutdown().await;
    drop(engine);
    let store = loop {
        match tally_server::store::Store::open(dir.path(), 1 << 20) {
            Ok(store) => break store,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    assert_eq!(
        store.cache_rows().unwrap(),
        rows_before,
        "rebuild equals live"
    );
}
