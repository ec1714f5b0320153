#!/usr/bin/env python3
"""Golden vectors of the billing entries (seqs 21 to 29) of Tally's journal
format v1, computed from docs/journal-format.md alone (sections 3, 4.3,
4.10, 4.11 and 7), without running or reading the Rust encoder.

Prints, for each entry: its canonical bytes (hex), its entry hash (chained
from the hash of seq 20 given in the doc's table), and the byte-by-byte
annotation rows of section 10.5; and the usage digest of section 4.11.

Needs Python 3.8+ and the `blake3` package (pip install blake3).
"""

import sys
from decimal import Decimal

from blake3 import blake3

# --- section 3: encoding rules ---------------------------------------------


class W:
    """A byte writer that also records one annotation row per value."""

    def __init__(self):
        self.b = bytearray()
        self.rows = []

    def _put(self, data, field, value):
        start = len(self.b)
        self.b += data
        self.rows.append((start, len(self.b), field, bytes(data).hex(), value))

    def u8(self, v, field, value=None):
        self._put(bytes([v]), field, value if value is not None else str(v))

    def bool(self, v, field, value=None):
        self._put(b"\x01" if v else b"\x00", field, value or ("true" if v else "false"))

    def u32(self, v, field, value=None):
        self._put(v.to_bytes(4, "big"), field, value if value is not None else str(v))

    def i32(self, v, field, value=None):
        self._put(v.to_bytes(4, "big", signed=True), field, value if value is not None else str(v))

    def u64(self, v, field, value=None):
        self._put(v.to_bytes(8, "big"), field, value if value is not None else str(v))

    def i64(self, v, field, value=None):
        self._put(v.to_bytes(8, "big", signed=True), field, value if value is not None else str(v))

    def u128(self, v, field, value=None):
        self._put(v.to_bytes(16, "big"), field, value if value is not None else str(v))

    def raw(self, data, field, value):
        self._put(data, field, value)

    def string(self, s, field, value=None):
        data = s.encode("utf-8")
        self.u64(len(data), f"{field} length")
        if data:
            self._put(data, field, value or f"`{s}`")

    def count(self, n, field):
        self.u64(n, f"{field} count")

    def opt_tag(self, present, field, value=None):
        self.u8(1 if present else 0, f"{field} tag", value or ("some" if present else "none"))

    def day(self, d, field):
        self.i32(d, field, f"{d} = {day_text(d)}")

    def dec(self, text, field):
        """A `Dec`, normalized: negative (never for zero), mantissa, scale."""
        value = Decimal(text)
        sign, digits, exponent = value.as_tuple()
        mantissa = int("".join(map(str, digits))) if digits else 0
        scale = -exponent if exponent < 0 else 0
        if exponent > 0:
            mantissa *= 10**exponent
        while scale > 0 and mantissa % 10 == 0:
            mantissa //= 10
            scale -= 1
        assert mantissa <= 2**96 - 1 and scale <= 28
        negative = bool(sign) and mantissa != 0
        self.bool(negative, f"{field} negative")
        self.u128(mantissa, f"{field} mantissa")
        shown = format(Decimal(mantissa).scaleb(-scale), "f") if scale else str(mantissa)
        if negative:
            shown = "-" + shown
        self.u8(scale, f"{field} scale", f"{scale} (= {shown})")


def day_text(d):
    import datetime

    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=d)).isoformat()


def ns_text(ns):
    import datetime

    seconds, nanos = divmod(ns, 1_000_000_000)
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += f".{nanos:09d}"
    return text + "Z"


# --- section 4.3: TransactionRecorded, the struct embedded in 4.11 --------

SIDES = {"debit": 0, "credit": 1}


def transaction(w, t, at):
    def q(name):
        return f"`{at}.{name}`"

    w.string(t["id"], q("id"))
    w.raw(t["request_digest"], q("request_digest"), "32 raw bytes")
    mode = t["mode"]
    if mode[0] == "standard":
        w.u32(0, q("mode") + " variant", "0 = Standard")
    elif mode[0] == "reversal":
        w.u32(2, q("mode") + " variant", "2 = Reversal")
        w.string(mode[1], q("mode.reverses"))
    else:
        raise ValueError(mode)
    w.count(len(t["postings"]), q("postings"))
    for i, (account, side, amount) in enumerate(t["postings"]):
        w.u64(account, q(f"postings[{i}].account_id"), f"{account} ({ACCOUNTS[account]})")
        w.u32(SIDES[side], q(f"postings[{i}].side"), f"{SIDES[side]} = {side.capitalize()}")
        w.u128(amount, q(f"postings[{i}].amount_minor"))
    w.opt_tag(False, q("effective_at"), "none (means `recorded_at`)")
    w.string(t["description"], q("description"))
    w.count(0, q("metadata"))


