//! `Engine`: the ledger as one handle — writes go through the writer, reads go
//! to the store. Everything above (gRPC, tests, tools) talks to this.

use crate::audit::checkpoints::{self, CheckpointPolicy, Checkpointer};
use crate::audit::keys;
use crate::auth::token::Token;
use crate::auth::Caller;
use crate::error::{Error, LedgerError, Result, StoreError};
use crate::ledger::command::{
    AccountSpec, ApiKeySpec, CurrencySpec, PreparedItem, TransactionItem,
};
use crate::ledger::directory::AccountDirectory;
use crate::ledger::execute::Context;
use crate::ledger::limits::{ACCOUNTS_BATCH_MAX, BATCH_ITEMS_MAX};
use crate::ledger::state::{Journaled, LedgerState};
use crate::ledger::view::{
    AccountBalance, AccountView, ApiKeyView, AsOf, Balance, BalanceChange, CheckpointView,
    CurrencyView, JournalRecord, LedgerInfo, Page, Recorded, SigningKeyView, TransactionView,
    TrialBalance,
};
use crate::store::{transaction_view, Store};
use crate::writer::{self, Request, Submitted, Writer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tally_core::entry::{EntryBody, Role, TimestampNs};
use tally_core::error_code::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};

/// The engine's settings. Defaults are stated on each field.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the journal and its caches live.
    pub data_dir: PathBuf,
    /// Requests waiting for the writer before senders wait (default 4096).
    pub queue_depth_max: usize,
    /// Transaction items per group commit (default 65,536).
    pub group_items_max: usize,
    /// sled page cache, bytes (default 256 MiB).
    pub cache_capacity_bytes: u64,
    /// When signed checkpoints are made, and the origin they name.
    pub checkpoints: CheckpointPolicy,
    /// The token of the first admin key, made when the ledger has no key
    /// yet; `None` makes a random one (shown once by `take_bootstrap_token`).
    pub bootstrap_admin_key: Option<String>,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            queue_depth_max: 4096,
            group_items_max: 65_536,
            cache_capacity_bytes: 256 * 1024 * 1024,
            checkpoints: CheckpointPolicy::default(),
            bootstrap_admin_key: None,
        }
    }
}

/// How much of each recorded transaction a batch answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The whole transaction, as `get_transaction` shows it.
    Full,
    /// Identity and position only.
    Brief,
}

/// Results of a batch: one per item, in order.
pub type ItemResults<T> = Vec<std::result::Result<Recorded<T>, LedgerError>>;

/// Entries replayed per cache write while catching caches up on start.
const CATCH_UP_CHUNK: usize = 10_000;

pub struct Engine {
    pub(crate) store: Store,
    ledger_id: [u8; 16],
    requests: Mutex<Option<mpsc::Sender<Submitted>>>,
    /// The first admin key's token when the ledger made it at random: shown once.
    bootstrap_token: Mutex<Option<String>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: watch::Receiver<u64>,
    /// Account names resolved before the writer (`ledger/directory.rs`).
    directory: Arc<AccountDirectory>,
}

