//! The `tally.v1.Ledger` gRPC service: converts each request, calls the
//! engine, converts the answer back.
//!
//! Batch calls answer per item; only a problem with the call as a whole (an
//! empty or oversized batch) fails the call. An item that cannot even be
//! converted is answered here and never reaches the engine, and so is every
//! other item of its linked chain, since a chain succeeds or fails as a whole.
//! `CreateTransactionsPacked` takes the same path from a packed batch
//! (`api::packed`, docs/packed-batch.md): decoded items are planned, sent to
//! the engine and merged back exactly as converted protobuf items are.
//! Reads touch the disk, so they run on the blocking pool.

use std::sync::Arc;

use tally_core::error_code::ErrorCode;
use tally_proto::v1 as pb;
use tally_proto::v1::ledger_server::Ledger;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::{internal, ledger_status, status};
use super::{convert, packed};
use crate::engine::{Answer, Engine, ItemResults};
use crate::error::LedgerError;
use crate::ledger::command::{TransactionCommand, TransactionItem};
use crate::ledger::limits::{ACCOUNTS_BATCH_MAX, BATCH_ITEMS_MAX};
use crate::ledger::view::{JournalRecord, Recorded, TransactionView};

/// Journal entries read per disk read while streaming the journal.
pub const JOURNAL_CHUNK_ENTRIES_MAX: usize = 1_024;
/// Entries buffered per journal stream before the reader waits for the client.
const JOURNAL_STREAM_BUFFER_MAX: usize = 256;

/// The Ledger service over one engine.
pub struct LedgerService {
    engine: Arc<Engine>,
    /// Turns true when the server shuts down, which ends journal streams.
    shutdown: watch::Receiver<bool>,
}

impl LedgerService {
    /// `shutdown` ends open `FollowJournal` streams when it turns true, so that
    /// a graceful shutdown does not wait for followers forever.
    pub fn new(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) -> Self {
        LedgerService { engine, shutdown }
    }

    /// Runs a read on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, Status> + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || read(&engine))
            .await
            .map_err(|error| internal("a read task failed", error))?
    }

    /// Sends a plan's engine items (both wires' batches) to the engine; the
    /// results are in the order of `plan.engine_indexes`.
    async fn submit_plan(
        &self,
        plan: &mut TransactionPlan,
        answer: Answer,
    ) -> Result<ItemResults<TransactionView>, Status> {
        let engine_items = std::mem::take(&mut plan.engine_items);
        if engine_items.is_empty() {
            return Ok(Vec::new());
        }
        self.engine
            .create_transactions_answered(engine_items, answer)
            .await
            .map_err(status)
    }

    /// Runs one post or void through the batch path and answers with the
    /// transaction, or with the item's error as the call's status.
    async fn single_item(
        &self,
        item: TransactionItem,
    ) -> Result<Response<pb::Transaction>, Status> {
        let kind_prefix = item.command.field_prefix(0);
        let mut results = self
            .engine
            .create_transactions(vec![item])
            .await
            .map_err(status)?;
        match results.pop() {
            Some(Ok(recorded)) if results.is_empty() => {
                Ok(Response::new(convert::transaction(recorded.value)))
            }
            Some(Err(error)) if results.is_empty() => {
                Err(ledger_status(&relative_to(error, &kind_prefix)))
            }
            _ => Err(internal(
                "single-item batch",
                "the engine did not answer exactly one result",
            )),
        }
    }
}

fn batch_error(code: ErrorCode, field: &str, message: String) -> Status {
    ledger_status(&LedgerError::new(code, field, message))
}

/// Fails the call when a batch is empty or over its limit.
fn check_batch_size(len: usize, max: usize, field: &str) -> Result<(), Status> {
    if len == 0 {
        return Err(batch_error(
            ErrorCode::BatchEmpty,
            field,
            format!("{field} must hold at least one item"),
        ));
    }
    if len > max {
        return Err(batch_error(
            ErrorCode::BatchTooLarge,
            field,
            format!("{field} holds {len} items; the maximum is {max}"),
        ));
    }
    Ok(())
}

