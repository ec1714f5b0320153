//! Named limits on everything a client sends. Each is checked with a precise
//! error naming the field and the limit.

/// Items in one transaction batch (TigerBeetle's 8,190 per request).
pub const BATCH_ITEMS_MAX: usize = 8_190;
/// Accounts or currencies in one batch.
pub const ACCOUNTS_BATCH_MAX: usize = 8_190;
/// Postings in one transaction.
pub const POSTINGS_MAX: usize = 128;
/// Bytes of a transaction id.
pub const ID_BYTES_MAX: usize = 128;
/// Bytes of an account name, segments in it, and bytes of one segment.
pub const ACCOUNT_NAME_BYTES_MAX: usize = 255;
pub const ACCOUNT_NAME_SEGMENTS_MAX: usize = 8;
pub const ACCOUNT_NAME_SEGMENT_BYTES_MAX: usize = 64;
/// Bytes of a currency code.
pub const CURRENCY_CODE_BYTES_MAX: usize = 16;
/// Bytes of a description or void reason.
pub const DESCRIPTION_BYTES_MAX: usize = 1_024;
/// Metadata entries, and bytes of one key and one value.
pub const METADATA_ENTRIES_MAX: usize = 32;
pub const METADATA_KEY_BYTES_MAX: usize = 64;
pub const METADATA_VALUE_BYTES_MAX: usize = 1_024;
/// Longest pending timeout: ten years.
pub const TIMEOUT_SECONDS_MAX: u64 = 10 * 365 * 24 * 3600;
/// Page size of listings.
pub const PAGE_SIZE_MAX: usize = 1_000;
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// Coupons, tax rules and manual adjustments in one quote.
pub const QUOTE_COUPONS_MAX: usize = 16;
pub const QUOTE_TAXES_MAX: usize = 16;
pub const QUOTE_ADJUSTMENTS_MAX: usize = 64;
/// Transactions of a quote's percentage charges, all together.
pub const QUOTE_TRANSACTIONS_MAX: usize = 100_000;
/// Customers named in one simulation (none named: every customer).
pub const SIMULATION_CUSTOMERS_MAX: usize = 10_000;
