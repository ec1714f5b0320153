//! Commands in, journal entries out: validation against the ledger's state.
//!
//! Each function either appends entries to `out` (through
//! `LedgerState::append`, which applies them) or refuses with a `LedgerError`
//! and changes nothing. A transaction refused for a reason that depends on the
//! ledger's state is recorded as a `TransactionRejected` entry, so that a retry
//! of its id gets the same failure and never a later success.

use super::command::{
    AccountSpec, ApiKeySpec, CurrencySpec, PostPendingSpec, PreparedItem, ReverseSpec,
    TransactionCommand, TransactionSpec, VoidPendingSpec,
};
use super::state::{Journaled, LedgerState, TxOutcome};
use super::validate;
use super::view::{Balance, PendingState, TransactionKind};
use crate::error::LedgerError;
use rust_decimal::Decimal;
use tally_core::entry::{
    AccountId, AccountOpened, ApiKeyCreated, BalanceConstraint, Digest, Entry, EntryBody,
    PendingPosted, PendingVoided, Posting, Side, TimestampNs, TransactionMode, TransactionRecorded,
    TransactionRejected,
};
use tally_core::error_code::ErrorCode;
use tally_core::money::{self, AmountError, AMOUNT_MINOR_MAX};

/// The writer's view of "now" and of who is asking, injected so that the
/// logic reads no clock.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: TimestampNs,
    pub key_id: String,
}

/// Finds the postings of an earlier transaction entry (for reversals): the
/// writer looks in the current group first, then on disk.
pub trait EntryLookup {
    fn entry(&self, seq: u64) -> Option<Entry>;
}

/// A transaction item that was recorded (or had been, for a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemOutcome {
    pub seq: u64,
    pub replayed: bool,
}

/// Why an item was refused: for its shape (not recorded), or for the ledger's
/// state (recorded, so that the answer is stable).
enum Refusal {
    Input(LedgerError),
    /// With the request's digest, for its `TransactionRejected` entry.
    State(LedgerError, Digest),
}

/// Appends an entry made at `ctx`'s time by its key; answers its seq.
pub(crate) fn append(
    state: &mut LedgerState,
    ctx: &Context,
    body: EntryBody,
    out: &mut Vec<Journaled>,
) -> u64 {
    let recorded_at = state.next_recorded_at(ctx.now);
    let journaled = state.append(Entry {
        recorded_at,
        key_id: ctx.key_id.clone(),
        body,
    });
    let seq = journaled.seq;
    out.push(journaled);
    seq
}

// ---- currencies and accounts ------------------------------------------------

/// Defines a currency; `Ok(true)` if it existed with the same scale.
pub fn define_currency(
    state: &mut LedgerState,
    spec: &CurrencySpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<bool, LedgerError> {
    validate::currency_spec(spec)?;
    let scale = spec.scale as u8;
    match state.currency_scale(&spec.code) {
        Some(existing) if existing == scale => Ok(true),
        Some(existing) => Err(LedgerError::new(
            ErrorCode::CurrencyExists,
            "scale",
            format!("currency {} exists with scale {existing}", spec.code),
        )),
        None => {
            append(
                state,
                ctx,
                EntryBody::CurrencyDefined {
                    code: spec.code.clone(),
                    scale,
                },
                out,
            );
            Ok(false)
        }
    }
}

/// Opens an account; returns its id and whether it existed (same fields).
pub fn open_account(
    state: &mut LedgerState,
    spec: &AccountSpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(AccountId, bool), LedgerError> {
    validate::account_spec(spec)?;
    if state.currency_scale(&spec.currency).is_none() {
        return Err(LedgerError::new(
            ErrorCode::CurrencyUnknown,
            "currency",
            format!("currency {} is not defined", spec.currency),
        ));
    }
    if let Some(id) = state.account_id(&spec.name) {
        let existing = &state.account(id).opened;
        let same = existing.account_type == spec.account_type
            && existing.currency == spec.currency
            && existing.constraint == spec.constraint
            && existing.metadata == spec.metadata;
        if !same {
            return Err(LedgerError::new(
                ErrorCode::AccountExists,
                "name",
                format!("account {} exists with other fields", spec.name),
            ));
        }
        return Ok((id, true));
    }
    let account_id = state.account_count();
    let opened = AccountOpened {
        account_id,
        name: spec.name.clone(),
        account_type: spec.account_type,
        currency: spec.currency.clone(),
        constraint: spec.constraint,
        metadata: spec.metadata.clone(),
    };
    append(state, ctx, EntryBody::AccountOpened(opened), out);
    Ok((account_id, false))
}

/// Closes an account with no balance and no pending amounts.
pub fn close_account(
    state: &mut LedgerState,
    name: &str,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<AccountId, LedgerError> {
    validate::account_name("name", name)?;
    let id = state.account_id(name).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::AccountNotFound,
            "name",
            format!("no account {name}"),
        )
    })?;
    let account = state.account(id);
    if account.closed {
        return Ok(id);
    }
    let balance = account.balance;
    if balance.debits_pending != 0
        || balance.credits_pending != 0
        || balance.debits_posted != balance.credits_posted
    {
        return Err(LedgerError::new(
            ErrorCode::AccountNotEmpty,
            "name",
            format!("account {name} has a balance or pending amounts"),
        ));
    }
    append(state, ctx, EntryBody::AccountClosed { account_id: id }, out);
    Ok(id)
}