/// The error with its field path made relative to `prefix` (used to answer a
/// unary call with the path inside its own request).
fn relative_to(mut error: LedgerError, prefix: &str) -> LedgerError {
    if let Some(rest) = error.field.strip_prefix(prefix) {
        error.field = rest.strip_prefix('.').unwrap_or(rest).to_string();
    }
    error
}

/// The error's field put at `collection[index]`: a leading `collection[k]`
/// (the engine's own numbering of what it was sent) is renumbered, otherwise
/// the prefix is added.
fn at_index(mut error: LedgerError, collection: &str, index: usize) -> LedgerError {
    let prefix = format!("{collection}[");
    if let Some(after) = error.field.strip_prefix(&prefix) {
        if let Some(close) = after.find(']') {
            if after[..close].bytes().all(|b| b.is_ascii_digit()) {
                error.field = format!("{collection}[{index}]{}", &after[close + 1..]);
                return error;
            }
        }
    }
    error.within(&format!("{collection}[{index}]"))
}

// ---------------------------------------------------------------------------
// Transaction batches: what the edge answers itself, what goes to the engine.
// ---------------------------------------------------------------------------

fn linked_item_failed(index: usize, culprit: usize) -> LedgerError {
    LedgerError::new(
        ErrorCode::LinkedItemFailed,
        format!("items[{index}]"),
        format!("not applied: item {culprit} of the same linked chain failed"),
    )
}

fn linked_chain_open(index: usize) -> LedgerError {
    LedgerError::new(
        ErrorCode::LinkedChainOpen,
        format!("items[{index}].linked"),
        "the last item of a batch cannot be linked: the chain has no end",
    )
}

/// Ranges of request indexes that form linked chains (a single unlinked item is
/// a chain of one). The last range is open when the batch's last item is linked.
fn chains(linked: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for (index, &is_linked) in linked.iter().enumerate() {
        if !is_linked {
            ranges.push(start..index + 1);
            start = index + 1;
        }
    }
    if start < linked.len() {
        ranges.push(start..linked.len());
    }
    ranges
}

/// A transaction batch split between the edge and the engine.
#[derive(Debug)]
struct TransactionPlan {
    /// Whether each request item is linked to the next.
    linked: Vec<bool>,
    /// Errors decided here, by request index.
    answered: Vec<Option<LedgerError>>,
    /// The request index of each item sent to the engine, in order.
    engine_indexes: Vec<usize>,
    engine_items: Vec<TransactionItem>,
}

fn plan_transactions(items: Vec<pb::TransactionItem>) -> TransactionPlan {
    let linked: Vec<bool> = items.iter().map(|item| item.linked).collect();
    let converted = crate::parallel::map_indexed(items, |index, item| {
        convert::transaction_item(item).map_err(|e| e.within(&format!("items[{index}]")))
    });
    plan_items(linked, converted)
}

/// The plan of a packed batch: its items are decoded already, with errors
/// relative to the item, as `convert::transaction_item` gives them.
fn plan_packed(items: Vec<packed::DecodedItem>) -> TransactionPlan {
    let linked: Vec<bool> = items.iter().map(|item| item.linked).collect();
    let converted = items
        .into_iter()
        .enumerate()
        .map(|(index, decoded)| {
            decoded
                .item
                .map_err(|e| e.within(&format!("items[{index}]")))
        })
        .collect();
    plan_items(linked, converted)
}

/// Splits converted items between the edge and the engine: an item that failed
/// conversion is answered here, and so is the rest of its linked chain.
fn plan_items(
    linked: Vec<bool>,
    converted: Vec<Result<TransactionItem, LedgerError>>,
) -> TransactionPlan {
    // Per request index: the first failed item of its chain, and whether the
    // chain is the batch's open (unterminated) tail.
    let mut fate: Vec<(Option<usize>, bool)> = vec![(None, false); linked.len()];
    let open_end = linked.last().copied().unwrap_or(false);
    for chain in chains(&linked) {
        let culprit = chain.clone().find(|&index| converted[index].is_err());
        let is_open = open_end && chain.end == linked.len();
        for index in chain {
            fate[index] = (culprit, is_open);
        }
    }
    let mut plan = TransactionPlan {
        answered: vec![None; linked.len()],
        engine_indexes: Vec::new(),
        engine_items: Vec::new(),
        linked,
    };
    for (index, result) in converted.into_iter().enumerate() {
        let (culprit, is_open) = fate[index];
        match (result, culprit) {
            (Err(error), _) => plan.answered[index] = Some(error),
            (Ok(_), Some(_)) if is_open => plan.answered[index] = Some(linked_chain_open(index)),
            (Ok(_), Some(culprit)) => {
                plan.answered[index] = Some(linked_item_failed(index, culprit))
            }
            (Ok(item), None) => {
                plan.engine_indexes.push(index);
                plan.engine_items.push(item);
            }
        }
    }
    plan
}

