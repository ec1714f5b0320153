//! `tally usage`: send usage events from JSON lines, query a meter's usage (as totals or a
//! series), close a customer's usage period, and list late events.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde_json::{json, Map, Value};
use tally_client::{
    Client, ClientError, ErrorCode, EventResult, LateEvent, UsageEvent, UsageGroup, UsageQuery,
    UsageResult, UsageSeries, LIST_PAGE_SIZE_MAX,
};

use super::args::{QueryArgs, SendArgs, UsageCommand};
use super::commands::Printer;
use super::events::{EventLines, LineError};
use super::meter::filters;
use super::render::{self, fields, Align, Table};
use super::CliError;

pub async fn run(
    client: &Client,
    printer: &mut Printer<'_>,
    command: UsageCommand,
) -> Result<(), CliError> {
    match command {
        UsageCommand::Send(args) => send(client, printer, args).await,
        UsageCommand::Query(args) => query(client, printer, args).await,
        UsageCommand::Close { customer, through } => {
            let seq = client.close_usage_period(&customer, through).await?;
            let through = render::time_ns(through);
            printer.show(
                || json!({ "customer": customer, "through": through, "seq": seq }),
                || {
                    format!(
                        "closed the usage period of {customer} through {through} (entry {seq})\n"
                    )
                },
            )
        }
        UsageCommand::Late {
            customer,
            from_seq,
            limit,
        } => {
            let events = late_events(client, customer.as_deref(), from_seq, limit).await?;
            printer.show(
                || Value::Array(events.iter().map(late_event_json).collect()),
                || late_events_table(&events),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// send

/// One event that is not recorded: refused by the ledger, or unreadable here (no code).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rejection {
    line: usize,
    event_id: Option<String>,
    code: Option<ErrorCode>,
    /// The field within the event (`value`, `properties.region`), "" for the whole event.
    field: String,
    message: String,
}

/// What `usage send` did, as far as it got.
#[derive(Debug, Default)]
struct SendReport {
    recorded: u64,
    duplicates: u64,
    /// Recorded by this run, timestamped before the customer's closed period.
    late: u64,
    /// Recorded by this run, but excluded by the meter's filters.
    not_counted: u64,
    rejections: Vec<Rejection>,
    /// The first line not delivered, when a batch could not be.
    undelivered_from_line: Option<usize>,
}

/// The events waiting to be sent, with their line numbers.
#[derive(Default)]
struct Pending {
    events: Vec<UsageEvent>,
    lines: Vec<usize>,
}

async fn send(client: &Client, printer: &mut Printer<'_>, args: SendArgs) -> Result<(), CliError> {
    let (name, input) = open_input(args.file.as_deref())?;
    let mut lines = EventLines::new(input);
    let mut report = SendReport::default();
    let mut pending = Pending::default();
    loop {
        let item = lines
            .next_event()
            .map_err(|error| CliError::Usage(format!("{name}: {error}")));
        let item = match item {
            Ok(item) => item,
            Err(error) => return finish(printer, &report, Some(error)),
        };
        let end = item.is_none();
        match item {
            Some((_, Err(error))) => report.rejections.push(unreadable(error)),
            Some((line, Ok(event))) => {
                pending.lines.push(line);
                pending.events.push(event);
            }
            None => {}
        }
        let full = pending.events.len() >= args.batch;
        if full || (end && !pending.events.is_empty()) {
            if let Err(error) = deliver(client, &mut pending, &mut report).await {
                return finish(printer, &report, Some(error));
            }
        }
        if end {
            return finish(printer, &report, None);
        }
    }
}

fn open_input(path: Option<&Path>) -> Result<(String, Box<dyn BufRead>), CliError> {
    match path {
        None => Ok(("stdin".into(), Box::new(BufReader::new(io::stdin())))),
        Some(path) if path == Path::new("-") => {
            Ok(("stdin".into(), Box::new(BufReader::new(io::stdin()))))
        }
        Some(path) => {
            let file = File::open(path)
                .map_err(|error| CliError::Usage(format!("{}: {error}", path.display())))?;
            Ok((path.display().to_string(), Box::new(BufReader::new(file))))
        }
    }
}

fn unreadable(error: LineError) -> Rejection {
    Rejection {
        line: error.line,
        event_id: None,
        code: None,
        field: error.field,
        message: error.message,
    }
}

/// Sends the pending events as one batch (the client retries a batch whose delivery failed
/// in transit) and adds its results to the report. On failure the report names the first
/// line not delivered.
async fn deliver(
    client: &Client,
    pending: &mut Pending,
    report: &mut SendReport,
) -> Result<(), CliError> {
    let outcome = match client.ingest_events(&pending.events).await {
        Ok(outcome) => outcome,
        Err(error) => {
            let from_line = pending.lines.first().copied().unwrap_or_default();
            report.undelivered_from_line = Some(from_line);
            return Err(CliError::Undelivered { error, from_line });
        }
    };
    let items = outcome.results.into_iter().zip(&pending.lines);
    for (position, (result, &line)) in items.enumerate() {
        match result {
            EventResult::Recorded(recorded) => {
                report.recorded += 1;
                report.late += u64::from(recorded.late);
                report.not_counted += u64::from(!recorded.counted);
            }
            EventResult::Duplicate(_) => report.duplicates += 1,
            EventResult::Rejected(error) => report.rejections.push(Rejection {
                line,
                event_id: Some(pending.events[position].event_id.clone()),
                code: Some(error.code),
                field: event_field(&error.field, position),
                message: error.message,
            }),
        }
    }
    pending.events.clear();
    pending.lines.clear();
    Ok(())
}

/// The ledger names fields in the request (`events[3].value`); a line holds one event, so
/// the field within it (`value`) is what its reader needs.
fn event_field(field: &str, index: usize) -> String {
    let prefix = format!("events[{index}]");
    match field.strip_prefix(&prefix) {
        Some(rest) => rest.strip_prefix('.').unwrap_or(rest).to_string(),
        None => field.to_string(),
    }
}

/// Prints the report, then fails with `failure`, or with `Rejected` when events were
/// refused.
fn finish(
    printer: &mut Printer<'_>,
    report: &SendReport,
    failure: Option<CliError>,
) -> Result<(), CliError> {
    printer.show(|| send_report_json(report), || send_report_text(report))?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let refused = report.rejections.len();
    if refused > 0 {
        let total = refused + (report.recorded + report.duplicates) as usize;
        return Err(CliError::Rejected { refused, total });
    }
    Ok(())
}

fn rejection_code(rejection: &Rejection) -> Option<&'static str> {
    rejection.code.map(|code| code.as_str_name())
}

fn send_report_json(report: &SendReport) -> Value {
    let rejections = report.rejections.iter().map(|rejection| {
        json!({
            "line": rejection.line,
            "event_id": rejection.event_id,
            "code": rejection_code(rejection),
            "field": rejection.field,
            "message": rejection.message,
        })
    });
    json!({
        "recorded": report.recorded,
        "duplicates": report.duplicates,
        "rejected": report.rejections.len(),
        "late": report.late,
        "not_counted": report.not_counted,
        "rejections": rejections.collect::<Vec<_>>(),
        "undelivered_from_line": report.undelivered_from_line,
    })
}

fn send_report_text(report: &SendReport) -> String {
    let nonzero = |count: u64| {
        if count == 0 {
            String::new()
        } else {
            count.to_string()
        }
    };
    let undelivered = report
        .undelivered_from_line
        .map(|line| format!("line {line} and after"))
        .unwrap_or_default();
    let mut text = fields(&[
        ("recorded", report.recorded.to_string()),
        ("duplicates", report.duplicates.to_string()),
        ("rejected", report.rejections.len().to_string()),
        ("late", nonzero(report.late)),
        ("not counted", nonzero(report.not_counted)),
        ("not sent", undelivered),
    ]);
    if report.rejections.is_empty() {
        return text;
    }
    let mut table = Table::new(&[
        ("LINE", Align::Right),
        ("EVENT ID", Align::Left),
        ("CODE", Align::Left),
        ("FIELD", Align::Left),
        ("MESSAGE", Align::Left),
    ]);
    for rejection in &report.rejections {
        table.row(vec![
            rejection.line.to_string(),
            rejection.event_id.clone().unwrap_or_default(),
            rejection_code(rejection)
                .unwrap_or("(unreadable)")
                .to_string(),
            rejection.field.clone(),
            rejection.message.clone(),
        ]);
    }
    text.push('\n');
    text.push_str(&table.render());
    text
}

// ---------------------------------------------------------------------------------------
// query

async fn query(
    client: &Client,
    printer: &mut Printer<'_>,
    args: QueryArgs,
) -> Result<(), CliError> {
    let query = UsageQuery {
        meter: args.meter,
        customer: args.customer,
        from: args.from,
        to: args.to,
        filters: filters(args.filters)?,
        group_by: args.group_by,
        recompute: args.recompute,
    };
    match args.series {
        None => {
            let result = client.query_usage(&query).await?;
            printer.show(
                || usage_result_json(&result),
                || usage_result_text(&result, &query.group_by),
            )
        }
        Some(width) => {
            let series = client.query_usage_series(&query, width).await?;
            printer.show(
                || usage_series_json(&series),
                || usage_series_text(&series, &query.group_by),
            )
        }
    }
}

fn group_json(group: &UsageGroup) -> Value {
    let values: Map<String, Value> = group
        .group
        .iter()
        .map(|(property, value)| (property.clone(), Value::String(value.clone())))
        .collect();
    json!({
        "customer": group.customer,
        "group": values,
        "count": group.count,
        "value": group.value.to_string(),
    })
}

fn usage_result_json(result: &UsageResult) -> Value {
    json!({
        "meter": result.meter,
        "aggregation": result.aggregation.name(),
        "from": render::time_ns(result.from),
        "to": render::time_ns(result.to),
        "as_of_seq": result.as_of_seq,
        "groups": result.groups.iter().map(group_json).collect::<Vec<_>>(),
    })
}

fn usage_series_json(series: &UsageSeries) -> Value {
    let buckets = series.buckets.iter().map(|bucket| {
        json!({
            "from": render::time_ns(bucket.from),
            "to": render::time_ns(bucket.to),
            "groups": bucket.groups.iter().map(group_json).collect::<Vec<_>>(),
        })
    });
    json!({
        "meter": series.meter,
        "aggregation": series.aggregation.name(),
        "width": series.width.name(),
        "as_of_seq": series.as_of_seq,
        "buckets": buckets.collect::<Vec<_>>(),
    })
}

/// The group columns: the requested group-by properties in their order, else whatever
/// properties the groups carry, sorted.
fn group_columns<'a>(
    requested: &[String],
    groups: impl Iterator<Item = &'a UsageGroup>,
) -> Vec<String> {
    if !requested.is_empty() {
        return requested.to_vec();
    }
    let found: BTreeSet<&String> = groups.flat_map(|group| group.group.keys()).collect();
    found.into_iter().cloned().collect()
}

/// CUSTOMER, one column per group property, COUNT, VALUE.
fn groups_table(groups: &[UsageGroup], columns: &[String]) -> String {
    let mut headers = vec![("CUSTOMER".to_string(), Align::Left)];
    headers.extend(
        columns
            .iter()
            .map(|name| (name.to_uppercase(), Align::Left)),
    );
    headers.push(("COUNT".to_string(), Align::Right));
    headers.push(("VALUE".to_string(), Align::Right));
    let mut table = Table::with_columns(headers);
    for group in groups {
        let mut row = vec![group.customer.clone()];
        row.extend(
            columns
                .iter()
                .map(|name| group.group.get(name).cloned().unwrap_or_default()),
        );
        row.push(group.count.to_string());
        row.push(group.value.to_string());
        table.row(row);
    }
    table.render()
}

fn usage_result_text(result: &UsageResult, requested: &[String]) -> String {
    let columns = group_columns(requested, result.groups.iter());
    format!(
        "{}meter {} ({}) from {} to {}, as of seq {}\n",
        groups_table(&result.groups, &columns),
        result.meter,
        result.aggregation.name(),
        render::time_ns(result.from),
        render::time_ns(result.to),
        result.as_of_seq
    )
}

/// One table per bucket with usage; the empty buckets are only counted, so that a day of
/// minutes with a few busy ones stays readable (`--json` lists every bucket).
fn usage_series_text(series: &UsageSeries, requested: &[String]) -> String {
    let columns = group_columns(
        requested,
        series.buckets.iter().flat_map(|bucket| &bucket.groups),
    );
    let mut text = String::new();
    let used = series
        .buckets
        .iter()
        .filter(|bucket| !bucket.groups.is_empty());
    for bucket in used {
        text.push_str(&format!(
            "{} to {}\n{}\n",
            render::time_ns(bucket.from),
            render::time_ns(bucket.to),
            groups_table(&bucket.groups, &columns)
        ));
    }
    let empty = series
        .buckets
        .iter()
        .filter(|bucket| bucket.groups.is_empty())
        .count();
    let empty_note = match empty {
        0 => String::new(),
        count if count == series.buckets.len() => ", none with usage".to_string(),
        count => format!(", {count} without usage (not shown)"),
    };
    text.push_str(&format!(
        "meter {} ({}) per {}: {} buckets{empty_note}, as of seq {}\n",
        series.meter,
        series.aggregation.name(),
        series.width,
        series.buckets.len(),
        series.as_of_seq
    ));
    text
}

// ---------------------------------------------------------------------------------------
// late

/// Reads pages of late events until `limit` events or the last page.
async fn late_events(
    client: &Client,
    customer: Option<&str>,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<LateEvent>, ClientError> {
    let mut events = Vec::new();
    let mut next = Some((from_seq, 0));
    while let Some(from) = next {
        if events.len() >= limit {
            break;
        }
        let wanted = (limit - events.len()).min(LIST_PAGE_SIZE_MAX as usize);
        let page_size = u32::try_from(wanted).unwrap_or(LIST_PAGE_SIZE_MAX);
        let page = client.list_late_events(customer, from, page_size).await?;
        events.extend(page.events);
        next = page.next;
    }
    events.truncate(limit);
    Ok(events)
}

pub fn event_json(event: &UsageEvent) -> Value {
    json!({
        "event_id": event.event_id,
        "customer": event.customer,
        "meter": event.meter,
        "timestamp": render::time_ns(event.timestamp),
        "value": event.value,
        "properties": event.properties,
    })
}

fn late_event_json(late: &LateEvent) -> Value {
    json!({
        "seq": late.seq,
        "index": late.index,
        "recorded_at": render::time_ns(late.recorded_at),
        "closed_through": render::time_ns(late.closed_through),
        "event": event_json(&late.event),
    })
}

fn late_events_table(events: &[LateEvent]) -> String {
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("INDEX", Align::Right),
        ("EVENT ID", Align::Left),
        ("CUSTOMER", Align::Left),
        ("METER", Align::Left),
        ("TIMESTAMP", Align::Left),
        ("VALUE", Align::Right),
        ("RECORDED AT", Align::Left),
        ("CLOSED THROUGH", Align::Left),
    ]);
    for late in events {
        let event = &late.event;
        table.row(vec![
            late.seq.to_string(),
            late.index.to_string(),
            event.event_id.clone(),
            event.customer.clone(),
            event.meter.clone(),
            render::time_ns(event.timestamp),
            event.value.clone().unwrap_or_default(),
            render::time_ns(late.recorded_at),
            render::time_ns(late.closed_through),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use std::collections::BTreeMap;
    use tally_client::{Aggregation, BucketWidth, UsageBucket};

    fn group(
        customer: &str,
        region: Option<&str>,
        count: u64,
        value: tally_client::Decimal,
    ) -> UsageGroup {
        UsageGroup {
            customer: customer.into(),
            group: region
                .map(|region| BTreeMap::from([("region".to_string(), region.to_string())]))
                .unwrap_or_default(),
            count,
            value,
        }
    }

    #[test]
    fn server_field_paths_become_event_fields() {
        // Goal: `events[3].value` of the batch is `value` of the line; others stay whole.
        assert_eq!(event_field("events[3].value", 3), "value");
        assert_eq!(
            event_field("events[3].properties.region", 3),
            "properties.region"
        );
        assert_eq!(event_field("events[3]", 3), "");
        assert_eq!(event_field("events[30].value", 3), "events[30].value");
        assert_eq!(event_field("", 0), "");
    }

    #[test]
    fn the_send_report_lists_rejections_by_line() {
        // Goal: the summary counts, then one row per rejected line; an unreadable line has
        // no code; the JSON carries the same facts.
        let report = SendReport {
            recorded: 3,
            duplicates: 1,
            late: 1,
            not_counted: 0,
            rejections: vec![
                Rejection {
                    line: 2,
                    event_id: None,
                    code: None,
                    field: "timestamp".into(),
                    message: "missing".into(),
                },
                Rejection {
                    line: 5,
                    event_id: Some("e5".into()),
                    code: Some(ErrorCode::ValueNotNumeric),
                    field: "value".into(),
                    message: "\"abc\" is not a decimal".into(),
                },
            ],
            undelivered_from_line: None,
        };
        let expected = "\
recorded    3
duplicates  1
rejected    2
late        1

LINE  EVENT ID  CODE               FIELD      MESSAGE
   2            (unreadable)       timestamp  missing
   5  e5        VALUE_NOT_NUMERIC  value      \"abc\" is not a decimal
";
        assert_eq!(send_report_text(&report), expected);
        let value = send_report_json(&report);
        assert_eq!(value["rejected"], 2);
        assert_eq!(value["rejections"][0]["code"], Value::Null);
        assert_eq!(value["rejections"][1]["code"], "VALUE_NOT_NUMERIC");
        assert_eq!(value["rejections"][1]["line"], 5);
        assert_eq!(value["undelivered_from_line"], Value::Null);
    }

    #[test]
    fn usage_prints_one_row_per_customer_and_group() {
        // Goal: group properties are columns in the requested order; values print exactly.
        let result = UsageResult {
            meter: "api_calls".into(),
            aggregation: Aggregation::Sum,
            from: 1_714_521_600_000_000_000,
            to: 1_714_608_000_000_000_000,
            groups: vec![
                group("acme", Some("eu"), 2, dec!(12.50)),
                group("acme", Some(""), 1, dec!(0.001)),
            ],
            as_of_seq: 42,
        };
        let expected = "\
CUSTOMER  REGION  COUNT  VALUE
acme      eu          2  12.50
acme                  1  0.001
meter api_calls (sum) from 2024-05-01T00:00:00Z to 2024-05-02T00:00:00Z, as of seq 42
";
        assert_eq!(usage_result_text(&result, &[]), expected);
        let value = usage_result_json(&result);
        assert_eq!(value["groups"][0]["value"], "12.50");
        assert_eq!(value["groups"][0]["group"]["region"], "eu");
        assert_eq!(value["aggregation"], "sum");
    }

    #[test]
    fn series_print_one_table_per_bucket() {
        // Goal: each bucket with usage has its window as a heading; empty ones are counted.
        let hour = 3_600_000_000_000;
        let series = UsageSeries {
            meter: "api_calls".into(),
            aggregation: Aggregation::Count,
            width: BucketWidth::Hour,
            buckets: vec![
                UsageBucket {
                    from: 0,
                    to: hour,
                    groups: vec![group("acme", None, 3, dec!(3))],
                },
                UsageBucket {
                    from: hour,
                    to: 2 * hour,
                    groups: vec![],
                },
            ],
            as_of_seq: 7,
        };
        let expected = "\
1970-01-01T00:00:00Z to 1970-01-01T01:00:00Z
CUSTOMER  COUNT  VALUE
acme          3      3

meter api_calls (count) per hour: 2 buckets, 1 without usage (not shown), as of seq 7
";
        assert_eq!(usage_series_text(&series, &[]), expected);
        let mut idle = series.clone();
        idle.buckets[0].groups.clear();
        assert_eq!(
            usage_series_text(&idle, &[]),
            "meter api_calls (count) per hour: 2 buckets, none with usage, as of seq 7\n"
        );
        assert_eq!(
            usage_series_json(&series)["buckets"][1]["to"],
            "1970-01-01T02:00:00Z"
        );
    }
}
