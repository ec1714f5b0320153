//! The account directory: account names resolved to ids before the writer.
//!
//! The writer thread is the ledger's one serial resource. Looking a posting's
//! account up by name there (a hash of the name, then a comparison with the
//! stored name's bytes, usually a cache miss), checking its currency and
//! converting its amount to minor units cost about a fifth of executing a
//! two-posting transfer. None of that depends on anything but the account's
//! name, id, currency and scale, which never change once it is opened. So the
//! caller's task resolves each posting here, in parallel with the writer, and
//! the writer only checks what can change: whether the account is closed, and
//! its balances.
//!
//! The directory holds only accounts whose opening is durable (the writer adds
//! them after their group is written), so every id it gives exists in the
//! writer's state. A name it does not know is no error here: the item goes to
//! the writer unresolved, and the writer looks the name up itself (the account
//! may have been opened in the same group) and gives the precise error.

use super::command::PostingSpec;
use super::state::{AccountState, FastMap, Journaled, LedgerState};
use std::sync::RwLock;
use tally_core::entry::{AccountId, EntryBody, Posting, Side};
use tally_core::money;

struct Listed {
    id: AccountId,
    scale: u8,
    currency: Box<str>,
}

fn list(accounts: &mut FastMap<Box<str>, Listed>, account: &AccountState) {
    accounts.insert(
        account.opened.name.as_str().into(),
        Listed {
            id: account.opened.account_id,
            scale: account.scale,
            currency: account.opened.currency.as_str().into(),
        },
    );
}

#[derive(Default)]
pub struct AccountDirectory {
    accounts: RwLock<FastMap<Box<str>, Listed>>,
}

impl AccountDirectory {
    /// Every account of `state` (at start-up, before the writer runs).
    pub fn from_state(state: &LedgerState) -> AccountDirectory {
        let directory = AccountDirectory::default();
        {
            let mut accounts = directory.write();
            accounts.reserve(state.account_count() as usize);
            for id in 0..state.account_count() {
                list(&mut accounts, state.account(id));
            }
        }
        directory
    }

    /// Adds the accounts opened in `group`, once it is durable.
    pub fn add_opened(&self, group: &[Journaled], state: &LedgerState) {
        let mut opened = group
            .iter()
            .filter_map(|journaled| match &journaled.entry.body {
                EntryBody::AccountOpened(opened) => Some(opened),
                _ => None,
            });
        let Some(first) = opened.next() else { return };
        let mut accounts = self.write();
        for opened in std::iter::once(first).chain(opened) {
            list(&mut accounts, state.account(opened.account_id));
        }
    }

