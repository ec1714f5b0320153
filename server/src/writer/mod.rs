//! The writer: the one thread that changes the ledger, and its publisher.
//!
//! The writer takes a request, drains whatever else is queued (up to
//! `group_items_max` items), executes them in order against the in-memory
//! state, and writes all the resulting entries with their stored cache rows in
//! ONE atomic storage batch, flushed to disk (group commit). It then hands the
//! group to the publisher thread and starts on the next group at once.
//!
//! The publisher, in group order, folds each flushed group into the read
//! model, publishes the new journal length to readers and followers, and only
//! then answers the group's requests. So an answer always comes after its
//! writes are durable and readable, and executing group N+1 overlaps with
//! publishing group N. Transaction and usage batches are answered just before
//! the fold (their answers need only the group, or what the writer made of
//! it), and reads wait for the fold of any group answered so
//! (`store/published.rs`).
//!
//! If the storage write fails, the in-memory state is ahead of the disk: the
//! writer answers the group with `Unavailable` and stops (fail-stop); a restart
//! rebuilds the state from the journal.

use crate::audit::checkpoints::Checkpointer;
use crate::billing::record::{self, CreditNoteRequest, InvoiceDraft, IssueOutcome, PaymentRequest};
use crate::error::{LedgerError, StoreError};
use crate::ledger::command::{AccountSpec, ApiKeySpec, CurrencySpec, PreparedItem};
use crate::ledger::execute::{self, Context, EntryLookup, ItemOutcome};
use crate::ledger::state::{Journaled, LedgerState};
use crate::metering::ingest::{self, CustomerSpec, EventRecorded, PreparedEvent};
use crate::rating::catalog as plans;
use crate::store::{CacheRows, Store};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tally_core::billing::{BillingProfile, CouponGranted, Payment, SubscriptionChanged};
use tally_core::entry::{AccountId, Entry, EntryBody, TimestampNs};
use tally_core::meter::MeterSpec;
use tally_core::plan::{PlanSpec, TaxRule};
use tokio::sync::{mpsc, oneshot, watch};

/// How often the writer wakes up by itself to expire pending transactions.
pub const TICK_INTERVAL: Duration = Duration::from_millis(500);

/// Groups flushed but not yet published; the writer waits beyond this.
const PUBLISH_QUEUE_MAX: usize = 4;

pub type Reply<T> = oneshot::Sender<Result<T, String>>;

/// The outcome of a transaction batch: one result per item, and the group
/// the new entries are in (to build the answers from).
pub struct TransactionsDone {
    pub outcomes: Vec<Result<ItemOutcome, LedgerError>>,
    pub group: Arc<Vec<Journaled>>,
}

/// A request and the API key it comes from (empty: the ledger itself).
pub struct Submitted {
    pub key_id: String,
    pub request: Request,
}

pub enum Request {
    Currencies {
        specs: Vec<CurrencySpec>,
        reply: Reply<Vec<Result<bool, LedgerError>>>,
    },
    Accounts {
        specs: Vec<AccountSpec>,
        reply: Reply<Vec<Result<(AccountId, bool), LedgerError>>>,
    },
    CloseAccount {
        name: String,
        reply: Reply<Result<AccountId, LedgerError>>,
    },
    CreateApiKey {
        spec: ApiKeySpec,
        reply: Reply<Result<u64, LedgerError>>,
    },
    RevokeApiKey {
        key_id: String,
        reply: Reply<Result<u64, LedgerError>>,
    },
    /// Creates `successor` and revokes `key_id`, in one group.
    RotateApiKey {
        key_id: String,
        successor: ApiKeySpec,
        reply: Reply<Result<u64, LedgerError>>,
    },
    Transactions {
        items: Vec<PreparedItem>,
        reply: Reply<TransactionsDone>,
    },
    Customers {
        specs: Vec<CustomerSpec>,
        reply: Reply<Vec<Result<bool, LedgerError>>>,
    },
    DefineMeter {
        spec: MeterSpec,
        description: String,
        reply: Reply<Result<(u32, u64, bool), LedgerError>>,
    },
    CloseUsagePeriod {
        customer: String,
        through: TimestampNs,
        reply: Reply<Result<u64, LedgerError>>,
    },
    Usage {
        events: Vec<PreparedEvent>,
        reply: Reply<Vec<Result<EventRecorded, LedgerError>>>,
    },
    /// A plan version, parsed and validated by the caller
    /// (`rating::catalog::parse_plan`); answered with (version, seq, created).
    PublishPlan {
        spec: Box<PlanSpec>,
        reply: Reply<Result<(u32, u64, bool), LedgerError>>,
    },
    /// A billing write (`billing::record`), answered in its own type.
    Billing(BillingRequest),
    /// Sign a checkpoint now, unless the latest one is of the journal as it
    /// is; answers with the checkpoint's tree size (its entry's seq).
    Checkpoint { reply: Reply<u64> },
    /// Wake up: expire what is due, sign a checkpoint if one is due.
    Tick,
}

