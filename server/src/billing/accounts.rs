//! The accounts billing posts to, opened by the writer on first use.
//!
//! Control accounts per currency carry the customers' totals (each
//! customer's share is in the billing book, the subledger): receivables,
//! customer credit (prepaid, overpaid and credited money the ledger owes
//! back or will draw down), cash received, discounts given (contra-revenue)
//! and credit granted (an expense). Revenue has an account per plan and
//! charge, tax payable one per tax rule and currency. Names are built from
//! codes that are already `[a-z0-9_]`, so every name is a valid account name.

use crate::error::LedgerError;
use crate::ledger::execute::{self, Context};
use crate::ledger::state::{Journaled, LedgerState};
use std::collections::BTreeMap;
use tally_core::entry::{AccountId, AccountType, BalanceConstraint, Posting, Side};
use tally_core::error_code::ErrorCode;

/// What an account is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Receivable,
    CustomerCredit,
    Cash,
    Discounts,
    CreditGrants,
    Revenue { plan: String, charge: String },
    TaxPayable { rule: String },
}

impl Role {
    pub fn name(&self, currency: &str) -> String {
        let currency = currency.to_ascii_lowercase();
        match self {
            Role::Receivable => format!("assets:receivable:{currency}"),
            Role::CustomerCredit => format!("liabilities:customer_credit:{currency}"),
            Role::Cash => format!("assets:cash:{currency}"),
            Role::Discounts => format!("revenue:discounts:{currency}"),
            Role::CreditGrants => format!("expenses:credit_grants:{currency}"),
            Role::Revenue { plan, charge } => format!("revenue:{plan}:{charge}"),
            Role::TaxPayable { rule } => format!("liabilities:tax:{rule}:{currency}"),
        }
    }

    fn account_type(&self) -> AccountType {
        match self {
            Role::Receivable | Role::Cash => AccountType::Asset,
            Role::CustomerCredit | Role::TaxPayable { .. } => AccountType::Liability,
            Role::Discounts | Role::Revenue { .. } => AccountType::Revenue,
            Role::CreditGrants => AccountType::Expense,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Role::Receivable => "receivable",
            Role::CustomerCredit => "customer_credit",
            Role::Cash => "cash",
            Role::Discounts => "discounts",
            Role::CreditGrants => "credit_grants",
            Role::Revenue { .. } => "revenue",
            Role::TaxPayable { .. } => "tax_payable",
        }
    }
}

/// The account for `role` in `currency`, opened (journaled into `out`) if
/// it does not exist. An account of that name opened otherwise (another
/// type or currency) or closed is an error: billing never posts around it.
pub fn resolve(
    state: &mut LedgerState,
    role: &Role,
    currency: &str,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<AccountId, LedgerError> {
    let name = role.name(currency);
    if let Some(id) = state.account_id(&name) {
        let account = state.account(id);
        if account.opened.currency != currency || account.opened.account_type != role.account_type()
        {
            return Err(LedgerError::new(
                ErrorCode::AccountExists,
                "",
                format!("account {name} exists with another type or currency; billing posts to it"),
            ));
        }
        if account.closed {
            return Err(LedgerError::new(
                ErrorCode::AccountClosed,
                "",
                format!("account {name} is closed; billing posts to it"),
            ));
        }
        return Ok(id);
    }
    let spec = crate::ledger::command::AccountSpec {
        name,
        account_type: role.account_type(),
        currency: currency.to_string(),
        constraint: BalanceConstraint::None,
        metadata: BTreeMap::from([("billing".to_string(), role.label().to_string())]),
    };
    execute::open_account(state, &spec, ctx, out).map(|(id, _)| id)
}

/// The postings of one billing document, netted by role (minor units,
/// debits positive), then resolved to accounts: one posting per account,
/// none for a role that nets to zero.
#[derive(Debug, Default)]
pub struct PostingPlan {
    nets: BTreeMap<Role, i128>,
    /// An amount beyond what the ledger holds was added.
    overflow: bool,
}

impl PostingPlan {
    pub fn debit(&mut self, role: Role, amount: u128) {
        self.signed(role, i128::try_from(amount).unwrap_or(i128::MAX), true);
    }

    pub fn credit(&mut self, role: Role, amount: u128) {
        self.signed(role, i128::try_from(amount).unwrap_or(i128::MAX), false);
    }

    /// Adds `amount` on the debit side (`debit`) or the credit side; a
    /// negative amount goes to the other side.
    pub fn signed(&mut self, role: Role, amount: i128, debit: bool) {
        let amount = if debit {
            Some(amount)
        } else {
            amount.checked_neg()
        };
        let net = self.nets.entry(role).or_default();
        match amount.and_then(|a| net.checked_add(a)) {
            Some(sum) => *net = sum,
            None => self.overflow = true,
        }
    }

    /// Whether debits equal credits; checked before any account is opened.
    pub fn balances(&self) -> bool {
        !self.overflow
            && self
                .nets
                .values()
                .try_fold(0i128, |acc, v| acc.checked_add(*v))
                == Some(0)
    }

    fn legs(&self) -> impl Iterator<Item = (&Role, i128)> {
        self.nets
            .iter()
            .filter(|(_, net)| **net != 0)
            .map(|(r, n)| (r, *n))
    }

    /// Every role's account, resolved first (so a refusal opens nothing),
    /// then the postings.
    pub fn check(&self, state: &LedgerState, currency: &str) -> Result<(), LedgerError> {
        for (role, _) in self.legs() {
            let name = role.name(currency);
            if let Some(id) = state.account_id(&name) {
                let account = state.account(id);
                if account.closed
                    || account.opened.currency != currency
                    || account.opened.account_type != role.account_type()
                {
                    return Err(LedgerError::new(
                        ErrorCode::AccountClosed,
                        "",
                        format!(
                            "account {name} is closed or of another type or currency; billing posts to it"
                        ),
                    ));
                }
            } else if state.currency_scale(currency).is_none() {
                return Err(LedgerError::new(
                    ErrorCode::CurrencyUnknown,
                    "currency",
                    format!("currency {currency} is not defined"),
                ));
            }
        }
        Ok(())
    }

    pub fn resolve(
        self,
        state: &mut LedgerState,
        currency: &str,
        ctx: &Context,
        out: &mut Vec<Journaled>,
    ) -> Result<Vec<Posting>, LedgerError> {
        debug_assert!(self.balances(), "billing postings balance");
        let mut postings = Vec::with_capacity(self.nets.len());
        for (role, net) in self.legs() {
            let account_id = resolve(state, role, currency, ctx, out)?;
            postings.push(Posting {
                account_id,
                side: if net > 0 { Side::Debit } else { Side::Credit },
                amount_minor: net.unsigned_abs(),
            });
        }
        Ok(postings)
    }
}