# --- section 4.10 / 4.11: enums ---------------------------------------------

ROUNDING = {"half_up": 0, "half_even": 1, "up": 2, "down": 3}
TAX_MODE = {"exclusive": 0, "inclusive": 1}
TAX_ROUNDING = {"per_line": 0, "per_invoice": 1}
PAYMENT_KIND = {"payment": 0, "refund": 1, "credit_purchase": 2, "credit_grant": 3, "credit_applied": 4}
CAMEL = {
    "half_up": "HalfUp", "half_even": "HalfEven", "exclusive": "Exclusive",
    "inclusive": "Inclusive", "per_line": "PerLine", "per_invoice": "PerInvoice",
    "payment": "Payment",
}

# --- section 4.11: the billing entries ------------------------------------


def billing_profile(w, p):
    w.string(p["customer_id"], "`customer_id`")
    w.string(p["currency"], "`currency`")
    w.string(p["country"], "`country`")
    w.opt_tag(p["region"] is not None, "`region`")
    if p["region"] is not None:
        w.string(p["region"], "`region`")
    w.string(p["tax_id"], "`tax_id`")
    w.string(p["timezone"], "`timezone`")
    w.string(p["invoice_series"], "`invoice_series`")
    w.u32(p["payment_terms_days"], "`payment_terms_days`")


def subscription_changed(w, s):
    w.string(s["subscription_id"], "`subscription_id`")
    w.string(s["customer_id"], "`customer_id`")
    kind = s["change"][0]
    if kind == "started":
        _, plan_code, plan_version, start = s["change"]
        w.u32(0, "`change` variant", "0 = Started")
        w.string(plan_code, "`change.plan_code`")
        w.u32(plan_version, "`change.plan_version`")
        w.day(start, "`change.start`")
    else:
        raise ValueError(kind)


def coupon_granted(w, g):
    w.string(g["grant_id"], "`grant_id`")
    w.string(g["customer_id"], "`customer_id`")
    c = g["coupon"]
    w.string(c["code"], "`coupon.code`")
    kind, value = c["discount"]
    assert kind == "percentage"
    w.u32(0, "`coupon.discount` variant", "0 = Percentage")
    w.dec(value, "`coupon.discount.percent`")
    kind, count = c["duration"]
    assert kind == "periods"
    w.u32(1, "`coupon.duration` variant", "1 = Periods")
    w.u32(count, "`coupon.duration.count`")
    w.day(g["from"], "`from`")


def tax_rules_published(w, t):
    w.u32(t["version"], "`version`")
    w.count(len(t["rules"]), "`rules`")
    for i, r in enumerate(t["rules"]):
        at = f"`rules[{i}]"
        w.string(r["code"], f"{at}.code`")
        w.string(r["country"], f"{at}.country`")
        w.opt_tag(r["region"] is not None, f"{at}.region`")
        if r["region"] is not None:
            w.string(r["region"], f"{at}.region`")
        w.dec(r["rate"], f"{at}.rate`")
        w.u32(TAX_MODE[r["mode"]], f"{at}.mode`", f"{TAX_MODE[r['mode']]} = {CAMEL[r['mode']]}")
        w.u32(ROUNDING[r["rounding"]], f"{at}.rounding`", f"{ROUNDING[r['rounding']]} = {CAMEL[r['rounding']]}")
        w.u32(TAX_ROUNDING[r["granularity"]], f"{at}.granularity`",
              f"{TAX_ROUNDING[r['granularity']]} = {CAMEL[r['granularity']]}")


def line_tax(w, t, at):
    w.string(t["code"], f"{at}.code`")
    w.dec(t["rate"], f"{at}.rate`")
    w.dec(t["amount"], f"{at}.amount`")


