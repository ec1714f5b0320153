//! The ledger's in-memory state: a deterministic fold of the journal.
//!
//! [`LedgerState::append`] assigns the next seq, encodes and hashes an entry and
//! applies it; [`LedgerState::replay`] does the same for an entry read back from
//! disk and checks it against its stored hash. Both go through one `apply`, so
//! the state after a restart is the state before it.

use super::id_map::IdMap;
use super::view::{Balance, PendingState, TransactionKind};
use crate::billing::book::BillingBook;
use crate::metering::catalog::Catalog;
use crate::metering::claims::{content_of, id_key, Claim, EventClaims, IdKey};
use crate::rating::catalog::{check_references, PlanCatalog};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tally_audit::NoteVerifier;
use tally_core::entry::Role;

/// A fast hasher for the maps looked up on every transaction.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use tally_core::chain::{self, GENESIS_PREV_HASH};
use tally_core::codec;
use tally_core::entry::{
    AccountId, AccountOpened, Digest, Entry, EntryBody, Posting, Side, TimestampNs, TransactionMode,
};
use tally_core::error_code::ErrorCode;
use tally_core::money::AMOUNT_MINOR_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub opened: AccountOpened,
    pub scale: u8,
    pub closed: bool,
    pub opened_seq: u64,
    pub opened_at: TimestampNs,
    pub balance: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Recorded {
        seq: u64,
        kind: TransactionKind,
    },
    /// Boxed: failures are rare, and every id of the ledger has an outcome.
    Failed(Box<TxFailure>),
}

/// Why a transaction id failed, as its `TransactionRejected` entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFailure {
    pub code: ErrorCode,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub postings: Vec<Posting>,
    pub state: PendingState,
    pub expires_at: Option<TimestampNs>,
}

/// What the ledger remembers of every transaction id it has answered. The
/// ledger keeps one per id for ever, so it is kept to 40 bytes: the request
/// digest by its first half, the rare parts boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// The first 16 bytes of the request digest: enough to tell a retry
    /// from another request under the same id (telling them apart fails
    /// only for two requests whose blake3 digests share 128 bits). The
    /// journal entry keeps the whole digest.
    request_digest: [u8; 16],
    pub outcome: TxOutcome,
    rare: Option<Box<TxRare>>,
}

/// What few transaction ids need: pending transactions, reversed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TxRare {
    pending: Option<PendingRecord>,
    /// The reversal of this transaction, once reversed.
    reversed_by: Option<Box<str>>,
}

// One per transaction id, for ever: keep it this small (see `IdMap`).
const _: () = assert!(std::mem::size_of::<TxRecord>() <= 40);

impl TxRecord {
    pub fn new(request_digest: &Digest, outcome: TxOutcome) -> TxRecord {
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&request_digest[..16]);
        TxRecord {
            request_digest: prefix,
            outcome,
            rare: None,
        }
    }

    /// Whether a request with this digest is the one recorded (a retry).
    pub fn same_request(&self, request_digest: &Digest) -> bool {
        request_digest[..16] == self.request_digest
    }

    /// Pending transactions only.
    pub fn pending(&self) -> Option<&PendingRecord> {
        self.rare.as_ref()?.pending.as_ref()
    }

    fn pending_mut(&mut self) -> Option<&mut PendingRecord> {
        self.rare.as_mut()?.pending.as_mut()
    }

    fn set_pending(&mut self, pending: PendingRecord) {
        self.rare.get_or_insert_with(Box::default).pending = Some(pending);
    }

    /// The reversal of this transaction, once reversed.
    pub fn reversed_by(&self) -> Option<&str> {
        self.rare.as_ref()?.reversed_by.as_deref()
    }

    fn set_reversed_by(&mut self, id: &str) {
        self.rare.get_or_insert_with(Box::default).reversed_by = Some(id.into());
    }
}

/// An entry as appended: its position, bytes and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journaled {
    pub seq: u64,
    pub entry: Entry,
    pub canonical: Vec<u8>,
    pub hash: Digest,
    pub prev_hash: Digest,
    /// Every account whose totals the entry changed, with its balance after.
    pub touched: Vec<(AccountId, Balance)>,
}

