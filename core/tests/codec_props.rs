//! Property tests of the canonical codec and the hash chain (journal format v1,
//! `docs/journal-format.md`).
//!
//! - arbitrary entries of every kind round-trip, and their bytes are exactly
//!   what an independent encoder written from the doc's rules produces;
//! - `decode` never panics, on arbitrary bytes or on mutated valid encodings;
//! - `ChainVerifier` accepts an honest chain and names the first bad seq when an
//!   entry is altered, removed or moved.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use tally_core::billing::*;
use tally_core::calendar::{BillingInterval, Day, IntervalUnit};
use tally_core::chain::{entry_hash, ChainError, ChainVerifier, GENESIS_PREV_HASH};
use tally_core::codec::{decode, encode, DecodeError};
use tally_core::decimal::Dec;
use tally_core::entry::*;
use tally_core::meter::{Aggregation, MeterSpec};
use tally_core::money::AMOUNT_MINOR_MAX;
use tally_core::plan::{
    Charge, Coupon, CouponDiscount, CouponDuration, FlatTiming, PlanSpec, Pricing, RoundingMode,
    TaxMode, TaxRounding, TaxRule, Tier,
};
use tally_core::usage::UsageEvent;

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Short strings, ASCII and otherwise (multi-byte UTF-8 included).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9_.-]{1,12}", "\\PC{0,8}",]
}

fn metadata() -> impl Strategy<Value = Metadata> {
    btree_map(text(), text(), 0..4)
}

fn timestamp() -> impl Strategy<Value = TimestampNs> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1),
    ]
}

/// Any u128: the format stores whatever the ledger gives it; the ledger's own
/// limit is 2^96 - 1, so that edge is favoured.
fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        0..=AMOUNT_MINOR_MAX,
        Just(AMOUNT_MINOR_MAX),
        Just(0u128),
        any::<u128>(),
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Debit), Just(Side::Credit)]
}

fn account_type() -> impl Strategy<Value = AccountType> {
    prop_oneof![
        Just(AccountType::Asset),
        Just(AccountType::Liability),
        Just(AccountType::Equity),
        Just(AccountType::Revenue),
        Just(AccountType::Expense),
    ]
}

fn constraint() -> impl Strategy<Value = BalanceConstraint> {
    prop_oneof![
        Just(BalanceConstraint::None),
        Just(BalanceConstraint::DebitsMustNotExceedCredits),
        Just(BalanceConstraint::CreditsMustNotExceedDebits),
    ]
}

prop_compose! {
    fn posting()(account_id in any::<u64>(), side in side(), amount_minor in amount()) -> Posting {
        Posting { account_id, side, amount_minor }
    }
}

fn postings() -> impl Strategy<Value = Vec<Posting>> {
    vec(posting(), 0..5)
}

fn mode() -> impl Strategy<Value = TransactionMode> {
    prop_oneof![
        Just(TransactionMode::Standard),
        proptest::option::of(timestamp())
            .prop_map(|expires_at| TransactionMode::Pending { expires_at }),
        text().prop_map(|reverses| TransactionMode::Reversal { reverses }),
    ]
}

prop_compose! {
    fn account_opened()(
        account_id in any::<u64>(),
        name in text(),
        account_type in account_type(),
        currency in text(),
        constraint in constraint(),
        metadata in metadata(),
    ) -> AccountOpened {
        AccountOpened { account_id, name, account_type, currency, constraint, metadata }
    }
}

prop_compose! {
    fn transaction_recorded()(
        id in text(),
        request_digest in any::<[u8; 32]>(),
        mode in mode(),
        postings in postings(),
        effective_at in proptest::option::of(timestamp()),
        description in text(),
        metadata in metadata(),
    ) -> TransactionRecorded {
        TransactionRecorded { id, request_digest, mode, postings, effective_at, description, metadata }
    }
}

prop_compose! {
    fn pending_posted()(
        id in text(),
        request_digest in any::<[u8; 32]>(),
        pending_id in text(),
        postings in postings(),
        effective_at in proptest::option::of(timestamp()),
        description in text(),
        metadata in metadata(),
    ) -> PendingPosted {
        PendingPosted { id, request_digest, pending_id, postings, effective_at, description, metadata }
    }
}

prop_compose! {
    fn pending_voided()(
        id in text(),
        request_digest in any::<[u8; 32]>(),
        pending_id in text(),
        reason in text(),
    ) -> PendingVoided {
        PendingVoided { id, request_digest, pending_id, reason }
    }
}

prop_compose! {
    fn transaction_rejected()(
        id in text(),
        request_digest in any::<[u8; 32]>(),
        error_code in any::<u32>(),
        field in text(),
        message in text(),
    ) -> TransactionRejected {
        TransactionRejected { id, request_digest, error_code, field, message }
    }
}

/// Signed-note-like text: lines ended by `\n`, a blank line, signature lines
/// starting with U+2014; or any short string (the codec does not parse notes).
fn note() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        "([ -~]{0,40}\n){1,5}\n(\u{2014} [!-~]{1,20} [A-Za-z0-9+/=]{1,92}\n){1,2}",
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Admin),
        Just(Role::Poster),
        Just(Role::Finance),
        Just(Role::Auditor),
    ]
}

/// API key ids: mostly well-formed (16 lowercase hex digits), or any short
/// string (the codec does not check key ids; the ledger does).
fn api_key_id() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[0-9a-f]{16}", 1 => text()]
}

prop_compose! {
    fn api_key_created()(
        key_id in api_key_id(),
        name in text(),
        role in role(),
        read_only in any::<bool>(),
        secret_hash in any::<[u8; 32]>(),
    ) -> ApiKeyCreated {
        ApiKeyCreated { key_id, name, role, read_only, secret_hash }
    }
}

prop_compose! {
    fn customer_created()(
        customer_id in text(),
        name in text(),
        metadata in metadata(),
    ) -> CustomerCreated {
        CustomerCreated { customer_id, name, metadata }
    }
}

fn aggregation() -> impl Strategy<Value = Aggregation> {
    proptest::sample::select(Aggregation::ALL.to_vec())
}

