//! The `tally.v1.Billing` gRPC service: profiles, subscriptions, coupons,
//! tax tables, billing runs, invoices, credit notes, payments and ageing.
//!
//! Conversion only, as in `rating_service`: proto messages become the
//! engine's plain requests (days parsed, decimals parsed, enums mapped, an
//! unknown enum number refused with its field, JSON documents read strictly
//! and checked with the ledger's own rules), and results become proto
//! messages (decimals as their text, days as `YYYY-MM-DD`). Every check that
//! needs the ledger's state is the engine's (`billing::operations` and
//! `billing::record`), with its field path; where the engine names a field
//! differently from the request (`effective` for `on`, a profile's fields
//! inside `profile`), the path is rewritten to the request's.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tally_core::billing::{
    Allocation, BillingProfile, CreditNote, Invoice, InvoiceLine, Payment, PaymentKind,
};
use tally_core::calendar::Day;
use tally_core::decimal::Dec;
use tally_core::error_code::ErrorCode;
use tally_core::plan::{validate_tax_rules, Coupon, TaxRule};
use tally_proto::v1 as pb;
use tally_proto::v1::billing_server::Billing;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::{internal, status};
use crate::billing::book::InvoiceStatus;
use crate::billing::operations::{AgeingRow, ChangeTiming, InvoiceView, RunInvoice};
use crate::billing::record::{CreditNoteRequest, PaymentRequest};
use crate::engine::Engine;
use crate::error::{Error, LedgerError};
use crate::ledger::limits::{PAGE_SIZE_MAX, SIMULATION_CUSTOMERS_MAX};
use crate::ledger::validate;

/// The longest coupon or tax document.
pub const DOCUMENT_BYTES_MAX: usize = crate::rating::catalog::PLAN_JSON_BYTES_MAX;
/// Customers named by one billing run.
pub const RUN_CUSTOMERS_MAX: usize = SIMULATION_CUSTOMERS_MAX;
/// The widest billing run, in days: (from, to] holds every period end of a
/// yearly plan twice over. A longer backlog is billed in several runs.
pub const RUN_DAYS_MAX: i64 = 731;
/// Lines of one credit note, allocations of one payment.
pub const CREDIT_LINES_MAX: usize = PAGE_SIZE_MAX;
pub const ALLOCATIONS_MAX: usize = PAGE_SIZE_MAX;
/// Events buffered per billing run stream before the run waits for the client.
const RUN_STREAM_BUFFER_MAX: usize = 64;

pub struct BillingService {
    engine: Arc<Engine>,
}

impl BillingService {
    pub fn new(engine: Arc<Engine>) -> Self {
        BillingService { engine }
    }

    /// A read that may walk every invoice: off the runtime's threads.
    async fn read<T, F>(&self, read: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> crate::error::Result<T> + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || read(&engine))
            .await
            .map_err(|error| internal("a billing read failed", error))?
            .map_err(status)
    }
}

// ---------------------------------------------------------------------------
// Requests: fields.

fn field_error(code: ErrorCode, field: &str, message: impl Into<String>) -> LedgerError {
    LedgerError::new(code, field, message)
}

fn unknown(field: &str, what: &str, number: i32) -> LedgerError {
    field_error(
        ErrorCode::FieldInvalid,
        field,
        format!("unknown {what} {number}"),
    )
}

/// A required day, `YYYY-MM-DD`.
fn day(text: &str, field: &str) -> Result<Day, LedgerError> {
    if text.is_empty() {
        return Err(field_error(
            ErrorCode::FieldRequired,
            field,
            format!("{field} is required (YYYY-MM-DD)"),
        ));
    }
    text.parse::<Day>()
        .map_err(|error| field_error(ErrorCode::FieldInvalid, field, error.to_string()))
}

/// `YYYY-MM`: the month's days, `[YYYY-MM-01, the next month's first day)`.
fn month(text: &str, field: &str) -> Result<(Day, Day), LedgerError> {
    let invalid = || {
        field_error(
            ErrorCode::FieldInvalid,
            field,
            format!(
                "{} is not a month of the form YYYY-MM",
                tally_core::meter::quoted(text)
            ),
        )
    };
    let (year, month) = text.split_once('-').ok_or_else(invalid)?;
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(year, 4) || !digits(month, 2) {
        return Err(invalid());
    }
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let month: u8 = month.parse().map_err(|_| invalid())?;
    let start = Day::from_ymd(year, month, 1).ok_or_else(invalid)?;
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = Day::from_ymd(next_year, next_month, 1).ok_or_else(invalid)?;
    Ok((start, end))
}

/// A positive-or-not decimal amount (the engine judges its sign and scale).
fn amount(text: &str, field: &str) -> Result<Decimal, LedgerError> {
    super::convert::amount(text, field)
}

/// A free text (a reason, a reference): at most the description limit, no
/// control characters.
fn text(value: &str, field: &str) -> Result<(), LedgerError> {
    validate::text(field, value)?;
    if value.chars().any(char::is_control) {
        return Err(field_error(
            ErrorCode::FieldInvalid,
            field,
            format!("{field} contains a control character"),
        ));
    }
    Ok(())
}

/// A short code the engine looks up (a plan code, an invoice number): an id's
/// shape, so that a megabyte of junk is refused before any lookup.
fn id(value: &str, field: &str) -> Result<(), LedgerError> {
    validate::id(field, value)
}

/// The engine's error, with its field moved to where the request has it.
fn at(prefix: &str) -> impl Fn(Error) -> Error + '_ {
    move |error| match error {
        Error::Ledger(mut error) if !error.field.is_empty() => {
            error.field = format!("{prefix}.{}", error.field);
            Error::Ledger(error)
        }
        other => other,
    }
}