// ---- api keys ---------------------------------------------------------------

/// Records a new API key; answers the seq of its entry.
pub fn create_api_key(
    state: &mut LedgerState,
    spec: &ApiKeySpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<u64, LedgerError> {
    validate::id("name", &spec.name)?;
    if state.api_key(&spec.key_id).is_some() {
        // A random 64-bit id collided: the caller makes a new token.
        return Err(LedgerError::new(
            ErrorCode::Internal,
            "",
            "api key id collision; try again",
        ));
    }
    let created = ApiKeyCreated {
        key_id: spec.key_id.clone(),
        name: spec.name.clone(),
        role: spec.role,
        read_only: spec.read_only,
        secret_hash: spec.secret_hash,
    };
    Ok(append(state, ctx, EntryBody::ApiKeyCreated(created), out))
}

/// Revokes an API key; answers the seq of the revocation (the earlier one if
/// it was revoked already: revoking is idempotent).
pub fn revoke_api_key(
    state: &mut LedgerState,
    key_id: &str,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<u64, LedgerError> {
    let key = state.api_key(key_id).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::ApiKeyNotFound,
            "key_id",
            format!("no api key {key_id:?}"),
        )
    })?;
    if let Some(seq) = key.revoked_seq {
        return Ok(seq);
    }
    let body = EntryBody::ApiKeyRevoked {
        key_id: key_id.to_string(),
    };
    Ok(append(state, ctx, body, out))
}

/// Rotates a live API key: records `successor` (which takes the old key's
/// name, role and restriction) and revokes the old key, both or neither.
/// Answers the seq of the new key's entry.
pub fn rotate_api_key(
    state: &mut LedgerState,
    key_id: &str,
    mut successor: ApiKeySpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<u64, LedgerError> {
    let old = state.api_key(key_id).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::ApiKeyNotFound,
            "key_id",
            format!("no api key {key_id:?}"),
        )
    })?;
    if old.revoked_seq.is_some() {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "key_id",
            format!("api key {key_id} is revoked; create a new key instead"),
        ));
    }
    successor.name = old.name.clone();
    successor.role = old.role;
    successor.read_only = old.read_only;
    // Both checks above passed and the new id is checked first, so the two
    // appends below cannot be refused half-way.
    let seq = create_api_key(state, &successor, ctx, out)?;
    revoke_api_key(state, key_id, ctx, out)?;
    Ok(seq)
}

/// Appends a `PendingExpired` entry for every pending transaction whose
/// timeout has passed.
pub fn expire_pending(state: &mut LedgerState, ctx: &Context, out: &mut Vec<Journaled>) {
    for pending_id in state.expired_pending(ctx.now) {
        append(state, ctx, EntryBody::PendingExpired { pending_id }, out);
    }
}

// ---- transaction batches ------------------------------------------------------