prop_compose! {
    /// Any definition, valid or not: the codec stores what it is given (the
    /// ledger validates); filter value lists keep their order and may repeat.
    fn meter_spec()(
        code in text(),
        aggregation in aggregation(),
        value_property in proptest::option::of(text()),
        filters in btree_map(text(), vec(text(), 0..3), 0..3),
        group_by in vec(text(), 0..3),
        grace_period_seconds in prop_oneof![any::<u64>(), Just(86_400u64), Just(0u64)],
    ) -> MeterSpec {
        MeterSpec { code, aggregation, value_property, filters, group_by, grace_period_seconds }
    }
}

prop_compose! {
    fn meter_defined()(
        version in prop_oneof![1..=3u32, any::<u32>()],
        spec in meter_spec(),
        description in text(),
    ) -> MeterDefined {
        MeterDefined { version, spec, description }
    }
}

/// Decimal text as a client sends it, or any short string (the codec keeps
/// the value as text and never reads it).
fn event_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof!["-?[0-9]{1,6}(\\.[0-9]{1,4})?", text()])
}

prop_compose! {
    fn usage_event()(
        event_id in text(),
        customer in text(),
        meter in text(),
        timestamp in timestamp(),
        value in event_value(),
        properties in metadata(),
    ) -> UsageEvent {
        UsageEvent { event_id, customer, meter, timestamp, value, properties }
    }
}

prop_compose! {
    /// Any root, events and late indexes: the codec does not tie them together
    /// (`tally_audit::rederive` does).
    fn usage_recorded()(
        events_root in any::<[u8; 32]>(),
        events in vec(usage_event(), 0..4),
        late in vec(prop_oneof![0..4u32, any::<u32>()], 0..3),
    ) -> UsageRecorded {
        UsageRecorded { events_root, events, late }
    }
}

/// Any decimal, at any scale (the codec normalizes; the ledger validates).
fn dec() -> impl Strategy<Value = Dec> {
    (any::<i64>(), 0u32..=28)
        .prop_map(|(mantissa, scale)| Dec(rust_decimal::Decimal::new(mantissa, scale)))
}

fn tier() -> impl Strategy<Value = Tier> {
    (proptest::option::of(dec()), dec(), dec()).prop_map(|(up_to, unit_price, flat_fee)| Tier {
        up_to,
        unit_price,
        flat_fee,
    })
}

fn pricing() -> impl Strategy<Value = Pricing> {
    prop_oneof![
        (dec(), any::<bool>()).prop_map(|(amount, arrears)| Pricing::Flat {
            amount,
            timing: if arrears {
                FlatTiming::InArrears
            } else {
                FlatTiming::InAdvance
            },
        }),
        dec().prop_map(|unit_price| Pricing::PerUnit { unit_price }),
        vec(tier(), 0..3).prop_map(|tiers| Pricing::Graduated { tiers }),
        vec(tier(), 0..3).prop_map(|tiers| Pricing::Volume { tiers }),
        (dec(), dec()).prop_map(|(size, price)| Pricing::Package { size, price }),
        (
            dec(),
            dec(),
            proptest::option::of(dec()),
            proptest::option::of(dec())
        )
            .prop_map(
                |(rate, fixed_fee, min_per_transaction, max_per_transaction)| Pricing::Percentage {
                    rate,
                    fixed_fee,
                    min_per_transaction,
                    max_per_transaction,
                }
            ),
    ]
}

prop_compose! {
    fn charge()(
        code in text(),
        description in text(),
        meter in proptest::option::of(text()),
        group in metadata(),
        free_units in dec(),
        pricing in pricing(),
    ) -> Charge {
        Charge { code, description, meter, group, free_units, pricing }
    }
}

prop_compose! {
    /// Any plan, valid or not: the codec stores what it is given.
    fn plan_spec()(
        code in text(),
        name in text(),
        currency in text(),
        unit in proptest::sample::select(IntervalUnit::ALL.to_vec()),
        anchor in prop_oneof![any::<i32>(), Just(0), Just(-1), Just(19_662)],
        charges in vec(charge(), 0..3),
        minimum_commitment in proptest::option::of(dec()),
        rounding in proptest::sample::select(RoundingMode::ALL.to_vec()),
    ) -> PlanSpec {
        PlanSpec {
            code,
            name,
            currency,
            interval: BillingInterval { unit, anchor: Day(anchor) },
            charges,
            minimum_commitment,
            rounding,
        }
    }
}

// Billing (docs/journal-format.md §4.11). Any values, valid or not: the codec
// stores what it is given (the ledger and the auditor check the rules).

