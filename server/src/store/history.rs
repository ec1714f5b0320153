//! Each account's balance history as the read model keeps it: the balance
//! after every entry that changed the account, in seq order.
//!
//! The read model holds one point per posting, for ever, so a point is kept
//! small: 40 bytes instead of the 96 of a [`HistoryPoint`] (four `u128`
//! totals and three times). Two observations make that possible:
//!
//! - Posted totals fit in a `u64` until an account has moved more than
//!   1.8 × 10^19 minor units. An account that goes past it has all its posted
//!   totals kept as `u128` from then on ([`Rare::wide_posted`]).
//! - Pending totals change only at the entries of two-phase transfers (a
//!   pending transfer, its post, void or expiry), and only those can take
//!   effect at a time of their own. They are kept apart, at the points where
//!   they change ([`Rare::pending`]).
//!
//! [`AccountHistory::point`] gives back exactly the [`HistoryPoint`] pushed.

use super::read_model::HistoryPoint;
use crate::ledger::view::Balance;
use std::ops::Range;
use tally_core::entry::TimestampNs;

/// One change of an account's totals, as kept. The posted totals are zero
/// here once the account keeps them wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompactPoint {
    seq: u64,
    effective_at: TimestampNs,
    debits_posted: u64,
    credits_posted: u64,
    kind: u8,
}

// One per posting, for ever: keep it this small.
const _: () = assert!(std::mem::size_of::<CompactPoint>() <= 40);

/// The pending totals from point `index` on, and when that change of them
/// takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingChange {
    index: usize,
    debits_pending: u128,
    credits_pending: u128,
    effective_at: TimestampNs,
}

/// What most accounts never need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    /// Every point's posted totals, once one of them exceeded `u64`;
    /// empty before.
    wide_posted: Vec<[u128; 2]>,
    /// The points at which the pending totals, or the time their change
    /// takes effect, differ from the point before (the totals are zero and
    /// take effect with the posted ones before the first), ascending.
    pending: Vec<PendingChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountHistory {
    points: Vec<CompactPoint>,
    rare: Option<Box<Rare>>,
}

impl AccountHistory {
    pub const EMPTY: AccountHistory = AccountHistory {
        points: Vec::new(),
        rare: None,
    };

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The seq of point `index`.
    pub fn seq(&self, index: usize) -> u64 {
        self.points[index].seq
    }

    /// The number of leading points whose seq satisfies `pred` (which must
    /// hold for a prefix, as with `slice::partition_point`).
    pub fn partition_by_seq(&self, pred: impl Fn(u64) -> bool) -> usize {
        self.points.partition_point(|p| pred(p.seq))
    }

    /// Appends the account's next change; its seq must be above the last.
    pub fn push(&mut self, point: HistoryPoint) {
        debug_assert!(
            self.points.last().is_none_or(|p| p.seq < point.seq),
            "history out of order"
        );
        let index = self.points.len();
        let balance = point.balance;
        let narrow = (
            u64::try_from(balance.debits_posted),
            u64::try_from(balance.credits_posted),
        );
        let wide = self
            .rare
            .as_ref()
            .is_some_and(|r| !r.wide_posted.is_empty());
        let (debits_posted, credits_posted) = match narrow {
            (Ok(debits), Ok(credits)) if !wide => (debits, credits),
            _ => {
                let rare = self.rare.get_or_insert_with(Box::default);
                if rare.wide_posted.is_empty() {
                    // The first total past u64: every point so far goes wide.
                    rare.wide_posted = self
                        .points
                        .iter_mut()
                        .map(|p| {
                            let totals = [p.debits_posted as u128, p.credits_posted as u128];
                            (p.debits_posted, p.credits_posted) = (0, 0);
                            totals
                        })
                        .collect();
                }
                rare.wide_posted
                    .push([balance.debits_posted, balance.credits_posted]);
                (0, 0)
            }
        };
        let pending_before = self.pending_at(index);
        let pending_now = (
            balance.debits_pending,
            balance.credits_pending,
            point.pending_effective_at,
        );
        if pending_now != (pending_before.0, pending_before.1, point.effective_at) {
            self.rare
                .get_or_insert_with(Box::default)
                .pending
                .push(PendingChange {
                    index,
                    debits_pending: balance.debits_pending,
                    credits_pending: balance.credits_pending,
                    effective_at: point.pending_effective_at,
                });
        }
        self.points.push(CompactPoint {
            seq: point.seq,
            effective_at: point.effective_at,
            debits_posted,
            credits_posted,
            kind: point.kind,
        });
        debug_assert_eq!(self.point(index), point);
    }

