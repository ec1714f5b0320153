//! Reads. Each sees the journal up to `committed()` only: what has been made
//! durable and acknowledged, never what is still being written.

use super::history::AccountHistory;
use super::read_model::{HistoryPoint, ReadModel};
use super::records::{self, AccountRecord, TxRef};
use super::{keys, transaction_view, Store};
use crate::error::StoreError;
use crate::ledger::view::{
    AccountView, AsOf, Balance, BalanceChange, CurrencyTotal, CurrencyView, JournalRecord, Page,
    TransactionKind, TransactionView, TrialBalance, TrialBalanceLine,
};
use std::collections::BTreeMap;
use tally_core::chain::GENESIS_PREV_HASH;
use tally_core::codec;
use tally_core::entry::{AccountId, Digest, Entry, EntryBody, TimestampNs};

type Result<T> = std::result::Result<T, StoreError>;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl Store {
    /// A stored entry with its hash (the writer reads committed entries too).
    pub fn entry(&self, seq: u64) -> Result<Option<(Digest, Entry)>> {
        let Some((_, hash, canonical)) = self.journal_row(seq)? else {
            return Ok(None);
        };
        let entry = codec::decode(&canonical).map_err(|e| corrupt(format!("entry {seq}: {e}")))?;
        Ok(Some((hash, entry)))
    }

    /// Committed entries from `from_seq`, at most `limit`.
    pub fn journal(&self, from_seq: u64, limit: usize) -> Result<Vec<JournalRecord>> {
        let committed = self.committed();
        let mut prev_hash = match from_seq {
            0 => GENESIS_PREV_HASH,
            seq => self
                .entry(seq - 1)?
                .map(|(hash, _)| hash)
                .unwrap_or(GENESIS_PREV_HASH),
        };
        let mut records = Vec::new();
        for row in self.journal_rows(from_seq) {
            let (seq, hash, canonical) = row?;
            if seq >= committed || records.len() >= limit {
                break;
            }
            let entry =
                codec::decode(&canonical).map_err(|e| corrupt(format!("entry {seq}: {e}")))?;
            records.push(JournalRecord {
                seq,
                entry_hash: hash,
                prev_hash,
                canonical,
                entry,
            });
            prev_hash = hash;
        }
        Ok(records)
    }

    pub fn ledger_id(&self) -> Result<Option<[u8; 16]>> {
        Ok(match self.entry(0)? {
            Some((
                _,
                Entry {
                    body: EntryBody::LedgerCreated { ledger_id },
                    ..
                },
            )) => Some(ledger_id),
            _ => None,
        })
    }

    /// The chain head after `length` entries.
    pub fn hash_at_length(&self, length: u64) -> Result<Digest> {
        if length == 0 {
            return Ok(GENESIS_PREV_HASH);
        }
        Ok(self
            .entry(length - 1)?
            .map(|(hash, _)| hash)
            .unwrap_or(GENESIS_PREV_HASH))
    }

    /// Currencies defined by published entries (the read model's; a group's
    /// sled rows are applied just before it is published).
    pub fn currencies(&self) -> Result<Vec<CurrencyView>> {
        let mut currencies: Vec<CurrencyView> = self
            .read_model()
            .currencies()
            .map(|(code, scale)| CurrencyView {
                code: code.clone(),
                scale,
            })
            .collect();
        currencies.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(currencies)
    }

    fn account_record_by_id(&self, id: AccountId) -> Result<Option<AccountRecord>> {
        let Some(bytes) = self.db.get(keys::account(id))? else {
            return Ok(None);
        };
        let record: AccountRecord =
            records::decode(&bytes).ok_or_else(|| corrupt(format!("account row {id}")))?;
        Ok((record.opened_seq < self.committed()).then_some(record))
    }

    pub fn account_id(&self, name: &str) -> Result<Option<AccountId>> {
        let Some(bytes) = self.db.get(keys::prefixed(keys::NAME, name))? else {
            return Ok(None);
        };
        let id = keys::trailing_seq(&bytes);
        Ok(self.account_record_by_id(id)?.map(|_| id))
    }

    /// An account with its current balance.
    pub fn account(&self, name: &str) -> Result<Option<AccountView>> {
        let Some(id) = self.account_id(name)? else {
            return Ok(None);
        };
        self.account_view(id)
    }

    pub fn account_by_id(&self, id: AccountId) -> Result<Option<AccountView>> {
        self.account_view(id)
    }

    fn account_view(&self, id: AccountId) -> Result<Option<AccountView>> {
        let Some(record) = self.account_record_by_id(id)? else {
            return Ok(None);
        };
        let balance = self.balance(id, AsOf::Now)?;
        let committed = self.committed();
        Ok(Some(AccountView {
            id,
            name: record.opened.name,
            account_type: record.opened.account_type,
            currency: record.opened.currency,
            scale: record.scale,
            constraint: record.opened.constraint,
            metadata: record.opened.metadata,
            closed: record.closed_seq.is_some_and(|seq| seq < committed),
            opened_seq: record.opened_seq,
            opened_at: record.opened_at,
            balance,
        }))
    }

    /// Accounts whose name starts with `prefix`, by name, after `after`.
    pub fn list_accounts(
        &self,
        prefix: &str,
        page_size: usize,
        after: Option<&str>,
    ) -> Result<Page<AccountView>> {
        let start = match after {
            Some(name) => {
                let mut key = keys::prefixed(keys::NAME, name);
                key.push(0);
                key
            }
            None => keys::prefixed(keys::NAME, prefix),
        };
        let prefix_key = keys::prefixed(keys::NAME, prefix);
        let mut items = Vec::new();
        for row in self.db.range(start..) {
            let (key, value) = row?;
            if !key.starts_with(&prefix_key) {
                break;
            }
            if items.len() == page_size {
                let next = items.last().map(|a: &AccountView| a.name.clone());
                return Ok(Page {
                    items,
                    next_page_token: next,
                });
            }
            if let Some(view) = self.account_view(keys::trailing_seq(&value))? {
                items.push(view);
            }
        }
        Ok(Page {
            items,
            next_page_token: None,
        })
    }

    /// An account's balance at a point of the (committed) journal.
    pub fn balance(&self, id: AccountId, as_of: AsOf) -> Result<Balance> {
        self.balance_within(id, as_of, self.committed())
    }

    /// An account's balance at `as_of`, looking only at the first `length`
    /// entries of the journal: reads of many accounts pass one `length`, so
    /// they all reflect one point of the journal even while groups are
    /// published meanwhile.
    pub fn balance_within(&self, id: AccountId, as_of: AsOf, length: u64) -> Result<Balance> {
        let Some(last) = length.checked_sub(1) else {
            return Ok(Balance::default());
        };
        let model = self.read_model();
        let history = model.history(id);
        Ok(match as_of {
            AsOf::Now => balance_through_seq(history, last),
            AsOf::Seq(seq) => balance_through_seq(history, seq.min(last)),
            AsOf::Time(time) => {
                let within = history.partition_by_seq(|seq| seq <= last);
                balance_at_time(history.points(0..within), time)?
            }
        })
    }

    /// Changes of an account's balance after seq `after`, and the balance
    /// before the first of them.
    pub fn history(
        &self,
        id: AccountId,
        page_size: usize,
        after: Option<u64>,
    ) -> Result<(Balance, Page<BalanceChange>)> {
        let points: Vec<HistoryPoint> = {
            let model = self.read_model();
            let history = model.history(id);
            let start = after.map_or(0, |after| history.partition_by_seq(|seq| seq <= after));
            let end = history.len().min(start.saturating_add(page_size + 1));
            history.points(start..end).collect()
        };
        let opening = match after {
            Some(seq) => self.balance(id, AsOf::Seq(seq))?,
            None => Balance::default(),
        };
        let mut changes = Vec::with_capacity(points.len().min(page_size));
        for point in points.iter().take(page_size) {
            let (_, entry) = self
                .entry(point.seq)?
                .ok_or_else(|| corrupt(format!("history point {} without entry", point.seq)))?;
            changes.push(BalanceChange {
                seq: point.seq,
                transaction_id: ReadModel::transaction_id(&entry)
                    .unwrap_or_default()
                    .to_string(),
                kind: records::kind_from_code(point.kind).unwrap_or(TransactionKind::Standard),
                effective_at: point.effective_at,
                balance: point.balance,
            });
        }
        let next_page_token = (points.len() > page_size)
            .then(|| changes.last().map(|c| c.seq.to_string()))
            .flatten();
        Ok((
            opening,
            Page {
                items: changes,
                next_page_token,
            },
        ))
    }

    pub fn tx_ref(&self, id: &str) -> Option<TxRef> {
        self.read_model().transactions.get(id).cloned()
    }

    /// A committed transaction as it stands now.
    pub fn transaction(&self, id: &str) -> Result<Option<TransactionView>> {
        let Some(seq) = self.read_model().transactions.get(id).map(|r| r.seq) else {
            return Ok(None);
        };
        self.transaction_at(seq)
    }

    /// The transaction recorded by the entry at `seq`, as it stands now.
    pub fn transaction_at(&self, seq: u64) -> Result<Option<TransactionView>> {
        let (hash, entry) = self
            .entry(seq)?
            .ok_or_else(|| corrupt(format!("missing entry {seq}")))?;
        Ok(self.view_of(seq, hash, &entry))
    }

    /// The view of a transaction entry, with its current state and account
    /// names from the read model (`None` if the entry is not a transaction).
    pub fn view_of(&self, seq: u64, hash: Digest, entry: &Entry) -> Option<TransactionView> {
        let model = self.read_model();
        let tx_ref = ReadModel::transaction_id(entry).and_then(|id| model.transactions.get(id));
        let resolve = |id| {
            model
                .naming(id)
                .map(|n| (n.name.clone(), n.currency.clone(), n.scale))
        };
        transaction_view::build(seq, hash, entry, tx_ref, &resolve)
    }

    /// Transactions touching `account` (or all), effective in `[from, to)`,
    /// in journal order after seq `after`.
    pub fn list_transactions(
        &self,
        account: Option<AccountId>,
        from: Option<TimestampNs>,
        to: Option<TimestampNs>,
        page_size: usize,
        after: Option<u64>,
    ) -> Result<Page<TransactionView>> {
        let in_window = |at: TimestampNs| from.is_none_or(|f| at >= f) && to.is_none_or(|t| at < t);
        let start = after.map_or(Some(0), |seq| seq.checked_add(1));
        let Some(start) = start else {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        };
        let committed = self.committed();
        let mut items: Vec<TransactionView> = Vec::new();
        let mut more = false;
        let mut take = |seq: u64, hash: Digest, entry: &Entry| -> bool {
            if items.len() == page_size {
                more = true;
                return false;
            }
            if let Some(view) = self.view_of(seq, hash, entry) {
                if in_window(view.effective_at) {
                    items.push(view);
                }
            }
            true
        };
        match account {
            Some(id) => {
                let seqs: Vec<u64> = {
                    let model = self.read_model();
                    let history = model.history(id);
                    let first = history.partition_by_seq(|seq| seq < start);
                    history
                        .points(first..history.len())
                        .filter(|p| in_window(p.effective_at) && p.seq < committed)
                        .map(|p| p.seq)
                        .collect()
                };
                for seq in seqs {
                    let (hash, entry) = self
                        .entry(seq)?
                        .ok_or_else(|| corrupt(format!("missing entry {seq}")))?;
                    if !take(seq, hash, &entry) {
                        break;
                    }
                }
            }
            None => {
                for row in self.journal_rows(start) {
                    let (seq, hash, canonical) = row?;
                    if seq >= committed {
                        break;
                    }
                    let entry = codec::decode(&canonical)
                        .map_err(|e| corrupt(format!("entry {seq}: {e}")))?;
                    if !take(seq, hash, &entry) {
                        break;
                    }
                }
            }
        }
        let next_page_token = more
            .then(|| items.last().map(|t| t.seq.to_string()))
            .flatten();
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Trial balance: every account's posted balance in the debit or credit
    /// column, rolled up to `depth` name segments, per currency.
    pub fn trial_balance(
        &self,
        as_of: AsOf,
        depth: usize,
        prefix: &str,
        currency: Option<&str>,
    ) -> Result<TrialBalance> {
        let committed = self.committed();
        let as_of_seq = match as_of {
            AsOf::Seq(seq) => seq.min(committed.saturating_sub(1)),
            _ => committed.saturating_sub(1),
        };
        let mut lines: BTreeMap<(String, String), TrialBalanceLine> = BTreeMap::new();
        for row in self.db.scan_prefix([keys::ACCOUNT]) {
            let (key, value) = row?;
            let record: AccountRecord =
                records::decode(&value).ok_or_else(|| corrupt("account row"))?;
            let visible = match as_of {
                AsOf::Seq(seq) => record.opened_seq <= seq && record.opened_seq < committed,
                _ => record.opened_seq < committed,
            };
            let opened = &record.opened;
            if !visible
                || !opened.name.starts_with(prefix)
                || currency.is_some_and(|c| c != opened.currency)
            {
                continue;
            }
            let balance = self.balance_within(keys::trailing_seq(&key), as_of, committed)?;
            let name = roll_up(&opened.name, depth);
            let line = lines
                .entry((name.clone(), opened.currency.clone()))
                .or_insert(TrialBalanceLine {
                    account: name,
                    account_type: Some(opened.account_type),
                    currency: opened.currency.clone(),
                    scale: record.scale,
                    debit_minus_credit: 0,
                    accounts: 0,
                });
            if line.account_type != Some(opened.account_type) {
                line.account_type = None;
            }
            line.debit_minus_credit += balance.debit_minus_credit();
            line.accounts += 1;
        }
        let lines: Vec<TrialBalanceLine> = lines.into_values().collect();
        Ok(TrialBalance {
            as_of_seq,
            totals: totals(&lines),
            lines,
        })
    }
}

/// The balance after the last change at or before `seq`.
fn balance_through_seq(history: &AccountHistory, seq: u64) -> Balance {
    let after = history.partition_by_seq(|s| s <= seq);
    after
        .checked_sub(1)
        .map(|i| history.point(i).balance)
        .unwrap_or_default()
}

/// Sums the changes whose effective time is at or before `time` (effective
/// times need not follow journal order, so every change is looked at).
fn balance_at_time(
    points: impl Iterator<Item = HistoryPoint>,
    time: TimestampNs,
) -> Result<Balance> {
    let mut previous = Balance::default();
    let mut sum = [0i128; 4];
    for point in points {
        let balance = point.balance;
        if point.effective_at <= time {
            sum[0] += balance.debits_posted as i128 - previous.debits_posted as i128;
            sum[1] += balance.credits_posted as i128 - previous.credits_posted as i128;
        }
        if point.pending_effective_at <= time {
            sum[2] += balance.debits_pending as i128 - previous.debits_pending as i128;
            sum[3] += balance.credits_pending as i128 - previous.credits_pending as i128;
        }
        previous = balance;
    }
    let total = |value: i128| u128::try_from(value).map_err(|_| corrupt("negative total at time"));
    Ok(Balance {
        debits_posted: total(sum[0])?,
        credits_posted: total(sum[1])?,
        debits_pending: total(sum[2])?,
        credits_pending: total(sum[3])?,
    })
}

/// Debit and credit column sums per currency.
fn totals(lines: &[TrialBalanceLine]) -> Vec<CurrencyTotal> {
    let mut totals: BTreeMap<&str, CurrencyTotal> = BTreeMap::new();
    for line in lines {
        let total = totals.entry(&line.currency).or_insert(CurrencyTotal {
            currency: line.currency.clone(),
            scale: line.scale,
            debit: 0,
            credit: 0,
        });
        if line.debit_minus_credit >= 0 {
            total.debit += line.debit_minus_credit.unsigned_abs();
        } else {
            total.credit += line.debit_minus_credit.unsigned_abs();
        }
    }
    totals.into_values().collect()
}

/// `assets:receivable:acme` at depth 2 is `assets:receivable`; depth 0 keeps it.
fn roll_up(name: &str, depth: usize) -> String {
    if depth == 0 {
        return name.to_string();
    }
    name.split(':').take(depth).collect::<Vec<_>>().join(":")
}
