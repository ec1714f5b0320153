//! `Engine`: the ledger as one handle — writes go through the writer, reads go
//! to the store. Everything above (gRPC, tests, tools) talks to this.

use crate::error::{LedgerError, Result};
use crate::ledger::command::{AccountSpec, CurrencySpec, TransactionItem};
use crate::ledger::view::{
    AccountBalance, AccountView, AsOf, Balance, BalanceChange, CurrencyView, JournalRecord,
    LedgerInfo, Page, Recorded, TransactionView, TrialBalance,
};
use std::path::PathBuf;
use tally_core::entry::TimestampNs;

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
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            queue_depth_max: 4096,
            group_items_max: 65_536,
            cache_capacity_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Results of a batch: one per item, in order.
pub type ItemResults<T> = Vec<std::result::Result<Recorded<T>, LedgerError>>;

pub struct Engine {}

impl Engine {
    /// Opens (or creates) the ledger in `config.data_dir`: verifies the journal's
    /// hash chain, brings caches up to date, and starts the writer.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        let _ = config;
        todo!()
    }

    pub fn ledger_info(&self) -> Result<LedgerInfo> {
        todo!()
    }

    pub async fn create_currencies(
        &self,
        specs: Vec<CurrencySpec>,
    ) -> Result<ItemResults<CurrencyView>> {
        let _ = specs;
        todo!()
    }

    pub fn list_currencies(&self) -> Result<Vec<CurrencyView>> {
        todo!()
    }

    pub async fn create_accounts(
        &self,
        specs: Vec<AccountSpec>,
    ) -> Result<ItemResults<AccountView>> {
        let _ = specs;
        todo!()
    }

    /// Closing a closed account returns it unchanged.
    pub async fn close_account(&self, name: String) -> Result<AccountView> {
        let _ = name;
        todo!()
    }

    pub fn get_account(&self, name: &str) -> Result<AccountView> {
        let _ = name;
        todo!()
    }

    pub fn list_accounts(
        &self,
        prefix: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<AccountView>> {
        let _ = (prefix, page_size, page_token);
        todo!()
    }

    /// Up to `ledger::limits::BATCH_ITEMS_MAX` items; one result per item.
    pub async fn create_transactions(
        &self,
        items: Vec<TransactionItem>,
    ) -> Result<ItemResults<TransactionView>> {
        let _ = items;
        todo!()
    }

    pub fn get_transaction(&self, id: &str) -> Result<TransactionView> {
        let _ = id;
        todo!()
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
        let _ = (account, from, to, page_size, page_token);
        todo!()
    }

    /// Balances of the named accounts at `as_of`, and the last seq reflected.
    pub fn balances(&self, accounts: &[String], as_of: AsOf) -> Result<(Vec<AccountBalance>, u64)> {
        let _ = (accounts, as_of);
        todo!()
    }

    /// The balance before the page, and the changes on it.
    pub fn account_history(
        &self,
        account: &str,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Balance, Page<BalanceChange>)> {
        let _ = (account, page_size, page_token);
        todo!()
    }

    /// `depth` 0 = per account; else names cut to `depth` segments.
    pub fn trial_balance(
        &self,
        as_of: AsOf,
        depth: usize,
        prefix: &str,
        currency: Option<&str>,
    ) -> Result<TrialBalance> {
        let _ = (as_of, depth, prefix, currency);
        todo!()
    }

    /// Up to `limit` committed journal entries from `from_seq`.
    pub fn journal(&self, from_seq: u64, limit: usize) -> Result<Vec<JournalRecord>> {
        let _ = (from_seq, limit);
        todo!()
    }

    /// Watches the committed journal length (for following the journal).
    pub fn watch_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        todo!()
    }

    /// Stops accepting writes, finishes the queued ones and flushes.
    pub async fn shutdown(&self) {
        todo!()
    }
}
