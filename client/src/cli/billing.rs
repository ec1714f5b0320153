//! The billing commands: `tally billing profile set|show`, `tally billing run`,
//! `tally subscription start|change|end`, `tally coupon grant`, `tally tax publish`,
//! `tally invoice show|list|render|void`, `tally credit-note issue`, `tally payment
//! record`, `tally credit show` and `tally ar ageing`.
//!
//! Coupon and tax files are read like `tally plan quote`'s (TOML or JSON, told apart by
//! the extension) and checked with the ledger's own rules before anything is sent, so a
//! typo is a usage error (exit 2) naming its field. A coupon file holds one coupon:
//!
//! ```toml
//! code = "welcome10"
//! discount = { kind = "percentage", percent = "10" }
//! duration = { kind = "forever" }
//! ```
//!
//! A tax file holds the whole table, `[[taxes]]` (`docs/examples/taxes-de.toml`).
//!
//! `billing run` shows its progress on stderr when stderr is a terminal: a bar and a
//! counter, rewritten in place.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::Path;

use serde_json::{json, Value};
use tally_client::{
    AgeingRow, BillingProfile, BillingRun, BillingRunRequest, Client, Coupon, CreditNote,
    CreditNoteRequest, CustomerCredit, Day, Decimal, Invoice, InvoiceLineKind, Payment,
    PaymentRequest, Period, PlanKey, ProfileSet, ReceivableAgeing, RunInvoice, RunProgress,
    Subscription, SubscriptionResult, TaxRulesVersion, AGEING_BUCKETS,
};

use super::args::{
    ArCommand, BillingCommand, CouponCommand, CreditCommand, CreditNoteCommand, InvoiceCommand,
    PaymentArgs, PaymentCommand, ProfileArgs, ProfileCommand, RunArgs, SubscriptionCommand,
    TaxCommand,
};
use super::commands::Printer;
use super::plan::{parse_document, parse_taxes, Format};
use super::render::{self, fields, Align, Table};
use super::CliError;

/// The longest coupon or tax file read.
const FILE_BYTES_MAX: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Files.

fn file_error(path: &Path, message: impl Display) -> CliError {
    CliError::Usage(format!("{}: {message}", path.display()))
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("toml") => Some(Format::Toml),
        Some("json") => Some(Format::Json),
        _ => None,
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let size = std::fs::metadata(path)
        .map_err(|error| file_error(path, error))?
        .len();
    if size > FILE_BYTES_MAX {
        return Err(file_error(
            path,
            format!("larger than {FILE_BYTES_MAX} bytes"),
        ));
    }
    std::fs::read_to_string(path).map_err(|error| file_error(path, error))
}

/// A coupon file's text, read and checked: errors name the field (`discount.percent`).
pub fn parse_coupon(text: &str, format: Option<Format>) -> Result<Coupon, String> {
    let coupon: Coupon = parse_document(text, format)?;
    coupon.validate("").map_err(|error| {
        let field = error.field.trim_start_matches('.');
        format!("{field}: {}", error.message)
    })?;
    Ok(coupon)
}

/// Today, UTC: the default day a payment was received and receivables are aged on.
fn today() -> Day {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    Day(i32::try_from(seconds / 86_400).unwrap_or(i32::MAX))
}

// ---------------------------------------------------------------------------------------
// Commands.

pub async fn billing(
    client: &Client,
    printer: &mut Printer<'_>,
    command: BillingCommand,
) -> Result<(), CliError> {
    match command {
        BillingCommand::Profile(ProfileCommand::Set(args)) => {
            let set = client.set_billing_profile(&profile(args)).await?;
            printer.show(|| profile_set_json(&set), || profile_set_text(&set))
        }
        BillingCommand::Profile(ProfileCommand::Show { customer }) => {
            let profile = client.billing_profile(&customer).await?;
            printer.show(|| profile_json(&profile), || profile_text(&profile))
        }
        BillingCommand::Run(args) => run(client, printer, args).await,
    }
}

fn profile(args: ProfileArgs) -> BillingProfile {
    BillingProfile {
        customer_id: args.customer,
        currency: args.currency,
        country: args.country,
        region: args.region,
        tax_id: args.tax_id,
        timezone: args.timezone,
        invoice_series: args.series,
        payment_terms_days: args.payment_terms_days,
    }
}

async fn run(client: &Client, printer: &mut Printer<'_>, args: RunArgs) -> Result<(), CliError> {
    let period = match (args.period, args.from, args.to) {
        (Some(period), _, _) => period,
        (None, Some(start), Some(end)) => Period { start, end },
        _ => {
            return Err(CliError::Usage(
                "the days to bill are required: --period YYYY-MM or --from and --to".into(),
            ))
        }
    };
    let mut request = BillingRunRequest::new(period).draft(args.draft);
    request.customers = args.customers;
    let terminal = std::io::stderr().is_terminal();
    let mut shown = false;
    let result = client
        .run_billing_with_progress(&request, |progress| {
            if terminal {
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r{}", progress_text(progress));
                let _ = stderr.flush();
                shown = true;
            }
        })
        .await;
    if shown {
        eprintln!();
    }
    let run = result?;
    printer.show(|| run_json(&run), || run_text(&run))
}

