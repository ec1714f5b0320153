//! The packed batch of `CreateTransactionsPacked` (`docs/packed-batch.md`).
//!
//! [`decode_batch`] reads a batch into the same [`TransactionItem`]s that
//! `convert::transaction_item` makes from the protobuf items of the same
//! transfers, so both wires feed the engine (and the request digest) the same
//! commands: an item sent packed and retried through protobuf is a replay.
//! [`encode_results`] writes the answers.
//!
//! Two kinds of failure, as on the protobuf path:
//! - a batch that cannot be read (bad magic or version, truncation, a bad
//!   kind, flag, side, name index or UTF-8, a repeated metadata key, bytes
//!   after the last item), or that is empty or over a limit, fails the whole
//!   call: a [`BatchError`] naming the byte offset, the item and field, and
//!   the stable code;
//! - an amount a `Decimal` cannot hold (mantissa over 96 bits, scale over 28)
//!   fails its item only, with the code and field path the protobuf path gives
//!   for the same amount written as a decimal string.
//!
//! Nothing here panics on any input: reads are bounds-checked
//! ([`tally_proto::packed::Reader`]) and every count is checked against the
//! bytes left before anything is allocated for it.

use rust_decimal::Decimal;
use tally_core::entry::{Metadata, Side};
use tally_core::error_code::ErrorCode;
use tally_proto::packed::{
    flag, kind, side, ReadError, Reader, ResultsWriter, AMOUNT_BYTES, AMOUNT_MANTISSA_MAX,
    AMOUNT_SCALE_MAX, BATCH_MAGIC, METADATA_ENTRY_BYTES_MIN, NAME_BYTES_MIN, POSTING_BYTES_MIN,
    VERSION,
};

use crate::error::LedgerError;
use crate::ledger::command::{
    PostPendingSpec, PostingSpec, ReverseSpec, TransactionCommand, TransactionItem,
    TransactionSpec, VoidPendingSpec,
};
use crate::ledger::limits::{ACCOUNT_NAME_BYTES_MAX, BATCH_ITEMS_MAX, POSTINGS_MAX};
use crate::ledger::view::{Recorded, TransactionView};

/// Names in a batch's account-name table: one per posting of a full batch.
pub const NAMES_MAX: usize = BATCH_ITEMS_MAX * POSTINGS_MAX;

/// Account-name bytes the postings of a batch may copy out of its name table,
/// per byte of the batch. A posting takes at least 24 bytes and a valid name at
/// most 255, so no batch of valid names comes near; only a long (invalid) name
/// named by many postings does, and it would otherwise turn a few MiB of batch
/// into GiBs of copies.
pub const NAME_COPY_BYTES_PER_BATCH_BYTE: usize = 16;

/// The smallest item: kind, flags and the three empty strings of a void.
const ITEM_BYTES_MIN: usize = 2 + 3 * 2;

/// One item of a decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedItem {
    /// Linked to the next item (known even when the item failed).
    pub linked: bool,
    /// The command, or why this item alone is refused, with its field path
    /// relative to the item (`transaction.postings[1].amount`), as
    /// `convert::transaction_item` reports it.
    pub item: Result<TransactionItem, LedgerError>,
}

/// A batch that fails the whole call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// `FIELD_INVALID` (unreadable), `BATCH_EMPTY` or `BATCH_TOO_LARGE`.
    pub code: ErrorCode,
    /// Where in the batch, from its first byte.
    pub offset: usize,
    /// What is there: `header.version`, `names[3]`,
    /// `items[4].transaction.postings[1].direction`.
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "packed batch, byte {} ({}): {}",
            self.offset, self.path, self.problem
        )
    }
}

impl BatchError {
    /// The call's error: field `batch`, the code, and this as its message.
    pub fn to_ledger_error(&self) -> LedgerError {
        LedgerError::new(self.code, "batch", self.to_string())
    }
}

pub(crate) fn malformed(offset: usize, path: String, problem: impl Into<String>) -> BatchError {
    BatchError {
        code: ErrorCode::FieldInvalid,
        offset,
        path,
        problem: problem.into(),
    }
}

