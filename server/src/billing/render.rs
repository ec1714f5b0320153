//! An invoice as a self-contained HTML page a customer can read: who and
//! what period, every line with its quantities, tiers and explanation, the
//! discount, each tax, the totals, and what is paid and still owed. No
//! scripts, no external resources: the page is one file that prints as is.
//! Every text from a document is escaped.

use super::operations::InvoiceView;
use std::fmt::Write;
use tally_core::billing::InvoiceLine;
use tally_core::decimal::Dec;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An amount at the currency's scale, with its currency.
fn money(value: Dec, currency: &str, scale: u32) -> String {
    let mut value = value.0;
    value.rescale(scale);
    format!("{value} {}", escape(currency))
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}\
h1{margin-bottom:0}table{border-collapse:collapse;width:100%;margin:1em 0}\
th,td{padding:.3em .5em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.detail{color:#666;font-size:.85em}.status{font-weight:bold;text-transform:uppercase}\
.totals td{border:none}.totals tr.due td{font-weight:bold;border-top:2px solid #222}";

/// The page for an invoice; `scale` is its currency's decimal places.
pub fn invoice_html(view: &InvoiceView, scale: u8) -> String {
    let invoice = &view.invoice;
    let scale = u32::from(scale);
    let cur = invoice.currency.as_str();
    let m = |value: Dec| money(value, cur, scale);
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invoice {number}</title><style>{STYLE}</style></head><body>\n\
         <h1>Invoice {number}</h1>\n<p class=\"status\">{status}</p>\n<table>\
         <tr><th>Customer</th><td>{customer}</td><th>Issued</th><td>{issued}</td></tr>\
         <tr><th>Tax id</th><td>{tax_id}</td><th>Due</th><td>{due}</td></tr>\
         <tr><th>Jurisdiction</th><td>{country}{region}</td><th>Period</th><td>{start} to {end} (end exclusive)</td></tr>\
         <tr><th>Subscription</th><td>{subscription}</td><th>Currency</th><td>{currency}</td></tr>\
         </table>\n",
        number = escape(&invoice.number),
        status = view.status.name().replace('_', " "),
        customer = escape(&invoice.customer_id),
        issued = invoice.issued_on,
        tax_id = escape(&invoice.tax_id),
        due = invoice.due_on,
        country = escape(&invoice.country),
        region = invoice
            .region
            .as_deref()
            .map(|r| format!(" / {}", escape(r)))
            .unwrap_or_default(),
        start = invoice.period_start,
        end = invoice.period_end,
        subscription = escape(&invoice.subscription_id),
        currency = escape(cur),
    );
    page.push_str(
        "<table><tr><th>Line</th><th>Days</th><th class=\"n\">Quantity</th>\
         <th class=\"n\">Amount</th><th class=\"n\">Discount</th><th class=\"n\">Tax</th>\
         <th class=\"n\">Total</th></tr>\n",
    );
    for line in &invoice.lines {
        render_line(&mut page, line, &m);
    }
    page.push_str("</table>\n");
    if !invoice.coupons.is_empty() {
        page.push_str("<h2>Discounts</h2><table>");
        for coupon in &invoice.coupons {
            let _ = write!(
                page,
                "<tr><td>Coupon {}</td><td class=\"n\">-{}</td></tr>",
                escape(&coupon.code),
                m(coupon.amount)
            );
        }
        page.push_str("</table>\n");
    }
    if !invoice.taxes.is_empty() {
        page.push_str(
            "<h2>Taxes</h2><table><tr><th>Tax</th><th class=\"n\">Rate</th>\
             <th class=\"n\">Taxed</th><th class=\"n\">Amount</th></tr>",
        );
        for tax in &invoice.taxes {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{} %</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&tax.code),
                tax.rate,
                m(tax.base),
                m(tax.amount)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("<table class=\"totals\">");
    let mut row = |label: &str, value: String, class: &str| {
        let _ = write!(
            page,
            "<tr class=\"{class}\"><td>{label}</td><td class=\"n\">{value}</td></tr>"
        );
    };
    row("Subtotal", m(invoice.subtotal), "");
    row("Discount", format!("-{}", m(invoice.discount)), "");
    row("Tax", m(invoice.tax), "");
    row("Total", m(invoice.total), "");
    if !invoice.credit_applied.0.is_zero() {
        row(
            "Prepaid credit applied",
            format!("-{}", m(invoice.credit_applied)),
            "",
        );
    }
    row("Amount due", m(invoice.amount_due), "");
    row("Paid", m(Dec(view.paid)), "");
    if !view.credited.is_zero() {
        row("Credited", m(Dec(view.credited)), "");
    }
    row("Outstanding", m(Dec(view.outstanding)), "due");
    page.push_str("</table>\n");
    if let Some(reason) = &view.void_reason {
        let _ = writeln!(page, "<p>Void: {}</p>", escape(reason));
    }
    if !view.credit_notes.is_empty() {
        let notes: Vec<String> = view.credit_notes.iter().map(|n| escape(n)).collect();
        let _ = writeln!(page, "<p>Credit notes: {}</p>", notes.join(", "));
    }
    page.push_str("</body></html>\n");
    page
}

fn render_line(page: &mut String, line: &InvoiceLine, m: &dyn Fn(Dec) -> String) {
    let tax: Dec = Dec(line.taxes.iter().map(|t| t.amount.0).sum());
    let title = if line.description.is_empty() {
        line.charge_code.as_str()
    } else {
        line.description.as_str()
    };
    let _ = writeln!(
        page,
        "<tr><td>{title}<div class=\"detail\">{plan} v{version} · {charge}</div></td>\
         <td>{start} to {end}</td><td class=\"n\">{quantity}</td><td class=\"n\">{amount}</td>\
         <td class=\"n\">{discount}</td><td class=\"n\">{tax}</td><td class=\"n\">{total}</td></tr>",
        title = escape(title),
        plan = escape(&line.plan_code),
        version = line.plan_version,
        charge = escape(&line.charge_code),
        start = line.start,
        end = line.end,
        quantity = line.quantity,
        amount = m(line.amount),
        discount = m(line.discount),
        tax = m(tax),
        total = m(line.total),
    );
    let mut details = Vec::new();
    if !line.free_units.0.is_zero() {
        details.push(format!(
            "{} free units; {} billable",
            line.free_units, line.billable_quantity
        ));
    }
    for tier in &line.tiers {
        let bound = tier
            .up_to
            .map(|u| format!("{} to {}", tier.from, u))
            .unwrap_or_else(|| format!("above {}", tier.from));
        let mut text = format!(
            "tier {bound}: {} × {} = {}",
            tier.quantity, tier.unit_price, tier.amount
        );
        if !tier.flat_fee.0.is_zero() {
            text.push_str(&format!(" (with a flat fee of {})", tier.flat_fee));
        }
        details.push(text);
    }
    if !line.explanation.is_empty() {
        details.push(line.explanation.clone());
    }
    for tax in &line.taxes {
        details.push(format!("{} at {} %: {}", tax.code, tax.rate, tax.amount));
    }
    if let Some(usage) = &line.usage {
        details.push(format!(
            "rated {} usage events, digest {}",
            usage.events,
            hex::encode(&usage.digest[..8])
        ));
    }
    if !details.is_empty() {
        let items: Vec<String> = details.iter().map(|d| escape(d)).collect();
        let _ = writeln!(
            page,
            "<tr><td colspan=\"7\" class=\"detail\">{}</td></tr>",
            items.join("<br>")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn amounts_show_the_currency_scale() {
        assert_eq!(money(Dec("5".parse().unwrap()), "USD", 2), "5.00 USD");
        assert_eq!(money(Dec("0.5".parse().unwrap()), "KWD", 3), "0.500 KWD");
    }
}