/// `[#########...........]  1000/2500 invoices (40 %)`.
pub fn progress_text(progress: RunProgress) -> String {
    const WIDTH: u64 = 24;
    let total = progress.total.max(1);
    let done = progress.done.min(total);
    let filled = (done * WIDTH / total) as usize;
    format!(
        "[{}{}]  {}/{} invoices ({} %)",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled),
        progress.done,
        progress.total,
        done * 100 / total
    )
}

pub async fn subscription(
    client: &Client,
    printer: &mut Printer<'_>,
    command: SubscriptionCommand,
) -> Result<(), CliError> {
    let (result, verb) = match command {
        SubscriptionCommand::Show { id } => {
            let subscription = client.subscription(&id).await?;
            let one = std::slice::from_ref(&subscription);
            return printer.show(|| subscriptions_json(one), || subscriptions_text(one));
        }
        SubscriptionCommand::List { customer } => {
            let all = client.subscriptions(&customer).await?;
            return printer.show(|| subscriptions_json(&all), || subscriptions_text(&all));
        }
        SubscriptionCommand::Start {
            id,
            customer,
            plan,
            start,
        } => (
            client.subscribe(&id, &customer, &plan, start).await?,
            format!("starts on plan {} on", plan_text(&plan)),
        ),
        SubscriptionCommand::Change {
            id,
            plan,
            on,
            timing,
        } => (
            client.change_plan(&id, &plan, on, timing).await?,
            format!("moves to plan {} on", plan_text(&plan)),
        ),
        SubscriptionCommand::End { id, on } => {
            (client.end_subscription(&id, on).await?, "ends on".into())
        }
    };
    printer.show(
        || subscription_json(&result),
        || subscription_text(&result, &verb),
    )
}

fn subscriptions_json(subscriptions: &[Subscription]) -> Value {
    json!(subscriptions
        .iter()
        .map(|s| json!({
            "subscription_id": s.subscription_id,
            "customer_id": s.customer_id,
            "segments": s.segments.iter().map(|segment| json!({
                "from": segment.from.to_string(),
                "plan_code": segment.plan_code,
                "plan_version": segment.plan_version,
            })).collect::<Vec<_>>(),
            "end": s.end.map(|d| d.to_string()),
            "invoiced_through": s.invoiced_through.map(|d| d.to_string()),
        }))
        .collect::<Vec<_>>())
}

fn subscriptions_text(subscriptions: &[Subscription]) -> String {
    let mut out = String::new();
    for s in subscriptions {
        let end = s.end.map_or("-".to_string(), |d| d.to_string());
        let through = s
            .invoiced_through
            .map_or("-".to_string(), |d| d.to_string());
        out.push_str(&format!(
            "subscription {} of {}: ends {end}, invoiced through {through}\n",
            s.subscription_id, s.customer_id
        ));
        for segment in &s.segments {
            out.push_str(&format!(
                "  from {}  {} v{}\n",
                segment.from, segment.plan_code, segment.plan_version
            ));
        }
    }
    out
}

pub async fn coupon(
    client: &Client,
    printer: &mut Printer<'_>,
    command: CouponCommand,
) -> Result<(), CliError> {
    let CouponCommand::Grant {
        grant_id,
        customer,
        coupon,
        from,
    } = command;
    let text = read_text(&coupon)?;
    let document =
        parse_coupon(&text, format_of(&coupon)).map_err(|error| file_error(&coupon, error))?;
    let granted = client
        .grant_coupon(&grant_id, &customer, &document, from)
        .await?;
    printer.show(
        || {
            json!({
                "grant_id": granted.grant_id,
                "customer_id": customer,
                "coupon": document.code,
                "from": from.to_string(),
                "seq": granted.seq,
                "created": granted.created,
            })
        },
        || {
            let verb = if granted.created {
                "granted"
            } else {
                "already granted:"
            };
            format!(
                "{verb} coupon {} to {customer} from {from} (grant {}, seq {})\n",
                document.code, granted.grant_id, granted.seq
            )
        },
    )
}

pub async fn tax(
    client: &Client,
    printer: &mut Printer<'_>,
    command: TaxCommand,
) -> Result<(), CliError> {
    let TaxCommand::Publish { file } = command;
    let text = read_text(&file)?;
    let rules = parse_taxes(&text, format_of(&file)).map_err(|error| file_error(&file, error))?;
    let published = client.publish_tax_rules(&rules).await?;
    printer.show(|| tax_json(&published), || tax_text(&published))
}

