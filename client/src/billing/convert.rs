//! Conversions between the Billing messages and the billing types.
//!
//! As in `crate::rating::convert`: answers are checked, and one that breaks
//! the contract (a decimal that is not plain, a day that is not `YYYY-MM-DD`,
//! an unknown status, kind or line kind, a digest that is not 32 bytes, an
//! invoice whose outstanding amount is not what its figures leave, an ageing
//! row whose buckets do not add up to its total, a run whose summary does not
//! count its invoices) is an `InvalidResponse` naming the field. Requests
//! convert infallibly except for documents that cannot be written as JSON.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use tally_proto::v1 as pb;

use super::{
    AgeingRow, Allocation, BillingProfile, BillingRun, BillingRunRequest, ChangeTiming, CouponUse,
    CreditNote, CreditNoteLine, CreditNoteRequest, Invoice, InvoiceLine, InvoiceLineKind,
    InvoiceLineTax, InvoiceLineTier, InvoiceStatus, InvoiceTaxTotal, Payment, PaymentKind,
    PaymentRequest, ProfileSet, ReceivableAgeing, RenderFormat, RenderedInvoice, RunInvoice,
    Subscription, SubscriptionResult, SubscriptionSegment, UsageDigest,
};
use crate::error::{ClientError, Result};
use crate::metering::convert::plain_decimal;
use crate::rating::{Day, Period, TaxRule};

fn invalid(field: &str, message: impl std::fmt::Display) -> ClientError {
    ClientError::invalid_response(format!("{field}: {message}"))
}

// ---------------------------------------------------------------------------
// Requests.

/// A document as the wire carries it: JSON, decimals as strings.
pub(crate) fn document_json<T: Serialize>(document: &T, what: &str) -> Result<String> {
    serde_json::to_string(document).map_err(|error| {
        ClientError::InvalidRequest(format!("the {what} cannot be written as JSON: {error}"))
    })
}

/// The tax file's form, `{"taxes": [...]}`.
pub(crate) fn tax_table_json(rules: &[TaxRule]) -> Result<String> {
    #[derive(Serialize)]
    struct Table<'a> {
        taxes: &'a [TaxRule],
    }
    document_json(&Table { taxes: rules }, "tax table")
}

pub(crate) fn profile_to_proto(profile: &BillingProfile) -> pb::BillingProfile {
    pb::BillingProfile {
        customer_id: profile.customer_id.clone(),
        currency: profile.currency.clone(),
        country: profile.country.clone(),
        region: profile.region.clone().unwrap_or_default(),
        tax_id: profile.tax_id.clone(),
        timezone: profile.timezone.clone(),
        invoice_series: profile.invoice_series.clone(),
        payment_terms_days: profile.payment_terms_days,
    }
}

pub(crate) fn timing_to_proto(timing: ChangeTiming) -> pb::ChangeTiming {
    match timing {
        ChangeTiming::Auto => pb::ChangeTiming::Auto,
        ChangeTiming::Immediate => pb::ChangeTiming::Immediate,
        ChangeTiming::PeriodEnd => pb::ChangeTiming::PeriodEnd,
    }
}

pub(crate) fn format_to_proto(format: RenderFormat) -> pb::RenderFormat {
    match format {
        RenderFormat::Html => pb::RenderFormat::Html,
        RenderFormat::Json => pb::RenderFormat::Json,
    }
}

fn kind_to_proto(kind: PaymentKind) -> pb::PaymentKind {
    match kind {
        PaymentKind::Payment => pb::PaymentKind::Payment,
        PaymentKind::Refund => pb::PaymentKind::Refund,
        PaymentKind::CreditPurchase => pb::PaymentKind::CreditPurchase,
        PaymentKind::CreditGrant => pb::PaymentKind::CreditGrant,
        PaymentKind::CreditApplied => pb::PaymentKind::CreditApplied,
    }
}

pub(crate) fn credit_note_request(request: &CreditNoteRequest) -> pb::IssueCreditNoteRequest {
    pb::IssueCreditNoteRequest {
        credit_note_id: request.credit_note_id.clone(),
        invoice_number: request.invoice_number.clone(),
        reason: request.reason.clone(),
        lines: request
            .lines
            .iter()
            .map(|line| pb::CreditLine {
                line: line.line,
                amount: line.amount.to_string(),
            })
            .collect(),
    }
}

