//! The command line of `tally`, declared with clap. Values are parsed into domain
//! types here, so that a malformed amount or time is a usage error (exit 2) before
//! anything is sent.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use tally_client::{AccountType, AsOf, BalanceConstraint, Decimal};

/// Where `tally` connects unless told otherwise; `tallyd` listens there by default.
pub const SERVER_DEFAULT: &str = "http://127.0.0.1:50051";

/// Command-line client of the Tally ledger.
#[derive(Debug, Parser)]
#[command(name = "tally", version)]
pub struct Cli {
    /// Address of the tallyd gRPC endpoint: host:port or http://host:port, or
    /// https://host:port for TLS (with --ca-cert).
    #[arg(long, global = true, env = "TALLY_SERVER", default_value = SERVER_DEFAULT)]
    pub server: String,
    /// Api key, sent as `authorization: Bearer <key>`.
    #[arg(long, global = true, env = "TALLY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA certificate (PEM) that an https:// server's certificate must chain to.
    #[arg(long, global = true, env = "TALLY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Deadline of each call: `30s`, `500ms`, `2m` or plain seconds.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print JSON instead of tables and text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Identity and size of the ledger.
    Info,
    /// Define and list currencies.
    #[command(subcommand)]
    Currency(CurrencyCommand),
    /// Open, list, show and close accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Record and read transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Balances of accounts, now or at a point in history.
    Balance(BalanceArgs),
    /// Trial balance, per account or rolled up by name prefix.
    TrialBalance(TrialBalanceArgs),
    /// Read the journal.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Signed checkpoints, proofs and exports, and their offline verification.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// API keys: create, rotate, revoke, list (admin keys), whoami.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; its token is printed this once.
    Create {
        /// A label, e.g. billing-frontend.
        #[arg(long)]
        name: String,
        /// admin, poster, finance or auditor.
        #[arg(long)]
        role: tally_client::Role,
        /// Restrict the key to read calls.
        #[arg(long)]
        read_only: bool,
    },
    /// Revoke a key: calls with it fail from now on.
    Revoke {
        /// The key id (the 16 hex digits after `tly_`).
        key_id: String,
    },
    /// Rotate a key: a new key with the same name and role (its token is
    /// printed this once), and the old key revoked.
    Rotate {
        /// The key id of the key to replace.
        key_id: String,
    },
    /// List every key (never their secrets).
    List,
    /// Show the key this command runs with.
    Whoami,
}

