//! Packed batches: `CreateTransactionsPacked`, the fixed-layout binary form of
//! a transaction batch for high-volume writers (`docs/packed-batch.md`).
//!
//! A [`PackedBatch`] is built item by item (the same items as a [`Batch`]),
//! encoding as it goes; each account name is written once, in the batch's name
//! table, and postings refer to it by number. The server turns the items into
//! exactly the commands the protobuf path makes of the same items, so the two
//! wires can be mixed freely: a batch sent packed and retried with
//! [`Client::submit`] (or the reverse) answers as replays.
//!
//! The answer is brief: per item, its seq, recorded time and entry hash
//! ([`PackedRecorded`]), or the item's error ([`ItemError`], in full, as with
//! [`Client::submit`]).
//!
//! ```
//! # use rust_decimal::Decimal;
//! use tally_client::{PackedBatch, VoidPendingSpec};
//! let mut batch = PackedBatch::new();
//! batch.add_transfer("t1", "assets:cash", "revenue:sales", Decimal::new(1050, 2))?;
//! batch.link_last();
//! batch.add_void_pending(&VoidPendingSpec::new("v1", "hold-1"))?;
//! assert_eq!(batch.len(), 2);
//! # Ok::<(), tally_client::ClientError>(())
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;
use tally_proto::packed::{
    decode_results, flag, kind, side, Bytes, ResultRecord, Writer, BATCH_HEADER_BYTES, BATCH_MAGIC,
    STRING_BYTES_MAX, VERSION,
};
use tally_proto::v1 as pb;

use crate::builders::{
    Batch, PostPendingSpec, ReverseSpec, TransactionItem, TransactionSpec, VoidPendingSpec,
};
use crate::client::{call_with, Client, Retry};
use crate::error::{ClientError, ErrorCode, ItemError, Result};
use crate::types::{Direction, Metadata, Posting};

/// A transaction batch in the packed binary format. Add items with the
/// `add_*` methods; each either adds the whole item or, when it cannot be
/// packed, nothing (the batch stays as it was).
///
/// What the format cannot carry is refused here with
/// [`ClientError::InvalidRequest`]: a negative amount (amounts are unsigned;
/// the ledger takes only positive ones), a string over 65,535 bytes, more
/// than 65,535 postings, amounts or metadata entries in one item, an
/// effective time outside the years 1678 to 2262 (nanoseconds in an `i64`).
/// Everything else goes to the ledger, which answers each item as it answers
/// the same item sent with [`Client::submit`].
#[derive(Debug, Clone, Default)]
pub struct PackedBatch {
    /// Account names and their numbers in the name table.
    names: HashMap<String, u32, foldhash::fast::RandomState>,
    /// Encoded bytes of the name table.
    names_bytes: usize,
    /// The items, encoded.
    items: Writer,
    count: usize,
    /// Where the flags byte of the last item is in `items`.
    last_flags_at: Option<usize>,
    /// The whole batch, once encoded; cleared by every change.
    encoded: OnceLock<Bytes>,
}

/// A recorded item of a packed batch: where it is in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedRecorded {
    /// The journal seq of its entry.
    pub seq: u64,
    pub recorded_at: SystemTime,
    /// The blake3 hash of its journal entry.
    pub entry_hash: [u8; 32],
    /// True when this id had been recorded before with the same content (a retry).
    pub replayed: bool,
}

impl PackedRecorded {
    pub fn entry_hash_hex(&self) -> String {
        hex::encode(self.entry_hash)
    }
}

/// The answer for one item of a packed batch.
pub type PackedResult = std::result::Result<PackedRecorded, ItemError>;

fn invalid(index: usize, field: &str, problem: impl std::fmt::Display) -> ClientError {
    ClientError::InvalidRequest(format!("packed item {index}, {field}: {problem}"))
}

/// Nanoseconds since the Unix epoch, if they fit in an `i64`.
fn unix_nanos(time: SystemTime) -> Option<i64> {
    let nanos = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    i64::try_from(nanos).ok()
}

fn system_time(nanos: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// Writes one item's body; knows the item's index and kind for errors.
struct ItemWriter<'a> {
    batch: &'a mut PackedBatch,
    index: usize,
    kind: &'static str,
}