def invoice_issued(w, e):
    inv = e["invoice"]
    w.string(inv["number"], "`invoice.number`")
    w.string(inv["series"], "`invoice.series`")
    w.i32(inv["year"], "`invoice.year`")
    w.u64(inv["sequence"], "`invoice.sequence`")
    w.string(inv["customer_id"], "`invoice.customer_id`")
    w.string(inv["subscription_id"], "`invoice.subscription_id`")
    w.string(inv["currency"], "`invoice.currency`")
    w.day(inv["period_start"], "`invoice.period_start`")
    w.day(inv["period_end"], "`invoice.period_end`")
    w.i64(inv["usage_from"], "`invoice.usage_from`", f"{inv['usage_from']} = {ns_text(inv['usage_from'])}")
    w.i64(inv["usage_to"], "`invoice.usage_to`", f"{inv['usage_to']} = {ns_text(inv['usage_to'])}")
    length = inv["usage_journal_length"]
    w.u64(length, "`invoice.usage_journal_length`", f"{length} (the usage of seqs 0 to {length - 1})")
    w.string(inv["country"], "`invoice.country`")
    w.opt_tag(inv["region"] is not None, "`invoice.region`")
    assert inv["region"] is None
    w.string(inv["tax_id"], "`invoice.tax_id`")
    w.day(inv["issued_on"], "`invoice.issued_on`")
    w.day(inv["due_on"], "`invoice.due_on`")
    w.count(len(inv["lines"]), "`invoice.lines`")
    for i, line in enumerate(inv["lines"]):
        at = f"`lines[{i}]"
        w.string(line["kind"], f"{at}.kind`")
        w.string(line["plan_code"], f"{at}.plan_code`")
        w.u32(line["plan_version"], f"{at}.plan_version`")
        w.string(line["charge_code"], f"{at}.charge_code`")
        w.string(line["description"], f"{at}.description`")
        w.day(line["start"], f"{at}.start`")
        w.day(line["end"], f"{at}.end`")
        w.dec(line["quantity"], f"{at}.quantity`")
        w.dec(line["free_units"], f"{at}.free_units`")
        w.dec(line["billable_quantity"], f"{at}.billable_quantity`")
        assert not line["tiers"]
        w.count(0, f"{at}.tiers`")
        w.string(line["explanation"], f"{at}.explanation`")
        w.dec(line["amount"], f"{at}.amount`")
        w.dec(line["discount"], f"{at}.discount`")
        w.count(len(line["taxes"]), f"{at}.taxes`")
        for j, t in enumerate(line["taxes"]):
            line_tax(w, t, f"{at}.taxes[{j}]")
        w.dec(line["net"], f"{at}.net`")
        w.dec(line["total"], f"{at}.total`")
        usage = line["usage"]
        w.opt_tag(usage is not None, f"{at}.usage`")
        if usage is not None:
            events, digest, start, end = usage
            w.u64(events, f"{at}.usage.events`")
            w.raw(digest, f"{at}.usage.digest`", "the usage digest, below")
            w.i64(start, f"{at}.usage.from`", f"{start} = {ns_text(start)}")
            w.i64(end, f"{at}.usage.to`", f"{end} = {ns_text(end)}")
    w.count(len(inv["coupons"]), "`invoice.coupons`")
    for i, c in enumerate(inv["coupons"]):
        at = f"`coupons[{i}]"
        w.string(c["grant_id"], f"{at}.grant_id`")
        w.string(c["code"], f"{at}.code`")
        w.dec(c["amount"], f"{at}.amount`")
    w.count(len(inv["taxes"]), "`invoice.taxes`")
    for i, t in enumerate(inv["taxes"]):
        at = f"`taxes[{i}]"
        w.string(t["code"], f"{at}.code`")
        w.dec(t["rate"], f"{at}.rate`")
        w.dec(t["base"], f"{at}.base`")
        w.dec(t["amount"], f"{at}.amount`")
    for name in ["subtotal", "discount", "tax", "total", "credit_applied", "amount_due"]:
        w.dec(inv[name], f"`invoice.{name}`")
    transaction(w, e["transaction"], "transaction")


def invoice_voided(w, e):
    w.string(e["number"], "`number`")
    w.string(e["reason"], "`reason`")
    transaction(w, e["transaction"], "transaction")


def credit_note_issued(w, e):
    n = e["credit_note"]
    w.string(n["number"], "`credit_note.number`")
    w.string(n["series"], "`credit_note.series`")
    w.i32(n["year"], "`credit_note.year`")
    w.u64(n["sequence"], "`credit_note.sequence`")
    w.string(n["invoice_number"], "`credit_note.invoice_number`")
    w.string(n["customer_id"], "`credit_note.customer_id`")
    w.string(n["currency"], "`credit_note.currency`")
    w.day(n["issued_on"], "`credit_note.issued_on`")
    w.string(n["reason"], "`credit_note.reason`")
    w.count(len(n["lines"]), "`credit_note.lines`")
    for i, line in enumerate(n["lines"]):
        at = f"`lines[{i}]"
        w.u32(line["line"], f"{at}.line`")
        w.dec(line["net"], f"{at}.net`")
        w.count(len(line["taxes"]), f"{at}.taxes`")
        for j, t in enumerate(line["taxes"]):
            line_tax(w, t, f"{at}.taxes[{j}]")
        w.dec(line["total"], f"{at}.total`")
    for name in ["total", "to_invoice", "to_credit"]:
        w.dec(n[name], f"`credit_note.{name}`")
    transaction(w, e["transaction"], "transaction")