pub(crate) fn payment_request(request: &PaymentRequest) -> pb::RecordPaymentRequest {
    let allocations = request.allocations.as_deref().unwrap_or_default();
    pb::RecordPaymentRequest {
        payment_id: request.payment_id.clone(),
        customer_id: request.customer_id.clone(),
        kind: kind_to_proto(request.kind) as i32,
        amount: request.amount.to_string(),
        received_on: request.received_on.to_string(),
        reference: request.reference.clone(),
        allocations: allocations
            .iter()
            .map(|allocation| pb::Allocation {
                invoice_number: allocation.invoice_number.clone(),
                amount: allocation.amount.to_string(),
            })
            .collect(),
        unallocated: request.allocations.as_ref().is_some_and(Vec::is_empty),
    }
}

// ---------------------------------------------------------------------------
// Answers: fields.

pub(crate) fn decimal(field: &str, text: &str) -> Result<Decimal> {
    plain_decimal(field, text)
}

fn optional_decimal(field: &str, text: &str) -> Result<Option<Decimal>> {
    if text.is_empty() {
        return Ok(None);
    }
    plain_decimal(field, text).map(Some)
}

fn day(field: &str, text: &str) -> Result<Day> {
    Day::from_str(text).map_err(|error| invalid(field, error))
}

/// An invoice's `period_start` and billing date (`period_end`): the date is
/// on or after the start of the period it closes (the same day when it
/// closes none).
fn invoice_days(field: &str, start: &str, end: &str) -> Result<(Day, Day)> {
    let start = day(&format!("{field}.period_start"), start)?;
    let end = day(&format!("{field}.period_end"), end)?;
    if end < start {
        return Err(invalid(
            &format!("{field}.period_end"),
            format!("{end} is before {start}"),
        ));
    }
    Ok((start, end))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

pub(crate) fn check_same(field: &str, expected: &str, found: &str) -> Result<()> {
    if expected != found {
        return Err(invalid(
            field,
            format!("{found:?}, but {expected:?} was asked for"),
        ));
    }
    Ok(())
}

/// Converts each element of a list, naming it `field[i]` in errors.
fn list<T, U>(
    field: &str,
    items: Vec<T>,
    convert: impl Fn(&str, T) -> Result<U>,
) -> Result<Vec<U>> {
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| convert(&format!("{field}[{position}]"), item))
        .collect()
}

fn status(field: &str, value: i32) -> Result<InvoiceStatus> {
    match pb::InvoiceStatus::try_from(value) {
        Ok(pb::InvoiceStatus::Paid) => Ok(InvoiceStatus::Paid),
        Ok(pb::InvoiceStatus::PartiallyPaid) => Ok(InvoiceStatus::PartiallyPaid),
        Ok(pb::InvoiceStatus::Unpaid) => Ok(InvoiceStatus::Unpaid),
        Ok(pb::InvoiceStatus::Void) => Ok(InvoiceStatus::Void),
        _ => Err(invalid(field, format!("unknown invoice status {value}"))),
    }
}

fn kind(field: &str, value: i32) -> Result<PaymentKind> {
    match pb::PaymentKind::try_from(value) {
        Ok(pb::PaymentKind::Payment) => Ok(PaymentKind::Payment),
        Ok(pb::PaymentKind::Refund) => Ok(PaymentKind::Refund),
        Ok(pb::PaymentKind::CreditPurchase) => Ok(PaymentKind::CreditPurchase),
        Ok(pb::PaymentKind::CreditGrant) => Ok(PaymentKind::CreditGrant),
        Ok(pb::PaymentKind::CreditApplied) => Ok(PaymentKind::CreditApplied),
        _ => Err(invalid(field, format!("unknown payment kind {value}"))),
    }
}

fn format(field: &str, value: i32) -> Result<RenderFormat> {
    match pb::RenderFormat::try_from(value) {
        Ok(pb::RenderFormat::Html) => Ok(RenderFormat::Html),
        Ok(pb::RenderFormat::Json) => Ok(RenderFormat::Json),
        _ => Err(invalid(field, format!("unknown render format {value}"))),
    }
}

// ---------------------------------------------------------------------------
// Answers: profiles and subscriptions.