impl ItemWriter<'_> {
    fn error(&self, field: &str, problem: impl std::fmt::Display) -> ClientError {
        invalid(self.index, &format!("{}.{field}", self.kind), problem)
    }

    fn str(&mut self, field: &str, text: &str) -> Result<()> {
        self.batch.items.str16(text).map_err(|too_long| {
            self.error(
                field,
                format_args!(
                    "{} bytes; the packed format carries at most {}",
                    too_long.len, too_long.max
                ),
            )
        })
    }

    fn count(&mut self, field: &str, count: usize) -> Result<()> {
        let count = u16::try_from(count)
            .map_err(|_| self.error(field, format_args!("{count}; at most 65535")))?;
        self.batch.items.u16(count);
        Ok(())
    }

    fn u64(&mut self, value: u64) {
        self.batch.items.u64(value);
    }

    fn effective_at(&mut self, time: Option<SystemTime>) -> Result<()> {
        if let Some(time) = time {
            let nanos = unix_nanos(time).ok_or_else(|| {
                self.error(
                    "effective_at",
                    "outside the supported range (years 1678 to 2262)",
                )
            })?;
            self.batch.items.i64(nanos);
        }
        Ok(())
    }

    fn metadata(&mut self, metadata: &Metadata) -> Result<()> {
        self.count("metadata", metadata.len())?;
        for (key, value) in metadata {
            self.str("metadata.key", key)?;
            self.str("metadata.value", value)?;
        }
        Ok(())
    }

    fn amount(&mut self, field: impl Fn() -> String, amount: Decimal) -> Result<()> {
        if amount.is_sign_negative() {
            return Err(self.error(
                &field(),
                format_args!(
                    "{amount} is negative; packed amounts are unsigned (the ledger takes only positive ones)"
                ),
            ));
        }
        // A Decimal's mantissa is below 2^96 and its scale at most 28.
        self.batch.items.u128(amount.mantissa().unsigned_abs());
        self.batch.items.u8(amount.scale() as u8);
        Ok(())
    }

    /// The number of `name` in the name table, added if new.
    fn name(&mut self, field: impl Fn() -> String, name: &str) -> Result<u32> {
        if let Some(&number) = self.batch.names.get(name) {
            return Ok(number);
        }
        if name.len() > STRING_BYTES_MAX {
            return Err(self.error(
                &field(),
                format_args!(
                    "{} bytes; the packed format carries at most {STRING_BYTES_MAX}",
                    name.len()
                ),
            ));
        }
        let number = u32::try_from(self.batch.names.len())
            .map_err(|_| self.error(&field(), "the name table is full"))?;
        self.batch.names.insert(name.to_string(), number);
        self.batch.names_bytes += 2 + name.len();
        Ok(number)
    }

    fn posting(
        &mut self,
        j: usize,
        account: &str,
        direction: Direction,
        amount: Decimal,
        currency: Option<&str>,
    ) -> Result<()> {
        let number = self.name(|| format!("postings[{j}].account"), account)?;
        self.batch.items.u32(number);
        self.batch.items.u8(match direction {
            Direction::Debit => side::DEBIT,
            Direction::Credit => side::CREDIT,
        });
        self.amount(|| format!("postings[{j}].amount"), amount)?;
        self.str(&format!("postings[{j}].currency"), currency.unwrap_or(""))
    }

    fn postings(&mut self, postings: &[Posting]) -> Result<()> {
        self.count("postings", postings.len())?;
        for (j, posting) in postings.iter().enumerate() {
            self.posting(
                j,
                &posting.account,
                posting.direction,
                posting.amount,
                posting.currency.as_deref(),
            )?;
        }
        Ok(())
    }
}

impl PackedBatch {
    /// The server's limit on items per call (as [`Batch::ITEMS_MAX`]).
    pub const ITEMS_MAX: usize = Batch::ITEMS_MAX;

    pub fn new() -> Self {
        PackedBatch::default()
    }