def payment_recorded(w, e):
    p = e["payment"]
    w.string(p["payment_id"], "`payment.payment_id`")
    w.string(p["customer_id"], "`payment.customer_id`")
    k = PAYMENT_KIND[p["kind"]]
    w.u32(k, "`payment.kind`", f"{k} = {CAMEL[p['kind']]}")
    w.string(p["currency"], "`payment.currency`")
    w.dec(p["amount"], "`payment.amount`")
    w.day(p["received_on"], "`payment.received_on`")
    w.string(p["reference"], "`payment.reference`")
    w.count(len(p["allocations"]), "`payment.allocations`")
    for i, (number, amount) in enumerate(p["allocations"]):
        w.string(number, f"`allocations[{i}].invoice_number`")
        w.dec(amount, f"`allocations[{i}].amount`")
    w.dec(p["to_credit"], "`payment.to_credit`")
    transaction(w, e["transaction"], "transaction")


VARIANTS = {
    "billing_profile_set": (19, "BillingProfileSet", billing_profile),
    "subscription_changed": (20, "SubscriptionChanged", subscription_changed),
    "coupon_granted": (21, "CouponGranted", coupon_granted),
    "tax_rules_published": (22, "TaxRulesPublished", tax_rules_published),
    "invoice_issued": (23, "InvoiceIssued", invoice_issued),
    "invoice_voided": (24, "InvoiceVoided", invoice_voided),
    "credit_note_issued": (25, "CreditNoteIssued", credit_note_issued),
    "payment_recorded": (26, "PaymentRecorded", payment_recorded),
}

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
ADMIN = "00000000000000a1"


def entry(seq, recorded_at, kind, body):
    w = W()
    w.u8(1, "version", "format 1")
    when = f"t0 + {(recorded_at - T0) // SEC} s = {recorded_at}" if recorded_at - T0 < 3600 * SEC \
        else f"{recorded_at} = {ns_text(recorded_at)}"
    w.i64(recorded_at, "`recorded_at`", when)
    w.string(ADMIN, "`key_id`", f"`{ADMIN}` (the admin key)")
    index, name, encode = VARIANTS[kind]
    w.u32(index, "body variant", f"{index} = `{name}`")
    encode(w, body)
    return w


# --- section 7: the hash chain -------------------------------------------


def entry_hash(seq, prev, data):
    return blake3(b"tally/entry/v1" + seq.to_bytes(8, "big") + prev + data).digest()


# --- the examples ---------------------------------------------------------


def digest(start, step):
    return bytes((start + step * i) % 256 for i in range(32))


def day(text):
    import datetime

    return (datetime.date.fromisoformat(text) - datetime.date(1970, 1, 1)).days


DAY_NS = 86_400 * SEC

ACCOUNTS = {
    5: "`assets:receivable:usd`",
    6: "`revenue:discounts:usd`",
    7: "`revenue:compute_pro:platform`",
    8: "`revenue:compute_pro:minimum_commitment`",
    9: "`liabilities:tax:vat_de:usd`",
    10: "`assets:cash:usd`",
    11: "`liabilities:customer_credit:usd`",
}

# The usage digest of the `cpu_eu_west` line: of the events of the usage
# entries before the invoice's `usage_journal_length` (25, or 27 for the
# reissue: seq 19 is the only usage entry either way), only seq 19's
# events[0] is acme's compute_seconds event, counted by the meter's filters
# (meter version 1, seq 17), in the region eu-west group and in the line's
# window [from, to), November 2023 in UTC.
EVENT_HASH_0 = bytes.fromhex("8a160f438cb6e8207c33f18b5fedfbffc7d4372c2a13f8bc3ccebe8820340139")
USAGE_DIGEST = blake3(bytes(32) + EVENT_HASH_0).digest()

NOV_1, DEC_1 = day("2023-11-01"), day("2023-12-01")


