//! Cache rows as stored: small bincode records derived from journal entries.

use crate::ledger::state::AccountState;
use crate::ledger::view::{Balance, PendingState, TransactionKind};
use bincode::{Decode, Encode};
use tally_core::entry::{AccountOpened, TimestampNs};

pub const CONFIG: bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Fixint,
> = bincode::config::standard()
    .with_big_endian()
    .with_fixed_int_encoding();

pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, CONFIG).expect("cache rows always encode")
}

pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Option<T> {
    bincode::decode_from_slice(bytes, CONFIG)
        .ok()
        .map(|(value, _)| value)
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AccountRecord {
    pub opened: AccountOpened,
    pub scale: u8,
    pub opened_seq: u64,
    pub opened_at: TimestampNs,
    pub closed_seq: Option<u64>,
}

impl AccountRecord {
    pub fn from_state(account: &AccountState, closed_seq: Option<u64>) -> Self {
        AccountRecord {
            opened: account.opened.clone(),
            scale: account.scale,
            opened_seq: account.opened_seq,
            opened_at: account.opened_at,
            closed_seq,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct HistoryRow {
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
    pub effective_at: TimestampNs,
    pub pending_effective_at: TimestampNs,
    pub kind: u8,
}

impl HistoryRow {
    pub fn balance(&self) -> Balance {
        Balance {
            debits_posted: self.debits_posted,
            credits_posted: self.credits_posted,
            debits_pending: self.debits_pending,
            credits_pending: self.credits_pending,
        }
    }
}

pub fn kind_code(kind: TransactionKind) -> u8 {
    match kind {
        TransactionKind::Standard => 1,
        TransactionKind::Pending => 2,
        TransactionKind::PostPending => 3,
        TransactionKind::VoidPending => 4,
        TransactionKind::Reversal => 5,
    }
}

pub fn kind_from_code(code: u8) -> Option<TransactionKind> {
    Some(match code {
        1 => TransactionKind::Standard,
        2 => TransactionKind::Pending,
        3 => TransactionKind::PostPending,
        4 => TransactionKind::VoidPending,
        5 => TransactionKind::Reversal,
        _ => return None,
    })
}

fn state_code(state: PendingState) -> u8 {
    match state {
        PendingState::Open => 1,
        PendingState::Posted => 2,
        PendingState::Voided => 3,
        PendingState::Expired => 4,
    }
}

pub fn state_from_code(code: u8) -> Option<PendingState> {
    Some(match code {
        1 => PendingState::Open,
        2 => PendingState::Posted,
        3 => PendingState::Voided,
        4 => PendingState::Expired,
        _ => return None,
    })
}

/// A recorded transaction id: where its entry is and how it stands. The read
/// model keeps one per id for ever, so what only pending and reversed
/// transactions have is boxed: 32 bytes in all.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TxRef {
    pub seq: u64,
    /// When the transaction took effect.
    pub effective_at: TimestampNs,
    pub kind: u8,
    /// `state_code` of a pending transaction's state; 0 for the others.
    pub pending_state: u8,
    pub links: Option<Box<TxLinks>>,
}

// One per transaction id, for ever: keep it this small.
const _: () = assert!(std::mem::size_of::<TxRef>() <= 32);

/// What a pending transaction's timeout and later entries (its post, void or
/// expiry, a reversal) add to a transaction id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct TxLinks {
    pub expires_at: Option<TimestampNs>,
    pub resolved_by: Option<String>,
    pub resolved_seq: Option<u64>,
    pub reversed_by: Option<String>,
    pub reversed_seq: Option<u64>,
}

impl TxRef {
    pub fn links_mut(&mut self) -> &mut TxLinks {
        self.links.get_or_insert_with(Box::default)
    }

    pub fn resolved_by(&self) -> Option<&String> {
        self.links
            .as_ref()
            .and_then(|links| links.resolved_by.as_ref())
    }

    pub fn reversed_by(&self) -> Option<&String> {
        self.links
            .as_ref()
            .and_then(|links| links.reversed_by.as_ref())
    }
}

pub fn pending_state_code(state: PendingState) -> u8 {
    state_code(state)
}