/// Enough to put the state back as it was before a linked chain began.
#[derive(Debug, Default)]
struct UndoLog {
    accounts: Vec<(AccountId, Balance)>,
    transactions: Vec<(String, Option<TxRecord>)>,
    /// Expiry changes in the order made (`true` = added), undone in reverse:
    /// a chain may add and then remove the same key.
    expiries: Vec<(bool, (TimestampNs, String))>,
    position: Option<(u64, Digest, TimestampNs)>,
}

#[derive(Debug, Default)]
pub struct LedgerState {
    pub ledger_id: Option<[u8; 16]>,
    currencies: BTreeMap<String, u8>,
    accounts: Vec<AccountState>,
    names: FastMap<String, AccountId>,
    transactions: IdMap<TxRecord>,
    expiries: BTreeSet<(TimestampNs, String)>,
    next_seq: u64,
    head: Digest,
    last_recorded_at: TimestampNs,
    undo: Option<UndoLog>,
    audit: AuditState,
    api_keys: FastMap<String, ApiKeyState>,
    catalog: Catalog,
    /// Every version of every price plan.
    plans: PlanCatalog,
    /// Every billing document and what follows from it.
    billing: BillingBook,
    /// Shared with the read model (see `claims`).
    claims: Arc<EventClaims>,
    /// The claims of the usage entry about to be appended, already made by
    /// the ingestion that built it (`prepare_claims`); a replay makes them.
    prepared_claims: Vec<(IdKey, Claim)>,
}

/// An API key as the journal describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyState {
    pub name: String,
    pub role: Role,
    pub read_only: bool,
    pub secret_hash: Digest,
    /// The seq of its `api_key_created` entry.
    pub created_seq: u64,
    /// The seq of its `api_key_revoked` entry.
    pub revoked_seq: Option<u64>,
}

impl ApiKeyState {
    /// The key as its `api_key_created` entry at `seq` makes it (the writer's
    /// state and the read model both fold it so).
    pub fn created(created: &tally_core::entry::ApiKeyCreated, seq: u64) -> Self {
        ApiKeyState {
            name: created.name.clone(),
            role: created.role,
            read_only: created.read_only,
            secret_hash: created.secret_hash,
            created_seq: seq,
            revoked_seq: None,
        }
    }
}

/// What the journal says about signing: the keys in order (the last one signs
/// now) and the latest checkpoint.
#[derive(Debug, Default, Clone)]
pub struct AuditState {
    pub keys: Vec<NoteVerifier>,
    /// (seq of the checkpoint entry = its tree size, recorded_at).
    pub last_checkpoint: Option<(u64, TimestampNs)>,
}

impl AuditState {
    pub fn signing_key(&self) -> Option<&NoteVerifier> {
        self.keys.last()
    }
}

/// A stored entry that does not fit the state it is replayed onto.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {reason}")]
pub struct ReplayError {
    pub seq: u64,
    pub reason: String,
}

impl LedgerState {
    pub fn new() -> Self {
        LedgerState {
            head: GENESIS_PREV_HASH,
            last_recorded_at: TimestampNs::MIN,
            ..LedgerState::default()
        }
    }

    /// Room for `additional` more transaction ids without rehashing (start-up
    /// knows the journal length: growing the map entry by entry rehashes every
    /// id again and again).
    pub fn reserve_transactions(&mut self, additional: usize) {
        self.transactions.reserve(additional);
    }

    pub fn audit(&self) -> &AuditState {
        &self.audit
    }

