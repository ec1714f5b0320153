//! Conversions between the protobuf messages and the ledger's own types.
//!
//! Inbound (proto -> domain), every failure is a [`LedgerError`] with
//! `FIELD_REQUIRED` or `FIELD_INVALID` and the path of the field at fault,
//! relative to the message converted; callers prefix it with
//! [`LedgerError::within`] (`postings[1].amount` becomes
//! `items[3].transaction.postings[1].amount`). Only the shape of a request is
//! checked here: rules that need ledger state or limits (scales, name syntax,
//! lengths) are the ledger's.
//!
//! Outbound (domain -> proto) is infallible: amounts are minor units at the
//! currency's scale and print with exactly that many decimals.

use std::collections::HashMap;

use rust_decimal::Decimal;
use tally_core::entry::{AccountType, BalanceConstraint, Metadata, Side, TimestampNs};
use tally_core::error_code::ErrorCode;
use tally_core::money::{format_minor, parse_decimal, ParseError};
use tally_proto::v1 as pb;

use crate::error::LedgerError;
use crate::ledger::command::{
    AccountSpec, CurrencySpec, PostPendingSpec, PostingSpec, ReverseSpec, TransactionCommand,
    TransactionItem, TransactionSpec, VoidPendingSpec,
};
use crate::ledger::limits::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
use crate::ledger::view::{
    AccountBalance, AccountView, AsOf, Balance, BalanceChange, CurrencyView, JournalRecord,
    LedgerInfo, PendingState, PostingView, TransactionKind, TransactionView, TrialBalance,
    TrialBalanceLine,
};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