    /// Items added.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Distinct account names in the batch's name table.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Adds one item: `kind`, `flags`, then what `body` writes. On failure
    /// everything the item added is taken back.
    fn add_item(
        &mut self,
        kind: u8,
        kind_name: &'static str,
        flags: u8,
        body: impl FnOnce(&mut ItemWriter<'_>) -> Result<()>,
    ) -> Result<()> {
        let index = self.count;
        if u32::try_from(index + 1).is_err() {
            return Err(invalid(index, kind_name, "the batch is full"));
        }
        let start = self.items.len();
        let names_before = self.names.len();
        let names_bytes_before = self.names_bytes;
        self.items.u8(kind);
        self.items.u8(flags);
        let mut writer = ItemWriter {
            batch: self,
            index,
            kind: kind_name,
        };
        match body(&mut writer) {
            Ok(()) => {
                self.count += 1;
                self.last_flags_at = Some(start + 1);
                self.encoded = OnceLock::new();
                Ok(())
            }
            Err(error) => {
                self.items.truncate(start);
                if self.names.len() > names_before {
                    self.names
                        .retain(|_, number| (*number as usize) < names_before);
                    self.names_bytes = names_bytes_before;
                }
                Err(error)
            }
        }
    }

    /// Adds a posted transaction of two postings: `amount` from `debit` to
    /// `credit` (a debit of `debit` and a credit of `credit`), no description,
    /// metadata or currency. The same as [`PackedBatch::add_transaction`] of
    /// `Transaction::builder(id).debit(debit, amount).credit(credit, amount)`.
    pub fn add_transfer(
        &mut self,
        id: &str,
        debit: &str,
        credit: &str,
        amount: Decimal,
    ) -> Result<()> {
        self.add_item(kind::TRANSACTION, "transaction", 0, |w| {
            w.str("id", id)?;
            w.u64(0); // timeout_seconds
            w.str("description", "")?;
            w.count("metadata", 0)?;
            w.count("postings", 2)?;
            w.posting(0, debit, Direction::Debit, amount, None)?;
            w.posting(1, credit, Direction::Credit, amount, None)
        })
    }

    /// Adds a transaction, posted or pending.
    pub fn add_transaction(&mut self, spec: &TransactionSpec) -> Result<()> {
        let mut flags = 0;
        if spec.pending {
            flags |= flag::PENDING;
        }
        if spec.effective_at.is_some() {
            flags |= flag::EFFECTIVE_AT;
        }
        self.add_item(kind::TRANSACTION, "transaction", flags, |w| {
            w.str("id", &spec.id)?;
            w.u64(spec.timeout_seconds);
            w.effective_at(spec.effective_at)?;
            w.str("description", &spec.description)?;
            w.metadata(&spec.metadata)?;
            w.postings(&spec.postings)
        })
    }

    /// Adds the post of a pending transaction, in full or in part.
    pub fn add_post_pending(&mut self, spec: &PostPendingSpec) -> Result<()> {
        let flags = if spec.effective_at.is_some() {
            flag::EFFECTIVE_AT
        } else {
            0
        };
        self.add_item(kind::POST_PENDING, "post_pending", flags, |w| {
            w.str("id", &spec.id)?;
            w.str("pending_id", &spec.pending_id)?;
            w.effective_at(spec.effective_at)?;
            w.str("description", &spec.description)?;
            w.metadata(&spec.metadata)?;
            w.count("amounts", spec.amounts.len())?;
            for (j, &amount) in spec.amounts.iter().enumerate() {
                w.amount(|| format!("amounts[{j}]"), amount)?;
            }
            Ok(())
        })
    }

    /// Adds the void of a pending transaction.
    pub fn add_void_pending(&mut self, spec: &VoidPendingSpec) -> Result<()> {
        self.add_item(kind::VOID_PENDING, "void_pending", 0, |w| {
            w.str("id", &spec.id)?;
            w.str("pending_id", &spec.pending_id)?;
            w.str("reason", &spec.reason)
        })
    }

    /// Adds the reversal of a posted transaction.
    pub fn add_reverse(&mut self, spec: &ReverseSpec) -> Result<()> {
        let flags = if spec.effective_at.is_some() {
            flag::EFFECTIVE_AT
        } else {
            0
        };
        self.add_item(kind::REVERSE, "reverse", flags, |w| {
            w.str("id", &spec.id)?;
            w.str("transaction_id", &spec.transaction_id)?;
            w.effective_at(spec.effective_at)?;
            w.str("description", &spec.description)?;
            w.metadata(&spec.metadata)
        })
    }

    /// Adds an item of any kind.
    pub fn add(&mut self, item: &TransactionItem) -> Result<()> {
        match item {
            TransactionItem::Transaction(spec) => self.add_transaction(spec),
            TransactionItem::PostPending(spec) => self.add_post_pending(spec),
            TransactionItem::VoidPending(spec) => self.add_void_pending(spec),
            TransactionItem::Reverse(spec) => self.add_reverse(spec),
        }
    }

    /// Links the last added item to the next one (a chain of linked items
    /// succeeds or fails as a whole). Does nothing on an empty batch.
    pub fn link_last(&mut self) {
        if let Some(at) = self.last_flags_at {
            let flags = self.items.get_u8(at).unwrap_or(0);
            self.items.set_u8(at, flags | flag::LINKED);
            self.encoded = OnceLock::new();
        }
    }

    /// The packed form of a [`Batch`], links included.
    pub fn from_batch(batch: &Batch) -> Result<PackedBatch> {
        let mut packed = PackedBatch::new();
        for (item, linked) in batch.entries() {
            packed.add(item)?;
            if linked {
                packed.link_last();
            }
        }
        Ok(packed)
    }

    /// The batch's bytes: header, name table, items. Encoded once and kept
    /// until the batch changes, so a sender can have it made ahead (a clone
    /// of the result shares the bytes).
    pub fn encoded(&self) -> Bytes {
        self.encoded
            .get_or_init(|| {
                let mut table = vec![""; self.names.len()];
                for (name, &number) in &self.names {
                    if let Some(slot) = table.get_mut(number as usize) {
                        *slot = name;
                    }
                }
                let mut writer =
                    Writer::with_capacity(BATCH_HEADER_BYTES + self.names_bytes + self.items.len());
                writer.bytes(&BATCH_MAGIC);
                writer.u16(VERSION);
                writer.u16(0);
                // Both fit: checked as items and names were added.
                writer.u32(self.count as u32);
                writer.u32(table.len() as u32);
                for name in table {
                    // Cannot fail: names were checked against the limit when added.
                    let _ = writer.str16(name);
                }
                writer.bytes(self.items.as_slice());
                Bytes::from(writer.into_vec())
            })
            .clone()
    }
}

impl TryFrom<&Batch> for PackedBatch {
    type Error = ClientError;

