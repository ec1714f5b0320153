//! Human-readable output: aligned tables, key-value blocks, journal lines, CSV.
//!
//! Rendering is pure (domain values in, `String` out), so that every format is
//! unit-tested without a server. Amounts print exactly as the ledger holds them.

use std::time::SystemTime;

use tally_client::{
    Account, AccountHistory, Balance, Balances, Currency, ItemError, JournalEntry, LedgerInfo,
    Metadata, Transaction, TransactionRecorded, TrialBalance,
};

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    /// For numbers, so that digits line up.
    Right,
}

enum Row {
    Cells(Vec<String>),
    /// A line of dashes across the table, e.g. above the totals.
    Rule,
}

/// A plain-text table: a header, rows, two spaces between columns.
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Row>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table::with_columns(
            columns
                .iter()
                .map(|(name, align)| (name.to_string(), *align))
                .collect(),
        )
    }

    /// A table whose column names are known only at run time (e.g. group-by properties).
    pub fn with_columns(columns: Vec<(String, Align)>) -> Self {
        let (headers, aligns) = columns.into_iter().unzip();
        Table {
            headers,
            aligns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(Row::Cells(cells));
    }

    pub fn rule(&mut self) {
        self.rows.push(Row::Rule);
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            if let Row::Cells(cells) = row {
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        widths
    }

    pub fn render(&self) -> String {
        let widths = self.widths();
        let total_width = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        let mut out = self.line(&self.headers, &widths);
        for row in &self.rows {
            match row {
                Row::Cells(cells) => out.push_str(&self.line(cells, &widths)),
                Row::Rule => {
                    out.push_str(&"-".repeat(total_width));
                    out.push('\n');
                }
            }
        }
        out
    }

    fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(&self.aligns)
            .map(|((cell, width), align)| match align {
                Align::Left => format!("{cell:<width$}"),
                Align::Right => format!("{cell:>width$}"),
            })
            .collect();
        let mut line = padded.join("  ").trim_end().to_string();
        line.push('\n');
        line
    }
}

/// Aligned `key  value` lines; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let present: Vec<&(&str, String)> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let width = present.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    present
        .into_iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

/// RFC 3339, in UTC.
pub fn time(time: SystemTime) -> String {
    prost_types::Timestamp::from(time).to_string()
}

/// RFC 3339, in UTC, of nanoseconds since the epoch.
pub fn time_ns(ns: i64) -> String {
    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    let timestamp = prost_types::Timestamp {
        seconds: ns.div_euclid(NANOS_PER_SECOND),
        nanos: ns.rem_euclid(NANOS_PER_SECOND) as i32,
    };
    timestamp.to_string()
}

fn optional_time(value: Option<SystemTime>) -> String {
    value.map(time).unwrap_or_default()
}

pub fn metadata(metadata: &Metadata) -> String {
    let pairs: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(", ")
}

pub fn ledger_info(info: &LedgerInfo) -> String {
    fields(&[
        ("ledger id", info.ledger_id.clone()),
        ("journal length", info.journal_length.to_string()),
        ("chain head", info.chain_head.clone()),
        ("server version", info.server_version.clone()),
    ])
}

pub fn currencies(currencies: &[Currency]) -> String {
    let mut table = Table::new(&[("CODE", Align::Left), ("SCALE", Align::Right)]);
    for currency in currencies {
        table.row(vec![currency.code.clone(), currency.scale.to_string()]);
    }
    table.render()
}

pub fn accounts(accounts: &[Account]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("TYPE", Align::Left),
        ("CURRENCY", Align::Left),
        ("BALANCE", Align::Right),
        ("WITH PENDING", Align::Right),
        ("STATUS", Align::Left),
    ]);
    for account in accounts {
        table.row(vec![
            account.name.clone(),
            account.account_type.to_string(),
            account.currency.clone(),
            account.balance.balance.to_string(),
            account.balance.balance_with_pending.to_string(),
            if account.closed { "closed" } else { "open" }.to_string(),
        ]);
    }
    table.render()
}

fn balance_fields(balance: &Balance) -> Vec<(&'static str, String)> {
    vec![
        ("balance", balance.balance.to_string()),
        ("with pending", balance.balance_with_pending.to_string()),
        ("debits posted", balance.debits_posted.to_string()),
        ("credits posted", balance.credits_posted.to_string()),
        ("debits pending", balance.debits_pending.to_string()),
        ("credits pending", balance.credits_pending.to_string()),
    ]
}

