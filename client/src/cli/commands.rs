//! Runs a parsed command against the ledger and prints its answer.

use std::io::Write;

use serde_json::Value;
use tally_client::{
    AccountSpec, Batch, Client, Currency, PageRequest, PostPendingSpec, ReverseSpec,
    TransactionFilter, TransactionSpec, TrialBalanceQuery, VoidPendingSpec,
};
use tokio_stream::StreamExt;

use super::args::{
    AccountCommand, BalanceArgs, Cli, Command, CurrencyCommand, JournalCommand, KeyCommand,
    ListTransactionsArgs, OpenAccountArgs, PostArgs, PostPendingArgs, ReverseArgs,
    TrialBalanceArgs, TxCommand, VoidArgs,
};
use super::{audit, billing, customer, json, meter, plan, render, txfile, usage, CliError};

/// Where answers go: JSON or text, to one writer.
pub(super) struct Printer<'a> {
    pub(super) json: bool,
    pub(super) out: &'a mut dyn Write,
}

impl Printer<'_> {
    /// Prints the JSON form or the text form, whichever was asked for.
    pub(super) fn show(
        &mut self,
        value: impl FnOnce() -> Value,
        text: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            let pretty = serde_json::to_string_pretty(&value())
                .map_err(|error| CliError::Output(error.to_string()))?;
            writeln!(self.out, "{pretty}")?;
        } else {
            write!(self.out, "{}", text())?;
        }
        Ok(())
    }

    pub(super) fn line(&mut self, text: &str) -> Result<(), CliError> {
        writeln!(self.out, "{text}")?;
        self.out.flush()?;
        Ok(())
    }
}

/// Connects to the server named on the command line and runs the command.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    // Offline verification must not depend on (or be seen by) any server.
    if let Command::Audit(command) = &cli.command {
        if command.is_offline() {
            return audit::offline(command, cli.json, out);
        }
    }
    let mut builder = Client::builder(cli.server.clone())
        .timeout(cli.timeout)
        .connect_timeout(cli.timeout);
    if let Some(key) = &cli.api_key {
        builder = builder.api_key(key.clone());
    }
    if let Some(path) = &cli.ca_cert {
        let pem = std::fs::read(path).map_err(|error| {
            CliError::Usage(format!(
                "cannot read the CA certificate {}: {error}",
                path.display()
            ))
        })?;
        builder = builder.ca_certificate(pem);
    }
    let client = match builder.build().await {
        Ok(client) => client,
        // `usage send` tells an undelivered input (exit 2) from rejected events (exit 1).
        Err(error) if cli.command.sends_usage() => {
            return Err(CliError::Undelivered {
                error,
                from_line: 1,
            })
        }
        Err(error) => return Err(error.into()),
    };
    let mut printer = Printer {
        json: cli.json,
        out,
    };
    match cli.command {
        Command::Info => {
            let info = client.ledger_info().await?;
            printer.show(|| json::ledger_info(&info), || render::ledger_info(&info))
        }
        Command::Currency(command) => currency(&client, &mut printer, command).await,
        Command::Account(command) => account(&client, &mut printer, command).await,
        Command::Tx(command) => tx(&client, &mut printer, command).await,
        Command::Balance(args) => balance(&client, &mut printer, args).await,
        Command::TrialBalance(args) => trial_balance(&client, &mut printer, args).await,
        Command::Journal(command) => journal(&client, &mut printer, command).await,
        Command::Audit(command) => audit::online(&client, &mut printer, command).await,
        Command::Key(command) => key(&client, &mut printer, command).await,
        Command::Customer(command) => customer::run(&client, &mut printer, command).await,
        Command::Meter(command) => meter::run(&client, &mut printer, command).await,
        Command::Usage(command) => usage::run(&client, &mut printer, command).await,
        Command::Plan(command) => plan::run(&client, &mut printer, command).await,
        Command::Billing(command) => billing::billing(&client, &mut printer, command).await,
        Command::Subscription(command) => {
            billing::subscription(&client, &mut printer, command).await
        }
        Command::Coupon(command) => billing::coupon(&client, &mut printer, command).await,
        Command::Tax(command) => billing::tax(&client, &mut printer, command).await,
        Command::Invoice(command) => billing::invoice(&client, &mut printer, command).await,
        Command::CreditNote(command) => billing::credit_note(&client, &mut printer, command).await,
        Command::Payment(command) => billing::payment(&client, &mut printer, command).await,
        Command::Credit(command) => billing::credit(&client, &mut printer, command).await,
        Command::Ar(command) => billing::ar(&client, &mut printer, command).await,
    }
}