pub(crate) fn subscription(answer: pb::Subscription) -> Result<Subscription> {
    let optional_day = |field: &str, text: &str| -> Result<Option<Day>> {
        if text.is_empty() {
            Ok(None)
        } else {
            day(field, text).map(Some)
        }
    };
    Ok(Subscription {
        segments: list("segments", answer.segments, |field, segment| {
            Ok(SubscriptionSegment {
                from: day(&format!("{field}.from"), &segment.from)?,
                plan_code: segment.plan_code,
                plan_version: segment.plan_version,
            })
        })?,
        end: optional_day("end", &answer.end)?,
        invoiced_through: optional_day("invoiced_through", &answer.invoiced_through)?,
        subscription_id: answer.subscription_id,
        customer_id: answer.customer_id,
    })
}

pub(crate) fn profile(answer: pb::BillingProfile) -> BillingProfile {
    BillingProfile {
        customer_id: answer.customer_id,
        currency: answer.currency,
        country: answer.country,
        region: non_empty(answer.region),
        tax_id: answer.tax_id,
        timezone: answer.timezone,
        invoice_series: answer.invoice_series,
        payment_terms_days: answer.payment_terms_days,
    }
}

pub(crate) fn profile_set(answer: pb::SetBillingProfileResponse) -> Result<ProfileSet> {
    let profile = answer
        .profile
        .map(profile)
        .ok_or_else(|| invalid("profile", "missing"))?;
    Ok(ProfileSet {
        profile,
        seq: answer.seq,
        created: answer.created,
    })
}

pub(crate) fn subscription_result(
    subscription_id: &str,
    answer: pb::SubscriptionChangeResult,
) -> Result<SubscriptionResult> {
    check_same("subscription_id", subscription_id, &answer.subscription_id)?;
    Ok(SubscriptionResult {
        effective: day("effective", &answer.effective)?,
        subscription_id: answer.subscription_id,
        seq: answer.seq,
        created: answer.created,
    })
}

// ---------------------------------------------------------------------------
// Answers: runs.

pub(crate) fn run_invoice(field: &str, answer: pb::RunInvoice, draft: bool) -> Result<RunInvoice> {
    let at = |name: &str| format!("{field}.{name}");
    let number = non_empty(answer.number);
    if number.is_none() != draft {
        return Err(invalid(
            &at("number"),
            if draft {
                "a draft has no number"
            } else {
                "an issued invoice has a number"
            },
        ));
    }
    let (period_start, period_end) = invoice_days(field, &answer.period_start, &answer.period_end)?;
    Ok(RunInvoice {
        number,
        period_start,
        period_end,
        subtotal: decimal(&at("subtotal"), &answer.subtotal)?,
        discount: decimal(&at("discount"), &answer.discount)?,
        tax: decimal(&at("tax"), &answer.tax)?,
        total: decimal(&at("total"), &answer.total)?,
        amount_due: decimal(&at("amount_due"), &answer.amount_due)?,
        created: answer.created,
        line_count: answer.line_count,
        customer_id: answer.customer_id,
        subscription_id: answer.subscription_id,
        currency: answer.currency,
    })
}

pub(crate) fn billing_run(
    summary: pb::RunSummary,
    invoices: Vec<RunInvoice>,
    request: &BillingRunRequest,
) -> Result<BillingRun> {
    let created = invoices.iter().filter(|invoice| invoice.created).count() as u64;
    if summary.invoices != invoices.len() as u64 || summary.created != created {
        return Err(invalid(
            "summary",
            format!(
                "{} invoices of which {} created, but {} came of which {created} created",
                summary.invoices,
                summary.created,
                invoices.len()
            ),
        ));
    }
    let period = Period {
        start: day("summary.from", &summary.from)?,
        end: day("summary.to", &summary.to)?,
    };
    if period != request.period || summary.draft != request.draft {
        return Err(invalid(
            "summary",
            format!(
                "a run of {} to {} (draft {}), but {} to {} (draft {}) was asked for",
                period.start,
                period.end,
                summary.draft,
                request.period.start,
                request.period.end,
                request.draft
            ),
        ));
    }
    Ok(BillingRun {
        invoices,
        created,
        draft: summary.draft,
        period,
    })
}

// ---------------------------------------------------------------------------
// Answers: invoices and credit notes.

