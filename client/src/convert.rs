//! Conversions between the generated protobuf types and the domain types.
//!
//! This is the only module that knows both sides. Requests convert infallibly;
//! responses are checked, and anything that breaks the contract (a bad decimal
//! string, an unknown enum value, a missing time) becomes
//! `ClientError::InvalidResponse` naming the field — never a panic.

use std::collections::HashMap;
use std::time::SystemTime;

use prost_types::Timestamp;
use rust_decimal::Decimal;
use tally_proto::v1 as pb;

use crate::builders::{
    PostPendingSpec, ReverseSpec, TransactionFilter, TransactionItem, TransactionSpec,
    VoidPendingSpec,
};
use crate::error::{ClientError, ErrorCode, ItemError, Result};
use crate::types::{
    Account, AccountBalance, AccountCreated, AccountSpec, AccountType, AsOf, Balance,
    BalanceChange, BalanceConstraint, Balances, Currency, CurrencyCreated, CurrencyTotal,
    Direction, JournalEntry, LedgerInfo, Metadata, PendingState, Posting, Transaction,
    TransactionKind, TransactionRecorded, TrialBalance, TrialBalanceLine,
};

// ---------------------------------------------------------------------------
// Requests: domain -> proto.

pub(crate) fn currency_to_proto(currency: Currency) -> pb::Currency {
    pb::Currency {
        code: currency.code,
        scale: currency.scale,
    }
}

pub(crate) fn account_spec_to_proto(spec: AccountSpec) -> pb::AccountSpec {
    pb::AccountSpec {
        name: spec.name,
        r#type: account_type_to_proto(spec.account_type) as i32,
        currency: spec.currency,
        constraint: constraint_to_proto(spec.constraint) as i32,
        metadata: metadata_to_proto(spec.metadata),
    }
}

pub(crate) fn item_to_proto(item: TransactionItem, linked: bool) -> pb::TransactionItem {
    use pb::transaction_item::Kind;
    let kind = match item {
        TransactionItem::Transaction(spec) => Kind::Transaction(transaction_to_proto(spec)),
        TransactionItem::PostPending(spec) => Kind::PostPending(post_pending_to_proto(spec)),
        TransactionItem::VoidPending(spec) => Kind::VoidPending(void_pending_to_proto(spec)),
        TransactionItem::Reverse(spec) => Kind::Reverse(reverse_to_proto(spec)),
    };
    pb::TransactionItem {
        kind: Some(kind),
        linked,
    }
}

fn transaction_to_proto(spec: TransactionSpec) -> pb::TransactionSpec {
    pb::TransactionSpec {
        id: spec.id,
        postings: spec.postings.into_iter().map(posting_to_proto).collect(),
        effective_at: spec.effective_at.map(Timestamp::from),
        description: spec.description,
        metadata: metadata_to_proto(spec.metadata),
        pending: spec.pending,
        timeout_seconds: spec.timeout_seconds,
    }
}

pub(crate) fn post_pending_to_proto(spec: PostPendingSpec) -> pb::PostPendingSpec {
    pb::PostPendingSpec {
        id: spec.id,
        pending_id: spec.pending_id,
        amounts: spec.amounts.iter().map(Decimal::to_string).collect(),
        effective_at: spec.effective_at.map(Timestamp::from),
        description: spec.description,
        metadata: metadata_to_proto(spec.metadata),
    }
}

pub(crate) fn void_pending_to_proto(spec: VoidPendingSpec) -> pb::VoidPendingSpec {
    pb::VoidPendingSpec {
        id: spec.id,
        pending_id: spec.pending_id,
        reason: spec.reason,
    }
}

fn reverse_to_proto(spec: ReverseSpec) -> pb::ReverseSpec {
    pb::ReverseSpec {
        id: spec.id,
        transaction_id: spec.transaction_id,
        effective_at: spec.effective_at.map(Timestamp::from),
        description: spec.description,
        metadata: metadata_to_proto(spec.metadata),
    }
}