/// One outcome per request item, in order.
type Outcomes = Vec<Result<Recorded<TransactionView>, LedgerError>>;

/// The engine's results and the edge's answers as protobuf results.
fn merge_transaction_results(
    plan: TransactionPlan,
    engine_results: ItemResults<TransactionView>,
) -> Result<Vec<pb::TransactionResult>, Status> {
    let outcomes = merge_outcomes(plan, engine_results)?;
    Ok(crate::parallel::map_indexed(outcomes, transaction_result))
}

/// Puts the engine's results back at their request indexes, with field paths
/// (and linked-chain culprits) renumbered to the request's.
fn merge_outcomes(
    plan: TransactionPlan,
    engine_results: ItemResults<TransactionView>,
) -> Result<Outcomes, Status> {
    if engine_results.len() != plan.engine_indexes.len() {
        return Err(internal(
            "transaction batch",
            format!(
                "the engine answered {} results for {} items",
                engine_results.len(),
                plan.engine_indexes.len()
            ),
        ));
    }
    let renumbered = plan.engine_indexes.iter().enumerate().any(|(k, &i)| k != i);
    let culprits = renumbered.then(|| engine_culprits(&plan, &engine_results));
    let mut outcomes: Vec<Option<Result<Recorded<TransactionView>, LedgerError>>> = plan
        .answered
        .into_iter()
        .map(|answer| answer.map(Err))
        .collect();
    for (k, result) in engine_results.into_iter().enumerate() {
        let index = plan.engine_indexes[k];
        let result =
            result.map_err(
                |error| match culprits.as_ref().and_then(|culprits| culprits[k]) {
                    Some(culprit) if error.code == ErrorCode::LinkedItemFailed => {
                        linked_item_failed(index, culprit)
                    }
                    _ => at_index(error, "items", index),
                },
            );
        outcomes[index] = Some(result);
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| {
            outcome
                .ok_or_else(|| internal("transaction batch", format!("item {index} got no result")))
        })
        .collect()
}

/// For each engine item, the request index of the item that failed its chain
/// (the first error in the chain that is not itself LINKED_ITEM_FAILED).
fn engine_culprits(
    plan: &TransactionPlan,
    engine_results: &ItemResults<TransactionView>,
) -> Vec<Option<usize>> {
    let engine_linked: Vec<bool> = plan
        .engine_indexes
        .iter()
        .map(|&i| plan.linked[i])
        .collect();
    let mut culprits = vec![None; engine_results.len()];
    for chain in chains(&engine_linked) {
        let culprit = chain.clone().find(|&k| {
            matches!(&engine_results[k], Err(error) if error.code != ErrorCode::LinkedItemFailed)
        });
        for k in chain {
            culprits[k] = culprit.map(|c| plan.engine_indexes[c]);
        }
    }
    culprits
}

fn result_index(index: usize) -> u32 {
    // Batches are at most BATCH_ITEMS_MAX items, far below u32::MAX.
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn transaction_result(
    index: usize,
    outcome: Result<Recorded<TransactionView>, LedgerError>,
) -> pb::TransactionResult {
    use pb::transaction_result::Outcome;
    let (outcome, replayed) = match outcome {
        Ok(recorded) => (
            Outcome::Transaction(convert::transaction(recorded.value)),
            recorded.replayed,
        ),
        Err(error) => (Outcome::Error(convert::error_detail(&error)), false),
    };
    pb::TransactionResult {
        index: result_index(index),
        outcome: Some(outcome),
        replayed,
    }
}

// ---------------------------------------------------------------------------
// Journal streaming.
// ---------------------------------------------------------------------------

type JournalSender = mpsc::Sender<Result<pb::JournalEntry, Status>>;

/// Resolves when the server shuts down (never, if nobody can signal it).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn read_journal(engine: &Arc<Engine>, from_seq: u64) -> Result<Vec<JournalRecord>, Status> {
    engine
        .journal(from_seq, JOURNAL_CHUNK_ENTRIES_MAX)
        .map_err(status)
}