/// Executes a batch in order. Linked chains (items with `linked`, up to and
/// including the first item without it) succeed or fail as a whole.
pub fn execute_transactions(
    state: &mut LedgerState,
    items: &[PreparedItem],
    ctx: &Context,
    lookup: &dyn EntryLookup,
    out: &mut Vec<Journaled>,
) -> Vec<Result<ItemOutcome, LedgerError>> {
    let mut results: Vec<Result<ItemOutcome, LedgerError>> = Vec::with_capacity(items.len());
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        while end < items.len() && items[end].item.linked {
            end += 1;
        }
        if end == items.len() {
            for index in start..items.len() {
                results.push(Err(LedgerError::new(
                    ErrorCode::LinkedChainOpen,
                    format!("items[{index}].linked"),
                    "the last item of a batch cannot be linked: the chain has no end",
                )));
            }
            break;
        }
        if start == end {
            let result = execute_item(state, &items[start], ctx, lookup, out);
            results.push(settle(state, &items[start], start, result, ctx, out));
        } else {
            execute_chain(
                state,
                &items[start..=end],
                start,
                ctx,
                lookup,
                out,
                &mut results,
            );
        }
        start = end + 1;
    }
    debug_assert_eq!(results.len(), items.len());
    results
}

fn execute_chain(
    state: &mut LedgerState,
    chain: &[PreparedItem],
    first_index: usize,
    ctx: &Context,
    lookup: &dyn EntryLookup,
    out: &mut Vec<Journaled>,
    results: &mut Vec<Result<ItemOutcome, LedgerError>>,
) {
    let out_len = out.len();
    state.begin_chain();
    let mut outcomes = Vec::with_capacity(chain.len());
    for item in chain {
        match execute_item(state, item, ctx, lookup, out) {
            Ok(outcome) => outcomes.push(outcome),
            Err(refusal) => {
                // Undo the chain, then answer: the culprit its own error (recorded
                // if it is a state refusal), every other item LINKED_ITEM_FAILED.
                state.rollback_chain();
                out.truncate(out_len);
                let culprit = outcomes.len();
                let mut refusal = Some(refusal);
                for (offset, item) in chain.iter().enumerate() {
                    let index = first_index + offset;
                    let result = if offset == culprit {
                        let refusal = refusal.take().expect("one culprit per chain");
                        settle(state, item, index, Err(refusal), ctx, out)
                    } else {
                        Err(linked_failed(index, first_index + culprit))
                    };
                    results.push(result);
                }
                return;
            }
        }
    }
    state.commit_chain();
    results.extend(outcomes.into_iter().map(Ok));
}

fn linked_failed(index: usize, culprit_index: usize) -> LedgerError {
    LedgerError::new(
        ErrorCode::LinkedItemFailed,
        format!("items[{index}]"),
        format!("not applied: item {culprit_index} of the same linked chain failed"),
    )
}