fn tier(field: &str, tier: pb::InvoiceLineTier) -> Result<InvoiceLineTier> {
    let at = |name: &str| format!("{field}.{name}");
    Ok(InvoiceLineTier {
        from: decimal(&at("from"), &tier.from)?,
        up_to: optional_decimal(&at("up_to"), &tier.up_to)?,
        quantity: decimal(&at("quantity"), &tier.quantity)?,
        unit_price: decimal(&at("unit_price"), &tier.unit_price)?,
        flat_fee: decimal(&at("flat_fee"), &tier.flat_fee)?,
        amount: decimal(&at("amount"), &tier.amount)?,
    })
}

fn line_tax(field: &str, tax: pb::InvoiceLineTax) -> Result<InvoiceLineTax> {
    Ok(InvoiceLineTax {
        rate: decimal(&format!("{field}.rate"), &tax.rate)?,
        amount: decimal(&format!("{field}.amount"), &tax.amount)?,
        code: tax.code,
    })
}

fn usage(field: &str, usage: pb::UsageDigest) -> Result<UsageDigest> {
    let digest: [u8; 32] = usage.digest.as_slice().try_into().map_err(|_| {
        invalid(
            &format!("{field}.digest"),
            format!("{} bytes, not 32", usage.digest.len()),
        )
    })?;
    Ok(UsageDigest {
        events: usage.events,
        digest,
        from: usage.from,
        to: usage.to,
    })
}

fn line(field: &str, line: pb::InvoiceLine) -> Result<InvoiceLine> {
    let at = |name: &str| format!("{field}.{name}");
    let kind = InvoiceLineKind::from_name(&line.kind)
        .ok_or_else(|| invalid(&at("kind"), format!("unknown line kind {:?}", line.kind)))?;
    Ok(InvoiceLine {
        kind,
        start: day(&at("start"), &line.start)?,
        end: day(&at("end"), &line.end)?,
        quantity: decimal(&at("quantity"), &line.quantity)?,
        free_units: decimal(&at("free_units"), &line.free_units)?,
        billable_quantity: decimal(&at("billable_quantity"), &line.billable_quantity)?,
        tiers: list(&at("tiers"), line.tiers, tier)?,
        amount: decimal(&at("amount"), &line.amount)?,
        discount: decimal(&at("discount"), &line.discount)?,
        taxes: list(&at("taxes"), line.taxes, line_tax)?,
        net: decimal(&at("net"), &line.net)?,
        total: decimal(&at("total"), &line.total)?,
        usage: line
            .usage
            .map(|value| usage(&at("usage"), value))
            .transpose()?,
        plan_code: line.plan_code,
        plan_version: line.plan_version,
        charge_code: line.charge_code,
        description: line.description,
        explanation: line.explanation,
    })
}

pub(crate) fn invoice(field: &str, answer: pb::Invoice) -> Result<Invoice> {
    let at = |name: &str| format!("{field}.{name}");
    let (period_start, period_end) = invoice_days(field, &answer.period_start, &answer.period_end)?;
    let invoice = Invoice {
        period_start,
        period_end,
        issued_on: day(&at("issued_on"), &answer.issued_on)?,
        due_on: day(&at("due_on"), &answer.due_on)?,
        lines: list(&at("lines"), answer.lines, line)?,
        coupons: list(&at("coupons"), answer.coupons, |field, coupon| {
            Ok(CouponUse {
                amount: decimal(&format!("{field}.amount"), &coupon.amount)?,
                grant_id: coupon.grant_id,
                code: coupon.code,
            })
        })?,
        taxes: list(&at("taxes"), answer.taxes, |field, tax| {
            Ok(InvoiceTaxTotal {
                rate: decimal(&format!("{field}.rate"), &tax.rate)?,
                base: decimal(&format!("{field}.base"), &tax.base)?,
                amount: decimal(&format!("{field}.amount"), &tax.amount)?,
                code: tax.code,
            })
        })?,
        subtotal: decimal(&at("subtotal"), &answer.subtotal)?,
        discount: decimal(&at("discount"), &answer.discount)?,
        tax: decimal(&at("tax"), &answer.tax)?,
        total: decimal(&at("total"), &answer.total)?,
        credit_applied: decimal(&at("credit_applied"), &answer.credit_applied)?,
        amount_due: decimal(&at("amount_due"), &answer.amount_due)?,
        status: status(&at("status"), answer.status)?,
        paid: decimal(&at("paid"), &answer.paid)?,
        credited: decimal(&at("credited"), &answer.credited)?,
        outstanding: decimal(&at("outstanding"), &answer.outstanding)?,
        number: answer.number,
        series: answer.series,
        year: answer.year,
        sequence: answer.sequence,
        customer_id: answer.customer_id,
        subscription_id: answer.subscription_id,
        currency: answer.currency,
        usage_from: answer.usage_from,
        usage_to: answer.usage_to,
        usage_journal_length: answer.usage_journal_length,
        country: answer.country,
        region: non_empty(answer.region),
        tax_id: answer.tax_id,
        credit_notes: answer.credit_notes,
        payments: answer.payments,
        void_reason: non_empty(answer.void_reason),
        seq: answer.seq,
    };
    // What it still owes is what its figures leave; a void one owes nothing.
    let expected = if invoice.status == InvoiceStatus::Void {
        Some(Decimal::ZERO)
    } else {
        invoice
            .amount_due
            .checked_sub(invoice.paid)
            .and_then(|left| left.checked_sub(invoice.credited))
    };
    if expected != Some(invoice.outstanding) {
        return Err(invalid(
            &at("outstanding"),
            format!(
                "{}, but amount due {} less paid {} and credited {} is not that",
                invoice.outstanding, invoice.amount_due, invoice.paid, invoice.credited
            ),
        ));
    }
    Ok(invoice)
}

