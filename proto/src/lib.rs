//! The gRPC contract of Tally: generated code for `proto/tally/v1/*.proto`.
//!
//! The `.proto` files are the contract; this crate exposes what is generated
//! from them, and the byte layouts of the packed batches that
//! `CreateTransactionsPacked` ([`packed`], `docs/packed-batch.md`) and
//! `IngestEventsPacked` ([`packed_events`], `docs/packed-events.md`) carry in
//! a `bytes` field. Conversions to domain types live at the server's
//! edge (`api`) and in the client façade, never here.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tally.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tally_descriptor");
}

pub mod packed;
pub mod packed_events;

/// The gRPC status code each `ErrorCode` travels with. Part of the contract:
/// the server answers with it and clients classify with it, so both read this
/// one table.
pub fn grpc_code(code: v1::ErrorCode) -> tonic::Code {
    use tonic::Code;
    use v1::ErrorCode::*;
    match code {
        // The request itself is malformed, whatever the ledger's state.
        FieldRequired
        | FieldInvalid
        | FieldTooLong
        | BatchEmpty
        | AmountNotPositive
        | AmountScaleExceeded
        | AmountOverflow
        | CurrencyUnknown
        | CurrencyMismatch
        | ScaleOutOfRange
        | PostingsTooFew
        | TransactionUnbalanced
        | LinkedChainOpen
        | TimeoutInvalid
        | ValueMissing
        | ValueNotNumeric
        | ValueOutOfRange
        | PropertyMissing
        | TimestampInFuture
        | TimestampBeforeGrace
        | WindowInvalid
        | PeriodInvalid
        | QuantityNegative => Code::InvalidArgument,
        // Over a named size limit.
        BatchTooLarge => Code::ResourceExhausted,
        AccountNotFound | TransactionNotFound | CheckpointNotFound | ApiKeyNotFound
        | CustomerNotFound | MeterNotFound | EventNotFound | PlanNotFound | ChargeNotFound
        | SubscriptionNotFound | InvoiceNotFound => Code::NotFound,
        AccountExists | CurrencyExists | TransactionExists | CustomerExists | EventIdConflict
        | BillingIdExists => Code::AlreadyExists,
        // Well-formed, but the ledger's state does not allow it.
        AccountClosed
        | AccountNotEmpty
        | BalanceConstraintViolated
        | TransactionAlreadyFailed
        | NotPending
        | PendingAlreadyPosted
        | PendingAlreadyVoided
        | PendingExpired
        | PendingAmountExceeded
        | AlreadyReversed
        | NotReversible
        | LinkedItemFailed
        | MeterAggregationChanged
        | PeriodNotAfterClosed
        | PlanCurrencyChanged
        | PlanMismatch
        | BillingProfileMissing
        | BillingCurrencyChanged
        | SubscriptionChangeInvalid
        | InvoiceNotVoidable
        | CreditExceedsInvoice
        | AllocationExceedsOutstanding
        | CustomerCreditInsufficient
        | BillingPeriodOpen => Code::FailedPrecondition,
        SeqOutOfRange => Code::OutOfRange,
        Internal => Code::Internal,
        Unavailable => Code::Unavailable,
        Unauthenticated => Code::Unauthenticated,
        PermissionDenied => Code::PermissionDenied,
        RateLimited => Code::ResourceExhausted,
        Unspecified => Code::Unknown,
    }
}