    /// Point `index` as pushed.
    pub fn point(&self, index: usize) -> HistoryPoint {
        let compact = self.points[index];
        let (debits_posted, credits_posted) = self.posted(index);
        let change = self.pending_change_at(index);
        let (debits_pending, credits_pending) =
            change.map_or((0, 0), |c| (c.debits_pending, c.credits_pending));
        let pending_effective_at = match change {
            Some(c) if c.index == index => c.effective_at,
            _ => compact.effective_at,
        };
        HistoryPoint {
            seq: compact.seq,
            balance: Balance {
                debits_posted,
                credits_posted,
                debits_pending,
                credits_pending,
            },
            effective_at: compact.effective_at,
            pending_effective_at,
            kind: compact.kind,
        }
    }

    /// The points in `range`, in order.
    pub fn points(&self, range: Range<usize>) -> impl Iterator<Item = HistoryPoint> + '_ {
        range.map(|index| self.point(index))
    }

    /// Every point, in order.
    pub fn iter(&self) -> impl Iterator<Item = HistoryPoint> + '_ {
        self.points(0..self.len())
    }

    fn posted(&self, index: usize) -> (u128, u128) {
        match &self.rare {
            Some(rare) if !rare.wide_posted.is_empty() => {
                let [debits, credits] = rare.wide_posted[index];
                (debits, credits)
            }
            _ => {
                let p = &self.points[index];
                (p.debits_posted as u128, p.credits_posted as u128)
            }
        }
    }

    /// The last pending change at or before point `index`.
    fn pending_change_at(&self, index: usize) -> Option<&PendingChange> {
        let pending = &self.rare.as_ref()?.pending;
        let after = pending.partition_point(|c| c.index <= index);
        after.checked_sub(1).map(|i| &pending[i])
    }

    /// The pending totals in force at point `index` (before it is pushed:
    /// those of the last change before it).
    fn pending_at(&self, index: usize) -> (u128, u128) {
        self.pending_change_at(index)
            .map_or((0, 0), |c| (c.debits_pending, c.credits_pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point() -> impl Strategy<Value = (u64, HistoryPoint)> {
        // Totals mostly small, sometimes past u64; pending totals often
        // unchanged; the pending time usually the posted one.
        let total = prop_oneof![
            4 => 0u128..1_000,
            1 => (u64::MAX as u128 - 2)..(u64::MAX as u128 + 2),
            1 => any::<u128>(),
        ];
        let pending = prop_oneof![3 => Just(None), 1 => (0u128..5, 0u128..5).prop_map(Some)];
        (
            1u64..5,
            total.clone(),
            total,
            pending,
            -5i64..5,
            prop_oneof![3 => Just(None), 1 => (-5i64..5).prop_map(Some)],
            0u8..6,
        )
            .prop_map(
                |(gap, debits, credits, pending, effective_at, pending_at, kind)| {
                    let (debits_pending, credits_pending) = pending.unwrap_or((0, 0));
                    (
                        gap,
                        HistoryPoint {
                            seq: 0,
                            balance: Balance {
                                debits_posted: debits,
                                credits_posted: credits,
                                debits_pending,
                                credits_pending,
                            },
                            effective_at,
                            pending_effective_at: pending_at.unwrap_or(effective_at),
                            kind,
                        },
                    )
                },
            )
    }

    proptest! {
        /// Every point comes back exactly as pushed, whatever the totals
        /// (narrow, past u64, pending or not) and times.
        #[test]
        fn gives_back_every_point(points in proptest::collection::vec(point(), 0..60)) {
            let mut history = AccountHistory::default();
            let mut pushed = Vec::new();
            let mut seq = 0;
            for (gap, mut point) in points {
                seq += gap;
                point.seq = seq;
                history.push(point);
                pushed.push(point);
            }
            prop_assert_eq!(history.len(), pushed.len());
            prop_assert_eq!(history.iter().collect::<Vec<_>>(), pushed.clone());
            for (index, point) in pushed.iter().enumerate() {
                prop_assert_eq!(history.seq(index), point.seq);
                prop_assert_eq!(history.partition_by_seq(|s| s < point.seq), index);
            }
        }
    }

    #[test]
    fn an_account_of_posted_changes_only_keeps_no_rare_part() {
        let mut history = AccountHistory::default();
        for seq in 1..100u64 {
            history.push(HistoryPoint {
                seq,
                balance: Balance {
                    debits_posted: seq as u128 * 7,
                    credits_posted: seq as u128,
                    ..Balance::default()
                },
                effective_at: seq as i64,
                pending_effective_at: seq as i64,
                kind: 1,
            });
        }
        assert!(history.rare.is_none());
        assert_eq!(history.point(98).balance.debits_posted, 99 * 7);
    }
}