pub(crate) fn rendered(answer: pb::RenderedInvoice) -> Result<RenderedInvoice> {
    Ok(RenderedInvoice {
        format: format("format", answer.format)?,
        invoice_number: answer.invoice_number,
        content_type: answer.content_type,
        content: answer.content,
    })
}

pub(crate) fn credit_note(answer: pb::CreditNote) -> Result<CreditNote> {
    let total = decimal("total", &answer.total)?;
    let to_invoice = decimal("to_invoice", &answer.to_invoice)?;
    let to_credit = decimal("to_credit", &answer.to_credit)?;
    if to_invoice.checked_add(to_credit) != Some(total) {
        return Err(invalid(
            "to_credit",
            format!(
                "{to_invoice} to the invoice and {to_credit} to credit are not the total {total}"
            ),
        ));
    }
    Ok(CreditNote {
        issued_on: day("issued_on", &answer.issued_on)?,
        lines: list("lines", answer.lines, |field, line| {
            Ok(CreditNoteLine {
                line: line.line,
                net: decimal(&format!("{field}.net"), &line.net)?,
                taxes: list(&format!("{field}.taxes"), line.taxes, line_tax)?,
                total: decimal(&format!("{field}.total"), &line.total)?,
            })
        })?,
        total,
        to_invoice,
        to_credit,
        number: answer.number,
        series: answer.series,
        year: answer.year,
        sequence: answer.sequence,
        invoice_number: answer.invoice_number,
        customer_id: answer.customer_id,
        currency: answer.currency,
        reason: answer.reason,
        created: answer.created,
    })
}

// ---------------------------------------------------------------------------
// Answers: payments and ageing.

pub(crate) fn payment(answer: pb::Payment) -> Result<Payment> {
    Ok(Payment {
        kind: kind("kind", answer.kind)?,
        amount: decimal("amount", &answer.amount)?,
        received_on: day("received_on", &answer.received_on)?,
        allocations: list("allocations", answer.allocations, |field, allocation| {
            Ok(Allocation {
                amount: decimal(&format!("{field}.amount"), &allocation.amount)?,
                invoice_number: allocation.invoice_number,
            })
        })?,
        to_credit: decimal("to_credit", &answer.to_credit)?,
        payment_id: answer.payment_id,
        customer_id: answer.customer_id,
        currency: answer.currency,
        reference: answer.reference,
        created: answer.created,
    })
}

fn ageing_row(field: &str, row: pb::AgeingRow) -> Result<AgeingRow> {
    let at = |name: &str| format!("{field}.{name}");
    let buckets = [
        decimal(&at("current"), &row.current)?,
        decimal(&at("days_1_30"), &row.days_1_30)?,
        decimal(&at("days_31_60"), &row.days_31_60)?,
        decimal(&at("days_61_90"), &row.days_61_90)?,
        decimal(&at("days_over_90"), &row.days_over_90)?,
    ];
    let total = decimal(&at("total"), &row.total)?;
    let sum = buckets
        .iter()
        .try_fold(Decimal::ZERO, |sum, value| sum.checked_add(*value));
    if sum != Some(total) {
        return Err(invalid(
            &at("total"),
            format!("{total}, but the buckets add up to something else"),
        ));
    }
    Ok(AgeingRow {
        customer_id: row.customer_id,
        currency: row.currency,
        buckets,
        total,
    })
}

