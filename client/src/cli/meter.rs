//! `tally meter`: define meters (from flags or a TOML/JSON file) and list their versions.
//!
//! A meter file holds one meter:
//!
//! ```toml
//! code = "api_calls"
//! aggregation = "sum"            # sum, count, min, max, unique_count or latest
//! value_property = "tokens"      # optional
//! group_by = ["region"]          # optional
//! grace_period_seconds = 3600    # optional, default 0
//! description = "API tokens"     # optional
//!
//! [filters]                      # optional: count only these values
//! tier = ["pro", "enterprise"]
//! ```
//!
//! or the same fields as a JSON object. A definition is checked here, with the ledger's own
//! rules, before it is sent.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use tally_client::{Aggregation, Client, MeterSpec, MeterVersion};

use super::args::{parse_aggregation, DefineMeterArgs, MeterCommand};
use super::commands::Printer;
use super::render::{self, fields, Align, Table};
use super::CliError;

/// The longest meter file read.
const FILE_BYTES_MAX: u64 = 1024 * 1024;

pub async fn run(
    client: &Client,
    printer: &mut Printer<'_>,
    command: MeterCommand,
) -> Result<(), CliError> {
    match command {
        MeterCommand::Define(args) => define(client, printer, args).await,
        MeterCommand::List { code } => {
            let meters = client.list_meters(code.as_deref()).await?;
            printer.show(
                || Value::Array(meters.iter().map(meter_json).collect()),
                || meters_table(&meters),
            )
        }
    }
}

async fn define(
    client: &Client,
    printer: &mut Printer<'_>,
    args: DefineMeterArgs,
) -> Result<(), CliError> {
    let (spec, description) = match &args.file {
        Some(path) => read_meter_file(path)?,
        None => spec_from_flags(args)?,
    };
    spec.validate()
        .map_err(|error| CliError::Usage(format!("meter {}: {error}", spec.code)))?;
    let version = client.define_meter(&spec, &description).await?;
    let headline = if version.created {
        format!(
            "defined meter {} version {} (entry {})\n",
            version.spec.code, version.version, version.seq
        )
    } else {
        format!(
            "meter {} is unchanged: version {} has this definition\n",
            version.spec.code, version.version
        )
    };
    printer.show(
        || json!({ "created": version.created, "meter": meter_json(&version) }),
        || format!("{headline}{}", meter_text(&version)),
    )
}

fn spec_from_flags(args: DefineMeterArgs) -> Result<(MeterSpec, String), CliError> {
    let missing = |flag: &str| CliError::Usage(format!("{flag} is required without --file"));
    let code = args.code.ok_or_else(|| missing("CODE"))?;
    let aggregation = args.aggregation.ok_or_else(|| missing("--aggregation"))?;
    let spec = MeterSpec {
        code,
        aggregation,
        value_property: args.value_property,
        filters: filters(args.filters)?,
        group_by: args.group_by,
        grace_period_seconds: args.grace_period_seconds.unwrap_or(0),
    };
    Ok((spec, args.description.unwrap_or_default()))
}

/// `--filter` flags as one list of values per property; a property given twice is refused
/// (its values would silently replace or join the first ones).
pub fn filters(
    flags: Vec<(String, Vec<String>)>,
) -> Result<BTreeMap<String, Vec<String>>, CliError> {
    let mut filters = BTreeMap::new();
    for (property, values) in flags {
        if filters.contains_key(&property) {
            return Err(CliError::Usage(format!(
                "--filter {property}: given twice; list its values once, comma-separated"
            )));
        }
        filters.insert(property, values);
    }
    Ok(filters)
}

/// A meter file as written; unknown keys are refused so that a typo is not a silent default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeterFile {
    code: String,
    aggregation: String,
    #[serde(default)]
    value_property: Option<String>,
    #[serde(default)]
    filters: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    grace_period_seconds: u64,
    #[serde(default)]
    description: String,
}

/// The two formats of a meter file, told apart by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterFileFormat {
    Toml,
    Json,
}