fn day() -> impl Strategy<Value = Day> {
    prop_oneof![any::<i32>(), Just(0), Just(-1), Just(19_662)].prop_map(Day)
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

prop_compose! {
    fn billing_profile()(
        customer_id in text(),
        currency in text(),
        country in prop_oneof!["[A-Z]{2}", text()],
        region in opt_text(),
        tax_id in text(),
        timezone in prop_oneof![Just("UTC".to_string()), text()],
        invoice_series in prop_oneof!["[A-Z0-9]{1,16}", text()],
        payment_terms_days in prop_oneof![0..=366u32, any::<u32>()],
    ) -> BillingProfile {
        BillingProfile {
            customer_id, currency, country, region, tax_id, timezone, invoice_series,
            payment_terms_days,
        }
    }
}

fn subscription_change() -> impl Strategy<Value = SubscriptionChange> {
    prop_oneof![
        (text(), any::<u32>(), day()).prop_map(|(plan_code, plan_version, start)| {
            SubscriptionChange::Started {
                plan_code,
                plan_version,
                start,
            }
        }),
        (text(), any::<u32>(), day()).prop_map(|(plan_code, plan_version, effective)| {
            SubscriptionChange::PlanChanged {
                plan_code,
                plan_version,
                effective,
            }
        }),
        day().prop_map(|end| SubscriptionChange::Ended { end }),
    ]
}

prop_compose! {
    fn subscription_changed()(
        subscription_id in text(),
        customer_id in text(),
        change in subscription_change(),
    ) -> SubscriptionChanged {
        SubscriptionChanged { subscription_id, customer_id, change }
    }
}

prop_compose! {
    fn coupon()(
        code in text(),
        discount in prop_oneof![
            dec().prop_map(|percent| CouponDiscount::Percentage { percent }),
            dec().prop_map(|amount| CouponDiscount::Fixed { amount }),
        ],
        duration in prop_oneof![
            Just(CouponDuration::Once),
            any::<u32>().prop_map(|count| CouponDuration::Periods { count }),
            Just(CouponDuration::Forever),
        ],
    ) -> Coupon {
        Coupon { code, discount, duration }
    }
}

prop_compose! {
    fn coupon_granted()(
        grant_id in text(),
        customer_id in text(),
        coupon in coupon(),
        from in day(),
    ) -> CouponGranted {
        CouponGranted { grant_id, customer_id, coupon, from }
    }
}

prop_compose! {
    fn tax_rule()(
        code in text(),
        country in text(),
        region in opt_text(),
        rate in dec(),
        inclusive in any::<bool>(),
        rounding in proptest::sample::select(RoundingMode::ALL.to_vec()),
        per_invoice in any::<bool>(),
    ) -> TaxRule {
        TaxRule {
            code,
            country,
            region,
            rate,
            mode: if inclusive { TaxMode::Inclusive } else { TaxMode::Exclusive },
            rounding,
            granularity: if per_invoice { TaxRounding::PerInvoice } else { TaxRounding::PerLine },
        }
    }
}

prop_compose! {
    fn tax_rules_published()(
        version in prop_oneof![1..=3u32, any::<u32>()],
        rules in vec(tax_rule(), 0..3),
    ) -> TaxRulesPublished {
        TaxRulesPublished { version, rules }
    }
}

prop_compose! {
    fn line_tier()(
        from in dec(),
        up_to in proptest::option::of(dec()),
        quantity in dec(),
        unit_price in dec(),
        flat_fee in dec(),
        amount in dec(),
    ) -> LineTier {
        LineTier { from, up_to, quantity, unit_price, flat_fee, amount }
    }
}

prop_compose! {
    fn line_tax_amount()(code in text(), rate in dec(), amount in dec()) -> LineTaxAmount {
        LineTaxAmount { code, rate, amount }
    }
}

fn usage_digest() -> impl Strategy<Value = UsageDigest> {
    prop_oneof![
        (timestamp(), timestamp()).prop_map(|(from, to)| UsageDigest::empty(from, to)),
        (any::<u64>(), any::<[u8; 32]>(), timestamp(), timestamp()).prop_map(
            |(events, digest, from, to)| UsageDigest {
                events,
                digest,
                from,
                to
            }
        ),
    ]
}

prop_compose! {
    fn invoice_line()(
        (kind, plan_code, plan_version, charge_code, description) in
            (text(), text(), any::<u32>(), text(), text()),
        (start, end) in (day(), day()),
        (quantity, free_units, billable_quantity) in (dec(), dec(), dec()),
        tiers in vec(line_tier(), 0..3),
        explanation in text(),
        (amount, discount) in (dec(), dec()),
        taxes in vec(line_tax_amount(), 0..3),
        (net, total) in (dec(), dec()),
        usage in proptest::option::of(usage_digest()),
    ) -> InvoiceLine {
        InvoiceLine {
            kind, plan_code, plan_version, charge_code, description, start, end, quantity,
            free_units, billable_quantity, tiers, explanation, amount, discount, taxes, net,
            total, usage,
        }
    }
}

prop_compose! {
    fn invoice()(
        (number, series, year, sequence) in (text(), text(), any::<i32>(), any::<u64>()),
        (customer_id, subscription_id, currency) in (text(), text(), text()),
        (period_start, period_end, usage_from, usage_to) in (day(), day(), timestamp(), timestamp()),
        usage_journal_length in any::<u64>(),
        (country, region, tax_id) in (text(), opt_text(), text()),
        (issued_on, due_on) in (day(), day()),
        lines in vec(invoice_line(), 0..3),
        coupons in vec(
            (text(), text(), dec())
                .prop_map(|(grant_id, code, amount)| CouponUse { grant_id, code, amount }),
            0..2,
        ),
        taxes in vec(
            (text(), dec(), dec(), dec())
                .prop_map(|(code, rate, base, amount)| TaxTotal { code, rate, base, amount }),
            0..2,
        ),
        (subtotal, discount, tax) in (dec(), dec(), dec()),
        (total, credit_applied, amount_due) in (dec(), dec(), dec()),
    ) -> Invoice {
        Invoice {
            number, series, year, sequence, customer_id, subscription_id, currency,
            period_start, period_end, usage_from, usage_to, usage_journal_length, country,
            region, tax_id, issued_on, due_on, lines, coupons, taxes, subtotal, discount, tax,
            total, credit_applied, amount_due,
        }
    }
}

prop_compose! {
    fn credit_note_line()(
        line in any::<u32>(),
        net in dec(),
        taxes in vec(line_tax_amount(), 0..3),
        total in dec(),
    ) -> CreditNoteLine {
        CreditNoteLine { line, net, taxes, total }
    }
}

prop_compose! {
    fn credit_note()(
        (number, series, year, sequence) in (text(), text(), any::<i32>(), any::<u64>()),
        (invoice_number, customer_id, currency) in (text(), text(), text()),
        issued_on in day(),
        reason in text(),
        lines in vec(credit_note_line(), 0..3),
        (total, to_invoice, to_credit) in (dec(), dec(), dec()),
    ) -> CreditNote {
        CreditNote {
            number, series, year, sequence, invoice_number, customer_id, currency, issued_on,
            reason, lines, total, to_invoice, to_credit,
        }
    }
}

fn payment_kind() -> impl Strategy<Value = PaymentKind> {
    prop_oneof![
        Just(PaymentKind::Payment),
        Just(PaymentKind::Refund),
        Just(PaymentKind::CreditPurchase),
        Just(PaymentKind::CreditGrant),
        Just(PaymentKind::CreditApplied),
    ]
}

prop_compose! {
    fn payment()(
        (payment_id, customer_id, kind, currency) in (text(), text(), payment_kind(), text()),
        amount in dec(),
        received_on in day(),
        reference in text(),
        allocations in vec(
            (text(), dec()).prop_map(|(invoice_number, amount)| Allocation { invoice_number, amount }),
            0..3,
        ),
        to_credit in dec(),
    ) -> Payment {
        Payment {
            payment_id, customer_id, kind, currency, amount, received_on, reference, allocations,
            to_credit,
        }
    }
}

/// Every `EntryBody` variant (keep in step with `entry.rs`; `spec_encode`'s
/// exhaustive match fails to compile when a variant is added).
fn body() -> impl Strategy<Value = EntryBody> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(|ledger_id| EntryBody::LedgerCreated { ledger_id }),
        (text(), any::<u8>()).prop_map(|(code, scale)| EntryBody::CurrencyDefined { code, scale }),
        account_opened().prop_map(EntryBody::AccountOpened),
        any::<u64>().prop_map(|account_id| EntryBody::AccountClosed { account_id }),
        transaction_recorded().prop_map(EntryBody::TransactionRecorded),
        pending_posted().prop_map(EntryBody::PendingPosted),
        pending_voided().prop_map(EntryBody::PendingVoided),
        text().prop_map(|pending_id| EntryBody::PendingExpired { pending_id }),
        transaction_rejected().prop_map(EntryBody::TransactionRejected),
        note().prop_map(|note| EntryBody::CheckpointSigned { note }),
        prop_oneof![text(), "[!-~]{1,20}\\+[0-9a-f]{8}\\+A[A-Za-z0-9+/]{43}"]
            .prop_map(|vkey| EntryBody::SigningKeyAdopted { vkey }),
        note().prop_map(|note| EntryBody::SigningKeyRotated { note }),
        api_key_created().prop_map(EntryBody::ApiKeyCreated),
        api_key_id().prop_map(|key_id| EntryBody::ApiKeyRevoked { key_id }),
        customer_created().prop_map(EntryBody::CustomerCreated),
        meter_defined().prop_map(EntryBody::MeterDefined),
        usage_recorded().prop_map(EntryBody::UsageRecorded),
        (text(), timestamp()).prop_map(|(customer_id, through)| EntryBody::UsagePeriodClosed {
            customer_id,
            through
        }),
        (prop_oneof![1..=3u32, any::<u32>()], plan_spec())
            .prop_map(|(version, spec)| EntryBody::PlanPublished(PlanPublished { version, spec })),
        billing_profile().prop_map(EntryBody::BillingProfileSet),
        subscription_changed().prop_map(EntryBody::SubscriptionChanged),
        coupon_granted().prop_map(EntryBody::CouponGranted),
        tax_rules_published().prop_map(EntryBody::TaxRulesPublished),
        (invoice(), transaction_recorded()).prop_map(|(invoice, transaction)| {
            EntryBody::InvoiceIssued(Box::new(InvoiceIssued {
                invoice,
                transaction,
            }))
        }),
        (text(), text(), transaction_recorded()).prop_map(|(number, reason, transaction)| {
            EntryBody::InvoiceVoided(Box::new(InvoiceVoided {
                number,
                reason,
                transaction,
            }))
        }),
        (credit_note(), transaction_recorded()).prop_map(|(credit_note, transaction)| {
            EntryBody::CreditNoteIssued(Box::new(CreditNoteIssued {
                credit_note,
                transaction,
            }))
        }),
        (payment(), transaction_recorded()).prop_map(|(payment, transaction)| {
            EntryBody::PaymentRecorded(Box::new(PaymentRecorded {
                payment,
                transaction,
            }))
        }),
    ]
}

