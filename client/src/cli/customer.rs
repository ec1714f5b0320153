//! `tally customer`: create and list the customers whose usage is metered.

use serde_json::{json, Value};
use tally_client::{Client, Customer, CustomerSpec};

use super::args::CustomerCommand;
use super::commands::Printer;
use super::render::{self, fields, Align, Table};
use super::{json, CliError};

pub async fn run(
    client: &Client,
    printer: &mut Printer<'_>,
    command: CustomerCommand,
) -> Result<(), CliError> {
    match command {
        CustomerCommand::Create { id, name, metadata } => {
            let mut spec = CustomerSpec::new(id).name(name.unwrap_or_default());
            spec.metadata.extend(metadata);
            let created = client.create_customer(spec).await?;
            let note = if created.created {
                ""
            } else {
                "customer already existed with these fields\n"
            };
            printer.show(
                || json!({ "created": created.created, "customer": customer_json(&created.customer) }),
                || format!("{note}{}", customer_text(&created.customer)),
            )
        }
        CustomerCommand::List => {
            let customers = client.list_all_customers().await?;
            printer.show(
                || Value::Array(customers.iter().map(customer_json).collect()),
                || customers_table(&customers),
            )
        }
    }
}

pub fn customer_json(customer: &Customer) -> Value {
    json!({
        "id": customer.id,
        "name": customer.name,
        "metadata": json::metadata(&customer.metadata),
        "created_seq": customer.created_seq,
        "closed_through": customer.closed_through.map(render::time_ns),
    })
}

fn customer_text(customer: &Customer) -> String {
    fields(&[
        ("id", customer.id.clone()),
        ("name", customer.name.clone()),
        ("metadata", render::metadata(&customer.metadata)),
        ("created seq", customer.created_seq.to_string()),
        (
            "closed through",
            customer
                .closed_through
                .map(render::time_ns)
                .unwrap_or_default(),
        ),
    ])
}

fn customers_table(customers: &[Customer]) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("CREATED SEQ", Align::Right),
        ("CLOSED THROUGH", Align::Left),
        ("METADATA", Align::Left),
    ]);
    for customer in customers {
        table.row(vec![
            customer.id.clone(),
            customer.name.clone(),
            customer.created_seq.to_string(),
            customer
                .closed_through
                .map(render::time_ns)
                .unwrap_or_default(),
            render::metadata(&customer.metadata),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn customers_print_as_a_table_and_as_json() {
        // Goal: an open period prints blank in the table and null in JSON.
        let customers = [
            Customer {
                id: "acme".into(),
                name: "Acme Corp".into(),
                metadata: BTreeMap::from([("tier".to_string(), "gold".to_string())]),
                created_seq: 3,
                closed_through: Some(1_714_521_600_000_000_000),
            },
            Customer {
                id: "b".into(),
                name: String::new(),
                metadata: BTreeMap::new(),
                created_seq: 4,
                closed_through: None,
            },
        ];
        let expected = "\
ID    NAME       CREATED SEQ  CLOSED THROUGH        METADATA
acme  Acme Corp            3  2024-05-01T00:00:00Z  tier=gold
b                          4
";
        assert_eq!(customers_table(&customers), expected);
        assert_eq!(customer_json(&customers[1])["closed_through"], Value::Null);
        assert_eq!(
            customer_json(&customers[0])["closed_through"],
            "2024-05-01T00:00:00Z"
        );
    }
}