fn renamed<'a>(from: &'a str, to: &'a str) -> impl Fn(Error) -> Error + 'a {
    move |error| match error {
        Error::Ledger(mut error) if error.field == from => {
            error.field = to.to_string();
            Error::Ledger(error)
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Requests: JSON documents.

/// A serde error at its path in the document, named `field.path`; a document
/// that is not JSON at all is the request field's error. As in
/// `rating::catalog::parse_plan`: serde reports a missing field at its
/// parent, so its name is taken from the message.
fn json_error(error: &serde_path_to_error::Error<serde_json::Error>, field: &str) -> LedgerError {
    let message = error.inner().to_string();
    if !error.inner().is_data() {
        return field_error(ErrorCode::FieldInvalid, field, message);
    }
    let path = error.path().to_string();
    let parent = match path.as_str() {
        "." | "?" => field.to_string(),
        path => format!("{field}.{path}"),
    };
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return field_error(
            ErrorCode::FieldRequired,
            &format!("{parent}.{missing}"),
            message,
        );
    }
    field_error(ErrorCode::FieldInvalid, &parent, message)
}

/// Reads a JSON object document strictly (unknown keys refused by the types).
fn document<T: DeserializeOwned>(json: &str, field: &str, what: &str) -> Result<T, LedgerError> {
    if json.trim().is_empty() {
        return Err(field_error(
            ErrorCode::FieldRequired,
            field,
            format!("the {what} document is required"),
        ));
    }
    if json.len() > DOCUMENT_BYTES_MAX {
        return Err(field_error(
            ErrorCode::FieldTooLong,
            field,
            format!(
                "the {what} document is {} bytes; the limit is {DOCUMENT_BYTES_MAX}",
                json.len()
            ),
        ));
    }
    // serde also reads a struct from an array of its fields, where unknown
    // fields cannot be refused: a document is an object.
    if !json.trim_start().starts_with('{') {
        return Err(field_error(
            ErrorCode::FieldInvalid,
            field,
            format!("the {what} document is a JSON object"),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| json_error(&error, field))?;
    deserializer
        .end()
        .map_err(|error| field_error(ErrorCode::FieldInvalid, field, error.to_string()))?;
    Ok(value)
}

/// A coupon document, checked with the ledger's rules.
pub fn coupon(json: &str, field: &str) -> Result<Coupon, LedgerError> {
    let coupon: Coupon = document(json, field, "coupon")?;
    coupon.validate(field).map_err(crate::rating::plan_error)?;
    Ok(coupon)
}

/// The tax file's form: `{"taxes": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxTable {
    taxes: Vec<TaxRule>,
}

/// A tax table document, its rules checked together.
pub fn tax_rules(json: &str, field: &str) -> Result<Vec<TaxRule>, LedgerError> {
    let table: TaxTable = document(json, field, "tax table")?;
    let rules: Vec<&TaxRule> = table.taxes.iter().collect();
    validate_tax_rules(&rules, &format!("{field}.taxes")).map_err(crate::rating::plan_error)?;
    Ok(table.taxes)
}

// ---------------------------------------------------------------------------
// Requests: messages.

fn profile_from_proto(profile: pb::BillingProfile) -> BillingProfile {
    BillingProfile {
        customer_id: profile.customer_id,
        currency: profile.currency,
        country: profile.country,
        region: (!profile.region.is_empty()).then_some(profile.region),
        tax_id: profile.tax_id,
        // An IANA zone; empty means UTC.
        timezone: if profile.timezone.is_empty() {
            "UTC".to_string()
        } else {
            profile.timezone
        },
        invoice_series: profile.invoice_series,
        payment_terms_days: profile.payment_terms_days,
    }
}

fn change_timing(number: i32, field: &str) -> Result<ChangeTiming, LedgerError> {
    use pb::ChangeTiming as P;
    match P::try_from(number) {
        Ok(P::Unspecified | P::Auto) => Ok(ChangeTiming::Auto),
        Ok(P::Immediate) => Ok(ChangeTiming::Immediate),
        Ok(P::PeriodEnd) => Ok(ChangeTiming::PeriodEnd),
        Err(_) => Err(unknown(field, "change timing", number)),
    }
}

fn payment_kind(number: i32, field: &str) -> Result<PaymentKind, LedgerError> {
    use pb::PaymentKind as P;
    match P::try_from(number) {
        Ok(P::Unspecified) => Err(field_error(
            ErrorCode::FieldRequired,
            field,
            "the kind is required: payment, refund, credit_purchase, credit_grant or credit_applied",
        )),
        Ok(P::Payment) => Ok(PaymentKind::Payment),
        Ok(P::Refund) => Ok(PaymentKind::Refund),
        Ok(P::CreditPurchase) => Ok(PaymentKind::CreditPurchase),
        Ok(P::CreditGrant) => Ok(PaymentKind::CreditGrant),
        Ok(P::CreditApplied) => Ok(PaymentKind::CreditApplied),
        Err(_) => Err(unknown(field, "payment kind", number)),
    }
}

fn payment_kind_to_proto(kind: PaymentKind) -> pb::PaymentKind {
    match kind {
        PaymentKind::Payment => pb::PaymentKind::Payment,
        PaymentKind::Refund => pb::PaymentKind::Refund,
        PaymentKind::CreditPurchase => pb::PaymentKind::CreditPurchase,
        PaymentKind::CreditGrant => pb::PaymentKind::CreditGrant,
        PaymentKind::CreditApplied => pb::PaymentKind::CreditApplied,
    }
}

/// A billing run's customers and days, checked.
struct RunRequest {
    customers: Option<Vec<String>>,
    from: Day,
    to: Day,
    draft: bool,
}

fn run_request(request: pb::RunBillingRequest) -> Result<RunRequest, LedgerError> {
    if request.customers.len() > RUN_CUSTOMERS_MAX {
        return Err(field_error(
            ErrorCode::BatchTooLarge,
            "customers",
            format!(
                "{} customers; a run names at most {RUN_CUSTOMERS_MAX} (none: every customer)",
                request.customers.len()
            ),
        ));
    }
    for (index, customer) in request.customers.iter().enumerate() {
        id(customer, &format!("customers[{index}]"))?;
    }
    let (from, to) = match (
        request.period.is_empty(),
        request.from.is_empty() && request.to.is_empty(),
    ) {
        (false, true) => month(&request.period, "period")?,
        (false, false) => {
            return Err(field_error(
                ErrorCode::FieldInvalid,
                "period",
                "give a period (YYYY-MM) or from and to, not both",
            ))
        }
        (true, _) => (day(&request.from, "from")?, day(&request.to, "to")?),
    };
    if from >= to {
        return Err(field_error(
            ErrorCode::PeriodInvalid,
            "to",
            format!("[{from}, {to}) is empty: to must be after from"),
        ));
    }
    if from.days_until(to) > RUN_DAYS_MAX {
        return Err(field_error(
            ErrorCode::PeriodInvalid,
            "to",
            format!(
                "[{from}, {to}) is {} days; a run covers at most {RUN_DAYS_MAX}",
                from.days_until(to)
            ),
        ));
    }
    Ok(RunRequest {
        customers: (!request.customers.is_empty()).then_some(request.customers),
        from,
        to,
        draft: request.draft,
    })
}

fn credit_note_request(
    request: pb::IssueCreditNoteRequest,
) -> Result<CreditNoteRequest, LedgerError> {
    id(&request.credit_note_id, "credit_note_id")?;
    id(&request.invoice_number, "invoice_number")?;
    text(&request.reason, "reason")?;
    if request.lines.len() > CREDIT_LINES_MAX {
        return Err(field_error(
            ErrorCode::BatchTooLarge,
            "lines",
            format!(
                "{} lines; a credit note has at most {CREDIT_LINES_MAX}",
                request.lines.len()
            ),
        ));
    }
    let lines = request
        .lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            Ok((
                line.line,
                amount(&line.amount, &format!("lines[{index}].amount"))?,
            ))
        })
        .collect::<Result<Vec<_>, LedgerError>>()?;
    Ok(CreditNoteRequest {
        credit_note_id: request.credit_note_id,
        invoice_number: request.invoice_number,
        reason: request.reason,
        lines,
    })
}

fn payment_request(request: pb::RecordPaymentRequest) -> Result<PaymentRequest, LedgerError> {
    id(&request.payment_id, "payment_id")?;
    id(&request.customer_id, "customer_id")?;
    let kind = payment_kind(request.kind, "kind")?;
    let value = amount(&request.amount, "amount")?;
    let received_on = day(&request.received_on, "received_on")?;
    text(&request.reference, "reference")?;
    if request.allocations.len() > ALLOCATIONS_MAX {
        return Err(field_error(
            ErrorCode::BatchTooLarge,
            "allocations",
            format!(
                "{} allocations; a payment has at most {ALLOCATIONS_MAX}",
                request.allocations.len()
            ),
        ));
    }
    if request.unallocated && !request.allocations.is_empty() {
        return Err(field_error(
            ErrorCode::FieldInvalid,
            "unallocated",
            "an unallocated payment has no allocations",
        ));
    }
    let mut allocations = Vec::with_capacity(request.allocations.len());
    for (index, allocation) in request.allocations.into_iter().enumerate() {
        let field = format!("allocations[{index}]");
        id(
            &allocation.invoice_number,
            &format!("{field}.invoice_number"),
        )?;
        let value = amount(&allocation.amount, &format!("{field}.amount"))?;
        allocations.push(Allocation {
            invoice_number: allocation.invoice_number,
            amount: Dec(value),
        });
    }
    let allocations = if request.unallocated || !allocations.is_empty() {
        Some(allocations)
    } else {
        None
    };
    Ok(PaymentRequest {
        payment_id: request.payment_id,
        customer_id: request.customer_id,
        kind,
        amount: Dec(value),
        received_on,
        reference: request.reference,
        allocations,
    })
}

// ---------------------------------------------------------------------------
// Answers.

fn dec(value: Dec) -> String {
    value.0.to_string()
}

fn profile_to_proto(profile: BillingProfile) -> pb::BillingProfile {
    pb::BillingProfile {
        customer_id: profile.customer_id,
        currency: profile.currency,
        country: profile.country,
        region: profile.region.unwrap_or_default(),
        tax_id: profile.tax_id,
        timezone: profile.timezone,
        invoice_series: profile.invoice_series,
        payment_terms_days: profile.payment_terms_days,
    }
}

fn status_to_proto(status: InvoiceStatus) -> pb::InvoiceStatus {
    match status {
        InvoiceStatus::Paid => pb::InvoiceStatus::Paid,
        InvoiceStatus::PartiallyPaid => pb::InvoiceStatus::PartiallyPaid,
        InvoiceStatus::Unpaid => pb::InvoiceStatus::Unpaid,
        InvoiceStatus::Void => pb::InvoiceStatus::Void,
    }
}

fn line_tax(tax: tally_core::billing::LineTaxAmount) -> pb::InvoiceLineTax {
    pb::InvoiceLineTax {
        code: tax.code,
        rate: dec(tax.rate),
        amount: dec(tax.amount),
    }
}

fn line_to_proto(line: InvoiceLine) -> pb::InvoiceLine {
    pb::InvoiceLine {
        kind: line.kind,
        plan_code: line.plan_code,
        plan_version: line.plan_version,
        charge_code: line.charge_code,
        description: line.description,
        start: line.start.to_string(),
        end: line.end.to_string(),
        quantity: dec(line.quantity),
        free_units: dec(line.free_units),
        billable_quantity: dec(line.billable_quantity),
        tiers: line
            .tiers
            .into_iter()
            .map(|tier| pb::InvoiceLineTier {
                from: dec(tier.from),
                up_to: tier.up_to.map(dec).unwrap_or_default(),
                quantity: dec(tier.quantity),
                unit_price: dec(tier.unit_price),
                flat_fee: dec(tier.flat_fee),
                amount: dec(tier.amount),
            })
            .collect(),
        explanation: line.explanation,
        amount: dec(line.amount),
        discount: dec(line.discount),
        taxes: line.taxes.into_iter().map(line_tax).collect(),
        net: dec(line.net),
        total: dec(line.total),
        usage: line.usage.map(|usage| pb::UsageDigest {
            events: usage.events,
            digest: usage.digest.to_vec(),
            from: usage.from,
            to: usage.to,
        }),
    }
}

/// An invoice as issued, without what became of it (a run's draft).
fn invoice_document(invoice: Invoice) -> pb::Invoice {
    pb::Invoice {
        number: invoice.number,
        series: invoice.series,
        year: invoice.year,
        sequence: invoice.sequence,
        customer_id: invoice.customer_id,
        subscription_id: invoice.subscription_id,
        currency: invoice.currency,
        period_start: invoice.period_start.to_string(),
        period_end: invoice.period_end.to_string(),
        usage_from: invoice.usage_from,
        usage_to: invoice.usage_to,
        usage_journal_length: invoice.usage_journal_length,
        country: invoice.country,
        region: invoice.region.unwrap_or_default(),
        tax_id: invoice.tax_id,
        issued_on: invoice.issued_on.to_string(),
        due_on: invoice.due_on.to_string(),
        lines: invoice.lines.into_iter().map(line_to_proto).collect(),
        coupons: invoice
            .coupons
            .into_iter()
            .map(|coupon| pb::CouponUse {
                grant_id: coupon.grant_id,
                code: coupon.code,
                amount: dec(coupon.amount),
            })
            .collect(),
        taxes: invoice
            .taxes
            .into_iter()
            .map(|tax| pb::InvoiceTaxTotal {
                code: tax.code,
                rate: dec(tax.rate),
                base: dec(tax.base),
                amount: dec(tax.amount),
            })
            .collect(),
        subtotal: dec(invoice.subtotal),
        discount: dec(invoice.discount),
        tax: dec(invoice.tax),
        total: dec(invoice.total),
        credit_applied: dec(invoice.credit_applied),
        amount_due: dec(invoice.amount_due),
        ..pb::Invoice::default()
    }
}

fn invoice_to_proto(view: InvoiceView) -> pb::Invoice {
    pb::Invoice {
        status: status_to_proto(view.status) as i32,
        paid: view.paid.to_string(),
        credited: view.credited.to_string(),
        outstanding: view.outstanding.to_string(),
        credit_notes: view.credit_notes,
        payments: view.payments,
        void_reason: view.void_reason.unwrap_or_default(),
        seq: view.seq,
        ..invoice_document(view.invoice)
    }
}

/// The invoice view as a JSON document: the invoice as the journal holds it
/// (decimals as strings, days as `YYYY-MM-DD`, usage digests in hex) and
/// what became of it.
pub fn invoice_json(view: &InvoiceView) -> serde_json::Value {
    serde_json::json!({
        "invoice": view.invoice,
        "status": view.status.name(),
        "paid": view.paid.to_string(),
        "credited": view.credited.to_string(),
        "outstanding": view.outstanding.to_string(),
        "credit_notes": view.credit_notes,
        "payments": view.payments,
        "void_reason": view.void_reason,
        "seq": view.seq,
    })
}

fn run_invoice(run: RunInvoice, draft: bool) -> pb::RunInvoice {
    let invoice = run.invoice;
    // A draft's credit is drawn down only when it is issued; a net credit is
    // never due.
    let amount_due = if draft {
        Dec(invoice.total.0.max(Decimal::ZERO))
    } else {
        invoice.amount_due
    };
    pb::RunInvoice {
        line_count: u32::try_from(invoice.lines.len()).unwrap_or(u32::MAX),
        number: invoice.number,
        customer_id: invoice.customer_id,
        subscription_id: invoice.subscription_id,
        currency: invoice.currency,
        period_start: invoice.period_start.to_string(),
        period_end: invoice.period_end.to_string(),
        subtotal: dec(invoice.subtotal),
        discount: dec(invoice.discount),
        tax: dec(invoice.tax),
        total: dec(invoice.total),
        amount_due: dec(amount_due),
        created: run.created,
    }
}

fn subscription_to_proto(view: crate::billing::operations::SubscriptionView) -> pb::Subscription {
    let subscription = view.subscription;
    pb::Subscription {
        subscription_id: subscription.subscription_id,
        customer_id: subscription.customer_id,
        segments: subscription
            .segments
            .into_iter()
            .map(|segment| pb::SubscriptionSegment {
                from: segment.from.to_string(),
                plan_code: segment.plan_code,
                plan_version: segment.plan_version,
            })
            .collect(),
        end: subscription.end.map(|d| d.to_string()).unwrap_or_default(),
        invoiced_through: view
            .invoiced_through
            .map(|d| d.to_string())
            .unwrap_or_default(),
    }
}

fn credit_note_to_proto(note: CreditNote) -> pb::CreditNote {
    pb::CreditNote {
        number: note.number,
        series: note.series,
        year: note.year,
        sequence: note.sequence,
        invoice_number: note.invoice_number,
        customer_id: note.customer_id,
        currency: note.currency,
        issued_on: note.issued_on.to_string(),
        reason: note.reason,
        lines: note
            .lines
            .into_iter()
            .map(|line| pb::CreditNoteLine {
                line: line.line,
                net: dec(line.net),
                taxes: line.taxes.into_iter().map(line_tax).collect(),
                total: dec(line.total),
            })
            .collect(),
        total: dec(note.total),
        to_invoice: dec(note.to_invoice),
        to_credit: dec(note.to_credit),
        created: true,
    }
}

fn payment_to_proto(payment: Payment, created: bool) -> pb::Payment {
    pb::Payment {
        payment_id: payment.payment_id,
        customer_id: payment.customer_id,
        kind: payment_kind_to_proto(payment.kind) as i32,
        currency: payment.currency,
        amount: dec(payment.amount),
        received_on: payment.received_on.to_string(),
        reference: payment.reference,
        allocations: payment
            .allocations
            .into_iter()
            .map(|allocation| pb::Allocation {
                invoice_number: allocation.invoice_number,
                amount: dec(allocation.amount),
            })
            .collect(),
        to_credit: dec(payment.to_credit),
        created,
    }
}

fn ageing_row(row: AgeingRow) -> pb::AgeingRow {
    let [current, days_1_30, days_31_60, days_61_90, days_over_90] =
        row.buckets.map(|value| value.to_string());
    pb::AgeingRow {
        customer_id: row.customer_id,
        currency: row.currency,
        current,
        days_1_30,
        days_31_60,
        days_61_90,
        days_over_90,
        total: row.total.to_string(),
    }
}

fn subscription_result(
    subscription_id: String,
    effective: Day,
    (seq, created): (u64, bool),
) -> pb::SubscriptionChangeResult {
    pb::SubscriptionChangeResult {
        subscription_id,
        effective: effective.to_string(),
        seq,
        created,
    }
}

fn profile_missing(customer: &str) -> LedgerError {
    field_error(
        ErrorCode::BillingProfileMissing,
        "customer_id",
        format!(
            "customer {} has no billing profile",
            tally_core::meter::quoted(customer)
        ),
    )
}

/// A page of the invoices in issue order: those after `token` (the last
/// seq of the previous page).
fn invoice_page(
    views: Vec<InvoiceView>,
    token: &str,
    page_size: usize,
) -> Result<pb::ListInvoicesResponse, LedgerError> {
    let after = if token.is_empty() {
        None
    } else {
        Some(token.parse::<u64>().map_err(|_| {
            field_error(
                ErrorCode::FieldInvalid,
                "page_token",
                "not a page token of this listing",
            )
        })?)
    };
    let mut rest = views
        .into_iter()
        .filter(|view| after.is_none_or(|after| view.seq > after));
    let page: Vec<InvoiceView> = rest.by_ref().take(page_size).collect();
    let next_page_token = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => last.seq.to_string(),
        _ => String::new(),
    };
    Ok(pb::ListInvoicesResponse {
        invoices: page.into_iter().map(invoice_to_proto).collect(),
        next_page_token,
    })
}