fn required(field: &str, what: &str) -> LedgerError {
    LedgerError::new(
        ErrorCode::FieldRequired,
        field,
        format!("{what} is required"),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> LedgerError {
    LedgerError::new(ErrorCode::FieldInvalid, field, message)
}

// ---------------------------------------------------------------------------
// Scalars.
// ---------------------------------------------------------------------------

/// A protobuf timestamp as nanoseconds since the epoch. Fails when `nanos` is
/// outside `0..1e9` or the instant does not fit in an `i64` of nanoseconds
/// (roughly the years 1678 to 2262).
pub fn timestamp_ns(
    timestamp: &prost_types::Timestamp,
    field: &str,
) -> Result<TimestampNs, LedgerError> {
    if !(0..NANOS_PER_SECOND).contains(&i64::from(timestamp.nanos)) {
        return Err(invalid(
            field,
            format!(
                "timestamp nanos must be within 0 to 999999999, got {}",
                timestamp.nanos
            ),
        ));
    }
    // In i128 the sum cannot overflow; only the result has to fit.
    let ns =
        i128::from(timestamp.seconds) * i128::from(NANOS_PER_SECOND) + i128::from(timestamp.nanos);
    TimestampNs::try_from(ns).map_err(|_| {
        invalid(
            field,
            format!(
                "timestamp {}s is outside the supported range (years 1678 to 2262)",
                timestamp.seconds
            ),
        )
    })
}

/// An optional timestamp; absent stays absent.
pub fn optional_timestamp_ns(
    timestamp: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<TimestampNs>, LedgerError> {
    timestamp.map(|t| timestamp_ns(t, field)).transpose()
}

/// Nanoseconds since the epoch as a protobuf timestamp (nanos always in range).
pub fn timestamp(ns: TimestampNs) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(NANOS_PER_SECOND),
        // rem_euclid of a positive modulus is within 0..1e9, which fits an i32.
        nanos: ns.rem_euclid(NANOS_PER_SECOND) as i32,
    }
}

/// A decimal amount, parsed strictly (no exponent, no '+', no spaces). The sign
/// and the scale are the ledger's to judge, against the currency.
pub fn amount(text: &str, field: &str) -> Result<Decimal, LedgerError> {
    if text.is_empty() {
        return Err(required(field, "amount"));
    }
    parse_decimal(text).map_err(|error| match error {
        ParseError::Malformed(_) => invalid(field, error.to_string()),
        ParseError::TooLarge(_) => {
            LedgerError::new(ErrorCode::AmountOverflow, field, error.to_string())
        }
        ParseError::TooPrecise(_) => {
            LedgerError::new(ErrorCode::AmountScaleExceeded, field, error.to_string())
        }
    })
}

pub fn account_type(value: i32, field: &str) -> Result<AccountType, LedgerError> {
    match pb::AccountType::try_from(value) {
        Ok(pb::AccountType::Unspecified) => Err(required(field, "account type")),
        Ok(pb::AccountType::Asset) => Ok(AccountType::Asset),
        Ok(pb::AccountType::Liability) => Ok(AccountType::Liability),
        Ok(pb::AccountType::Equity) => Ok(AccountType::Equity),
        Ok(pb::AccountType::Revenue) => Ok(AccountType::Revenue),
        Ok(pb::AccountType::Expense) => Ok(AccountType::Expense),
        Err(_) => Err(invalid(field, format!("unknown account type {value}"))),
    }
}

/// `BALANCE_CONSTRAINT_NONE` (0) is a valid choice, not a missing one.
pub fn balance_constraint(value: i32, field: &str) -> Result<BalanceConstraint, LedgerError> {
    match pb::BalanceConstraint::try_from(value) {
        Ok(pb::BalanceConstraint::None) => Ok(BalanceConstraint::None),
        Ok(pb::BalanceConstraint::DebitsMustNotExceedCredits) => {
            Ok(BalanceConstraint::DebitsMustNotExceedCredits)
        }
        Ok(pb::BalanceConstraint::CreditsMustNotExceedDebits) => {
            Ok(BalanceConstraint::CreditsMustNotExceedDebits)
        }
        Err(_) => Err(invalid(
            field,
            format!("unknown balance constraint {value}"),
        )),
    }
}

pub fn side(value: i32, field: &str) -> Result<Side, LedgerError> {
    match pb::Direction::try_from(value) {
        Ok(pb::Direction::Unspecified) => Err(required(field, "direction")),
        Ok(pb::Direction::Debit) => Ok(Side::Debit),
        Ok(pb::Direction::Credit) => Ok(Side::Credit),
        Err(_) => Err(invalid(field, format!("unknown direction {value}"))),
    }
}

/// Metadata, sorted so that equal maps are equal values.
pub fn metadata(map: HashMap<String, String>) -> Metadata {
    map.into_iter().collect()
}

fn proto_metadata(map: Metadata) -> HashMap<String, String> {
    map.into_iter().collect()
}

/// An empty string means "not given".
fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A listing's page size: 0 means the default, above the maximum is an error.
pub fn page_size(value: u32, field: &str) -> Result<usize, LedgerError> {
    let size = usize::try_from(value).unwrap_or(usize::MAX);
    match size {
        0 => Ok(PAGE_SIZE_DEFAULT),
        size if size > PAGE_SIZE_MAX => Err(invalid(
            field,
            format!("page size {value} is over the maximum of {PAGE_SIZE_MAX}"),
        )),
        size => Ok(size),
    }
}

/// A page token; empty means the first page.
pub fn page_token(token: String) -> Option<String> {
    non_empty(token)
}

/// A point in history; an absent `as_of` (or an empty one) means now.
pub fn as_of(value: Option<pb::AsOf>, field: &str) -> Result<AsOf, LedgerError> {
    match value.and_then(|as_of| as_of.point) {
        None => Ok(AsOf::Now),
        Some(pb::as_of::Point::Seq(seq)) => Ok(AsOf::Seq(seq)),
        Some(pb::as_of::Point::Time(time)) => {
            Ok(AsOf::Time(timestamp_ns(&time, &format!("{field}.time"))?))
        }
    }
}

// ---------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------

pub fn currency_spec(currency: pb::Currency) -> CurrencySpec {
    CurrencySpec {
        code: currency.code,
        scale: currency.scale,
    }
}

/// Field paths are relative to the spec (`type`, `constraint`).
pub fn account_spec(spec: pb::AccountSpec) -> Result<AccountSpec, LedgerError> {
    Ok(AccountSpec {
        account_type: account_type(spec.r#type, "type")?,
        constraint: balance_constraint(spec.constraint, "constraint")?,
        name: spec.name,
        currency: spec.currency,
        metadata: metadata(spec.metadata),
    })
}

/// Field paths are relative to the item (`kind`, `transaction.postings[1].amount`).
pub fn transaction_item(item: pb::TransactionItem) -> Result<TransactionItem, LedgerError> {
    use pb::transaction_item::Kind;
    let command = match item.kind {
        None => {
            return Err(required(
                "kind",
                "one of transaction, post_pending, void_pending or reverse",
            ))
        }
        Some(Kind::Transaction(spec)) => TransactionCommand::Transaction(
            transaction_spec(spec).map_err(|e| e.within("transaction"))?,
        ),
        Some(Kind::PostPending(spec)) => TransactionCommand::PostPending(
            post_pending_spec(spec).map_err(|e| e.within("post_pending"))?,
        ),
        Some(Kind::VoidPending(spec)) => TransactionCommand::VoidPending(void_pending_spec(spec)),
        Some(Kind::Reverse(spec)) => {
            TransactionCommand::Reverse(reverse_spec(spec).map_err(|e| e.within("reverse"))?)
        }
    };
    Ok(TransactionItem {
        command,
        linked: item.linked,
    })
}

pub fn posting_spec(posting: pb::Posting) -> Result<PostingSpec, LedgerError> {
    Ok(PostingSpec {
        side: side(posting.direction, "direction")?,
        amount: amount(&posting.amount, "amount")?,
        account: posting.account,
        currency: non_empty(posting.currency),
    })
}

pub fn transaction_spec(spec: pb::TransactionSpec) -> Result<TransactionSpec, LedgerError> {
    let postings = spec
        .postings
        .into_iter()
        .enumerate()
        .map(|(i, posting)| posting_spec(posting).map_err(|e| e.within(&format!("postings[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TransactionSpec {
        id: spec.id,
        postings,
        effective_at: optional_timestamp_ns(spec.effective_at.as_ref(), "effective_at")?,
        description: spec.description,
        metadata: metadata(spec.metadata),
        pending: spec.pending,
        timeout_seconds: spec.timeout_seconds,
    })
}

pub fn post_pending_spec(spec: pb::PostPendingSpec) -> Result<PostPendingSpec, LedgerError> {
    let amounts = spec
        .amounts
        .iter()
        .enumerate()
        .map(|(i, text)| amount(text, &format!("amounts[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PostPendingSpec {
        id: spec.id,
        pending_id: spec.pending_id,
        amounts,
        effective_at: optional_timestamp_ns(spec.effective_at.as_ref(), "effective_at")?,
        description: spec.description,
        metadata: metadata(spec.metadata),
    })
}

pub fn void_pending_spec(spec: pb::VoidPendingSpec) -> VoidPendingSpec {
    VoidPendingSpec {
        id: spec.id,
        pending_id: spec.pending_id,
        reason: spec.reason,
    }
}

pub fn reverse_spec(spec: pb::ReverseSpec) -> Result<ReverseSpec, LedgerError> {
    Ok(ReverseSpec {
        id: spec.id,
        transaction_id: spec.transaction_id,
        effective_at: optional_timestamp_ns(spec.effective_at.as_ref(), "effective_at")?,
        description: spec.description,
        metadata: metadata(spec.metadata),
    })
}

// ---------------------------------------------------------------------------
// Responses.
// ---------------------------------------------------------------------------

pub fn error_detail(error: &LedgerError) -> pb::ErrorDetail {
    pb::ErrorDetail {
        code: error.code.number() as i32,
        field: error.field.clone(),
        message: error.message.clone(),
    }
}

fn decimal_text(minor: u128, scale: u8) -> String {
    format_minor(minor as i128, scale)
}

fn signed_decimal_text(minor: i128, scale: u8) -> String {
    format_minor(minor, scale)
}

pub fn proto_account_type(account_type: AccountType) -> pb::AccountType {
    match account_type {
        AccountType::Asset => pb::AccountType::Asset,
        AccountType::Liability => pb::AccountType::Liability,
        AccountType::Equity => pb::AccountType::Equity,
        AccountType::Revenue => pb::AccountType::Revenue,
        AccountType::Expense => pb::AccountType::Expense,
    }
}

pub fn proto_balance_constraint(constraint: BalanceConstraint) -> pb::BalanceConstraint {
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

pub fn proto_direction(side: Side) -> pb::Direction {
    match side {
        Side::Debit => pb::Direction::Debit,
        Side::Credit => pb::Direction::Credit,
    }
}

pub fn proto_transaction_kind(kind: TransactionKind) -> pb::TransactionKind {
    match kind {
        TransactionKind::Standard => pb::TransactionKind::Standard,
        TransactionKind::Pending => pb::TransactionKind::Pending,
        TransactionKind::PostPending => pb::TransactionKind::PostPending,
        TransactionKind::VoidPending => pb::TransactionKind::VoidPending,
        TransactionKind::Reversal => pb::TransactionKind::Reversal,
    }
}

pub fn proto_pending_state(state: Option<PendingState>) -> pb::PendingState {
    match state {
        None => pb::PendingState::Unspecified,
        Some(PendingState::Open) => pb::PendingState::Open,
        Some(PendingState::Posted) => pb::PendingState::Posted,
        Some(PendingState::Voided) => pb::PendingState::Voided,
        Some(PendingState::Expired) => pb::PendingState::Expired,
    }
}

pub fn currency(view: CurrencyView) -> pb::Currency {
    pb::Currency {
        code: view.code,
        scale: u32::from(view.scale),
    }
}

/// The four totals and the two normal-side balances of an account.
pub fn balance(balance: &Balance, account_type: AccountType, scale: u8) -> pb::Balance {
    pb::Balance {
        debits_posted: decimal_text(balance.debits_posted, scale),
        credits_posted: decimal_text(balance.credits_posted, scale),
        debits_pending: decimal_text(balance.debits_pending, scale),
        credits_pending: decimal_text(balance.credits_pending, scale),
        balance: signed_decimal_text(balance.net_posted(account_type), scale),
        balance_with_pending: signed_decimal_text(balance.net_with_pending(account_type), scale),
    }
}

pub fn account(view: AccountView) -> pb::Account {
    pb::Account {
        id: view.id,
        balance: Some(balance(&view.balance, view.account_type, view.scale)),
        r#type: proto_account_type(view.account_type) as i32,
        constraint: proto_balance_constraint(view.constraint) as i32,
        name: view.name,
        currency: view.currency,
        metadata: proto_metadata(view.metadata),
        closed: view.closed,
        opened_seq: view.opened_seq,
        opened_at: Some(timestamp(view.opened_at)),
    }
}

pub fn posting(view: PostingView) -> pb::Posting {
    pb::Posting {
        direction: proto_direction(view.side) as i32,
        amount: decimal_text(view.amount_minor, view.scale),
        account: view.account,
        currency: view.currency,
    }
}

pub fn transaction(view: TransactionView) -> pb::Transaction {
    pb::Transaction {
        id: view.id,
        kind: proto_transaction_kind(view.kind) as i32,
        seq: view.seq,
        postings: view.postings.into_iter().map(posting).collect(),
        effective_at: Some(timestamp(view.effective_at)),
        recorded_at: Some(timestamp(view.recorded_at)),
        description: view.description,
        metadata: proto_metadata(view.metadata),
        pending_id: view.pending_id.unwrap_or_default(),
        reverses_id: view.reverses_id.unwrap_or_default(),
        pending_state: proto_pending_state(view.pending_state) as i32,
        expires_at: view.expires_at.map(timestamp),
        resolved_by: view.resolved_by.unwrap_or_default(),
        reversed_by: view.reversed_by.unwrap_or_default(),
        entry_hash: hex::encode(view.entry_hash),
    }
}

pub fn account_balance(view: AccountBalance) -> pb::AccountBalance {
    pb::AccountBalance {
        balance: Some(balance(&view.balance, view.account_type, view.scale)),
        r#type: proto_account_type(view.account_type) as i32,
        account: view.account,
        currency: view.currency,
    }
}

/// A change of an account's balance; the account's type and scale come from
/// the account, since a change does not carry them.
pub fn balance_change(
    change: BalanceChange,
    account_type: AccountType,
    scale: u8,
) -> pb::BalanceChange {
    pb::BalanceChange {
        seq: change.seq,
        kind: proto_transaction_kind(change.kind) as i32,
        effective_at: Some(timestamp(change.effective_at)),
        balance: Some(balance(&change.balance, account_type, scale)),
        transaction_id: change.transaction_id,
    }
}

/// A trial-balance line shows its net posted balance in one column, debit when
/// positive and credit otherwise, and zero (at the currency's scale) in the other.
pub fn trial_balance_line(line: TrialBalanceLine) -> pb::TrialBalanceLine {
    let zero = decimal_text(0, line.scale);
    let amount = decimal_text(line.debit_minus_credit.unsigned_abs(), line.scale);
    let (debit, credit) = if line.debit_minus_credit > 0 {
        (amount, zero)
    } else {
        (zero, amount)
    };
    pb::TrialBalanceLine {
        r#type: line
            .account_type
            .map_or(pb::AccountType::Unspecified, proto_account_type) as i32,
        account: line.account,
        currency: line.currency,
        debit,
        credit,
        accounts: line.accounts,
    }
}

pub fn trial_balance(trial: TrialBalance) -> pb::TrialBalance {
    pb::TrialBalance {
        as_of_seq: trial.as_of_seq,
        lines: trial.lines.into_iter().map(trial_balance_line).collect(),
        totals: trial
            .totals
            .into_iter()
            .map(|total| pb::CurrencyTotal {
                debit: decimal_text(total.debit, total.scale),
                credit: decimal_text(total.credit, total.scale),
                currency: total.currency,
            })
            .collect(),
    }
}

pub fn ledger_info(info: LedgerInfo) -> pb::LedgerInfo {
    pb::LedgerInfo {
        ledger_id: hex::encode(info.ledger_id),
        journal_length: info.journal_length,
        chain_head: hex::encode(info.chain_head),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A committed journal entry with its hashes, canonical bytes and a JSON form.
pub fn journal_entry(record: JournalRecord) -> Result<pb::JournalEntry, serde_json::Error> {
    Ok(pb::JournalEntry {
        seq: record.seq,
        entry_hash: record.entry_hash.to_vec(),
        prev_hash: record.prev_hash.to_vec(),
        recorded_at: Some(timestamp(record.entry.recorded_at)),
        kind: record.entry.body.kind_name().to_string(),
        json: serde_json::to_string(&record.entry)?,
        canonical: record.canonical,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn figures_beyond_a_decimal_format_exactly() {
        // Goal: a balance with pending, or a trial-balance total over many
        // accounts, may exceed 2^96 - 1 minor units; it is shown exactly
        // instead of panicking (rust_decimal cannot hold it).
        let max = tally_core::money::AMOUNT_MINOR_MAX;
        let full = Balance {
            debits_posted: max,
            credits_posted: 0,
            debits_pending: max,
            credits_pending: 0,
        };
        let shown = balance(&full, AccountType::Asset, 0);
        assert_eq!(shown.balance, max.to_string());
        assert_eq!(shown.balance_with_pending, (2 * max).to_string());
        let line = |account: &str, debit_minus_credit: i128| TrialBalanceLine {
            account: account.into(),
            account_type: Some(AccountType::Asset),
            currency: "BIG".into(),
            scale: 0,
            debit_minus_credit,
            accounts: 1,
        };
        let trial = TrialBalance {
            as_of_seq: 9,
            lines: vec![
                line("x:a", max as i128),
                line("x:b", max as i128),
                line("x:c", -2 * max as i128),
            ],
            totals: vec![crate::ledger::view::CurrencyTotal {
                currency: "BIG".into(),
                scale: 0,
                debit: 2 * max,
                credit: 2 * max,
            }],
        };
        let shown = trial_balance(trial);
        assert_eq!(shown.lines[2].credit, (2 * max).to_string());
        assert_eq!(shown.totals[0].debit, (2 * max).to_string());
        assert_eq!(shown.totals[0].credit, shown.totals[0].debit);
    }

    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    fn posting_pb(account: &str, direction: pb::Direction, amount: &str) -> pb::Posting {
        pb::Posting {
            account: account.to_string(),
            direction: direction as i32,
            amount: amount.to_string(),
            currency: String::new(),
        }
    }

    fn transfer_pb(id: &str, amount: &str) -> pb::TransactionSpec {
        pb::TransactionSpec {
            id: id.to_string(),
            postings: vec![
                posting_pb("assets:cash", pb::Direction::Debit, amount),
                posting_pb("revenue:sales", pb::Direction::Credit, amount),
            ],
            ..Default::default()
        }
    }

    fn item_pb(kind: pb::transaction_item::Kind) -> pb::TransactionItem {
        pb::TransactionItem {
            kind: Some(kind),
            linked: false,
        }
    }

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        // Goal: every representable instant survives proto -> ns -> proto.
        for ns in [0, 1, -1, 1_700_000_000_123_456_789, i64::MIN, i64::MAX] {
            let proto = timestamp(ns);
            assert!((0..1_000_000_000).contains(&proto.nanos));
            assert_eq!(timestamp_ns(&proto, "t"), Ok(ns));
        }
        assert_eq!(timestamp_ns(&ts(-1, 999_999_999), "t"), Ok(-1));
    }

    #[test]
    fn bad_timestamps_are_field_invalid() {
        // Goal: out-of-range nanos and instants beyond i64 nanoseconds are refused,
        // naming the field, never wrapped or clamped.
        for bad in [
            ts(0, -1),
            ts(0, 1_000_000_000),
            ts(i64::MAX, 0),
            ts(i64::MIN, 0),
        ] {
            let error = timestamp_ns(&bad, "effective_at").unwrap_err();
            assert_eq!(error.code, ErrorCode::FieldInvalid);
            assert_eq!(error.field, "effective_at");
        }
        // One past the largest representable instant.
        let max = timestamp(i64::MAX);
        let past = ts(max.seconds, max.nanos + 1);
        assert_eq!(
            timestamp_ns(&past, "t").unwrap_err().code,
            ErrorCode::FieldInvalid
        );
    }

    #[test]
    fn amounts_are_parsed_strictly() {
        // Goal: only plain decimals pass; an empty amount is missing, not malformed.
        assert_eq!(amount("12.50", "a"), Ok(d("12.50")));
        assert_eq!(amount("-3", "a"), Ok(d("-3")));
        assert_eq!(amount("", "a").unwrap_err().code, ErrorCode::FieldRequired);
        for bad in ["1e3", "+1", " 1", "1.", ".5", "1.2.3", "abc", "NaN"] {
            let error = amount(bad, "a").unwrap_err();
            assert_eq!(error.code, ErrorCode::FieldInvalid, "{bad}");
            assert_eq!(error.field, "a");
        }
    }

    #[test]
    fn enums_unspecified_is_required_and_unknown_is_invalid() {
        // Goal: a forgotten enum and a nonsense number are told apart.
        assert_eq!(account_type(1, "type"), Ok(AccountType::Asset));
        assert_eq!(account_type(5, "type"), Ok(AccountType::Expense));
        assert_eq!(
            account_type(0, "type").unwrap_err().code,
            ErrorCode::FieldRequired
        );
        assert_eq!(
            account_type(99, "type").unwrap_err().code,
            ErrorCode::FieldInvalid
        );
        assert_eq!(side(2, "direction"), Ok(Side::Credit));
        assert_eq!(
            side(0, "direction").unwrap_err().code,
            ErrorCode::FieldRequired
        );
        assert_eq!(
            side(-1, "direction").unwrap_err().code,
            ErrorCode::FieldInvalid
        );
        // NONE is a real choice for a constraint.
        assert_eq!(balance_constraint(0, "c"), Ok(BalanceConstraint::None));
        assert_eq!(
            balance_constraint(3, "c").unwrap_err().code,
            ErrorCode::FieldInvalid
        );
    }

    #[test]
    fn account_spec_converts_and_names_its_fields() {
        // Goal: a good spec converts field by field; a bad one names `type`.
        let mut spec = pb::AccountSpec {
            name: "assets:cash".to_string(),
            r#type: pb::AccountType::Asset as i32,
            currency: "USD".to_string(),
            constraint: pb::BalanceConstraint::DebitsMustNotExceedCredits as i32,
            metadata: HashMap::from([("b".to_string(), "2".to_string())]),
        };
        let converted = account_spec(spec.clone()).unwrap();
        assert_eq!(
            converted,
            AccountSpec {
                name: "assets:cash".to_string(),
                account_type: AccountType::Asset,
                currency: "USD".to_string(),
                constraint: BalanceConstraint::DebitsMustNotExceedCredits,
                metadata: Metadata::from([("b".to_string(), "2".to_string())]),
            }
        );
        spec.r#type = 0;
        let error = account_spec(spec).unwrap_err().within("accounts[0]");
        assert_eq!(error.code, ErrorCode::FieldRequired);
        assert_eq!(error.field, "accounts[0].type");
    }

    #[test]
    fn transaction_item_converts() {
        // Goal: a transfer item becomes the same command, with its timestamp in ns.
        let mut spec = transfer_pb("t1", "10.5");
        spec.effective_at = Some(ts(1, 5));
        spec.postings[0].currency = "USD".to_string();
        let item = transaction_item(pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::Transaction(spec)),
            linked: true,
        })
        .unwrap();
        assert!(item.linked);
        let TransactionCommand::Transaction(spec) = item.command else {
            panic!("not a transaction: {:?}", item.command);
        };
        assert_eq!(spec.id, "t1");
        assert_eq!(spec.effective_at, Some(1_000_000_005));
        assert_eq!(spec.postings[0].side, Side::Debit);
        assert_eq!(spec.postings[0].amount, d("10.5"));
        assert_eq!(spec.postings[0].currency.as_deref(), Some("USD"));
        assert_eq!(spec.postings[1].currency, None);
    }

    #[test]
    fn transaction_item_errors_carry_full_paths() {
        // Goal: the path of a bad field inside an item is exact, for every kind.
        let mut spec = transfer_pb("t1", "1");
        spec.postings[1].amount = "1,00".to_string();
        let error = transaction_item(item_pb(pb::transaction_item::Kind::Transaction(spec)))
            .unwrap_err()
            .within("items[3]");
        assert_eq!(error.code, ErrorCode::FieldInvalid);
        assert_eq!(error.field, "items[3].transaction.postings[1].amount");

        let mut spec = transfer_pb("t1", "1");
        spec.postings[0].direction = 0;
        let error =
            transaction_item(item_pb(pb::transaction_item::Kind::Transaction(spec))).unwrap_err();
        assert_eq!(error.code, ErrorCode::FieldRequired);
        assert_eq!(error.field, "transaction.postings[0].direction");

        let post = pb::PostPendingSpec {
            id: "p".to_string(),
            pending_id: "t".to_string(),
            amounts: vec!["1".to_string(), "x".to_string()],
            ..Default::default()
        };
        let error =
            transaction_item(item_pb(pb::transaction_item::Kind::PostPending(post))).unwrap_err();
        assert_eq!(error.field, "post_pending.amounts[1]");

        let reverse = pb::ReverseSpec {
            id: "r".to_string(),
            transaction_id: "t".to_string(),
            effective_at: Some(ts(0, -5)),
            ..Default::default()
        };
        let error =
            transaction_item(item_pb(pb::transaction_item::Kind::Reverse(reverse))).unwrap_err();
        assert_eq!(error.field, "reverse.effective_at");

        let error = transaction_item(pb::TransactionItem::default())
            .unwrap_err()
            .within("items[0]");
        assert_eq!(error.code, ErrorCode::FieldRequired);
        assert_eq!(error.field, "items[0].kind");
    }

    #[test]
    fn void_and_post_convert() {
        // Goal: the smaller item kinds keep every field.
        let item = transaction_item(item_pb(pb::transaction_item::Kind::VoidPending(
            pb::VoidPendingSpec {
                id: "v".to_string(),
                pending_id: "p".to_string(),
                reason: "why".to_string(),
            },
        )))
        .unwrap();
        assert_eq!(
            item.command,
            TransactionCommand::VoidPending(VoidPendingSpec {
                id: "v".to_string(),
                pending_id: "p".to_string(),
                reason: "why".to_string(),
            })
        );
        let post = post_pending_spec(pb::PostPendingSpec {
            id: "x".to_string(),
            pending_id: "p".to_string(),
            amounts: vec!["1.25".to_string()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(post.amounts, vec![d("1.25")]);
        assert_eq!(post.effective_at, None);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        // Goal: 0 is the default, the maximum passes, one more is refused by name.
        assert_eq!(page_size(0, "page_size"), Ok(PAGE_SIZE_DEFAULT));
        assert_eq!(page_size(7, "page_size"), Ok(7));
        assert_eq!(
            page_size(PAGE_SIZE_MAX as u32, "page_size"),
            Ok(PAGE_SIZE_MAX)
        );
        let error = page_size(PAGE_SIZE_MAX as u32 + 1, "page_size").unwrap_err();
        assert_eq!(error.code, ErrorCode::FieldInvalid);
        assert_eq!(error.field, "page_size");
        assert_eq!(page_token(String::new()), None);
        assert_eq!(page_token("abc".to_string()).as_deref(), Some("abc"));
    }

    #[test]
    fn as_of_converts() {
        // Goal: absent means now; a bad time names `as_of.time`.
        assert_eq!(as_of(None, "as_of"), Ok(AsOf::Now));
        assert_eq!(
            as_of(Some(pb::AsOf { point: None }), "as_of"),
            Ok(AsOf::Now)
        );
        let seq = pb::AsOf {
            point: Some(pb::as_of::Point::Seq(9)),
        };
        assert_eq!(as_of(Some(seq), "as_of"), Ok(AsOf::Seq(9)));
        let time = pb::AsOf {
            point: Some(pb::as_of::Point::Time(ts(2, 0))),
        };
        assert_eq!(as_of(Some(time), "as_of"), Ok(AsOf::Time(2_000_000_000)));
        let bad = pb::AsOf {
            point: Some(pb::as_of::Point::Time(ts(0, 1_000_000_000))),
        };
        assert_eq!(as_of(Some(bad), "as_of").unwrap_err().field, "as_of.time");
    }

    #[test]
    fn balances_print_at_the_currency_scale_on_the_normal_side() {
        // Goal: totals keep the currency's decimals; `balance` is signed on the
        // account's normal side, with and without pending amounts.
        let totals = Balance {
            debits_posted: 1_000,
            credits_posted: 250,
            debits_pending: 0,
            credits_pending: 1_000,
        };
        let asset = balance(&totals, AccountType::Asset, 2);
        assert_eq!(asset.debits_posted, "10.00");
        assert_eq!(asset.credits_posted, "2.50");
        assert_eq!(asset.debits_pending, "0.00");
        assert_eq!(asset.credits_pending, "10.00");
        assert_eq!(asset.balance, "7.50");
        assert_eq!(asset.balance_with_pending, "-2.50");
        let liability = balance(&totals, AccountType::Liability, 0);
        assert_eq!(liability.debits_posted, "1000");
        assert_eq!(liability.balance, "-750");
        assert_eq!(liability.balance_with_pending, "250");
    }

    #[test]
    fn trial_balance_lines_use_one_column() {
        // Goal: debit balances in the debit column, credit balances (and zero) in
        // the credit column, the other column a zero at the currency's scale.
        let line = |dmc: i128| TrialBalanceLine {
            account: "assets".to_string(),
            account_type: None,
            currency: "USD".to_string(),
            scale: 2,
            debit_minus_credit: dmc,
            accounts: 3,
        };
        let debit = trial_balance_line(line(1_234));
        assert_eq!(
            (debit.debit.as_str(), debit.credit.as_str()),
            ("12.34", "0.00")
        );
        assert_eq!(debit.r#type, pb::AccountType::Unspecified as i32);
        assert_eq!(debit.accounts, 3);
        let credit = trial_balance_line(line(-5));
        assert_eq!(
            (credit.debit.as_str(), credit.credit.as_str()),
            ("0.00", "0.05")
        );
        let zero = trial_balance_line(line(0));
        assert_eq!(
            (zero.debit.as_str(), zero.credit.as_str()),
            ("0.00", "0.00")
        );

        let trial = trial_balance(TrialBalance {
            as_of_seq: 4,
            lines: vec![],
            totals: vec![crate::ledger::view::CurrencyTotal {
                currency: "JPY".to_string(),
                scale: 0,
                debit: 7,
                credit: 7,
            }],
        });
        assert_eq!(trial.as_of_seq, 4);
        assert_eq!(trial.totals[0].debit, "7");
        assert_eq!(trial.totals[0].credit, "7");
    }

    #[test]
    fn transaction_view_converts() {
        // Goal: optional links become empty strings, the hash becomes hex, and
        // postings print at their scale.
        let view = TransactionView {
            id: "t1".to_string(),
            kind: TransactionKind::Pending,
            seq: 12,
            postings: vec![PostingView {
                account: "assets:cash".to_string(),
                side: Side::Credit,
                amount_minor: 5,
                currency: "BTC".to_string(),
                scale: 8,
            }],
            effective_at: 1_500_000_000,
            recorded_at: 2_000_000_000,
            description: "d".to_string(),
            metadata: Metadata::new(),
            pending_id: None,
            reverses_id: Some("t0".to_string()),
            pending_state: Some(PendingState::Open),
            expires_at: None,
            resolved_by: None,
            reversed_by: None,
            entry_hash: [0xab; 32],
        };
        let proto = transaction(view);
        assert_eq!(proto.kind, pb::TransactionKind::Pending as i32);
        assert_eq!(proto.pending_state, pb::PendingState::Open as i32);
        assert_eq!(proto.postings[0].amount, "0.00000005");
        assert_eq!(proto.postings[0].direction, pb::Direction::Credit as i32);
        assert_eq!(proto.effective_at, Some(ts(1, 500_000_000)));
        assert_eq!(proto.pending_id, "");
        assert_eq!(proto.reverses_id, "t0");
        assert_eq!(proto.expires_at, None);
        assert_eq!(proto.entry_hash, "ab".repeat(32));
    }

    #[test]
    fn error_detail_keeps_code_numbers() {
        // Goal: the proto enum and the core codes agree on every number.
        for &code in ErrorCode::ALL {
            let detail = error_detail(&LedgerError::new(code, "f", "m"));
            let proto = pb::ErrorCode::try_from(detail.code).unwrap();
            assert_eq!(proto.as_str_name(), code.name());
            assert_eq!(detail.field, "f");
        }
    }
}