impl Request {
    fn items(&self) -> usize {
        match self {
            Request::Currencies { specs, .. } => specs.len(),
            Request::Accounts { specs, .. } => specs.len(),
            Request::CloseAccount { .. }
            | Request::CreateApiKey { .. }
            | Request::RevokeApiKey { .. }
            | Request::RotateApiKey { .. }
            | Request::Checkpoint { .. }
            | Request::Tick => 1,
            Request::Transactions { items, .. } => items.len(),
            Request::Customers { specs, .. } => specs.len(),
            Request::DefineMeter { .. }
            | Request::CloseUsagePeriod { .. }
            | Request::PublishPlan { .. } => 1,
            Request::Billing(request) => request.items(),
            // Events are cheap next to transactions: a full call counts as
            // one batch of transactions, so groups stay bounded in time.
            Request::Usage { events, .. } => events.len().div_ceil(16).max(1),
        }
    }
}

pub fn now_ns() -> TimestampNs {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

struct StoreLookup<'a>(&'a Store);

impl EntryLookup for StoreLookup<'_> {
    fn entry(&self, seq: u64) -> Option<Entry> {
        self.0.entry(seq).ok().flatten().map(|(_, entry)| entry)
    }
}

/// The billing writes. Each carries its reply; its answer is deferred like
/// every other (sent once the group is published).
pub enum BillingRequest {
    Profile(BillingProfile, Reply<Result<(u64, bool), LedgerError>>),
    Subscription(SubscriptionChanged, Reply<Result<(u64, bool), LedgerError>>),
    Coupon(CouponGranted, Reply<Result<(u64, bool), LedgerError>>),
    TaxRules(Vec<TaxRule>, Reply<Result<(u32, u64, bool), LedgerError>>),
    /// Closes each customer's usage through the instant, unless it is closed
    /// that far already: a billing run's usage is then fixed.
    CloseUsage(
        Vec<(String, TimestampNs)>,
        Reply<Vec<Result<(), LedgerError>>>,
    ),
    /// Drafts of one run, with the last invoice the run issued so far for
    /// each customer (the run's own invoices do not make a draft stale).
    Issue(
        Vec<InvoiceDraft>,
        std::collections::HashMap<String, u64>,
        Reply<Vec<Result<IssueOutcome, LedgerError>>>,
    ),
    Void(String, String, Reply<Result<(u64, bool), LedgerError>>),
    CreditNote(
        CreditNoteRequest,
        Reply<Result<(String, u64, bool), LedgerError>>,
    ),
    Payment(
        PaymentRequest,
        Reply<Result<(Payment, u64, bool), LedgerError>>,
    ),
}

impl BillingRequest {
    fn items(&self) -> usize {
        match self {
            BillingRequest::CloseUsage(closes, _) => closes.len().div_ceil(16).max(1),
            BillingRequest::Issue(drafts, _, _) => drafts.len(),
            _ => 1,
        }
    }
}

/// A reply and its result, sent or failed later.
trait Deferred: Send {
    fn send(self: Box<Self>);
    fn fail(self: Box<Self>, message: String);
}

impl<T: Send> Deferred for (Reply<T>, T) {
    fn send(self: Box<Self>) {
        let (reply, result) = *self;
        drop(reply.send(Ok(result)));
    }

    fn fail(self: Box<Self>, message: String) {
        drop(self.0.send(Err(message)));
    }
}

fn deferred<T: Send + 'static>(reply: Reply<T>, result: T) -> Answer {
    Answer::Deferred(Box::new((reply, result)))
}