fn read_meter_file(path: &Path) -> Result<(MeterSpec, String), CliError> {
    let usage = |message: String| CliError::Usage(format!("{}: {message}", path.display()));
    let format = match path.extension().and_then(|extension| extension.to_str()) {
        Some("toml") => MeterFileFormat::Toml,
        Some("json") => MeterFileFormat::Json,
        _ => return Err(usage("a meter file's name ends in .toml or .json".into())),
    };
    let size = std::fs::metadata(path)
        .map_err(|error| usage(error.to_string()))?
        .len();
    if size > FILE_BYTES_MAX {
        return Err(usage(format!("larger than {FILE_BYTES_MAX} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|error| usage(error.to_string()))?;
    parse_meter_file(&text, format).map_err(usage)
}

/// Parses a meter file's text into the definition and its description.
pub fn parse_meter_file(
    text: &str,
    format: MeterFileFormat,
) -> Result<(MeterSpec, String), String> {
    let file: MeterFile = match format {
        MeterFileFormat::Toml => toml::from_str(text).map_err(|error| error.to_string())?,
        MeterFileFormat::Json => serde_json::from_str(text).map_err(|error| error.to_string())?,
    };
    let aggregation: Aggregation =
        parse_aggregation(&file.aggregation).map_err(|error| format!("aggregation: {error}"))?;
    let spec = MeterSpec {
        code: file.code,
        aggregation,
        value_property: file.value_property,
        filters: file.filters,
        group_by: file.group_by,
        grace_period_seconds: file.grace_period_seconds,
    };
    Ok((spec, file.description))
}

pub fn meter_json(version: &MeterVersion) -> Value {
    let spec = &version.spec;
    json!({
        "code": spec.code,
        "version": version.version,
        "aggregation": spec.aggregation.name(),
        "value_property": spec.value_property,
        "filters": spec.filters,
        "group_by": spec.group_by,
        "grace_period_seconds": spec.grace_period_seconds,
        "description": version.description,
        "seq": version.seq,
        "defined_at": render::time_ns(version.defined_at),
    })
}

/// `region=eu,us; tier=pro`.
fn filters_text(filters: &BTreeMap<String, Vec<String>>) -> String {
    let parts: Vec<String> = filters
        .iter()
        .map(|(property, values)| format!("{property}={}", values.join(",")))
        .collect();
    parts.join("; ")
}

fn meter_text(version: &MeterVersion) -> String {
    let spec = &version.spec;
    fields(&[
        ("code", spec.code.clone()),
        ("version", version.version.to_string()),
        ("aggregation", spec.aggregation.name().to_string()),
        (
            "value property",
            spec.value_property.clone().unwrap_or_default(),
        ),
        ("filters", filters_text(&spec.filters)),
        ("group by", spec.group_by.join(", ")),
        ("grace period", format!("{} s", spec.grace_period_seconds)),
        ("description", version.description.clone()),
        ("seq", version.seq.to_string()),
        ("defined at", render::time_ns(version.defined_at)),
    ])
}

fn meters_table(meters: &[MeterVersion]) -> String {
    let mut table = Table::new(&[
        ("CODE", Align::Left),
        ("VERSION", Align::Right),
        ("AGGREGATION", Align::Left),
        ("VALUE PROPERTY", Align::Left),
        ("FILTERS", Align::Left),
        ("GROUP BY", Align::Left),
        ("GRACE (S)", Align::Right),
        ("SEQ", Align::Right),
        ("DEFINED AT", Align::Left),
        ("DESCRIPTION", Align::Left),
    ]);
    for version in meters {
        let spec = &version.spec;
        table.row(vec![
            spec.code.clone(),
            version.version.to_string(),
            spec.aggregation.name().to_string(),
            spec.value_property.clone().unwrap_or_default(),
            filters_text(&spec.filters),
            spec.group_by.join(", "),
            spec.grace_period_seconds.to_string(),
            version.seq.to_string(),
            render::time_ns(version.defined_at),
            version.description.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected_spec() -> MeterSpec {
        MeterSpec {
            code: "api_calls".into(),
            aggregation: Aggregation::UniqueCount,
            value_property: Some("user".into()),
            filters: BTreeMap::from([(
                "tier".to_string(),
                vec!["pro".to_string(), "enterprise".to_string()],
            )]),
            group_by: vec!["region".into()],
            grace_period_seconds: 3600,
        }
    }

    #[test]
    fn toml_and_json_files_give_the_same_meter() {
        // Goal: both formats carry every field, and mean the same definition.
        let toml = r#"
            code = "api_calls"
            aggregation = "unique_count"
            value_property = "user"
            group_by = ["region"]
            grace_period_seconds = 3600
            description = "active users"

            [filters]
            tier = ["pro", "enterprise"]
        "#;
        let json = r#"{"code": "api_calls", "aggregation": "unique_count",
            "value_property": "user", "filters": {"tier": ["pro", "enterprise"]},
            "group_by": ["region"], "grace_period_seconds": 3600,
            "description": "active users"}"#;
        let expected = (expected_spec(), "active users".to_string());
        assert_eq!(
            parse_meter_file(toml, MeterFileFormat::Toml),
            Ok(expected.clone())
        );
        assert_eq!(parse_meter_file(json, MeterFileFormat::Json), Ok(expected));
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        // Goal: only code and aggregation are required.
        let (spec, description) = parse_meter_file(
            "code = \"calls\"\naggregation = \"count\"\n",
            MeterFileFormat::Toml,
        )
        .unwrap();
        assert_eq!(spec.aggregation, Aggregation::Count);
        assert_eq!(spec.value_property, None);
        assert!(spec.filters.is_empty() && spec.group_by.is_empty());
        assert_eq!(spec.grace_period_seconds, 0);
        assert_eq!(description, "");
    }

    #[test]
    fn bad_meter_files_say_why() {
        // Goal: a typo in a key, an unknown aggregation, a missing code or a negative
        // grace period is refused with a message naming it.
        let cases = [
            (
                "code = \"c\"\naggregation = \"sum\"\ngroupby = [\"a\"]\n",
                "groupby",
            ),
            ("code = \"c\"\naggregation = \"avg\"\n", "aggregation"),
            ("aggregation = \"sum\"\n", "code"),
            (
                "code = \"c\"\naggregation = \"sum\"\ngrace_period_seconds = -1\n",
                "grace_period_seconds",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_meter_file(text, MeterFileFormat::Toml).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = parse_meter_file("{\"code\": \"c\"}", MeterFileFormat::Json).unwrap_err();
        assert!(error.contains("aggregation"), "{error}");
    }

    #[test]
    fn a_filter_flag_per_property() {
        // Goal: the same property in two --filter flags is refused, not merged.
        let flags = vec![
            ("tier".to_string(), vec!["pro".to_string()]),
            ("region".to_string(), vec!["eu".to_string()]),
        ];
        assert_eq!(filters(flags.clone()).unwrap().len(), 2);
        let mut twice = flags;
        twice.push(("tier".to_string(), vec!["free".to_string()]));
        assert_eq!(filters(twice).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn meters_print_in_one_line_each() {
        // Goal: filters and group-by fit one cell each; JSON keeps their structure.
        let version = MeterVersion {
            spec: expected_spec(),
            description: "active users".into(),
            version: 2,
            seq: 9,
            defined_at: 60_000_000_000,
            created: true,
        };
        let table = meters_table(std::slice::from_ref(&version));
        let row = table.lines().nth(1).unwrap();
        assert!(
            row.starts_with(
                "api_calls        2  unique_count  user            tier=pro,enterprise  region"
            ),
            "{table}"
        );
        let value = meter_json(&version);
        assert_eq!(value["filters"]["tier"][1], "enterprise");
        assert_eq!(value["defined_at"], "1970-01-01T00:01:00Z");
    }
}
