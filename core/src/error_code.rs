//! Stable error codes. The numbers are those of `tally.v1.ErrorCode` in the proto
//! and are recorded in `TransactionRejected` entries: they never change meaning.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($name:ident = $number:literal => $text:literal,)*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode { $($name = $number,)* }

        impl ErrorCode {
            /// Every code, in number order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            pub fn number(self) -> u32 { self as u32 }

            pub fn from_number(number: u32) -> Option<ErrorCode> {
                match number { $($number => Some(ErrorCode::$name),)* _ => None }
            }

            /// The SCREAMING_SNAKE_CASE name used in the proto enum.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$name => $text,)* }
            }
        }
    };
}

error_codes! {
    FieldRequired = 1 => "FIELD_REQUIRED",
    FieldInvalid = 2 => "FIELD_INVALID",
    FieldTooLong = 3 => "FIELD_TOO_LONG",
    BatchEmpty = 4 => "BATCH_EMPTY",
    BatchTooLarge = 5 => "BATCH_TOO_LARGE",
    AmountNotPositive = 10 => "AMOUNT_NOT_POSITIVE",
    AmountScaleExceeded = 11 => "AMOUNT_SCALE_EXCEEDED",
    AmountOverflow = 12 => "AMOUNT_OVERFLOW",
    CurrencyUnknown = 13 => "CURRENCY_UNKNOWN",
    CurrencyExists = 14 => "CURRENCY_EXISTS",
    CurrencyMismatch = 15 => "CURRENCY_MISMATCH",
    ScaleOutOfRange = 16 => "SCALE_OUT_OF_RANGE",
    AccountNotFound = 20 => "ACCOUNT_NOT_FOUND",
    AccountExists = 21 => "ACCOUNT_EXISTS",
    AccountClosed = 22 => "ACCOUNT_CLOSED",
    AccountNotEmpty = 23 => "ACCOUNT_NOT_EMPTY",
    BalanceConstraintViolated = 24 => "BALANCE_CONSTRAINT_VIOLATED",
    PostingsTooFew = 30 => "POSTINGS_TOO_FEW",
    TransactionUnbalanced = 31 => "TRANSACTION_UNBALANCED",
    TransactionExists = 32 => "TRANSACTION_EXISTS",
    TransactionAlreadyFailed = 33 => "TRANSACTION_ALREADY_FAILED",
    TransactionNotFound = 34 => "TRANSACTION_NOT_FOUND",
    NotPending = 35 => "NOT_PENDING",
    PendingAlreadyPosted = 36 => "PENDING_ALREADY_POSTED",
    PendingAlreadyVoided = 37 => "PENDING_ALREADY_VOIDED",
    PendingExpired = 38 => "PENDING_EXPIRED",
    PendingAmountExceeded = 39 => "PENDING_AMOUNT_EXCEEDED",
    AlreadyReversed = 40 => "ALREADY_REVERSED",
    NotReversible = 41 => "NOT_REVERSIBLE",
    LinkedItemFailed = 42 => "LINKED_ITEM_FAILED",
    LinkedChainOpen = 43 => "LINKED_CHAIN_OPEN",
    TimeoutInvalid = 44 => "TIMEOUT_INVALID",
    SeqOutOfRange = 50 => "SEQ_OUT_OF_RANGE",
    CheckpointNotFound = 51 => "CHECKPOINT_NOT_FOUND",
    ApiKeyNotFound = 52 => "API_KEY_NOT_FOUND",
    Internal = 60 => "INTERNAL",
    Unavailable = 61 => "UNAVAILABLE",
    Unauthenticated = 70 => "UNAUTHENTICATED",
    PermissionDenied = 71 => "PERMISSION_DENIED",
    RateLimited = 72 => "RATE_LIMITED",
    CustomerNotFound = 80 => "CUSTOMER_NOT_FOUND",
    CustomerExists = 81 => "CUSTOMER_EXISTS",
    MeterNotFound = 82 => "METER_NOT_FOUND",
    MeterAggregationChanged = 83 => "METER_AGGREGATION_CHANGED",
    EventIdConflict = 84 => "EVENT_ID_CONFLICT",
    ValueMissing = 85 => "VALUE_MISSING",
    ValueNotNumeric = 86 => "VALUE_NOT_NUMERIC",
    ValueOutOfRange = 87 => "VALUE_OUT_OF_RANGE",
    PropertyMissing = 88 => "PROPERTY_MISSING",
    TimestampInFuture = 89 => "TIMESTAMP_IN_FUTURE",
    TimestampBeforeGrace = 90 => "TIMESTAMP_BEFORE_GRACE",
    WindowInvalid = 91 => "WINDOW_INVALID",
    EventNotFound = 92 => "EVENT_NOT_FOUND",
    PeriodNotAfterClosed = 93 => "PERIOD_NOT_AFTER_CLOSED",
    PlanNotFound = 100 => "PLAN_NOT_FOUND",
    PlanCurrencyChanged = 101 => "PLAN_CURRENCY_CHANGED",
    PeriodInvalid = 102 => "PERIOD_INVALID",
    QuantityNegative = 103 => "QUANTITY_NEGATIVE",
    ChargeNotFound = 104 => "CHARGE_NOT_FOUND",
    PlanMismatch = 105 => "PLAN_MISMATCH",
    BillingProfileMissing = 110 => "BILLING_PROFILE_MISSING",
    BillingCurrencyChanged = 111 => "BILLING_CURRENCY_CHANGED",
    SubscriptionNotFound = 112 => "SUBSCRIPTION_NOT_FOUND",
    BillingIdExists = 113 => "BILLING_ID_EXISTS",
    SubscriptionChangeInvalid = 114 => "SUBSCRIPTION_CHANGE_INVALID",
    InvoiceNotFound = 115 => "INVOICE_NOT_FOUND",
    InvoiceNotVoidable = 116 => "INVOICE_NOT_VOIDABLE",
    CreditExceedsInvoice = 117 => "CREDIT_EXCEEDS_INVOICE",
    AllocationExceedsOutstanding = 118 => "ALLOCATION_EXCEEDS_OUTSTANDING",
    CustomerCreditInsufficient = 119 => "CUSTOMER_CREDIT_INSUFFICIENT",
    BillingPeriodOpen = 120 => "BILLING_PERIOD_OPEN",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
