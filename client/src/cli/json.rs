//! `--json` output. Amounts are JSON strings, never numbers, so that no reader
//! turns `0.10` into a float; times are RFC 3339 strings.

use serde_json::{json, Map, Value};
use tally_client::{
    Account, AccountHistory, Balance, Balances, Currency, ItemError, JournalEntry, LedgerInfo,
    Metadata, Posting, Transaction, TransactionRecorded, TrialBalance,
};

use super::render::time;

pub fn ledger_info(info: &LedgerInfo) -> Value {
    json!({
        "ledger_id": info.ledger_id,
        "journal_length": info.journal_length,
        "chain_head": info.chain_head,
        "server_version": info.server_version,
    })
}

pub fn currency(currency: &Currency) -> Value {
    json!({ "code": currency.code, "scale": currency.scale })
}

pub fn metadata(metadata: &Metadata) -> Value {
    Value::Object(
        metadata
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect::<Map<_, _>>(),
    )
}

pub fn balance(balance: &Balance) -> Value {
    json!({
        "debits_posted": balance.debits_posted.to_string(),
        "credits_posted": balance.credits_posted.to_string(),
        "debits_pending": balance.debits_pending.to_string(),
        "credits_pending": balance.credits_pending.to_string(),
        "balance": balance.balance.to_string(),
        "balance_with_pending": balance.balance_with_pending.to_string(),
    })
}

pub fn account(account: &Account) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "type": account.account_type.as_str(),
        "currency": account.currency,
        "constraint": account.constraint.as_str(),
        "metadata": metadata(&account.metadata),
        "closed": account.closed,
        "opened_seq": account.opened_seq,
        "opened_at": account.opened_at.map(time),
        "balance": balance(&account.balance),
    })
}

fn posting(posting: &Posting) -> Value {
    json!({
        "account": posting.account,
        "direction": posting.direction.as_str(),
        "amount": posting.amount.to_string(),
        "currency": posting.currency,
    })
}

pub fn transaction(tx: &Transaction) -> Value {
    json!({
        "id": tx.id,
        "kind": tx.kind.as_str(),
        "seq": tx.seq,
        "postings": tx.postings.iter().map(posting).collect::<Vec<_>>(),
        "effective_at": time(tx.effective_at),
        "recorded_at": time(tx.recorded_at),
        "description": tx.description,
        "metadata": metadata(&tx.metadata),
        "pending_id": tx.pending_id,
        "reverses_id": tx.reverses_id,
        "pending_state": tx.pending_state.map(|state| state.as_str()),
        "expires_at": tx.expires_at.map(time),
        "resolved_by": tx.resolved_by,
        "reversed_by": tx.reversed_by,
        "entry_hash": tx.entry_hash,
    })
}

pub fn item_error(error: &ItemError) -> Value {
    json!({
        "index": error.index,
        "code": error.code.as_str_name(),
        "field": error.field,
        "message": error.message,
    })
}

/// One object per item: `{"index", "replayed", "transaction"}` or `{"index", "error"}`.
pub fn transaction_results(results: &[Result<TransactionRecorded, ItemError>]) -> Value {
    let items = results
        .iter()
        .enumerate()
        .map(|(index, result)| match result {
            Ok(recorded) => json!({
                "index": index,
                "replayed": recorded.replayed,
                "transaction": transaction(&recorded.transaction),
            }),
            Err(error) => json!({ "index": index, "error": item_error(error) }),
        });
    Value::Array(items.collect())
}

pub fn balances(balances: &Balances) -> Value {
    let lines = balances.balances.iter().map(|line| {
        json!({
            "account": line.account,
            "type": line.account_type.as_str(),
            "currency": line.currency,
            "balance": balance(&line.balance),
        })
    });
    json!({ "as_of_seq": balances.as_of_seq, "balances": lines.collect::<Vec<_>>() })
}

pub fn history(history: &AccountHistory) -> Value {
    let changes = history.changes.iter().map(|change| {
        json!({
            "seq": change.seq,
            "transaction_id": change.transaction_id,
            "kind": change.kind.as_str(),
            "effective_at": time(change.effective_at),
            "balance": balance(&change.balance),
        })
    });
    json!({ "opening": balance(&history.opening), "changes": changes.collect::<Vec<_>>() })
}

pub fn trial_balance(trial_balance: &TrialBalance) -> Value {
    let lines = trial_balance.lines.iter().map(|line| {
        json!({
            "account": line.account,
            "type": line.account_type.map(|t| t.as_str()),
            "currency": line.currency,
            "debit": line.debit.to_string(),
            "credit": line.credit.to_string(),
            "accounts": line.accounts,
        })
    });
    let totals = trial_balance.totals.iter().map(|total| {
        json!({
            "currency": total.currency,
            "debit": total.debit.to_string(),
            "credit": total.credit.to_string(),
        })
    });
    json!({
        "as_of_seq": trial_balance.as_of_seq,
        "lines": lines.collect::<Vec<_>>(),
        "totals": totals.collect::<Vec<_>>(),
    })
}

/// The entry with its hashes in hex and its JSON body parsed (kept as a string
/// when it does not parse).
pub fn journal_entry(entry: &JournalEntry) -> Value {
    let body = serde_json::from_str::<Value>(&entry.json)
        .unwrap_or_else(|_| Value::String(entry.json.clone()));
    json!({
        "seq": entry.seq,
        "entry_hash": entry.entry_hash_hex(),
        "prev_hash": entry.prev_hash_hex(),
        "recorded_at": time(entry.recorded_at),
        "kind": entry.kind,
        "entry": body,
    })
}

pub fn api_key(key: &tally_client::ApiKey) -> Value {
    json!({
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role.name(),
        "read_only": key.read_only,
        "created_seq": key.created_seq,
        "revoked_seq": key.revoked_seq,
    })
}

pub fn api_key_created(created: &tally_client::ApiKeyCreated) -> Value {
    json!({ "api_key": api_key(&created.api_key), "token": created.token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use tally_client::{AccountType, CurrencyTotal, TrialBalanceLine};

    #[test]
    fn amounts_are_strings() {
        // `0.10` must survive any JSON reader, so it travels as a string.
        let tb = TrialBalance {
            as_of_seq: 1,
            lines: vec![TrialBalanceLine {
                account: "assets:cash".into(),
                account_type: Some(AccountType::Asset),
                currency: "USD".into(),
                debit: dec!(0.10),
                credit: dec!(0),
                accounts: 1,
            }],
            totals: vec![CurrencyTotal {
                currency: "USD".into(),
                debit: dec!(0.10),
                credit: dec!(0.10),
            }],
        };
        let value = trial_balance(&tb);
        assert_eq!(value["lines"][0]["debit"], "0.10");
        assert_eq!(value["lines"][0]["type"], "asset");
        assert_eq!(value["totals"][0]["credit"], "0.10");
    }
}