/// Replays the whole journal into a fresh state, checking the chain, and
/// writes the cache rows of every entry at or past the caches' length.
pub(crate) fn recover(store: &Store) -> Result<LedgerState, StoreError> {
    let (length, head) = store.head()?;
    let caches_length = store.caches_length()?;
    let mut state = LedgerState::new();
    store.share_claims(std::sync::Arc::clone(state.claims()));
    // Most entries record a transaction id: size both id maps once.
    let expected_ids = usize::try_from(length).unwrap_or(usize::MAX);
    state.reserve_transactions(expected_ids);
    store.reserve_transactions(expected_ids);
    let fold = |replayed: &mut Vec<_>, state: &LedgerState| -> Result<(), StoreError> {
        let behind = replayed.partition_point(|j: &Journaled| j.seq < caches_length);
        store.advance_frontier_replayed(&replayed[..behind]);
        store.write_caches(&replayed[behind..], state)?;
        store.publish(replayed);
        replayed.clear();
        Ok(())
    };
    // Chunks whose cache rows are all stored (every chunk, unless the caches
    // lag after a crash) need no state to fold: a second thread folds them
    // into the Merkle frontier and the read model while this one replays the
    // next, which nearly halves start-up on two cores. The first chunk with
    // rows to catch up, and every one after it, is folded here, after the
    // folder has finished: its rows need the frontier of all before it.
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let (to_folder, chunks) = std::sync::mpsc::sync_channel::<Vec<Journaled>>(2);
        let handle = scope.spawn(move || {
            for chunk in chunks {
                debug_assert!(chunk.last().is_none_or(|j| j.seq < caches_length));
                store.advance_frontier_replayed(&chunk);
                store.publish(&chunk);
            }
        });
        let mut folder = Some((to_folder, handle));
        let mut replayed = Vec::with_capacity(CATCH_UP_CHUNK);
        for row in store.journal_rows(0) {
            let (seq, hash, canonical) = row?;
            let journaled = state
                .replay(seq, canonical, &hash)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            replayed.push(journaled);
            if replayed.len() < CATCH_UP_CHUNK {
                continue;
            }
            let stored = replayed.last().is_some_and(|j| j.seq < caches_length);
            match &folder {
                Some((to_folder, _)) if stored => {
                    let chunk =
                        std::mem::replace(&mut replayed, Vec::with_capacity(CATCH_UP_CHUNK));
                    if to_folder.send(chunk).is_err() {
                        stop_folder(&mut folder); // it panicked: this re-raises it
                    }
                }
                _ => {
                    stop_folder(&mut folder);
                    fold(&mut replayed, &state)?;
                }
            }
        }
        stop_folder(&mut folder);
        fold(&mut replayed, &state)
    })?;
    if state.next_seq() != length || state.head() != head {
        return Err(StoreError::Corrupt(format!(
            "journal has {} entries but its head record says {length}",
            state.next_seq()
        )));
    }
    if caches_length > length {
        // Cache rows are written only after their group is durable in the
        // journal: the journal lost entries (after the chain check above, so
        // that a damaged entry is named first).
        return Err(StoreError::Corrupt(format!(
            "the journal has {length} entries, but the caches reflect {caches_length}: storage \
             lost entries that were durable; restore the data directory from a backup"
        )));
    }
    if caches_length < length {
        tracing::info!(
            from = caches_length,
            to = length,
            "caches caught up with the journal"
        );
        store.flush()?;
    }
    Ok(state)
}