pub(crate) fn ageing(answer: pb::ReceivableAgeingResponse) -> Result<ReceivableAgeing> {
    Ok(ReceivableAgeing {
        as_of: day("as_of", &answer.as_of)?,
        rows: list("rows", answer.rows, ageing_row)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn wire_invoice() -> pb::Invoice {
        pb::Invoice {
            number: "INV-2026-000001".into(),
            series: "INV".into(),
            year: 2026,
            sequence: 1,
            customer_id: "acme".into(),
            subscription_id: "sub-acme".into(),
            currency: "USD".into(),
            period_start: "2026-04-01".into(),
            period_end: "2026-05-01".into(),
            country: "US".into(),
            issued_on: "2026-05-02".into(),
            due_on: "2026-06-01".into(),
            lines: vec![pb::InvoiceLine {
                kind: "charge".into(),
                plan_code: "basic".into(),
                plan_version: 1,
                charge_code: "api".into(),
                start: "2026-04-01".into(),
                end: "2026-05-01".into(),
                quantity: "6000".into(),
                free_units: "1000".into(),
                billable_quantity: "5000".into(),
                amount: "50.00".into(),
                discount: "0".into(),
                net: "50.00".into(),
                total: "50.00".into(),
                usage: Some(pb::UsageDigest {
                    events: 2,
                    digest: vec![7; 32],
                    from: 0,
                    to: 1,
                }),
                ..Default::default()
            }],
            subtotal: "70.00".into(),
            discount: "0".into(),
            tax: "0".into(),
            total: "70.00".into(),
            credit_applied: "0".into(),
            amount_due: "70.00".into(),
            status: pb::InvoiceStatus::PartiallyPaid as i32,
            paid: "50.00".into(),
            credited: "5.00".into(),
            outstanding: "15.00".into(),
            seq: 40,
            ..Default::default()
        }
    }

    #[test]
    fn invoices_parse_exactly_and_must_add_up() {
        // Goal: amounts keep their scale, days and digests parse, empty region
        // and void reason are none; an outstanding amount the figures do not
        // leave, an unknown status or a short digest is refused with its path.
        let invoice = invoice("invoice", wire_invoice()).unwrap();
        assert_eq!(invoice.outstanding, dec!(15.00));
        assert_eq!(invoice.status, InvoiceStatus::PartiallyPaid);
        assert_eq!(invoice.lines[0].usage.unwrap().events, 2);
        assert_eq!(invoice.lines[0].kind, InvoiceLineKind::Charge);
        assert_eq!(invoice.period_end.to_string(), "2026-05-01");
        assert_eq!((invoice.region, invoice.void_reason), (None, None));

        let mut wrong = wire_invoice();
        wrong.outstanding = "20.00".into();
        let error = super::invoice("invoice", wrong).unwrap_err().to_string();
        assert!(error.contains("invoice.outstanding"), "{error}");
        let mut void = wire_invoice();
        void.status = pb::InvoiceStatus::Void as i32;
        assert!(super::invoice("invoice", void.clone()).is_err());
        void.outstanding = "0".into();
        assert!(super::invoice("invoice", void).is_ok());
        let mut bad = wire_invoice();
        bad.status = 0;
        assert!(super::invoice("invoice", bad)
            .unwrap_err()
            .to_string()
            .contains("invoice.status"));
        let mut bad = wire_invoice();
        bad.lines[0].usage = Some(pb::UsageDigest {
            events: 1,
            digest: vec![1; 31],
            from: 0,
            to: 1,
        });
        assert!(super::invoice("invoice", bad)
            .unwrap_err()
            .to_string()
            .contains("invoice.lines[0].usage.digest"));
        let mut bad = wire_invoice();
        bad.lines[0].amount = "50,00".into();
        assert!(super::invoice("invoice", bad)
            .unwrap_err()
            .to_string()
            .contains("invoice.lines[0].amount"));
    }

    #[test]
    fn payments_travel_with_their_allocations() {
        // Goal: no allocations means oldest first, `unallocated()` sends the
        // flag, explicit allocations are sent as given.
        let day: Day = "2026-05-10".parse().unwrap();
        let oldest = PaymentRequest::new("p", "acme", PaymentKind::Payment, dec!(50.00), day);
        let wire = payment_request(&oldest);
        assert!(wire.allocations.is_empty() && !wire.unallocated);
        assert_eq!(wire.amount, "50.00");
        assert_eq!(wire.kind, pb::PaymentKind::Payment as i32);
        let whole = payment_request(&oldest.clone().unallocated());
        assert!(whole.unallocated);
        let explicit = payment_request(&oldest.allocate("INV-1", dec!(20)).reference("wire 1"));
        assert_eq!(explicit.allocations[0].invoice_number, "INV-1");
        assert!(!explicit.unallocated);
        assert_eq!(explicit.received_on, "2026-05-10");

        let answer = pb::Payment {
            payment_id: "p".into(),
            customer_id: "acme".into(),
            kind: pb::PaymentKind::CreditApplied as i32,
            currency: "USD".into(),
            amount: "20".into(),
            received_on: "2026-05-10".into(),
            reference: String::new(),
            allocations: vec![pb::Allocation {
                invoice_number: "INV-1".into(),
                amount: "20".into(),
            }],
            to_credit: "0".into(),
            created: true,
        };
        let parsed = payment(answer.clone()).unwrap();
        assert_eq!(parsed.kind, PaymentKind::CreditApplied);
        let mut bad = answer;
        bad.kind = 0;
        assert!(payment(bad).is_err());
    }

    #[test]
    fn runs_and_ageing_must_count_and_add_up() {
        // Goal: a summary that does not count the invoices, a draft with a
        // number, or an ageing row whose buckets do not make its total is a
        // broken answer.
        let request = BillingRunRequest::new(Period {
            start: "2026-04-01".parse().unwrap(),
            end: "2026-05-01".parse().unwrap(),
        });
        let wire = pb::RunInvoice {
            number: "INV-2026-000001".into(),
            customer_id: "acme".into(),
            subscription_id: "sub".into(),
            currency: "USD".into(),
            period_start: "2026-04-01".into(),
            period_end: "2026-05-01".into(),
            subtotal: "70.00".into(),
            discount: "0".into(),
            tax: "0".into(),
            total: "70.00".into(),
            amount_due: "70.00".into(),
            created: true,
            line_count: 2,
        };
        let issued = run_invoice("invoices[0]", wire.clone(), false).unwrap();
        assert!(run_invoice("invoices[0]", wire.clone(), true).is_err());
        // A start-date invoice closes no period: its days are the one date.
        let mut start = wire.clone();
        start.period_start = "2026-05-01".into();
        assert!(run_invoice("invoices[0]", start.clone(), false).is_ok());
        start.period_end = "2026-04-30".into();
        let error = run_invoice("invoices[0]", start, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("invoices[0].period_end"), "{error}");
        let summary = |invoices, created| pb::RunSummary {
            invoices,
            created,
            draft: false,
            from: "2026-04-01".into(),
            to: "2026-05-01".into(),
        };
        let run = billing_run(summary(1, 1), vec![issued.clone()], &request).unwrap();
        assert_eq!(run.created, 1);
        assert!(billing_run(summary(2, 1), vec![issued.clone()], &request).is_err());
        assert!(billing_run(summary(1, 0), vec![issued], &request).is_err());

        let row = pb::AgeingRow {
            customer_id: "acme".into(),
            currency: "USD".into(),
            current: "0".into(),
            days_1_30: "15.00".into(),
            days_31_60: "0".into(),
            days_61_90: "0".into(),
            days_over_90: "0".into(),
            total: "15.00".into(),
        };
        let answer = pb::ReceivableAgeingResponse {
            as_of: "2026-06-11".into(),
            rows: vec![row.clone()],
        };
        assert_eq!(ageing(answer).unwrap().rows[0].buckets[1], dec!(15.00));
        let mut wrong = row;
        wrong.total = "16.00".into();
        let error = ageing(pb::ReceivableAgeingResponse {
            as_of: "2026-06-11".into(),
            rows: vec![wrong],
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("rows[0].total"), "{error}");
    }
}