pub fn account(account: &Account) -> String {
    let mut pairs = vec![
        ("name", account.name.clone()),
        ("id", account.id.to_string()),
        ("type", account.account_type.to_string()),
        ("currency", account.currency.clone()),
        ("constraint", account.constraint.to_string()),
        (
            "status",
            if account.closed { "closed" } else { "open" }.to_string(),
        ),
        ("opened seq", account.opened_seq.to_string()),
        ("opened at", optional_time(account.opened_at)),
        ("metadata", metadata(&account.metadata)),
    ];
    pairs.extend(balance_fields(&account.balance));
    fields(&pairs)
}

pub fn transaction(tx: &Transaction) -> String {
    let pending = match tx.pending_state {
        Some(state) => state.to_string(),
        None => String::new(),
    };
    let mut out = fields(&[
        ("id", tx.id.clone()),
        ("kind", tx.kind.to_string()),
        ("seq", tx.seq.to_string()),
        ("effective at", time(tx.effective_at)),
        ("recorded at", time(tx.recorded_at)),
        ("description", tx.description.clone()),
        ("metadata", metadata(&tx.metadata)),
        ("pending id", tx.pending_id.clone().unwrap_or_default()),
        ("reverses", tx.reverses_id.clone().unwrap_or_default()),
        ("pending state", pending),
        ("expires at", optional_time(tx.expires_at)),
        ("resolved by", tx.resolved_by.clone().unwrap_or_default()),
        ("reversed by", tx.reversed_by.clone().unwrap_or_default()),
        ("entry hash", tx.entry_hash.clone()),
    ]);
    out.push('\n');
    out.push_str(&postings(tx));
    out
}

fn postings(tx: &Transaction) -> String {
    let mut table = Table::new(&[
        ("ACCOUNT", Align::Left),
        ("DEBIT", Align::Right),
        ("CREDIT", Align::Right),
        ("CURRENCY", Align::Left),
    ]);
    for posting in &tx.postings {
        let amount = posting.amount.to_string();
        let (debit, credit) = match posting.direction {
            tally_client::Direction::Debit => (amount, String::new()),
            tally_client::Direction::Credit => (String::new(), amount),
        };
        let currency = posting.currency.clone().unwrap_or_default();
        table.row(vec![posting.account.clone(), debit, credit, currency]);
    }
    table.render()
}

pub fn transactions(transactions: &[Transaction]) -> String {
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("ID", Align::Left),
        ("KIND", Align::Left),
        ("EFFECTIVE AT", Align::Left),
        ("POSTINGS", Align::Left),
        ("DESCRIPTION", Align::Left),
    ]);
    for tx in transactions {
        table.row(vec![
            tx.seq.to_string(),
            tx.id.clone(),
            tx.kind.to_string(),
            time(tx.effective_at),
            posting_summary(tx),
            tx.description.clone(),
        ]);
    }
    table.render()
}

/// `dr assets:cash 10.00, cr revenue:sales 10.00` — a transaction on one line.
fn posting_summary(tx: &Transaction) -> String {
    let parts: Vec<String> = tx
        .postings
        .iter()
        .map(|posting| {
            let side = match posting.direction {
                tally_client::Direction::Debit => "dr",
                tally_client::Direction::Credit => "cr",
            };
            format!("{side} {} {}", posting.account, posting.amount)
        })
        .collect();
    parts.join(", ")
}

/// One line per item of a batch: recorded, replayed, or the error.
pub fn transaction_results(results: &[Result<TransactionRecorded, ItemError>]) -> String {
    let mut table = Table::new(&[
        ("INDEX", Align::Right),
        ("ID", Align::Left),
        ("OUTCOME", Align::Left),
        ("SEQ", Align::Right),
        ("DETAIL", Align::Left),
    ]);
    for (index, result) in results.iter().enumerate() {
        let cells = match result {
            Ok(recorded) => vec![
                recorded.transaction.id.clone(),
                if recorded.replayed {
                    "replayed"
                } else {
                    "recorded"
                }
                .to_string(),
                recorded.transaction.seq.to_string(),
                recorded.transaction.kind.to_string(),
            ],
            Err(error) => vec![
                String::new(),
                "error".to_string(),
                String::new(),
                item_error_detail(error),
            ],
        };
        let mut row = vec![index.to_string()];
        row.extend(cells);
        table.row(row);
    }
    table.render()
}

/// `CODE: message (field: path)`, the shape of every error `tally` prints.
pub fn item_error_detail(error: &ItemError) -> String {
    let mut text = format!("{}: {}", error.code.as_str_name(), error.message);
    if !error.field.is_empty() {
        text.push_str(&format!(" (field: {})", error.field));
    }
    text
}