/// Ends the replay's folder thread once it has folded every chunk sent; a
/// panic there is raised again here.
fn stop_folder(
    folder: &mut Option<(
        std::sync::mpsc::SyncSender<Vec<Journaled>>,
        std::thread::ScopedJoinHandle<'_, ()>,
    )>,
) {
    if let Some((to_folder, handle)) = folder.take() {
        drop(to_folder);
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Engine {
    /// Opens (or creates) the ledger in `config.data_dir`: verifies the journal's
    /// hash chain, brings caches up to date, and starts the writer.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        let store = Store::open(&config.data_dir, config.cache_capacity_bytes)?;
        let signer = keys::load_or_generate(&config.data_dir).map_err(key_error)?;
        let now = writer::now_ns();
        // Built first: it refuses a log host no note can carry, before anything is written.
        let checkpointer = Checkpointer::new(signer.clone(), config.checkpoints.clone(), now)
            .map_err(key_error)?;
        let mut state = recover(&store)?;
        check_mark(&store, state.next_seq())?;
        if state.next_seq() == 0 {
            create_ledger(&store, &mut state)?;
        }
        let retired = keys::load_retired(&config.data_dir).map_err(key_error)?;
        let log_host = &config.checkpoints.log_host;
        if let Some(entry) =
            checkpoints::key_entry(&state, &signer, &retired, log_host, now).map_err(key_error)?
        {
            tracing::info!(kind = entry.body.kind_name(), vkey = %signer.verifier().to_vkey(), "signing key recorded");
            write_entry(&store, &mut state, entry)?;
        }
        let bootstrap_token = if state.api_key_count() == 0 {
            bootstrap_admin_key(&store, &mut state, config.bootstrap_admin_key.as_deref())?
        } else {
            None
        };
        let ledger_id = state
            .ledger_id
            .ok_or_else(|| StoreError::Corrupt("entry 0 is not ledger_created".into()))?;
        tracing::info!(
            entries = state.next_seq(),
            accounts = state.account_count(),
            "ledger open"
        );

        let (commits_sender, commits) = watch::channel(store.committed());
        let (requests, receiver) = mpsc::channel(config.queue_depth_max);
        let directory = Arc::new(AccountDirectory::from_state(&state));
        let writer = Writer {
            state,
            store: store.clone(),
            group_items_max: config.group_items_max,
            checkpointer,
            directory: Arc::clone(&directory),
        };
        let writer_thread = std::thread::Builder::new()
            .name("tally-writer".into())
            .spawn(move || writer.run(receiver, commits_sender))
            .map_err(StoreError::from)?;
        spawn_ticker(requests.downgrade());
        Ok(Engine {
            store,
            ledger_id,
            requests: Mutex::new(Some(requests)),
            bootstrap_token: Mutex::new(bootstrap_token),
            writer_thread: Mutex::new(Some(writer_thread)),
            commits,
            directory,
        })
    }

    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Request,
    ) -> Result<T> {
        let sender = self.requests.lock().expect("requests lock").clone();
        let sender =
            sender.ok_or_else(|| Error::Unavailable("the ledger is shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        let submitted = Submitted {
            key_id: crate::auth::current_key_id(),
            request: make(reply),
        };
        sender
            .send(submitted)
            .await
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(Error::Unavailable(message)),
            Err(_) => Err(Error::Unavailable("the writer has stopped".into())),
        }
    }

    pub fn ledger_info(&self) -> Result<LedgerInfo> {
        let length = self.store.committed();
        Ok(LedgerInfo {
            ledger_id: self.ledger_id,
            journal_length: length,
            chain_head: self.store.hash_at_length(length)?,
        })
    }

    pub async fn create_currencies(
        &self,
        specs: Vec<CurrencySpec>,
    ) -> Result<ItemResults<CurrencyView>> {
        check_batch(specs.len(), ACCOUNTS_BATCH_MAX, "currencies")?;
        let results = self
            .call(|reply| Request::Currencies {
                specs: specs.clone(),
                reply,
            })
            .await?;
        Ok(specs
            .iter()
            .zip(results)
            .enumerate()
            .map(|(index, (spec, result))| {
                result
                    .map(|existed| Recorded {
                        value: CurrencyView {
                            code: spec.code.clone(),
                            scale: spec.scale as u8,
                        },
                        replayed: existed,
                    })
                    .map_err(|e| e.within(&format!("currencies[{index}]")))
            })
            .collect())
    }

    pub fn list_currencies(&self) -> Result<Vec<CurrencyView>> {
        Ok(self.store.currencies()?)
    }

    pub async fn create_accounts(
        &self,
        specs: Vec<AccountSpec>,
    ) -> Result<ItemResults<AccountView>> {
        check_batch(specs.len(), ACCOUNTS_BATCH_MAX, "accounts")?;
        let results = self
            .call(|reply| Request::Accounts { specs, reply })
            .await?;
        let mut views = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            views.push(match result {
                Ok((id, existed)) => Ok(Recorded {
                    value: self.account_by_id(id)?,
                    replayed: existed,
                }),
                Err(error) => Err(error.within(&format!("accounts[{index}]"))),
            });
        }
        Ok(views)
    }

    fn account_by_id(&self, id: u64) -> Result<AccountView> {
        let page = self.store.account_by_id(id)?;
        page.ok_or_else(|| {
            Error::Store(StoreError::Corrupt(format!(
                "account {id} missing after commit"
            )))
        })
    }

    /// Closing a closed account returns it unchanged.
    pub async fn close_account(&self, name: String) -> Result<AccountView> {
        let id = self
            .call(|reply| Request::CloseAccount { name, reply })
            .await??;
        self.account_by_id(id)
    }

    pub fn get_account(&self, name: &str) -> Result<AccountView> {
        self.store
            .account(name)?
            .ok_or_else(|| account_not_found(name, "name"))
    }

    pub fn list_accounts(
        &self,
        prefix: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<AccountView>> {
        Ok(self.store.list_accounts(prefix, page_size, page_token)?)
    }

    /// Up to `ledger::limits::BATCH_ITEMS_MAX` items; one result per item.
    pub async fn create_transactions(
        &self,
        items: Vec<TransactionItem>,
    ) -> Result<ItemResults<TransactionView>> {
        self.create_transactions_answered(items, Answer::Full).await
    }

    /// As [`Engine::create_transactions`], answering in full or briefly
    /// (identity and position only: see `transaction_view::brief`).
    pub async fn create_transactions_answered(
        &self,
        items: Vec<TransactionItem>,
        answer: Answer,
    ) -> Result<ItemResults<TransactionView>> {
        check_batch(items.len(), BATCH_ITEMS_MAX, "items")?;
        let started = std::time::Instant::now();
        let directory = &*self.directory;
        let items: Vec<PreparedItem> =
            crate::parallel::map_indexed(items, |_, item| PreparedItem::new(item, directory));
        let prepared = started.elapsed();
        let done = self
            .call(|reply| Request::Transactions { items, reply })
            .await?;
        tracing::debug!(
            prepare_us = prepared.as_micros() as u64,
            writer_us = (started.elapsed() - prepared).as_micros() as u64,
            "transaction batch through the writer"
        );
        let first_seq = done.group.first().map_or(u64::MAX, |j| j.seq);
        let mut results = Vec::with_capacity(done.outcomes.len());
        for outcome in done.outcomes {
            results.push(match outcome {
                Ok(outcome) => {
                    // New entries come from the group; a retry's from the journal.
                    let view = if outcome.seq >= first_seq {
                        let journaled = &done.group[(outcome.seq - first_seq) as usize];
                        debug_assert_eq!(journaled.seq, outcome.seq);
                        let (seq, hash, entry) = (journaled.seq, journaled.hash, &journaled.entry);
                        match answer {
                            Answer::Full => self.store.view_of(seq, hash, entry),
                            Answer::Brief => transaction_view::brief(seq, hash, entry),
                        }
                    } else {
                        self.store.transaction_at(outcome.seq)?
                    };
                    let view = view.ok_or_else(|| {
                        StoreError::Corrupt(format!("entry {} is not a transaction", outcome.seq))
                    })?;
                    Ok(Recorded {
                        value: view,
                        replayed: outcome.replayed,
                    })
                }
                Err(error) => Err(error),
            });
        }
        Ok(results)
    }

    pub fn get_transaction(&self, id: &str) -> Result<TransactionView> {
        self.store.transaction(id)?.ok_or_else(|| {
            Error::Ledger(LedgerError::new(
                ErrorCode::TransactionNotFound,
                "id",
                format!("no transaction {id}"),
            ))
        })
    }

    /// Transactions touching `account` (or all), effective in `[from, to)`, in
    /// journal order.
    pub fn list_transactions(
        &self,
        account: Option<&str>,
        from: Option<TimestampNs>,
        to: Option<TimestampNs>,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<TransactionView>> {
        let account_id = match account {
            Some(name) => Some(
                self.store
                    .account_id(name)?
                    .ok_or_else(|| account_not_found(name, "account"))?,
            ),
            None => None,
        };
        let after = parse_seq_token(page_token)?;
        Ok(self
            .store
            .list_transactions(account_id, from, to, page_size, after)?)
    }

    /// Refuses a seq past the journal's end; returns the committed length.
    fn check_as_of(&self, as_of: AsOf) -> Result<u64> {
        let committed = self.store.committed();
        match as_of {
            AsOf::Seq(seq) if seq >= committed => Err(Error::Ledger(LedgerError::new(
                ErrorCode::SeqOutOfRange,
                "as_of.seq",
                format!("seq {seq} is past the journal's end ({committed} entries)"),
            ))),
            _ => Ok(committed),
        }
    }

    /// Balances of the named accounts at `as_of`, and the last seq reflected.
    pub fn balances(&self, accounts: &[String], as_of: AsOf) -> Result<(Vec<AccountBalance>, u64)> {
        let committed = self.check_as_of(as_of)?;
        let mut balances = Vec::with_capacity(accounts.len());
        for (index, name) in accounts.iter().enumerate() {
            let account = self
                .store
                .account(name)?
                .ok_or_else(|| account_not_found(name, &format!("accounts[{index}]")))?;
            balances.push(AccountBalance {
                balance: self.store.balance_within(account.id, as_of, committed)?,
                account: account.name,
                account_type: account.account_type,
                currency: account.currency,
                scale: account.scale,
            });
        }
        let as_of_seq = match as_of {
            AsOf::Seq(seq) => seq,
            _ => committed.saturating_sub(1),
        };
        Ok((balances, as_of_seq))
    }

    /// The balance before the page, and the changes on it.
    pub fn account_history(
        &self,
        account: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Balance, Page<BalanceChange>)> {
        let id = self
            .store
            .account_id(account)?
            .ok_or_else(|| account_not_found(account, "account"))?;
        let after = parse_seq_token(page_token)?;
        Ok(self.store.history(id, page_size, after)?)
    }

    /// `depth` 0 = per account; else names cut to `depth` segments.
    pub fn trial_balance(
        &self,
        as_of: AsOf,
        depth: usize,
        prefix: &str,
        currency: Option<&str>,
    ) -> Result<TrialBalance> {
        self.check_as_of(as_of)?;
        Ok(self.store.trial_balance(as_of, depth, prefix, currency)?)
    }

    /// The Merkle root of the tree of the first `size` journal entries.
    pub fn merkle_root(&self, size: u64) -> Result<tally_audit::Hash> {
        self.check_tree_size(size, "tree_size")?;
        Ok(self.store.merkle_root(size)?)
    }

    /// The inclusion proof of entry `seq` in the tree of `size` entries.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<tally_audit::Hash>> {
        self.check_tree_size(size, "tree_size")?;
        if seq >= size {
            return Err(out_of_range(
                "seq",
                format!("entry {seq} is not in a tree of {size} entries"),
            ));
        }
        Ok(self.store.inclusion_proof(seq, size)?)
    }

    /// The consistency proof between the trees of `old_size` and `new_size` entries.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<tally_audit::Hash>> {
        self.check_tree_size(new_size, "new_size")?;
        if old_size == 0 || old_size > new_size {
            return Err(out_of_range(
                "old_size",
                format!("old size must be from 1 to the new size {new_size}, not {old_size}"),
            ));
        }
        Ok(self.store.consistency_proof(old_size, new_size)?)
    }

    fn check_tree_size(&self, size: u64, field: &str) -> Result<()> {
        let committed = self.store.committed();
        if size > committed {
            return Err(out_of_range(
                field,
                format!("tree size {size} is past the journal's end ({committed} entries)"),
            ));
        }
        Ok(())
    }

    /// Signs a checkpoint of the journal as it is now, unless the latest one
    /// already covers every entry before it; returns it.
    pub async fn create_checkpoint(&self) -> Result<CheckpointView> {
        let size = self.call(|reply| Request::Checkpoint { reply }).await?;
        self.checkpoint(Some(size))
    }

    /// The latest checkpoint (`None`) or the one of exactly `tree_size` entries.
    pub fn checkpoint(&self, tree_size: Option<u64>) -> Result<CheckpointView> {
        let seq = {
            let model = self.store.read_model();
            match tree_size {
                None => model.checkpoints.last().copied(),
                Some(size) => model.checkpoints.binary_search(&size).ok().map(|_| size),
            }
        };
        let not_found = || {
            let message = match tree_size {
                None => "no checkpoint has been signed yet".to_string(),
                Some(size) => format!("no checkpoint of tree size {size}"),
            };
            Error::Ledger(LedgerError::new(
                ErrorCode::CheckpointNotFound,
                "tree_size",
                message,
            ))
        };
        let seq = seq.ok_or_else(not_found)?;
        match self.store.entry(seq)? {
            Some((
                _,
                tally_core::entry::Entry {
                    body: EntryBody::CheckpointSigned { note },
                    ..
                },
            )) => Ok(CheckpointView {
                tree_size: seq,
                note,
            }),
            _ => Err(StoreError::Corrupt(format!(
                "entry {seq} is not the checkpoint the index says"
            ))
            .into()),
        }
    }

    /// The ledger's signing keys, oldest first.
    pub fn signing_keys(&self) -> Result<Vec<SigningKeyView>> {
        let seqs = self.store.read_model().key_entries.clone();
        let mut keys = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let vkey = match self.store.entry(seq)?.map(|(_, entry)| entry.body) {
                Some(EntryBody::SigningKeyAdopted { vkey }) => vkey,
                Some(EntryBody::SigningKeyRotated { note }) => {
                    tally_audit::open_rotation(note.as_bytes())
                        .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?
                        .new_key
                        .to_vkey()
                }
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "entry {seq} is not the key entry the index says"
                    ))
                    .into())
                }
            };
            keys.push(SigningKeyView {
                vkey,
                since_seq: seq,
            });
        }
        Ok(keys)
    }

    /// The first admin key's token, once, if the ledger made it at random on
    /// this start; `None` afterwards.
    pub fn take_bootstrap_token(&self) -> Option<String> {
        self.bootstrap_token.lock().expect("bootstrap lock").take()
    }

    /// The caller a bearer token stands for, if it is a live key.
    pub fn authenticate(&self, text: &str) -> std::result::Result<Caller, LedgerError> {
        let unknown =
            |message: &str| LedgerError::new(ErrorCode::Unauthenticated, "authorization", message);
        let token = Token::parse(text).map_err(unknown)?;
        let model = self.store.read_model();
        let key = model
            .api_keys
            .get(token.key_id())
            .filter(|key| token.matches(&key.secret_hash))
            .ok_or_else(|| unknown("unknown api key"))?;
        if key.revoked_seq.is_some() {
            return Err(unknown("the api key was revoked"));
        }
        Ok(Caller {
            key_id: token.key_id().to_string(),
            role: key.role,
            read_only: key.read_only,
        })
    }

    /// Creates an API key; returns its token (shown this once) and the key.
    pub async fn create_api_key(
        &self,
        name: String,
        role: Role,
        read_only: bool,
    ) -> Result<(String, ApiKeyView)> {
        let token = Token::generate();
        let spec = ApiKeySpec {
            key_id: token.key_id().to_string(),
            name,
            role,
            read_only,
            secret_hash: token.secret_hash(),
        };
        self.call(|reply| Request::CreateApiKey { spec, reply })
            .await?
            .map_err(Error::Ledger)?;
        Ok((token.reveal(), self.api_key(token.key_id())?))
    }

    /// Revokes an API key (idempotent); calls with it fail from the answer on.
    pub async fn revoke_api_key(&self, key_id: String) -> Result<ApiKeyView> {
        let id = key_id.clone();
        self.call(|reply| Request::RevokeApiKey { key_id, reply })
            .await?
            .map_err(Error::Ledger)?;
        self.api_key(&id)
    }

    /// Rotates an API key: a new key with the same name, role and
    /// restriction, and the old one revoked, atomically. Returns the new
    /// token (shown this once) and the new key.
    pub async fn rotate_api_key(&self, key_id: String) -> Result<(String, ApiKeyView)> {
        let token = Token::generate();
        let successor = ApiKeySpec {
            key_id: token.key_id().to_string(),
            name: String::new(),
            role: Role::Auditor,
            read_only: true,
            secret_hash: token.secret_hash(),
        };
        self.call(|reply| Request::RotateApiKey {
            key_id,
            successor,
            reply,
        })
        .await?
        .map_err(Error::Ledger)?;
        Ok((token.reveal(), self.api_key(token.key_id())?))
    }

    /// Every API key, in creation order (never their secrets).
    pub fn api_keys(&self) -> Vec<ApiKeyView> {
        let model = self.store.read_model();
        let mut keys: Vec<ApiKeyView> = model
            .api_keys
            .iter()
            .map(|(id, key)| ApiKeyView::new(id, key))
            .collect();
        keys.sort_by_key(|key| key.created_seq);
        keys
    }

    fn api_key(&self, key_id: &str) -> Result<ApiKeyView> {
        let model = self.store.read_model();
        let key = model.api_keys.get(key_id).ok_or_else(|| {
            Error::Ledger(LedgerError::new(
                ErrorCode::ApiKeyNotFound,
                "key_id",
                format!("no api key {key_id:?}"),
            ))
        })?;
        Ok(ApiKeyView::new(key_id, key))
    }

    /// One committed journal entry with its canonical bytes and hashes.
    pub fn journal_entry(&self, seq: u64) -> Result<JournalRecord> {
        let committed = self.store.committed();
        if seq >= committed {
            return Err(out_of_range(
                "seq",
                format!("entry {seq} is past the journal's end ({committed} entries)"),
            ));
        }
        self.store
            .journal(seq, 1)?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is missing")).into())
    }

    /// Up to `limit` committed journal entries from `from_seq`.
    pub fn journal(&self, from_seq: u64, limit: usize) -> Result<Vec<JournalRecord>> {
        Ok(self.store.journal(from_seq, limit)?)
    }

    /// Watches the committed journal length (for following the journal).
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Stops accepting writes, finishes the queued ones and flushes.
    pub async fn shutdown(&self) {
        let sender = self.requests.lock().expect("requests lock").take();
        drop(sender);
        let thread = self.writer_thread.lock().expect("writer lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Err(error) = self.store.flush() {
            tracing::error!(%error, "final flush failed");
        }
    }
}