/// Turns a refusal into the item's error, recording state refusals.
fn settle(
    state: &mut LedgerState,
    prepared: &PreparedItem,
    index: usize,
    result: Result<ItemOutcome, Refusal>,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<ItemOutcome, LedgerError> {
    let command = &prepared.item.command;
    // Field paths are built only on failure: this runs for every item.
    let prefix = || command.field_prefix(index);
    match result {
        Ok(outcome) => Ok(outcome),
        Err(Refusal::Input(error)) => Err(error.within(&prefix())),
        Err(Refusal::State(error, request_digest)) => {
            let rejected = TransactionRejected {
                id: command.id().to_string(),
                request_digest,
                error_code: error.code.number(),
                field: error.field.clone(),
                message: error.message.clone(),
            };
            append(state, ctx, EntryBody::TransactionRejected(rejected), out);
            Err(error.within(&prefix()))
        }
    }
}

fn execute_item(
    state: &mut LedgerState,
    prepared: &PreparedItem,
    ctx: &Context,
    lookup: &dyn EntryLookup,
    out: &mut Vec<Journaled>,
) -> Result<ItemOutcome, Refusal> {
    let command = &prepared.item.command;
    let digest = match &prepared.checked {
        Ok(digest) => *digest,
        Err(error) => return Err(Refusal::Input(error.clone())),
    };
    if let Some(record) = state.transaction(command.id()) {
        return replay(command.id(), record.same_request(&digest), &record.outcome);
    }
    let recorded_at = state.next_recorded_at(ctx.now);
    let body = match command {
        TransactionCommand::Transaction(spec) => plan_transaction(
            state,
            spec,
            prepared.resolved.as_deref(),
            digest,
            recorded_at,
        ),
        TransactionCommand::PostPending(spec) => {
            plan_post_pending(state, spec, digest, recorded_at)
        }
        TransactionCommand::VoidPending(spec) => {
            plan_void_pending(state, spec, digest, recorded_at)
        }
        TransactionCommand::Reverse(spec) => plan_reverse(state, spec, digest, lookup, out),
    }
    // An internal failure (an unreadable earlier entry) is no answer about
    // the request: it is not recorded, so a retry is judged afresh.
    .map_err(|error| match error.code {
        ErrorCode::Internal => Refusal::Input(error),
        _ => Refusal::State(error, digest),
    })?;
    let seq = append(state, ctx, body, out);
    Ok(ItemOutcome {
        seq,
        replayed: false,
    })
}

/// The answer to an id seen before: the same outcome, or a conflict.
fn replay(id: &str, same_request: bool, outcome: &TxOutcome) -> Result<ItemOutcome, Refusal> {
    if !same_request {
        return Err(Refusal::Input(LedgerError::new(
            ErrorCode::TransactionExists,
            "id",
            format!("transaction {id} exists with other content"),
        )));
    }
    match outcome {
        TxOutcome::Recorded { seq, .. } => Ok(ItemOutcome {
            seq: *seq,
            replayed: true,
        }),
        TxOutcome::Failed(failure) => Err(Refusal::Input(LedgerError::new(
            ErrorCode::TransactionAlreadyFailed,
            failure.field.clone(),
            format!(
                "transaction {id} failed before with {}: {}",
                failure.code, failure.message
            ),
        ))),
    }
}

// ---- planning: state checks, no mutation ----------------------------------------

fn amount_error(error: AmountError, field: String, amount: &Decimal) -> LedgerError {
    let code = match error {
        AmountError::NotPositive | AmountError::Negative => ErrorCode::AmountNotPositive,
        AmountError::ScaleExceeded { .. } => ErrorCode::AmountScaleExceeded,
        AmountError::Overflow => ErrorCode::AmountOverflow,
    };
    LedgerError::new(code, field, format!("amount {amount}: {error}"))
}

/// `field` is called only on failure: this runs for every posting.
fn open_account_id(
    state: &LedgerState,
    name: &str,
    field: impl Fn() -> String,
) -> Result<AccountId, LedgerError> {
    let id = state.account_id(name).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::AccountNotFound,
            field(),
            format!("no account {name}"),
        )
    })?;
    check_open(state, id, name, field)?;
    Ok(id)
}

fn check_open(
    state: &LedgerState,
    id: AccountId,
    name: &str,
    field: impl Fn() -> String,
) -> Result<(), LedgerError> {
    if state.account(id).closed {
        return Err(LedgerError::new(
            ErrorCode::AccountClosed,
            field(),
            format!("account {name} is closed"),
        ));
    }
    Ok(())
}

/// `resolved`: the postings as the account directory resolved them before
/// the writer (accounts, currencies, amounts and balance per currency checked
/// there); only whether each account is still open is left to check.
fn plan_transaction(
    state: &LedgerState,
    spec: &TransactionSpec,
    resolved: Option<&[Posting]>,
    digest: Digest,
    recorded_at: TimestampNs,
) -> Result<EntryBody, LedgerError> {
    let postings = match resolved {
        Some(resolved) => {
            debug_assert_eq!(resolved.len(), spec.postings.len());
            for (index, (posting, named)) in resolved.iter().zip(&spec.postings).enumerate() {
                check_open(state, posting.account_id, &named.account, || {
                    format!("postings[{index}].account")
                })?;
            }
            // The directory's resolution is the writer's own, done earlier.
            debug_assert_eq!(
                named_postings(state, spec).as_deref(),
                Ok(resolved),
                "the account directory disagrees with the ledger state"
            );
            resolved.to_vec()
        }
        None => named_postings(state, spec)?,
    };
    let mode = if spec.pending {
        let expires_at = match spec.timeout_seconds {
            0 => None,
            seconds => {
                Some(recorded_at.saturating_add((seconds as i64).saturating_mul(1_000_000_000)))
            }
        };
        TransactionMode::Pending { expires_at }
    } else {
        TransactionMode::Standard
    };
    check_effects(state, &[], &postings, spec.pending, "postings")?;
    Ok(EntryBody::TransactionRecorded(TransactionRecorded {
        id: spec.id.clone(),
        request_digest: digest,
        mode,
        postings,
        effective_at: spec.effective_at,
        description: spec.description.clone(),
        metadata: spec.metadata.clone(),
    }))
}