pub fn balances(balances: &Balances) -> String {
    let mut table = Table::new(&[
        ("ACCOUNT", Align::Left),
        ("CURRENCY", Align::Left),
        ("BALANCE", Align::Right),
        ("WITH PENDING", Align::Right),
        ("DEBITS POSTED", Align::Right),
        ("CREDITS POSTED", Align::Right),
        ("DEBITS PENDING", Align::Right),
        ("CREDITS PENDING", Align::Right),
    ]);
    for line in &balances.balances {
        let balance = &line.balance;
        table.row(vec![
            line.account.clone(),
            line.currency.clone(),
            balance.balance.to_string(),
            balance.balance_with_pending.to_string(),
            balance.debits_posted.to_string(),
            balance.credits_posted.to_string(),
            balance.debits_pending.to_string(),
            balance.credits_pending.to_string(),
        ]);
    }
    format!("{}as of seq {}\n", table.render(), balances.as_of_seq)
}

/// The opening balance first, then each change with the balance after it.
pub fn history(history: &AccountHistory) -> String {
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("TRANSACTION", Align::Left),
        ("KIND", Align::Left),
        ("EFFECTIVE AT", Align::Left),
        ("BALANCE", Align::Right),
        ("WITH PENDING", Align::Right),
    ]);
    table.row(vec![
        String::new(),
        "(opening)".to_string(),
        String::new(),
        String::new(),
        history.opening.balance.to_string(),
        history.opening.balance_with_pending.to_string(),
    ]);
    for change in &history.changes {
        table.row(vec![
            change.seq.to_string(),
            change.transaction_id.clone(),
            change.kind.to_string(),
            time(change.effective_at),
            change.balance.balance.to_string(),
            change.balance.balance_with_pending.to_string(),
        ]);
    }
    table.render()
}

/// The trial balance as an aligned table, with one total line per currency.
pub fn trial_balance(trial_balance: &TrialBalance) -> String {
    let mut table = Table::new(&[
        ("ACCOUNT", Align::Left),
        ("TYPE", Align::Left),
        ("CURRENCY", Align::Left),
        ("DEBIT", Align::Right),
        ("CREDIT", Align::Right),
        ("ACCOUNTS", Align::Right),
    ]);
    for line in &trial_balance.lines {
        table.row(vec![
            line.account.clone(),
            line_type(line),
            line.currency.clone(),
            line.debit.to_string(),
            line.credit.to_string(),
            line.accounts.to_string(),
        ]);
    }
    table.rule();
    for total in &trial_balance.totals {
        table.row(vec![
            "TOTAL".to_string(),
            String::new(),
            total.currency.clone(),
            total.debit.to_string(),
            total.credit.to_string(),
        ]);
    }
    format!("{}as of seq {}\n", table.render(), trial_balance.as_of_seq)
}

/// A roll-up that mixes account types shows `mixed`.
fn line_type(line: &tally_client::TrialBalanceLine) -> String {
    line.account_type
        .map_or_else(|| "mixed".to_string(), |t| t.to_string())
}