async fn key(
    client: &Client,
    printer: &mut Printer<'_>,
    command: KeyCommand,
) -> Result<(), CliError> {
    match command {
        KeyCommand::Create {
            name,
            role,
            read_only,
        } => {
            let created = client.create_api_key(name, role, read_only).await?;
            printer.show(
                || json::api_key_created(&created),
                || render::api_key_created(&created),
            )
        }
        KeyCommand::Rotate { key_id } => {
            let created = client.rotate_api_key(key_id).await?;
            printer.show(
                || json::api_key_created(&created),
                || render::api_key_created(&created),
            )
        }
        KeyCommand::Revoke { key_id } => {
            let key = client.revoke_api_key(key_id).await?;
            printer.show(
                || json::api_key(&key),
                || render::api_keys(std::slice::from_ref(&key)),
            )
        }
        KeyCommand::List => {
            let keys = client.list_api_keys().await?;
            printer.show(
                || serde_json::Value::Array(keys.iter().map(json::api_key).collect()),
                || render::api_keys(&keys),
            )
        }
        KeyCommand::Whoami => {
            let key = client.who_am_i().await?;
            printer.show(
                || json::api_key(&key),
                || render::api_keys(std::slice::from_ref(&key)),
            )
        }
    }
}

async fn currency(
    client: &Client,
    printer: &mut Printer<'_>,
    command: CurrencyCommand,
) -> Result<(), CliError> {
    match command {
        CurrencyCommand::Define { code, scale } => {
            let results = client
                .create_currencies([Currency::new(code, scale)])
                .await?;
            let created = single(results)??;
            let currency = created.currency;
            let verb = if created.existed {
                "already defined"
            } else {
                "defined"
            };
            printer.show(
                || json::currency(&currency),
                || format!("{verb} {} with scale {}\n", currency.code, currency.scale),
            )
        }
        CurrencyCommand::List => {
            let currencies = client.list_currencies().await?;
            printer.show(
                || Value::Array(currencies.iter().map(json::currency).collect()),
                || render::currencies(&currencies),
            )
        }
    }
}

/// The one result of a one-item batch; the server promised exactly one.
fn single<T>(results: Vec<T>) -> Result<T, CliError> {
    let count = results.len();
    results
        .into_iter()
        .next()
        .filter(|_| count == 1)
        .ok_or_else(|| {
            CliError::Client(tally_client::ClientError::InvalidResponse(format!(
                "{count} results for 1 item"
            )))
        })
}

async fn account(
    client: &Client,
    printer: &mut Printer<'_>,
    command: AccountCommand,
) -> Result<(), CliError> {
    match command {
        AccountCommand::Open(args) => open_account(client, printer, args).await,
        AccountCommand::List { prefix } => {
            let accounts = client.list_all_accounts(&prefix).await?;
            printer.show(
                || Value::Array(accounts.iter().map(json::account).collect()),
                || render::accounts(&accounts),
            )
        }
        AccountCommand::Show { name } => {
            let account = client.get_account(name).await?;
            printer.show(|| json::account(&account), || render::account(&account))
        }
        AccountCommand::Close { name } => {
            let account = client.close_account(name).await?;
            printer.show(|| json::account(&account), || render::account(&account))
        }
        AccountCommand::History { name } => {
            let history = client.account_history(&name).await?;
            printer.show(|| json::history(&history), || render::history(&history))
        }
    }
}

async fn open_account(
    client: &Client,
    printer: &mut Printer<'_>,
    args: OpenAccountArgs,
) -> Result<(), CliError> {
    let mut spec =
        AccountSpec::new(args.name, args.account_type, args.currency).constraint(args.constraint);
    spec.metadata.extend(args.metadata);
    let created = single(client.create_accounts([spec]).await?)??;
    let note = if created.existed {
        "account already existed with these fields\n"
    } else {
        ""
    };
    printer.show(
        || serde_json::json!({ "existed": created.existed, "account": json::account(&created.account) }),
        || format!("{note}{}", render::account(&created.account)),
    )
}

async fn tx(
    client: &Client,
    printer: &mut Printer<'_>,
    command: TxCommand,
) -> Result<(), CliError> {
    let transaction = match command {
        TxCommand::Post(args) => return post(client, printer, args).await,
        TxCommand::List(args) => return list_transactions(client, printer, args).await,
        TxCommand::PostPending(args) => client.post_pending(post_pending_spec(args)).await?,
        TxCommand::Void(args) => client.void_pending(void_spec(args)).await?,
        TxCommand::Reverse(args) => client.reverse(reverse_spec(args)).await?,
        TxCommand::Show { id } => client.get_transaction(id).await?,
    };
    printer.show(
        || json::transaction(&transaction),
        || render::transaction(&transaction),
    )
}

/// The transaction of the inline flags of `tx post`.
fn inline_spec(args: PostArgs) -> Result<TransactionSpec, CliError> {
    let id = args
        .id
        .ok_or_else(|| CliError::Usage("--id is required".into()))?;
    let mut spec = TransactionSpec::new(id);
    for (account, amount) in args.debit {
        spec = spec.debit(account, amount);
    }
    for (account, amount) in args.credit {
        spec = spec.credit(account, amount);
    }
    spec = spec.description(args.description.unwrap_or_default());
    spec.metadata.extend(args.metadata);
    spec.effective_at = args.effective_at;
    spec.pending = args.pending;
    spec.timeout_seconds = args.timeout_secs.unwrap_or(0);
    Ok(spec)
}

