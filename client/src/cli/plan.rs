//! `tally plan`: publish price plans from TOML or JSON documents, list and show their
//! versions, quote quantities under a plan, and simulate a price change on recorded usage.
//!
//! A plan document is `PlanSpec`'s serde form (`docs/examples/plan-pro.toml`). Documents,
//! coupon files and tax files are read here and checked with the ledger's own rules before
//! anything is sent, so that a typo is reported with its field path (exit 2) and never
//! reaches the journal. A coupon file holds one coupon and how much of it is used:
//!
//! ```toml
//! code = "launch10"
//! discount = { kind = "percentage", percent = "10" }
//! duration = { kind = "periods", count = 3 }
//! periods_used = 1        # optional, default 0
//! # remaining = "20.00"   # optional: a fixed `once` coupon's unused part
//! ```
//!
//! A tax file holds the rules applied together:
//!
//! ```toml
//! [[taxes]]
//! code = "vat_de"
//! country = "DE"
//! rate = "19"
//! ```

use std::fmt::Display;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tally_client::{
    AppliedTier, ChargeQuantity, Client, Coupon, CouponDiscount, CouponDuration, CouponGrant,
    CustomerSimulation, Day, Decimal, FlatTiming, LineKind, PlanChoice, PlanSpec, PlanVersion,
    QuoteRequest, RatedLine, RatingResult, SimulateRequest, SimulationResult, TaxMode, TaxRule,
};
use tally_core::decimal::Dec;
use tally_core::plan::validate_tax_rules;

use super::args::{PlanCommand, QuoteArgs, SimulateArgs};
use super::commands::Printer;
use super::render::{self, fields, Align, Table};
use super::CliError;

/// The longest plan, coupon or tax file read.
const FILE_BYTES_MAX: u64 = 1024 * 1024;

pub async fn run(
    client: &Client,
    printer: &mut Printer<'_>,
    command: PlanCommand,
) -> Result<(), CliError> {
    match command {
        PlanCommand::Publish { file } => publish(client, printer, &file).await,
        PlanCommand::List { code } => {
            let plans = client.list_plans(code.as_deref()).await?;
            printer.show(
                || Value::Array(plans.iter().map(version_json).collect()),
                || plans_table(&plans),
            )
        }
        PlanCommand::Show { code, version, .. } => {
            let version = client.get_plan(&code, version).await?;
            // Computed first: writing TOML can fail, and `show` takes infallible closures.
            let text = if printer.json {
                String::new()
            } else {
                plan_toml(&version)?
            };
            printer.show(|| document_json(&version.spec), || text)
        }
        PlanCommand::Quote(args) => quote(client, printer, args).await,
        PlanCommand::Simulate(args) => simulate(client, printer, args).await,
    }
}

// ---------------------------------------------------------------------------------------
// Documents.

/// The two document formats, told apart by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("toml") => Some(Format::Toml),
            Some("json") => Some(Format::Json),
            _ => None,
        }
    }
}

/// `path: message`, the form of every file error (exit 2).
fn file_error(path: &Path, message: impl Display) -> CliError {
    CliError::Usage(format!("{}: {message}", path.display()))
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

/// `field.path: message`; the whole document's errors (a missing top-level field) have no
/// path to show.
fn with_path(path: &serde_path_to_error::Path, inner: impl Display) -> String {
    let path = path.to_string();
    if path == "." {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    }
}

/// Reads a document of type `T` in `format`, or, without one, as JSON and else as TOML.
/// An error names the field path and, from the parser, the line and column.
pub fn parse_document<T: DeserializeOwned>(
    text: &str,
    format: Option<Format>,
) -> Result<T, String> {
    let toml = |text: &str| -> Result<T, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|error| error.to_string())?;
        serde_path_to_error::deserialize(deserializer)
            .map_err(|error| with_path(error.path(), error.inner()))
    };
    let json = |text: &str| -> Result<T, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value: T = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| with_path(error.path(), error.inner()))?;
        deserializer.end().map_err(|error| error.to_string())?;
        Ok(value)
    };
    match format {
        Some(Format::Toml) => toml(text),
        Some(Format::Json) => json(text),
        None => json(text).or_else(|json_error| {
            toml(text).map_err(|toml_error| {
                // Neither reads: report the error of the format the text looks like.
                if text.trim_start().starts_with('{') {
                    json_error
                } else {
                    toml_error
                }
            })
        }),
    }
}

fn read_document<T: DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    let text = read_text(path)?;
    parse_document(&text, Format::of(path)).map_err(|error| file_error(path, error))
}

/// A plan document, read and checked with the ledger's rules.
fn read_plan(path: &Path) -> Result<PlanSpec, CliError> {
    let spec: PlanSpec = read_document(path)?;
    spec.validate().map_err(|error| file_error(path, error))?;
    Ok(spec)
}

/// A coupon file: one coupon and how much of it is used. Unknown keys are refused so that
/// a typo is not a silent default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CouponFile {
    code: String,
    discount: CouponDiscount,
    duration: CouponDuration,
    #[serde(default)]
    periods_used: u32,
    #[serde(default)]
    remaining: Option<Dec>,
}

