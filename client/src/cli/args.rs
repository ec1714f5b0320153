//! The command line of `tally`, declared with clap. Values are parsed into domain
//! types here, so that a malformed amount or time is a usage error (exit 2) before
//! anything is sent.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use tally_client::{
    AccountType, Aggregation, AsOf, BalanceConstraint, BucketWidth, ChangeTiming, Day, Decimal,
    PaymentKind, Period, PlanKey, RenderFormat, TimestampNs, INGEST_EVENTS_MAX,
};

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
    /// Customers, whose usage is metered: create and list.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Meters: define (or change, as a new version) and list.
    #[command(subcommand)]
    Meter(MeterCommand),
    /// Usage events: send, query, close a period, list late events.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Price plans: publish, list, show, quote, simulate a price change.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Billing profiles and billing runs.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Subscriptions of customers to plans: start, change plan, end.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Coupons granted to customers.
    #[command(subcommand)]
    Coupon(CouponCommand),
    /// The ledger's tax table.
    #[command(subcommand)]
    Tax(TaxCommand),
    /// Invoices: show, list, render as HTML or JSON, void.
    #[command(subcommand)]
    Invoice(InvoiceCommand),
    /// Credit notes against invoices.
    #[command(subcommand)]
    CreditNote(CreditNoteCommand),
    /// Payments, refunds and prepaid credit.
    #[command(subcommand)]
    Payment(PaymentCommand),
    /// Customers' unused credit.
    #[command(subcommand)]
    Credit(CreditCommand),
    /// Accounts receivable: what customers owe, by age.
    #[command(subcommand)]
    Ar(ArCommand),
}

impl Command {
    /// True for `usage send`, whose failure to reach the server is an undelivered input.
    pub fn sends_usage(&self) -> bool {
        matches!(self, Command::Usage(UsageCommand::Send(_)))
    }
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer (idempotent for the same fields).
    Create {
        /// The customer's id, as usage events name it (1 to 128 bytes).
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Metadata as key=value; repeatable.
        #[arg(long = "meta", value_parser = parse_key_value)]
        metadata: Vec<(String, String)>,
    },
    /// List every customer, in id order.
    List,
}