fn file_specs(path: &std::path::Path) -> Result<Vec<TransactionSpec>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Usage(format!("{}: {error}", path.display())))?;
    let specs = txfile::parse(&text)
        .map_err(|error| CliError::Usage(format!("{}: {error}", path.display())))?;
    if specs.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: no transactions",
            path.display()
        )));
    }
    Ok(specs)
}

/// Records the inline transaction, or the file's as one batch. A refused inline
/// transaction is an error; a file's refused items are listed and make exit 1.
async fn post(client: &Client, printer: &mut Printer<'_>, args: PostArgs) -> Result<(), CliError> {
    let Some(path) = args.file.clone() else {
        let results = client.submit(inline_spec(args)?).await?;
        let recorded = single(results)??;
        let note = if recorded.replayed {
            "replayed: this id was already recorded\n"
        } else {
            ""
        };
        let transaction = recorded.transaction;
        return printer.show(
            || json::transaction(&transaction),
            || format!("{note}{}", render::transaction(&transaction)),
        );
    };
    let batch: Batch = file_specs(&path)?.into();
    let results = client.submit(batch).await?;
    printer.show(
        || json::transaction_results(&results),
        || render::transaction_results(&results),
    )?;
    let refused = results.iter().filter(|result| result.is_err()).count();
    if refused > 0 {
        for error in results.iter().filter_map(|result| result.as_ref().err()) {
            eprintln!(
                "error: item {}: {}",
                error.index,
                render::item_error_detail(error)
            );
        }
        return Err(CliError::Rejected {
            refused,
            total: results.len(),
        });
    }
    Ok(())
}

fn post_pending_spec(args: PostPendingArgs) -> PostPendingSpec {
    let mut spec = PostPendingSpec::new(args.id, args.pending_id)
        .amounts(args.amounts)
        .description(args.description.unwrap_or_default());
    spec.metadata.extend(args.metadata);
    spec.effective_at = args.effective_at;
    spec
}

fn void_spec(args: VoidArgs) -> VoidPendingSpec {
    VoidPendingSpec::new(args.id, args.pending_id).reason(args.reason.unwrap_or_default())
}

fn reverse_spec(args: ReverseArgs) -> ReverseSpec {
    let mut spec = ReverseSpec::new(args.id, args.transaction_id)
        .description(args.description.unwrap_or_default());
    spec.metadata.extend(args.metadata);
    spec.effective_at = args.effective_at;
    spec
}

/// Reads pages until `--limit` transactions or the last page.
async fn list_transactions(
    client: &Client,
    printer: &mut Printer<'_>,
    args: ListTransactionsArgs,
) -> Result<(), CliError> {
    let filter = TransactionFilter {
        account: args.account,
        from: args.from,
        to: args.to,
    };
    let mut transactions = Vec::new();
    let mut token = None;
    while transactions.len() < args.limit {
        let wanted = (args.limit - transactions.len()).min(PageRequest::SIZE_MAX as usize);
        let page_size = u32::try_from(wanted).unwrap_or(PageRequest::SIZE_MAX);
        let page = client
            .list_transactions(
                &filter,
                PageRequest {
                    page_size,
                    page_token: token.take(),
                },
            )
            .await?;
        transactions.extend(page.items);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    transactions.truncate(args.limit);
    printer.show(
        || Value::Array(transactions.iter().map(json::transaction).collect()),
        || render::transactions(&transactions),
    )
}

async fn balance(
    client: &Client,
    printer: &mut Printer<'_>,
    args: BalanceArgs,
) -> Result<(), CliError> {
    let balances = client.balances(args.accounts, args.as_of.as_of()).await?;
    printer.show(|| json::balances(&balances), || render::balances(&balances))
}

async fn trial_balance(
    client: &Client,
    printer: &mut Printer<'_>,
    args: TrialBalanceArgs,
) -> Result<(), CliError> {
    let query = TrialBalanceQuery {
        as_of: args.as_of.as_of(),
        depth: args.depth,
        prefix: args.prefix,
        currency: args.currency,
    };
    let trial_balance = client.trial_balance(query).await?;
    if args.csv {
        let csv = render::trial_balance_csv(&trial_balance)
            .map_err(|error| CliError::Output(error.to_string()))?;
        write!(printer.out, "{csv}")?;
        return Ok(());
    }
    printer.show(
        || json::trial_balance(&trial_balance),
        || render::trial_balance(&trial_balance),
    )
}

/// Prints entries as they arrive, one line each (JSON Lines with `--json`).
async fn journal(
    client: &Client,
    printer: &mut Printer<'_>,
    command: JournalCommand,
) -> Result<(), CliError> {
    let JournalCommand::Tail { from, follow } = command;
    let mut entries = client.follow_journal(from, follow).await?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        let line = if printer.json {
            json::journal_entry(&entry).to_string()
        } else {
            render::journal_line(&entry)
        };
        printer.line(&line)?;
    }
    Ok(())
}