    /// The postings with their accounts resolved and amounts in minor units,
    /// if every account is known, every currency given is the account's, every
    /// amount fits its account's scale and the postings balance per currency.
    /// Otherwise `None`: the writer then plans the item from its names and
    /// gives the precise error, exactly as for an unresolved item.
    pub fn resolve(&self, postings: &[PostingSpec]) -> Option<Vec<Posting>> {
        let accounts = self
            .accounts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut resolved = Vec::with_capacity(postings.len());
        // (currency, debits, credits): u128 cannot overflow, as in the
        // writer's own check (at most BATCH postings of at most 2^96 each).
        let mut sums: Vec<(&str, u128, u128)> = Vec::with_capacity(2);
        for posting in postings {
            let listed = accounts.get(posting.account.as_str())?;
            if posting
                .currency
                .as_deref()
                .is_some_and(|currency| currency != &*listed.currency)
            {
                return None;
            }
            let amount_minor = money::to_minor_positive(posting.amount, listed.scale).ok()?;
            let index = match sums.iter().position(|(c, _, _)| *c == &*listed.currency) {
                Some(index) => index,
                None => {
                    sums.push((&listed.currency, 0, 0));
                    sums.len() - 1
                }
            };
            match posting.side {
                Side::Debit => sums[index].1 += amount_minor,
                Side::Credit => sums[index].2 += amount_minor,
            }
            resolved.push(Posting {
                account_id: listed.id,
                side: posting.side,
                amount_minor,
            });
        }
        sums.iter()
            .all(|(_, debits, credits)| debits == credits)
            .then_some(resolved)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, FastMap<Box<str>, Listed>> {
        self.accounts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;
    use tally_core::entry::{AccountOpened, AccountType, BalanceConstraint, Entry};

    fn opened(id: AccountId, name: &str, currency: &str) -> AccountOpened {
        AccountOpened {
            account_id: id,
            name: name.into(),
            account_type: AccountType::Asset,
            currency: currency.into(),
            constraint: BalanceConstraint::None,
            metadata: Default::default(),
        }
    }

    fn directory() -> AccountDirectory {
        let directory = AccountDirectory::default();
        let mut accounts = directory.write();
        for (id, name, currency, scale) in [
            (0, "assets:a", "USD", 2),
            (1, "assets:b", "USD", 2),
            (2, "assets:c", "EUR", 2),
            (3, "assets:d", "EUR", 2),
            (4, "assets:jpy", "JPY", 0),
        ] {
            accounts.insert(
                name.into(),
                Listed {
                    id,
                    scale,
                    currency: currency.into(),
                },
            );
        }
        drop(accounts);
        directory
    }

    fn posting(account: &str, side: Side, amount: &str, currency: Option<&str>) -> PostingSpec {
        PostingSpec {
            account: account.into(),
            side,
            amount: Decimal::from_str(amount).unwrap(),
            currency: currency.map(Into::into),
        }
    }

    #[test]
    fn resolves_known_accounts_in_minor_units() {
        let resolved = directory()
            .resolve(&[
                posting("assets:a", Side::Debit, "1.25", Some("USD")),
                posting("assets:b", Side::Credit, "1.25", None),
                posting("assets:c", Side::Debit, "3", None),
                posting("assets:d", Side::Credit, "3.00", Some("EUR")),
            ])
            .expect("resolves");
        let minor: Vec<(AccountId, Side, u128)> = resolved
            .iter()
            .map(|p| (p.account_id, p.side, p.amount_minor))
            .collect();
        assert_eq!(
            minor,
            vec![
                (0, Side::Debit, 125),
                (1, Side::Credit, 125),
                (2, Side::Debit, 300),
                (3, Side::Credit, 300)
            ]
        );
    }

    #[test]
    fn leaves_to_the_writer_what_it_cannot_resolve() {
        let directory = directory();
        let unresolved = [
            // an unknown account
            vec![
                posting("assets:a", Side::Debit, "1", None),
                posting("assets:zz", Side::Credit, "1", None),
            ],
            // a currency that is not the account's
            vec![
                posting("assets:a", Side::Debit, "1", Some("EUR")),
                posting("assets:b", Side::Credit, "1", None),
            ],
            // more decimals than the account's scale
            vec![
                posting("assets:jpy", Side::Debit, "1.5", None),
                posting("assets:jpy", Side::Credit, "1.5", None),
            ],
            // unbalanced in one currency, balanced in total
            vec![
                posting("assets:a", Side::Debit, "1", None),
                posting("assets:c", Side::Credit, "1", None),
            ],
            // not positive
            vec![
                posting("assets:a", Side::Debit, "0", None),
                posting("assets:b", Side::Credit, "0", None),
            ],
        ];
        for postings in unresolved {
            assert_eq!(directory.resolve(&postings), None, "{postings:?}");
        }
    }

    #[test]
    fn learns_accounts_from_durable_groups() {
        let directory = AccountDirectory::default();
        let mut state = LedgerState::new();
        let mut group = Vec::new();
        for (at, body) in [
            EntryBody::LedgerCreated { ledger_id: [7; 16] },
            EntryBody::CurrencyDefined {
                code: "USD".into(),
                scale: 2,
            },
            EntryBody::AccountOpened(opened(0, "assets:x", "USD")),
        ]
        .into_iter()
        .enumerate()
        {
            group.push(state.append(Entry {
                recorded_at: at as i64 + 1,
                key_id: String::new(),
                body,
            }));
        }
        let spend = [
            posting("assets:x", Side::Debit, "0.01", None),
            posting("assets:x", Side::Credit, "0.01", None),
        ];
        assert_eq!(directory.resolve(&spend), None);
        directory.add_opened(&group, &state);
        assert_eq!(directory.resolve(&spend).map(|p| p.len()), Some(2));
        let rebuilt = AccountDirectory::from_state(&state);
        assert_eq!(rebuilt.resolve(&spend), directory.resolve(&spend));
    }
}