pub async fn invoice(
    client: &Client,
    printer: &mut Printer<'_>,
    command: InvoiceCommand,
) -> Result<(), CliError> {
    match command {
        InvoiceCommand::Show { number } => {
            let invoice = client.invoice(&number).await?;
            printer.show(|| invoice_json(&invoice), || invoice_text(&invoice))
        }
        InvoiceCommand::List { customer } => {
            let invoices = client.list_all_invoices(customer.as_deref()).await?;
            printer.show(
                || Value::Array(invoices.iter().map(invoice_json).collect()),
                || invoices_table(&invoices),
            )
        }
        InvoiceCommand::Render {
            number,
            format,
            out,
        } => {
            let rendered = client.render_invoice(&number, format).await?;
            let Some(path) = out else {
                write!(printer.out, "{}", rendered.content)?;
                if !rendered.content.ends_with('\n') {
                    writeln!(printer.out)?;
                }
                return Ok(());
            };
            std::fs::write(&path, rendered.content.as_bytes()).map_err(|error| {
                CliError::Output(format!("cannot write {}: {error}", path.display()))
            })?;
            let bytes = rendered.content.len();
            printer.show(
                || {
                    json!({
                        "invoice_number": rendered.invoice_number,
                        "format": rendered.format.name(),
                        "content_type": rendered.content_type,
                        "out": path.display().to_string(),
                        "bytes": bytes,
                    })
                },
                || {
                    format!(
                        "wrote invoice {} as {} to {} ({bytes} bytes)\n",
                        rendered.invoice_number,
                        rendered.format.name(),
                        path.display()
                    )
                },
            )
        }
        InvoiceCommand::Void { number, reason } => {
            let voided = client.void_invoice(&number, &reason).await?;
            let note = if voided.created {
                format!("voided invoice {number} (seq {})\n", voided.seq)
            } else {
                format!("invoice {number} was void already\n")
            };
            printer.show(
                || {
                    json!({
                        "seq": voided.seq,
                        "created": voided.created,
                        "invoice": invoice_json(&voided.invoice),
                    })
                },
                || format!("{note}{}", invoice_text(&voided.invoice)),
            )
        }
    }
}

pub async fn credit_note(
    client: &Client,
    printer: &mut Printer<'_>,
    command: CreditNoteCommand,
) -> Result<(), CliError> {
    let CreditNoteCommand::Issue {
        invoice,
        id,
        lines,
        reason,
    } = command;
    let mut request = CreditNoteRequest::new(id, invoice, reason);
    for (line, amount) in lines {
        request = request.line(line, amount);
    }
    let note = client.issue_credit_note(&request).await?;
    printer.show(|| credit_note_json(&note), || credit_note_text(&note))
}

pub async fn payment(
    client: &Client,
    printer: &mut Printer<'_>,
    command: PaymentCommand,
) -> Result<(), CliError> {
    let PaymentCommand::Record(args) = command;
    let request = payment_request(args);
    let payment = client.record_payment(&request).await?;
    printer.show(|| payment_json(&payment), || payment_text(&payment))
}

fn payment_request(args: PaymentArgs) -> PaymentRequest {
    let received_on = args.received_on.unwrap_or_else(today);
    let mut request = PaymentRequest::new(
        args.payment_id,
        args.customer,
        args.kind,
        args.amount,
        received_on,
    )
    .reference(args.reference);
    for (invoice, amount) in args.allocations {
        request = request.allocate(invoice, amount);
    }
    if args.unallocated {
        request = request.unallocated();
    }
    request
}

pub async fn credit(
    client: &Client,
    printer: &mut Printer<'_>,
    command: CreditCommand,
) -> Result<(), CliError> {
    let CreditCommand::Show { customer } = command;
    let credit = client.customer_credit(&customer).await?;
    printer.show(|| credit_json(&credit), || credit_text(&credit))
}

pub async fn ar(
    client: &Client,
    printer: &mut Printer<'_>,
    command: ArCommand,
) -> Result<(), CliError> {
    let ArCommand::Ageing { as_of } = command;
    let ageing = client.receivable_ageing(as_of).await?;
    printer.show(|| ageing_json(&ageing), || ageing_text(&ageing))
}

// ---------------------------------------------------------------------------------------
// Output: JSON (decimals as strings, never numbers).

fn text(value: Decimal) -> String {
    value.to_string()
}

pub fn profile_json(profile: &BillingProfile) -> Value {
    json!({
        "customer_id": profile.customer_id,
        "currency": profile.currency,
        "country": profile.country,
        "region": profile.region,
        "tax_id": profile.tax_id,
        "timezone": profile.timezone,
        "invoice_series": profile.invoice_series,
        "payment_terms_days": profile.payment_terms_days,
    })
}

fn profile_set_json(set: &ProfileSet) -> Value {
    json!({
        "seq": set.seq,
        "created": set.created,
        "profile": profile_json(&set.profile),
    })
}