fn check_batch(len: usize, max: usize, field: &str) -> Result<(), LedgerError> {
    if len == 0 {
        return Err(LedgerError::new(
            ErrorCode::BatchEmpty,
            field,
            format!("{field} is empty"),
        ));
    }
    if len > max {
        return Err(LedgerError::new(
            ErrorCode::BatchTooLarge,
            field,
            format!("{len} {field}; the limit is {max}"),
        ));
    }
    Ok(())
}

fn out_of_range(field: &str, message: String) -> Error {
    Error::Ledger(LedgerError::new(ErrorCode::SeqOutOfRange, field, message))
}

fn account_not_found(name: &str, field: &str) -> Error {
    Error::Ledger(LedgerError::new(
        ErrorCode::AccountNotFound,
        field,
        format!("no account {name}"),
    ))
}

fn parse_seq_token(token: Option<&str>) -> Result<Option<u64>> {
    match token {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Error::Ledger(LedgerError::new(
                ErrorCode::FieldInvalid,
                "page_token",
                "malformed page token",
            ))
        }),
    }
}

/// Writes entry 0 of a new ledger, naming it with a fresh random id.
fn create_ledger(store: &Store, state: &mut LedgerState) -> Result<(), StoreError> {
    let mut seed = blake3::Hasher::new();
    seed.update(&writer::now_ns().to_be_bytes());
    seed.update(&std::process::id().to_be_bytes());
    seed.update(format!("{:?}", std::thread::current().id()).as_bytes());
    seed.update(&(std::ptr::addr_of!(seed) as usize).to_be_bytes());
    let mut ledger_id = [0u8; 16];
    ledger_id.copy_from_slice(&seed.finalize().as_bytes()[..16]);
    let ctx = Context {
        now: writer::now_ns(),
        key_id: String::new(),
    };
    let entry = tally_core::entry::Entry {
        recorded_at: state.next_recorded_at(ctx.now),
        key_id: String::new(),
        body: tally_core::entry::EntryBody::LedgerCreated { ledger_id },
    };
    write_entry(store, state, entry)
}

