//! The Rating service (`proto/tally/v1/rating.proto`): versioned price plans,
//! quotes and pricing simulations.
//!
//! Plans are the journal's own document type ([`PlanSpec`], read from TOML or
//! JSON by serde), sent to the server as JSON. A rating comes back as a
//! [`RatingResult`] whose every amount is a `Decimal`, parsed strictly like
//! metering's aggregates: an answer that is not a plain decimal, a day that is
//! not `YYYY-MM-DD`, or totals that contradict each other are an
//! `InvalidResponse`, never a guessed number. Days are UTC calendar days and a
//! period is `[start, end)`.
//!
//! ```no_run
//! use tally_client::{Client, Day, Decimal, PlanKey, PlanSpec, QuoteRequest};
//!
//! # async fn example(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let spec: PlanSpec = toml::from_str(&std::fs::read_to_string("plan-pro.toml")?)?;
//! spec.validate()?;
//! let published = client.publish_plan(&spec).await?;
//! println!("{} v{} (created: {})", published.code(), published.version, published.created);
//!
//! let october: Day = "2026-10-01".parse()?;
//! let quote = QuoteRequest::new(PlanKey::current("pro"))
//!     .period(october, "2026-11-01".parse()?)
//!     .quantity("api_calls", Decimal::from(25_000));
//! let result = client.quote(&quote).await?;
//! for line in &result.lines {
//!     println!("{}: {} (unrounded {})", line.code, line.amount, line.unrounded);
//! }
//! println!("total {} {}", result.total, result.currency);
//! # Ok(())
//! # }
//! ```

pub(crate) mod convert;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use tally_proto::v1 as pb;

use crate::client::{call_with, Client, RawRatingClient, Retry};
use crate::error::{ClientError, Result};
use crate::metering::TimestampNs;

pub use tally_core::calendar::{BillingInterval, Day, IntervalUnit, Period};
pub use tally_core::plan::{
    Charge, Coupon, CouponDiscount, CouponDuration, FlatTiming, PlanError, PlanSpec, Pricing,
    RoundingMode, TaxMode, TaxRounding, TaxRule, Tier,
};

/// One recorded version of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanVersion {
    /// The document as the ledger recorded it (read back from its canonical
    /// JSON: `0.10` comes back as `0.1`, the same price).
    pub spec: PlanSpec,
    /// 1 for the plan's first version, then one more per change.
    pub version: u32,
    /// The `plan_published` journal entry.
    pub seq: u64,
    pub published_at: TimestampNs,
    /// False when the document equalled the current version: nothing was
    /// recorded and this is that version.
    pub created: bool,
}

impl PlanVersion {
    pub fn code(&self) -> &str {
        &self.spec.code
    }
}

/// A published plan version: its code and version, `None` for the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanKey {
    pub code: String,
    pub version: Option<u32>,
}

impl PlanKey {
    /// The current version of `code`.
    pub fn current(code: impl Into<String>) -> Self {
        PlanKey {
            code: code.into(),
            version: None,
        }
    }

    pub fn version(code: impl Into<String>, version: u32) -> Self {
        PlanKey {
            code: code.into(),
            version: Some(version),
        }
    }
}

/// The plan a quote or simulation rates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanChoice {
    Published(PlanKey),
    /// A document the server validates but does not record.
    Draft(PlanSpec),
}

impl From<PlanKey> for PlanChoice {
    fn from(key: PlanKey) -> Self {
        PlanChoice::Published(key)
    }
}

impl From<PlanSpec> for PlanChoice {
    fn from(spec: PlanSpec) -> Self {
        PlanChoice::Draft(spec)
    }
}

/// The usage of one charge in a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeQuantity {
    /// The charge's code in the plan.
    pub charge: String,
    /// Not negative; `None` for a percentage charge whose quantity is the sum
    /// of its transactions.
    pub quantity: Option<Decimal>,
    /// For a percentage charge: each transaction's amount.
    pub transactions: Vec<Decimal>,
}

/// A coupon granted to the customer, and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponGrant {
    pub coupon: Coupon,
    /// Periods it has already applied to.
    pub periods_used: u32,
    /// A fixed-amount `once` coupon's unused part; `None`: all of it if unused.
    pub remaining: Option<Decimal>,
}