    fn try_from(batch: &Batch) -> Result<PackedBatch> {
        PackedBatch::from_batch(batch)
    }
}

/// The typed results of a results blob, checked against the batch's length.
fn packed_results(bytes: &[u8], expected: usize) -> Result<Vec<PackedResult>> {
    let records = decode_results(bytes)
        .map_err(|error| ClientError::invalid_response(format!("packed results: {error}")))?;
    if records.len() != expected {
        return Err(ClientError::invalid_response(format!(
            "{} results for {expected} items",
            records.len()
        )));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| match record {
            ResultRecord::Recorded {
                seq,
                recorded_at,
                entry_hash,
                replayed,
            } => {
                let recorded_at = system_time(recorded_at).ok_or_else(|| {
                    ClientError::invalid_response(format!(
                        "results[{index}].recorded_at: {recorded_at} ns is not a time"
                    ))
                })?;
                Ok(Ok(PackedRecorded {
                    seq,
                    recorded_at,
                    entry_hash,
                    replayed,
                }))
            }
            ResultRecord::Error {
                code,
                name,
                field,
                message,
            } => {
                // The number is the contract; a number this client does not
                // know may still come with a name it knows.
                let code = i32::try_from(code)
                    .ok()
                    .and_then(|number| ErrorCode::try_from(number).ok())
                    .or_else(|| ErrorCode::from_str_name(&name))
                    .unwrap_or(ErrorCode::Unspecified);
                Ok(Err(ItemError {
                    index,
                    code,
                    field,
                    message,
                }))
            }
        })
        .collect()
}

impl Client {
    /// Records a packed batch; one result per item, in order. Safe to retry as
    /// a whole, on either wire: items already recorded answer `replayed`. A
    /// batch the server cannot read fails the call (`FIELD_INVALID`, the
    /// message naming the byte offset, item and field).
    pub async fn create_transactions_packed(
        &self,
        batch: &PackedBatch,
    ) -> Result<Vec<PackedResult>> {
        let request = pb::PackedTransactionsRequest {
            batch: batch.encoded(),
        };
        let response = call_with(
            &self.raw(),
            &self.policy,
            Retry::Safe,
            request,
            |mut raw, request| async move { raw.create_transactions_packed(request).await },
        )
        .await?;
        packed_results(&response.results, batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_proto::packed::{Reader, ResultsWriter};

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn names_are_written_once_and_items_in_order() {
        // Goal: two transfers over three names make a table of three names.
        let mut batch = PackedBatch::new();
        batch
            .add_transfer("t1", "assets:a", "assets:b", d("0.01"))
            .unwrap();
        batch
            .add_transfer("t2", "assets:b", "assets:c", d("10.50"))
            .unwrap();
        assert_eq!((batch.len(), batch.name_count()), (2, 3));
        let bytes = batch.encoded();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.array::<4>().unwrap(), *b"TLYB");
        assert_eq!(reader.u16().unwrap(), 1);
        assert_eq!(reader.u16().unwrap(), 0);
        assert_eq!(reader.u32().unwrap(), 2);
        assert_eq!(reader.u32().unwrap(), 3);
        let names: Vec<&str> = (0..3).map(|_| reader.str16().unwrap()).collect();
        assert_eq!(names, ["assets:a", "assets:b", "assets:c"]);
    }

    #[test]
    fn a_refused_item_leaves_the_batch_as_it_was() {
        // Goal: a negative amount, a long id or an unrepresentable time adds
        // nothing, not even the names of the refused item.
        let mut batch = PackedBatch::new();
        batch
            .add_transfer("t1", "assets:a", "assets:b", d("1"))
            .unwrap();
        let before = batch.encoded();
        let negative = TransactionSpec::new("t2")
            .posting(Posting::debit("assets:new", d("1")))
            .posting(Posting::credit("assets:b", d("-1")));
        let error = batch.add_transaction(&negative).unwrap_err();
        assert!(
            matches!(&error, ClientError::InvalidRequest(m) if m.contains("transaction.postings[1].amount")),
            "{error}"
        );
        let long = "x".repeat(70_000);
        assert!(batch
            .add_transfer(&long, "assets:a", "assets:b", d("1"))
            .is_err());
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        let late = TransactionSpec::new("t3").effective_at(far);
        assert!(batch.add_transaction(&late).is_err());
        assert_eq!((batch.len(), batch.name_count()), (1, 2));
        assert_eq!(batch.encoded(), before);
    }

    #[test]
    fn link_last_sets_the_last_items_flag() {
        // Goal: linking changes the encoding (the cache is dropped).
        let mut batch = PackedBatch::new();
        batch
            .add_void_pending(&VoidPendingSpec::new("v", "p"))
            .unwrap();
        let unlinked = batch.encoded();
        batch.link_last();
        let linked = batch.encoded();
        assert_ne!(unlinked, linked);
        // Header (16), no names: kind at 16, flags at 17.
        assert_eq!(linked[17], flag::LINKED);
    }

    #[test]
    fn times_convert_both_ways_around_the_epoch() {
        for nanos in [0, 1, -1, 1_700_000_000_123_456_789, i64::MIN, i64::MAX] {
            let time = system_time(nanos).unwrap();
            assert_eq!(unix_nanos(time), Some(nanos));
        }
    }

    #[test]
    fn results_become_typed_answers() {
        // Goal: recorded, replayed and refused items, with the error code from
        // its number, or from its name when the number is unknown.
        let mut writer = ResultsWriter::new(3);
        writer.recorded(5, 1_000, &[7; 32], false);
        writer.error(
            31,
            "TRANSACTION_UNBALANCED",
            "items[1].transaction.postings",
            "no",
        );
        writer.error(9_999, "NOT_PENDING", "items[2]", "later code");
        let results = packed_results(&writer.finish(), 3).unwrap();
        let recorded = results[0].clone().unwrap();
        assert_eq!((recorded.seq, recorded.replayed), (5, false));
        assert_eq!(recorded.entry_hash_hex(), "07".repeat(32));
        let error = results[1].clone().unwrap_err();
        assert_eq!(
            (error.index, error.code),
            (1, ErrorCode::TransactionUnbalanced)
        );
        assert_eq!(results[2].clone().unwrap_err().code, ErrorCode::NotPending);
        let short = packed_results(&ResultsWriter::new(0).finish(), 1).unwrap_err();
        assert!(matches!(short, ClientError::InvalidResponse(_)), "{short}");
    }
}