/// Refuses a journal shorter than the latest checkpoint marked beside it
/// (`audit::mark`): storage that lost its tail must not be served, nor an
/// empty one taken for a new ledger.
pub(crate) fn check_mark(store: &Store, length: u64) -> Result<(), StoreError> {
    let note_at = |seq| match store.entry(seq) {
        Ok(Some((
            _,
            tally_core::entry::Entry {
                body: EntryBody::CheckpointSigned { note },
                ..
            },
        ))) => Some(note),
        _ => None,
    };
    crate::audit::mark::check(store.data_dir(), length, note_at).map_err(StoreError::Corrupt)
}

/// Records the first admin key of a ledger that has none. Returns its token
/// if it was made at random (to be shown once), `None` if it was given.
fn bootstrap_admin_key(
    store: &Store,
    state: &mut LedgerState,
    given: Option<&str>,
) -> Result<Option<String>, Error> {
    let (token, generated) = match given {
        Some(text) => {
            let token = Token::parse(text).map_err(|reason| {
                Error::Unavailable(format!("the bootstrap admin key is malformed: {reason}"))
            })?;
            (token, false)
        }
        None => (Token::generate(), true),
    };
    let entry = tally_core::entry::Entry {
        recorded_at: state.next_recorded_at(writer::now_ns()),
        key_id: String::new(),
        body: EntryBody::ApiKeyCreated(tally_core::entry::ApiKeyCreated {
            key_id: token.key_id().to_string(),
            name: "bootstrap-admin".to_string(),
            role: Role::Admin,
            read_only: false,
            secret_hash: token.secret_hash(),
        }),
    };
    write_entry(store, state, entry)?;
    tracing::info!(key_id = token.key_id(), "first admin key created");
    Ok(generated.then(|| token.reveal()))
}

/// Start-up: writes one entry before the writer runs.
fn write_entry(
    store: &Store,
    state: &mut LedgerState,
    entry: tally_core::entry::Entry,
) -> Result<(), StoreError> {
    let group = [state.append(entry)];
    store.write_group(&group, state)?;
    store.publish(&group);
    Ok(())
}

fn key_error(error: keys::KeyError) -> Error {
    Error::Unavailable(format!("signing key: {error}"))
}

/// Wakes the writer every `TICK_INTERVAL` so pending transactions expire on
/// time even when no request arrives; ends when the engine shuts down.
fn spawn_ticker(requests: mpsc::WeakSender<Submitted>) {
    let spawned = std::thread::Builder::new()
        .name("tally-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(writer::TICK_INTERVAL);
            let Some(sender) = requests.upgrade() else {
                return;
            };
            // A full queue means the writer is busy and will expire soon anyway.
            let _ = sender.try_send(Submitted {
                key_id: String::new(),
                request: Request::Tick,
            });
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no ticker thread: pending transactions expire only when requests arrive");
    }
}