def lines():
    vat = lambda amount: [{"code": "vat_de", "rate": "19", "amount": amount}]
    common = {"plan_code": "compute_pro", "plan_version": 1, "start": NOV_1, "end": DEC_1,
              "tiers": [], "explanation": ""}
    return [
        dict(common, kind="charge", charge_code="platform", description="Platform fee",
             quantity="1", free_units="0", billable_quantity="1", amount="49.00",
             discount="4.90", taxes=vat("8.38"), net="44.10", total="52.48", usage=None),
        dict(common, kind="charge", charge_code="cpu_eu_west", description="CPU seconds in eu-west",
             quantity="12.5", free_units="3600", billable_quantity="0", amount="0.00",
             discount="0.00", taxes=vat("0.00"), net="0.00", total="0.00",
             usage=(1, USAGE_DIGEST, NOV_1 * DAY_NS, DEC_1 * DAY_NS)),
        dict(common, kind="minimum_commitment", charge_code="minimum_commitment",
             description="Minimum commitment of 100 USD", quantity="1", free_units="0",
             billable_quantity="1", amount="51.00", discount="5.10", taxes=vat("8.72"),
             net="45.90", total="54.62", usage=None),
    ]


def invoice(sequence, digest_bytes, journal_length):
    """The November invoice; its billing run read usage at `journal_length`
    (the invoice's own seq: nothing was written between the read and it)."""
    number = f"INV-2023-{sequence:06d}"
    return {
        "invoice": {
            "number": number, "series": "INV", "year": 2023, "sequence": sequence,
            "customer_id": "acme", "subscription_id": "sub_acme_compute", "currency": "USD",
            "period_start": NOV_1, "period_end": DEC_1,
            "usage_from": NOV_1 * DAY_NS, "usage_to": DEC_1 * DAY_NS,
            "usage_journal_length": journal_length,
            "country": "DE", "region": None, "tax_id": "DE123456789",
            "issued_on": DEC_1, "due_on": DEC_1 + 14,
            "lines": lines(),
            "coupons": [{"grant_id": "grant_acme_launch10", "code": "launch10", "amount": "10.00"}],
            "taxes": [{"code": "vat_de", "rate": "19", "base": "90.00", "amount": "17.10"}],
            "subtotal": "100.00", "discount": "10.00", "tax": "17.10", "total": "107.10",
            "credit_applied": "0.00", "amount_due": "107.10",
        },
        "transaction": {
            "id": f"invoice:{number}", "request_digest": digest_bytes, "mode": ("standard",),
            "postings": INVOICE_POSTINGS, "description": f"invoice {number}",
        },
    }


INVOICE_POSTINGS = [
    (5, "debit", 10710),
    (6, "debit", 1000),
    (7, "credit", 4900),
    (8, "credit", 5100),
    (9, "credit", 1710),
]


def at(ts):
    import datetime

    t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return int(t.timestamp()) * SEC