fn event(event: pb::run_billing_event::Event) -> pb::RunBillingEvent {
    pb::RunBillingEvent { event: Some(event) }
}

#[tonic::async_trait]
impl Billing for BillingService {
    async fn set_billing_profile(
        &self,
        request: Request<pb::SetBillingProfileRequest>,
    ) -> Result<Response<pb::SetBillingProfileResponse>, Status> {
        let profile = request.into_inner().profile.ok_or_else(|| {
            field_error(
                ErrorCode::FieldRequired,
                "profile",
                "the profile is required",
            )
        })?;
        let profile = profile_from_proto(profile);
        let (seq, created) = self
            .engine
            .set_billing_profile(profile.clone())
            .await
            .map_err(at("profile"))?;
        Ok(Response::new(pb::SetBillingProfileResponse {
            profile: Some(profile_to_proto(profile)),
            seq,
            created,
        }))
    }

    async fn get_billing_profile(
        &self,
        request: Request<pb::GetBillingProfileRequest>,
    ) -> Result<Response<pb::BillingProfile>, Status> {
        let customer = request.into_inner().customer_id;
        id(&customer, "customer_id")?;
        let profile = self
            .engine
            .billing_profile(&customer)
            .ok_or_else(|| profile_missing(&customer))?;
        Ok(Response::new(profile_to_proto(profile)))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let subscription = request.into_inner().subscription_id;
        id(&subscription, "subscription_id")?;
        let view = self.engine.subscription(&subscription).map_err(status)?;
        Ok(Response::new(subscription_to_proto(view)))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let customer = request.into_inner().customer_id;
        id(&customer, "customer_id")?;
        let subscriptions = self.engine.subscriptions(&customer);
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: subscriptions
                .into_iter()
                .map(subscription_to_proto)
                .collect(),
        }))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscriptionChangeResult>, Status> {
        let request = request.into_inner();
        id(&request.customer_id, "customer_id")?;
        id(&request.plan_code, "plan_code")?;
        let start = day(&request.start, "start")?;
        let written = self
            .engine
            .subscribe(
                &request.subscription_id,
                &request.customer_id,
                &request.plan_code,
                request.plan_version,
                start,
            )
            .await?;
        Ok(Response::new(subscription_result(
            request.subscription_id,
            start,
            written,
        )))
    }

    async fn change_plan(
        &self,
        request: Request<pb::ChangePlanRequest>,
    ) -> Result<Response<pb::SubscriptionChangeResult>, Status> {
        let request = request.into_inner();
        id(&request.subscription_id, "subscription_id")?;
        id(&request.plan_code, "plan_code")?;
        let on = day(&request.on, "on")?;
        let timing = change_timing(request.timing, "timing")?;
        let (effective, seq, created) = self
            .engine
            .change_plan(
                &request.subscription_id,
                &request.plan_code,
                request.plan_version,
                on,
                timing,
            )
            .await
            .map_err(renamed("effective", "on"))?;
        Ok(Response::new(subscription_result(
            request.subscription_id,
            effective,
            (seq, created),
        )))
    }

    async fn end_subscription(
        &self,
        request: Request<pb::EndSubscriptionRequest>,
    ) -> Result<Response<pb::SubscriptionChangeResult>, Status> {
        let request = request.into_inner();
        id(&request.subscription_id, "subscription_id")?;
        let end = day(&request.end, "end")?;
        let written = self
            .engine
            .end_subscription(&request.subscription_id, end)
            .await?;
        Ok(Response::new(subscription_result(
            request.subscription_id,
            end,
            written,
        )))
    }

    async fn grant_coupon(
        &self,
        request: Request<pb::GrantCouponRequest>,
    ) -> Result<Response<pb::GrantCouponResponse>, Status> {
        let request = request.into_inner();
        id(&request.customer_id, "customer_id")?;
        let coupon = coupon(&request.coupon_json, "coupon_json")?;
        let from = day(&request.from, "from")?;
        let (seq, created) = self
            .engine
            .grant_coupon(&request.grant_id, &request.customer_id, coupon, from)
            .await?;
        Ok(Response::new(pb::GrantCouponResponse {
            grant_id: request.grant_id,
            seq,
            created,
        }))
    }

    async fn publish_tax_rules(
        &self,
        request: Request<pb::PublishTaxRulesRequest>,
    ) -> Result<Response<pb::PublishTaxRulesResponse>, Status> {
        let rules = tax_rules(&request.into_inner().rules_json, "rules_json")?;
        let rule_count = u32::try_from(rules.len()).unwrap_or(u32::MAX);
        let (version, seq, created) = self.engine.publish_tax_rules(rules).await?;
        Ok(Response::new(pb::PublishTaxRulesResponse {
            version,
            seq,
            created,
            rule_count,
        }))
    }

    type RunBillingStream = ReceiverStream<Result<pb::RunBillingEvent, Status>>;

    async fn run_billing(
        &self,
        request: Request<pb::RunBillingRequest>,
    ) -> Result<Response<Self::RunBillingStream>, Status> {
        // A malformed request fails the call, not the stream.
        let run = run_request(request.into_inner())?;
        let (tx, rx) = mpsc::channel(RUN_STREAM_BUFFER_MAX);
        let engine = Arc::clone(&self.engine);
        let task = async move {
            let progress_tx = tx.clone();
            // Progress is advisory: when the client reads slowly, events are
            // dropped rather than holding the run up.
            let progress = move |done: usize, total: usize| {
                let _ = progress_tx.try_send(Ok(event(pb::run_billing_event::Event::Progress(
                    pb::RunProgress {
                        done: done as u64,
                        total: total as u64,
                    },
                ))));
            };
            let result = engine
                .run_billing(run.customers, run.from, run.to, !run.draft, &progress)
                .await;
            let invoices = match result {
                Ok(invoices) => invoices,
                Err(error) => {
                    let _ = tx.send(Err(status(error))).await;
                    return;
                }
            };
            let count = invoices.len() as u64;
            let created = invoices.iter().filter(|i| i.created).count() as u64;
            for invoice in invoices {
                let item = event(pb::run_billing_event::Event::Invoice(run_invoice(
                    invoice, run.draft,
                )));
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            let summary = pb::RunSummary {
                invoices: count,
                created,
                draft: run.draft,
                from: run.from.to_string(),
                to: run.to.to_string(),
            };
            let _ = tx
                .send(Ok(event(pb::run_billing_event::Event::Summary(summary))))
                .await;
        };
        // The run outlives this call's task: it keeps the caller, so that its
        // entries record the key that asked for them.
        match crate::auth::CALLER.try_with(Clone::clone) {
            Ok(caller) => tokio::spawn(crate::auth::CALLER.scope(caller, task)),
            Err(_) => tokio::spawn(task),
        };
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<pb::Invoice>, Status> {
        let number = request.into_inner().invoice_number;
        id(&number, "invoice_number")?;
        let view = self.engine.invoice(&number)?;
        Ok(Response::new(invoice_to_proto(view)))
    }

    async fn list_invoices(
        &self,
        request: Request<pb::ListInvoicesRequest>,
    ) -> Result<Response<pb::ListInvoicesResponse>, Status> {
        let request = request.into_inner();
        let page_size = super::convert::page_size(request.page_size, "page_size")?;
        if !request.customer_id.is_empty() {
            id(&request.customer_id, "customer_id")?;
        }
        let page = self
            .read(move |engine| {
                let customer = (!request.customer_id.is_empty()).then_some(request.customer_id);
                let views = engine.invoices(customer.as_deref());
                invoice_page(views, &request.page_token, page_size).map_err(Error::Ledger)
            })
            .await?;
        Ok(Response::new(page))
    }

    async fn render_invoice(
        &self,
        request: Request<pb::RenderInvoiceRequest>,
    ) -> Result<Response<pb::RenderedInvoice>, Status> {
        let request = request.into_inner();
        id(&request.invoice_number, "invoice_number")?;
        let format = match pb::RenderFormat::try_from(request.format) {
            Ok(pb::RenderFormat::Unspecified | pb::RenderFormat::Html) => pb::RenderFormat::Html,
            Ok(pb::RenderFormat::Json) => pb::RenderFormat::Json,
            Err(_) => return Err(unknown("format", "render format", request.format).into()),
        };
        let (content_type, content) = match format {
            pb::RenderFormat::Json => {
                let view = self.engine.invoice(&request.invoice_number)?;
                let content = serde_json::to_string_pretty(&invoice_json(&view))
                    .map_err(|error| internal("invoice JSON", error))?;
                ("application/json", content)
            }
            _ => (
                "text/html; charset=utf-8",
                self.engine.invoice_html(&request.invoice_number)?,
            ),
        };
        Ok(Response::new(pb::RenderedInvoice {
            invoice_number: request.invoice_number,
            format: format as i32,
            content_type: content_type.to_string(),
            content,
        }))
    }

    async fn void_invoice(
        &self,
        request: Request<pb::VoidInvoiceRequest>,
    ) -> Result<Response<pb::VoidInvoiceResponse>, Status> {
        let request = request.into_inner();
        id(&request.invoice_number, "invoice_number")?;
        text(&request.reason, "reason")?;
        let (seq, created) = self
            .engine
            .void_invoice(&request.invoice_number, &request.reason)
            .await?;
        let view = self.engine.invoice(&request.invoice_number)?;
        Ok(Response::new(pb::VoidInvoiceResponse {
            invoice: Some(invoice_to_proto(view)),
            seq,
            created,
        }))
    }

    async fn issue_credit_note(
        &self,
        request: Request<pb::IssueCreditNoteRequest>,
    ) -> Result<Response<pb::CreditNote>, Status> {
        let request = credit_note_request(request.into_inner())?;
        let (note, created) = self.engine.issue_credit_note(request).await?;
        let mut answer = credit_note_to_proto(note);
        answer.created = created;
        Ok(Response::new(answer))
    }

    async fn record_payment(
        &self,
        request: Request<pb::RecordPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let request = payment_request(request.into_inner())?;
        let (payment, created) = self.engine.record_payment(request).await?;
        Ok(Response::new(payment_to_proto(payment, created)))
    }

    async fn get_customer_credit(
        &self,
        request: Request<pb::GetCustomerCreditRequest>,
    ) -> Result<Response<pb::CustomerCredit>, Status> {
        let customer = request.into_inner().customer_id;
        id(&customer, "customer_id")?;
        // The profile names the currency; without one there is no credit.
        let profile = self
            .engine
            .billing_profile(&customer)
            .ok_or_else(|| profile_missing(&customer))?;
        let amount = self.engine.customer_credit(&customer);
        Ok(Response::new(pb::CustomerCredit {
            customer_id: customer,
            currency: profile.currency,
            amount: amount.to_string(),
        }))
    }

    async fn receivable_ageing(
        &self,
        request: Request<pb::ReceivableAgeingRequest>,
    ) -> Result<Response<pb::ReceivableAgeingResponse>, Status> {
        let text = request.into_inner().as_of;
        let as_of = if text.is_empty() {
            crate::billing::record::day_of(crate::writer::now_ns())
        } else {
            day(&text, "as_of")?
        };
        let rows = self.read(move |engine| Ok(engine.ageing(as_of))).await?;
        Ok(Response::new(pb::ReceivableAgeingResponse {
            as_of: as_of.to_string(),
            rows: rows.into_iter().map(ageing_row).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: LedgerError) -> String {
        error.field
    }

    #[test]
    fn documents_are_read_strictly_and_name_their_paths() {
        // Goal: a coupon or tax document that does not read, or breaks a rule,
        // is refused naming the request field and the path inside it.
        let good = r#"{"code":"welcome10","discount":{"kind":"percentage","percent":"10"},"duration":{"kind":"forever"}}"#;
        assert_eq!(coupon(good, "coupon_json").unwrap().code, "welcome10");
        let over = good.replace("\"10\"", "\"120\"");
        assert_eq!(
            field_of(coupon(&over, "coupon_json").unwrap_err()),
            "coupon_json.discount.percent"
        );
        let typo = good.replace("\"code\"", "\"kode\"");
        let error = coupon(&typo, "coupon_json").unwrap_err();
        assert!(error.field.starts_with("coupon_json"), "{error:?}");
        assert_eq!(
            coupon("", "coupon_json").unwrap_err().code,
            ErrorCode::FieldRequired
        );
        assert_eq!(
            field_of(coupon("[1]", "coupon_json").unwrap_err()),
            "coupon_json"
        );
        assert_eq!(
            field_of(coupon("{\"code\":", "coupon_json").unwrap_err()),
            "coupon_json"
        );
        assert_eq!(
            field_of(coupon(&format!("{good} x"), "coupon_json").unwrap_err()),
            "coupon_json"
        );
        let huge = format!("{{\"code\":\"{}\"}}", "x".repeat(DOCUMENT_BYTES_MAX));
        assert_eq!(
            coupon(&huge, "coupon_json").unwrap_err().code,
            ErrorCode::FieldTooLong
        );

        let table = r#"{"taxes":[{"code":"vat_de","country":"DE","rate":"19"},{"code":"vat_de","country":"AT","rate":"20"}]}"#;
        assert_eq!(
            field_of(tax_rules(table, "rules_json").unwrap_err()),
            "rules_json.taxes[1].code"
        );
        let one = r#"{"taxes":[{"code":"vat_de","country":"DE","rate":"19"}]}"#;
        assert_eq!(tax_rules(one, "rules_json").unwrap().len(), 1);
        let missing = r#"{"taxes":[{"code":"vat_de","rate":"19"}]}"#;
        let error = tax_rules(missing, "rules_json").unwrap_err();
        assert_eq!(error.code, ErrorCode::FieldRequired);
        assert_eq!(error.field, "rules_json.taxes[0].country");
    }

    #[test]
    fn runs_take_a_month_or_two_days() {
        // Goal: a month is its days; both forms at once, an empty or too wide
        // window, a bad day or too many customers are refused with their field.
        let request = |period: &str, from: &str, to: &str| pb::RunBillingRequest {
            customers: vec![],
            from: from.into(),
            to: to.into(),
            period: period.into(),
            draft: false,
        };
        let run = run_request(request("2026-12", "", "")).unwrap();
        assert_eq!(
            (run.from.to_string(), run.to.to_string()),
            ("2026-12-01".to_string(), "2027-01-01".to_string())
        );
        assert!(run.customers.is_none());
        let field = |r| run_request(r).err().map(field_of).unwrap_or_default();
        assert_eq!(field(request("2026-13", "", "")), "period");
        assert_eq!(field(request("2026-12", "2026-12-01", "")), "period");
        assert_eq!(field(request("", "2026-12-01", "")), "to");
        assert_eq!(field(request("", "", "2026-12-01")), "from");
        assert_eq!(field(request("", "2026-12-01", "2026-12-01")), "to");
        assert_eq!(field(request("", "2026-12-01", "2029-12-01")), "to");
        assert_eq!(field(request("", "2026-02-30", "2026-12-01")), "from");
        let mut many = request("2026-12", "", "");
        many.customers = vec!["a".into(); RUN_CUSTOMERS_MAX + 1];
        assert_eq!(field(many), "customers");
        let mut bad = request("2026-12", "", "");
        bad.customers = vec!["a".into(), "b c".into()];
        assert_eq!(field(bad), "customers[1]");
    }

    #[test]
    fn payments_and_credit_notes_name_their_fields() {
        // Goal: every malformed part of a payment or credit note is refused at
        // the edge with its path; empty allocations mean oldest first unless
        // `unallocated`.
        let payment = || pb::RecordPaymentRequest {
            payment_id: "pay-1".into(),
            customer_id: "acme".into(),
            kind: pb::PaymentKind::Payment as i32,
            amount: "10.00".into(),
            received_on: "2026-05-10".into(),
            reference: "wire".into(),
            allocations: vec![],
            unallocated: false,
        };
        assert_eq!(payment_request(payment()).unwrap().allocations, None);
        let mut whole = payment();
        whole.unallocated = true;
        assert_eq!(payment_request(whole).unwrap().allocations, Some(vec![]));
        let field = |request| payment_request(request).err().map(field_of).unwrap();
        let mut bad = payment();
        bad.kind = 0;
        assert_eq!(field(bad), "kind");
        let mut bad = payment();
        bad.kind = 99;
        assert_eq!(field(bad), "kind");
        let mut bad = payment();
        bad.amount = "1e3".into();
        assert_eq!(field(bad), "amount");
        let mut bad = payment();
        bad.received_on = "10/05/2026".into();
        assert_eq!(field(bad), "received_on");
        let mut bad = payment();
        bad.reference = "x".repeat(2000);
        assert_eq!(field(bad), "reference");
        let mut bad = payment();
        bad.allocations = vec![pb::Allocation {
            invoice_number: "INV-2026-000001".into(),
            amount: "five".into(),
        }];
        assert_eq!(field(bad), "allocations[0].amount");
        let mut bad = payment();
        bad.unallocated = true;
        bad.allocations = vec![pb::Allocation {
            invoice_number: "INV-2026-000001".into(),
            amount: "5".into(),
        }];
        assert_eq!(field(bad), "unallocated");

        let note = pb::IssueCreditNoteRequest {
            credit_note_id: "cn-1".into(),
            invoice_number: "INV-2026-000001".into(),
            reason: "outage".into(),
            lines: vec![
                pb::CreditLine {
                    line: 0,
                    amount: "5.00".into(),
                },
                pb::CreditLine {
                    line: 1,
                    amount: "".into(),
                },
            ],
        };
        assert_eq!(
            credit_note_request(note).err().map(field_of).unwrap(),
            "lines[1].amount"
        );
    }

    #[test]
    fn invoice_pages_follow_issue_order() {
        // Goal: a page ends where the next begins; a foreign token is refused.
        let view = |seq: u64| InvoiceView {
            invoice: Invoice {
                number: format!("INV-2026-{seq:06}"),
                series: "INV".into(),
                year: 2026,
                sequence: seq,
                customer_id: "acme".into(),
                subscription_id: "sub".into(),
                currency: "USD".into(),
                period_start: Day(0),
                period_end: Day(30),
                usage_from: 0,
                usage_to: 0,
                usage_journal_length: 0,
                country: "US".into(),
                region: None,
                tax_id: String::new(),
                issued_on: Day(31),
                due_on: Day(61),
                lines: vec![],
                coupons: vec![],
                taxes: vec![],
                subtotal: Dec::ZERO,
                discount: Dec::ZERO,
                tax: Dec::ZERO,
                total: Dec::ZERO,
                credit_applied: Dec::ZERO,
                amount_due: Dec::ZERO,
            },
            status: InvoiceStatus::Paid,
            paid: Decimal::ZERO,
            credited: Decimal::ZERO,
            outstanding: Decimal::ZERO,
            credit_notes: vec![],
            payments: vec![],
            void_reason: None,
            seq,
        };
        let views = || vec![view(3), view(7), view(9)];
        let first = invoice_page(views(), "", 2).unwrap();
        assert_eq!(first.invoices.len(), 2);
        assert_eq!(first.next_page_token, "7");
        let second = invoice_page(views(), &first.next_page_token, 2).unwrap();
        assert_eq!(second.invoices[0].seq, 9);
        assert!(second.next_page_token.is_empty());
        assert_eq!(
            invoice_page(views(), "x", 2).err().map(field_of).unwrap(),
            "page_token"
        );
        let json = invoice_json(&view(3));
        assert_eq!(json["invoice"]["number"], "INV-2026-000003");
        assert_eq!(json["status"], "paid");
        assert_eq!(json["invoice"]["issued_on"], "1970-02-01");
    }
}