/// A transaction's postings resolved by the writer from their names: the
/// path of every item the account directory could not resolve.
fn named_postings(
    state: &LedgerState,
    spec: &TransactionSpec,
) -> Result<Vec<Posting>, LedgerError> {
    let mut postings = Vec::with_capacity(spec.postings.len());
    for (index, posting) in spec.postings.iter().enumerate() {
        let account_id = open_account_id(state, &posting.account, || {
            format!("postings[{index}].account")
        })?;
        let account = state.account(account_id);
        if let Some(currency) = &posting.currency {
            if *currency != account.opened.currency {
                return Err(LedgerError::new(
                    ErrorCode::CurrencyMismatch,
                    format!("postings[{index}].currency"),
                    format!(
                        "account {} is in {}, not {currency}",
                        posting.account, account.opened.currency
                    ),
                ));
            }
        }
        let amount_minor = money::to_minor_positive(posting.amount, account.scale)
            .map_err(|e| amount_error(e, format!("postings[{index}].amount"), &posting.amount))?;
        postings.push(Posting {
            account_id,
            side: posting.side,
            amount_minor,
        });
    }
    check_balanced(state, &postings, "postings")?;
    Ok(postings)
}

/// The postings of an open pending transaction, or why it cannot be resolved.
fn open_pending(
    state: &LedgerState,
    pending_id: &str,
    recorded_at: TimestampNs,
) -> Result<Vec<Posting>, LedgerError> {
    let field = "pending_id";
    let record = state
        .transaction(pending_id)
        .filter(|r| matches!(r.outcome, TxOutcome::Recorded { .. }))
        .ok_or_else(|| {
            LedgerError::new(
                ErrorCode::TransactionNotFound,
                field,
                format!("no transaction {pending_id}"),
            )
        })?;
    let pending = record.pending().ok_or_else(|| {
        LedgerError::new(
            ErrorCode::NotPending,
            field,
            format!("transaction {pending_id} is not pending"),
        )
    })?;
    let (code, what) = match pending.state {
        PendingState::Open if pending.expires_at.is_some_and(|at| at <= recorded_at) => {
            (ErrorCode::PendingExpired, "expired")
        }
        PendingState::Open => return Ok(pending.postings.clone()),
        PendingState::Posted => (ErrorCode::PendingAlreadyPosted, "posted"),
        PendingState::Voided => (ErrorCode::PendingAlreadyVoided, "voided"),
        PendingState::Expired => (ErrorCode::PendingExpired, "expired"),
    };
    Err(LedgerError::new(
        code,
        field,
        format!("pending transaction {pending_id} is already {what}"),
    ))
}

fn plan_post_pending(
    state: &LedgerState,
    spec: &PostPendingSpec,
    digest: Digest,
    recorded_at: TimestampNs,
) -> Result<EntryBody, LedgerError> {
    let reserved = open_pending(state, &spec.pending_id, recorded_at)?;
    let postings = if spec.amounts.is_empty() {
        reserved.clone()
    } else {
        partial_postings(state, &reserved, &spec.amounts)?
    };
    check_balanced(state, &postings, "amounts")?;
    check_effects(state, &reserved, &postings, false, "amounts")?;
    Ok(EntryBody::PendingPosted(PendingPosted {
        id: spec.id.clone(),
        request_digest: digest,
        pending_id: spec.pending_id.clone(),
        postings,
        effective_at: spec.effective_at,
        description: spec.description.clone(),
        metadata: spec.metadata.clone(),
    }))
}