prop_compose! {
    fn entry()(recorded_at in timestamp(), key_id in prop_oneof![text(), api_key_id()], body in body()) -> Entry {
        Entry { recorded_at, key_id, body }
    }
}

/// A journal: entry 0 is `LedgerCreated`, then 1..12 arbitrary entries.
fn journal() -> impl Strategy<Value = Vec<Entry>> {
    (any::<[u8; 16]>(), timestamp(), vec(entry(), 1..12)).prop_map(
        |(ledger_id, recorded_at, rest)| {
            let mut entries = vec![Entry {
                recorded_at,
                key_id: String::new(),
                body: EntryBody::LedgerCreated { ledger_id },
            }];
            entries.extend(rest);
            entries
        },
    )
}

// ---------------------------------------------------------------------------
// An independent encoder, written from docs/journal-format.md only
// ---------------------------------------------------------------------------

/// Byte writer following the doc's rules: big endian, fixed-width integers,
/// u64 length prefixes, u32 variant indexes, Option and bool as a 0/1 byte,
/// arrays raw.
#[derive(Default)]
struct Spec(Vec<u8>);

impl Spec {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn string(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.raw(s.as_bytes());
    }
    fn opt_time(&mut self, t: Option<i64>) {
        match t {
            None => self.u8(0),
            Some(t) => {
                self.u8(1);
                self.i64(t);
            }
        }
    }
    fn metadata(&mut self, m: &Metadata) {
        self.u64(m.len() as u64);
        // Keys in increasing order of their UTF-8 bytes.
        let mut pairs: Vec<(&String, &String)> = m.iter().collect();
        pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (k, v) in pairs {
            self.string(k);
            self.string(v);
        }
    }
    fn strings(&mut self, strings: &[String]) {
        self.u64(strings.len() as u64);
        for s in strings {
            self.string(s);
        }
    }
    fn opt_string(&mut self, s: &Option<String>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.string(s);
            }
        }
    }
    fn meter_spec(&mut self, spec: &MeterSpec) {
        self.string(&spec.code);
        self.u32(match spec.aggregation {
            Aggregation::Sum => 0,
            Aggregation::Count => 1,
            Aggregation::Min => 2,
            Aggregation::Max => 3,
            Aggregation::UniqueCount => 4,
            Aggregation::Latest => 5,
        });
        self.opt_string(&spec.value_property);
        // A map of string lists: names in increasing byte order, each list as given.
        self.u64(spec.filters.len() as u64);
        let mut filters: Vec<(&String, &Vec<String>)> = spec.filters.iter().collect();
        filters.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, values) in filters {
            self.string(name);
            self.strings(values);
        }
        self.strings(&spec.group_by);
        self.u64(spec.grace_period_seconds);
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// A decimal, normalized: trailing zeros of the fraction dropped (1.50
    /// is 15 at scale 1), then negative (never for zero), mantissa, scale.
    fn dec(&mut self, value: &Dec) {
        let mut mantissa = value.0.mantissa().unsigned_abs();
        let mut scale = value.0.scale();
        while scale > 0 && mantissa.is_multiple_of(10) {
            mantissa /= 10;
            scale -= 1;
        }
        self.bool(value.0.is_sign_negative() && mantissa != 0);
        self.u128(mantissa);
        self.u8(scale as u8);
    }
    fn opt_dec(&mut self, value: &Option<Dec>) {
        match value {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                self.dec(value);
            }
        }
    }
    fn tiers(&mut self, tiers: &[Tier]) {
        self.u64(tiers.len() as u64);
        for tier in tiers {
            self.opt_dec(&tier.up_to);
            self.dec(&tier.unit_price);
            self.dec(&tier.flat_fee);
        }
    }
    fn plan_spec(&mut self, spec: &PlanSpec) {
        self.string(&spec.code);
        self.string(&spec.name);
        self.string(&spec.currency);
        self.u32(match spec.interval.unit {
            IntervalUnit::Weekly => 0,
            IntervalUnit::Monthly => 1,
            IntervalUnit::Quarterly => 2,
            IntervalUnit::Yearly => 3,
        });
        self.i32(spec.interval.anchor.0);
        self.u64(spec.charges.len() as u64);
        for charge in &spec.charges {
            self.string(&charge.code);
            self.string(&charge.description);
            self.opt_string(&charge.meter);
            self.metadata(&charge.group);
            self.dec(&charge.free_units);
            match &charge.pricing {
                Pricing::Flat { amount, timing } => {
                    self.u32(0);
                    self.dec(amount);
                    self.u32(match timing {
                        FlatTiming::InAdvance => 0,
                        FlatTiming::InArrears => 1,
                    });
                }
                Pricing::PerUnit { unit_price } => {
                    self.u32(1);
                    self.dec(unit_price);
                }
                Pricing::Graduated { tiers } => {
                    self.u32(2);
                    self.tiers(tiers);
                }
                Pricing::Volume { tiers } => {
                    self.u32(3);
                    self.tiers(tiers);
                }
                Pricing::Package { size, price } => {
                    self.u32(4);
                    self.dec(size);
                    self.dec(price);
                }
                Pricing::Percentage {
                    rate,
                    fixed_fee,
                    min_per_transaction,
                    max_per_transaction,
                } => {
                    self.u32(5);
                    self.dec(rate);
                    self.dec(fixed_fee);
                    self.opt_dec(min_per_transaction);
                    self.opt_dec(max_per_transaction);
                }
            }
        }
        self.opt_dec(&spec.minimum_commitment);
        self.u32(match spec.rounding {
            RoundingMode::HalfUp => 0,
            RoundingMode::HalfEven => 1,
            RoundingMode::Up => 2,
            RoundingMode::Down => 3,
        });
    }
    fn day(&mut self, day: Day) {
        self.i32(day.0);
    }
    /// A `TransactionRecorded` struct (section 4.3), without a variant index.
    fn transaction(&mut self, t: &TransactionRecorded) {
        self.string(&t.id);
        self.raw(&t.request_digest);
        match &t.mode {
            TransactionMode::Standard => self.u32(0),
            TransactionMode::Pending { expires_at } => {
                self.u32(1);
                self.opt_time(*expires_at);
            }
            TransactionMode::Reversal { reverses } => {
                self.u32(2);
                self.string(reverses);
            }
        }
        self.postings(&t.postings);
        self.opt_time(t.effective_at);
        self.string(&t.description);
        self.metadata(&t.metadata);
    }
    fn rounding(&mut self, rounding: RoundingMode) {
        self.u32(match rounding {
            RoundingMode::HalfUp => 0,
            RoundingMode::HalfEven => 1,
            RoundingMode::Up => 2,
            RoundingMode::Down => 3,
        });
    }
    fn billing_profile(&mut self, p: &BillingProfile) {
        self.string(&p.customer_id);
        self.string(&p.currency);
        self.string(&p.country);
        self.opt_string(&p.region);
        self.string(&p.tax_id);
        self.string(&p.timezone);
        self.string(&p.invoice_series);
        self.u32(p.payment_terms_days);
    }
    fn subscription_changed(&mut self, s: &SubscriptionChanged) {
        self.string(&s.subscription_id);
        self.string(&s.customer_id);
        match &s.change {
            SubscriptionChange::Started {
                plan_code,
                plan_version,
                start,
            } => {
                self.u32(0);
                self.string(plan_code);
                self.u32(*plan_version);
                self.day(*start);
            }
            SubscriptionChange::PlanChanged {
                plan_code,
                plan_version,
                effective,
            } => {
                self.u32(1);
                self.string(plan_code);
                self.u32(*plan_version);
                self.day(*effective);
            }
            SubscriptionChange::Ended { end } => {
                self.u32(2);
                self.day(*end);
            }
        }
    }
    fn coupon_granted(&mut self, g: &CouponGranted) {
        self.string(&g.grant_id);
        self.string(&g.customer_id);
        self.string(&g.coupon.code);
        match &g.coupon.discount {
            CouponDiscount::Percentage { percent } => {
                self.u32(0);
                self.dec(percent);
            }
            CouponDiscount::Fixed { amount } => {
                self.u32(1);
                self.dec(amount);
            }
        }
        match g.coupon.duration {
            CouponDuration::Once => self.u32(0),
            CouponDuration::Periods { count } => {
                self.u32(1);
                self.u32(count);
            }
            CouponDuration::Forever => self.u32(2),
        }
        self.day(g.from);
    }
    fn tax_rules(&mut self, t: &TaxRulesPublished) {
        self.u32(t.version);
        self.u64(t.rules.len() as u64);
        for rule in &t.rules {
            self.string(&rule.code);
            self.string(&rule.country);
            self.opt_string(&rule.region);
            self.dec(&rule.rate);
            self.u32(match rule.mode {
                TaxMode::Exclusive => 0,
                TaxMode::Inclusive => 1,
            });
            self.rounding(rule.rounding);
            self.u32(match rule.granularity {
                TaxRounding::PerLine => 0,
                TaxRounding::PerInvoice => 1,
            });
        }
    }
    fn line_taxes(&mut self, taxes: &[LineTaxAmount]) {
        self.u64(taxes.len() as u64);
        for tax in taxes {
            self.string(&tax.code);
            self.dec(&tax.rate);
            self.dec(&tax.amount);
        }
    }
    fn invoice(&mut self, i: &Invoice) {
        self.string(&i.number);
        self.string(&i.series);
        self.i32(i.year);
        self.u64(i.sequence);
        self.string(&i.customer_id);
        self.string(&i.subscription_id);
        self.string(&i.currency);
        self.day(i.period_start);
        self.day(i.period_end);
        self.i64(i.usage_from);
        self.i64(i.usage_to);
        self.u64(i.usage_journal_length);
        self.string(&i.country);
        self.opt_string(&i.region);
        self.string(&i.tax_id);
        self.day(i.issued_on);
        self.day(i.due_on);
        self.u64(i.lines.len() as u64);
        for line in &i.lines {
            self.string(&line.kind);
            self.string(&line.plan_code);
            self.u32(line.plan_version);
            self.string(&line.charge_code);
            self.string(&line.description);
            self.day(line.start);
            self.day(line.end);
            self.dec(&line.quantity);
            self.dec(&line.free_units);
            self.dec(&line.billable_quantity);
            self.u64(line.tiers.len() as u64);
            for tier in &line.tiers {
                self.dec(&tier.from);
                self.opt_dec(&tier.up_to);
                self.dec(&tier.quantity);
                self.dec(&tier.unit_price);
                self.dec(&tier.flat_fee);
                self.dec(&tier.amount);
            }
            self.string(&line.explanation);
            self.dec(&line.amount);
            self.dec(&line.discount);
            self.line_taxes(&line.taxes);
            self.dec(&line.net);
            self.dec(&line.total);
            match &line.usage {
                None => self.u8(0),
                Some(usage) => {
                    self.u8(1);
                    self.u64(usage.events);
                    self.raw(&usage.digest);
                    self.i64(usage.from);
                    self.i64(usage.to);
                }
            }
        }
        self.u64(i.coupons.len() as u64);
        for coupon in &i.coupons {
            self.string(&coupon.grant_id);
            self.string(&coupon.code);
            self.dec(&coupon.amount);
        }
        self.u64(i.taxes.len() as u64);
        for tax in &i.taxes {
            self.string(&tax.code);
            self.dec(&tax.rate);
            self.dec(&tax.base);
            self.dec(&tax.amount);
        }
        for amount in [
            &i.subtotal,
            &i.discount,
            &i.tax,
            &i.total,
            &i.credit_applied,
            &i.amount_due,
        ] {
            self.dec(amount);
        }
    }
    fn credit_note(&mut self, n: &CreditNote) {
        self.string(&n.number);
        self.string(&n.series);
        self.i32(n.year);
        self.u64(n.sequence);
        self.string(&n.invoice_number);
        self.string(&n.customer_id);
        self.string(&n.currency);
        self.day(n.issued_on);
        self.string(&n.reason);
        self.u64(n.lines.len() as u64);
        for line in &n.lines {
            self.u32(line.line);
            self.dec(&line.net);
            self.line_taxes(&line.taxes);
            self.dec(&line.total);
        }
        self.dec(&n.total);
        self.dec(&n.to_invoice);
        self.dec(&n.to_credit);
    }
    fn payment(&mut self, p: &Payment) {
        self.string(&p.payment_id);
        self.string(&p.customer_id);
        self.u32(match p.kind {
            PaymentKind::Payment => 0,
            PaymentKind::Refund => 1,
            PaymentKind::CreditPurchase => 2,
            PaymentKind::CreditGrant => 3,
            PaymentKind::CreditApplied => 4,
        });
        self.string(&p.currency);
        self.dec(&p.amount);
        self.day(p.received_on);
        self.string(&p.reference);
        self.u64(p.allocations.len() as u64);
        for allocation in &p.allocations {
            self.string(&allocation.invoice_number);
            self.dec(&allocation.amount);
        }
        self.dec(&p.to_credit);
    }
    fn usage_event(&mut self, event: &UsageEvent) {
        self.string(&event.event_id);
        self.string(&event.customer);
        self.string(&event.meter);
        self.i64(event.timestamp);
        self.opt_string(&event.value);
        self.metadata(&event.properties);
    }
    fn postings(&mut self, postings: &[Posting]) {
        self.u64(postings.len() as u64);
        for p in postings {
            self.u64(p.account_id);
            self.u32(match p.side {
                Side::Debit => 0,
                Side::Credit => 1,
            });
            self.u128(p.amount_minor);
        }
    }
}

