//! The writer's half of billing: every check that depends on the ledger's
//! state, then the entry, in one step, so that two requests can never both
//! pass a check the first one's entry would have failed (two invoices for
//! one period, a number given twice, credit drawn twice).
//!
//! Each function validates everything before it appends anything: a refusal
//! leaves the state and the journal as they were.

use super::accounts::{PostingPlan, Role};
use super::book::BillingBook;
use crate::error::LedgerError;
use crate::ledger::execute::{append, Context};
use crate::ledger::state::{Journaled, LedgerState};
use rust_decimal::Decimal;
use tally_core::billing::{
    document_number, Allocation, BillingProfile, CouponGranted, CreditNote, CreditNoteIssued,
    CreditNoteLine, Invoice, InvoiceIssued, InvoiceVoided, LineTaxAmount, Payment, PaymentKind,
    PaymentRecorded, SubscriptionChange, SubscriptionChanged, TaxRulesPublished,
};
use tally_core::calendar::{Day, DAY_NS};
use tally_core::decimal::Dec;
use tally_core::entry::{Digest, EntryBody, TransactionMode, TransactionRecorded};
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::money::to_minor;
use tally_core::plan::TaxRule;

/// The day `ns` falls on, UTC.
pub fn day_of(ns: i64) -> Day {
    Day(i32::try_from(ns.div_euclid(DAY_NS)).unwrap_or(i32::MAX))
}

fn digest_of<T: bincode::Encode>(value: &T) -> Digest {
    let bytes = bincode::encode_to_vec(value, bincode::config::standard())
        .expect("encoding plain data into memory cannot fail");
    *blake3::hash(&bytes).as_bytes()
}

fn minor(value: Decimal, scale: u8, what: &str) -> Result<u128, LedgerError> {
    to_minor(value, scale).map_err(|e| {
        LedgerError::new(
            ErrorCode::AmountOverflow,
            "",
            format!("{what} {value}: {e}"),
        )
    })
}

/// A decimal at the currency's scale as signed minor units.
fn signed_minor(value: Decimal, scale: u8) -> Result<i128, LedgerError> {
    let minor = minor(value.abs(), scale, "amount")?;
    let minor = i128::try_from(minor).map_err(|_| {
        LedgerError::new(
            ErrorCode::AmountOverflow,
            "",
            format!("amount {value} overflows"),
        )
    })?;
    Ok(if value.is_sign_negative() {
        -minor
    } else {
        minor
    })
}

fn profile_of<'a>(
    book: &'a BillingBook,
    customer: &str,
) -> Result<&'a BillingProfile, LedgerError> {
    book.profile(customer).map(|p| &p.profile).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::BillingProfileMissing,
            "customer_id",
            format!("customer {} has no billing profile", quoted(customer)),
        )
    })
}

fn scale_of(state: &LedgerState, currency: &str) -> Result<u8, LedgerError> {
    state.currency_scale(currency).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::CurrencyUnknown,
            "currency",
            format!("currency {currency} is not defined"),
        )
    })
}