fn partial_postings(
    state: &LedgerState,
    reserved: &[Posting],
    amounts: &[Decimal],
) -> Result<Vec<Posting>, LedgerError> {
    if amounts.len() != reserved.len() {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "amounts",
            format!(
                "{} amounts for {} pending postings; give one per posting or none",
                amounts.len(),
                reserved.len()
            ),
        ));
    }
    let mut postings = Vec::with_capacity(reserved.len());
    for (index, (posting, amount)) in reserved.iter().zip(amounts).enumerate() {
        let field = format!("amounts[{index}]");
        let scale = state.account(posting.account_id).scale;
        let amount_minor =
            money::to_minor(*amount, scale).map_err(|e| amount_error(e, field.clone(), amount))?;
        if amount_minor > posting.amount_minor {
            return Err(LedgerError::new(
                ErrorCode::PendingAmountExceeded,
                field,
                format!(
                    "{amount} is more than the {} reserved",
                    money::from_minor(posting.amount_minor, scale)
                ),
            ));
        }
        postings.push(Posting {
            amount_minor,
            ..*posting
        });
    }
    if postings.iter().all(|p| p.amount_minor == 0) {
        return Err(LedgerError::new(
            ErrorCode::AmountNotPositive,
            "amounts",
            "every amount is zero; void the pending transaction instead",
        ));
    }
    Ok(postings)
}

fn plan_void_pending(
    state: &LedgerState,
    spec: &VoidPendingSpec,
    digest: Digest,
    recorded_at: TimestampNs,
) -> Result<EntryBody, LedgerError> {
    open_pending(state, &spec.pending_id, recorded_at)?;
    Ok(EntryBody::PendingVoided(PendingVoided {
        id: spec.id.clone(),
        request_digest: digest,
        pending_id: spec.pending_id.clone(),
        reason: spec.reason.clone(),
    }))
}

fn plan_reverse(
    state: &LedgerState,
    spec: &ReverseSpec,
    digest: Digest,
    lookup: &dyn EntryLookup,
    group: &[Journaled],
) -> Result<EntryBody, LedgerError> {
    let field = "transaction_id";
    let target = &spec.transaction_id;
    let not_found = || {
        LedgerError::new(
            ErrorCode::TransactionNotFound,
            field,
            format!("no transaction {target}"),
        )
    };
    let record = state.transaction(target).ok_or_else(not_found)?;
    let TxOutcome::Recorded { seq, kind } = record.outcome else {
        return Err(not_found());
    };
    if matches!(
        kind,
        TransactionKind::Pending | TransactionKind::VoidPending
    ) {
        return Err(LedgerError::new(
            ErrorCode::NotReversible,
            field,
            format!(
                "{target} is a {kind:?} transaction; void or post pending transactions instead"
            ),
        ));
    }
    if let Some(by) = record.reversed_by() {
        return Err(LedgerError::new(
            ErrorCode::AlreadyReversed,
            field,
            format!("{target} was reversed by {by}"),
        ));
    }
    // The reversed transaction may be in the group being built, not yet on disk.
    let in_group = group.iter().find(|j| j.seq == seq).map(|j| j.entry.clone());
    let original = in_group.or_else(|| lookup.entry(seq)).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::Internal,
            field,
            format!("entry {seq} of {target} is unreadable"),
        )
    })?;
    let postings: Vec<Posting> = match &original.body {
        EntryBody::TransactionRecorded(recorded) => recorded.postings.clone(),
        EntryBody::PendingPosted(posted) => posted.postings.clone(),
        _ => {
            return Err(LedgerError::new(
                ErrorCode::Internal,
                field,
                format!("entry {seq} is not a transaction"),
            ))
        }
    }
    .into_iter()
    .filter(|p| p.amount_minor > 0)
    .map(|p| Posting {
        side: p.side.opposite(),
        ..p
    })
    .collect();
    for posting in &postings {
        if state.account(posting.account_id).closed {
            let name = &state.account(posting.account_id).opened.name;
            return Err(LedgerError::new(
                ErrorCode::AccountClosed,
                field,
                format!("account {name} is closed"),
            ));
        }
    }
    check_effects(state, &[], &postings, false, field)?;
    Ok(EntryBody::TransactionRecorded(TransactionRecorded {
        id: spec.id.clone(),
        request_digest: digest,
        mode: TransactionMode::Reversal {
            reverses: target.clone(),
        },
        postings,
        effective_at: spec.effective_at,
        description: spec.description.clone(),
        metadata: spec.metadata.clone(),
    }))
}