async fn read_journal_blocking(
    engine: &Arc<Engine>,
    from_seq: u64,
) -> Result<Vec<JournalRecord>, Status> {
    let engine = Arc::clone(engine);
    tokio::task::spawn_blocking(move || read_journal(&engine, from_seq))
        .await
        .map_err(|error| internal("a journal read task failed", error))?
}

/// Sends a chunk; returns the next seq to read, or `None` when the client left.
async fn send_chunk(tx: &JournalSender, chunk: Vec<JournalRecord>, mut next: u64) -> Option<u64> {
    for record in chunk {
        next = record.seq + 1;
        let entry = convert::journal_entry(record)
            .map_err(|error| internal("encoding a journal entry as JSON", error));
        let failed = entry.is_err();
        tx.send(entry).await.ok()?;
        if failed {
            return None;
        }
    }
    Some(next)
}

/// Waits until the journal is longer than `next`; false when the stream should
/// end instead (client gone, server stopping, engine gone).
async fn wait_for_commits(
    commits: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
    tx: &JournalSender,
    next: u64,
) -> bool {
    loop {
        if *commits.borrow_and_update() > next {
            return true;
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return false },
            () = shutdown_requested(shutdown) => return false,
            () = tx.closed() => return false,
        }
    }
}

/// Streams the journal from `next`, starting with an already read `chunk`.
async fn stream_journal(
    engine: Arc<Engine>,
    mut chunk: Vec<JournalRecord>,
    mut next: u64,
    follow: bool,
    mut commits: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
    tx: JournalSender,
) {
    loop {
        let caught_up = chunk.len() < JOURNAL_CHUNK_ENTRIES_MAX;
        let Some(after) = send_chunk(&tx, chunk, next).await else {
            return;
        };
        next = after;
        if *shutdown.borrow() {
            return;
        }
        if caught_up && (!follow || !wait_for_commits(&mut commits, &mut shutdown, &tx, next).await)
        {
            return;
        }
        chunk = match read_journal_blocking(&engine, next).await {
            Ok(chunk) => chunk,
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return;
            }
        };
    }
}

// ---------------------------------------------------------------------------
// The RPCs.
// ---------------------------------------------------------------------------

#[tonic::async_trait]
impl Ledger for LedgerService {
    async fn get_ledger_info(
        &self,
        _request: Request<pb::GetLedgerInfoRequest>,
    ) -> Result<Response<pb::LedgerInfo>, Status> {
        let info = self
            .read(|engine| engine.ledger_info().map_err(status))
            .await?;
        Ok(Response::new(convert::ledger_info(info)))
    }