fn spec_encode(e: &Entry) -> Vec<u8> {
    let mut w = Spec::default();
    w.u8(1);
    w.i64(e.recorded_at);
    w.string(&e.key_id);
    match &e.body {
        EntryBody::LedgerCreated { ledger_id } => {
            w.u32(0);
            w.raw(ledger_id);
        }
        EntryBody::CurrencyDefined { code, scale } => {
            w.u32(1);
            w.string(code);
            w.u8(*scale);
        }
        EntryBody::AccountOpened(a) => {
            w.u32(2);
            w.u64(a.account_id);
            w.string(&a.name);
            w.u32(match a.account_type {
                AccountType::Asset => 0,
                AccountType::Liability => 1,
                AccountType::Equity => 2,
                AccountType::Revenue => 3,
                AccountType::Expense => 4,
            });
            w.string(&a.currency);
            w.u32(match a.constraint {
                BalanceConstraint::None => 0,
                BalanceConstraint::DebitsMustNotExceedCredits => 1,
                BalanceConstraint::CreditsMustNotExceedDebits => 2,
            });
            w.metadata(&a.metadata);
        }
        EntryBody::AccountClosed { account_id } => {
            w.u32(3);
            w.u64(*account_id);
        }
        EntryBody::TransactionRecorded(t) => {
            w.u32(4);
            w.transaction(t);
        }
        EntryBody::PendingPosted(p) => {
            w.u32(5);
            w.string(&p.id);
            w.raw(&p.request_digest);
            w.string(&p.pending_id);
            w.postings(&p.postings);
            w.opt_time(p.effective_at);
            w.string(&p.description);
            w.metadata(&p.metadata);
        }
        EntryBody::PendingVoided(v) => {
            w.u32(6);
            w.string(&v.id);
            w.raw(&v.request_digest);
            w.string(&v.pending_id);
            w.string(&v.reason);
        }
        EntryBody::PendingExpired { pending_id } => {
            w.u32(7);
            w.string(pending_id);
        }
        EntryBody::TransactionRejected(r) => {
            w.u32(8);
            w.string(&r.id);
            w.raw(&r.request_digest);
            w.u32(r.error_code);
            w.string(&r.field);
            w.string(&r.message);
        }
        EntryBody::CheckpointSigned { note } => {
            w.u32(9);
            w.string(note);
        }
        EntryBody::SigningKeyAdopted { vkey } => {
            w.u32(10);
            w.string(vkey);
        }
        EntryBody::SigningKeyRotated { note } => {
            w.u32(11);
            w.string(note);
        }
        EntryBody::ApiKeyCreated(k) => {
            w.u32(12);
            w.string(&k.key_id);
            w.string(&k.name);
            w.u32(match k.role {
                Role::Admin => 0,
                Role::Poster => 1,
                Role::Finance => 2,
                Role::Auditor => 3,
            });
            w.bool(k.read_only);
            w.raw(&k.secret_hash);
        }
        EntryBody::ApiKeyRevoked { key_id } => {
            w.u32(13);
            w.string(key_id);
        }
        EntryBody::CustomerCreated(c) => {
            w.u32(14);
            w.string(&c.customer_id);
            w.string(&c.name);
            w.metadata(&c.metadata);
        }
        EntryBody::MeterDefined(m) => {
            w.u32(15);
            w.u32(m.version);
            w.meter_spec(&m.spec);
            w.string(&m.description);
        }
        EntryBody::UsageRecorded(u) => {
            w.u32(16);
            w.raw(&u.events_root);
            w.u64(u.events.len() as u64);
            for event in &u.events {
                w.usage_event(event);
            }
            w.u64(u.late.len() as u64);
            for &index in &u.late {
                w.u32(index);
            }
        }
        EntryBody::UsagePeriodClosed {
            customer_id,
            through,
        } => {
            w.u32(17);
            w.string(customer_id);
            w.i64(*through);
        }
        EntryBody::PlanPublished(p) => {
            w.u32(18);
            w.u32(p.version);
            w.plan_spec(&p.spec);
        }
        // Billing (section 4.11): a document, then (for the last four) its
        // transaction as a struct; a box adds nothing.
        EntryBody::BillingProfileSet(p) => {
            w.u32(19);
            w.billing_profile(p);
        }
        EntryBody::SubscriptionChanged(s) => {
            w.u32(20);
            w.subscription_changed(s);
        }
        EntryBody::CouponGranted(g) => {
            w.u32(21);
            w.coupon_granted(g);
        }
        EntryBody::TaxRulesPublished(t) => {
            w.u32(22);
            w.tax_rules(t);
        }
        EntryBody::InvoiceIssued(i) => {
            w.u32(23);
            w.invoice(&i.invoice);
            w.transaction(&i.transaction);
        }
        EntryBody::InvoiceVoided(v) => {
            w.u32(24);
            w.string(&v.number);
            w.string(&v.reason);
            w.transaction(&v.transaction);
        }
        EntryBody::CreditNoteIssued(c) => {
            w.u32(25);
            w.credit_note(&c.credit_note);
            w.transaction(&c.transaction);
        }
        EntryBody::PaymentRecorded(p) => {
            w.u32(26);
            w.payment(&p.payment);
            w.transaction(&p.transaction);
        }
    }
    w.0
}