/// An answer computed before the group is durable, sent after it is published.
enum Answer {
    Deferred(Box<dyn Deferred>),
    Currencies(
        Reply<Vec<Result<bool, LedgerError>>>,
        Vec<Result<bool, LedgerError>>,
    ),
    Accounts(
        Reply<Vec<Result<(AccountId, bool), LedgerError>>>,
        Vec<Result<(AccountId, bool), LedgerError>>,
    ),
    Close(
        Reply<Result<AccountId, LedgerError>>,
        Result<AccountId, LedgerError>,
    ),
    /// The items ride along so that their many small allocations are freed
    /// by the publisher after it answers, not by the writer.
    Transactions(
        Reply<TransactionsDone>,
        Vec<Result<ItemOutcome, LedgerError>>,
        Vec<PreparedItem>,
    ),
    Checkpoint(Reply<u64>, u64),
    /// A single write answered with its entry's seq.
    Seq(Reply<Result<u64, LedgerError>>, Result<u64, LedgerError>),
    Customers(
        Reply<Vec<Result<bool, LedgerError>>>,
        Vec<Result<bool, LedgerError>>,
    ),
    Meter(
        Reply<Result<(u32, u64, bool), LedgerError>>,
        Result<(u32, u64, bool), LedgerError>,
    ),
    Plan(
        Reply<Result<(u32, u64, bool), LedgerError>>,
        Result<(u32, u64, bool), LedgerError>,
    ),
    Usage(
        Reply<Vec<Result<EventRecorded, LedgerError>>>,
        Vec<Result<EventRecorded, LedgerError>>,
    ),
}

impl Answer {
    /// A transaction batch's answer is built from its group (and, for a
    /// retry of an earlier transaction, from reads, which wait for the
    /// fold), a usage batch's by the writer; every other requester may read
    /// the read model for its answer.
    fn needs_no_fold(&self) -> bool {
        matches!(self, Answer::Transactions(..) | Answer::Usage(..))
    }

    /// Sends the answer. A requester that went away (timeout, disconnect) is
    /// no error here: its writes are durable all the same.
    fn send(self, group: &Arc<Vec<Journaled>>) {
        match self {
            Answer::Currencies(reply, results) => drop(reply.send(Ok(results))),
            Answer::Accounts(reply, results) => drop(reply.send(Ok(results))),
            Answer::Close(reply, result) => drop(reply.send(Ok(result))),
            Answer::Transactions(reply, outcomes, items) => {
                drop(reply.send(Ok(TransactionsDone {
                    outcomes,
                    group: Arc::clone(group),
                })));
                drop(items);
            }
            Answer::Checkpoint(reply, size) => drop(reply.send(Ok(size))),
            Answer::Seq(reply, result) => drop(reply.send(Ok(result))),
            Answer::Customers(reply, results) => drop(reply.send(Ok(results))),
            Answer::Meter(reply, result) => drop(reply.send(Ok(result))),
            Answer::Plan(reply, result) => drop(reply.send(Ok(result))),
            Answer::Usage(reply, results) => drop(reply.send(Ok(results))),
            Answer::Deferred(answer) => answer.send(),
        }
    }

    fn fail(self, message: &str) {
        let message = message.to_string();
        match self {
            Answer::Currencies(reply, _) => drop(reply.send(Err(message))),
            Answer::Accounts(reply, _) => drop(reply.send(Err(message))),
            Answer::Close(reply, _) => drop(reply.send(Err(message))),
            Answer::Transactions(reply, _, _) => drop(reply.send(Err(message))),
            Answer::Checkpoint(reply, _) => drop(reply.send(Err(message))),
            Answer::Seq(reply, _) => drop(reply.send(Err(message))),
            Answer::Customers(reply, _) => drop(reply.send(Err(message))),
            Answer::Meter(reply, _) => drop(reply.send(Err(message))),
            Answer::Plan(reply, _) => drop(reply.send(Err(message))),
            Answer::Usage(reply, _) => drop(reply.send(Err(message))),
            Answer::Deferred(answer) => answer.fail(message),
        }
    }
}

/// A flushed group on its way to readers and requesters.
struct Flushed {
    group: Arc<Vec<Journaled>>,
    answers: Vec<Answer>,
    /// Its cache rows, applied by the publisher before the fold.
    caches: CacheRows,
}

