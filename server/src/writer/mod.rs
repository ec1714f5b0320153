//! The writer: the one thread that changes the ledger.
//!
//! It takes a request, drains whatever else is queued (up to
//! `group_items_max` items), executes them in order against the in-memory
//! state, writes all the resulting entries with their cache rows in ONE atomic
//! storage batch, flushes, publishes the new journal length to readers, and
//! only then answers every request of the group (group commit).
//!
//! If the storage write fails, the in-memory state is ahead of the disk: the
//! writer answers the group with `Unavailable` and stops (fail-stop); a restart
//! rebuilds the state from the journal.

use crate::error::{LedgerError, StoreError};
use crate::ledger::command::{AccountSpec, CurrencySpec, TransactionItem};
use crate::ledger::execute::{self, Context, EntryLookup, ItemOutcome};
use crate::ledger::state::{Journaled, LedgerState};
use crate::ledger::view::{Recorded, TransactionView};
use crate::store::records::TxRef;
use crate::store::{transaction_view, Store};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tally_core::entry::{AccountId, Entry, TimestampNs};
use tokio::sync::{mpsc, oneshot, watch};

/// How often the writer wakes up by itself to expire pending transactions.
pub const TICK_INTERVAL: Duration = Duration::from_millis(500);

pub type Reply<T> = oneshot::Sender<Result<T, String>>;

pub enum Request {
    Currencies {
        specs: Vec<CurrencySpec>,
        reply: Reply<Vec<Result<bool, LedgerError>>>,
    },
    Accounts {
        specs: Vec<AccountSpec>,
        reply: Reply<Vec<Result<(AccountId, bool), LedgerError>>>,
    },
    CloseAccount {
        name: String,
        reply: Reply<Result<AccountId, LedgerError>>,
    },
    Transactions {
        items: Vec<TransactionItem>,
        reply: Reply<Vec<Result<Recorded<TransactionView>, LedgerError>>>,
    },
    /// Wake up: expire what is due.
    Tick,
}

impl Request {
    fn items(&self) -> usize {
        match self {
            Request::Currencies { specs, .. } => specs.len(),
            Request::Accounts { specs, .. } => specs.len(),
            Request::CloseAccount { .. } | Request::Tick => 1,
            Request::Transactions { items, .. } => items.len(),
        }
    }
}

pub fn now_ns() -> TimestampNs {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

struct StoreLookup<'a>(&'a Store);

impl EntryLookup for StoreLookup<'_> {
    fn entry(&self, seq: u64) -> Option<Entry> {
        self.0.entry(seq).ok().flatten().map(|(_, entry)| entry)
    }
}

/// An answer computed before the group is durable, sent after.
enum Pending {
    Currencies(
        Reply<Vec<Result<bool, LedgerError>>>,
        Vec<Result<bool, LedgerError>>,
    ),
    Accounts(
        Reply<Vec<Result<(AccountId, bool), LedgerError>>>,
        Vec<Result<(AccountId, bool), LedgerError>>,
    ),
    Close(
        Reply<Result<AccountId, LedgerError>>,
        Result<AccountId, LedgerError>,
    ),
    Transactions(
        Reply<Vec<Result<Recorded<TransactionView>, LedgerError>>>,
        Vec<Result<ItemOutcome, LedgerError>>,
    ),
}

pub struct Writer {
    pub state: LedgerState,
    pub store: Store,
    pub group_items_max: usize,
    pub commits: watch::Sender<u64>,
}