fn posting_to_proto(posting: Posting) -> pb::Posting {
    pb::Posting {
        account: posting.account,
        direction: direction_to_proto(posting.direction) as i32,
        amount: posting.amount.to_string(),
        currency: posting.currency.unwrap_or_default(),
    }
}

pub(crate) fn as_of_to_proto(as_of: AsOf) -> Option<pb::AsOf> {
    use pb::as_of::Point;
    let point = match as_of {
        AsOf::Now => return None,
        AsOf::Seq(seq) => Point::Seq(seq),
        AsOf::Time(time) => Point::Time(Timestamp::from(time)),
    };
    Some(pb::AsOf { point: Some(point) })
}

pub(crate) fn filter_to_proto(filter: &TransactionFilter) -> pb::ListTransactionsRequest {
    pb::ListTransactionsRequest {
        account: filter.account.clone().unwrap_or_default(),
        from: filter.from.map(Timestamp::from),
        to: filter.to.map(Timestamp::from),
        page_size: 0,
        page_token: String::new(),
    }
}

fn metadata_to_proto(metadata: Metadata) -> HashMap<String, String> {
    metadata.into_iter().collect()
}

fn account_type_to_proto(account_type: AccountType) -> pb::AccountType {
    match account_type {
        AccountType::Asset => pb::AccountType::Asset,
        AccountType::Liability => pb::AccountType::Liability,
        AccountType::Equity => pb::AccountType::Equity,
        AccountType::Revenue => pb::AccountType::Revenue,
        AccountType::Expense => pb::AccountType::Expense,
    }
}

fn constraint_to_proto(constraint: BalanceConstraint) -> pb::BalanceConstraint {
    match constraint {
        BalanceConstraint::None => pb::BalanceConstraint::None,
        BalanceConstraint::DebitsMustNotExceedCredits => {
            pb::BalanceConstraint::DebitsMustNotExceedCredits
        }
        BalanceConstraint::CreditsMustNotExceedDebits => {
            pb::BalanceConstraint::CreditsMustNotExceedDebits
        }
    }
}

fn direction_to_proto(direction: Direction) -> pb::Direction {
    match direction {
        Direction::Debit => pb::Direction::Debit,
        Direction::Credit => pb::Direction::Credit,
    }
}

// ---------------------------------------------------------------------------
// Responses: proto -> domain, checked.

/// Parses a decimal string of the wire; `field` names it in the error.
pub(crate) fn decimal(field: &str, text: &str) -> Result<Decimal> {
    Decimal::from_str_exact(text)
        .map_err(|_| ClientError::invalid_response(format!("{field}: {text:?} is not a decimal")))
}

fn time(field: &str, timestamp: Option<Timestamp>) -> Result<SystemTime> {
    optional_time(field, timestamp)?
        .ok_or_else(|| ClientError::invalid_response(format!("{field}: missing")))
}

fn optional_time(field: &str, timestamp: Option<Timestamp>) -> Result<Option<SystemTime>> {
    timestamp
        .map(|timestamp| {
            SystemTime::try_from(timestamp)
                .map_err(|error| ClientError::invalid_response(format!("{field}: {error}")))
        })
        .transpose()
}