/// The trial balance lines as CSV. Totals are left out so that summing a column
/// gives the total, as a spreadsheet user expects.
pub fn trial_balance_csv(trial_balance: &TrialBalance) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["account", "type", "currency", "debit", "credit", "accounts"])?;
    for line in &trial_balance.lines {
        writer.write_record([
            line.account.clone(),
            line_type(line),
            line.currency.clone(),
            line.debit.to_string(),
            line.credit.to_string(),
            line.accounts.to_string(),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|error| error.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `seq  short-hash  time  kind  {compact json}` on one line.
pub fn journal_line(entry: &JournalEntry) -> String {
    let hash = entry.entry_hash_hex();
    let short_hash = hash.get(..12).unwrap_or(&hash);
    format!(
        "{}  {}  {}  {}  {}",
        entry.seq,
        short_hash,
        time(entry.recorded_at),
        entry.kind,
        compact_json(&entry.json)
    )
}

/// The entry JSON without whitespace; kept as sent when it does not parse.
fn compact_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.to_string(),
        Err(_) => text.replace('\n', " "),
    }
}

pub fn api_keys(keys: &[tally_client::ApiKey]) -> String {
    let mut table = Table::new(&[
        ("KEY ID", Align::Left),
        ("NAME", Align::Left),
        ("ROLE", Align::Left),
        ("READ-ONLY", Align::Left),
        ("CREATED", Align::Right),
        ("REVOKED", Align::Right),
    ]);
    for key in keys {
        table.row(vec![
            key.key_id.clone(),
            key.name.clone(),
            key.role.name().to_string(),
            if key.read_only { "yes" } else { "no" }.to_string(),
            key.created_seq.to_string(),
            key.revoked_seq
                .map(|seq| seq.to_string())
                .unwrap_or_default(),
        ]);
    }
    table.render()
}

pub fn api_key_created(created: &tally_client::ApiKeyCreated) -> String {
    format!(
        "{}\nthe token is shown only now; store it:\n\n    {}\n",
        api_keys(std::slice::from_ref(&created.api_key)).trim_end(),
        created.token
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use std::time::Duration;
    use tally_client::{AccountType, CurrencyTotal, ErrorCode, TrialBalanceLine};

    fn sample_trial_balance() -> TrialBalance {
        TrialBalance {
            as_of_seq: 12,
            lines: vec![
                TrialBalanceLine {
                    account: "assets:cash".into(),
                    account_type: Some(AccountType::Asset),
                    currency: "USD".into(),
                    debit: dec!(110.00),
                    credit: dec!(0),
                    accounts: 1,
                },
                TrialBalanceLine {
                    account: "revenue".into(),
                    account_type: None,
                    currency: "USD".into(),
                    debit: dec!(0),
                    credit: dec!(110.00),
                    accounts: 2,
                },
            ],
            totals: vec![CurrencyTotal {
                currency: "USD".into(),
                debit: dec!(110.00),
                credit: dec!(110.00),
            }],
        }
    }

    #[test]
    fn trial_balance_table_is_aligned_with_totals() {
        // Numbers right-aligned, a rule, then one TOTAL line per currency.
        let expected = "\
ACCOUNT      TYPE   CURRENCY   DEBIT  CREDIT  ACCOUNTS
assets:cash  asset  USD       110.00       0         1
revenue      mixed  USD            0  110.00         2
------------------------------------------------------
TOTAL               USD       110.00  110.00
as of seq 12
";
        assert_eq!(trial_balance(&sample_trial_balance()), expected);
    }

    #[test]
    fn trial_balance_csv_has_lines_only() {
        // A header and one record per line; amounts exactly as held.
        let expected = "\
account,type,currency,debit,credit,accounts
assets:cash,asset,USD,110.00,0,1
revenue,mixed,USD,0,110.00,2
";
        assert_eq!(
            trial_balance_csv(&sample_trial_balance()).unwrap(),
            expected
        );
    }

    #[test]
    fn csv_quotes_awkward_names() {
        // A comma or quote in a field must not shift the columns.
        let mut tb = sample_trial_balance();
        tb.lines[0].account = "odd,\"name\"".into();
        let csv = trial_balance_csv(&tb).unwrap();
        assert!(csv.contains("\"odd,\"\"name\"\"\",asset"), "{csv}");
    }

    #[test]
    fn table_pads_short_rows_and_trims_trailing_space() {
        // Missing cells are blank and lines carry no trailing spaces.
        let mut table = Table::new(&[("A", Align::Left), ("NUMBER", Align::Right)]);
        table.row(vec!["long value".into()]);
        table.row(vec!["x".into(), "7".into()]);
        assert_eq!(
            table.render(),
            "A           NUMBER\nlong value\nx                7\n"
        );
    }

    #[test]
    fn journal_line_is_compact() {
        // seq, 12 hex digits of hash, RFC 3339 time, kind, JSON without spaces.
        let entry = JournalEntry {
            seq: 3,
            entry_hash: vec![0xab; 32],
            prev_hash: vec![0; 32],
            recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(86_400),
            kind: "transaction_recorded".into(),
            json: "{\n  \"id\": \"tx-1\"\n}".into(),
            canonical: vec![],
        };
        assert_eq!(
            journal_line(&entry),
            "3  abababababab  1970-01-02T00:00:00Z  transaction_recorded  {\"id\":\"tx-1\"}"
        );
    }

    #[test]
    fn item_error_detail_names_the_field() {
        // The same shape as the CLI's error lines.
        let error = ItemError {
            index: 1,
            code: ErrorCode::TransactionUnbalanced,
            field: "items[1].transaction.postings".into(),
            message: "debits 10 != credits 9".into(),
        };
        assert_eq!(
            item_error_detail(&error),
            "TRANSACTION_UNBALANCED: debits 10 != credits 9 (field: items[1].transaction.postings)"
        );
    }

    #[test]
    fn fields_skip_empty_values() {
        // Absent optional facts do not print as empty lines.
        let text = fields(&[
            ("id", "t1".into()),
            ("description", String::new()),
            ("seq", "4".into()),
        ]);
        assert_eq!(text, "id   t1\nseq  4\n");
    }
}