fn subscription_json(result: &SubscriptionResult) -> Value {
    json!({
        "subscription_id": result.subscription_id,
        "effective": result.effective.to_string(),
        "seq": result.seq,
        "created": result.created,
    })
}

fn tax_json(published: &TaxRulesVersion) -> Value {
    json!({
        "version": published.version,
        "seq": published.seq,
        "created": published.created,
        "rules": published.rule_count,
    })
}

fn run_invoice_json(invoice: &RunInvoice) -> Value {
    json!({
        "number": invoice.number,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
        "currency": invoice.currency,
        "period_start": invoice.period_start.to_string(),
        "period_end": invoice.period_end.to_string(),
        "subtotal": text(invoice.subtotal),
        "discount": text(invoice.discount),
        "tax": text(invoice.tax),
        "total": text(invoice.total),
        "amount_due": text(invoice.amount_due),
        "created": invoice.created,
        "lines": invoice.line_count,
    })
}

pub fn run_json(run: &BillingRun) -> Value {
    json!({
        "draft": run.draft,
        "period_start": run.period.start.to_string(),
        "period_end": run.period.end.to_string(),
        "created": run.created,
        "invoices": run.invoices.iter().map(run_invoice_json).collect::<Vec<_>>(),
    })
}

pub fn invoice_json(invoice: &Invoice) -> Value {
    let lines: Vec<Value> = invoice
        .lines
        .iter()
        .map(|line| {
            json!({
                "kind": line.kind.name(),
                "plan_code": line.plan_code,
                "plan_version": line.plan_version,
                "charge_code": line.charge_code,
                "description": line.description,
                "start": line.start.to_string(),
                "end": line.end.to_string(),
                "quantity": text(line.quantity),
                "free_units": text(line.free_units),
                "billable_quantity": text(line.billable_quantity),
                "tiers": line.tiers.iter().map(|tier| json!({
                    "from": text(tier.from),
                    "up_to": tier.up_to.map(text),
                    "quantity": text(tier.quantity),
                    "unit_price": text(tier.unit_price),
                    "flat_fee": text(tier.flat_fee),
                    "amount": text(tier.amount),
                })).collect::<Vec<_>>(),
                "explanation": line.explanation,
                "amount": text(line.amount),
                "discount": text(line.discount),
                "taxes": line.taxes.iter().map(|tax| json!({
                    "code": tax.code,
                    "rate": text(tax.rate),
                    "amount": text(tax.amount),
                })).collect::<Vec<_>>(),
                "net": text(line.net),
                "total": text(line.total),
                "usage": line.usage.map(|usage| json!({
                    "events": usage.events,
                    "digest": hex::encode(usage.digest),
                    "from": render::time_ns(usage.from),
                    "to": render::time_ns(usage.to),
                })),
            })
        })
        .collect();
    json!({
        "number": invoice.number,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
        "currency": invoice.currency,
        "period_start": invoice.period_start.to_string(),
        "period_end": invoice.period_end.to_string(),
        "usage_journal_length": invoice.usage_journal_length,
        "country": invoice.country,
        "region": invoice.region,
        "tax_id": invoice.tax_id,
        "issued_on": invoice.issued_on.to_string(),
        "due_on": invoice.due_on.to_string(),
        "lines": lines,
        "coupons": invoice.coupons.iter().map(|coupon| json!({
            "grant_id": coupon.grant_id,
            "code": coupon.code,
            "amount": text(coupon.amount),
        })).collect::<Vec<_>>(),
        "taxes": invoice.taxes.iter().map(|tax| json!({
            "code": tax.code,
            "rate": text(tax.rate),
            "base": text(tax.base),
            "amount": text(tax.amount),
        })).collect::<Vec<_>>(),
        "subtotal": text(invoice.subtotal),
        "discount": text(invoice.discount),
        "tax": text(invoice.tax),
        "total": text(invoice.total),
        "credit_applied": text(invoice.credit_applied),
        "amount_due": text(invoice.amount_due),
        "status": invoice.status.name(),
        "paid": text(invoice.paid),
        "credited": text(invoice.credited),
        "outstanding": text(invoice.outstanding),
        "credit_notes": invoice.credit_notes,
        "payments": invoice.payments,
        "void_reason": invoice.void_reason,
        "seq": invoice.seq,
    })
}

fn credit_note_json(note: &CreditNote) -> Value {
    json!({
        "number": note.number,
        "invoice_number": note.invoice_number,
        "customer_id": note.customer_id,
        "currency": note.currency,
        "issued_on": note.issued_on.to_string(),
        "reason": note.reason,
        "lines": note.lines.iter().map(|line| json!({
            "line": line.line,
            "net": text(line.net),
            "taxes": line.taxes.iter().map(|tax| json!({
                "code": tax.code,
                "rate": text(tax.rate),
                "amount": text(tax.amount),
            })).collect::<Vec<_>>(),
            "total": text(line.total),
        })).collect::<Vec<_>>(),
        "total": text(note.total),
        "to_invoice": text(note.to_invoice),
        "to_credit": text(note.to_credit),
        "created": note.created,
    })
}