// ---------------------------------------------------------------------------
// Chains
// ---------------------------------------------------------------------------

/// One stored journal record: (seq, canonical bytes, stored hash).
type Record = (u64, Vec<u8>, Digest);

fn honest_chain(entries: &[Entry]) -> Vec<Record> {
    let mut prev = GENESIS_PREV_HASH;
    entries
        .iter()
        .enumerate()
        .map(|(seq, e)| {
            let bytes = encode(e);
            let hash = entry_hash(seq as u64, &prev, &bytes);
            prev = hash;
            (seq as u64, bytes, hash)
        })
        .collect()
}

/// Pushes every record; returns the head, or the first error.
fn verify(records: &[Record]) -> Result<Digest, ChainError> {
    let mut v = ChainVerifier::default();
    for (seq, bytes, hash) in records {
        v.push(*seq, bytes, hash)?;
    }
    Ok(v.head())
}

/// Re-labels records with seqs 0, 1, 2, ... (an attacker hiding a gap).
fn renumbered(mut records: Vec<Record>) -> Vec<Record> {
    for (i, r) in records.iter_mut().enumerate() {
        r.0 = i as u64;
    }
    records
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn entries_round_trip(e in entry()) {
        // Goal: decode(encode(e)) == e for arbitrary entries of every kind.
        let bytes = encode(&e);
        prop_assert_eq!(bytes[0], 1);
        prop_assert_eq!(decode(&bytes), Ok(e));
    }

    #[test]
    fn encoding_follows_the_documented_rules(e in entry()) {
        // Goal: the bytes are exactly those of an encoder written from
        // docs/journal-format.md alone (verifies every layout rule the doc states).
        prop_assert_eq!(hex::encode(encode(&e)), hex::encode(spec_encode(&e)));
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
        // Goal: any input gives an entry or an error, never a panic.
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_of_arbitrary_v1_bytes_never_panics(tail in vec(any::<u8>(), 0..600)) {
        // Goal: past the version check too, any input gives a result, never a panic.
        let mut bytes = vec![1u8];
        bytes.extend(tail);
        if let Ok(e) = decode(&bytes) {
            // Whatever decodes must re-decode from its own encoding.
            prop_assert_eq!(decode(&encode(&e)), Ok(e));
        }
    }

    #[test]
    fn flipped_bit_never_panics_nor_goes_unnoticed(e in entry(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        // Goal: flipping any single bit of a valid encoding gives an error or a
        // different entry, never a panic and never the same entry.
        let mut bytes = encode(&e);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        match decode(&bytes) {
            Ok(other) => prop_assert_ne!(other, e),
            Err(DecodeError::UnknownVersion(v)) => prop_assert_eq!((i, v), (0, 1 ^ (1 << bit))),
            Err(_) => {}
        }
    }

    #[test]
    fn truncated_encoding_is_an_error(e in entry(), at in any::<prop::sample::Index>()) {
        // Goal: any strict prefix of a valid encoding is an error.
        let bytes = encode(&e);
        let len = at.index(bytes.len());
        prop_assert!(decode(&bytes[..len]).is_err());
    }

    #[test]
    fn extended_encoding_is_an_error(e in entry(), extra in vec(any::<u8>(), 1..40)) {
        // Goal: a valid encoding followed by anything is refused, naming the
        // number of trailing bytes.
        let mut bytes = encode(&e);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(extra.len())));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn honest_chain_is_accepted(entries in journal()) {
        // Goal: the verifier accepts an honest chain and ends on its last hash.
        let records = honest_chain(&entries);
        let mut v = ChainVerifier::default();
        for (seq, bytes, hash) in &records {
            prop_assert_eq!(v.push(*seq, bytes, hash), Ok(*hash));
        }
        prop_assert_eq!(v.head(), records.last().unwrap().2);
        prop_assert_eq!(v.next_seq(), records.len() as u64);
    }

    #[test]
    fn flipped_entry_byte_is_caught_at_its_seq(
        entries in journal(),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // Goal: changing one bit of one entry's bytes fails the chain at exactly
        // that entry's seq.
        let mut records = honest_chain(&entries);
        let i = which.index(records.len());
        let j = at.index(records[i].1.len());
        records[i].1[j] ^= 1 << bit;
        prop_assert_eq!(verify(&records), Err(ChainError::HashMismatch { seq: i as u64 }));
    }

    #[test]
    fn flipped_stored_hash_is_caught_at_its_seq(
        entries in journal(),
        which in any::<prop::sample::Index>(),
        at in 0usize..32,
        bit in 0u8..8,
    ) {
        // Goal: a stored hash that is off by one bit fails at its own seq.
        let mut records = honest_chain(&entries);
        let i = which.index(records.len());
        records[i].2[at] ^= 1 << bit;
        prop_assert_eq!(verify(&records), Err(ChainError::HashMismatch { seq: i as u64 }));
    }

    #[test]
    fn removed_entry_is_caught(entries in journal(), which in any::<prop::sample::Index>()) {
        // Goal: removing an entry (not the last) is a seq gap at the next record;
        // hiding the gap by renumbering is a hash mismatch at the removed seq;
        // dropping the last entry changes the head (caught against a checkpoint).
        let records = honest_chain(&entries);
        let n = records.len();
        let i = which.index(n - 1); // 0 ..= n-2: an entry with a successor
        let mut removed = records.clone();
        removed.remove(i);
        prop_assert_eq!(
            verify(&removed),
            Err(ChainError::SeqGap { seq: i as u64 + 1, expected: i as u64 })
        );
        prop_assert_eq!(
            verify(&renumbered(removed)),
            Err(ChainError::HashMismatch { seq: i as u64 })
        );
        let head = verify(&records[..n - 1]).unwrap();
        prop_assert_ne!(head, records[n - 1].2);
    }

    #[test]
    fn swapped_entries_are_caught(entries in journal(), which in any::<prop::sample::Index>()) {
        // Goal: swapping two neighbours is caught at the first of the two, both
        // when the records keep their seq labels (seq gap) and when the attacker
        // relabels them (hash mismatch).
        let records = honest_chain(&entries);
        let i = which.index(records.len() - 1);
        let mut swapped = records.clone();
        swapped.swap(i, i + 1);
        prop_assert_eq!(
            verify(&swapped),
            Err(ChainError::SeqGap { seq: i as u64 + 1, expected: i as u64 })
        );
        prop_assert_eq!(
            verify(&renumbered(swapped)),
            Err(ChainError::HashMismatch { seq: i as u64 })
        );
    }

    #[test]
    fn swapped_distant_entries_are_caught(
        entries in journal(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        // Goal: swapping any two distinct entries' contents (bytes and stored
        // hashes, seq labels left in place) fails at the earlier of the two.
        let records = honest_chain(&entries);
        let (a, b) = (a.index(records.len()), b.index(records.len()));
        prop_assume!(a != b);
        let (lo, hi) = (a.min(b), a.max(b));
        let mut swapped = records.clone();
        let (x, y) = (records[lo].clone(), records[hi].clone());
        swapped[lo] = (lo as u64, y.1, y.2);
        swapped[hi] = (hi as u64, x.1, x.2);
        prop_assert_eq!(verify(&swapped), Err(ChainError::HashMismatch { seq: lo as u64 }));
    }
}

#[test]
fn chain_of_one_is_the_genesis_formula() {
    // Goal: a one-entry chain's head is entry_hash(0, 32 zero bytes, bytes).
    let e = Entry {
        recorded_at: 0,
        key_id: String::new(),
        body: EntryBody::LedgerCreated { ledger_id: [7; 16] },
    };
    let records = honest_chain(std::slice::from_ref(&e));
    assert_eq!(verify(&records), Ok(entry_hash(0, &[0u8; 32], &encode(&e))));
    // A chain that does not start at seq 0 is refused.
    let mut v = ChainVerifier::default();
    assert_eq!(
        v.push(1, &records[0].1, &records[0].2),
        Err(ChainError::SeqGap {
            seq: 1,
            expected: 0
        })
    );
}

#[test]
fn every_entry_within_the_size_limit_decodes() {
    // Goal: whatever encode() produces within ENTRY_BYTES_MAX, decode() reads
    // back; otherwise the ledger could write an entry it can never replay.
    use tally_core::codec::ENTRY_BYTES_MAX;
    let metadata: Metadata = (0..90_000u32)
        .map(|i| (format!("{i:05}"), String::new()))
        .collect();
    let e = Entry {
        recorded_at: 0,
        key_id: String::new(),
        body: EntryBody::AccountOpened(AccountOpened {
            account_id: 0,
            name: String::new(),
            account_type: AccountType::Asset,
            currency: "USD".to_string(),
            constraint: BalanceConstraint::None,
            metadata,
        }),
    };
    let bytes = encode(&e);
    assert!(bytes.len() < ENTRY_BYTES_MAX / 2, "{} bytes", bytes.len());
    assert_eq!(decode(&bytes), Ok(e));
}

#[test]
fn the_generator_covers_every_kind() {
    // Goal: the arbitrary-entry strategy produces every EntryBody variant, so
    // the properties above hold for each kind, the usage kinds included (the
    // exhaustive match of spec_encode only proves each is encoded by hand),
    // the plan kind and the eight billing kinds included.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = body();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2_000 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        seen.insert(body.kind_name());
    }
    for kind in [
        "customer_created",
        "meter_defined",
        "usage_recorded",
        "usage_period_closed",
        "plan_published",
        "billing_profile_set",
        "subscription_changed",
        "coupon_granted",
        "tax_rules_published",
        "invoice_issued",
        "invoice_voided",
        "credit_note_issued",
        "payment_recorded",
    ] {
        assert!(seen.contains(kind), "{kind} never generated: {seen:?}");
    }
    assert_eq!(seen.len(), 27, "{seen:?}");
}