impl CouponGrant {
    /// An unused coupon.
    pub fn new(coupon: Coupon) -> Self {
        CouponGrant {
            coupon,
            periods_used: 0,
            remaining: None,
        }
    }
}

/// A manual line of a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub reason: String,
    /// Not negative, at the currency's scale.
    pub amount: Decimal,
}

/// What to rate in a quote: a plan, the days, the quantities, the coupons,
/// the tax rules and manual lines. Nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub plan: PlanChoice,
    /// The days rated, `[start, end)`, within one billing period of the plan
    /// (a part of one prorates flat fees). Both `None`: the whole billing
    /// period containing today.
    pub period_start: Option<Day>,
    pub period_end: Option<Day>,
    pub usage: Vec<ChargeQuantity>,
    pub coupons: Vec<CouponGrant>,
    /// Every rule given is applied.
    pub taxes: Vec<TaxRule>,
    pub adjustments: Vec<Adjustment>,
}

impl QuoteRequest {
    pub fn new(plan: impl Into<PlanChoice>) -> Self {
        QuoteRequest {
            plan: plan.into(),
            period_start: None,
            period_end: None,
            usage: Vec::new(),
            coupons: Vec::new(),
            taxes: Vec::new(),
            adjustments: Vec::new(),
        }
    }

    /// Rates the days `[start, end)`.
    pub fn period(mut self, start: Day, end: Day) -> Self {
        self.period_start = Some(start);
        self.period_end = Some(end);
        self
    }

    /// A charge's quantity.
    pub fn quantity(mut self, charge: impl Into<String>, quantity: Decimal) -> Self {
        self.usage.push(ChargeQuantity {
            charge: charge.into(),
            quantity: Some(quantity),
            transactions: Vec::new(),
        });
        self
    }

    /// A percentage charge's transactions (the quantity is their sum).
    pub fn transactions(
        mut self,
        charge: impl Into<String>,
        amounts: impl IntoIterator<Item = Decimal>,
    ) -> Self {
        self.usage.push(ChargeQuantity {
            charge: charge.into(),
            quantity: None,
            transactions: amounts.into_iter().collect(),
        });
        self
    }

    pub fn coupon(mut self, grant: CouponGrant) -> Self {
        self.coupons.push(grant);
        self
    }

    pub fn tax(mut self, rule: TaxRule) -> Self {
        self.taxes.push(rule);
        self
    }

    pub fn adjustment(mut self, reason: impl Into<String>, amount: Decimal) -> Self {
        self.adjustments.push(Adjustment {
            reason: reason.into(),
            amount,
        });
        self
    }
}

/// What a rated line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// One of the plan's charges.
    Charge,
    /// The true-up that brings the charges up to the plan's minimum.
    MinimumCommitment,
    /// A manual line of the quote.
    Adjustment,
}

impl LineKind {
    pub const ALL: [LineKind; 3] = [
        LineKind::Charge,
        LineKind::MinimumCommitment,
        LineKind::Adjustment,
    ];

    /// `charge`, `minimum_commitment` or `adjustment`, as the wire names it.
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Charge => "charge",
            LineKind::MinimumCommitment => "minimum_commitment",
            LineKind::Adjustment => "adjustment",
        }
    }

    pub fn from_name(name: &str) -> Option<LineKind> {
        LineKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The units of one tier and what they cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedTier {
    /// The units above `from`, through `up_to` (`None`: without end).
    pub from: Decimal,
    pub up_to: Option<Decimal>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub flat_fee: Decimal,
    /// `quantity × unit_price + flat_fee`, unrounded.
    pub amount: Decimal,
}

/// How a package charge counted its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDetail {
    pub size: Decimal,
    /// Started blocks of `size` units.
    pub blocks: Decimal,
    pub price: Decimal,
}

/// How a percentage charge added up its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PercentageDetail {
    pub transactions: u64,
    /// The transactions' total amount.
    pub volume: Decimal,
    /// Percent: `2.9` is 2.9 %.
    pub rate: Decimal,
    pub fixed_fee: Decimal,
    /// Transactions whose fee was raised to the minimum, or cut to the maximum.
    pub raised_to_min: u64,
    pub cut_to_max: u64,
}