impl Writer {
    /// Runs until every sender is gone (shutdown) or storage fails.
    pub fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while let Some(first) = requests.blocking_recv() {
            let mut group = vec![first];
            let mut items = group[0].items();
            while items < self.group_items_max {
                match requests.try_recv() {
                    Ok(request) => {
                        items += request.items();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = self.commit_group(group) {
                tracing::error!(%error, "storage write failed; the writer stops (restart to recover)");
                return;
            }
        }
        tracing::info!("writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Request>) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let ctx = Context {
            now: now_ns(),
            key_id: String::new(),
        };
        let mut out: Vec<Journaled> = Vec::new();
        execute::expire_pending(&mut self.state, &ctx, &mut out);
        let mut answers = Vec::with_capacity(group.len());
        for request in group {
            answers.push(self.execute(request, &ctx, &mut out));
        }
        let executed = started.elapsed();
        if !out.is_empty() {
            if let Err(error) = self.store.write_group(&out, &self.state) {
                for answer in answers {
                    answer.fail("the ledger stopped after a storage failure");
                }
                return Err(error);
            }
            self.commits.send_replace(self.state.next_seq());
        }
        let written = started.elapsed();
        for answer in answers {
            self.answer(answer, &out);
        }
        tracing::debug!(
            entries = out.len(),
            execute_us = executed.as_micros() as u64,
            write_us = (written - executed).as_micros() as u64,
            answer_us = (started.elapsed() - written).as_micros() as u64,
            "group committed"
        );
        Ok(())
    }

    fn execute(
        &mut self,
        request: Request,
        ctx: &Context,
        out: &mut Vec<Journaled>,
    ) -> Option<Pending> {
        let state = &mut self.state;
        Some(match request {
            Request::Tick => return None,
            Request::Currencies { specs, reply } => {
                let results = specs
                    .iter()
                    .map(|s| execute::define_currency(state, s, ctx, out))
                    .collect();
                Pending::Currencies(reply, results)
            }
            Request::Accounts { specs, reply } => {
                let results = specs
                    .iter()
                    .map(|s| execute::open_account(state, s, ctx, out))
                    .collect();
                Pending::Accounts(reply, results)
            }
            Request::CloseAccount { name, reply } => {
                Pending::Close(reply, execute::close_account(state, &name, ctx, out))
            }
            Request::Transactions { items, reply } => {
                let lookup = StoreLookup(&self.store);
                Pending::Transactions(
                    reply,
                    execute::execute_transactions(state, &items, ctx, &lookup, out),
                )
            }
        })
    }

    fn answer(&self, answer: Option<Pending>, group: &[Journaled]) {
        // A requester that went away (timeout, disconnect) is no error here:
        // its writes are durable all the same.
        match answer {
            None => {}
            Some(Pending::Currencies(reply, results)) => drop(reply.send(Ok(results))),
            Some(Pending::Accounts(reply, results)) => drop(reply.send(Ok(results))),
            Some(Pending::Close(reply, result)) => drop(reply.send(Ok(result))),
            Some(Pending::Transactions(reply, outcomes)) => {
                let results = outcomes
                    .into_iter()
                    .map(|outcome| outcome.map(|o| self.recorded_view(o, group)))
                    .collect();
                drop(reply.send(Ok(results)));
            }
        }
    }

    /// The view of a recorded transaction, from the group just written or
    /// (for a retry of an older id) from the store.
    fn recorded_view(
        &self,
        outcome: ItemOutcome,
        group: &[Journaled],
    ) -> Recorded<TransactionView> {
        let first_seq = group.first().map_or(u64::MAX, |j| j.seq);
        let account = |id: AccountId| {
            (id < self.state.account_count()).then(|| {
                let account = self.state.account(id);
                (
                    account.opened.name.clone(),
                    account.opened.currency.clone(),
                    account.scale,
                )
            })
        };
        let view = if outcome.seq >= first_seq {
            let journaled = &group[(outcome.seq - first_seq) as usize];
            debug_assert_eq!(journaled.seq, outcome.seq);
            let tx_ref = transaction_id(&journaled.entry)
                .and_then(|id| self.state.transaction(&id))
                .and_then(TxRef::from_record);
            transaction_view::build(
                journaled.seq,
                journaled.hash,
                &journaled.entry,
                tx_ref.as_ref(),
                &account,
            )
        } else {
            self.store
                .entry(outcome.seq)
                .ok()
                .flatten()
                .and_then(|(hash, entry)| {
                    let tx_ref = transaction_id(&entry)
                        .and_then(|id| self.state.transaction(&id))
                        .and_then(TxRef::from_record);
                    transaction_view::build(outcome.seq, hash, &entry, tx_ref.as_ref(), &account)
                })
        };
        let view = view.expect("a recorded transaction outcome points at a transaction entry");
        Recorded {
            value: view,
            replayed: outcome.replayed,
        }
    }
}

impl Pending {
    fn fail(self, message: &str) {
        let message = message.to_string();
        match self {
            Pending::Currencies(reply, _) => drop(reply.send(Err(message))),
            Pending::Accounts(reply, _) => drop(reply.send(Err(message))),
            Pending::Close(reply, _) => drop(reply.send(Err(message))),
            Pending::Transactions(reply, _) => drop(reply.send(Err(message))),
        }
    }
}

trait Fail {
    fn fail(self, message: &str);
}

impl Fail for Option<Pending> {
    fn fail(self, message: &str) {
        if let Some(pending) = self {
            pending.fail(message);
        }
    }
}

fn transaction_id(entry: &Entry) -> Option<String> {
    use tally_core::entry::EntryBody;
    match &entry.body {
        EntryBody::TransactionRecorded(recorded) => Some(recorded.id.clone()),
        EntryBody::PendingPosted(posted) => Some(posted.id.clone()),
        EntryBody::PendingVoided(voided) => Some(voided.id.clone()),
        _ => None,
    }
}