EXAMPLES = [
    (21, T0 + 21 * SEC, "billing_profile_set", {
        "customer_id": "acme", "currency": "USD", "country": "DE", "region": None,
        "tax_id": "DE123456789", "timezone": "UTC", "invoice_series": "INV",
        "payment_terms_days": 14,
    }),
    (22, T0 + 22 * SEC, "subscription_changed", {
        "subscription_id": "sub_acme_compute", "customer_id": "acme",
        "change": ("started", "compute_pro", 1, NOV_1),
    }),
    (23, T0 + 23 * SEC, "coupon_granted", {
        "grant_id": "grant_acme_launch10", "customer_id": "acme",
        "coupon": {"code": "launch10", "discount": ("percentage", "10"),
                   "duration": ("periods", 3)},
        "from": NOV_1,
    }),
    (24, T0 + 24 * SEC, "tax_rules_published", {
        "version": 1,
        "rules": [
            {"code": "vat_de", "country": "DE", "region": None, "rate": "19",
             "mode": "exclusive", "rounding": "half_up", "granularity": "per_line"},
            {"code": "gst_ca", "country": "CA", "region": None, "rate": "5",
             "mode": "exclusive", "rounding": "half_up", "granularity": "per_line"},
            {"code": "qst_qc", "country": "CA", "region": "CA-QC", "rate": "9.975",
             "mode": "exclusive", "rounding": "half_even", "granularity": "per_invoice"},
        ],
    }),
    (25, at("2023-12-01T06:00:00Z"), "invoice_issued", invoice(1, digest(0x23, 0x05), 25)),
    (26, at("2023-12-01T09:30:00Z"), "invoice_voided", {
        "number": "INV-2023-000001", "reason": "sent to the wrong billing contact",
        "transaction": {
            "id": "void:INV-2023-000001", "request_digest": digest(0x24, 0x07),
            "mode": ("reversal", "invoice:INV-2023-000001"),
            "postings": [(a, "credit" if s == "debit" else "debit", m) for a, s, m in INVOICE_POSTINGS],
            "description": "void of invoice INV-2023-000001",
        },
    }),
    (27, at("2023-12-01T09:35:00Z"), "invoice_issued", invoice(2, digest(0x25, 0x0b), 27)),
    (28, at("2023-12-05T14:00:00Z"), "credit_note_issued", {
        "credit_note": {
            "number": "CN-INV-2023-000001", "series": "CN-INV", "year": 2023, "sequence": 1,
            "invoice_number": "INV-2023-000002", "customer_id": "acme", "currency": "USD",
            "issued_on": day("2023-12-05"),
            "reason": "platform outage on 2023-11-20: half the platform fee",
            "lines": [{"line": 0, "net": "22.05",
                       "taxes": [{"code": "vat_de", "rate": "19", "amount": "4.19"}],
                       "total": "26.24"}],
            "total": "26.24", "to_invoice": "26.24", "to_credit": "0.00",
        },
        "transaction": {
            "id": "credit_note:CN-INV-2023-000001", "request_digest": digest(0x26, 0x0d),
            "mode": ("standard",),
            "postings": [(9, "debit", 419), (7, "debit", 2205), (5, "credit", 2624)],
            "description": "credit note CN-INV-2023-000001 on invoice INV-2023-000002",
        },
    }),
    (29, at("2023-12-12T10:15:00Z"), "payment_recorded", {
        "payment": {
            "payment_id": "pay_20231212_acme", "customer_id": "acme", "kind": "payment",
            "currency": "USD", "amount": "100.00", "received_on": day("2023-12-12"),
            "reference": "SEPA E2E 20231212-ACME-0042",
            "allocations": [("INV-2023-000002", "80.86")], "to_credit": "19.14",
        },
        "transaction": {
            "id": "payment:pay_20231212_acme", "request_digest": digest(0x27, 0x11),
            "mode": ("standard",),
            "postings": [(10, "debit", 10000), (5, "credit", 8086), (11, "credit", 1914)],
            "description": "payment pay_20231212_acme",
        },
    }),
]

# The hash of seq 20, from the table of docs/journal-format.md section 10.
PREV_20 = bytes.fromhex("d9cb5b7da576f9cbe5b5027a2104022f9385be58a20003050cb0c99b9d2d1690")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "summary"
    prev = PREV_20
    rows_of = {}
    for seq, recorded_at, kind, body in EXAMPLES:
        w = entry(seq, recorded_at, kind, body)
        rows_of[seq] = w.rows
        data = bytes(w.b)
        h = entry_hash(seq, prev, data)
        prev = h
        if mode == "summary":
            print(seq, kind, len(data), h.hex())
        elif mode == "rust":
            hexed = data.hex()
            chunks = [hexed[i:i + 64] for i in range(0, len(hexed), 64)]
            print(f"    // seq {seq}")
            print("    Vector {")
            print(f'        kind: "{kind}",')
            print("        bytes: concat!(")
            for c in chunks:
                print(f'            "{c}",')
            print("        ),")
            print(f'        hash: "{h.hex()}",')
            print("    },")
        elif mode == "doc":
            hexed = data.hex()
            print(f"Seq {seq}, `{kind}`, {len(data)} bytes:\n")
            print("```")
            for i in range(0, len(hexed), 64):
                print(hexed[i:i + 64])
            print("```\n")
            print("| bytes | field | hex | value |")
            print("|-------|-------|-----|-------|")
            rows = w.rows
            if seq == 27:
                # The reissue: only the rows that differ from seq 25's.
                assert [r[:3] for r in rows] == [r[:3] for r in rows_of[25]]
                rows = [r for r, o in zip(rows, rows_of[25]) if r != o]
            for start, end, field, hx, value in rows:
                print(f"| {start}–{end} | {field} | `{hx}` | {value} |")
            print()
        elif mode == "table":
            print(f"| {seq} | `{kind}` | {len(data)} | `{h.hex()}` |")
    if mode == "summary":
        print("usage digest", USAGE_DIGEST.hex())


if __name__ == "__main__":
    main()