pub struct Writer {
    pub state: LedgerState,
    pub store: Store,
    pub group_items_max: usize,
    pub checkpointer: Checkpointer,
    /// Told of each durable group's new accounts.
    pub directory: Arc<crate::ledger::directory::AccountDirectory>,
}

impl Writer {
    /// Runs until every sender is gone (shutdown) or storage fails; the
    /// publisher thread runs beside it and ends after it.
    pub fn run(mut self, mut requests: mpsc::Receiver<Submitted>, commits: watch::Sender<u64>) {
        let (to_publisher, flushed) = std::sync::mpsc::sync_channel::<Flushed>(PUBLISH_QUEUE_MAX);
        let store = self.store.clone();
        let publisher = std::thread::Builder::new()
            .name("tally-publisher".into())
            .spawn(move || publish(store, flushed, commits));
        let publisher = match publisher {
            Ok(handle) => handle,
            Err(error) => {
                tracing::error!(%error, "cannot start the publisher thread; the writer stops");
                return;
            }
        };
        while let Some(first) = requests.blocking_recv() {
            let mut items = first.request.items();
            let mut group = vec![first];
            while items < self.group_items_max {
                match requests.try_recv() {
                    Ok(submitted) => {
                        items += submitted.request.items();
                        group.push(submitted);
                    }
                    Err(_) => break,
                }
            }
            match self.commit_group(group, items) {
                Ok(flushed) => {
                    if to_publisher.send(flushed).is_err() {
                        tracing::error!("the publisher stopped; the writer stops");
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "storage write failed; the writer stops (restart to recover)");
                    break;
                }
            }
        }
        drop(to_publisher);
        let _ = publisher.join();
        tracing::info!("writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Submitted>, items: usize) -> Result<Flushed, StoreError> {
        let started = std::time::Instant::now();
        // The ledger's own entries (expiries, checkpoints) carry no key id.
        let ctx = Context {
            now: now_ns(),
            key_id: String::new(),
        };
        let mut out: Vec<Journaled> = Vec::with_capacity(items + 1);
        execute::expire_pending(&mut self.state, &ctx, &mut out);
        let mut answers = Vec::with_capacity(group.len());
        let mut checkpoint_replies = Vec::new();
        for Submitted { key_id, request } in group {
            match request {
                Request::Checkpoint { reply } => checkpoint_replies.push(reply),
                request => {
                    let caller = Context {
                        now: ctx.now,
                        key_id,
                    };
                    answers.extend(self.execute(request, &caller, &mut out));
                }
            }
        }
        self.close_with_checkpoint(&ctx, !checkpoint_replies.is_empty(), &mut out);
        if let Some((size, _)) = self.state.audit().last_checkpoint {
            answers.extend(
                checkpoint_replies
                    .into_iter()
                    .map(|reply| Answer::Checkpoint(reply, size)),
            );
        }
        let executed = started.elapsed();
        let caches = match self.store.write_journal(&out, &self.state) {
            Ok(caches) => caches,
            Err(error) => {
                for answer in answers {
                    answer.fail("the ledger stopped after a storage failure");
                }
                return Err(error);
            }
        };
        self.directory.add_opened(&out, &self.state);
        tracing::debug!(
            entries = out.len(),
            execute_us = executed.as_micros() as u64,
            write_us = (started.elapsed() - executed).as_micros() as u64,
            "group flushed"
        );
        Ok(Flushed {
            group: Arc::new(out),
            answers,
            caches,
        })
    }

    /// Appends a signed checkpoint of everything so far, if one is due.
    fn close_with_checkpoint(&mut self, ctx: &Context, requested: bool, out: &mut Vec<Journaled>) {
        if !self.checkpointer.due(&self.state, ctx.now, requested) {
            return;
        }
        let root = self.store.root_after(out);
        let entry = self.checkpointer.entry(&self.state, root, ctx.now);
        out.push(self.state.append(entry));
    }

    fn execute(
        &mut self,
        request: Request,
        ctx: &Context,
        out: &mut Vec<Journaled>,
    ) -> Option<Answer> {
        let state = &mut self.state;
        Some(match request {
            Request::Tick | Request::Checkpoint { .. } => return None,
            Request::Currencies { specs, reply } => {
                let results = specs
                    .iter()
                    .map(|s| execute::define_currency(state, s, ctx, out))
                    .collect();
                Answer::Currencies(reply, results)
            }
            Request::Accounts { specs, reply } => {
                let results = specs
                    .iter()
                    .map(|s| execute::open_account(state, s, ctx, out))
                    .collect();
                Answer::Accounts(reply, results)
            }
            Request::CloseAccount { name, reply } => {
                Answer::Close(reply, execute::close_account(state, &name, ctx, out))
            }
            Request::CreateApiKey { spec, reply } => {
                Answer::Seq(reply, execute::create_api_key(state, &spec, ctx, out))
            }
            Request::RevokeApiKey { key_id, reply } => {
                Answer::Seq(reply, execute::revoke_api_key(state, &key_id, ctx, out))
            }
            Request::RotateApiKey {
                key_id,
                successor,
                reply,
            } => Answer::Seq(
                reply,
                execute::rotate_api_key(state, &key_id, successor, ctx, out),
            ),
            Request::Transactions { items, reply } => {
                let lookup = StoreLookup(&self.store);
                let outcomes = execute::execute_transactions(state, &items, ctx, &lookup, out);
                Answer::Transactions(reply, outcomes, items)
            }
            Request::Customers { specs, reply } => {
                let results = specs
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| {
                        ingest::create_customer(state, spec, ctx, out)
                            .map_err(|e| e.within(&format!("customers[{i}]")))
                    })
                    .collect();
                Answer::Customers(reply, results)
            }
            Request::DefineMeter {
                spec,
                description,
                reply,
            } => Answer::Meter(
                reply,
                ingest::define_meter(state, spec, description, ctx, out),
            ),
            Request::CloseUsagePeriod {
                customer,
                through,
                reply,
            } => Answer::Seq(
                reply,
                ingest::close_usage_period(state, &customer, through, ctx, out),
            ),
            Request::Usage { events, reply } => {
                Answer::Usage(reply, ingest::record_usage(state, events, ctx, out))
            }
            Request::PublishPlan { spec, reply } => {
                Answer::Plan(reply, plans::publish_plan(state, *spec, ctx, out))
            }
            Request::Billing(request) => {
                let store = &self.store;
                execute_billing(state, store, request, ctx, out)
            }
        })
    }
}