/// A fee charged for a part of its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proration {
    /// The whole period's amount.
    pub full_amount: Decimal,
    pub days: i64,
    pub period_days: i64,
}

/// One tax on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTax {
    pub code: String,
    pub rate: Decimal,
    /// Rounded for a per-line rule, unrounded for a per-invoice one.
    pub amount: Decimal,
}

/// One line of a rating, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedLine {
    pub kind: LineKind,
    /// The charge's code (for the other kinds, what the server names them).
    pub code: String,
    pub description: String,
    /// `flat`, `per_unit`, `graduated`, `volume`, `package` or `percentage`;
    /// empty for lines that are not charges.
    pub model: String,
    pub meter: Option<String>,
    pub group: BTreeMap<String, String>,
    /// Flat fees only.
    pub timing: Option<FlatTiming>,
    pub quantity: Decimal,
    pub free_units: Decimal,
    pub billable_quantity: Decimal,
    pub tiers: Vec<AppliedTier>,
    pub package: Option<PackageDetail>,
    pub percentage: Option<PercentageDetail>,
    pub proration: Option<Proration>,
    /// The amount at full precision, the rounding applied (`amount -
    /// unrounded`), and the amount at the currency's scale.
    pub unrounded: Decimal,
    pub rounding: Decimal,
    pub amount: Decimal,
    pub discount: Decimal,
    pub amount_after_discount: Decimal,
    pub taxes: Vec<LineTax>,
    pub tax: Decimal,
    pub total: Decimal,
}

/// A coupon's effect on a rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDiscount {
    pub coupon: String,
    pub amount: Decimal,
    /// A fixed-amount `once` coupon's part left for later periods.
    pub remaining: Option<Decimal>,
}

/// One tax rule over the whole rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxTotal {
    pub code: String,
    pub rate: Decimal,
    pub taxable: Decimal,
    /// The lines' taxes added up, before the invoice's rounding.
    pub unrounded: Decimal,
    pub rounding: Decimal,
    pub amount: Decimal,
}

/// The result of rating: lines, discounts, taxes and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingResult {
    pub plan: String,
    /// 0 for a draft.
    pub plan_version: u32,
    pub currency: String,
    /// The days rated.
    pub period: Period,
    /// The plan's whole billing period the rated days lie in.
    pub billing_period: Period,
    pub lines: Vec<RatedLine>,
    /// Before discount.
    pub subtotal: Decimal,
    pub discounts: Vec<AppliedDiscount>,
    pub discount_total: Decimal,
    pub tax_mode: TaxMode,
    pub taxes: Vec<TaxTotal>,
    pub tax_total: Decimal,
    /// After discount, without tax.
    pub net_total: Decimal,
    /// What the customer owes.
    pub total: Decimal,
}

/// A simulation: customers' recorded usage over past days re-rated under a
/// candidate plan and compared with a baseline version. Nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateRequest {
    pub candidate: PlanChoice,
    /// `None`: the current version of the candidate's plan code (which must
    /// then be published).
    pub baseline: Option<PlanKey>,
    /// The past days re-rated, `[start, end)`, within one billing period of
    /// both plans.
    pub period: Period,
    /// Empty: every customer.
    pub customers: Vec<String>,
    /// Include each customer's two ratings, line by line.
    pub explain: bool,
}

impl SimulateRequest {
    pub fn new(candidate: impl Into<PlanChoice>, period: Period) -> Self {
        SimulateRequest {
            candidate: candidate.into(),
            baseline: None,
            period,
            customers: Vec::new(),
            explain: false,
        }
    }

    pub fn baseline(mut self, baseline: PlanKey) -> Self {
        self.baseline = Some(baseline);
        self
    }

    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.customers.push(customer.into());
        self
    }

    pub fn explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }
}

/// One customer's totals under the baseline and the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSimulation {
    pub customer: String,
    /// Net totals (after discount, before tax).
    pub current_total: Decimal,
    pub simulated_total: Decimal,
    /// `simulated_total - current_total`.
    pub difference: Decimal,
    /// With `explain`: the two ratings.
    pub current: Option<RatingResult>,
    pub simulated: Option<RatingResult>,
}