fn payment_json(payment: &Payment) -> Value {
    json!({
        "payment_id": payment.payment_id,
        "customer_id": payment.customer_id,
        "kind": payment.kind.name(),
        "currency": payment.currency,
        "amount": text(payment.amount),
        "received_on": payment.received_on.to_string(),
        "reference": payment.reference,
        "allocations": payment.allocations.iter().map(|allocation| json!({
            "invoice_number": allocation.invoice_number,
            "amount": text(allocation.amount),
        })).collect::<Vec<_>>(),
        "to_credit": text(payment.to_credit),
        "created": payment.created,
    })
}

fn credit_json(credit: &CustomerCredit) -> Value {
    json!({
        "customer_id": credit.customer_id,
        "currency": credit.currency,
        "amount": text(credit.amount),
    })
}

fn ageing_row_json(row: &AgeingRow) -> Value {
    let buckets: serde_json::Map<String, Value> = AGEING_BUCKETS
        .iter()
        .zip(row.buckets)
        .map(|(name, value)| (name.to_string(), Value::String(text(value))))
        .collect();
    json!({
        "customer_id": row.customer_id,
        "currency": row.currency,
        "buckets": buckets,
        "total": text(row.total),
    })
}

pub fn ageing_json(ageing: &ReceivableAgeing) -> Value {
    json!({
        "as_of": ageing.as_of.to_string(),
        "rows": ageing.rows.iter().map(ageing_row_json).collect::<Vec<_>>(),
        "totals": ageing_totals(&ageing.rows).iter().map(ageing_row_json).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// Output: text.

fn plan_text(plan: &PlanKey) -> String {
    match plan.version {
        Some(version) => format!("{}@{version}", plan.code),
        None => plan.code.clone(),
    }
}

fn period_text(period: Period) -> String {
    days_text(period.start, period.end)
}

fn days_text(start: Day, end: Day) -> String {
    format!("{start} to {end}")
}

fn profile_text(profile: &BillingProfile) -> String {
    fields(&[
        ("customer", profile.customer_id.clone()),
        ("currency", profile.currency.clone()),
        ("country", profile.country.clone()),
        ("region", profile.region.clone().unwrap_or_default()),
        ("tax id", profile.tax_id.clone()),
        ("timezone", profile.timezone.clone()),
        ("invoice series", profile.invoice_series.clone()),
        (
            "payment terms",
            format!("{} days", profile.payment_terms_days),
        ),
    ])
}

fn profile_set_text(set: &ProfileSet) -> String {
    let head = if set.created {
        format!(
            "set the billing profile of {} (seq {})\n",
            set.profile.customer_id, set.seq
        )
    } else {
        format!(
            "unchanged: this is the billing profile of {}\n",
            set.profile.customer_id
        )
    };
    format!("{head}{}", profile_text(&set.profile))
}

fn subscription_text(result: &SubscriptionResult, verb: &str) -> String {
    let note = if result.created { "" } else { "unchanged: " };
    format!(
        "{note}subscription {} {verb} {} (seq {})\n",
        result.subscription_id, result.effective, result.seq
    )
}

fn tax_text(published: &TaxRulesVersion) -> String {
    if published.created {
        format!(
            "published tax table v{} ({} rules, seq {})\n",
            published.version, published.rule_count, published.seq
        )
    } else {
        format!("unchanged: tax table v{} is current\n", published.version)
    }
}

pub fn run_text(run: &BillingRun) -> String {
    let mut out = if run.draft {
        format!(
            "draft billing run {}: {} invoices, nothing recorded\n",
            period_text(run.period),
            run.invoices.len()
        )
    } else {
        format!(
            "billing run {}: {} invoices, {} issued by this run\n",
            period_text(run.period),
            run.invoices.len(),
            run.created
        )
    };
    if run.invoices.is_empty() {
        return out;
    }
    let mut table = Table::new(&[
        ("NUMBER", Align::Left),
        ("CUSTOMER", Align::Left),
        ("PERIOD", Align::Left),
        ("CURRENCY", Align::Left),
        ("TOTAL", Align::Right),
        ("DUE", Align::Right),
        ("", Align::Left),
    ]);
    for invoice in &run.invoices {
        let state = match (run.draft, invoice.created) {
            (true, _) => "draft",
            (false, true) => "issued",
            (false, false) => "issued before",
        };
        table.row(vec![
            invoice.number.clone().unwrap_or_else(|| "-".into()),
            invoice.customer_id.clone(),
            days_text(invoice.period_start, invoice.period_end),
            invoice.currency.clone(),
            text(invoice.total),
            text(invoice.amount_due),
            state.to_string(),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// `-5.00` for an amount taken off.
fn minus(value: Decimal) -> String {
    if value.is_zero() {
        value.to_string()
    } else {
        format!("-{value}")
    }
}

pub fn invoice_text(invoice: &Invoice) -> String {
    let mut out = format!(
        "invoice {}  {}\n",
        invoice.number,
        invoice.status.name().replace('_', " ")
    );
    let jurisdiction = match &invoice.region {
        Some(region) => format!("{} / {region}", invoice.country),
        None => invoice.country.clone(),
    };
    out.push_str(&fields(&[
        (
            "customer",
            format!(
                "{} (subscription {})",
                invoice.customer_id, invoice.subscription_id
            ),
        ),
        ("tax id", invoice.tax_id.clone()),
        ("jurisdiction", jurisdiction),
        (
            "closes",
            // An invoice that closes no period (a start, a change) has none.
            if invoice.period_start < invoice.period_end {
                days_text(invoice.period_start, invoice.period_end)
            } else {
                "-".to_string()
            },
        ),
        ("billing date", invoice.period_end.to_string()),
        ("issued", invoice.issued_on.to_string()),
        ("due", invoice.due_on.to_string()),
        ("currency", invoice.currency.clone()),
        ("void", invoice.void_reason.clone().unwrap_or_default()),
    ]));
    out.push('\n');
    let mut table = Table::new(&[
        ("#", Align::Right),
        ("LINE", Align::Left),
        ("DAYS", Align::Left),
        ("QUANTITY", Align::Right),
        ("AMOUNT", Align::Right),
        ("DISCOUNT", Align::Right),
        ("TAX", Align::Right),
        ("TOTAL", Align::Right),
    ]);
    for (index, line) in invoice.lines.iter().enumerate() {
        let name = match (line.kind, line.charge_code.is_empty()) {
            (InvoiceLineKind::Charge, false) => format!("{}:{}", line.plan_code, line.charge_code),
            (kind, false) => format!(
                "{} {}:{}",
                kind.name().replace('_', " "),
                line.plan_code,
                line.charge_code
            ),
            (kind, true) => kind.name().replace('_', " "),
        };
        let tax: Decimal = line.taxes.iter().map(|tax| tax.amount).sum();
        table.row(vec![
            index.to_string(),
            name,
            days_text(line.start, line.end),
            text(line.billable_quantity),
            text(line.amount),
            minus(line.discount),
            text(tax),
            text(line.total),
        ]);
    }
    out.push_str(&table.render());
    for (index, line) in invoice.lines.iter().enumerate() {
        if !line.explanation.is_empty() {
            out.push_str(&format!("  {index}: {}\n", line.explanation));
        }
    }
    out.push('\n');
    let mut totals: Vec<(String, String)> = vec![("subtotal".into(), text(invoice.subtotal))];
    for coupon in &invoice.coupons {
        totals.push((format!("discount {}", coupon.code), minus(coupon.amount)));
    }
    if invoice.coupons.is_empty() && !invoice.discount.is_zero() {
        totals.push(("discount".into(), minus(invoice.discount)));
    }
    for tax in &invoice.taxes {
        totals.push((
            format!("tax {} ({} %)", tax.code, tax.rate),
            format!("{} (on {})", tax.amount, tax.base),
        ));
    }
    totals.push(("total".into(), text(invoice.total)));
    if !invoice.credit_applied.is_zero() {
        totals.push(("credit applied".into(), minus(invoice.credit_applied)));
    }
    totals.push(("amount due".into(), text(invoice.amount_due)));
    totals.push(("paid".into(), text(invoice.paid)));
    if !invoice.credited.is_zero() {
        totals.push(("credited".into(), text(invoice.credited)));
    }
    totals.push(("outstanding".into(), text(invoice.outstanding)));
    let pairs: Vec<(&str, String)> = totals
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    out.push_str(&fields(&pairs));
    let documents = fields(&[
        ("payments", invoice.payments.join(", ")),
        ("credit notes", invoice.credit_notes.join(", ")),
    ]);
    if !documents.is_empty() {
        out.push('\n');
        out.push_str(&documents);
    }
    out
}

fn invoices_table(invoices: &[Invoice]) -> String {
    let mut table = Table::new(&[
        ("NUMBER", Align::Left),
        ("CUSTOMER", Align::Left),
        ("PERIOD", Align::Left),
        ("ISSUED", Align::Left),
        ("DUE", Align::Left),
        ("CURRENCY", Align::Left),
        ("TOTAL", Align::Right),
        ("OUTSTANDING", Align::Right),
        ("STATUS", Align::Left),
    ]);
    for invoice in invoices {
        table.row(vec![
            invoice.number.clone(),
            invoice.customer_id.clone(),
            days_text(invoice.period_start, invoice.period_end),
            invoice.issued_on.to_string(),
            invoice.due_on.to_string(),
            invoice.currency.clone(),
            text(invoice.total),
            text(invoice.outstanding),
            invoice.status.name().replace('_', " "),
        ]);
    }
    table.render()
}

fn credit_note_text(note: &CreditNote) -> String {
    let mut out = format!(
        "issued credit note {} on invoice {} ({}): {} {}\n",
        note.number, note.invoice_number, note.reason, note.total, note.currency
    );
    out.push_str(&fields(&[
        ("off what is owed", text(note.to_invoice)),
        ("to customer credit", text(note.to_credit)),
    ]));
    let mut table = Table::new(&[
        ("LINE", Align::Right),
        ("NET", Align::Right),
        ("TAX", Align::Right),
        ("TOTAL", Align::Right),
    ]);
    for line in &note.lines {
        let tax: Decimal = line.taxes.iter().map(|tax| tax.amount).sum();
        table.row(vec![
            line.line.to_string(),
            text(line.net),
            text(tax),
            text(line.total),
        ]);
    }
    out.push_str(&table.render());
    out
}

fn payment_text(payment: &Payment) -> String {
    let head = if payment.created {
        "recorded"
    } else {
        "already recorded:"
    };
    let mut out = format!(
        "{head} {} {} of {} {} from {} (received {})\n",
        payment.kind.name().replace('_', " "),
        payment.payment_id,
        payment.amount,
        payment.currency,
        payment.customer_id,
        payment.received_on
    );
    let mut pairs: Vec<(String, String)> = payment
        .allocations
        .iter()
        .map(|allocation| {
            (
                format!("to {}", allocation.invoice_number),
                text(allocation.amount),
            )
        })
        .collect();
    pairs.push(("to credit".into(), text(payment.to_credit)));
    let pairs: Vec<(&str, String)> = pairs
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    out.push_str(&fields(&pairs));
    out
}

fn credit_text(credit: &CustomerCredit) -> String {
    format!(
        "{} has {} {} of credit\n",
        credit.customer_id, credit.amount, credit.currency
    )
}

/// One total row per currency.
fn ageing_totals(rows: &[AgeingRow]) -> Vec<AgeingRow> {
    let mut totals: Vec<AgeingRow> = Vec::new();
    for row in rows {
        let index = match totals.iter().position(|t| t.currency == row.currency) {
            Some(index) => index,
            None => {
                totals.push(AgeingRow {
                    customer_id: "TOTAL".into(),
                    currency: row.currency.clone(),
                    buckets: [Decimal::ZERO; 5],
                    total: Decimal::ZERO,
                });
                totals.len() - 1
            }
        };
        let total = &mut totals[index];
        for (sum, value) in total.buckets.iter_mut().zip(row.buckets) {
            *sum += value;
        }
        total.total += row.total;
    }
    totals.sort_by(|a, b| a.currency.cmp(&b.currency));
    totals
}

pub fn ageing_text(ageing: &ReceivableAgeing) -> String {
    let mut out = format!("receivables as of {}\n", ageing.as_of);
    if ageing.rows.is_empty() {
        out.push_str("nothing is owed\n");
        return out;
    }
    let mut columns = vec![
        ("CUSTOMER".to_string(), Align::Left),
        ("CURRENCY".to_string(), Align::Left),
    ];
    columns.extend(
        AGEING_BUCKETS
            .iter()
            .map(|name| (name.to_uppercase(), Align::Right)),
    );
    columns.push(("TOTAL".to_string(), Align::Right));
    let mut table = Table::with_columns(columns);
    let row = |row: &AgeingRow| {
        let mut cells = vec![row.customer_id.clone(), row.currency.clone()];
        cells.extend(row.buckets.iter().map(|value| text(*value)));
        cells.push(text(row.total));
        cells
    };
    for line in &ageing.rows {
        table.row(row(line));
    }
    table.rule();
    for total in ageing_totals(&ageing.rows) {
        table.row(row(&total));
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use tally_client::{
        CouponDiscount, CouponDuration, InvoiceLine, InvoiceStatus, InvoiceTaxTotal,
    };

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    #[test]
    fn progress_is_a_bar_and_a_count() {
        // Goal: the bar fills in proportion; a total of 0 does not divide by zero.
        assert_eq!(
            progress_text(RunProgress {
                done: 1000,
                total: 4000
            }),
            "[######..................]  1000/4000 invoices (25 %)"
        );
        assert!(progress_text(RunProgress { done: 0, total: 0 }).contains("0/0"));
    }

    #[test]
    fn coupon_files_are_checked_with_their_field() {
        // Goal: a coupon file reads into the ledger's Coupon; a broken rule names its
        // field; the rating coupon file's usage keys are not part of a grant.
        let coupon = parse_coupon(
            "code = \"welcome10\"\ndiscount = { kind = \"percentage\", percent = \"10\" }\nduration = { kind = \"forever\" }\n",
            Some(Format::Toml),
        )
        .unwrap();
        assert_eq!(coupon.duration, CouponDuration::Forever);
        assert!(matches!(coupon.discount, CouponDiscount::Percentage { .. }));
        let error = parse_coupon(
            "code = \"c\"\ndiscount = { kind = \"percentage\", percent = \"120\" }\nduration = { kind = \"once\" }\n",
            Some(Format::Toml),
        )
        .unwrap_err();
        assert!(error.starts_with("discount.percent: "), "{error}");
        let used = parse_coupon(
            "code = \"c\"\ndiscount = { kind = \"percentage\", percent = \"10\" }\nduration = { kind = \"once\" }\nperiods_used = 1\n",
            Some(Format::Toml),
        );
        assert!(used.unwrap_err().contains("periods_used"));
    }

    fn invoice() -> Invoice {
        let line = InvoiceLine {
            kind: InvoiceLineKind::Charge,
            plan_code: "basic".into(),
            plan_version: 1,
            charge_code: "platform".into(),
            description: "platform fee".into(),
            start: day("2026-04-01"),
            end: day("2026-05-01"),
            quantity: dec!(1),
            free_units: dec!(0),
            billable_quantity: dec!(1),
            tiers: vec![],
            explanation: "flat 20.00".into(),
            amount: dec!(20.00),
            discount: dec!(0),
            taxes: vec![],
            net: dec!(20.00),
            total: dec!(20.00),
            usage: None,
        };
        Invoice {
            number: "INV-2026-000001".into(),
            series: "INV".into(),
            year: 2026,
            sequence: 1,
            customer_id: "acme".into(),
            subscription_id: "sub-acme".into(),
            currency: "USD".into(),
            period_start: day("2026-04-01"),
            period_end: day("2026-05-01"),
            usage_from: 0,
            usage_to: 0,
            usage_journal_length: 0,
            country: "DE".into(),
            region: None,
            tax_id: String::new(),
            issued_on: day("2026-05-02"),
            due_on: day("2026-06-01"),
            lines: vec![line],
            coupons: vec![],
            taxes: vec![InvoiceTaxTotal {
                code: "vat_de".into(),
                rate: dec!(19),
                base: dec!(20.00),
                amount: dec!(3.80),
            }],
            subtotal: dec!(20.00),
            discount: dec!(0),
            tax: dec!(3.80),
            total: dec!(23.80),
            credit_applied: dec!(0),
            amount_due: dec!(23.80),
            status: InvoiceStatus::PartiallyPaid,
            paid: dec!(10.00),
            credited: dec!(0),
            outstanding: dec!(13.80),
            credit_notes: vec![],
            payments: vec!["pay-1".into()],
            void_reason: None,
            seq: 9,
        }
    }

    #[test]
    fn an_invoice_reads_like_an_invoice() {
        // Goal: the header names the number and status; the lines are a table with their
        // explanations; the totals end with what is owed; JSON keeps decimals as strings.
        let shown = invoice_text(&invoice());
        assert!(
            shown.starts_with("invoice INV-2026-000001  partially paid\n"),
            "{shown}"
        );
        assert!(shown.contains("  0: flat 20.00\n"), "{shown}");
        let total = shown
            .lines()
            .find(|line| line.starts_with("total "))
            .unwrap();
        assert_eq!(
            total.split_whitespace().collect::<Vec<_>>(),
            ["total", "23.80"]
        );
        assert!(shown.contains("tax vat_de (19 %)"), "{shown}");
        assert!(shown.contains("payments"), "{shown}");
        let value = invoice_json(&invoice());
        assert_eq!(value["total"], "23.80");
        assert_eq!(value["status"], "partially_paid");
        assert_eq!(value["lines"][0]["usage"], Value::Null);
    }

    #[test]
    fn ageing_totals_per_currency() {
        // Goal: one row per customer, then a total row per currency under a rule.
        let row = |customer: &str, currency: &str, late: Decimal| AgeingRow {
            customer_id: customer.into(),
            currency: currency.into(),
            buckets: [dec!(0), late, dec!(0), dec!(0), dec!(0)],
            total: late,
        };
        let ageing = ReceivableAgeing {
            as_of: day("2026-06-11"),
            rows: vec![
                row("acme", "USD", dec!(15.00)),
                row("beta", "USD", dec!(5.00)),
                row("initech", "EUR", dec!(33.55)),
            ],
        };
        let shown = ageing_text(&ageing);
        let cells = |first: &str, currency: &str| -> Vec<String> {
            shown
                .lines()
                .find(|line| line.starts_with(first) && line.contains(currency))
                .unwrap_or_else(|| panic!("no {first} row in:\n{shown}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(cells("TOTAL", "USD")[3], "20.00", "{shown}");
        assert_eq!(cells("TOTAL", "EUR").last().unwrap(), "33.55", "{shown}");
        let value = ageing_json(&ageing);
        assert_eq!(value["rows"][0]["buckets"]["1-30"], "15.00");
        assert_eq!(value["totals"].as_array().unwrap().len(), 2);
    }
}