/// An empty string on the wire means "absent".
fn optional_string(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn unknown_enum(field: &str, value: i32) -> ClientError {
    ClientError::invalid_response(format!("{field}: unknown value {value}"))
}

fn optional_account_type(field: &str, value: i32) -> Result<Option<AccountType>> {
    let account_type = match pb::AccountType::try_from(value) {
        Ok(pb::AccountType::Unspecified) => return Ok(None),
        Ok(pb::AccountType::Asset) => AccountType::Asset,
        Ok(pb::AccountType::Liability) => AccountType::Liability,
        Ok(pb::AccountType::Equity) => AccountType::Equity,
        Ok(pb::AccountType::Revenue) => AccountType::Revenue,
        Ok(pb::AccountType::Expense) => AccountType::Expense,
        Err(_) => return Err(unknown_enum(field, value)),
    };
    Ok(Some(account_type))
}

fn account_type(field: &str, value: i32) -> Result<AccountType> {
    optional_account_type(field, value)?.ok_or_else(|| unknown_enum(field, value))
}

fn constraint(field: &str, value: i32) -> Result<BalanceConstraint> {
    match pb::BalanceConstraint::try_from(value) {
        Ok(pb::BalanceConstraint::None) => Ok(BalanceConstraint::None),
        Ok(pb::BalanceConstraint::DebitsMustNotExceedCredits) => {
            Ok(BalanceConstraint::DebitsMustNotExceedCredits)
        }
        Ok(pb::BalanceConstraint::CreditsMustNotExceedDebits) => {
            Ok(BalanceConstraint::CreditsMustNotExceedDebits)
        }
        Err(_) => Err(unknown_enum(field, value)),
    }
}

fn direction(field: &str, value: i32) -> Result<Direction> {
    match pb::Direction::try_from(value) {
        Ok(pb::Direction::Debit) => Ok(Direction::Debit),
        Ok(pb::Direction::Credit) => Ok(Direction::Credit),
        _ => Err(unknown_enum(field, value)),
    }
}

fn transaction_kind(field: &str, value: i32) -> Result<TransactionKind> {
    match pb::TransactionKind::try_from(value) {
        Ok(pb::TransactionKind::Standard) => Ok(TransactionKind::Standard),
        Ok(pb::TransactionKind::Pending) => Ok(TransactionKind::Pending),
        Ok(pb::TransactionKind::PostPending) => Ok(TransactionKind::PostPending),
        Ok(pb::TransactionKind::VoidPending) => Ok(TransactionKind::VoidPending),
        Ok(pb::TransactionKind::Reversal) => Ok(TransactionKind::Reversal),
        _ => Err(unknown_enum(field, value)),
    }
}

fn pending_state(field: &str, value: i32) -> Result<Option<PendingState>> {
    match pb::PendingState::try_from(value) {
        Ok(pb::PendingState::Unspecified) => Ok(None),
        Ok(pb::PendingState::Open) => Ok(Some(PendingState::Open)),
        Ok(pb::PendingState::Posted) => Ok(Some(PendingState::Posted)),
        Ok(pb::PendingState::Voided) => Ok(Some(PendingState::Voided)),
        Ok(pb::PendingState::Expired) => Ok(Some(PendingState::Expired)),
        Err(_) => Err(unknown_enum(field, value)),
    }
}

fn metadata(metadata: HashMap<String, String>) -> Metadata {
    metadata.into_iter().collect()
}

pub(crate) fn ledger_info(info: pb::LedgerInfo) -> LedgerInfo {
    LedgerInfo {
        ledger_id: info.ledger_id,
        journal_length: info.journal_length,
        chain_head: info.chain_head,
        server_version: info.server_version,
    }
}

pub(crate) fn currency(currency: pb::Currency) -> Currency {
    Currency {
        code: currency.code,
        scale: currency.scale,
    }
}

/// An inline error of a batch result. An unknown code number is kept as
/// `Unspecified` rather than failing the whole batch.
pub(crate) fn item_error(index: usize, detail: pb::ErrorDetail) -> ItemError {
    ItemError {
        index,
        code: ErrorCode::try_from(detail.code).unwrap_or(ErrorCode::Unspecified),
        field: detail.field,
        message: detail.message,
    }
}

/// Checks that a batch answer has one result per item, in order.
pub(crate) fn check_result_index(position: usize, index: u32) -> Result<usize> {
    if usize::try_from(index).ok() == Some(position) {
        Ok(position)
    } else {
        Err(ClientError::invalid_response(format!(
            "results[{position}].index is {index}, expected {position}"
        )))
    }
}

pub(crate) fn missing_outcome(position: usize) -> ClientError {
    ClientError::invalid_response(format!("results[{position}]: neither a value nor an error"))
}

pub(crate) fn currency_results(
    results: Vec<pb::CurrencyResult>,
) -> Result<Vec<Result<CurrencyCreated, ItemError>>> {
    use pb::currency_result::Outcome;
    let convert = |(position, result): (usize, pb::CurrencyResult)| {
        let index = check_result_index(position, result.index)?;
        Ok(match result.outcome {
            Some(Outcome::Currency(value)) => Ok(CurrencyCreated {
                currency: currency(value),
                existed: result.existed,
            }),
            Some(Outcome::Error(detail)) => Err(item_error(index, detail)),
            None => return Err(missing_outcome(position)),
        })
    };
    results.into_iter().enumerate().map(convert).collect()
}

pub(crate) fn account_results(
    results: Vec<pb::AccountResult>,
) -> Result<Vec<Result<AccountCreated, ItemError>>> {
    use pb::account_result::Outcome;
    let convert = |(position, result): (usize, pb::AccountResult)| {
        let index = check_result_index(position, result.index)?;
        Ok(match result.outcome {
            Some(Outcome::Account(value)) => Ok(AccountCreated {
                account: account(value)?,
                existed: result.existed,
            }),
            Some(Outcome::Error(detail)) => Err(item_error(index, detail)),
            None => return Err(missing_outcome(position)),
        })
    };
    results.into_iter().enumerate().map(convert).collect()
}

pub(crate) fn transaction_results(
    results: Vec<pb::TransactionResult>,
) -> Result<Vec<Result<TransactionRecorded, ItemError>>> {
    use pb::transaction_result::Outcome;
    let convert = |(position, result): (usize, pb::TransactionResult)| {
        let index = check_result_index(position, result.index)?;
        Ok(match result.outcome {
            Some(Outcome::Transaction(value)) => Ok(TransactionRecorded {
                transaction: transaction(value)?,
                replayed: result.replayed,
            }),
            Some(Outcome::Error(detail)) => Err(item_error(index, detail)),
            None => return Err(missing_outcome(position)),
        })
    };
    results.into_iter().enumerate().map(convert).collect()
}

/// A balance; an absent one is zero, as proto3 treats a missing message.
pub(crate) fn balance(field: &str, balance: Option<pb::Balance>) -> Result<Balance> {
    let Some(balance) = balance else {
        return Ok(Balance::default());
    };
    let amount = |name: &str, text: &str| decimal(&format!("{field}.{name}"), text);
    Ok(Balance {
        debits_posted: amount("debits_posted", &balance.debits_posted)?,
        credits_posted: amount("credits_posted", &balance.credits_posted)?,
        debits_pending: amount("debits_pending", &balance.debits_pending)?,
        credits_pending: amount("credits_pending", &balance.credits_pending)?,
        balance: amount("balance", &balance.balance)?,
        balance_with_pending: amount("balance_with_pending", &balance.balance_with_pending)?,
    })
}

pub(crate) fn account(account: pb::Account) -> Result<Account> {
    Ok(Account {
        id: account.id,
        account_type: account_type("account.type", account.r#type)?,
        constraint: constraint("account.constraint", account.constraint)?,
        opened_at: optional_time("account.opened_at", account.opened_at)?,
        balance: balance("account.balance", account.balance)?,
        name: account.name,
        currency: account.currency,
        metadata: metadata(account.metadata),
        closed: account.closed,
        opened_seq: account.opened_seq,
    })
}

fn posting(position: usize, posting: pb::Posting) -> Result<Posting> {
    let field = |name: &str| format!("transaction.postings[{position}].{name}");
    Ok(Posting {
        direction: direction(&field("direction"), posting.direction)?,
        amount: decimal(&field("amount"), &posting.amount)?,
        account: posting.account,
        currency: optional_string(posting.currency),
    })
}

pub(crate) fn transaction(tx: pb::Transaction) -> Result<Transaction> {
    let postings = tx
        .postings
        .into_iter()
        .enumerate()
        .map(|(position, value)| posting(position, value))
        .collect::<Result<Vec<_>>>()?;
    Ok(Transaction {
        kind: transaction_kind("transaction.kind", tx.kind)?,
        effective_at: time("transaction.effective_at", tx.effective_at)?,
        recorded_at: time("transaction.recorded_at", tx.recorded_at)?,
        pending_state: pending_state("transaction.pending_state", tx.pending_state)?,
        expires_at: optional_time("transaction.expires_at", tx.expires_at)?,
        postings,
        id: tx.id,
        seq: tx.seq,
        description: tx.description,
        metadata: metadata(tx.metadata),
        pending_id: optional_string(tx.pending_id),
        reverses_id: optional_string(tx.reverses_id),
        resolved_by: optional_string(tx.resolved_by),
        reversed_by: optional_string(tx.reversed_by),
        entry_hash: tx.entry_hash,
    })
}

pub(crate) fn balances(response: pb::GetBalancesResponse) -> Result<Balances> {
    let convert = |(position, value): (usize, pb::AccountBalance)| {
        let field = format!("balances[{position}]");
        Ok(AccountBalance {
            account_type: account_type(&format!("{field}.type"), value.r#type)?,
            balance: balance(&format!("{field}.balance"), value.balance)?,
            account: value.account,
            currency: value.currency,
        })
    };
    Ok(Balances {
        as_of_seq: response.as_of_seq,
        balances: response
            .balances
            .into_iter()
            .enumerate()
            .map(convert)
            .collect::<Result<_>>()?,
    })
}

fn balance_change(position: usize, change: pb::BalanceChange) -> Result<BalanceChange> {
    let field = |name: &str| format!("changes[{position}].{name}");
    Ok(BalanceChange {
        seq: change.seq,
        kind: transaction_kind(&field("kind"), change.kind)?,
        effective_at: time(&field("effective_at"), change.effective_at)?,
        balance: balance(&field("balance"), change.balance)?,
        transaction_id: change.transaction_id,
    })
}

pub(crate) fn account_history(
    response: pb::GetAccountHistoryResponse,
) -> Result<crate::types::AccountHistory> {
    let changes = response
        .changes
        .into_iter()
        .enumerate()
        .map(|(position, change)| balance_change(position, change))
        .collect::<Result<_>>()?;
    Ok(crate::types::AccountHistory {
        opening: balance("opening", response.opening)?,
        changes,
        next_page_token: optional_string(response.next_page_token),
    })
}

fn trial_balance_line(position: usize, line: pb::TrialBalanceLine) -> Result<TrialBalanceLine> {
    let field = |name: &str| format!("lines[{position}].{name}");
    Ok(TrialBalanceLine {
        account_type: optional_account_type(&field("type"), line.r#type)?,
        debit: decimal(&field("debit"), &line.debit)?,
        credit: decimal(&field("credit"), &line.credit)?,
        account: line.account,
        currency: line.currency,
        accounts: line.accounts,
    })
}

fn currency_total(position: usize, total: pb::CurrencyTotal) -> Result<CurrencyTotal> {
    let field = |name: &str| format!("totals[{position}].{name}");
    Ok(CurrencyTotal {
        debit: decimal(&field("debit"), &total.debit)?,
        credit: decimal(&field("credit"), &total.credit)?,
        currency: total.currency,
    })
}

pub(crate) fn trial_balance(response: pb::TrialBalance) -> Result<TrialBalance> {
    Ok(TrialBalance {
        as_of_seq: response.as_of_seq,
        lines: response
            .lines
            .into_iter()
            .enumerate()
            .map(|(position, line)| trial_balance_line(position, line))
            .collect::<Result<_>>()?,
        totals: response
            .totals
            .into_iter()
            .enumerate()
            .map(|(position, total)| currency_total(position, total))
            .collect::<Result<_>>()?,
    })
}

pub(crate) fn journal_entry(entry: pb::JournalEntry) -> Result<JournalEntry> {
    Ok(JournalEntry {
        recorded_at: time("journal_entry.recorded_at", entry.recorded_at)?,
        seq: entry.seq,
        entry_hash: entry.entry_hash,
        prev_hash: entry.prev_hash,
        kind: entry.kind,
        json: entry.json,
        canonical: entry.canonical,
    })
}

/// A page token: empty on the wire means "last page".
pub(crate) fn page_token(token: String) -> Option<String> {
    optional_string(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use std::time::Duration;

    fn wire_balance(balance: &str) -> pb::Balance {
        pb::Balance {
            debits_posted: "10.00".into(),
            credits_posted: "0".into(),
            debits_pending: "0".into(),
            credits_pending: "2.5".into(),
            balance: balance.into(),
            balance_with_pending: "7.50".into(),
        }
    }

    fn wire_transaction() -> pb::Transaction {
        pb::Transaction {
            id: "tx-1".into(),
            kind: pb::TransactionKind::Standard as i32,
            seq: 7,
            postings: vec![pb::Posting {
                account: "assets:cash".into(),
                direction: pb::Direction::Debit as i32,
                amount: "10.00".into(),
                currency: "USD".into(),
            }],
            effective_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            recorded_at: Some(Timestamp {
                seconds: 1_700_000_001,
                nanos: 0,
            }),
            entry_hash: "ab".into(),
            ..Default::default()
        }
    }

    #[test]
    fn transaction_converts_with_decimals_and_times() {
        // Amounts keep their scale; times keep their nanoseconds; empty ids are None.
        let tx = transaction(wire_transaction()).unwrap();
        assert_eq!(tx.kind, TransactionKind::Standard);
        assert_eq!(tx.postings[0].amount, dec!(10.00));
        assert_eq!(tx.postings[0].amount.to_string(), "10.00");
        assert_eq!(tx.postings[0].currency.as_deref(), Some("USD"));
        assert_eq!(
            tx.effective_at,
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5)
        );
        assert_eq!(tx.pending_id, None);
        assert_eq!(tx.pending_state, None);
    }

    #[test]
    fn bad_decimal_is_invalid_response_naming_the_field() {
        // A malformed amount from the server is an error, never a panic.
        let mut wire = wire_transaction();
        wire.postings[0].amount = "ten".into();
        let error = transaction(wire).unwrap_err();
        assert_eq!(
            error,
            ClientError::InvalidResponse(
                "transaction.postings[0].amount: \"ten\" is not a decimal".into()
            )
        );
        let error = balance("account.balance", Some(wire_balance(""))).unwrap_err();
        assert!(
            error.to_string().contains("account.balance.balance"),
            "{error}"
        );
    }

    #[test]
    fn missing_time_and_unknown_enum_are_invalid_responses() {
        // Contract breaches are reported, not defaulted.
        let mut wire = wire_transaction();
        wire.recorded_at = None;
        assert!(matches!(
            transaction(wire),
            Err(ClientError::InvalidResponse(message)) if message.contains("recorded_at")
        ));
        let mut wire = wire_transaction();
        wire.kind = 99;
        assert!(matches!(
            transaction(wire),
            Err(ClientError::InvalidResponse(_))
        ));
    }

    #[test]
    fn absent_balance_is_zero() {
        // proto3 omits empty messages; a missing balance reads as zero.
        assert_eq!(balance("b", None).unwrap(), Balance::default());
        let converted = balance("b", Some(wire_balance("10"))).unwrap();
        assert_eq!(converted.credits_pending, dec!(2.5));
        assert_eq!(converted.balance_with_pending, dec!(7.50));
    }

    #[test]
    fn transaction_results_keep_order_and_item_errors() {
        // One result per item; errors stay per item with their index and field.
        use pb::transaction_result::Outcome;
        let results = vec![
            pb::TransactionResult {
                index: 0,
                outcome: Some(Outcome::Transaction(wire_transaction())),
                replayed: true,
            },
            pb::TransactionResult {
                index: 1,
                outcome: Some(Outcome::Error(pb::ErrorDetail {
                    code: ErrorCode::TransactionUnbalanced as i32,
                    field: "items[1].transaction.postings".into(),
                    message: "unbalanced".into(),
                })),
                replayed: false,
            },
        ];
        let converted = transaction_results(results).unwrap();
        assert!(converted[0].as_ref().unwrap().replayed);
        let error = converted[1].as_ref().unwrap_err();
        assert_eq!(error.index, 1);
        assert_eq!(error.code, ErrorCode::TransactionUnbalanced);
        assert_eq!(error.field, "items[1].transaction.postings");
    }

    #[test]
    fn out_of_order_or_empty_results_are_rejected() {
        // A result at the wrong position or without an outcome breaks the contract.
        let wrong_index = vec![pb::TransactionResult {
            index: 3,
            outcome: None,
            replayed: false,
        }];
        assert!(transaction_results(wrong_index).is_err());
        let empty = vec![pb::TransactionResult::default()];
        assert!(transaction_results(empty).is_err());
    }

    #[test]
    fn unknown_error_code_number_becomes_unspecified() {
        // A newer server's code must not fail the whole batch.
        let detail = pb::ErrorDetail {
            code: 999,
            field: String::new(),
            message: "new".into(),
        };
        assert_eq!(item_error(2, detail).code, ErrorCode::Unspecified);
    }

    #[test]
    fn transaction_spec_converts_to_wire() {
        // Decimals keep their written scale; linked and pending travel as set.
        let spec = Transaction::builder("tx-9")
            .debit("assets:cash", dec!(10.50))
            .posting(Posting::credit("revenue:sales", dec!(10.5)).currency("USD"))
            .metadata("order", "42")
            .pending_with_timeout(Duration::from_secs(60));
        let item = item_to_proto(spec.into(), true);
        assert!(item.linked);
        let Some(pb::transaction_item::Kind::Transaction(wire)) = item.kind else {
            panic!("expected a transaction item");
        };
        assert_eq!(wire.postings[0].amount, "10.50");
        assert_eq!(wire.postings[0].direction, pb::Direction::Debit as i32);
        assert_eq!(wire.postings[0].currency, "");
        assert_eq!(wire.postings[1].currency, "USD");
        assert_eq!(wire.metadata.get("order").map(String::as_str), Some("42"));
        assert!(wire.pending);
        assert_eq!(wire.timeout_seconds, 60);
    }

    #[test]
    fn as_of_converts() {
        // Now is an absent AsOf; a seq and a time fill the oneof.
        assert_eq!(as_of_to_proto(AsOf::Now), None);
        assert_eq!(
            as_of_to_proto(AsOf::Seq(5)),
            Some(pb::AsOf {
                point: Some(pb::as_of::Point::Seq(5))
            })
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        let Some(pb::AsOf {
            point: Some(pb::as_of::Point::Time(timestamp)),
        }) = as_of_to_proto(AsOf::Time(time))
        else {
            panic!("expected a time point");
        };
        assert_eq!(timestamp.seconds, 60);
    }

    #[test]
    fn trial_balance_mixed_type_line_has_no_type() {
        // A roll-up over several types is UNSPECIFIED on the wire, None here.
        let wire = pb::TrialBalance {
            as_of_seq: 3,
            lines: vec![pb::TrialBalanceLine {
                account: "assets".into(),
                r#type: 0,
                currency: "USD".into(),
                debit: "5".into(),
                credit: "0".into(),
                accounts: 2,
            }],
            totals: vec![],
        };
        let converted = trial_balance(wire).unwrap();
        assert_eq!(converted.lines[0].account_type, None);
        assert_eq!(converted.lines[0].debit, dec!(5));
    }
}
