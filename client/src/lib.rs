//! Async Rust client for the Tally billing ledger.
//!
//! A façade over the gRPC contract (`proto/tally/v1/*.proto`): users work
//! with domain types — `Decimal` amounts, `SystemTime` times (nanoseconds since
//! the epoch in metering, as usage events carry them), typed errors — and never
//! with generated code. Calls have deadlines and bounded retries (see
//! [`ClientBuilder`]), so a client never hangs on a dead server.
//!
//! ```no_run
//! use rust_decimal::Decimal;
//! use tally_client::{AccountSpec, AccountType, Client, Transaction};
//!
//! # async fn example() -> Result<(), tally_client::ClientError> {
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! client.define_currency("USD", 2).await?;
//! client.open_account(AccountSpec::new("assets:cash", AccountType::Asset, "USD")).await?;
//! client.open_account(AccountSpec::new("revenue:sales", AccountType::Revenue, "USD")).await?;
//! let amount = Decimal::new(1000, 2); // 10.00
//! let tx = client
//!     .post_transaction(
//!         Transaction::builder("sale-1")
//!             .debit("assets:cash", amount)
//!             .credit("revenue:sales", amount),
//!     )
//!     .await?;
//! println!("recorded at seq {}", tx.seq);
//! # Ok(())
//! # }
//! ```

mod admin;
mod audit;
mod billing;
mod builders;
mod client;
mod convert;
mod error;
mod metering;
mod packed;
mod rating;
mod types;

pub use admin::{ApiKey, ApiKeyCreated, Role};
pub use audit::{AuditEntry, SignedCheckpoint, SigningKey};
pub use billing::{
    AgeingRow, Allocation, BillingProfile, BillingRun, BillingRunRequest, ChangeTiming,
    CouponGrantResult, CouponUse, CreditLine, CreditNote, CreditNoteLine, CreditNoteRequest,
    CustomerCredit, Invoice, InvoiceLine, InvoiceLineKind, InvoiceLineTax, InvoiceLineTier,
    InvoiceStatus, InvoiceTaxTotal, Payment, PaymentKind, PaymentRequest, ProfileSet,
    ReceivableAgeing, RenderFormat, RenderedInvoice, RunInvoice, RunProgress, Subscription,
    SubscriptionResult, SubscriptionSegment, TaxRulesVersion, UsageDigest, VoidedInvoice,
    AGEING_BUCKETS,
};
pub use builders::{
    Batch, PageRequest, PostPendingSpec, ReverseSpec, TransactionBuilder, TransactionFilter,
    TransactionItem, TransactionSpec, TrialBalanceQuery, VoidPendingSpec,
};
pub use client::{
    ApiKeyInterceptor, Client, ClientBuilder, JournalStream, RawAdminClient, RawAuditClient,
    RawBillingClient, RawClient, RawMeteringClient, RawRatingClient,
};
pub use error::{ClientError, ErrorCode, ItemError, Result};
pub use metering::{
    Aggregation, BucketWidth, Customer, CustomerCreated, CustomerSpec, EventProof, EventRecorded,
    EventResult, IngestOutcome, LateEvent, LateEventsPage, MeterSpec, MeterVersion, PackedEvents,
    TimestampNs, UsageBucket, UsageEvent, UsageGroup, UsageQuery, UsageResult, UsageSeries,
    INGEST_EVENTS_MAX, LIST_PAGE_SIZE_MAX,
};
pub use packed::{PackedBatch, PackedRecorded, PackedResult};
pub use rating::{
    Adjustment, AppliedDiscount, AppliedTier, BillingInterval, Charge, ChargeQuantity, Coupon,
    CouponDiscount, CouponDuration, CouponGrant, CustomerSimulation, Day, FlatTiming, IntervalUnit,
    LineKind, LineTax, PackageDetail, PercentageDetail, Period, PlanChoice, PlanError, PlanKey,
    PlanSpec, PlanVersion, Pricing, Proration, QuoteRequest, RatedLine, RatingResult, RoundingMode,
    SimulateRequest, SimulationResult, TaxMode, TaxRounding, TaxRule, TaxTotal, Tier,
};
pub use types::{
    Account, AccountBalance, AccountCreated, AccountHistory, AccountSpec, AccountType, AsOf,
    Balance, BalanceChange, BalanceConstraint, Balances, Currency, CurrencyCreated, CurrencyTotal,
    Direction, JournalEntry, LedgerInfo, Metadata, Page, PendingState, Posting, Transaction,
    TransactionKind, TransactionRecorded, TrialBalance, TrialBalanceLine,
};

/// Re-exported so that users can name amounts without adding the crate themselves.
pub use rust_decimal::Decimal;
/// The generated protobuf types, for use with [`Client::raw`] only.
pub use tally_proto::v1 as proto;