#[derive(Debug, Subcommand)]
pub enum MeterCommand {
    /// Define a meter from flags or from a file; a changed definition is a new version.
    Define(DefineMeterArgs),
    /// The current version of every meter, or every version of one.
    List {
        /// Every version of this meter.
        code: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DefineMeterArgs {
    /// The meter's code: 1 to 64 of a-z, 0-9 and _.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub code: Option<String>,
    /// sum, count, min, max, unique_count or latest.
    #[arg(long, value_parser = parse_aggregation, required_unless_present = "file", conflicts_with = "file")]
    pub aggregation: Option<Aggregation>,
    /// The property holding the value (instead of the event's value); the distinct key of
    /// unique_count.
    #[arg(long, conflicts_with = "file")]
    pub value_property: Option<String>,
    /// Count only events whose property has one of the values: PROPERTY=V1,V2; repeatable.
    #[arg(long = "filter", value_parser = parse_filter, conflicts_with = "file")]
    pub filters: Vec<(String, Vec<String>)>,
    /// A property whose values split a customer's usage into groups; repeatable.
    #[arg(long = "group-by", conflicts_with = "file")]
    pub group_by: Vec<String>,
    /// How many seconds before a closed period's end events are still accepted (default 0).
    #[arg(long = "grace-period", value_name = "SECONDS", conflicts_with = "file")]
    pub grace_period_seconds: Option<u64>,
    #[arg(long, conflicts_with = "file")]
    pub description: Option<String>,
    /// A meter file, TOML (.toml) or JSON (.json), with the fields code, aggregation,
    /// value_property, filters, group_by, grace_period_seconds and description.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Send usage events from a JSON-lines file (or stdin), in batches.
    ///
    /// Exit status: 0 when every event is recorded or was already (duplicate); 1 when some
    /// were rejected (each is listed with its line); 2 when a batch could not be delivered
    /// (sending the file again is safe: event ids deduplicate) or the input is unreadable.
    Send(SendArgs),
    /// A meter's usage per customer (and group) over [--from, --to).
    Query(QueryArgs),
    /// Close a customer's usage period: later events timestamped before it are late.
    Close {
        #[arg(long)]
        customer: String,
        /// The end of the period (whole minutes), RFC 3339.
        #[arg(long, value_parser = parse_time_ns)]
        through: TimestampNs,
    },
    /// Events that arrived after their customer's period was closed, in journal order.
    Late {
        /// Only this customer's.
        #[arg(long)]
        customer: Option<String>,
        /// The first journal entry to look at.
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The JSON-lines file, one event per line; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// Events per call.
    #[arg(long, default_value_t = 1000, value_parser = parse_batch_size)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    pub meter: String,
    /// Only this customer (default: every customer).
    #[arg(long)]
    pub customer: Option<String>,
    /// The window's start (whole minutes), RFC 3339.
    #[arg(long, value_parser = parse_time_ns)]
    pub from: TimestampNs,
    /// The window's end (whole minutes, exclusive), RFC 3339.
    #[arg(long, value_parser = parse_time_ns)]
    pub to: TimestampNs,
    /// Split by one of the meter's group-by properties; repeatable.
    #[arg(long = "group-by")]
    pub group_by: Vec<String>,
    /// Keep only groups whose property has one of the values: PROPERTY=V1,V2; repeatable.
    #[arg(long = "filter", value_parser = parse_filter)]
    pub filters: Vec<(String, Vec<String>)>,
    /// Per minute, hour or day bucket.
    #[arg(long)]
    pub series: Option<BucketWidth>,
    /// Recompute from the raw events instead of the stored aggregates (slower).
    #[arg(long)]
    pub recompute: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Publish a plan document (TOML or JSON): version 1 of a new code, a new version when
    /// the document changed, nothing when it is the current version.
    Publish {
        /// The document: .toml or .json (otherwise read as JSON, then as TOML).
        file: PathBuf,
    },
    /// The current version of every plan, or every version of one.
    List {
        /// Every version of this plan.
        #[arg(long)]
        code: Option<String>,
    },
    /// Print a plan version's document, TOML by default (it publishes back unchanged).
    Show {
        code: String,
        /// This version (default: the current one).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
        /// Print TOML (the default; --json prints the document as JSON).
        #[arg(long, conflicts_with = "json")]
        toml: bool,
    },
    /// Rate given quantities under a plan (published or draft) and explain every line;
    /// records nothing.
    Quote(QuoteArgs),
    /// Re-rate customers' recorded usage over past days under a candidate plan and compare
    /// it with a baseline version; records nothing.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// A published plan: CODE (its current version) or CODE@VERSION.
    #[arg(
        value_name = "CODE[@VERSION]",
        value_parser = parse_plan_key,
        required_unless_present = "draft",
        conflicts_with = "draft"
    )]
    pub plan: Option<PlanKey>,
    /// Rate with this draft document (TOML or JSON) instead; it is not published.
    #[arg(long, value_name = "FILE")]
    pub draft: Option<PathBuf>,
    /// A calendar month: --period 2026-10 rates [2026-10-01, 2026-11-01). Without a period,
    /// the plan's billing period containing today.
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month, conflicts_with_all = ["from", "to"])]
    pub period: Option<Period>,
    /// The first day rated (with --to): a part of a billing period prorates flat fees.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "to")]
    pub from: Option<Day>,
    /// The day after the last day rated.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "from")]
    pub to: Option<Day>,
    /// A charge's quantity: CHARGE=QTY; repeatable.
    #[arg(long = "usage", value_name = "CHARGE=QTY", value_parser = parse_charge_quantity)]
    pub usage: Vec<(String, Decimal)>,
    /// A percentage charge's transaction amounts: CHARGE=AMT,AMT,...; repeatable.
    #[arg(long = "transactions", value_name = "CHARGE=AMT,...", value_parser = parse_charge_transactions)]
    pub transactions: Vec<(String, Vec<Decimal>)>,
    /// A coupon file (TOML or JSON): code, discount, duration, and optionally
    /// periods_used and remaining; repeatable, applied in order.
    #[arg(long = "coupon", value_name = "FILE")]
    pub coupons: Vec<PathBuf>,
    /// A tax file (TOML or JSON) with a list of rules, `[[taxes]]`; every rule is applied.
    #[arg(long, value_name = "FILE")]
    pub tax: Option<PathBuf>,
    /// A manual line: REASON=AMOUNT; repeatable.
    #[arg(long = "adjust", value_name = "REASON=AMOUNT", value_parser = parse_adjustment)]
    pub adjustments: Vec<(String, Decimal)>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A draft plan document (TOML or JSON) as the candidate.
    #[arg(required_unless_present = "candidate", conflicts_with = "candidate")]
    pub file: Option<PathBuf>,
    /// A published candidate: CODE or CODE@VERSION.
    #[arg(long, value_name = "CODE[@VERSION]", value_parser = parse_plan_key)]
    pub candidate: Option<PlanKey>,
    /// What the customers pay now: CODE or CODE@VERSION (default: the current version of the
    /// candidate's plan).
    #[arg(long, value_name = "CODE[@VERSION]", value_parser = parse_plan_key)]
    pub baseline: Option<PlanKey>,
    /// A calendar month: --period 2026-10 re-rates [2026-10-01, 2026-11-01).
    #[arg(
        long,
        value_name = "YYYY-MM",
        value_parser = parse_month,
        required_unless_present = "from",
        conflicts_with_all = ["from", "to"]
    )]
    pub period: Option<Period>,
    /// The first day re-rated (with --to).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "to")]
    pub from: Option<Day>,
    /// The day after the last day re-rated.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "from")]
    pub to: Option<Day>,
    /// Only this customer; repeatable (default: every customer).
    #[arg(long = "customer", value_name = "ID")]
    pub customers: Vec<String>,
    /// Also print each customer's two ratings, line by line.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Set or show a customer's billing profile.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Issue the invoices of the billing dates (starts, ends of billing periods, plan
    /// changes, ends) in a month: --period 2026-10 bills the dates in (2026-10-01,
    /// 2026-11-01] and the starts on 2026-10-01. Dates already invoiced are listed, not
    /// issued again; dates after today are not issued. With --draft, rate and record
    /// nothing.
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Set a customer's billing profile (a new version; the same profile records nothing).
    Set(ProfileArgs),
    /// Show a customer's billing profile.
    Show { customer: String },
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The customer's id.
    pub customer: String,
    /// Every invoice of the customer is in this currency.
    #[arg(long)]
    pub currency: String,
    /// ISO 3166-1 alpha-2 country code (DE); selects the tax rules.
    #[arg(long)]
    pub country: String,
    /// A subdivision code (CA-QC), if the customer's taxes depend on it.
    #[arg(long)]
    pub region: Option<String>,
    /// Printed on invoices.
    #[arg(long, default_value = "")]
    pub tax_id: String,
    /// An IANA zone (Europe/Berlin): the customer's billing days start at its midnight.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Invoice series: numbers are SERIES-YYYY-NNNNNN.
    #[arg(long)]
    pub series: String,
    /// Days from an invoice's issue to its due date.
    #[arg(long = "terms-days", default_value_t = 30)]
    pub payment_terms_days: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A calendar month: --period 2026-10 bills the billing dates in (2026-10-01,
    /// 2026-11-01] and the starts on 2026-10-01.
    #[arg(
        long,
        value_name = "YYYY-MM",
        value_parser = parse_month,
        required_unless_present = "from",
        conflicts_with_all = ["from", "to"]
    )]
    pub period: Option<Period>,
    /// Bill the billing dates after this day, and the starts on it (with --to).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "to")]
    pub from: Option<Day>,
    /// ... and on or before this one.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, requires = "from")]
    pub to: Option<Day>,
    /// Only this customer; repeatable (default: every customer).
    #[arg(long = "customer", value_name = "ID")]
    pub customers: Vec<String>,
    /// Rate every period and show the invoices, recording nothing.
    #[arg(long)]
    pub draft: bool,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Start a subscription on a plan (its current version, or CODE@VERSION).
    Start {
        /// The subscription's id (yours; a retry with the same fields is the same).
        id: String,
        #[arg(long)]
        customer: String,
        #[arg(long, value_name = "CODE[@VERSION]", value_parser = parse_plan_key)]
        plan: PlanKey,
        /// The first billed day.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        start: Day,
    },
    /// Move a subscription to another plan; prints the day the change takes effect.
    Change {
        id: String,
        #[arg(long, value_name = "CODE[@VERSION]", value_parser = parse_plan_key)]
        plan: PlanKey,
        /// The day asked for.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        on: Day,
        /// auto (an upgrade at once, a downgrade at the period's end), immediate or
        /// period-end.
        #[arg(long, default_value = "auto", value_parser = parse_timing)]
        timing: ChangeTiming,
    },
    /// End a subscription.
    End {
        id: String,
        /// The first day no longer billed.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        on: Day,
    },
    /// A subscription: its plans from their days, its end, the last date invoiced.
    Show { id: String },
    /// A customer's subscriptions.
    List {
        #[arg(long)]
        customer: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CouponCommand {
    /// Grant a customer a coupon from a file (TOML or JSON: code, discount, duration).
    Grant {
        /// The grant's id (yours; a retry with the same fields is the same grant).
        grant_id: String,
        #[arg(long)]
        customer: String,
        /// The coupon file.
        #[arg(long, value_name = "FILE")]
        coupon: PathBuf,
        /// The coupon applies to invoices of periods ending on or after this day.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        from: Day,
    },
}

#[derive(Debug, Subcommand)]
pub enum TaxCommand {
    /// Publish the tax table from a file (TOML or JSON, a list of `[[taxes]]`); it
    /// replaces the whole table.
    Publish { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum InvoiceCommand {
    /// Show an invoice: its lines, taxes, totals and what is paid and owed.
    Show { number: String },
    /// List invoices in issue order.
    List {
        /// Only this customer's.
        #[arg(long)]
        customer: Option<String>,
    },
    /// Render an invoice as HTML (a self-contained page) or JSON.
    Render {
        number: String,
        /// html or json.
        #[arg(long, default_value = "html", value_parser = parse_render_format)]
        format: RenderFormat,
        /// Write it to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Void an invoice nothing was paid or credited on.
    Void {
        number: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CreditNoteCommand {
    /// Issue a credit note against an invoice: parts of lines, or everything left.
    Issue {
        /// The invoice's number.
        invoice: String,
        /// Your id for this credit note: issuing again with the same id and
        /// request answers the same note and issues nothing.
        #[arg(long)]
        id: String,
        /// Credit AMOUNT (tax included) of line N (0 is the first); repeatable. None:
        /// everything left on the invoice.
        #[arg(long = "line", value_name = "N=AMOUNT", value_parser = parse_credit_line)]
        lines: Vec<(u32, Decimal)>,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// Record a payment (allocated to the oldest invoices unless --allocate), a refund,
    /// a purchase or grant of prepaid credit, or an application of credit.
    Record(PaymentArgs),
}

#[derive(Debug, Args)]
pub struct PaymentArgs {
    /// The payment's id (yours; a retry with the same fields is the same payment).
    pub payment_id: String,
    #[arg(long)]
    pub customer: String,
    #[arg(long, value_parser = parse_decimal)]
    pub amount: Decimal,
    /// payment, refund, credit-purchase, credit-grant or credit-applied.
    #[arg(long, default_value = "payment", value_parser = parse_payment_kind)]
    pub kind: PaymentKind,
    /// The day it was received (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub received_on: Option<Day>,
    /// The bank transfer id, card charge id, ...
    #[arg(long, default_value = "")]
    pub reference: String,
    /// Settle AMOUNT of an invoice; repeatable (default: the oldest invoices first).
    #[arg(long = "allocate", value_name = "INVOICE=AMOUNT", value_parser = parse_allocation, conflicts_with = "unallocated")]
    pub allocations: Vec<(String, Decimal)>,
    /// Keep the whole payment as customer credit.
    #[arg(long)]
    pub unallocated: bool,
}

#[derive(Debug, Subcommand)]
pub enum CreditCommand {
    /// A customer's unused credit.
    Show { customer: String },
}

#[derive(Debug, Subcommand)]
pub enum ArCommand {
    /// What customers owe by days past due: current, 1-30, 31-60, 61-90, 90+.
    Ageing {
        /// The day to age on (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        as_of: Option<Day>,
    },
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
    /// Write the proof bundle of one usage event: event -> batch -> journal -> checkpoint.
    ProveEvent {
        /// The event's id.
        event_id: String,
        /// Prove against the checkpoint of this many entries (default: a new one).
        #[arg(long = "tree-size", visible_alias = "size", value_parser = clap::value_parser!(u64).range(1..))]
        tree_size: Option<u64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a usage event proof bundle and print the event (offline).
    VerifyEvent(VerifyArgs),
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
                | AuditCommand::VerifyEvent(_)
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

/// An RFC 3339 time as nanoseconds since the epoch (the metering commands' unit).
pub fn parse_time_ns(text: &str) -> Result<TimestampNs, String> {
    let timestamp = prost_types::Timestamp::from_str(text)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time"))?;
    let ns = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    TimestampNs::try_from(ns).map_err(|_| format!("{text:?} is out of range (1677 to 2262)"))
}

/// A meter's aggregation by its name: `sum`, `count`, `min`, `max`, `unique_count`, `latest`.
pub fn parse_aggregation(text: &str) -> Result<Aggregation, String> {
    Aggregation::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Aggregation::ALL.iter().map(|a| a.name()).collect();
        format!("{text:?} is not an aggregation ({})", names.join(", "))
    })
}

/// `PROPERTY=V1,V2`: a property and the values it may have (none empty).
pub fn parse_filter(text: &str) -> Result<(String, Vec<String>), String> {
    let (property, values) = match text.split_once('=') {
        Some((property, values)) if !property.is_empty() && !values.is_empty() => {
            (property, values)
        }
        _ => return Err(format!("expected PROPERTY=VALUE[,VALUE...], got {text:?}")),
    };
    let values: Vec<String> = values.split(',').map(str::to_string).collect();
    if values.iter().any(String::is_empty) {
        return Err(format!("an empty value in {text:?}"));
    }
    Ok((property.to_string(), values))
}

/// `CODE` (the current version) or `CODE@VERSION` of a published plan.
pub fn parse_plan_key(text: &str) -> Result<PlanKey, String> {
    let Some((code, version)) = text.split_once('@') else {
        if text.is_empty() {
            return Err("a plan code is required".into());
        }
        return Ok(PlanKey::current(text));
    };
    let version = version
        .parse::<u32>()
        .ok()
        .filter(|version| *version >= 1)
        .ok_or_else(|| format!("{version:?} is not a version (1 or more) in {text:?}"))?;
    if code.is_empty() {
        return Err(format!("missing plan code in {text:?}"));
    }
    Ok(PlanKey::version(code, version))
}

/// A calendar day, `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<Day, String> {
    Day::from_str(text).map_err(|error| error.to_string())
}

/// `YYYY-MM`: the month's days, `[YYYY-MM-01, first day of the next month)`.
pub fn parse_month(text: &str) -> Result<Period, String> {
    let invalid = || format!("{text:?} is not a month of the form YYYY-MM");
    let (year, month) = text.split_once('-').ok_or_else(invalid)?;
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(year, 4) || !digits(month, 2) {
        return Err(invalid());
    }
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let month: u8 = month.parse().map_err(|_| invalid())?;
    let start = Day::from_ymd(year, month, 1).ok_or_else(invalid)?;
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = Day::from_ymd(next_year, next_month, 1)
        .ok_or_else(|| format!("{text:?} is the last month there is"))?;
    Ok(Period { start, end })
}

/// `CHARGE=QTY`, e.g. `api_calls=20`.
pub fn parse_charge_quantity(text: &str) -> Result<(String, Decimal), String> {
    let (charge, quantity) = text
        .split_once('=')
        .ok_or_else(|| format!("expected CHARGE=QTY, got {text:?}"))?;
    if charge.is_empty() {
        return Err(format!("missing charge in {text:?}"));
    }
    Ok((charge.to_string(), parse_decimal(quantity)?))
}

/// `CHARGE=AMT,AMT,...`, e.g. `card_fees=100.00,25.50`.
pub fn parse_charge_transactions(text: &str) -> Result<(String, Vec<Decimal>), String> {
    let (charge, amounts) = text
        .split_once('=')
        .ok_or_else(|| format!("expected CHARGE=AMT,AMT,..., got {text:?}"))?;
    if charge.is_empty() || amounts.is_empty() {
        return Err(format!("expected CHARGE=AMT,AMT,..., got {text:?}"));
    }
    let amounts = amounts
        .split(',')
        .map(parse_decimal)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((charge.to_string(), amounts))
}

/// `REASON=AMOUNT`; the reason may hold `=` (the amount is after the last one).
pub fn parse_adjustment(text: &str) -> Result<(String, Decimal), String> {
    let (reason, amount) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("expected REASON=AMOUNT, got {text:?}"))?;
    if reason.is_empty() {
        return Err(format!("missing reason in {text:?}"));
    }
    Ok((reason.to_string(), parse_decimal(amount)?))
}

/// `auto`, `immediate` or `period-end` (`period_end`).
pub fn parse_timing(text: &str) -> Result<ChangeTiming, String> {
    ChangeTiming::from_name(&text.replace('-', "_"))
        .ok_or_else(|| format!("{text:?} is not a timing (auto, immediate, period-end)"))
}

/// `html` or `json`.
pub fn parse_render_format(text: &str) -> Result<RenderFormat, String> {
    RenderFormat::from_name(text).ok_or_else(|| format!("{text:?} is not a format (html, json)"))
}

/// `payment`, `refund`, `credit-purchase`, `credit-grant` or `credit-applied` (or with `_`).
pub fn parse_payment_kind(text: &str) -> Result<PaymentKind, String> {
    PaymentKind::from_name(&text.replace('-', "_")).ok_or_else(|| {
        format!(
            "{text:?} is not a payment kind (payment, refund, credit-purchase, credit-grant, credit-applied)"
        )
    })
}

/// `N=AMOUNT`: a line's index (0 is the first) and the amount to credit.
pub fn parse_credit_line(text: &str) -> Result<(u32, Decimal), String> {
    let (line, amount) = text
        .split_once('=')
        .ok_or_else(|| format!("expected N=AMOUNT, got {text:?}"))?;
    let line = line
        .parse::<u32>()
        .map_err(|_| format!("{line:?} is not a line number (0 is the first) in {text:?}"))?;
    Ok((line, parse_decimal(amount)?))
}

/// `INVOICE=AMOUNT`.
pub fn parse_allocation(text: &str) -> Result<(String, Decimal), String> {
    let (invoice, amount) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("expected INVOICE=AMOUNT, got {text:?}"))?;
    if invoice.is_empty() {
        return Err(format!("missing invoice number in {text:?}"));
    }
    Ok((invoice.to_string(), parse_decimal(amount)?))
}

/// Events per `usage send` call: 1 to the server's limit.
pub fn parse_batch_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(size) if (1..=INGEST_EVENTS_MAX).contains(&size) => Ok(size),
        _ => Err(format!(
            "{text:?} is not a batch size from 1 to {INGEST_EVENTS_MAX}"
        )),
    }
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
    fn customer_create_takes_name_and_metadata() {
        // Goal: the id is positional, --meta repeats, the name is optional.
        let cli = parse(&[
            "customer",
            "create",
            "acme",
            "--name",
            "Acme",
            "--meta",
            "tier=gold",
        ])
        .unwrap();
        let Command::Customer(CustomerCommand::Create { id, name, metadata }) = cli.command else {
            panic!("expected customer create");
        };
        assert_eq!((id.as_str(), name.as_deref()), ("acme", Some("Acme")));
        assert_eq!(metadata, [("tier".to_string(), "gold".to_string())]);
        assert!(parse(&["customer", "create"]).is_err());
        assert!(matches!(
            parse(&["customer", "list", "--json"]).unwrap().command,
            Command::Customer(CustomerCommand::List)
        ));
    }

    #[test]
    fn meter_define_from_flags() {
        // Goal: every flag of a definition parses into its typed form.
        let cli = parse(&[
            "meter",
            "define",
            "api_calls",
            "--aggregation",
            "unique_count",
            "--value-property",
            "user",
            "--filter",
            "tier=pro,enterprise",
            "--group-by",
            "region",
            "--group-by",
            "zone",
            "--grace-period",
            "3600",
            "--description",
            "active users",
        ])
        .unwrap();
        let Command::Meter(MeterCommand::Define(args)) = cli.command else {
            panic!("expected meter define");
        };
        assert_eq!(args.code.as_deref(), Some("api_calls"));
        assert_eq!(args.aggregation, Some(Aggregation::UniqueCount));
        assert_eq!(args.value_property.as_deref(), Some("user"));
        assert_eq!(
            args.filters,
            [(
                "tier".to_string(),
                vec!["pro".to_string(), "enterprise".to_string()]
            )]
        );
        assert_eq!(args.group_by, ["region", "zone"]);
        assert_eq!(args.grace_period_seconds, Some(3600));
        assert_eq!(args.file, None);
    }

    #[test]
    fn meter_define_needs_flags_or_a_file_but_not_both() {
        // Goal: --file replaces the flags; without it the code and aggregation are needed;
        // an unknown aggregation or a malformed filter is a usage error.
        assert!(parse(&["meter", "define", "--file", "m.toml"]).is_ok());
        let both = parse(&["meter", "define", "c", "--file", "m.toml"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let flags = parse(&["meter", "define", "--file", "m.toml", "--group-by", "r"]);
        assert_eq!(flags.unwrap_err().kind(), ErrorKind::ArgumentConflict);
        let missing = parse(&["meter", "define", "c"]).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&["meter", "define", "c", "--aggregation", "avg"]).is_err());
        for bad in ["tier", "tier=", "=pro", "tier=pro,,free"] {
            let result = parse(&[
                "meter",
                "define",
                "c",
                "--aggregation",
                "sum",
                "--filter",
                bad,
            ]);
            assert!(result.is_err(), "{bad}");
        }
        let cli = parse(&["meter", "list", "api_calls"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Meter(MeterCommand::List { code: Some(ref code) }) if code == "api_calls"
        ));
    }

    #[test]
    fn usage_send_batches_are_bounded() {
        // Goal: 1,000 events per call by default, 1 to 10,000 allowed; no file means stdin.
        let cli = parse(&["usage", "send"]).unwrap();
        let Command::Usage(UsageCommand::Send(args)) = cli.command else {
            panic!("expected usage send");
        };
        assert_eq!((args.file, args.batch), (None, 1000));
        let cli = parse(&["usage", "send", "-", "--batch", "10000"]).unwrap();
        let Command::Usage(UsageCommand::Send(args)) = cli.command else {
            panic!("expected usage send");
        };
        assert_eq!(args.file, Some(PathBuf::from("-")));
        assert_eq!(args.batch, 10_000);
        for bad in ["0", "10001", "-1", "many"] {
            assert!(
                parse(&["usage", "send", "f", "--batch", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn usage_query_parses_times_filters_and_series() {
        // Goal: RFC 3339 times become nanoseconds; the series width is a name.
        let cli = parse(&[
            "usage",
            "query",
            "--meter",
            "api_calls",
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-01T02:00:00+02:00",
            "--group-by",
            "region",
            "--filter",
            "region=eu,us",
            "--series",
            "hour",
            "--recompute",
        ])
        .unwrap();
        let Command::Usage(UsageCommand::Query(args)) = cli.command else {
            panic!("expected usage query");
        };
        assert_eq!(args.from, 1_714_521_600_000_000_000);
        assert_eq!(args.to, args.from);
        assert_eq!(args.series, Some(BucketWidth::Hour));
        assert!(args.recompute && args.customer.is_none());
        assert_eq!(args.filters[0].1, ["eu", "us"]);
        assert!(parse(&[
            "usage",
            "query",
            "--meter",
            "m",
            "--from",
            "2024-05-01T00:00:00Z"
        ])
        .is_err());
        let week = parse(&[
            "usage",
            "query",
            "--meter",
            "m",
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-02T00:00:00Z",
            "--series",
            "week",
        ]);
        assert!(week.is_err());
    }

    #[test]
    fn usage_close_and_late_parse() {
        // Goal: close needs a customer and a time; late lists everything by default.
        let cli = parse(&[
            "usage",
            "close",
            "--customer",
            "acme",
            "--through",
            "1970-01-01T00:01:00Z",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Usage(UsageCommand::Close { ref customer, through: 60_000_000_000 }) if customer == "acme"
        ));
        assert!(parse(&["usage", "close", "--customer", "acme"]).is_err());
        let cli = parse(&["usage", "late"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Usage(UsageCommand::Late {
                customer: None,
                from_seq: 0,
                limit: 1000
            })
        ));
        assert_eq!(parse_time_ns("1969-12-31T23:59:59.999999999Z"), Ok(-1));
        assert!(parse_time_ns("2300-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn event_proofs_parse_and_verify_event_is_offline() {
        // Goal: --tree-size (or --size) must be positive; verify-event needs a key and never
        // connects.
        let cli = parse(&[
            "audit",
            "prove-event",
            "evt-1",
            "--tree-size",
            "9",
            "--out",
            "p.json",
        ])
        .unwrap();
        let Command::Audit(AuditCommand::ProveEvent {
            event_id,
            tree_size,
            out,
        }) = cli.command
        else {
            panic!("expected prove-event");
        };
        assert_eq!((event_id.as_str(), tree_size), ("evt-1", Some(9)));
        assert_eq!(out, PathBuf::from("p.json"));
        let cli = parse(&["audit", "prove-event", "e", "--size", "3", "--out", "p"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::ProveEvent {
                tree_size: Some(3),
                ..
            })
        ));
        assert!(parse(&[
            "audit",
            "prove-event",
            "e",
            "--tree-size",
            "0",
            "--out",
            "p"
        ])
        .is_err());
        assert!(parse(&["audit", "prove-event", "e"]).is_err());
        let cli = parse(&["audit", "verify-event", "p.json", "--key", "@vkey"]).unwrap();
        let Command::Audit(command) = cli.command else {
            panic!("expected audit");
        };
        assert!(command.is_offline());
        assert!(parse(&["audit", "verify-event", "p.json"]).is_err());
    }

    #[test]
    fn plan_keys_months_and_charge_flags_parse() {
        // Goal: CODE[@VERSION], YYYY-MM as the month's days, CHARGE=QTY, CHARGE=AMT,...
        // and REASON=AMOUNT parse exactly; malformed ones are usage errors.
        assert_eq!(parse_plan_key("pro"), Ok(PlanKey::current("pro")));
        assert_eq!(parse_plan_key("pro@2"), Ok(PlanKey::version("pro", 2)));
        for bad in ["", "@2", "pro@", "pro@0", "pro@two", "pro@-1"] {
            assert!(parse_plan_key(bad).is_err(), "{bad}");
        }
        let october = parse_month("2026-10").unwrap();
        assert_eq!(
            (october.start.to_string(), october.end.to_string()),
            ("2026-10-01".to_string(), "2026-11-01".to_string())
        );
        let december = parse_month("2026-12").unwrap();
        assert_eq!(december.end.to_string(), "2027-01-01");
        assert_eq!(parse_month("2024-02").unwrap().days(), 29);
        for bad in [
            "2026-13",
            "2026-1",
            "26-10",
            "2026-10-01",
            "2026",
            "9999-12",
        ] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_charge_quantity("api_calls=20.5"),
            Ok(("api_calls".to_string(), dec!(20.5)))
        );
        assert!(parse_charge_quantity("=1").is_err());
        assert!(parse_charge_quantity("api_calls=1e3").is_err());
        assert_eq!(
            parse_charge_transactions("fees=100.00,2.5"),
            Ok(("fees".to_string(), vec![dec!(100.00), dec!(2.5)]))
        );
        assert!(parse_charge_transactions("fees=").is_err());
        assert!(parse_charge_transactions("fees=1,,2").is_err());
        assert_eq!(
            parse_adjustment("credit a=b=5.00"),
            Ok(("credit a=b".to_string(), dec!(5.00)))
        );
        assert!(parse_adjustment("=5").is_err());
        assert!(parse_adjustment("credit").is_err());
    }

    #[test]
    fn plan_commands_parse() {
        // Goal: quote takes a published plan or --draft (not both), a month or --from/--to
        // (not both, and --from only with --to); simulate needs a candidate and days;
        // show's --toml excludes --json.
        let cli = parse(&[
            "plan",
            "quote",
            "pro@2",
            "--period",
            "2026-10",
            "--usage",
            "api_calls=20",
            "--usage",
            "storage=201",
            "--transactions",
            "fees=10,20",
            "--coupon",
            "c1.toml",
            "--coupon",
            "c2.json",
            "--tax",
            "t.toml",
            "--adjust",
            "setup=50",
        ])
        .unwrap();
        let Command::Plan(PlanCommand::Quote(args)) = cli.command else {
            panic!("expected plan quote");
        };
        assert_eq!(args.plan, Some(PlanKey::version("pro", 2)));
        assert_eq!(args.usage.len(), 2);
        assert_eq!(args.coupons.len(), 2);
        assert_eq!(args.adjustments, [("setup".to_string(), dec!(50))]);
        assert!(parse(&["plan", "quote", "--draft", "p.toml"]).is_ok());
        let both = parse(&["plan", "quote", "pro", "--draft", "p.toml"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        assert!(parse(&["plan", "quote"]).is_err());
        assert!(parse(&["plan", "quote", "pro", "--from", "2026-10-01"]).is_err());
        let days = [
            "plan",
            "quote",
            "pro",
            "--from",
            "2026-10-17",
            "--to",
            "2026-11-01",
        ];
        assert!(parse(&days).is_ok());
        let mut both = days.to_vec();
        both.extend(["--period", "2026-10"]);
        assert!(parse(&both).is_err());

        let cli = parse(&[
            "plan",
            "simulate",
            "--candidate",
            "pro@2",
            "--baseline",
            "pro@1",
            "--period",
            "2026-10",
            "--customer",
            "acme",
            "--explain",
        ])
        .unwrap();
        let Command::Plan(PlanCommand::Simulate(args)) = cli.command else {
            panic!("expected plan simulate");
        };
        assert_eq!(args.baseline, Some(PlanKey::version("pro", 1)));
        assert!(args.explain && args.file.is_none());
        assert!(parse(&["plan", "simulate", "draft.toml", "--period", "2026-10"]).is_ok());
        assert!(parse(&["plan", "simulate", "draft.toml"]).is_err());
        assert!(parse(&["plan", "simulate", "--period", "2026-10"]).is_err());

        assert!(parse(&["plan", "show", "pro", "--version", "2", "--toml"]).is_ok());
        assert!(parse(&["plan", "show", "pro", "--toml", "--json"]).is_err());
        assert!(parse(&["plan", "show", "pro", "--version", "0"]).is_err());
        assert!(matches!(
            parse(&["plan", "list", "--code", "pro"]).unwrap().command,
            Command::Plan(PlanCommand::List { code: Some(ref code) }) if code == "pro"
        ));
        assert!(parse(&["plan", "publish"]).is_err());
    }

    #[test]
    fn billing_commands_parse() {
        // Goal: a run takes a month or --from/--to (not both) and repeated customers; the
        // documents, days, lines, allocations, kinds, timings and formats parse into their
        // types, and malformed ones are usage errors.
        let cli = parse(&[
            "billing",
            "run",
            "--period",
            "2026-10",
            "--customer",
            "acme",
            "--customer",
            "beta",
            "--draft",
        ])
        .unwrap();
        let Command::Billing(BillingCommand::Run(args)) = cli.command else {
            panic!("expected billing run");
        };
        assert_eq!(args.period.unwrap().start.to_string(), "2026-10-01");
        assert_eq!(args.customers, ["acme", "beta"]);
        assert!(args.draft);
        assert!(parse(&["billing", "run"]).is_err());
        assert!(parse(&["billing", "run", "--from", "2026-10-01"]).is_err());
        assert!(parse(&[
            "billing",
            "run",
            "--period",
            "2026-10",
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-01"
        ])
        .is_err());
        assert!(parse(&[
            "billing",
            "run",
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-01"
        ])
        .is_ok());

        let cli = parse(&[
            "billing",
            "profile",
            "set",
            "acme",
            "--currency",
            "EUR",
            "--country",
            "DE",
            "--series",
            "EU",
        ])
        .unwrap();
        let Command::Billing(BillingCommand::Profile(ProfileCommand::Set(args))) = cli.command
        else {
            panic!("expected profile set");
        };
        assert_eq!(
            (args.timezone.as_str(), args.payment_terms_days),
            ("UTC", 30)
        );
        assert!(parse(&["billing", "profile", "set", "acme", "--currency", "EUR"]).is_err());

        let cli = parse(&[
            "subscription",
            "change",
            "sub-1",
            "--plan",
            "pro@2",
            "--on",
            "2026-10-16",
            "--timing",
            "period-end",
        ])
        .unwrap();
        let Command::Subscription(SubscriptionCommand::Change { plan, timing, .. }) = cli.command
        else {
            panic!("expected subscription change");
        };
        assert_eq!(plan, PlanKey::version("pro", 2));
        assert_eq!(timing, ChangeTiming::PeriodEnd);
        assert!(parse(&[
            "subscription",
            "change",
            "s",
            "--plan",
            "pro",
            "--on",
            "2026-10-16",
            "--timing",
            "later"
        ])
        .is_err());
        assert!(parse(&[
            "subscription",
            "start",
            "s",
            "--customer",
            "c",
            "--plan",
            "p"
        ])
        .is_err());

        assert_eq!(parse_credit_line("0=5.00"), Ok((0, dec!(5.00))));
        for bad in ["5.00", "-1=5", "a=5", "0=", "0=1e2"] {
            assert!(parse_credit_line(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_allocation("INV-2026-000001=20.00"),
            Ok(("INV-2026-000001".to_string(), dec!(20.00)))
        );
        assert!(parse_allocation("=20").is_err());
        assert_eq!(
            parse_payment_kind("credit-purchase"),
            Ok(PaymentKind::CreditPurchase)
        );
        assert_eq!(
            parse_payment_kind("credit_applied"),
            Ok(PaymentKind::CreditApplied)
        );
        assert!(parse_payment_kind("cash").is_err());
        assert_eq!(parse_render_format("json"), Ok(RenderFormat::Json));
        assert!(parse_render_format("pdf").is_err());

        let cli = parse(&[
            "payment",
            "record",
            "pay-1",
            "--customer",
            "acme",
            "--amount",
            "50.00",
            "--allocate",
            "INV-2026-000001=20",
            "--allocate",
            "INV-2026-000002=30",
        ])
        .unwrap();
        let Command::Payment(PaymentCommand::Record(args)) = cli.command else {
            panic!("expected payment record");
        };
        assert_eq!(args.kind, PaymentKind::Payment);
        assert_eq!(args.allocations.len(), 2);
        assert_eq!(args.received_on, None);
        assert!(parse(&[
            "payment",
            "record",
            "p",
            "--customer",
            "c",
            "--amount",
            "1",
            "--allocate",
            "I=1",
            "--unallocated"
        ])
        .is_err());
        let cli = parse(&[
            "credit-note",
            "issue",
            "INV-2026-000001",
            "--id",
            "cn-1",
            "--line",
            "0=5.00",
            "--reason",
            "outage",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::CreditNote(CreditNoteCommand::Issue { ref lines, .. }) if lines == &[(0, dec!(5.00))]
        ));
        assert!(parse(&["credit-note", "issue", "INV-1"]).is_err());
        assert!(matches!(
            parse(&["ar", "ageing", "--as-of", "2026-06-11"])
                .unwrap()
                .command,
            Command::Ar(ArCommand::Ageing { as_of: Some(_) })
        ));
        assert!(matches!(
            parse(&["invoice", "render", "INV-1", "--out", "i.html"])
                .unwrap()
                .command,
            Command::Invoice(InvoiceCommand::Render {
                format: RenderFormat::Html,
                ..
            })
        ));
        assert!(parse(&["tax", "publish"]).is_err());
        assert!(parse(&["credit", "show", "acme"]).is_ok());
        assert!(parse(&[
            "coupon",
            "grant",
            "g-1",
            "--customer",
            "acme",
            "--coupon",
            "c.toml",
            "--from",
            "2026-10-01"
        ])
        .is_ok());
    }

    #[test]
    fn command_definition_is_consistent() {
        // clap's own check of the derive (conflicts and requires name real args).
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