/// The transaction a billing document posts, after its plan is checked.
#[allow(clippy::too_many_arguments)] // each is one field of the transaction
fn transaction(
    state: &mut LedgerState,
    id: String,
    digest: Digest,
    mode: TransactionMode,
    plan: PostingPlan,
    currency: &str,
    description: String,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<TransactionRecorded, LedgerError> {
    if state.transaction(&id).is_some() {
        return Err(LedgerError::new(
            ErrorCode::TransactionExists,
            "",
            format!("transaction id {id} is taken; billing records its documents under it"),
        ));
    }
    if !plan.balances() {
        return Err(LedgerError::new(
            ErrorCode::TransactionUnbalanced,
            "",
            format!("{id} does not balance"),
        ));
    }
    plan.check(state, currency)?;
    let postings = plan.resolve(state, currency, ctx, out)?;
    Ok(TransactionRecorded {
        id,
        request_digest: digest,
        mode,
        postings,
        effective_at: None,
        description,
        metadata: Default::default(),
    })
}

// ---- profiles, subscriptions, coupons, tax rules ---------------------------

/// Sets a customer's profile (validated by the caller, `super::validate`).
/// `Ok((seq, false))` when it is the current profile: a retry records nothing.
pub fn set_profile(
    state: &mut LedgerState,
    profile: BillingProfile,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u64, bool), LedgerError> {
    if state.catalog().customer(&profile.customer_id).is_none() {
        return Err(LedgerError::new(
            ErrorCode::CustomerNotFound,
            "customer_id",
            format!("no customer {}", quoted(&profile.customer_id)),
        ));
    }
    scale_of(state, &profile.currency)?;
    let book = state.billing();
    if let Some(current) = book.profile(&profile.customer_id) {
        if current.profile == profile {
            return Ok((current.seq, false));
        }
        let invoiced = book
            .customer_invoices(&profile.customer_id)
            .next()
            .is_some();
        let subscribed = book
            .customer_subscriptions(&profile.customer_id)
            .next()
            .is_some();
        if current.profile.currency != profile.currency && (invoiced || subscribed) {
            return Err(LedgerError::new(
                ErrorCode::BillingCurrencyChanged,
                "currency",
                format!(
                    "customer {} is billed in {}; the currency cannot change once subscribed",
                    quoted(&profile.customer_id),
                    current.profile.currency
                ),
            ));
        }
    }
    let seq = append(state, ctx, EntryBody::BillingProfileSet(profile), out);
    Ok((seq, true))
}

/// Records a subscription change whose plan version the caller resolved.
/// `Ok((seq, false))` for a retry of the subscription's last change.
pub fn change_subscription(
    state: &mut LedgerState,
    changed: SubscriptionChanged,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u64, bool), LedgerError> {
    let book = state.billing();
    let invalid = |field: &str, message: String| {
        LedgerError::new(ErrorCode::SubscriptionChangeInvalid, field, message)
    };
    let id = &changed.subscription_id;
    let profile = profile_of(book, &changed.customer_id)?;
    let check_plan = |code: &str, version: u32| -> Result<(), LedgerError> {
        let plan = state.plans().version(code, version).ok_or_else(|| {
            LedgerError::new(
                ErrorCode::PlanNotFound,
                "plan_code",
                format!("no version {version} of plan {}", quoted(code)),
            )
        })?;
        if plan.spec.currency != profile.currency {
            return Err(LedgerError::new(
                ErrorCode::BillingCurrencyChanged,
                "plan_code",
                format!(
                    "plan {} is priced in {}; customer {} is billed in {}",
                    quoted(code),
                    plan.spec.currency,
                    quoted(&changed.customer_id),
                    profile.currency
                ),
            ));
        }
        Ok(())
    };
    let existing = book.subscription(id);
    if let Some(subscription) = existing {
        if subscription.customer_id != changed.customer_id {
            return Err(LedgerError::new(
                ErrorCode::BillingIdExists,
                "subscription_id",
                format!("subscription {} belongs to another customer", quoted(id)),
            ));
        }
    }
    // The last day already invoiced: changes before it would rewrite an
    // issued invoice (a credit note corrects those).
    let invoiced_through = book
        .customer_invoices(&changed.customer_id)
        .filter(|i| i.voided.is_none() && i.invoice.subscription_id == *id)
        .map(|i| i.invoice.period_end)
        .max();
    match (&changed.change, existing) {
        (
            SubscriptionChange::Started {
                plan_code,
                plan_version,
                start,
            },
            None,
        ) => {
            check_plan(plan_code, *plan_version)?;
            start
                .start_ns()
                .ok_or_else(|| invalid("start", format!("start {start} is out of range")))?;
        }
        (SubscriptionChange::Started { .. }, Some(subscription)) => {
            let first = &subscription.segments[0];
            let same = matches!(&changed.change, SubscriptionChange::Started { plan_code, plan_version, start }
                if *plan_code == first.plan_code && *plan_version == first.plan_version && *start == first.from);
            if same {
                return Ok((subscription.seqs[0], false));
            }
            return Err(LedgerError::new(
                ErrorCode::BillingIdExists,
                "subscription_id",
                format!(
                    "subscription {} exists with another plan or start",
                    quoted(id)
                ),
            ));
        }
        (_, None) => {
            return Err(LedgerError::new(
                ErrorCode::SubscriptionNotFound,
                "subscription_id",
                format!("no subscription {}", quoted(id)),
            ))
        }
        (
            SubscriptionChange::PlanChanged {
                plan_code,
                plan_version,
                effective,
            },
            Some(subscription),
        ) => {
            let last = subscription
                .segments
                .last()
                .expect("a subscription has a segment");
            if last.from == *effective
                && last.plan_code == *plan_code
                && last.plan_version == *plan_version
            {
                return Ok((*subscription.seqs.last().unwrap_or(&0), false));
            }
            check_plan(plan_code, *plan_version)?;
            if *effective <= last.from {
                return Err(invalid(
                    "effective",
                    format!(
                        "the subscription's last change is on {}; a change must come after it",
                        last.from
                    ),
                ));
            }
            if subscription.end.is_some_and(|end| *effective >= end) {
                return Err(invalid(
                    "effective",
                    format!("the subscription ends before {effective}"),
                ));
            }
            if invoiced_through.is_some_and(|through| *effective < through) {
                return Err(invalid(
                    "effective",
                    format!(
                        "the subscription is invoiced through {}; an earlier change needs a credit note",
                        invoiced_through.unwrap_or(*effective)
                    ),
                ));
            }
        }
        (SubscriptionChange::Ended { end }, Some(subscription)) => {
            if subscription.end == Some(*end) {
                return Ok((*subscription.seqs.last().unwrap_or(&0), false));
            }
            if subscription.end.is_some() {
                return Err(invalid("end", "the subscription has ended".into()));
            }
            let last = subscription
                .segments
                .last()
                .expect("a subscription has a segment");
            if *end <= last.from {
                return Err(invalid(
                    "end",
                    format!("the subscription's last change is on {}", last.from),
                ));
            }
            if invoiced_through.is_some_and(|through| *end < through) {
                return Err(invalid(
                    "end",
                    format!(
                        "the subscription is invoiced through {}; an earlier end needs a credit note",
                        invoiced_through.unwrap_or(*end)
                    ),
                ));
            }
        }
    }
    let seq = append(state, ctx, EntryBody::SubscriptionChanged(changed), out);
    Ok((seq, true))
}

pub fn grant_coupon(
    state: &mut LedgerState,
    granted: CouponGranted,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u64, bool), LedgerError> {
    let book = state.billing();
    profile_of(book, &granted.customer_id)?;
    if let Some(existing) = book.grant(&granted.grant_id) {
        if existing.grant == granted {
            return Ok((existing.seq, false));
        }
        return Err(LedgerError::new(
            ErrorCode::BillingIdExists,
            "grant_id",
            format!(
                "coupon grant {} exists with other content",
                quoted(&granted.grant_id)
            ),
        ));
    }
    let seq = append(state, ctx, EntryBody::CouponGranted(granted), out);
    Ok((seq, true))
}

/// Publishes the tax table; the current table again records nothing.
pub fn publish_tax_rules(
    state: &mut LedgerState,
    rules: Vec<TaxRule>,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u32, u64, bool), LedgerError> {
    let (version, current) = state.billing().tax_rules();
    if version > 0 && current == rules.as_slice() {
        return Ok((version, 0, false));
    }
    let version = version + 1;
    let seq = append(
        state,
        ctx,
        EntryBody::TaxRulesPublished(TaxRulesPublished { version, rules }),
        out,
    );
    Ok((version, seq, true))
}

// ---- invoices --------------------------------------------------------------

/// An invoice rated by a billing run at one journal length: everything but
/// what the writer assigns (number, dates, credit drawn down).
#[derive(Debug, Clone)]
pub struct InvoiceDraft {
    /// When the invoice's billing date begins in the customer's zone: it is
    /// not issued before.
    pub starts_at: i64,
    /// The journal length the run read.
    pub as_of_seq: u64,
    pub tax_version: u32,
    /// Number, sequence, year, dates, credit and amount due are the
    /// writer's; the rest is final.
    pub invoice: Invoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    Issued {
        number: String,
        seq: u64,
    },
    /// The period was invoiced already: its invoice.
    Existing {
        number: String,
    },
    /// The customer's billing changed after the run read it: rate again.
    Stale,
}

/// Issues a draft. `own_seq` is the last invoice the same run issued for
/// the customer: a change that is only the run's own invoice does not make
/// the draft stale (the run planned the customer's dates together).
pub fn issue_invoice(
    state: &mut LedgerState,
    draft: InvoiceDraft,
    own_seq: Option<u64>,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<IssueOutcome, LedgerError> {
    let book = state.billing();
    let mut invoice = draft.invoice;
    if let Some(existing) = book.invoiced_on(&invoice.subscription_id, invoice.period_end) {
        return Ok(IssueOutcome::Existing {
            number: existing.invoice.number.clone(),
        });
    }
    let changed = book.customer_seq(&invoice.customer_id);
    if (changed >= draft.as_of_seq && Some(changed) != own_seq)
        || book.tax_rules().0 != draft.tax_version
    {
        return Ok(IssueOutcome::Stale);
    }
    let profile = profile_of(book, &invoice.customer_id)?.clone();
    let today = day_of(ctx.now);
    if draft.starts_at > ctx.now {
        return Err(LedgerError::new(
            ErrorCode::BillingPeriodOpen,
            "period",
            format!(
                "the billing date {} (closing the period from {}) has not begun; a draft can preview it",
                invoice.period_end, invoice.period_start
            ),
        ));
    }
    let scale = scale_of(state, &invoice.currency)?;
    let credit = book.credit(&invoice.customer_id);
    if invoice.total.0.is_sign_negative() {
        // More credited than charged (an unused prepaid fee returned): the
        // difference is the customer's credit, not a negative receivable.
        invoice.credit_applied = invoice.total;
        invoice.amount_due = Dec::ZERO;
    } else {
        invoice.credit_applied = Dec(credit.min(invoice.total.0).max(Decimal::ZERO));
        invoice.amount_due = Dec(invoice.total.0 - invoice.credit_applied.0);
    }
    invoice.issued_on = today;
    invoice.due_on = Day(today.0.saturating_add(profile.payment_terms_days as i32));
    let (year, _, _) = today.ymd().unwrap_or((1970, 1, 1));
    invoice.series = profile.invoice_series.clone();
    invoice.year = year;
    invoice.sequence = book.next_sequence(&invoice.series, year);
    invoice.number = document_number(&invoice.series, year, invoice.sequence);

    // Receivable and credit drawn are debits; revenue (before discount, net
    // of tax) and tax are credits; the discount is a debit to the
    // contra-revenue account. A credit line's negative amounts reverse them.
    let mut plan = PostingPlan::default();
    plan.signed(
        Role::Receivable,
        signed_minor(invoice.amount_due.0, scale)?,
        true,
    );
    plan.signed(
        Role::CustomerCredit,
        signed_minor(invoice.credit_applied.0, scale)?,
        true,
    );
    plan.signed(
        Role::Discounts,
        signed_minor(invoice.discount.0, scale)?,
        true,
    );
    for line in &invoice.lines {
        let role = Role::Revenue {
            plan: line.plan_code.clone(),
            charge: line.charge_code.clone(),
        };
        plan.signed(
            role,
            signed_minor(line.net.0 + line.discount.0, scale)?,
            false,
        );
    }
    for tax in &invoice.taxes {
        let role = Role::TaxPayable {
            rule: tax.code.clone(),
        };
        plan.signed(role, signed_minor(tax.amount.0, scale)?, false);
    }
    let number = invoice.number.clone();
    let digest = digest_of(&invoice);
    let transaction = transaction(
        state,
        format!("invoice:{number}"),
        digest,
        TransactionMode::Standard,
        plan,
        &invoice.currency.clone(),
        format!("invoice {number}"),
        ctx,
        out,
    )?;
    let seq = append(
        state,
        ctx,
        EntryBody::InvoiceIssued(Box::new(InvoiceIssued {
            invoice,
            transaction,
        })),
        out,
    );
    Ok(IssueOutcome::Issued { number, seq })
}

fn invoice_not_found(number: &str) -> LedgerError {
    LedgerError::new(
        ErrorCode::InvoiceNotFound,
        "invoice_number",
        format!("no invoice {}", quoted(number)),
    )
}

/// Voids an invoice nothing was paid or credited on; its postings are
/// reversed. A retry of a void answers with the void's entry.
pub fn void_invoice(
    state: &mut LedgerState,
    number: &str,
    reason: String,
    lookup_postings: &dyn Fn(u64) -> Option<Vec<tally_core::entry::Posting>>,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u64, bool), LedgerError> {
    let book = state.billing();
    let invoice = book
        .invoice(number)
        .ok_or_else(|| invoice_not_found(number))?;
    if let Some((seq, _)) = &invoice.voided {
        return Ok((*seq, false));
    }
    if !invoice.paid.is_zero() || !invoice.credited_total.is_zero() {
        return Err(LedgerError::new(
            ErrorCode::InvoiceNotVoidable,
            "invoice_number",
            format!("invoice {number} has payments or credit notes; correct it with a credit note"),
        ));
    }
    // An invoice that gave credit (a net credit) takes it back when voided:
    // only while the customer still has it.
    let given = -invoice.invoice.credit_applied.0;
    if given > Decimal::ZERO && book.credit(&invoice.invoice.customer_id) < given {
        return Err(LedgerError::new(
            ErrorCode::InvoiceNotVoidable,
            "invoice_number",
            format!(
                "invoice {number} gave {given} of credit that has been used since; correct it with a credit note"
            ),
        ));
    }
    let original = lookup_postings(invoice.seq).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::Internal,
            "",
            format!("invoice {number}'s entry is missing"),
        )
    })?;
    let postings = original
        .iter()
        .map(|p| tally_core::entry::Posting {
            side: p.side.opposite(),
            ..*p
        })
        .collect();
    let id = format!("void:{number}");
    if state.transaction(&id).is_some() {
        return Err(LedgerError::new(
            ErrorCode::TransactionExists,
            "",
            format!("transaction id {id} is taken"),
        ));
    }
    let digest = digest_of(&(number.to_string(), reason.clone()));
    let transaction = TransactionRecorded {
        id,
        request_digest: digest,
        mode: TransactionMode::Reversal {
            reverses: format!("invoice:{number}"),
        },
        postings,
        effective_at: None,
        description: format!("void of invoice {number}"),
        metadata: Default::default(),
    };
    let seq = append(
        state,
        ctx,
        EntryBody::InvoiceVoided(Box::new(InvoiceVoided {
            number: number.to_string(),
            reason,
            transaction,
        })),
        out,
    );
    Ok((seq, true))
}