/// Reads a coupon file's text and checks the coupon.
pub fn parse_coupon(text: &str, format: Option<Format>) -> Result<CouponGrant, String> {
    let file: CouponFile = parse_document(text, format)?;
    let coupon = Coupon {
        code: file.code,
        discount: file.discount,
        duration: file.duration,
    };
    // Checked at the document's root: its fields are `code`, `discount.percent`, ...
    coupon.validate("").map_err(|error| {
        let field = error.field.trim_start_matches('.');
        format!("{field}: {}", error.message)
    })?;
    // As the server rules: only a fixed-amount once coupon carries a remainder.
    let fixed_once = matches!(
        (&coupon.discount, coupon.duration),
        (CouponDiscount::Fixed { .. }, CouponDuration::Once)
    );
    if file.remaining.is_some() && !fixed_once {
        return Err(
            "remaining: only a fixed-amount coupon lasting once has a remaining amount".into(),
        );
    }
    Ok(CouponGrant {
        coupon,
        periods_used: file.periods_used,
        remaining: file.remaining.map(Dec::value),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxFile {
    taxes: Vec<TaxRule>,
}

/// Reads a tax file's text and checks its rules together.
pub fn parse_taxes(text: &str, format: Option<Format>) -> Result<Vec<TaxRule>, String> {
    let file: TaxFile = parse_document(text, format)?;
    let rules: Vec<&TaxRule> = file.taxes.iter().collect();
    validate_tax_rules(&rules, "taxes").map_err(|error| error.to_string())?;
    Ok(file.taxes)
}

/// The document in TOML, with a comment naming the version (TOML comments do not change
/// the document, so the output publishes back unchanged).
fn plan_toml(version: &PlanVersion) -> Result<String, CliError> {
    let body = toml::to_string(&version.spec)
        .map_err(|error| CliError::Output(format!("cannot write the plan as TOML: {error}")))?;
    Ok(format!(
        "# plan {} version {}, published {} (seq {})\n{body}",
        version.code(),
        version.version,
        render::time_ns(version.published_at),
        version.seq
    ))
}

fn document_json(spec: &PlanSpec) -> Value {
    // A PlanSpec is plain data (strings, decimals as strings, maps with string keys): it
    // always has a JSON form.
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------
// publish, list

async fn publish(client: &Client, printer: &mut Printer<'_>, file: &Path) -> Result<(), CliError> {
    let spec = read_plan(file)?;
    let version = client.publish_plan(&spec).await?;
    printer.show(|| version_json(&version), || publish_text(&version))
}

fn publish_text(version: &PlanVersion) -> String {
    if version.created {
        format!(
            "published {} v{} (seq {})\n",
            version.code(),
            version.version,
            version.seq
        )
    } else {
        format!(
            "unchanged: {} v{} is current\n",
            version.code(),
            version.version
        )
    }
}

pub fn version_json(version: &PlanVersion) -> Value {
    let spec = &version.spec;
    json!({
        "code": spec.code,
        "version": version.version,
        "name": spec.name,
        "currency": spec.currency,
        "interval": spec.interval.unit.name(),
        "anchor": spec.interval.anchor.to_string(),
        "charges": spec.charges.len(),
        "seq": version.seq,
        "published_at": render::time_ns(version.published_at),
        "created": version.created,
        "plan": document_json(spec),
    })
}

fn plans_table(plans: &[PlanVersion]) -> String {
    let mut table = Table::new(&[
        ("CODE", Align::Left),
        ("VERSION", Align::Right),
        ("NAME", Align::Left),
        ("CURRENCY", Align::Left),
        ("INTERVAL", Align::Left),
        ("ANCHOR", Align::Left),
        ("CHARGES", Align::Right),
        ("SEQ", Align::Right),
    ]);
    for version in plans {
        let spec = &version.spec;
        table.row(vec![
            spec.code.clone(),
            version.version.to_string(),
            spec.name.clone(),
            spec.currency.clone(),
            spec.interval.unit.name().to_string(),
            spec.interval.anchor.to_string(),
            spec.charges.len().to_string(),
            version.seq.to_string(),
        ]);
    }
    table.render()
}

// ---------------------------------------------------------------------------------------
// quote

/// The days of `--period` or `--from`/`--to`; none when neither was given (clap allows
/// only one of the two, and --from only with --to).
fn days(
    period: Option<tally_client::Period>,
    from: Option<Day>,
    to: Option<Day>,
) -> (Option<Day>, Option<Day>) {
    match period {
        Some(period) => (Some(period.start), Some(period.end)),
        None => (from, to),
    }
}

/// One entry per charge: `--usage` gives its quantity, `--transactions` its transactions;
/// a charge named twice by the same flag is refused (which one would count?).
fn charge_quantities(
    quantities: Vec<(String, Decimal)>,
    transactions: Vec<(String, Vec<Decimal>)>,
) -> Result<Vec<ChargeQuantity>, CliError> {
    let mut usage: Vec<ChargeQuantity> = Vec::new();
    for (charge, quantity) in quantities {
        if usage.iter().any(|entry| entry.charge == charge) {
            return Err(CliError::Usage(format!(
                "--usage {charge}: given twice; give each charge's quantity once"
            )));
        }
        usage.push(ChargeQuantity {
            charge,
            quantity: Some(quantity),
            transactions: Vec::new(),
        });
    }
    for (charge, amounts) in transactions {
        match usage.iter_mut().find(|entry| entry.charge == charge) {
            Some(entry) if !entry.transactions.is_empty() => {
                return Err(CliError::Usage(format!(
                    "--transactions {charge}: given twice; list its amounts once, comma-separated"
                )))
            }
            Some(entry) => entry.transactions = amounts,
            None => usage.push(ChargeQuantity {
                charge,
                quantity: None,
                transactions: amounts,
            }),
        }
    }
    Ok(usage)
}

async fn quote(
    client: &Client,
    printer: &mut Printer<'_>,
    args: QuoteArgs,
) -> Result<(), CliError> {
    let plan = match (args.plan, &args.draft) {
        (Some(key), _) => PlanChoice::Published(key),
        (None, Some(path)) => PlanChoice::Draft(read_plan(path)?),
        (None, None) => {
            return Err(CliError::Usage(
                "a plan is required: CODE[@VERSION] or --draft FILE".into(),
            ))
        }
    };
    let (period_start, period_end) = days(args.period, args.from, args.to);
    let coupons = args
        .coupons
        .iter()
        .map(|path| {
            let text = read_text(path)?;
            parse_coupon(&text, Format::of(path)).map_err(|error| file_error(path, error))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    let taxes = match &args.tax {
        Some(path) => {
            let text = read_text(path)?;
            parse_taxes(&text, Format::of(path)).map_err(|error| file_error(path, error))?
        }
        None => Vec::new(),
    };
    let mut request = QuoteRequest::new(plan);
    request.period_start = period_start;
    request.period_end = period_end;
    request.usage = charge_quantities(args.usage, args.transactions)?;
    request.coupons = coupons;
    request.taxes = taxes;
    for (reason, amount) in args.adjustments {
        request = request.adjustment(reason, amount);
    }
    let result = client.quote(&request).await?;
    printer.show(|| rating_json(&result), || rating_text(&result))
}

// ---------------------------------------------------------------------------------------
// simulate

async fn simulate(
    client: &Client,
    printer: &mut Printer<'_>,
    args: SimulateArgs,
) -> Result<(), CliError> {
    let candidate = match (args.candidate, &args.file) {
        (Some(key), _) => PlanChoice::Published(key),
        (None, Some(path)) => PlanChoice::Draft(read_plan(path)?),
        (None, None) => {
            return Err(CliError::Usage(
                "a candidate is required: FILE or --candidate CODE[@VERSION]".into(),
            ))
        }
    };
    let period = match days(args.period, args.from, args.to) {
        (Some(start), Some(end)) => tally_client::Period { start, end },
        _ => {
            return Err(CliError::Usage(
                "the days to re-rate are required: --period YYYY-MM or --from and --to".into(),
            ))
        }
    };
    let request = SimulateRequest {
        candidate,
        baseline: args.baseline,
        period,
        customers: args.customers,
        explain: args.explain,
    };
    let result = client.simulate(&request).await?;
    printer.show(|| simulation_json(&result), || simulation_text(&result))
}

// ---------------------------------------------------------------------------------------
// Output: JSON (decimals as strings, never numbers).

fn text(value: Decimal) -> String {
    value.to_string()
}

fn optional_text(value: Option<Decimal>) -> Value {
    value.map_or(Value::Null, |value| Value::String(value.to_string()))
}

fn timing_name(timing: FlatTiming) -> &'static str {
    match timing {
        FlatTiming::InAdvance => "in_advance",
        FlatTiming::InArrears => "in_arrears",
    }
}

fn tax_mode_name(mode: TaxMode) -> &'static str {
    match mode {
        TaxMode::Exclusive => "exclusive",
        TaxMode::Inclusive => "inclusive",
    }
}

fn tier_json(tier: &AppliedTier) -> Value {
    json!({
        "from": text(tier.from),
        "up_to": optional_text(tier.up_to),
        "quantity": text(tier.quantity),
        "unit_price": text(tier.unit_price),
        "flat_fee": text(tier.flat_fee),
        "amount": text(tier.amount),
    })
}

fn line_json(line: &RatedLine) -> Value {
    let package = line.package.as_ref().map(|package| {
        json!({
            "size": text(package.size),
            "blocks": text(package.blocks),
            "price": text(package.price),
        })
    });
    let percentage = line.percentage.as_ref().map(|detail| {
        json!({
            "transactions": detail.transactions,
            "volume": text(detail.volume),
            "rate": text(detail.rate),
            "fixed_fee": text(detail.fixed_fee),
            "raised_to_min": detail.raised_to_min,
            "cut_to_max": detail.cut_to_max,
        })
    });
    let proration = line.proration.as_ref().map(|proration| {
        json!({
            "full_amount": text(proration.full_amount),
            "days": proration.days,
            "period_days": proration.period_days,
        })
    });
    let taxes: Vec<Value> = line
        .taxes
        .iter()
        .map(|tax| json!({ "code": tax.code, "rate": text(tax.rate), "amount": text(tax.amount) }))
        .collect();
    json!({
        "kind": line.kind.name(),
        "code": line.code,
        "description": line.description,
        "model": line.model,
        "meter": line.meter,
        "group": line.group,
        "timing": line.timing.map(timing_name),
        "quantity": text(line.quantity),
        "free_units": text(line.free_units),
        "billable_quantity": text(line.billable_quantity),
        "tiers": line.tiers.iter().map(tier_json).collect::<Vec<_>>(),
        "package": package,
        "percentage": percentage,
        "proration": proration,
        "unrounded": text(line.unrounded),
        "rounding": text(line.rounding),
        "amount": text(line.amount),
        "discount": text(line.discount),
        "amount_after_discount": text(line.amount_after_discount),
        "taxes": taxes,
        "tax": text(line.tax),
        "total": text(line.total),
    })
}

pub fn rating_json(result: &RatingResult) -> Value {
    let discounts: Vec<Value> = result
        .discounts
        .iter()
        .map(|discount| {
            json!({
                "coupon": discount.coupon,
                "amount": text(discount.amount),
                "remaining": optional_text(discount.remaining),
            })
        })
        .collect();
    let taxes: Vec<Value> = result
        .taxes
        .iter()
        .map(|tax| {
            json!({
                "code": tax.code,
                "rate": text(tax.rate),
                "taxable": text(tax.taxable),
                "unrounded": text(tax.unrounded),
                "rounding": text(tax.rounding),
                "amount": text(tax.amount),
            })
        })
        .collect();
    json!({
        "plan": result.plan,
        "plan_version": result.plan_version,
        "currency": result.currency,
        "period_start": result.period.start.to_string(),
        "period_end": result.period.end.to_string(),
        "billing_period_start": result.billing_period.start.to_string(),
        "billing_period_end": result.billing_period.end.to_string(),
        "lines": result.lines.iter().map(line_json).collect::<Vec<_>>(),
        "subtotal": text(result.subtotal),
        "discounts": discounts,
        "discount_total": text(result.discount_total),
        "tax_mode": tax_mode_name(result.tax_mode),
        "taxes": taxes,
        "tax_total": text(result.tax_total),
        "net_total": text(result.net_total),
        "total": text(result.total),
    })
}

fn customer_json(customer: &CustomerSimulation) -> Value {
    let mut value = json!({
        "customer": customer.customer,
        "current_total": text(customer.current_total),
        "simulated_total": text(customer.simulated_total),
        "difference": text(customer.difference),
    });
    if let Some(current) = &customer.current {
        value["current"] = rating_json(current);
    }
    if let Some(simulated) = &customer.simulated {
        value["simulated"] = rating_json(simulated);
    }
    value
}

pub fn simulation_json(result: &SimulationResult) -> Value {
    json!({
        "currency": result.currency,
        "baseline_plan": result.baseline_plan,
        "baseline_version": result.baseline_version,
        "candidate_plan": result.candidate_plan,
        "candidate_version": result.candidate_version,
        "period_start": result.period.start.to_string(),
        "period_end": result.period.end.to_string(),
        "as_of_seq": result.as_of_seq,
        "customers": result.customers.iter().map(customer_json).collect::<Vec<_>>(),
        "current_total": text(result.current_total),
        "simulated_total": text(result.simulated_total),
        "difference": text(result.difference),
    })
}

// ---------------------------------------------------------------------------------------
// Output: text a customer could read.

/// `+1.50`, `-1.50`, `0.00`: a change shows its direction.
fn signed(value: Decimal) -> String {
    if value > Decimal::ZERO {
        format!("+{value}")
    } else {
        value.to_string()
    }
}

/// `-12.75` for a discount of 12.75 (it is taken off).
fn minus(value: Decimal) -> String {
    if value.is_zero() {
        value.to_string()
    } else {
        format!("-{value}")
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|line| format!("{by}{line}\n")).collect()
}

/// `above 5 through 10`, or `above 10` for the last tier: a tier holds the units above its
/// lower bound, through its upper one.
fn tier_range(tier: &AppliedTier) -> String {
    match tier.up_to {
        Some(up_to) => format!("above {} through {up_to}", tier.from),
        None => format!("above {}", tier.from),
    }
}

fn tiers_table(tiers: &[AppliedTier]) -> String {
    let mut table = Table::new(&[
        ("TIER", Align::Right),
        ("UNITS", Align::Left),
        ("QUANTITY", Align::Right),
        ("UNIT PRICE", Align::Right),
        ("FLAT FEE", Align::Right),
        ("AMOUNT", Align::Right),
    ]);
    for (index, tier) in tiers.iter().enumerate() {
        table.row(vec![
            (index + 1).to_string(),
            tier_range(tier),
            text(tier.quantity),
            text(tier.unit_price),
            text(tier.flat_fee),
            text(tier.amount),
        ]);
    }
    table.render()
}

/// The line's heading: what it is, and how it is priced.
fn line_heading(line: &RatedLine) -> String {
    let title = match (line.kind, line.description.is_empty()) {
        (LineKind::Charge, true) => line.code.clone(),
        (LineKind::Charge, false) => format!("{}: {}", line.code, line.description),
        (LineKind::MinimumCommitment, _) => "minimum commitment (true-up)".to_string(),
        (LineKind::Adjustment, true) => format!("adjustment: {}", line.code),
        (LineKind::Adjustment, false) => format!("adjustment: {}", line.description),
    };
    let mut how: Vec<String> = Vec::new();
    if !line.model.is_empty() {
        how.push(line.model.replace('_', " "));
    }
    if let Some(timing) = line.timing {
        how.push(timing_name(timing).replace('_', " "));
    }
    if let Some(meter) = &line.meter {
        how.push(format!("meter {meter}"));
    }
    if !line.group.is_empty() {
        how.push(render::metadata(&line.group));
    }
    if how.is_empty() {
        format!("{title}\n")
    } else {
        format!("{title} ({})\n", how.join(", "))
    }
}

fn line_text(line: &RatedLine) -> String {
    let mut before: Vec<(&str, String)> = Vec::new();
    if line.meter.is_some() || line.percentage.is_some() {
        before.push(("quantity", text(line.quantity)));
        before.push(("free units", text(line.free_units)));
        before.push(("billable quantity", text(line.billable_quantity)));
    }
    if let Some(package) = &line.package {
        before.push((
            "packages",
            format!(
                "{} started blocks of {} at {}",
                package.blocks, package.size, package.price
            ),
        ));
    }
    if let Some(detail) = &line.percentage {
        let mut fee = format!(
            "{} % of {} over {} transactions",
            detail.rate, detail.volume, detail.transactions
        );
        if !detail.fixed_fee.is_zero() {
            fee.push_str(&format!(", plus {} each", detail.fixed_fee));
        }
        if detail.raised_to_min > 0 {
            fee.push_str(&format!("; {} raised to the minimum", detail.raised_to_min));
        }
        if detail.cut_to_max > 0 {
            fee.push_str(&format!("; {} cut to the maximum", detail.cut_to_max));
        }
        before.push(("percentage", fee));
    }
    if let Some(proration) = &line.proration {
        // A true-up's proration is of the commitment, not of the line's own amount (which
        // is what the charges fell short of it).
        let key = match line.kind {
            LineKind::MinimumCommitment => "minimum",
            _ => "prorated",
        };
        before.push((
            key,
            format!(
                "{} for {} of {} days",
                proration.full_amount, proration.days, proration.period_days
            ),
        ));
    }
    let mut after: Vec<(String, String)> = vec![
        ("unrounded".into(), text(line.unrounded)),
        ("rounding".into(), signed(line.rounding)),
        ("amount".into(), text(line.amount)),
    ];
    if !line.discount.is_zero() {
        after.push(("discount".into(), minus(line.discount)));
        after.push(("after discount".into(), text(line.amount_after_discount)));
    }
    for tax in &line.taxes {
        after.push((
            format!("tax {} ({} %)", tax.code, tax.rate),
            text(tax.amount),
        ));
    }
    after.push(("total".into(), text(line.total)));

    // One alignment for the whole block, with the tiers between the quantities and the
    // amounts. No value here is empty, so `fields` keeps every row and `split` is the
    // first amount's row.
    let split = before.len();
    let mut pairs: Vec<(&str, String)> = before;
    pairs.extend(
        after
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone())),
    );
    let mut out = line_heading(line);
    for (index, row) in fields(&pairs).lines().enumerate() {
        if index == split && !line.tiers.is_empty() {
            out.push_str(&indent(&tiers_table(&line.tiers), "    "));
        }
        out.push_str(&format!("  {row}\n"));
    }
    out
}

/// The whole rating: the header, one block per line, then the invoice's totals.
pub fn rating_text(result: &RatingResult) -> String {
    let plan = match result.plan_version {
        0 => format!("draft plan {}", result.plan),
        version => format!("plan {} v{version}", result.plan),
    };
    let mut out = format!(
        "{plan}, {}, {} to {} (billing period {} to {})\n",
        result.currency,
        result.period.start,
        result.period.end,
        result.billing_period.start,
        result.billing_period.end
    );
    for line in &result.lines {
        out.push('\n');
        out.push_str(&line_text(line));
    }
    let mut totals: Vec<(String, String)> = vec![("subtotal".into(), text(result.subtotal))];
    for discount in &result.discounts {
        let mut value = minus(discount.amount);
        match discount.remaining {
            Some(remaining) if remaining.is_zero() => value.push_str(" (used up)"),
            Some(remaining) => value.push_str(&format!(" ({remaining} left for later periods)")),
            None => {}
        }
        totals.push((format!("discount {}", discount.coupon), value));
    }
    totals.push(("net".into(), text(result.net_total)));
    for tax in &result.taxes {
        totals.push((
            format!("tax {} ({} %)", tax.code, tax.rate),
            format!(
                "{} (on {}, unrounded {}, rounding {})",
                tax.amount,
                tax.taxable,
                tax.unrounded,
                signed(tax.rounding)
            ),
        ));
    }
    if result.tax_mode == TaxMode::Inclusive && !result.taxes.is_empty() {
        totals.push(("prices".into(), "include the tax".into()));
    }
    totals.push(("total".into(), text(result.total)));
    let pairs: Vec<(&str, String)> = totals
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    out.push('\n');
    out.push_str(&fields(&pairs));
    out
}

fn plan_name(plan: &str, version: Option<u32>) -> String {
    match version {
        Some(version) => format!("{plan} v{version}"),
        None => format!("{plan} (draft)"),
    }
}

pub fn simulation_text(result: &SimulationResult) -> String {
    let mut out = format!(
        "baseline {}, candidate {}, {}, {} to {}, usage as of seq {}\n",
        plan_name(&result.baseline_plan, Some(result.baseline_version)),
        plan_name(&result.candidate_plan, result.candidate_version),
        result.currency,
        result.period.start,
        result.period.end,
        result.as_of_seq
    );
    let mut table = Table::new(&[
        ("CUSTOMER", Align::Left),
        ("CURRENT", Align::Right),
        ("SIMULATED", Align::Right),
        ("DIFFERENCE", Align::Right),
    ]);
    for customer in &result.customers {
        table.row(vec![
            customer.customer.clone(),
            text(customer.current_total),
            text(customer.simulated_total),
            signed(customer.difference),
        ]);
    }
    table.rule();
    table.row(vec![
        match result.customers.len() {
            1 => "TOTAL (1 customer)".to_string(),
            count => format!("TOTAL ({count} customers)"),
        },
        text(result.current_total),
        text(result.simulated_total),
        signed(result.difference),
    ]);
    out.push_str(&table.render());
    for customer in &result.customers {
        if let Some(current) = &customer.current {
            out.push_str(&format!("\n== {}: current\n", customer.customer));
            out.push_str(&rating_text(current));
        }
        if let Some(simulated) = &customer.simulated {
            out.push_str(&format!("\n== {}: simulated\n", customer.customer));
            out.push_str(&rating_text(simulated));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use std::collections::BTreeMap;
    use tally_client::{
        AppliedDiscount, CouponDuration, PackageDetail, Period, Pricing, Proration, TaxTotal,
    };

    const PLAN_PRO: &str = include_str!("../../../docs/examples/plan-pro.toml");

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    #[test]
    fn the_example_files_read_and_validate() {
        // Goal: the documents in docs/examples are what `plan publish`, `--coupon` and
        // `--tax` accept, so the docs never show a file the CLI refuses.
        let spec: PlanSpec = parse_document(PLAN_PRO, Some(Format::Toml)).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.charges.len(), 4);
        let Pricing::Graduated { tiers } = &spec.charges[1].pricing else {
            panic!("graduated expected");
        };
        assert_eq!(tiers[1].unit_price.0, dec!(0.0015));
        let launch = parse_coupon(
            include_str!("../../../docs/examples/coupon-launch10.toml"),
            Some(Format::Toml),
        )
        .unwrap();
        assert_eq!(launch.periods_used, 1);
        assert_eq!(launch.coupon.duration, CouponDuration::Periods { count: 3 });
        let credit = parse_coupon(
            include_str!("../../../docs/examples/coupon-welcome-credit.json"),
            None,
        )
        .unwrap();
        assert_eq!(credit.remaining, Some(dec!(40.00)));
        // A remainder belongs to a fixed-amount once coupon only, as the server rules.
        let error = parse_coupon(
            "code = \"ten\"\nremaining = \"4\"\ndiscount = { kind = \"fixed\", amount = \"10\" }\nduration = { kind = \"forever\" }\n",
            Some(Format::Toml),
        )
        .unwrap_err();
        assert!(error.starts_with("remaining:"), "{error}");
        let de = parse_taxes(
            include_str!("../../../docs/examples/taxes-de.toml"),
            Some(Format::Toml),
        )
        .unwrap();
        assert_eq!(de[0].rate.0, dec!(19));
        let qc = parse_taxes(
            include_str!("../../../docs/examples/taxes-ca-qc.toml"),
            None,
        )
        .unwrap();
        assert_eq!(qc[1].region.as_deref(), Some("CA-QC"));
    }

    #[test]
    fn document_errors_name_the_field_and_the_place() {
        // Goal: a typo names its field path and the parser's line (TOML) or column (JSON);
        // a file without a known extension is read as JSON, else TOML.
        let typo = PLAN_PRO.replace("free_units = \"1000\"", "free_unit = \"1000\"");
        let error = parse_document::<PlanSpec>(&typo, Some(Format::Toml)).unwrap_err();
        assert!(error.starts_with("charges[1].free_unit: "), "{error}");
        assert!(error.contains("line 31"), "{error}");
        let bad = PLAN_PRO.replace("anchor = \"2026-01-01\"", "anchor = \"2026-02-30\"");
        let error = parse_document::<PlanSpec>(&bad, None).unwrap_err();
        assert!(error.starts_with("interval.anchor: "), "{error}");

        let spec: PlanSpec = parse_document(PLAN_PRO, None).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(parse_document::<PlanSpec>(&json, None).unwrap(), spec);
        let bad = json.replace("\"49.00\"", "\"forty-nine\"");
        let error = parse_document::<PlanSpec>(&bad, None).unwrap_err();
        assert!(error.starts_with("charges[0].pricing: "), "{error}");
        assert!(
            error.contains("forty-nine") && error.contains("column"),
            "{error}"
        );
        let error =
            parse_document::<PlanSpec>(&format!("{json} x"), Some(Format::Json)).unwrap_err();
        assert!(error.contains("trailing"), "{error}");
        let missing = parse_document::<PlanSpec>("code = \"pro\"\n", Some(Format::Toml));
        assert!(missing.unwrap_err().contains("missing field"));
    }

    #[test]
    fn ledger_rules_are_checked_with_their_path() {
        // Goal: what reads but breaks a rule (tiers out of order, a percent over 100, taxes
        // both inclusive and exclusive) is refused here with the field's path.
        let unordered = PLAN_PRO.replace("up_to = \"100000\"", "up_to = \"5000\"");
        let spec: PlanSpec = parse_document(&unordered, Some(Format::Toml)).unwrap();
        let error = spec.validate().unwrap_err();
        assert_eq!(error.field, "charges[1].pricing.tiers[1].up_to");
        let coupon = "code = \"c\"\ndiscount = { kind = \"percentage\", percent = \"120\" }\nduration = { kind = \"once\" }\n";
        let error = parse_coupon(coupon, Some(Format::Toml)).unwrap_err();
        assert!(error.starts_with("discount.percent: "), "{error}");
        let error = parse_coupon("code = \"c\"\nkind = \"x\"\n", Some(Format::Toml)).unwrap_err();
        assert!(error.contains("kind"), "{error}");
        let mixed = "[[taxes]]\ncode = \"a\"\ncountry = \"DE\"\nrate = \"19\"\n\n[[taxes]]\ncode = \"b\"\ncountry = \"DE\"\nrate = \"7\"\nmode = \"inclusive\"\n";
        let error = parse_taxes(mixed, Some(Format::Toml)).unwrap_err();
        assert!(error.starts_with("taxes[1].mode: "), "{error}");
    }

    #[test]
    fn shown_toml_publishes_back_as_the_same_plan() {
        // Goal: `plan show` prints a document that reads back into the same plan (the
        // comment line included), so `show > f; publish f` is "unchanged".
        let spec: PlanSpec = parse_document(PLAN_PRO, None).unwrap();
        let version = PlanVersion {
            spec: spec.clone(),
            version: 2,
            seq: 41,
            published_at: 60_000_000_000,
            created: false,
        };
        let shown = plan_toml(&version).unwrap();
        assert!(
            shown.starts_with("# plan pro version 2, published 1970-01-01T00:01:00Z (seq 41)\n"),
            "{shown}"
        );
        assert_eq!(parse_document::<PlanSpec>(&shown, None).unwrap(), spec);
        assert_eq!(publish_text(&version), "unchanged: pro v2 is current\n");
        let created = PlanVersion {
            created: true,
            ..version
        };
        assert_eq!(publish_text(&created), "published pro v2 (seq 41)\n");
        let value = version_json(&created);
        assert_eq!(value["plan"]["charges"][0]["pricing"]["amount"], "49.00");
        assert_eq!(
            (value["interval"].as_str(), value["charges"].as_u64()),
            (Some("monthly"), Some(4))
        );
    }

    #[test]
    fn usage_flags_merge_per_charge() {
        // Goal: --usage and --transactions of one charge make one entry; a charge named
        // twice by the same flag is refused.
        let usage = charge_quantities(
            vec![("api_calls".into(), dec!(20)), ("fees".into(), dec!(3))],
            vec![
                ("fees".into(), vec![dec!(1), dec!(2)]),
                ("card".into(), vec![dec!(5)]),
            ],
        )
        .unwrap();
        assert_eq!(usage.len(), 3);
        assert_eq!(usage[1].quantity, Some(dec!(3)));
        assert_eq!(usage[1].transactions, [dec!(1), dec!(2)]);
        assert_eq!(
            (usage[2].quantity, usage[2].charge.as_str()),
            (None, "card")
        );
        let twice = charge_quantities(vec![("a".into(), dec!(1)), ("a".into(), dec!(2))], vec![]);
        assert_eq!(twice.unwrap_err().exit_code(), 2);
        let twice = charge_quantities(
            vec![],
            vec![("a".into(), vec![dec!(1)]), ("a".into(), vec![dec!(2)])],
        );
        assert!(twice.is_err());
    }

    fn charge_line() -> RatedLine {
        RatedLine {
            kind: LineKind::Charge,
            code: "api_calls".into(),
            description: "API calls".into(),
            model: "graduated".into(),
            meter: Some("api_calls".into()),
            group: BTreeMap::new(),
            timing: None,
            quantity: dec!(20),
            free_units: dec!(0),
            billable_quantity: dec!(20),
            tiers: vec![
                AppliedTier {
                    from: dec!(0),
                    up_to: Some(dec!(5)),
                    quantity: dec!(5),
                    unit_price: dec!(7),
                    flat_fee: dec!(0),
                    amount: dec!(35),
                },
                AppliedTier {
                    from: dec!(5),
                    up_to: None,
                    quantity: dec!(15),
                    unit_price: dec!(6.50),
                    flat_fee: dec!(0),
                    amount: dec!(97.50),
                },
            ],
            package: None,
            percentage: None,
            proration: None,
            unrounded: dec!(132.50),
            rounding: dec!(0.00),
            amount: dec!(132.50),
            discount: dec!(13.25),
            amount_after_discount: dec!(119.25),
            taxes: vec![tally_client::LineTax {
                code: "vat_de".into(),
                rate: dec!(19),
                amount: dec!(22.66),
            }],
            tax: dec!(22.66),
            total: dec!(141.91),
        }
    }

    fn result() -> RatingResult {
        let flat = RatedLine {
            code: "base".into(),
            description: String::new(),
            model: "flat".into(),
            meter: None,
            timing: Some(FlatTiming::InAdvance),
            quantity: dec!(1),
            billable_quantity: dec!(1),
            tiers: vec![],
            proration: Some(Proration {
                full_amount: dec!(20.00),
                days: 15,
                period_days: 31,
            }),
            unrounded: dec!(9.677419354838709677419354839),
            rounding: dec!(0.002580645161290322580645161),
            amount: dec!(9.68),
            discount: dec!(0),
            amount_after_discount: dec!(9.68),
            taxes: vec![],
            tax: dec!(0),
            total: dec!(9.68),
            ..charge_line()
        };
        let storage = RatedLine {
            code: "storage".into(),
            description: String::new(),
            model: "package".into(),
            meter: Some("storage_gb".into()),
            quantity: dec!(201),
            free_units: dec!(100),
            billable_quantity: dec!(101),
            tiers: vec![],
            package: Some(PackageDetail {
                size: dec!(100),
                blocks: dec!(2),
                price: dec!(5),
            }),
            unrounded: dec!(10),
            rounding: dec!(0.00),
            amount: dec!(10.00),
            discount: dec!(0),
            amount_after_discount: dec!(10.00),
            taxes: vec![],
            tax: dec!(0),
            total: dec!(10.00),
            ..charge_line()
        };
        RatingResult {
            plan: "pro".into(),
            plan_version: 2,
            currency: "USD".into(),
            period: Period {
                start: day("2026-10-17"),
                end: day("2026-11-01"),
            },
            billing_period: Period {
                start: day("2026-10-01"),
                end: day("2026-11-01"),
            },
            lines: vec![flat, charge_line(), storage],
            subtotal: dec!(152.18),
            discounts: vec![AppliedDiscount {
                coupon: "launch10".into(),
                amount: dec!(13.25),
                remaining: None,
            }],
            discount_total: dec!(13.25),
            tax_mode: TaxMode::Exclusive,
            taxes: vec![TaxTotal {
                code: "vat_de".into(),
                rate: dec!(19),
                taxable: dec!(119.25),
                unrounded: dec!(22.66),
                rounding: dec!(0),
                amount: dec!(22.66),
            }],
            tax_total: dec!(22.66),
            net_total: dec!(138.93),
            total: dec!(161.59),
        }
    }

    #[test]
    fn a_quote_explains_every_line() {
        // Goal: each line shows how its amount came about (proration, tiers with their
        // ranges, package blocks, rounding, discount, tax), then the invoice's totals.
        let expected = "\
plan pro v2, USD, 2026-10-17 to 2026-11-01 (billing period 2026-10-01 to 2026-11-01)

base (flat, in advance)
  prorated   20.00 for 15 of 31 days
  unrounded  9.677419354838709677419354839
  rounding   +0.002580645161290322580645161
  amount     9.68
  total      9.68

api_calls: API calls (graduated, meter api_calls)
  quantity           20
  free units         0
  billable quantity  20
    TIER  UNITS              QUANTITY  UNIT PRICE  FLAT FEE  AMOUNT
       1  above 0 through 5         5           7         0      35
       2  above 5                  15        6.50         0   97.50
  unrounded          132.50
  rounding           0.00
  amount             132.50
  discount           -13.25
  after discount     119.25
  tax vat_de (19 %)  22.66
  total              141.91

storage (package, meter storage_gb)
  quantity           201
  free units         100
  billable quantity  101
  packages           2 started blocks of 100 at 5
  unrounded          10
  rounding           0.00
  amount             10.00
  total              10.00

subtotal           152.18
discount launch10  -13.25
net                138.93
tax vat_de (19 %)  22.66 (on 119.25, unrounded 22.66, rounding 0)
total              161.59
";
        assert_eq!(rating_text(&result()), expected);
        let value = rating_json(&result());
        assert_eq!(value["lines"][1]["tiers"][1]["unit_price"], "6.50");
        assert_eq!(value["lines"][1]["tiers"][1]["up_to"], Value::Null);
        assert_eq!(value["lines"][0]["timing"], "in_advance");
        assert_eq!(value["lines"][0]["proration"]["days"], 15);
        assert_eq!(value["lines"][2]["package"]["blocks"], "2");
        assert_eq!(value["discounts"][0]["remaining"], Value::Null);
        assert_eq!(value["tax_mode"], "exclusive");
        assert_eq!(value["total"], "161.59");
    }

    #[test]
    fn a_simulation_is_a_table_with_signed_differences() {
        // Goal: one row per customer, the difference signed, a total row under a rule, and
        // the header naming both plans, the currency and the days.
        let customer = |id: &str, current, simulated, difference| CustomerSimulation {
            customer: id.into(),
            current_total: current,
            simulated_total: simulated,
            difference,
            current: None,
            simulated: None,
        };
        let result = SimulationResult {
            currency: "USD".into(),
            baseline_plan: "pro".into(),
            baseline_version: 1,
            candidate_plan: "pro".into(),
            candidate_version: None,
            period: Period {
                start: day("2026-10-01"),
                end: day("2026-11-01"),
            },
            customers: vec![
                customer("acme", dec!(100.00), dec!(110.50), dec!(10.50)),
                customer("beta", dec!(50.00), dec!(45.00), dec!(-5.00)),
            ],
            current_total: dec!(150.00),
            simulated_total: dec!(155.50),
            difference: dec!(5.50),
            as_of_seq: 57,
        };
        let expected = "\
baseline pro v1, candidate pro (draft), USD, 2026-10-01 to 2026-11-01, usage as of seq 57
CUSTOMER             CURRENT  SIMULATED  DIFFERENCE
acme                  100.00     110.50      +10.50
beta                   50.00      45.00       -5.00
---------------------------------------------------
TOTAL (2 customers)   150.00     155.50       +5.50
";
        assert_eq!(simulation_text(&result), expected);
        let value = simulation_json(&result);
        assert_eq!(value["candidate_version"], Value::Null);
        assert_eq!(value["customers"][1]["difference"], "-5.00");
        assert!(value["customers"][0].get("current").is_none());
    }
}