/// Per currency, debits equal credits.
fn check_balanced(
    state: &LedgerState,
    postings: &[Posting],
    field: &str,
) -> Result<(), LedgerError> {
    // (debits, credits) per currency; u128 cannot overflow: at most 128 postings
    // of at most 2^96 each.
    let mut sums: Vec<(&str, (u128, u128, u8))> = Vec::with_capacity(2);
    for posting in postings {
        let account = state.account(posting.account_id);
        let sum = entry(&mut sums, account.opened.currency.as_str(), || {
            (0, 0, account.scale)
        });
        match posting.side {
            Side::Debit => sum.0 += posting.amount_minor,
            Side::Credit => sum.1 += posting.amount_minor,
        }
    }
    for (currency, (debits, credits, scale)) in sums {
        if debits != credits {
            return Err(LedgerError::new(
                ErrorCode::TransactionUnbalanced,
                field,
                format!(
                    "{currency}: debits {} do not equal credits {}",
                    money::from_minor(debits.min(AMOUNT_MINOR_MAX), scale),
                    money::from_minor(credits.min(AMOUNT_MINOR_MAX), scale)
                ),
            ));
        }
    }
    Ok(())
}

/// The value under `key` in a short list of pairs, inserted if absent.
/// Transactions touch a handful of accounts and currencies: a linear search
/// over a small vector beats a tree map that allocates a node per call.
fn entry<K: PartialEq + Copy, V>(
    pairs: &mut Vec<(K, V)>,
    key: K,
    insert: impl FnOnce() -> V,
) -> &mut V {
    let index = match pairs.iter().position(|(k, _)| *k == key) {
        Some(index) => index,
        None => {
            pairs.push((key, insert()));
            pairs.len() - 1
        }
    };
    &mut pairs[index].1
}

/// The balances the postings would leave: no total over the maximum, and
/// every balance constraint held (pending amounts count against it).
fn check_effects(
    state: &LedgerState,
    released: &[Posting],
    added: &[Posting],
    pending: bool,
    field: &str,
) -> Result<(), LedgerError> {
    let mut balances: Vec<(AccountId, Balance)> = Vec::with_capacity(added.len());
    for posting in released {
        let balance = entry(&mut balances, posting.account_id, || {
            state.account(posting.account_id).balance
        });
        let total = match posting.side {
            Side::Debit => &mut balance.debits_pending,
            Side::Credit => &mut balance.credits_pending,
        };
        debug_assert!(
            *total >= posting.amount_minor,
            "released more than reserved"
        );
        *total -= posting.amount_minor;
    }
    for posting in added {
        let account = state.account(posting.account_id);
        let balance = entry(&mut balances, posting.account_id, || account.balance);
        let total = match (posting.side, pending) {
            (Side::Debit, false) => &mut balance.debits_posted,
            (Side::Credit, false) => &mut balance.credits_posted,
            (Side::Debit, true) => &mut balance.debits_pending,
            (Side::Credit, true) => &mut balance.credits_pending,
        };
        *total += posting.amount_minor; // both <= 2^96: no u128 overflow
        if *total > AMOUNT_MINOR_MAX {
            return Err(LedgerError::new(
                ErrorCode::AmountOverflow,
                field,
                format!(
                    "a total of account {} would exceed the maximum",
                    account.opened.name
                ),
            ));
        }
    }
    for (id, balance) in balances {
        let account = state.account(id);
        let violated = match account.opened.constraint {
            BalanceConstraint::None => false,
            BalanceConstraint::DebitsMustNotExceedCredits => {
                balance.debits_posted + balance.debits_pending > balance.credits_posted
            }
            BalanceConstraint::CreditsMustNotExceedDebits => {
                balance.credits_posted + balance.credits_pending > balance.debits_posted
            }
        };
        if violated {
            return Err(LedgerError::new(
                ErrorCode::BalanceConstraintViolated,
                field,
                format!(
                    "account {} would break its constraint {:?}",
                    account.opened.name, account.opened.constraint
                ),
            ));
        }
    }
    Ok(())
}