// ---- credit notes ----------------------------------------------------------

/// A credit note to issue: whole lines' remaining totals, or an amount
/// (tax included) per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteRequest {
    /// The caller's id: a retry with the same request is the same credit
    /// note (its transaction is `credit_note:ID`).
    pub credit_note_id: String,
    pub invoice_number: String,
    pub reason: String,
    /// (line index, total to credit); empty: everything left on the invoice.
    pub lines: Vec<(u32, Decimal)>,
}

pub fn issue_credit_note(
    state: &mut LedgerState,
    request: CreditNoteRequest,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(String, u64, bool), LedgerError> {
    let transaction_id = format!("credit_note:{}", request.credit_note_id);
    let lines_text: Vec<(u32, String)> = request
        .lines
        .iter()
        .map(|(line, amount)| (*line, amount.normalize().to_string()))
        .collect();
    let digest = digest_of(&(
        &request.credit_note_id,
        &request.invoice_number,
        &request.reason,
        &lines_text,
    ));
    let book = state.billing();
    if let Some(existing) = book.credit_note_by_id(&transaction_id) {
        if existing.request_digest == digest {
            return Ok((existing.credit_note.number.clone(), existing.seq, false));
        }
        return Err(LedgerError::new(
            ErrorCode::BillingIdExists,
            "credit_note_id",
            format!(
                "credit note {} exists with other content",
                quoted(&request.credit_note_id)
            ),
        ));
    }
    let number = &request.invoice_number;
    let invoice_state = book
        .invoice(number)
        .ok_or_else(|| invoice_not_found(number))?;
    if invoice_state.voided.is_some() {
        return Err(LedgerError::new(
            ErrorCode::CreditExceedsInvoice,
            "invoice_number",
            format!("invoice {number} is void"),
        ));
    }
    let invoice = std::sync::Arc::clone(&invoice_state.invoice);
    let scale = scale_of(state, &invoice.currency)?;
    let wanted: Vec<(u32, Decimal)> = if request.lines.is_empty() {
        (0..invoice.lines.len() as u32)
            .map(|i| {
                let credited = invoice_state
                    .credited_lines
                    .get(&i)
                    .copied()
                    .unwrap_or_default();
                (i, invoice.lines[i as usize].total.0 - credited)
            })
            .filter(|(_, amount)| !amount.is_zero())
            .collect()
    } else {
        request.lines.clone()
    };
    if wanted.is_empty() {
        return Err(LedgerError::new(
            ErrorCode::CreditExceedsInvoice,
            "lines",
            format!("nothing is left to credit on invoice {number}"),
        ));
    }
    let mut lines = Vec::with_capacity(wanted.len());
    let mut plan = PostingPlan::default();
    let mut total = Decimal::ZERO;
    for (position, (index, amount)) in wanted.iter().enumerate() {
        let field = format!("lines[{position}]");
        let line = invoice.lines.get(*index as usize).ok_or_else(|| {
            LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{field}.line"),
                format!("invoice {number} has {} lines", invoice.lines.len()),
            )
        })?;
        if amount.is_sign_negative()
            || amount.is_zero()
            || amount.scale() > u32::from(scale) && amount.normalize().scale() > u32::from(scale)
        {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{field}.amount"),
                format!("{amount} is not a positive amount at the currency's scale"),
            ));
        }
        let credited = invoice_state
            .credited_lines
            .get(index)
            .copied()
            .unwrap_or_default()
            + lines
                .iter()
                .filter(|l: &&CreditNoteLine| l.line == *index)
                .map(|l| l.total.0)
                .sum::<Decimal>();
        if *amount > line.total.0 - credited {
            return Err(LedgerError::new(
                ErrorCode::CreditExceedsInvoice,
                format!("{field}.amount"),
                format!(
                    "line {index} has {} left to credit",
                    line.total.0 - credited
                ),
            ));
        }
        // The tax credited with it, in the line's proportions, rounded half
        // to even; the rest is net revenue.
        let mut taxes = Vec::new();
        let mut tax_sum = Decimal::ZERO;
        for tax in &line.taxes {
            let share = (*amount * tax.amount.0)
                .checked_div(line.total.0)
                .unwrap_or_default()
                .round_dp_with_strategy(
                    u32::from(scale),
                    rust_decimal::RoundingStrategy::MidpointNearestEven,
                );
            tax_sum += share;
            taxes.push(LineTaxAmount {
                code: tax.code.clone(),
                rate: tax.rate,
                amount: Dec(share),
            });
            plan.debit(
                Role::TaxPayable {
                    rule: tax.code.clone(),
                },
                minor(share, scale, "tax credited")?,
            );
        }
        let net = *amount - tax_sum;
        plan.debit(
            Role::Revenue {
                plan: line.plan_code.clone(),
                charge: line.charge_code.clone(),
            },
            minor(net, scale, "revenue credited")?,
        );
        total += *amount;
        lines.push(CreditNoteLine {
            line: *index,
            net: Dec(net),
            taxes,
            total: Dec(*amount),
        });
    }
    let to_invoice = total.min(invoice_state.outstanding()).max(Decimal::ZERO);
    let to_credit = total - to_invoice;
    plan.credit(Role::Receivable, minor(to_invoice, scale, "credited")?);
    plan.credit(Role::CustomerCredit, minor(to_credit, scale, "credited")?);
    let today = day_of(ctx.now);
    let (year, _, _) = today.ymd().unwrap_or((1970, 1, 1));
    // The credit note's series follows the invoice's, whatever the profile
    // says today.
    let series = format!("CN-{}", invoice.series);
    let sequence = book.next_sequence(&series, year);
    let note = CreditNote {
        number: document_number(&series, year, sequence),
        series,
        year,
        sequence,
        invoice_number: number.clone(),
        customer_id: invoice.customer_id.clone(),
        currency: invoice.currency.clone(),
        issued_on: today,
        reason: request.reason,
        lines,
        total: Dec(total),
        to_invoice: Dec(to_invoice),
        to_credit: Dec(to_credit),
    };
    let note_number = note.number.clone();
    let transaction = transaction(
        state,
        transaction_id,
        digest,
        TransactionMode::Standard,
        plan,
        &invoice.currency,
        format!("credit note {note_number} on invoice {number}"),
        ctx,
        out,
    )?;
    let seq = append(
        state,
        ctx,
        EntryBody::CreditNoteIssued(Box::new(CreditNoteIssued {
            credit_note: note,
            transaction,
        })),
        out,
    );
    Ok((note_number, seq, true))
}