#[derive(Debug, Subcommand)]
pub enum CurrencyCommand {
    /// Define a currency (idempotent for the same scale).
    Define {
        /// Currency code, e.g. USD.
        code: String,
        /// Decimal places of its amounts (USD 2, JPY 0).
        #[arg(long)]
        scale: u32,
    },
    /// List the defined currencies.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Open an account (idempotent for the same fields).
    Open(OpenAccountArgs),
    /// List accounts.
    List {
        /// Only accounts whose name starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Show an account and its balance.
    Show { name: String },
    /// Close an account with no balance and no pending amounts.
    Close { name: String },
    /// Every change of an account's balance, from its opening balance.
    History { name: String },
}

#[derive(Debug, Args)]
pub struct OpenAccountArgs {
    /// Hierarchical name, e.g. assets:receivable:acme.
    pub name: String,
    /// asset, liability, equity, revenue or expense.
    #[arg(long = "type")]
    pub account_type: AccountType,
    #[arg(long)]
    pub currency: String,
    /// none, debits-must-not-exceed-credits or credits-must-not-exceed-debits.
    #[arg(long, default_value = "none")]
    pub constraint: BalanceConstraint,
    /// Metadata as key=value; repeatable.
    #[arg(long = "meta", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Record a transaction, or the transactions of a JSON file.
    Post(PostArgs),
    /// Post a pending transaction, in full or in part.
    PostPending(PostPendingArgs),
    /// Void a pending transaction.
    Void(VoidArgs),
    /// Reverse a posted transaction.
    Reverse(ReverseArgs),
    /// Show a transaction.
    Show { id: String },
    /// List transactions by effective time.
    List(ListTransactionsArgs),
}

#[derive(Debug, Args)]
pub struct PostArgs {
    /// Transaction id (the idempotency key).
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub id: Option<String>,
    /// A debit as ACCOUNT=AMOUNT; repeatable.
    #[arg(long, value_parser = parse_account_amount, conflicts_with = "file")]
    pub debit: Vec<(String, Decimal)>,
    /// A credit as ACCOUNT=AMOUNT; repeatable.
    #[arg(long, value_parser = parse_account_amount, conflicts_with = "file")]
    pub credit: Vec<(String, Decimal)>,
    #[arg(long, conflicts_with = "file")]
    pub description: Option<String>,
    /// Metadata as key=value; repeatable.
    #[arg(long = "meta", value_parser = parse_key_value, conflicts_with = "file")]
    pub metadata: Vec<(String, String)>,
    /// Effective time, RFC 3339 (default: when the ledger records it).
    #[arg(long, value_parser = parse_time, conflicts_with = "file")]
    pub effective_at: Option<SystemTime>,
    /// Reserve the amounts instead of posting them.
    #[arg(long, conflicts_with = "file")]
    pub pending: bool,
    /// Pending only: expire after this many seconds.
    #[arg(long, requires = "pending")]
    pub timeout_secs: Option<u64>,
    /// A JSON file holding one transaction object or an array of them.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PostPendingArgs {
    /// Id of this post (its own idempotency key).
    pub id: String,
    /// The pending transaction to post.
    #[arg(long)]
    pub pending_id: String,
    /// Partial post: one amount per pending posting, in order; repeatable.
    #[arg(long = "amount", value_parser = parse_decimal)]
    pub amounts: Vec<Decimal>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long = "meta", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    #[arg(long, value_parser = parse_time)]
    pub effective_at: Option<SystemTime>,
}

#[derive(Debug, Args)]
pub struct VoidArgs {
    /// Id of this void (its own idempotency key).
    pub id: String,
    /// The pending transaction to void.
    #[arg(long)]
    pub pending_id: String,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// Id of the reversal (its own idempotency key).
    pub id: String,
    /// The posted transaction to reverse.
    #[arg(long = "of")]
    pub transaction_id: String,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long = "meta", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    #[arg(long, value_parser = parse_time)]
    pub effective_at: Option<SystemTime>,
}

#[derive(Debug, Args)]
pub struct ListTransactionsArgs {
    /// Only transactions touching this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Effective at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<SystemTime>,
    /// Effective before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub to: Option<SystemTime>,
    /// At most this many transactions.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// A point in history: `--at-seq N` or `--at-time T`, or now.
#[derive(Debug, Args)]
pub struct AsOfArgs {
    /// The state after the journal entry with this seq.
    #[arg(long, conflicts_with = "at_time")]
    pub at_seq: Option<u64>,
    /// Postings effective at or before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub at_time: Option<SystemTime>,
}

impl AsOfArgs {
    pub fn as_of(&self) -> AsOf {
        match (self.at_seq, self.at_time) {
            (Some(seq), _) => AsOf::Seq(seq),
            (None, Some(time)) => AsOf::Time(time),
            (None, None) => AsOf::Now,
        }
    }
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// Account names.
    #[arg(required = true)]
    pub accounts: Vec<String>,
    #[command(flatten)]
    pub as_of: AsOfArgs,
}

#[derive(Debug, Args)]
pub struct TrialBalanceArgs {
    #[command(flatten)]
    pub as_of: AsOfArgs,
    /// Roll account names up to this many segments (0 = no roll-up).
    #[arg(long, default_value_t = 0)]
    pub depth: u32,
    /// Only accounts whose name starts with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Only this currency.
    #[arg(long)]
    pub currency: Option<String>,
    /// Print CSV (the lines only, so that the columns sum to the totals).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Print journal entries, one line each.
    Tail {
        /// First seq to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep running and print new entries as they are committed.
        #[arg(long)]
        follow: bool,
    },
}

/// `tally audit`: the online commands fetch signed checkpoints and proofs; the
/// `verify-*` commands check files offline and never connect to a server.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print (or write) a signed checkpoint: the latest, of size N, or a new one.
    Checkpoint {
        /// The checkpoint of exactly this many entries.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "create")]
        size: Option<u64>,
        /// Sign a checkpoint of the journal as it is now.
        #[arg(long)]
        create: bool,
        /// Write the note to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The ledger's signing keys (vkey, and the seq from which each signs).
    Keys,
    /// Write an inclusion proof bundle of one entry.
    ProveInclusion {
        /// The entry's seq.
        #[arg(long)]
        seq: u64,
        /// Prove against the checkpoint of this many entries (default: a new one).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        size: Option<u64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a consistency proof bundle from an older checkpoint to a newer one.
    ProveConsistency {
        /// A file holding the older signed checkpoint note.
        #[arg(long)]
        old: PathBuf,
        /// Prove up to the checkpoint of this many entries (default: a new one).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        size: Option<u64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the journal export file up to a checkpoint.
    Export {
        #[arg(long)]
        out: PathBuf,
        /// Export up to the checkpoint of this many entries (default: a new one).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        size: Option<u64>,
    },
    /// Verify a signed checkpoint note (offline).
    VerifyCheckpoint(VerifyArgs),
    /// Verify an inclusion proof bundle and print the entry (offline).
    VerifyInclusion(VerifyArgs),
    /// Verify a consistency proof bundle (offline).
    VerifyConsistency(VerifyArgs),
    /// Verify a journal export file and print the re-derived balances (offline).
    VerifyExport(VerifyArgs),
    /// Follow the ledger's checkpoints: each must extend the last one verified.
    Watch(WatchArgs),
}

impl AuditCommand {
    /// True for the commands that only read files and must never connect.
    pub fn is_offline(&self) -> bool {
        matches!(
            self,
            AuditCommand::VerifyCheckpoint(_)
                | AuditCommand::VerifyInclusion(_)
                | AuditCommand::VerifyConsistency(_)
                | AuditCommand::VerifyExport(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The file to verify.
    pub file: PathBuf,
    /// A trusted key: a C2SP vkey, or @PATH of a file with one vkey per line; repeatable.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Holds the last verified signed checkpoint; created on first use.
    #[arg(long)]
    pub state: PathBuf,
    /// A trusted key: a C2SP vkey, or @PATH of a file with one vkey per line; repeatable.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// Time between rounds, in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
    /// Check once and exit.
    #[arg(long)]
    pub once: bool,
}

/// `ACCOUNT=AMOUNT`, e.g. `assets:cash=10.00`. Account names never hold `=`.
pub fn parse_account_amount(text: &str) -> Result<(String, Decimal), String> {
    let (account, amount) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ACCOUNT=AMOUNT, got {text:?}"))?;
    if account.is_empty() {
        return Err(format!("missing account in {text:?}"));
    }
    Ok((account.to_string(), parse_decimal(amount)?))
}

/// A decimal amount, written plainly (`10.00`); no exponents, no floats.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let invalid = || format!("{text:?} is not a decimal amount (e.g. 10.00)");
    // rust_decimal also reads `1e3` and `1_000`; an amount on a ledger should be
    // written the way it is booked.
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !plain {
        return Err(invalid());
    }
    // `from_str_exact` refuses what it would have to round.
    Decimal::from_str_exact(text).map_err(|_| invalid())
}

/// `key=value`; the value may be empty and may hold `=`.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// An RFC 3339 time, e.g. `2024-05-01T12:00:00Z` or `2024-05-01T14:00:00+02:00`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let timestamp = prost_types::Timestamp::from_str(text)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time"))?;
    SystemTime::try_from(timestamp).map_err(|_| format!("{text:?} is out of range"))
}

/// `500ms`, `30s`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration (e.g. 30s, 500ms, 2m)");
    let (number, unit_ms) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000)
    } else {
        (text, 1_000)
    };
    let count: u64 = number.parse().map_err(|_| invalid())?;
    let millis = count.checked_mul(unit_ms).ok_or_else(invalid)?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use rust_decimal_macros::dec;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tally").chain(args.iter().copied()))
    }