/// A read's failure at `path` (built only on failure).
pub(crate) fn read<T>(
    result: Result<T, ReadError>,
    path: impl FnOnce() -> String,
) -> Result<T, BatchError> {
    result.map_err(|error| malformed(error.offset, path(), error.problem))
}

/// Reads the first 8 bytes of a packed batch (`what`: "packed batch"): its
/// `magic`, a version this server reads, and reserved bytes that are zero.
pub(crate) fn check_header(
    reader: &mut Reader<'_>,
    magic: [u8; 4],
    what: &str,
) -> Result<(), BatchError> {
    let found: [u8; 4] = read(reader.array(), || "header.magic".into())?;
    if found != magic {
        return Err(malformed(
            0,
            "header.magic".into(),
            format!(
                "not a {what}: magic {found:02x?}, expected {:?}",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let at = reader.offset();
    let version = read(reader.u16(), || "header.version".into())?;
    if version != VERSION {
        return Err(malformed(
            at,
            "header.version".into(),
            format!("version {version} is not supported; this server reads version {VERSION}"),
        ));
    }
    let at = reader.offset();
    let reserved = read(reader.u16(), || "header.reserved".into())?;
    if reserved != 0 {
        return Err(malformed(
            at,
            "header.reserved".into(),
            format!("reserved bytes are {reserved:#06x}, expected 0"),
        ));
    }
    Ok(())
}

/// Reads a packed batch. One [`DecodedItem`] per item, in order, or the
/// reason the batch as a whole is refused.
///
/// On a machine of several cores, a batch of at least twice [`PART_ITEMS_MIN`]
/// items is decoded item by item from each item's start, in parts on up to one
/// thread per core (`parallel::map_indexed`, as a protobuf batch is
/// converted): one client's batch would otherwise hold one core while the
/// writer waits for it. The answer is the same either way.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<DecodedItem>, BatchError> {
    decode(bytes, None)
}

/// [`decode_batch`] item by item from each item's start as a large batch is
/// (`parts` > 1; in parts once it is large enough for `parallel::map_indexed`)
/// or in place (`parts` = 1), whatever the batch's size: for tests that the
/// two ways give the same answer.
pub fn decode_batch_in_parts(bytes: &[u8], parts: usize) -> Result<Vec<DecodedItem>, BatchError> {
    decode(bytes, Some(parts))
}

/// Below this many items per part, decoding in place is faster (the same
/// rule as `parallel::map_indexed`'s, which makes the parts).
pub const PART_ITEMS_MIN: usize = 1024;

fn decode(bytes: &[u8], parts: Option<usize>) -> Result<Vec<DecodedItem>, BatchError> {
    let mut reader = Reader::new(bytes);
    check_header(&mut reader, BATCH_MAGIC, "packed batch")?;
    let at = reader.offset();
    let item_count = read(reader.u32(), || "header.item_count".into())? as usize;
    if item_count == 0 {
        return Err(BatchError {
            code: ErrorCode::BatchEmpty,
            offset: at,
            path: "header.item_count".into(),
            problem: "the batch must hold at least one item".into(),
        });
    }
    if item_count > BATCH_ITEMS_MAX {
        return Err(BatchError {
            code: ErrorCode::BatchTooLarge,
            offset: at,
            path: "header.item_count".into(),
            problem: format!(
                "the batch holds {item_count} items; the maximum is {BATCH_ITEMS_MAX}"
            ),
        });
    }
    let at = reader.offset();
    let name_count = read(reader.count32(NAME_BYTES_MIN), || {
        "header.name_count".into()
    })?;
    if name_count > NAMES_MAX {
        return Err(BatchError {
            code: ErrorCode::BatchTooLarge,
            offset: at,
            path: "header.name_count".into(),
            problem: format!("the name table holds {name_count} names; the maximum is {NAMES_MAX}"),
        });
    }
    let mut names = Vec::with_capacity(name_count);
    for n in 0..name_count {
        names.push(read(reader.str16(), || format!("names[{n}]"))?.to_string());
    }
    let at = reader.offset();
    if item_count.saturating_mul(ITEM_BYTES_MIN) > reader.remaining() {
        return Err(malformed(
            at,
            "items".into(),
            format!(
                "{item_count} items (at least {ITEM_BYTES_MIN} bytes each) do not fit in the {} bytes left",
                reader.remaining()
            ),
        ));
    }
    let copy_budget = bytes.len().saturating_mul(NAME_COPY_BYTES_PER_BATCH_BYTE);
    let in_parts = parts.map_or_else(
        || {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores > 1 && item_count >= 2 * PART_ITEMS_MIN
        },
        |parts| parts > 1,
    );
    if in_parts {
        // Where each item starts, if the batch is whole; otherwise it is
        // read in place, which finds and names the first fault.
        if let Some(starts) = item_starts(reader.clone(), item_count, &names, copy_budget) {
            if let Some(items) = decode_at_starts(bytes, &names, &starts) {
                return items;
            }
        }
    }
    let mut decoder = Decoder {
        reader,
        names: &names,
        copied: 0,
        copy_budget,
    };
    let mut items = Vec::with_capacity(item_count);
    for index in 0..item_count {
        items.push(decoder.item(index)?);
    }
    if !decoder.reader.is_at_end() {
        return Err(malformed(
            decoder.reader.offset(),
            format!("items[{item_count}]"),
            format!(
                "{} bytes after the last of {item_count} items",
                decoder.reader.remaining()
            ),
        ));
    }
    Ok(items)
}

/// The offset of each item and of the end of the last one, when every item's
/// layout is whole (lengths and counts within the batch, kinds known, name
/// numbers in the table, names copied within `copy_budget`) and nothing follows
/// the last; `None` otherwise. Reads lengths only: strings, flags and amounts
/// are the decoder's to check.
fn item_starts(
    mut reader: Reader<'_>,
    item_count: usize,
    names: &[String],
    copy_budget: usize,
) -> Option<Vec<usize>> {
    fn skip_str(reader: &mut Reader<'_>) -> Option<()> {
        let len = usize::from(reader.u16().ok()?);
        reader.take(len).ok().map(drop)
    }
    fn skip_metadata(reader: &mut Reader<'_>) -> Option<()> {
        for _ in 0..reader.u16().ok()? {
            skip_str(reader)?;
            skip_str(reader)?;
        }
        Some(())
    }
    let mut starts = Vec::with_capacity(item_count + 1);
    let mut copied = 0usize;
    for _ in 0..item_count {
        starts.push(reader.offset());
        let kind = reader.u8().ok()?;
        let flags = reader.u8().ok()?;
        let effective_at = if flags & flag::EFFECTIVE_AT != 0 {
            8
        } else {
            0
        };
        skip_str(&mut reader)?; // id
        match kind {
            kind::TRANSACTION => {
                reader.take(8 + effective_at).ok()?; // timeout_seconds, effective_at
                skip_str(&mut reader)?; // description
                skip_metadata(&mut reader)?;
                for _ in 0..reader.u16().ok()? {
                    let name = names.get(reader.u32().ok()? as usize)?;
                    copied = copied.saturating_add(name.len());
                    reader.take(1 + AMOUNT_BYTES).ok()?; // side, amount
                    skip_str(&mut reader)?; // currency
                }
            }
            kind::POST_PENDING => {
                skip_str(&mut reader)?; // pending_id
                reader.take(effective_at).ok()?;
                skip_str(&mut reader)?; // description
                skip_metadata(&mut reader)?;
                let count = usize::from(reader.u16().ok()?);
                reader.take(count * AMOUNT_BYTES).ok()?;
            }
            kind::VOID_PENDING => {
                skip_str(&mut reader)?; // pending_id
                skip_str(&mut reader)?; // reason
            }
            kind::REVERSE => {
                skip_str(&mut reader)?; // transaction_id
                reader.take(effective_at).ok()?;
                skip_str(&mut reader)?; // description
                skip_metadata(&mut reader)?;
            }
            _ => return None,
        }
    }
    starts.push(reader.offset());
    (copied <= copy_budget && reader.is_at_end()).then_some(starts)
}

/// Decodes each item from its start, in parts on up to one thread per core
/// (`parallel::map_indexed`): the items, or the first item's refusal (the
/// first fault in the batch, as in place). `None` if an item does not end
/// where the next begins (the decoder and [`item_starts`] disagree; never
/// expected): the caller reads in place.
fn decode_at_starts(
    bytes: &[u8],
    names: &[String],
    starts: &[usize],
) -> Option<Result<Vec<DecodedItem>, BatchError>> {
    let spans: Vec<(usize, usize)> = starts.windows(2).map(|w| (w[0], w[1])).collect();
    let decoded = crate::parallel::map_indexed(spans, |index, (start, end)| {
        let mut decoder = Decoder {
            reader: Reader::at(bytes, start),
            names,
            copied: 0,
            // Checked for the whole batch by `item_starts`.
            copy_budget: usize::MAX,
        };
        let item = decoder.item(index);
        (item, decoder.reader.offset() == end)
    });
    let mut items = Vec::with_capacity(decoded.len());
    for (item, whole) in decoded {
        match item {
            Err(error) => return Some(Err(error)),
            Ok(item) if whole => items.push(item),
            Ok(_) => return None,
        }
    }
    Some(Ok(items))
}

struct Decoder<'a> {
    reader: Reader<'a>,
    names: &'a [String],
    /// Account-name bytes copied into postings so far, and the most allowed.
    copied: usize,
    copy_budget: usize,
}

/// The first error of an item: the item is refused with it, but the rest of
/// its bytes are still read (the next item starts after them).
type FirstError = Option<LedgerError>;

impl<'a> Decoder<'a> {
    fn item(&mut self, index: usize) -> Result<DecodedItem, BatchError> {
        let at = self.reader.offset();
        let kind = read(self.reader.u8(), || format!("items[{index}].kind"))?;
        let (kind_name, allowed) = match kind {
            kind::TRANSACTION => (
                "transaction",
                flag::LINKED | flag::PENDING | flag::EFFECTIVE_AT,
            ),
            kind::POST_PENDING => ("post_pending", flag::LINKED | flag::EFFECTIVE_AT),
            kind::VOID_PENDING => ("void_pending", flag::LINKED),
            kind::REVERSE => ("reverse", flag::LINKED | flag::EFFECTIVE_AT),
            other => {
                return Err(malformed(
                    at,
                    format!("items[{index}].kind"),
                    format!(
                        "unknown item kind {other}; 1 = transaction, 2 = post_pending, \
                         3 = void_pending, 4 = reverse"
                    ),
                ))
            }
        };
        let at = self.reader.offset();
        let flags = read(self.reader.u8(), || format!("items[{index}].flags"))?;
        if flags & !allowed != 0 {
            return Err(malformed(
                at,
                format!("items[{index}].flags"),
                format!(
                    "flags {flags:#04x} set bits a {kind_name} item does not have \
                     (it may set {allowed:#04x})"
                ),
            ));
        }
        let linked = flags & flag::LINKED != 0;
        let item = Item {
            index,
            kind: kind_name,
            flags,
        };
        let mut first_error = None;
        let command = match kind {
            kind::TRANSACTION => {
                TransactionCommand::Transaction(self.transaction(&item, &mut first_error)?)
            }
            kind::POST_PENDING => {
                TransactionCommand::PostPending(self.post_pending(&item, &mut first_error)?)
            }
            kind::VOID_PENDING => TransactionCommand::VoidPending(self.void_pending(&item)?),
            _ => TransactionCommand::Reverse(self.reverse(&item)?),
        };
        Ok(DecodedItem {
            linked,
            item: match first_error {
                Some(error) => Err(error),
                None => Ok(TransactionItem { command, linked }),
            },
        })
    }

    fn string(&mut self, item: &Item, field: &str) -> Result<String, BatchError> {
        Ok(read(self.reader.str16(), || item.path(field))?.to_string())
    }

    fn effective_at(&mut self, item: &Item) -> Result<Option<i64>, BatchError> {
        if item.flags & flag::EFFECTIVE_AT == 0 {
            return Ok(None);
        }
        Ok(Some(read(self.reader.i64(), || item.path("effective_at"))?))
    }

    fn metadata(&mut self, item: &Item) -> Result<Metadata, BatchError> {
        let count = read(self.reader.count16(METADATA_ENTRY_BYTES_MIN), || {
            item.path("metadata")
        })?;
        let mut metadata = Metadata::new();
        for k in 0..count {
            let at = self.reader.offset();
            let key = read(self.reader.str16(), || {
                item.path(&format!("metadata[{k}].key"))
            })?;
            let value = read(self.reader.str16(), || {
                item.path(&format!("metadata[{k}].value"))
            })?;
            if metadata
                .insert(key.to_string(), value.to_string())
                .is_some()
            {
                return Err(malformed(
                    at,
                    item.path(&format!("metadata[{k}].key")),
                    format!("metadata key {key:?} is repeated"),
                ));
            }
        }
        Ok(metadata)
    }

    /// An amount; one a `Decimal` cannot hold refuses the item (not the batch)
    /// with `field` as its path, as the protobuf path refuses its text.
    fn amount(
        &mut self,
        item: &Item,
        field: impl Fn() -> String,
        first_error: &mut FirstError,
    ) -> Result<Decimal, BatchError> {
        let mantissa = read(self.reader.u128(), || item.path(&field()))?;
        let scale = read(self.reader.u8(), || item.path(&field()))?;
        let refusal = if mantissa > AMOUNT_MANTISSA_MAX {
            Some((
                ErrorCode::AmountOverflow,
                format!(
                    "amount mantissa {mantissa} (scale {scale}) exceeds the largest \
                     representable amount (a mantissa of at most 2^96 - 1)"
                ),
            ))
        } else if scale > AMOUNT_SCALE_MAX {
            Some((
                ErrorCode::AmountScaleExceeded,
                format!(
                    "amount scale {scale} has more digits than can be represented exactly \
                     (at most {AMOUNT_SCALE_MAX} decimals)"
                ),
            ))
        } else {
            None
        };
        match refusal {
            None => {
                // Both checked above: `from_i128_with_scale` cannot panic here.
                Ok(Decimal::from_i128_with_scale(
                    mantissa as i128,
                    u32::from(scale),
                ))
            }
            Some((code, message)) => {
                if first_error.is_none() {
                    *first_error = Some(LedgerError::new(
                        code,
                        format!("{}.{}", item.kind, field()),
                        message,
                    ));
                }
                Ok(Decimal::ZERO)
            }
        }
    }

    fn posting(
        &mut self,
        item: &Item,
        j: usize,
        first_error: &mut FirstError,
    ) -> Result<PostingSpec, BatchError> {
        let field = |name: &str| format!("postings[{j}].{name}");
        let at = self.reader.offset();
        let name_index = read(self.reader.u32(), || item.path(&field("account")))? as usize;
        let Some(name) = self.names.get(name_index) else {
            return Err(malformed(
                at,
                item.path(&field("account")),
                format!(
                    "name {name_index} is past the name table's {} names",
                    self.names.len()
                ),
            ));
        };
        self.copied = self.copied.saturating_add(name.len());
        if self.copied > self.copy_budget {
            return Err(BatchError {
                code: ErrorCode::BatchTooLarge,
                offset: at,
                path: item.path(&field("account")),
                problem: format!(
                    "the postings so far name {} bytes of account names, over \
                     {NAME_COPY_BYTES_PER_BATCH_BYTE} times the batch's size (a name over \
                     {ACCOUNT_NAME_BYTES_MAX} bytes is named again and again)",
                    self.copied
                ),
            });
        }
        let account = name.clone();
        let at = self.reader.offset();
        let side = match read(self.reader.u8(), || item.path(&field("direction")))? {
            side::DEBIT => Side::Debit,
            side::CREDIT => Side::Credit,
            other => {
                return Err(malformed(
                    at,
                    item.path(&field("direction")),
                    format!("unknown direction {other}; 1 = debit, 2 = credit"),
                ))
            }
        };
        let amount = self.amount(item, || field("amount"), first_error)?;
        let currency = read(self.reader.str16(), || item.path(&field("currency")))?;
        Ok(PostingSpec {
            account,
            side,
            amount,
            currency: (!currency.is_empty()).then(|| currency.to_string()),
        })
    }

    fn transaction(
        &mut self,
        item: &Item,
        first_error: &mut FirstError,
    ) -> Result<TransactionSpec, BatchError> {
        let id = self.string(item, "id")?;
        let timeout_seconds = read(self.reader.u64(), || item.path("timeout_seconds"))?;
        let effective_at = self.effective_at(item)?;
        let description = self.string(item, "description")?;
        let metadata = self.metadata(item)?;
        let count = read(self.reader.count16(POSTING_BYTES_MIN), || {
            item.path("postings")
        })?;
        let mut postings = Vec::with_capacity(count);
        for j in 0..count {
            postings.push(self.posting(item, j, first_error)?);
        }
        Ok(TransactionSpec {
            id,
            postings,
            effective_at,
            description,
            metadata,
            pending: item.flags & flag::PENDING != 0,
            timeout_seconds,
        })
    }

    fn post_pending(
        &mut self,
        item: &Item,
        first_error: &mut FirstError,
    ) -> Result<PostPendingSpec, BatchError> {
        let id = self.string(item, "id")?;
        let pending_id = self.string(item, "pending_id")?;
        let effective_at = self.effective_at(item)?;
        let description = self.string(item, "description")?;
        let metadata = self.metadata(item)?;
        let count = read(self.reader.count16(AMOUNT_BYTES), || item.path("amounts"))?;
        let mut amounts = Vec::with_capacity(count);
        for j in 0..count {
            amounts.push(self.amount(item, || format!("amounts[{j}]"), first_error)?);
        }
        Ok(PostPendingSpec {
            id,
            pending_id,
            amounts,
            effective_at,
            description,
            metadata,
        })
    }

    fn void_pending(&mut self, item: &Item) -> Result<VoidPendingSpec, BatchError> {
        Ok(VoidPendingSpec {
            id: self.string(item, "id")?,
            pending_id: self.string(item, "pending_id")?,
            reason: self.string(item, "reason")?,
        })
    }

    fn reverse(&mut self, item: &Item) -> Result<ReverseSpec, BatchError> {
        let id = self.string(item, "id")?;
        let transaction_id = self.string(item, "transaction_id")?;
        let effective_at = self.effective_at(item)?;
        Ok(ReverseSpec {
            id,
            transaction_id,
            effective_at,
            description: self.string(item, "description")?,
            metadata: self.metadata(item)?,
        })
    }
}

/// The item being read: its index, its kind's name and its flags.
struct Item {
    index: usize,
    kind: &'static str,
    flags: u8,
}

impl Item {
    /// The path of one of its fields in the batch (only built on failure, or
    /// for an item's own error).
    fn path(&self, field: &str) -> String {
        format!("items[{}].{}.{field}", self.index, self.kind)
    }
}

/// The results blob: one result per item, in order, with the content the
/// protobuf path gives the same item (seq, recorded_at and entry hash of a
/// recorded or replayed transaction; an error's code, field and message).
pub fn encode_results(outcomes: &[Result<Recorded<TransactionView>, LedgerError>]) -> Vec<u8> {
    let mut writer = ResultsWriter::new(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok(recorded) => writer.recorded(
                recorded.value.seq,
                recorded.value.recorded_at,
                &recorded.value.entry_hash,
                recorded.replayed,
            ),
            Err(error) => writer.error(
                error.code.number(),
                error.code.name(),
                &error.field,
                &error.message,
            ),
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert;
    use tally_proto::packed::{decode_results, ResultRecord, Writer};
    use tally_proto::v1 as pb;

    /// A batch of `items` (each already written) over `names`.
    fn batch(names: &[&str], items: &[Vec<u8>]) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&BATCH_MAGIC);
        w.u16(VERSION);
        w.u16(0);
        w.u32(items.len() as u32);
        w.u32(names.len() as u32);
        for name in names {
            w.str16(name).unwrap();
        }
        for item in items {
            w.bytes(item);
        }
        w.into_vec()
    }

    /// A two-posting transfer between names 0 and 1 of `mantissa` at `scale`.
    fn transfer(id: &str, flags: u8, mantissa: u128, scale: u8) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(kind::TRANSACTION);
        w.u8(flags);
        w.str16(id).unwrap();
        w.u64(0);
        w.str16("").unwrap();
        w.u16(0);
        w.u16(2);
        for (name, side) in [(0u32, side::DEBIT), (1, side::CREDIT)] {
            w.u32(name);
            w.u8(side);
            w.u128(mantissa);
            w.u8(scale);
            w.str16("").unwrap();
        }
        w.into_vec()
    }

    fn pb_transfer(id: &str, amount: &str) -> pb::TransactionItem {
        let posting = |account: &str, direction: pb::Direction| pb::Posting {
            account: account.into(),
            direction: direction as i32,
            amount: amount.into(),
            currency: String::new(),
        };
        pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::Transaction(
                pb::TransactionSpec {
                    id: id.into(),
                    postings: vec![
                        posting("assets:cash", pb::Direction::Debit),
                        posting("revenue:sales", pb::Direction::Credit),
                    ],
                    ..Default::default()
                },
            )),
            linked: false,
        }
    }

    const NAMES: [&str; 2] = ["assets:cash", "revenue:sales"];

    #[test]
    fn a_transfer_decodes_to_the_protobuf_item() {
        // Goal: the same transfer on both wires is the same command.
        let bytes = batch(&NAMES, &[transfer("t1", 0, 1050, 2)]);
        let decoded = decode_batch(&bytes).unwrap();
        let expected = convert::transaction_item(pb_transfer("t1", "10.50")).unwrap();
        assert_eq!(
            decoded,
            vec![DecodedItem {
                linked: false,
                item: Ok(expected)
            }]
        );
    }

    #[test]
    fn amounts_a_decimal_cannot_hold_fail_their_item_like_protobuf() {
        // Goal: 2^96 and 29 decimals are item errors with the protobuf path's
        // code and field; the next item still decodes.
        for (mantissa, scale, text) in [
            (1u128 << 96, 0u8, "79228162514264337593543950336"),
            (1, 29, "0.00000000000000000000000000001"),
        ] {
            let bytes = batch(
                &NAMES,
                &[transfer("t1", 0, mantissa, scale), transfer("t2", 0, 1, 0)],
            );
            let decoded = decode_batch(&bytes).unwrap();
            let packed = decoded[0].item.clone().unwrap_err();
            let proto = convert::transaction_item(pb_transfer("t1", text)).unwrap_err();
            assert_eq!(
                (packed.code, &packed.field),
                (proto.code, &proto.field),
                "{text}"
            );
            assert_eq!(packed.field, "transaction.postings[0].amount");
            assert!(decoded[1].item.is_ok());
        }
        // The largest mantissa at the largest scale is an amount.
        let bytes = batch(&NAMES, &[transfer("t1", 0, AMOUNT_MANTISSA_MAX, 28)]);
        assert!(decode_batch(&bytes).unwrap()[0].item.is_ok());
    }

    #[test]
    fn batch_errors_name_offset_item_and_field() {
        // Goal: each kind of unreadable batch fails with its offset and path.
        let good = transfer("t1", 0, 1, 0);
        let header = 16 + 2 + NAMES[0].len() + 2 + NAMES[1].len();
        let mut bad_side = good.clone();
        // kind, flags, id (2+2), timeout (8), description (2), metadata (2),
        // count (2), name index (4): the first posting's side.
        let side_at = 2 + 4 + 8 + 2 + 2 + 2 + 4;
        bad_side[side_at] = 7;
        let error = decode_batch(&batch(&NAMES, &[good.clone(), bad_side])).unwrap_err();
        assert_eq!(error.code, ErrorCode::FieldInvalid);
        assert_eq!(error.path, "items[1].transaction.postings[0].direction");
        assert_eq!(error.offset, header + good.len() + side_at);
        assert!(error.to_string().contains("unknown direction 7"), "{error}");

        let mut bad_name = good.clone();
        bad_name[side_at - 4] = 2;
        let error = decode_batch(&batch(&NAMES, &[bad_name])).unwrap_err();
        assert_eq!(error.path, "items[0].transaction.postings[0].account");
        assert!(error.problem.contains("past the name table's 2 names"));

        let mut pending_void = Writer::new();
        pending_void.u8(kind::VOID_PENDING);
        pending_void.u8(flag::PENDING);
        pending_void.bytes(&[0; 6]);
        let error = decode_batch(&batch(&NAMES, &[pending_void.into_vec()])).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.offset),
            ("items[0].flags", header + 1)
        );

        let mut bytes = batch(&NAMES, std::slice::from_ref(&good));
        bytes.push(0);
        let error = decode_batch(&bytes).unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.offset),
            ("items[1]", bytes.len() - 1)
        );

        let mut bytes = batch(&NAMES, std::slice::from_ref(&good));
        bytes[4] = 2;
        let error = decode_batch(&bytes).unwrap_err();
        assert_eq!((error.path.as_str(), error.offset), ("header.version", 4));

        let error = decode_batch(&batch(&NAMES, &[])).unwrap_err();
        assert_eq!(error.code, ErrorCode::BatchEmpty);
        let mut bytes = batch(&NAMES, &[good]);
        bytes[8..12].copy_from_slice(&(BATCH_ITEMS_MAX as u32 + 1).to_le_bytes());
        let error = decode_batch(&bytes).unwrap_err();
        assert_eq!(error.code, ErrorCode::BatchTooLarge);
        let status = crate::api::status::ledger_status(&error.to_ledger_error());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("8191 items"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_long_name_named_by_many_postings_is_refused_not_copied() {
        // Goal: a 60 KiB name named by 2,000 postings (120 MB of copies from a
        // 60 KB batch) fails the batch as too large.
        let long = "a".repeat(60_000);
        let mut w = Writer::new();
        w.u8(kind::TRANSACTION);
        w.u8(0);
        w.str16("t").unwrap();
        w.u64(0);
        w.str16("").unwrap();
        w.u16(0);
        w.u16(2_000);
        for _ in 0..2_000 {
            w.u32(0);
            w.u8(side::DEBIT);
            w.u128(1);
            w.u8(0);
            w.str16("").unwrap();
        }
        let error = decode_batch(&batch(&[&long], &[w.into_vec()])).unwrap_err();
        assert_eq!(error.code, ErrorCode::BatchTooLarge, "{error}");
    }

    #[test]
    fn results_carry_what_the_protobuf_path_answers() {
        // Goal: recorded, replayed and refused items come back in order.
        let view = |seq: u64| TransactionView {
            id: "t".into(),
            kind: crate::ledger::view::TransactionKind::Standard,
            seq,
            postings: vec![],
            effective_at: 0,
            recorded_at: 1_700_000_000_000_000_000,
            description: String::new(),
            metadata: Default::default(),
            pending_id: None,
            reverses_id: None,
            pending_state: None,
            expires_at: None,
            resolved_by: None,
            reversed_by: None,
            entry_hash: [seq as u8; 32],
        };
        let outcomes = vec![
            Ok(Recorded {
                value: view(3),
                replayed: false,
            }),
            Err(LedgerError::new(
                ErrorCode::NotPending,
                "items[1].void_pending.pending_id",
                "p",
            )),
            Ok(Recorded {
                value: view(1),
                replayed: true,
            }),
        ];
        let records = decode_results(&encode_results(&outcomes)).unwrap();
        assert_eq!(
            records,
            vec![
                ResultRecord::Recorded {
                    seq: 3,
                    recorded_at: 1_700_000_000_000_000_000,
                    entry_hash: [3; 32],
                    replayed: false
                },
                ResultRecord::Error {
                    code: ErrorCode::NotPending.number(),
                    name: "NOT_PENDING".into(),
                    field: "items[1].void_pending.pending_id".into(),
                    message: "p".into()
                },
                ResultRecord::Recorded {
                    seq: 1,
                    recorded_at: 1_700_000_000_000_000_000,
                    entry_hash: [1; 32],
                    replayed: true
                },
            ]
        );
    }
}