fn execute_billing(
    state: &mut LedgerState,
    store: &Store,
    request: BillingRequest,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Answer {
    match request {
        BillingRequest::Profile(profile, reply) => {
            deferred(reply, record::set_profile(state, profile, ctx, out))
        }
        BillingRequest::Subscription(changed, reply) => {
            deferred(reply, record::change_subscription(state, changed, ctx, out))
        }
        BillingRequest::Coupon(granted, reply) => {
            deferred(reply, record::grant_coupon(state, granted, ctx, out))
        }
        BillingRequest::TaxRules(rules, reply) => {
            deferred(reply, record::publish_tax_rules(state, rules, ctx, out))
        }
        BillingRequest::CloseUsage(closes, reply) => {
            let results = closes
                .iter()
                .map(|(customer, through)| {
                    let closed = state
                        .catalog()
                        .customer(customer)
                        .and_then(|c| c.closed_through);
                    if closed.is_some_and(|closed| closed >= *through) {
                        return Ok(());
                    }
                    ingest::close_usage_period(state, customer, *through, ctx, out).map(|_| ())
                })
                .collect();
            deferred(reply, results)
        }
        BillingRequest::Issue(drafts, mut own, reply) => {
            let results = drafts
                .into_iter()
                .map(|draft| {
                    let customer = draft.invoice.customer_id.clone();
                    let own_seq = own.get(&customer).copied();
                    let outcome = record::issue_invoice(state, draft, own_seq, ctx, out);
                    if let Ok(IssueOutcome::Issued { seq, .. }) = &outcome {
                        own.insert(customer, *seq);
                    }
                    outcome
                })
                .collect();
            deferred(reply, results)
        }
        BillingRequest::Void(number, reason, reply) => {
            // The invoice's postings: in this group, or on disk.
            let group: Vec<(u64, Entry)> = out.iter().map(|j| (j.seq, j.entry.clone())).collect();
            let lookup = |seq: u64| {
                group
                    .iter()
                    .find(|(s, _)| *s == seq)
                    .map(|(_, e)| e.clone())
                    .or_else(|| StoreLookup(store).entry(seq))
                    .and_then(|e| e.body.transaction().map(|t| t.postings.clone()))
            };
            deferred(
                reply,
                record::void_invoice(state, &number, reason, &lookup, ctx, out),
            )
        }
        BillingRequest::CreditNote(request, reply) => {
            deferred(reply, record::issue_credit_note(state, request, ctx, out))
        }
        BillingRequest::Payment(request, reply) => {
            deferred(reply, record::record_payment(state, request, ctx, out))
        }
    }
}

/// The publisher loop: fold, publish, answer, in group order.
fn publish(store: Store, flushed: std::sync::mpsc::Receiver<Flushed>, commits: watch::Sender<u64>) {
    let marker = Marker::start(&store);
    for Flushed {
        group,
        answers,
        caches,
    } in flushed
    {
        // Transaction and usage batches are answered from what the writer
        // made, so they go out before the fold; reads wait for it
        // (`store/published.rs`).
        let (early, answers): (Vec<Answer>, Vec<Answer>) =
            answers.into_iter().partition(Answer::needs_no_fold);
        if !early.is_empty() {
            if let Some(last) = group.last() {
                store.announce(last.seq + 1);
            }
            for answer in early {
                answer.send(&group);
            }
        }
        let started = std::time::Instant::now();
        if let Err(error) = store.apply_caches(caches) {
            // The group is durable, but readers cannot be shown it without its
            // cache rows: stop (the writer stops when its next group finds
            // the publisher gone); a restart catches the caches up.
            tracing::error!(%error, "storage write failed; the publisher stops (restart to recover)");
            for answer in answers {
                answer.fail("the ledger stopped after a storage failure");
            }
            break;
        }
        store.publish(&group);
        tracing::debug!(
            entries = group.len(),
            fold_us = started.elapsed().as_micros() as u64,
            "group published"
        );
        commits.send_replace(store.committed());
        for answer in answers {
            answer.send(&group);
        }
        marker.mark(&group);
    }
    marker.finish();
}

/// Keeps the latest signed checkpoint beside the storage (`audit::mark`), once
/// its entry is durable, on a thread of its own: the mark is a start-up check,
/// not part of what an acknowledgement promises, and its two fsyncs (several
/// milliseconds here) would otherwise hold up the publication of the groups
/// behind it. Only the newest note waiting is written.
struct Marker {
    notes: Option<std::sync::mpsc::Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Used when the thread cannot start: the marks are written in line.
    data_dir: std::path::PathBuf,
}

impl Marker {
    fn start(store: &Store) -> Marker {
        let data_dir = store.data_dir().to_path_buf();
        let (sender, notes) = std::sync::mpsc::channel::<String>();
        let dir = data_dir.clone();
        let spawned = std::thread::Builder::new()
            .name("tally-marker".into())
            .spawn(move || {
                while let Ok(mut note) = notes.recv() {
                    while let Ok(newer) = notes.try_recv() {
                        note = newer;
                    }
                    write_mark(&dir, &note);
                }
            });
        match spawned {
            Ok(thread) => Marker {
                notes: Some(sender),
                thread: Some(thread),
                data_dir,
            },
            Err(error) => {
                tracing::warn!(%error, "cannot start the marker thread; marks are written in line");
                Marker {
                    notes: None,
                    thread: None,
                    data_dir,
                }
            }
        }
    }

    fn mark(&self, group: &[Journaled]) {
        let latest = group
            .iter()
            .rev()
            .find_map(|journaled| match &journaled.entry.body {
                EntryBody::CheckpointSigned { note } => Some(note),
                _ => None,
            });
        let Some(note) = latest else { return };
        let sent = self
            .notes
            .as_ref()
            .is_some_and(|notes| notes.send(note.clone()).is_ok());
        if !sent {
            write_mark(&self.data_dir, note);
        }
    }

    /// Writes what is still waiting, then stops the thread.
    fn finish(mut self) {
        drop(self.notes.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A failure is logged, not fatal: the mark only adds a check on start.
fn write_mark(data_dir: &std::path::Path, note: &str) {
    if let Err(error) = crate::audit::mark::write(data_dir, note) {
        tracing::warn!(%error, "cannot write the checkpoint mark");
    }
}