/// The answer to a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationResult {
    pub currency: String,
    pub baseline_plan: String,
    pub baseline_version: u32,
    pub candidate_plan: String,
    /// `None` for a draft.
    pub candidate_version: Option<u32>,
    pub period: Period,
    pub customers: Vec<CustomerSimulation>,
    pub current_total: Decimal,
    pub simulated_total: Decimal,
    /// `simulated_total - current_total`.
    pub difference: Decimal,
    /// The journal length the usage was read at.
    pub as_of_seq: u64,
}

impl Client {
    /// The generated Rating client on the same connection (api key
    /// included), for requests this façade would not send.
    pub fn raw_rating(&self) -> RawRatingClient {
        self.rating.clone()
    }

    /// Sends one unary Rating call with the deadline and retry policy.
    async fn rating_call<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        request: Req,
        send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(RawRatingClient, tonic::Request<Req>) -> Fut,
        Fut:
            std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        call_with(&self.rating, &self.policy, retry, request, send).await
    }

    /// Publishes a plan: version 1 for a new code, then one more per change.
    /// The same document as the current version records nothing and answers
    /// that version with `created: false`.
    ///
    /// Retried after a passed deadline as well as when the server was
    /// unavailable: a document equal to the current version records nothing,
    /// so an attempt whose answer was lost is answered again by the retry
    /// (then with `created: false`, as the version exists by then). This holds
    /// while nobody else publishes the same plan code in between: a document
    /// that is no longer the current version becomes a new version.
    pub async fn publish_plan(&self, spec: &PlanSpec) -> Result<PlanVersion> {
        let plan_json = convert::plan_json(spec)?;
        let request = pb::PublishPlanRequest { plan_json };
        let answer = self
            .rating_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.publish_plan(request).await },
            )
            .await?;
        let version = convert::plan_version("plan", answer)?;
        convert::check_same_code("plan.code", &spec.code, version.code())?;
        Ok(version)
    }

    /// The current version of every plan (`None`), or every version of one.
    pub async fn list_plans(&self, code: Option<&str>) -> Result<Vec<PlanVersion>> {
        let request = pb::ListPlansRequest {
            code: code.unwrap_or_default().to_string(),
        };
        let response = self
            .rating_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_plans(request).await
            })
            .await?;
        let plans = response
            .plans
            .into_iter()
            .enumerate()
            .map(|(position, plan)| convert::plan_version(&format!("plans[{position}]"), plan))
            .collect::<Result<Vec<_>>>()?;
        if let Some(code) = code {
            for (position, plan) in plans.iter().enumerate() {
                convert::check_same_code(&format!("plans[{position}].code"), code, plan.code())?;
            }
        }
        Ok(plans)
    }

    /// One plan version (`None`: the current one).
    pub async fn get_plan(&self, code: &str, version: Option<u32>) -> Result<PlanVersion> {
        let request = pb::GetPlanRequest {
            code: code.to_string(),
            version: version.unwrap_or(0),
        };
        let answer = self
            .rating_call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_plan(request).await
            })
            .await?;
        let plan = convert::plan_version("plan", answer)?;
        convert::check_same_code("plan.code", code, plan.code())?;
        if let Some(wanted) = version.filter(|wanted| *wanted != 0 && *wanted != plan.version) {
            return Err(ClientError::invalid_response(format!(
                "plan.version: {} is not the version asked for, {wanted}",
                plan.version
            )));
        }
        Ok(plan)
    }

    /// Rates the given quantities under a plan, published or draft.
    pub async fn quote(&self, request: &QuoteRequest) -> Result<RatingResult> {
        let request = convert::quote_to_proto(request)?;
        let answer = self
            .rating_call(Retry::Safe, request, |mut raw, request| async move {
                raw.quote(request).await
            })
            .await?;
        convert::rating_result("result", answer)
    }

    /// Re-rates customers' recorded usage under a candidate plan and compares
    /// it with a baseline version.
    pub async fn simulate(&self, request: &SimulateRequest) -> Result<SimulationResult> {
        let request = convert::simulate_to_proto(request)?;
        let answer = self
            .rating_call(Retry::Safe, request, |mut raw, request| async move {
                raw.simulate(request).await
            })
            .await?;
        convert::simulation_result(answer)
    }
}