    pub fn api_key(&self, key_id: &str) -> Option<&ApiKeyState> {
        self.api_keys.get(key_id)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn plans(&self) -> &PlanCatalog {
        &self.plans
    }

    pub fn billing(&self) -> &BillingBook {
        &self.billing
    }

    pub fn claims(&self) -> &Arc<EventClaims> {
        &self.claims
    }

    /// Hands over the claims of the next `usage_recorded` entry (one per
    /// event, in order), which `metering::ingest::record_usage` made in the
    /// claims index as it accepted the events: appending the entry then
    /// neither hashes nor claims again.
    pub fn prepare_claims(&mut self, claims: Vec<(IdKey, Claim)>) {
        self.prepared_claims = claims;
    }

    pub fn api_key_count(&self) -> usize {
        self.api_keys.len()
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn head(&self) -> Digest {
        self.head
    }

    /// The time the next entry gets: `now`, or just after the last entry if the
    /// clock went backwards, so that times strictly increase along the journal.
    pub fn next_recorded_at(&self, now: TimestampNs) -> TimestampNs {
        now.max(self.last_recorded_at.saturating_add(1))
    }

    pub fn currency_scale(&self, code: &str) -> Option<u8> {
        self.currencies.get(code).copied()
    }

    pub fn currencies(&self) -> impl Iterator<Item = (&String, &u8)> {
        self.currencies.iter()
    }

    pub fn account_id(&self, name: &str) -> Option<AccountId> {
        self.names.get(name).copied()
    }

    pub fn account(&self, id: AccountId) -> &AccountState {
        &self.accounts[id as usize]
    }

    pub fn account_count(&self) -> u64 {
        self.accounts.len() as u64
    }

    pub fn accounts(&self) -> &[AccountState] {
        &self.accounts
    }

    pub fn transaction(&self, id: &str) -> Option<&TxRecord> {
        self.transactions.get(id)
    }

    /// Open pending transactions whose timeout is at or before `now`.
    pub fn expired_pending(&self, now: TimestampNs) -> Vec<String> {
        self.expiries
            .range(..=(now, String::from("\u{10FFFF}")))
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Appends an entry at the next seq: encodes, hashes, applies.
    ///
    /// The caller has validated the entry against this state; applying it
    /// cannot fail then, which the debug assertion checks.
    pub fn append(&mut self, entry: Entry) -> Journaled {
        debug_assert!(
            entry.recorded_at > self.last_recorded_at,
            "recorded_at must increase"
        );
        let seq = self.next_seq;
        let canonical = codec::encode(&entry);
        let prev_hash = self.head;
        let hash = chain::entry_hash(seq, &prev_hash, &canonical);
        self.save_position();
        // A validated entry always applies. If it does not, the state is
        // already partly changed: stop the writer (fail-stop, in every build)
        // before anything of this group reaches the disk; a restart replays
        // the journal as it was.
        if let Err(reason) = self.apply(seq, &entry) {
            panic!("entry {seq} was validated but does not apply ({reason}); the writer stops");
        }
        self.next_seq += 1;
        self.head = hash;
        self.last_recorded_at = entry.recorded_at;
        let touched = self.touched(&entry.body);
        Journaled {
            seq,
            entry,
            canonical,
            hash,
            prev_hash,
            touched,
        }
    }

    /// The accounts an (applied) entry changed, with their balances now.
    fn touched(&self, body: &EntryBody) -> Vec<(AccountId, Balance)> {
        let reserved = |pending_id: &str| {
            self.transactions
                .get(pending_id)
                .and_then(TxRecord::pending)
                .map(|p| p.postings.as_slice())
                .unwrap_or_default()
        };
        let postings: &[Posting] = match body {
            body if body.transaction().is_some() => &body.transaction().expect("checked").postings,
            // A post touches exactly the accounts it reserved on.
            EntryBody::PendingPosted(posted) => reserved(&posted.pending_id),
            EntryBody::PendingVoided(voided) => reserved(&voided.pending_id),
            EntryBody::PendingExpired { pending_id } => reserved(pending_id),
            _ => &[],
        };
        let mut touched: Vec<(AccountId, Balance)> = Vec::with_capacity(postings.len());
        for posting in postings {
            let id = posting.account_id;
            touched.push((id, self.accounts[id as usize].balance));
        }
        touched.sort_unstable_by_key(|(id, _)| *id);
        touched.dedup_by_key(|(id, _)| *id);
        touched
    }

    /// Replays an entry read from disk: checks seq and hash, then applies it.
    pub fn replay(
        &mut self,
        seq: u64,
        canonical: Vec<u8>,
        stored_hash: &Digest,
    ) -> Result<Journaled, ReplayError> {
        let fail = |reason: String| ReplayError { seq, reason };
        if seq != self.next_seq {
            return Err(fail(format!("expected seq {}", self.next_seq)));
        }
        let hash = chain::entry_hash(seq, &self.head, &canonical);
        if &hash != stored_hash {
            return Err(fail("stored hash does not match its content".into()));
        }
        let entry = codec::decode(&canonical).map_err(|e| fail(e.to_string()))?;
        if entry.recorded_at <= self.last_recorded_at {
            return Err(fail("recorded_at does not increase".into()));
        }
        // Appended batches commit to their events by construction; stored
        // ones are checked, or a changed event would go unnoticed.
        if let EntryBody::UsageRecorded(recorded) = &entry.body {
            if tally_audit::usage::events_root(&recorded.events) != recorded.events_root {
                return Err(fail(
                    "usage_recorded: events_root does not match its events".into(),
                ));
            }
        }
        self.apply(seq, &entry).map_err(fail)?;
        let prev_hash = self.head;
        self.next_seq += 1;
        self.head = hash;
        self.last_recorded_at = entry.recorded_at;
        let touched = self.touched(&entry.body);
        Ok(Journaled {
            seq,
            entry,
            canonical,
            hash,
            prev_hash,
            touched,
        })
    }

    // ---- linked chains -------------------------------------------------

    /// Starts recording how to undo what follows (a linked chain).
    pub fn begin_chain(&mut self) {
        debug_assert!(self.undo.is_none(), "chains do not nest");
        self.undo = Some(UndoLog::default());
    }

    /// Keeps what the chain did.
    pub fn commit_chain(&mut self) {
        self.undo = None;
    }

    /// Puts the state back as it was at `begin_chain`.
    pub fn rollback_chain(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        for (id, balance) in undo.accounts.into_iter().rev() {
            self.accounts[id as usize].balance = balance;
        }
        for (id, record) in undo.transactions.into_iter().rev() {
            match record {
                Some(record) => self.transactions.insert(&id, record),
                None => self.transactions.remove(&id),
            };
        }
        for (added, key) in undo.expiries.into_iter().rev() {
            if added {
                self.expiries.remove(&key);
            } else {
                self.expiries.insert(key);
            }
        }
        if let Some((next_seq, head, last_recorded_at)) = undo.position {
            self.next_seq = next_seq;
            self.head = head;
            self.last_recorded_at = last_recorded_at;
        }
    }

    fn save_position(&mut self) {
        let position = (self.next_seq, self.head, self.last_recorded_at);
        if let Some(undo) = &mut self.undo {
            undo.position.get_or_insert(position);
        }
    }

    fn save_account(&mut self, id: AccountId) {
        if let Some(undo) = &mut self.undo {
            undo.accounts.push((id, self.accounts[id as usize].balance));
        }
    }

    fn save_transaction(&mut self, id: &str) {
        if let Some(undo) = &mut self.undo {
            undo.transactions
                .push((id.to_string(), self.transactions.get(id).cloned()));
        }
    }

    fn add_expiry(&mut self, key: (TimestampNs, String)) {
        if let Some(undo) = &mut self.undo {
            undo.expiries.push((true, key.clone()));
        }
        self.expiries.insert(key);
    }

    fn remove_expiry(&mut self, key: (TimestampNs, String)) {
        if self.expiries.remove(&key) {
            if let Some(undo) = &mut self.undo {
                undo.expiries.push((false, key));
            }
        }
    }

    // ---- the fold --------------------------------------------------------

    fn apply(&mut self, seq: u64, entry: &Entry) -> Result<(), String> {
        match &entry.body {
            EntryBody::LedgerCreated { ledger_id } => {
                if seq != 0 || self.ledger_id.is_some() {
                    return Err("ledger_created must be entry 0".into());
                }
                self.ledger_id = Some(*ledger_id);
            }
            EntryBody::CurrencyDefined { code, scale } => {
                if self.currencies.insert(code.clone(), *scale).is_some() {
                    return Err(format!("currency {code} defined twice"));
                }
            }
            EntryBody::AccountOpened(opened) => {
                self.apply_account_opened(seq, entry.recorded_at, opened)?
            }
            EntryBody::AccountClosed { account_id } => {
                let account = self
                    .accounts
                    .get_mut(*account_id as usize)
                    .ok_or_else(|| format!("unknown account {account_id}"))?;
                account.closed = true;
            }
            EntryBody::TransactionRecorded(recorded) => self.apply_recorded(seq, recorded)?,
            EntryBody::InvoiceIssued(_)
            | EntryBody::InvoiceVoided(_)
            | EntryBody::CreditNoteIssued(_)
            | EntryBody::PaymentRecorded(_) => {
                self.apply_recorded(
                    seq,
                    entry.body.transaction().expect("a billing transaction"),
                )?;
                self.billing.apply(seq, entry.recorded_at, &entry.body)?;
            }
            EntryBody::BillingProfileSet(_)
            | EntryBody::SubscriptionChanged(_)
            | EntryBody::CouponGranted(_)
            | EntryBody::TaxRulesPublished(_) => {
                self.billing.apply(seq, entry.recorded_at, &entry.body)?
            }
            EntryBody::PendingPosted(posted) => {
                self.check_new_id(&posted.id)?;
                let reserved = self.resolve_pending(&posted.pending_id, PendingState::Posted)?;
                self.add_postings(&reserved, true, false)?;
                self.add_postings(&posted.postings, false, true)?;
                self.insert_recorded(
                    &posted.id,
                    posted.request_digest,
                    seq,
                    TransactionKind::PostPending,
                );
            }
            EntryBody::PendingVoided(voided) => {
                self.check_new_id(&voided.id)?;
                let reserved = self.resolve_pending(&voided.pending_id, PendingState::Voided)?;
                self.add_postings(&reserved, true, false)?;
                self.insert_recorded(
                    &voided.id,
                    voided.request_digest,
                    seq,
                    TransactionKind::VoidPending,
                );
            }
            EntryBody::PendingExpired { pending_id } => {
                let reserved = self.resolve_pending(pending_id, PendingState::Expired)?;
                self.add_postings(&reserved, true, false)?;
            }
            EntryBody::TransactionRejected(rejected) => {
                self.check_new_id(&rejected.id)?;
                let code = ErrorCode::from_number(rejected.error_code)
                    .ok_or_else(|| format!("unknown error code {}", rejected.error_code))?;
                let record = TxRecord::new(
                    &rejected.request_digest,
                    TxOutcome::Failed(Box::new(TxFailure {
                        code,
                        field: rejected.field.clone(),
                        message: rejected.message.clone(),
                    })),
                );
                self.insert_transaction(&rejected.id, record);
            }
            EntryBody::CheckpointSigned { note } => {
                self.apply_checkpoint(seq, entry.recorded_at, note)?
            }
            EntryBody::SigningKeyAdopted { vkey } => {
                if !self.audit.keys.is_empty() {
                    return Err("signing_key_adopted after a key was adopted".into());
                }
                let key = NoteVerifier::from_vkey(vkey).map_err(|e| e.to_string())?;
                self.audit.keys.push(key);
            }
            EntryBody::ApiKeyCreated(created) => {
                let valid_id = created.key_id.len() == 16
                    && created
                        .key_id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !valid_id {
                    return Err(format!(
                        "api key id {:?} is not 16 lowercase hex digits",
                        created.key_id
                    ));
                }
                if self.api_keys.contains_key(&created.key_id) {
                    return Err(format!("api key {} created twice", created.key_id));
                }
                self.api_keys
                    .insert(created.key_id.clone(), ApiKeyState::created(created, seq));
            }
            EntryBody::ApiKeyRevoked { key_id } => {
                let key = self
                    .api_keys
                    .get_mut(key_id)
                    .ok_or_else(|| format!("revocation of unknown api key {key_id}"))?;
                if key.revoked_seq.is_some() {
                    return Err(format!("api key {key_id} revoked twice"));
                }
                key.revoked_seq = Some(seq);
            }
            EntryBody::SigningKeyRotated { note } => {
                let rotation = tally_audit::open_rotation(note.as_bytes())
                    .map_err(|e| format!("key rotation: {e}"))?;
                if Some(&rotation.old_key) != self.audit.signing_key() {
                    return Err("key rotation: the old key is not the ledger's signing key".into());
                }
                self.check_audit_position(seq, rotation.ledger_id, rotation.tree_size)?;
                self.audit.keys.push(rotation.new_key);
            }
            EntryBody::CustomerCreated(_)
            | EntryBody::MeterDefined(_)
            | EntryBody::UsagePeriodClosed { .. } => {
                self.catalog.apply(seq, entry.recorded_at, &entry.body)?
            }
            EntryBody::UsageRecorded(recorded) => self.apply_usage(seq, recorded)?,
            EntryBody::PlanPublished(published) => {
                self.apply_plan(seq, entry.recorded_at, published)?
            }
        }
        Ok(())
    }

    /// A recorded transaction, on its own or in a billing document.
    fn apply_recorded(
        &mut self,
        seq: u64,
        recorded: &tally_core::entry::TransactionRecorded,
    ) -> Result<(), String> {
        self.check_new_id(&recorded.id)?;
        let kind = match &recorded.mode {
            TransactionMode::Standard => TransactionKind::Standard,
            TransactionMode::Pending { .. } => TransactionKind::Pending,
            TransactionMode::Reversal { .. } => TransactionKind::Reversal,
        };
        let pending = matches!(recorded.mode, TransactionMode::Pending { .. });
        self.add_postings(&recorded.postings, pending, true)?;
        let mut record = TxRecord::new(&recorded.request_digest, TxOutcome::Recorded { seq, kind });
        match &recorded.mode {
            TransactionMode::Standard => {}
            TransactionMode::Pending { expires_at } => {
                record.set_pending(PendingRecord {
                    postings: recorded.postings.clone(),
                    state: PendingState::Open,
                    expires_at: *expires_at,
                });
                if let Some(at) = expires_at {
                    self.add_expiry((*at, recorded.id.clone()));
                }
            }
            TransactionMode::Reversal { reverses } => {
                self.save_transaction(reverses);
                let original = self
                    .transactions
                    .get_mut(reverses)
                    .ok_or_else(|| format!("reversal of unknown transaction {reverses}"))?;
                original.set_reversed_by(&recorded.id);
            }
        }
        self.insert_transaction(&recorded.id, record);
        Ok(())
    }

    /// A plan version must name a defined currency and meters (with their
    /// groups) at its place in the journal, as the writer checked when it
    /// recorded it; the catalog checks its version and currency. The
    /// document's own rules (`PlanSpec::validate`) are not checked again: a
    /// later, stricter rule must not make a recorded journal unreadable
    /// (rating checks a plan before it prices it, and the auditor's
    /// re-derivation reports it).
    fn apply_plan(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        published: &tally_core::entry::PlanPublished,
    ) -> Result<(), String> {
        let spec = &published.spec;
        check_references(
            spec,
            |code| self.currencies.contains_key(code),
            &self.catalog,
        )
        .map_err(|e| format!("plan {:?}: {}: {}", spec.code, e.field, e.message))?;
        self.plans.apply(seq, recorded_at, published)
    }

    /// Claims the ids of a usage batch. Its events were checked when they were
    /// ingested; what a replay must still refuse is an id recorded twice, an
    /// event for an unknown meter or customer, and late flags out of order.
    fn apply_usage(
        &mut self,
        seq: u64,
        recorded: &tally_core::entry::UsageRecorded,
    ) -> Result<(), String> {
        if recorded.events.is_empty() {
            return Err("usage_recorded without events".into());
        }
        if !recorded.late.windows(2).all(|pair| pair[0] < pair[1])
            || recorded
                .late
                .last()
                .is_some_and(|&last| last as usize >= recorded.events.len())
        {
            return Err("usage_recorded: late indexes out of order or range".into());
        }
        let prepared = std::mem::take(&mut self.prepared_claims);
        debug_assert!(prepared.is_empty() || prepared.len() == recorded.events.len());
        for (index, event) in recorded.events.iter().enumerate() {
            if self.catalog.meter(&event.meter).is_none() {
                return Err(format!("event {index}: no meter {:?}", event.meter));
            }
            if self.catalog.customer(&event.customer).is_none() {
                return Err(format!("event {index}: no customer {:?}", event.customer));
            }
            if event.timestamp < 0 {
                return Err(format!("event {index}: timestamp before the epoch"));
            }
            let late = || recorded.late.binary_search(&(index as u32)).is_ok();
            if let Some(&(key, claim)) = prepared.get(index) {
                // Claimed by the ingestion that built the entry.
                debug_assert_eq!(key, id_key(&event.event_id));
                debug_assert_eq!(
                    claim,
                    Claim {
                        content: content_of(&tally_core::usage::event_hash(event)),
                        seq,
                        index: index as u32,
                        late: late(),
                    }
                );
                debug_assert_eq!(self.claims.get_by_key(&key), Some(claim));
                continue;
            }
            let claim = Claim {
                content: content_of(&tally_core::usage::event_hash(event)),
                seq,
                index: index as u32,
                late: late(),
            };
            if !self.claims.claim_by_key(id_key(&event.event_id), claim) {
                return Err(format!(
                    "event {index}: event id {:?} recorded twice",
                    event.event_id
                ));
            }
        }
        Ok(())
    }

    /// A checkpoint entry must be signed by the current key and state the
    /// journal before it: its own seq as size, the chain head before it. (Its
    /// Merkle root is checked against the stored tree by `tallyd verify`.)
    fn apply_checkpoint(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        note: &str,
    ) -> Result<(), String> {
        let key = self
            .audit
            .signing_key()
            .ok_or("checkpoint before any signing key was adopted")?;
        let verified = tally_audit::open_checkpoint(note.as_bytes(), std::slice::from_ref(key))
            .map_err(|e| format!("checkpoint: {e}"))?;
        let checkpoint = verified.checkpoint;
        self.check_audit_position(seq, checkpoint.ledger_id, checkpoint.tree_size)?;
        if checkpoint.chain_head != self.head {
            return Err("checkpoint: chain head is not the entry before it".into());
        }
        if checkpoint.time_unix_nanos != recorded_at {
            return Err("checkpoint: time is not the entry's recorded_at".into());
        }
        self.audit.last_checkpoint = Some((seq, recorded_at));
        Ok(())
    }

    fn check_audit_position(
        &self,
        seq: u64,
        ledger_id: [u8; 16],
        tree_size: u64,
    ) -> Result<(), String> {
        if Some(ledger_id) != self.ledger_id {
            return Err("signed note names another ledger".into());
        }
        if tree_size != seq {
            return Err(format!(
                "signed note states size {tree_size}, but is recorded as entry {seq}"
            ));
        }
        Ok(())
    }

    fn apply_account_opened(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        opened: &AccountOpened,
    ) -> Result<(), String> {
        if opened.account_id != self.accounts.len() as u64 {
            return Err(format!("account id {} out of order", opened.account_id));
        }
        if self.names.contains_key(&opened.name) {
            return Err(format!("account {} opened twice", opened.name));
        }
        let scale = self.currency_scale(&opened.currency).ok_or_else(|| {
            format!(
                "account {} in unknown currency {}",
                opened.name, opened.currency
            )
        })?;
        self.names.insert(opened.name.clone(), opened.account_id);
        self.accounts.push(AccountState {
            opened: opened.clone(),
            scale,
            closed: false,
            opened_seq: seq,
            opened_at: recorded_at,
            balance: Balance::default(),
        });
        Ok(())
    }

    fn check_new_id(&self, id: &str) -> Result<(), String> {
        if self.transactions.contains_key(id) {
            return Err(format!("transaction id {id} used twice"));
        }
        Ok(())
    }

    fn insert_transaction(&mut self, id: &str, record: TxRecord) {
        self.save_transaction(id);
        self.transactions.insert(id, record);
    }

    fn insert_recorded(
        &mut self,
        id: &str,
        request_digest: Digest,
        seq: u64,
        kind: TransactionKind,
    ) {
        let record = TxRecord::new(&request_digest, TxOutcome::Recorded { seq, kind });
        self.insert_transaction(id, record);
    }

    /// Marks an open pending transaction resolved; returns its reserved postings.
    fn resolve_pending(
        &mut self,
        pending_id: &str,
        state: PendingState,
    ) -> Result<Vec<Posting>, String> {
        self.save_transaction(pending_id);
        let record = self
            .transactions
            .get_mut(pending_id)
            .and_then(TxRecord::pending_mut)
            .ok_or_else(|| format!("{pending_id} is not a pending transaction"))?;
        if record.state != PendingState::Open {
            return Err(format!(
                "pending {pending_id} is already {:?}",
                record.state
            ));
        }
        record.state = state;
        let postings = record.postings.clone();
        if let Some(at) = record.expires_at {
            self.remove_expiry((at, pending_id.to_string()));
        }
        Ok(postings)
    }

    /// Adds (or with `add == false`, removes) postings to pending or posted totals.
    fn add_postings(
        &mut self,
        postings: &[Posting],
        pending: bool,
        add: bool,
    ) -> Result<(), String> {
        for posting in postings {
            let id = posting.account_id;
            if id as usize >= self.accounts.len() {
                return Err(format!("unknown account {id}"));
            }
            self.save_account(id);
            let balance = &mut self.accounts[id as usize].balance;
            let total = match (posting.side, pending) {
                (Side::Debit, false) => &mut balance.debits_posted,
                (Side::Credit, false) => &mut balance.credits_posted,
                (Side::Debit, true) => &mut balance.debits_pending,
                (Side::Credit, true) => &mut balance.credits_pending,
            };
            *total = if add {
                total
                    .checked_add(posting.amount_minor)
                    .filter(|t| *t <= AMOUNT_MINOR_MAX)
            } else {
                total.checked_sub(posting.amount_minor)
            }
            .ok_or_else(|| format!("account {id} total out of range"))?;
        }
        Ok(())
    }
}