    #[test]
    fn global_defaults() {
        // Without flags, tally talks to the local tallyd with a 30 s deadline.
        let cli = parse(&["info"]).unwrap();
        assert_eq!(cli.server, SERVER_DEFAULT);
        assert_eq!(cli.timeout, Duration::from_secs(30));
        assert!(!cli.json);
        assert!(matches!(cli.command, Command::Info));
    }

    #[test]
    fn ca_cert_is_a_global_file_flag() {
        // `--ca-cert FILE` may come before or after the subcommand.
        let cli = parse(&["--ca-cert", "ca.pem", "info"]).unwrap();
        assert_eq!(cli.ca_cert, Some(PathBuf::from("ca.pem")));
        let cli = parse(&["key", "whoami", "--ca-cert", "/etc/tally/ca.pem"]).unwrap();
        assert_eq!(cli.ca_cert, Some(PathBuf::from("/etc/tally/ca.pem")));
    }

    #[test]
    fn global_flags_go_after_the_subcommand_too() {
        // `tally currency list --json --server X` is as natural as the other order.
        let cli = parse(&[
            "currency",
            "list",
            "--json",
            "--server",
            "h:1",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.server, "h:1");
        assert_eq!(cli.timeout, Duration::from_millis(500));
    }

    #[test]
    fn account_open_parses_type_constraint_and_metadata() {
        // Enums parse from their CLI names; metadata repeats.
        let cli = parse(&[
            "account",
            "open",
            "assets:cash",
            "--type",
            "asset",
            "--currency",
            "USD",
            "--constraint",
            "credits-must-not-exceed-debits",
            "--meta",
            "a=1",
            "--meta",
            "b=x=y",
        ])
        .unwrap();
        let Command::Account(AccountCommand::Open(args)) = cli.command else {
            panic!("expected account open");
        };
        assert_eq!(args.account_type, AccountType::Asset);
        assert_eq!(
            args.constraint,
            BalanceConstraint::CreditsMustNotExceedDebits
        );
        assert_eq!(
            args.metadata,
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
    }

    #[test]
    fn account_open_rejects_unknown_type() {
        // A typo is a usage error, exit code 2.
        let error = parse(&[
            "account",
            "open",
            "x",
            "--type",
            "cash",
            "--currency",
            "USD",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn tx_post_parses_postings_as_decimals() {
        // Amounts keep their written scale; the pending timeout needs --pending.
        let cli = parse(&[
            "tx",
            "post",
            "--id",
            "t1",
            "--debit",
            "assets:cash=10.00",
            "--credit",
            "revenue:sales=10.00",
            "--effective-at",
            "2024-05-01T12:00:00Z",
            "--pending",
            "--timeout-secs",
            "60",
        ])
        .unwrap();
        let Command::Tx(TxCommand::Post(args)) = cli.command else {
            panic!("expected tx post");
        };
        assert_eq!(args.id.as_deref(), Some("t1"));
        assert_eq!(args.debit, [("assets:cash".to_string(), dec!(10.00))]);
        assert_eq!(args.credit[0].1.to_string(), "10.00");
        assert_eq!(
            args.effective_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800))
        );
        assert_eq!(args.timeout_secs, Some(60));
    }

    #[test]
    fn tx_post_needs_an_id_or_a_file_but_not_both() {
        // --file replaces the inline flags.
        assert_eq!(
            parse(&["tx", "post", "--debit", "a=1"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["tx", "post", "--file", "tx.json"]).is_ok());
        assert_eq!(
            parse(&["tx", "post", "--file", "tx.json", "--id", "x"])
                .unwrap_err()
                .kind(),
            ErrorKind::ArgumentConflict
        );
        assert!(parse(&["tx", "post", "--id", "x", "--timeout-secs", "5"]).is_err());
    }

    #[test]
    fn tx_post_rejects_malformed_amounts() {
        // Floats in exponent form or missing '=' never reach the server.
        assert!(parse(&["tx", "post", "--id", "x", "--debit", "a=1e3"]).is_err());
        assert!(parse(&["tx", "post", "--id", "x", "--debit", "a"]).is_err());
        assert!(parse(&["tx", "post", "--id", "x", "--debit", "=5"]).is_err());
        assert!(parse(&["tx", "post", "--id", "x", "--debit", "a=1_000"]).is_err());
        assert!(parse(&["tx", "post", "--id", "x", "--debit", "a=1.2.3"]).is_err());
        assert_eq!(parse_decimal("-0.50"), Ok(dec!(-0.50)));
    }

    #[test]
    fn post_pending_collects_partial_amounts() {
        // Each --amount is one pending posting's amount, in order.
        let cli = parse(&[
            "tx",
            "post-pending",
            "p1",
            "--pending-id",
            "hold",
            "--amount",
            "3",
            "--amount",
            "3.50",
        ])
        .unwrap();
        let Command::Tx(TxCommand::PostPending(args)) = cli.command else {
            panic!("expected tx post-pending");
        };
        assert_eq!(args.pending_id, "hold");
        assert_eq!(args.amounts, [dec!(3), dec!(3.50)]);
    }

    #[test]
    fn reverse_void_show_and_list_parse() {
        // The remaining tx subcommands take their ids and filters.
        let cli = parse(&["tx", "reverse", "r1", "--of", "t1"]).unwrap();
        assert!(
            matches!(cli.command, Command::Tx(TxCommand::Reverse(ReverseArgs { ref transaction_id, .. })) if transaction_id == "t1")
        );
        let cli = parse(&["tx", "void", "v1", "--pending-id", "p"]).unwrap();
        assert!(matches!(cli.command, Command::Tx(TxCommand::Void(_))));
        let cli = parse(&[
            "tx",
            "list",
            "--account",
            "assets:cash",
            "--limit",
            "5",
            "--from",
            "2024-01-01T00:00:00Z",
        ])
        .unwrap();
        let Command::Tx(TxCommand::List(args)) = cli.command else {
            panic!("expected tx list");
        };
        assert_eq!(args.limit, 5);
        assert!(args.from.is_some() && args.to.is_none());
    }

    #[test]
    fn balance_as_of_is_seq_or_time_not_both() {
        // The two ways of naming a point in history exclude each other.
        let cli = parse(&["balance", "a", "b", "--at-seq", "7"]).unwrap();
        let Command::Balance(args) = cli.command else {
            panic!("expected balance");
        };
        assert_eq!(args.accounts, ["a", "b"]);
        assert_eq!(args.as_of.as_of(), AsOf::Seq(7));
        let error = parse(&[
            "balance",
            "a",
            "--at-seq",
            "1",
            "--at-time",
            "2024-01-01T00:00:00Z",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        assert!(parse(&["balance"]).is_err());
    }

    #[test]
    fn trial_balance_csv_conflicts_with_json() {
        // One output format at a time.
        let cli = parse(&[
            "trial-balance",
            "--depth",
            "2",
            "--currency",
            "USD",
            "--csv",
        ])
        .unwrap();
        let Command::TrialBalance(args) = cli.command else {
            panic!("expected trial-balance");
        };
        assert!(args.csv);
        assert_eq!(args.depth, 2);
        assert_eq!(args.as_of.as_of(), AsOf::Now);
        assert!(parse(&["trial-balance", "--csv", "--json"]).is_err());
    }

    #[test]
    fn journal_tail_defaults_to_the_start() {
        // Without --from, the whole journal.
        let cli = parse(&["journal", "tail", "--follow"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Journal(JournalCommand::Tail {
                from: 0,
                follow: true
            })
        ));
    }

    #[test]
    fn durations_and_times_parse() {
        // The small parsers behind the flags.
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("99999999999999999m").is_err());
        assert_eq!(
            parse_time("1970-01-01T01:00:00+01:00"),
            Ok(SystemTime::UNIX_EPOCH)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn audit_commands_parse_keys_and_sizes() {
        // --key repeats; a size of 0 (the server's "latest") is refused; --size and --create
        // exclude each other; only the verify-* commands are offline.
        let cli = parse(&[
            "audit",
            "verify-export",
            "j.export",
            "--key",
            "a",
            "--key",
            "@k",
        ])
        .unwrap();
        let Command::Audit(command) = cli.command else {
            panic!("expected audit");
        };
        assert!(command.is_offline());
        let AuditCommand::VerifyExport(args) = command else {
            panic!("expected verify-export");
        };
        assert_eq!(args.keys, ["a", "@k"]);
        assert!(parse(&["audit", "verify-checkpoint", "f"]).is_err());
        assert!(parse(&["audit", "export", "--out", "f", "--size", "0"]).is_err());
        assert!(parse(&["audit", "checkpoint", "--size", "3", "--create"]).is_err());
        let cli = parse(&["audit", "watch", "--state", "s", "--key", "k", "--once"]).unwrap();
        let Command::Audit(AuditCommand::Watch(args)) = cli.command else {
            panic!("expected watch");
        };
        assert_eq!(args.interval_ms, 5000);
        assert!(args.once);
    }

    #[test]
    fn command_definition_is_consistent() {
        // clap's own check of the derive (conflicts and requires name real args).
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