    async fn create_currencies(
        &self,
        request: Request<pb::CreateCurrenciesRequest>,
    ) -> Result<Response<pb::CreateCurrenciesResponse>, Status> {
        use pb::currency_result::Outcome;
        let currencies = request.into_inner().currencies;
        check_batch_size(currencies.len(), ACCOUNTS_BATCH_MAX, "currencies")?;
        let specs = currencies.into_iter().map(convert::currency_spec).collect();
        let results = self.engine.create_currencies(specs).await.map_err(status)?;
        let results = results
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok(recorded) => pb::CurrencyResult {
                    index: result_index(index),
                    outcome: Some(Outcome::Currency(convert::currency(recorded.value))),
                    existed: recorded.replayed,
                },
                Err(error) => pb::CurrencyResult {
                    index: result_index(index),
                    outcome: Some(Outcome::Error(convert::error_detail(&at_index(
                        error,
                        "currencies",
                        index,
                    )))),
                    existed: false,
                },
            })
            .collect();
        Ok(Response::new(pb::CreateCurrenciesResponse { results }))
    }

    async fn list_currencies(
        &self,
        _request: Request<pb::ListCurrenciesRequest>,
    ) -> Result<Response<pb::ListCurrenciesResponse>, Status> {
        let currencies = self
            .read(|engine| engine.list_currencies().map_err(status))
            .await?;
        Ok(Response::new(pb::ListCurrenciesResponse {
            currencies: currencies.into_iter().map(convert::currency).collect(),
        }))
    }

    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsResponse>, Status> {
        use pb::account_result::Outcome;
        let accounts = request.into_inner().accounts;
        check_batch_size(accounts.len(), ACCOUNTS_BATCH_MAX, "accounts")?;
        let mut outcomes: Vec<Option<Result<_, LedgerError>>> = Vec::with_capacity(accounts.len());
        let (mut engine_indexes, mut specs) = (Vec::new(), Vec::new());
        for (index, spec) in accounts.into_iter().enumerate() {
            match convert::account_spec(spec) {
                Ok(spec) => {
                    engine_indexes.push(index);
                    specs.push(spec);
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(at_index(error, "accounts", index)))),
            }
        }
        if !specs.is_empty() {
            let results = self.engine.create_accounts(specs).await.map_err(status)?;
            if results.len() != engine_indexes.len() {
                return Err(internal(
                    "account batch",
                    "the engine answered a different number of results",
                ));
            }
            for (result, &index) in results.into_iter().zip(&engine_indexes) {
                outcomes[index] = Some(result.map_err(|error| at_index(error, "accounts", index)));
            }
        }
        let results = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                Some(Ok(recorded)) => pb::AccountResult {
                    index: result_index(index),
                    outcome: Some(Outcome::Account(convert::account(recorded.value))),
                    existed: recorded.replayed,
                },
                Some(Err(error)) => pb::AccountResult {
                    index: result_index(index),
                    outcome: Some(Outcome::Error(convert::error_detail(&error))),
                    existed: false,
                },
                None => pb::AccountResult {
                    index: result_index(index),
                    outcome: Some(Outcome::Error(convert::error_detail(&LedgerError::new(
                        ErrorCode::Internal,
                        format!("accounts[{index}]"),
                        "no result",
                    )))),
                    existed: false,
                },
            })
            .collect();
        Ok(Response::new(pb::CreateAccountsResponse { results }))
    }

    async fn close_account(
        &self,
        request: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let name = request.into_inner().name;
        let account = self.engine.close_account(name).await.map_err(status)?;
        Ok(Response::new(convert::account(account)))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let name = request.into_inner().name;
        let account = self
            .read(move |engine| engine.get_account(&name).map_err(status))
            .await?;
        Ok(Response::new(convert::account(account)))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let request = request.into_inner();
        let page_size = convert::page_size(request.page_size, "page_size")?;
        let page_token = convert::page_token(request.page_token);
        let prefix = request.prefix;
        let page = self
            .read(move |engine| {
                engine
                    .list_accounts(&prefix, page_size, page_token.as_deref())
                    .map_err(status)
            })
            .await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: page.items.into_iter().map(convert::account).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn create_transactions(
        &self,
        request: Request<pb::CreateTransactionsRequest>,
    ) -> Result<Response<pb::CreateTransactionsResponse>, Status> {
        let pb::CreateTransactionsRequest { items, brief } = request.into_inner();
        check_batch_size(items.len(), BATCH_ITEMS_MAX, "items")?;
        let started = std::time::Instant::now();
        let mut plan = plan_transactions(items);
        let planned = started.elapsed();
        let answer = if brief { Answer::Brief } else { Answer::Full };
        let engine_results = self.submit_plan(&mut plan, answer).await?;
        let engine_done = started.elapsed();
        let results = merge_transaction_results(plan, engine_results)?;
        tracing::debug!(
            plan_us = planned.as_micros() as u64,
            engine_us = (engine_done - planned).as_micros() as u64,
            merge_us = (started.elapsed() - engine_done).as_micros() as u64,
            "transaction batch answered"
        );
        Ok(Response::new(pb::CreateTransactionsResponse { results }))
    }

    async fn create_transactions_packed(
        &self,
        request: Request<pb::PackedTransactionsRequest>,
    ) -> Result<Response<pb::PackedTransactionsResponse>, Status> {
        let pb::PackedTransactionsRequest { batch } = request.into_inner();
        let started = std::time::Instant::now();
        let decoded = packed::decode_batch(&batch)
            .map_err(|error| ledger_status(&error.to_ledger_error()))?;
        drop(batch);
        let mut plan = plan_packed(decoded);
        let planned = started.elapsed();
        let engine_results = self.submit_plan(&mut plan, Answer::Brief).await?;
        let engine_done = started.elapsed();
        let outcomes = merge_outcomes(plan, engine_results)?;
        let results = packed::encode_results(&outcomes);
        tracing::debug!(
            plan_us = planned.as_micros() as u64,
            engine_us = (engine_done - planned).as_micros() as u64,
            merge_us = (started.elapsed() - engine_done).as_micros() as u64,
            "packed transaction batch answered"
        );
        Ok(Response::new(pb::PackedTransactionsResponse {
            results: results.into(),
        }))
    }

    async fn post_pending(
        &self,
        request: Request<pb::PostPendingSpec>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let spec = convert::post_pending_spec(request.into_inner())?;
        self.single_item(TransactionItem {
            command: TransactionCommand::PostPending(spec),
            linked: false,
        })
        .await
    }

    async fn void_pending(
        &self,
        request: Request<pb::VoidPendingSpec>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let spec = convert::void_pending_spec(request.into_inner());
        self.single_item(TransactionItem {
            command: TransactionCommand::VoidPending(spec),
            linked: false,
        })
        .await
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let id = request.into_inner().id;
        let transaction = self
            .read(move |engine| engine.get_transaction(&id).map_err(status))
            .await?;
        Ok(Response::new(convert::transaction(transaction)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let request = request.into_inner();
        let from = convert::optional_timestamp_ns(request.from.as_ref(), "from")?;
        let to = convert::optional_timestamp_ns(request.to.as_ref(), "to")?;
        let page_size = convert::page_size(request.page_size, "page_size")?;
        let page_token = convert::page_token(request.page_token);
        let account = (!request.account.is_empty()).then_some(request.account);
        let page = self
            .read(move |engine| {
                engine
                    .list_transactions(
                        account.as_deref(),
                        from,
                        to,
                        page_size,
                        page_token.as_deref(),
                    )
                    .map_err(status)
            })
            .await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: page.items.into_iter().map(convert::transaction).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_balances(
        &self,
        request: Request<pb::GetBalancesRequest>,
    ) -> Result<Response<pb::GetBalancesResponse>, Status> {
        let request = request.into_inner();
        let as_of = convert::as_of(request.as_of, "as_of")?;
        let accounts = request.accounts;
        let (balances, as_of_seq) = self
            .read(move |engine| engine.balances(&accounts, as_of).map_err(status))
            .await?;
        Ok(Response::new(pb::GetBalancesResponse {
            balances: balances.into_iter().map(convert::account_balance).collect(),
            as_of_seq,
        }))
    }

    async fn get_account_history(
        &self,
        request: Request<pb::GetAccountHistoryRequest>,
    ) -> Result<Response<pb::GetAccountHistoryResponse>, Status> {
        let request = request.into_inner();
        let page_size = convert::page_size(request.page_size, "page_size")?;
        let page_token = convert::page_token(request.page_token);
        let name = request.account;
        let (account, opening, page) = self
            .read(move |engine| {
                // The account gives the type and scale the changes are shown in.
                let account = engine.get_account(&name).map_err(status)?;
                let (opening, page) = engine
                    .account_history(&name, page_size, page_token.as_deref())
                    .map_err(status)?;
                Ok((account, opening, page))
            })
            .await?;
        let (account_type, scale) = (account.account_type, account.scale);
        Ok(Response::new(pb::GetAccountHistoryResponse {
            opening: Some(convert::balance(&opening, account_type, scale)),
            changes: page
                .items
                .into_iter()
                .map(|change| convert::balance_change(change, account_type, scale))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_trial_balance(
        &self,
        request: Request<pb::GetTrialBalanceRequest>,
    ) -> Result<Response<pb::TrialBalance>, Status> {
        let request = request.into_inner();
        let as_of = convert::as_of(request.as_of, "as_of")?;
        let depth = usize::try_from(request.depth).unwrap_or(usize::MAX);
        let prefix = request.prefix;
        let currency = (!request.currency.is_empty()).then_some(request.currency);
        let trial = self
            .read(move |engine| {
                engine
                    .trial_balance(as_of, depth, &prefix, currency.as_deref())
                    .map_err(status)
            })
            .await?;
        Ok(Response::new(convert::trial_balance(trial)))
    }

    type FollowJournalStream = ReceiverStream<Result<pb::JournalEntry, Status>>;

    async fn follow_journal(
        &self,
        request: Request<pb::FollowJournalRequest>,
    ) -> Result<Response<Self::FollowJournalStream>, Status> {
        let pb::FollowJournalRequest { from_seq, follow } = request.into_inner();
        let length = self
            .engine
            .ledger_info()
            .map_err(Status::from)?
            .journal_length;
        if from_seq > length {
            return Err(ledger_status(&LedgerError::new(
                ErrorCode::SeqOutOfRange,
                "from_seq",
                format!("from_seq {from_seq} is past the journal's end ({length} entries)"),
            )));
        }
        // Watch before the first read, so that no commit between the two is missed.
        let commits = self.engine.watch_commits();
        // The first read happens before the stream starts, so that a bad
        // `from_seq` fails the call rather than the stream.
        let chunk = read_journal_blocking(&self.engine, from_seq).await?;
        let (tx, rx) = mpsc::channel(JOURNAL_STREAM_BUFFER_MAX);
        tokio::spawn(stream_journal(
            Arc::clone(&self.engine),
            chunk,
            from_seq,
            follow,
            commits,
            self.shutdown.clone(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn void_item(id: &str, linked: bool) -> pb::TransactionItem {
        pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::VoidPending(
                pb::VoidPendingSpec {
                    id: id.to_string(),
                    pending_id: "p".to_string(),
                    reason: String::new(),
                },
            )),
            linked,
        }
    }

    fn bad_item(linked: bool) -> pb::TransactionItem {
        pb::TransactionItem { kind: None, linked }
    }

    fn codes(plan: &TransactionPlan) -> Vec<Option<ErrorCode>> {
        plan.answered
            .iter()
            .map(|answer| answer.as_ref().map(|error| error.code))
            .collect()
    }

    fn view(id: &str) -> TransactionView {
        TransactionView {
            id: id.to_string(),
            kind: crate::ledger::view::TransactionKind::VoidPending,
            seq: 1,
            postings: vec![],
            effective_at: 0,
            recorded_at: 0,
            description: String::new(),
            metadata: Default::default(),
            pending_id: Some("p".to_string()),
            reverses_id: None,
            pending_state: None,
            expires_at: None,
            resolved_by: None,
            reversed_by: None,
            entry_hash: [0; 32],
        }
    }

    fn recorded(id: &str) -> Result<Recorded<TransactionView>, LedgerError> {
        Ok(Recorded {
            value: view(id),
            replayed: false,
        })
    }

    #[test]
    fn chains_are_maximal_linked_runs() {
        // Goal: a chain ends at its first unlinked item; a linked tail stays open.
        assert_eq!(chains(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(chains(&[false, true, false, false]), vec![0..1, 1..3, 3..4]);
        assert_eq!(chains(&[false, true, true]), vec![0..1, 1..3]);
    }

    #[test]
    fn a_bad_item_fails_its_chain_and_nothing_else() {
        // Goal: items 1-3 form a chain with a malformed item 2; they all fail
        // here, and only items 0 and 4 go to the engine, in order.
        let plan = plan_transactions(vec![
            void_item("a", false),
            void_item("b", true),
            bad_item(true),
            void_item("d", false),
            void_item("e", false),
        ]);
        assert_eq!(plan.engine_indexes, vec![0, 4]);
        assert_eq!(plan.engine_items.len(), 2);
        assert_eq!(plan.engine_items[1].command.id(), "e");
        assert_eq!(
            codes(&plan),
            vec![
                None,
                Some(ErrorCode::LinkedItemFailed),
                Some(ErrorCode::FieldRequired),
                Some(ErrorCode::LinkedItemFailed),
                None
            ]
        );
        let bad = plan.answered[2].as_ref().unwrap();
        assert_eq!(bad.field, "items[2].kind");
        let mate = plan.answered[3].as_ref().unwrap();
        assert_eq!(mate.field, "items[3]");
        assert!(mate.message.contains("item 2"), "{}", mate.message);
    }

    #[test]
    fn an_open_chain_with_a_bad_item_reports_the_open_chain() {
        // Goal: like the engine, the good items of an unterminated chain get
        // LINKED_CHAIN_OPEN; the bad one keeps its own error.
        let plan = plan_transactions(vec![void_item("a", true), bad_item(true)]);
        assert!(plan.engine_items.is_empty());
        assert_eq!(
            codes(&plan),
            vec![
                Some(ErrorCode::LinkedChainOpen),
                Some(ErrorCode::FieldRequired)
            ]
        );
    }

    #[test]
    fn engine_results_are_put_back_at_request_indexes() {
        // Goal: after items were held back, the engine's errors name the request's
        // indexes, including the culprit of a chain failure.
        let plan = plan_transactions(vec![
            bad_item(false),
            void_item("b", true),
            void_item("c", false),
            void_item("d", false),
        ]);
        assert_eq!(plan.engine_indexes, vec![1, 2, 3]);
        let engine_results = vec![
            Err(LedgerError::new(
                ErrorCode::LinkedItemFailed,
                "items[0]",
                "not applied: item 1 of the same linked chain failed",
            )),
            Err(LedgerError::new(
                ErrorCode::NotPending,
                "items[1].void_pending.pending_id",
                "p is not pending",
            )),
            recorded("d"),
        ];
        let results = merge_transaction_results(plan, engine_results).unwrap();
        assert_eq!(results.len(), 4);
        for (index, result) in results.iter().enumerate() {
            assert_eq!(result.index as usize, index);
        }
        let error = |index: usize| match &results[index].outcome {
            Some(pb::transaction_result::Outcome::Error(error)) => error.clone(),
            other => panic!("item {index}: {other:?}"),
        };
        assert_eq!(error(0).field, "items[0].kind");
        assert_eq!(error(1).field, "items[1]");
        assert_eq!(
            error(1).message,
            "not applied: item 2 of the same linked chain failed"
        );
        assert_eq!(error(2).field, "items[2].void_pending.pending_id");
        assert!(matches!(
            &results[3].outcome,
            Some(pb::transaction_result::Outcome::Transaction(t)) if t.id == "d"
        ));
    }

    #[test]
    fn a_short_engine_answer_is_an_internal_error() {
        // Goal: a result count mismatch never panics or misplaces answers.
        let plan = plan_transactions(vec![void_item("a", false)]);
        let status = merge_transaction_results(plan, Vec::new()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[test]
    fn batch_sizes_are_checked() {
        // Goal: empty and oversized batches fail the whole call with the right codes.
        assert_eq!(
            check_batch_size(0, 10, "items").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            check_batch_size(11, 10, "items").unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        assert!(check_batch_size(10, 10, "items").is_ok());
    }

    #[test]
    fn field_paths_are_renumbered_or_prefixed() {
        // Goal: engine paths move to the request's index; relative paths get one.
        let error = LedgerError::new(ErrorCode::FieldInvalid, "items[0].linked", "m");
        assert_eq!(at_index(error, "items", 7).field, "items[7].linked");
        let error = LedgerError::new(ErrorCode::AccountExists, "name", "m");
        assert_eq!(at_index(error, "accounts", 2).field, "accounts[2].name");
        let error = LedgerError::new(ErrorCode::AccountExists, "", "m");
        assert_eq!(at_index(error, "accounts", 2).field, "accounts[2]");
        let error = LedgerError::new(
            ErrorCode::NotPending,
            "items[0].void_pending.pending_id",
            "m",
        );
        assert_eq!(
            relative_to(error, "items[0].void_pending").field,
            "pending_id"
        );
    }
}