// ---- payments --------------------------------------------------------------

/// A payment, refund or credit movement as requested.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode)]
pub struct PaymentRequest {
    pub payment_id: String,
    pub customer_id: String,
    pub kind: PaymentKind,
    pub amount: Dec,
    pub received_on: Day,
    pub reference: String,
    /// Explicit allocations; none: oldest invoice first.
    pub allocations: Option<Vec<Allocation>>,
}

/// Records a payment. `Ok((payment, seq, false))` for a retry of the same
/// request.
pub fn record_payment(
    state: &mut LedgerState,
    request: PaymentRequest,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(Payment, u64, bool), LedgerError> {
    let digest = digest_of(&request);
    let book = state.billing();
    if let Some(existing) = book.payment(&request.payment_id) {
        if existing.request_digest == digest {
            return Ok(((*existing.payment).clone(), existing.seq, false));
        }
        return Err(LedgerError::new(
            ErrorCode::BillingIdExists,
            "payment_id",
            format!(
                "payment {} exists with other content",
                quoted(&request.payment_id)
            ),
        ));
    }
    let profile = profile_of(book, &request.customer_id)?;
    let currency = profile.currency.clone();
    let scale = scale_of(state, &currency)?;
    let amount = request.amount.0;
    if amount <= Decimal::ZERO {
        return Err(LedgerError::new(
            ErrorCode::AmountNotPositive,
            "amount",
            format!("{amount} is not positive"),
        ));
    }
    let amount_minor = to_minor(amount, scale).map_err(|e| {
        let code = match e {
            tally_core::money::AmountError::Overflow => ErrorCode::AmountOverflow,
            _ => ErrorCode::AmountScaleExceeded,
        };
        LedgerError::new(code, "amount", format!("{amount}: {e}"))
    })?;
    let credit = book.credit(&request.customer_id);
    let allocates = matches!(
        request.kind,
        PaymentKind::Payment | PaymentKind::CreditApplied
    );
    if !allocates && request.allocations.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "allocations",
            format!("a {} is not allocated to invoices", request.kind.name()),
        ));
    }
    if matches!(
        request.kind,
        PaymentKind::Refund | PaymentKind::CreditApplied
    ) && amount > credit
    {
        return Err(LedgerError::new(
            ErrorCode::CustomerCreditInsufficient,
            "amount",
            format!(
                "customer {} has {credit} of credit",
                quoted(&request.customer_id)
            ),
        ));
    }
    let allocations = if !allocates {
        Vec::new()
    } else {
        match &request.allocations {
            Some(explicit) => {
                let mut sum = Decimal::ZERO;
                let mut taken: std::collections::BTreeMap<&str, Decimal> = Default::default();
                for (index, allocation) in explicit.iter().enumerate() {
                    let field = format!("allocations[{index}]");
                    let invoice = book
                        .invoice(&allocation.invoice_number)
                        .filter(|i| i.invoice.customer_id == request.customer_id)
                        .ok_or_else(|| {
                            let mut e = invoice_not_found(&allocation.invoice_number);
                            e.field = format!("{field}.invoice_number");
                            e
                        })?;
                    let value = allocation.amount.0;
                    if value <= Decimal::ZERO || to_minor(value, scale).is_err() {
                        return Err(LedgerError::new(
                            ErrorCode::FieldInvalid,
                            format!("{field}.amount"),
                            format!("{value} is not a positive amount at the currency's scale"),
                        ));
                    }
                    let already = taken.entry(allocation.invoice_number.as_str()).or_default();
                    *already += value;
                    if *already > invoice.outstanding() {
                        return Err(LedgerError::new(
                            ErrorCode::AllocationExceedsOutstanding,
                            format!("{field}.amount"),
                            format!(
                                "invoice {} owes {}",
                                allocation.invoice_number,
                                invoice.outstanding()
                            ),
                        ));
                    }
                    sum += value;
                }
                if sum > amount {
                    return Err(LedgerError::new(
                        ErrorCode::AllocationExceedsOutstanding,
                        "allocations",
                        format!("the allocations come to {sum}, more than the {amount} paid"),
                    ));
                }
                explicit.clone()
            }
            None => {
                // Oldest first: by due date, then issue order.
                let mut open: Vec<_> = book
                    .customer_invoices(&request.customer_id)
                    .filter(|i| i.outstanding() > Decimal::ZERO)
                    .collect();
                open.sort_by_key(|i| (i.invoice.due_on, i.seq));
                let mut left = amount;
                let mut allocations = Vec::new();
                for invoice in open {
                    if left.is_zero() {
                        break;
                    }
                    let take = left.min(invoice.outstanding());
                    left -= take;
                    allocations.push(Allocation {
                        invoice_number: invoice.invoice.number.clone(),
                        amount: Dec(take),
                    });
                }
                allocations
            }
        }
    };
    let allocated: Decimal = allocations.iter().map(|a| a.amount.0).sum();
    let allocated_minor = minor(allocated, scale, "allocated")?;
    let (amount, amount_minor, to_credit) = match request.kind {
        PaymentKind::Payment => (amount, amount_minor, amount - allocated),
        PaymentKind::CreditPurchase | PaymentKind::CreditGrant => (amount, amount_minor, amount),
        PaymentKind::Refund => (amount, amount_minor, Decimal::ZERO),
        // Credit applied is what could be applied.
        PaymentKind::CreditApplied => (allocated, allocated_minor, Decimal::ZERO),
    };
    if amount_minor == 0 {
        return Err(LedgerError::new(
            ErrorCode::AllocationExceedsOutstanding,
            "allocations",
            format!(
                "customer {} owes nothing to apply credit to",
                quoted(&request.customer_id)
            ),
        ));
    }
    let mut plan = PostingPlan::default();
    match request.kind {
        PaymentKind::Payment => {
            plan.debit(Role::Cash, amount_minor);
            plan.credit(Role::Receivable, allocated_minor);
            plan.credit(Role::CustomerCredit, amount_minor - allocated_minor);
        }
        PaymentKind::CreditPurchase => {
            plan.debit(Role::Cash, amount_minor);
            plan.credit(Role::CustomerCredit, amount_minor);
        }
        PaymentKind::CreditGrant => {
            plan.debit(Role::CreditGrants, amount_minor);
            plan.credit(Role::CustomerCredit, amount_minor);
        }
        PaymentKind::Refund => {
            plan.debit(Role::CustomerCredit, amount_minor);
            plan.credit(Role::Cash, amount_minor);
        }
        PaymentKind::CreditApplied => {
            plan.debit(Role::CustomerCredit, amount_minor);
            plan.credit(Role::Receivable, amount_minor);
        }
    }
    let payment = Payment {
        payment_id: request.payment_id.clone(),
        customer_id: request.customer_id.clone(),
        kind: request.kind,
        currency: currency.clone(),
        amount: Dec(amount),
        received_on: request.received_on,
        reference: request.reference.clone(),
        allocations,
        to_credit: Dec(to_credit),
    };
    let transaction = transaction(
        state,
        format!("payment:{}", request.payment_id),
        digest,
        TransactionMode::Standard,
        plan,
        &currency,
        format!("{} {}", request.kind.name(), request.payment_id),
        ctx,
        out,
    )?;
    let seq = append(
        state,
        ctx,
        EntryBody::PaymentRecorded(Box::new(PaymentRecorded {
            payment: payment.clone(),
            transaction,
        })),
        out,
    );
    Ok((payment, seq, true))
}
