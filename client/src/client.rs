//! The connection to a ledger and its calls.
//!
//! Every call has a deadline (default 30 s), sent to the server as `grpc-timeout`
//! and enforced locally, so a call never hangs. Calls are retried with exponential
//! backoff, a bounded number of times, only when the server was unavailable: a
//! refused or broken connection, or status `Unavailable`. Retrying writes is safe
//! because every ledger write is idempotent by its id (currency code, account name,
//! transaction id; closing a closed account returns it unchanged): a retry
//! returns the first outcome, failure included. Usage ingestion is also retried
//! after a deadline passed (see `Client::ingest_events`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tally_proto::v1 as pb;
use tally_proto::v1::admin_client::AdminClient;
use tally_proto::v1::audit_client::AuditClient;
use tally_proto::v1::billing_client::BillingClient;
use tally_proto::v1::ledger_client::LedgerClient;
use tally_proto::v1::metering_client::MeteringClient;
use tally_proto::v1::rating_client::RatingClient;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Response, Status};

use crate::builders::{
    Batch, PageRequest, PostPendingSpec, ReverseSpec, TransactionFilter, TransactionSpec,
    TrialBalanceQuery, VoidPendingSpec,
};
use crate::convert;
use crate::error::{ClientError, ItemError, Result};
use crate::types::{
    Account, AccountCreated, AccountHistory, AccountSpec, AsOf, Balances, Currency,
    CurrencyCreated, JournalEntry, LedgerInfo, Page, Transaction, TransactionRecorded,
    TrialBalance,
};

/// The generated gRPC client, with the api key interceptor in front.
pub type RawClient = LedgerClient<InterceptedService<Channel, ApiKeyInterceptor>>;
/// The generated Admin service client, on the same connection.
pub type RawAdminClient = AdminClient<InterceptedService<Channel, ApiKeyInterceptor>>;
/// The generated Audit service client, on the same connection.
pub type RawAuditClient = AuditClient<InterceptedService<Channel, ApiKeyInterceptor>>;
/// The generated Metering service client, on the same connection.
pub type RawMeteringClient = MeteringClient<InterceptedService<Channel, ApiKeyInterceptor>>;
/// The generated Rating service client, on the same connection.
pub type RawRatingClient = RatingClient<InterceptedService<Channel, ApiKeyInterceptor>>;
/// The generated Billing service client, on the same connection.
pub type RawBillingClient = BillingClient<InterceptedService<Channel, ApiKeyInterceptor>>;

/// The entries of the journal, in seq order.
pub type JournalStream = Pin<Box<dyn Stream<Item = Result<JournalEntry>> + Send>>;

/// The largest message either side may send: a full batch answer (8,190
/// transactions) is well over tonic's 4 MiB default.
const MESSAGE_SIZE_MAX: usize = 64 * 1024 * 1024;

/// How many pages a "fetch everything" helper reads before giving up, so that a
/// server that keeps answering with a next page cannot keep the client forever.
pub(crate) const PAGE_COUNT_MAX: usize = 1_000_000;

/// Adds `authorization: Bearer <key>` to every request when a key is set.
#[derive(Clone, Debug, Default)]
pub struct ApiKeyInterceptor {
    header: Option<MetadataValue<Ascii>>,
}

impl Interceptor for ApiKeyInterceptor {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Whether a call may be sent again after the server was unavailable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Retry {
    /// Reads, and writes that are idempotent by id.
    Safe,
    /// Writes whose every item is deduplicated by its content (usage events):
    /// also sent again after a deadline passed, because an attempt that took
    /// effect answers "duplicate" for the same items the second time.
    Deduplicated,
    /// Calls whose second attempt would not answer like the first.
    Never,
}

/// Deadlines and retry policy, shared by every call of a client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    timeout: Duration,
    retries: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Policy {
    /// The pause before retry number `attempt` (0-based): doubling, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Configures a [`Client`]: `Client::builder(url).timeout(..).retries(..).build().await`.
///
/// An `https://` address is reached over TLS (rustls). The server's
/// certificate must chain to a CA given with [`ca_certificate`]
/// (or [`tls_config`]): no other root is trusted. `host:port` and `http://`
/// mean plain HTTP/2, and refuse a CA, so that TLS is never silently off.
///
/// [`ca_certificate`]: ClientBuilder::ca_certificate
/// [`tls_config`]: ClientBuilder::tls_config
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    api_key: Option<String>,
    tls: Option<ClientTlsConfig>,
    ca_certificates: Vec<Vec<u8>>,
    connect_timeout: Duration,
    lazy: bool,
    policy: Policy,
}

impl ClientBuilder {
    fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            api_key: None,
            tls: None,
            ca_certificates: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            lazy: false,
            policy: Policy {
                timeout: Duration::from_secs(30),
                retries: 3,
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_secs(2),
            },
        }
    }

    /// The deadline of each attempt of each call (default 30 s). For
    /// `follow_journal` it bounds opening the stream, not the stream's life.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// The deadline for establishing the connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times an unavailable server is retried (default 3; 0 disables).
    pub fn retries(mut self, retries: u32) -> Self {
        self.policy.retries = retries;
        self
    }

    /// The first backoff pause (default 50 ms); it doubles per retry, up to `max`
    /// (default 2 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.policy.backoff_initial = initial;
        self.policy.backoff_max = max;
        self
    }

    /// Sends `authorization: Bearer <key>` with every call.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Trusts the CA certificate(s) of this PEM text (`-----BEGIN CERTIFICATE-----`)
    /// for an `https://` server; may be called again to trust more.
    pub fn ca_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// The TLS settings of an `https://` server in full (e.g. a domain name
    /// other than the address's host, or a client certificate). CAs given with
    /// [`ca_certificate`](ClientBuilder::ca_certificate) are added to it.
    pub fn tls_config(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects on first use instead of in `build`, so that a client can be made
    /// before the server is up.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Connects (unless lazy), retrying an unavailable server like any call.
    pub async fn build(self) -> Result<Client> {
        let interceptor = self.interceptor()?;
        let url = with_scheme(&self.url);
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|_| ClientError::InvalidRequest(format!("bad server address {:?}", self.url)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        let endpoint = match self.client_tls_config(&url)? {
            Some(tls) => endpoint.tls_config(tls).map_err(|error| {
                ClientError::InvalidRequest(format!("bad TLS configuration: {}", sources(&error)))
            })?,
            None => endpoint,
        };
        let channel = if self.lazy {
            endpoint.connect_lazy()
        } else {
            connect(&endpoint, &self.policy).await?
        };
        let admin = AdminClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        let audit = AuditClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        let metering = MeteringClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        let rating = RatingClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        let billing = BillingClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        let raw = LedgerClient::with_interceptor(channel, interceptor)
            .max_decoding_message_size(MESSAGE_SIZE_MAX)
            .max_encoding_message_size(MESSAGE_SIZE_MAX);
        Ok(Client {
            raw,
            admin,
            audit,
            metering,
            rating,
            billing,
            policy: self.policy,
        })
    }

    /// The TLS settings for `url` (with its scheme): `Some` for `https://`.
    fn client_tls_config(&self, url: &str) -> Result<Option<ClientTlsConfig>> {
        let https = url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        let configured = self.tls.is_some() || !self.ca_certificates.is_empty();
        if !https {
            return if configured {
                Err(ClientError::InvalidRequest(format!(
                    "a CA certificate or TLS configuration was given but {:?} is not an https:// address",
                    self.url
                )))
            } else {
                Ok(None)
            };
        }
        let mut tls = self.tls.clone().unwrap_or_default();
        for pem in &self.ca_certificates {
            if !contains(pem, b"-----BEGIN CERTIFICATE-----") {
                return Err(ClientError::InvalidRequest(
                    "the CA certificate is not PEM (no -----BEGIN CERTIFICATE----- line)".into(),
                ));
            }
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        Ok(Some(tls))
    }

    fn interceptor(&self) -> Result<ApiKeyInterceptor> {
        let Some(key) = &self.api_key else {
            return Ok(ApiKeyInterceptor::default());
        };
        let header = format!("Bearer {key}").parse().map_err(|_| {
            ClientError::InvalidRequest("the api key is not a valid header value".into())
        })?;
        Ok(ApiKeyInterceptor {
            header: Some(header),
        })
    }
}

/// An error's message and its sources', `: `-separated.
fn sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `host:port` means `http://host:port`: the scheme is the part people forget.
fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

async fn connect(endpoint: &Endpoint, policy: &Policy) -> Result<Channel> {
    let mut attempt = 0;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(error) if attempt < policy.retries => {
                drop(error);
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A client of one ledger. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    raw: RawClient,
    pub(crate) admin: RawAdminClient,
    pub(crate) audit: RawAuditClient,
    pub(crate) metering: RawMeteringClient,
    pub(crate) rating: RawRatingClient,
    pub(crate) billing: RawBillingClient,
    pub(crate) policy: Policy,
}

impl Client {
    /// Connects with the default settings (30 s deadlines, 3 retries).
    pub async fn connect(url: impl Into<String>) -> Result<Client> {
        ClientBuilder::new(url).build().await
    }

    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// The generated gRPC client on the same connection (api key included), for
    /// requests this façade would not send, such as deliberately malformed ones.
    pub fn raw(&self) -> RawClient {
        self.raw.clone()
    }

    /// Sends one unary Ledger call with the deadline and retry policy.
    async fn call<Req, Resp, F, Fut>(&self, retry: Retry, request: Req, send: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(RawClient, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        call_with(&self.raw, &self.policy, retry, request, send).await
    }
}

/// Sends one unary call on `raw` (a Ledger or Audit client) with the deadline
/// and retry policy.
pub(crate) async fn call_with<C, Req, Resp, F, Fut>(
    raw: &C,
    policy: &Policy,
    retry: Retry,
    request: Req,
    send: F,
) -> Result<Resp>
where
    C: Clone,
    Req: Clone,
    F: Fn(C, Request<Req>) -> Fut,
    Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
{
    let mut attempt = 0;
    loop {
        let mut wire_request = Request::new(request.clone());
        wire_request.set_timeout(policy.timeout);
        let answer = tokio::time::timeout(policy.timeout, send(raw.clone(), wire_request)).await;
        let error = match answer {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => ClientError::from(status),
            Err(_elapsed) => ClientError::Timeout,
        };
        if !may_retry(retry, &error) || attempt >= policy.retries {
            return Err(error);
        }
        tokio::time::sleep(policy.backoff(attempt)).await;
        attempt += 1;
    }
}

/// Whether a failed attempt may be sent again under `retry`.
fn may_retry(retry: Retry, error: &ClientError) -> bool {
    match retry {
        Retry::Never => false,
        Retry::Safe => error.is_retryable(),
        Retry::Deduplicated => error.is_retryable() || *error == ClientError::Timeout,
    }
}

impl Client {
    /// Identity and size of the ledger.
    pub async fn ledger_info(&self) -> Result<LedgerInfo> {
        let info = self
            .call(
                Retry::Safe,
                pb::GetLedgerInfoRequest {},
                |mut raw, request| async move { raw.get_ledger_info(request).await },
            )
            .await?;
        Ok(convert::ledger_info(info))
    }

    /// Defines currencies; one result per currency, in order. Idempotent: the same
    /// scale again succeeds with `existed`, another scale fails `CURRENCY_EXISTS`.
    pub async fn create_currencies(
        &self,
        currencies: impl IntoIterator<Item = Currency>,
    ) -> Result<Vec<Result<CurrencyCreated, ItemError>>> {
        let request = pb::CreateCurrenciesRequest {
            currencies: currencies
                .into_iter()
                .map(convert::currency_to_proto)
                .collect(),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.create_currencies(request).await
            })
            .await?;
        convert::currency_results(response.results)
    }

    /// Defines one currency; a refusal is an `Api` error.
    pub async fn define_currency(&self, code: impl Into<String>, scale: u32) -> Result<Currency> {
        let results = self.create_currencies([Currency::new(code, scale)]).await?;
        let created = single(results)??;
        Ok(created.currency)
    }

    pub async fn list_currencies(&self) -> Result<Vec<Currency>> {
        let response = self
            .call(
                Retry::Safe,
                pb::ListCurrenciesRequest {},
                |mut raw, request| async move { raw.list_currencies(request).await },
            )
            .await?;
        Ok(response
            .currencies
            .into_iter()
            .map(convert::currency)
            .collect())
    }

    /// Opens accounts; one result per account, in order. Idempotent by name.
    pub async fn create_accounts(
        &self,
        specs: impl IntoIterator<Item = AccountSpec>,
    ) -> Result<Vec<Result<AccountCreated, ItemError>>> {
        let request = pb::CreateAccountsRequest {
            accounts: specs
                .into_iter()
                .map(convert::account_spec_to_proto)
                .collect(),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.create_accounts(request).await
            })
            .await?;
        convert::account_results(response.results)
    }

    /// Opens one account (or returns it when it exists with the same fields).
    pub async fn open_account(&self, spec: AccountSpec) -> Result<Account> {
        let created = single(self.create_accounts([spec]).await?)??;
        Ok(created.account)
    }

    /// Closes an account; it must have no balance and no pending amounts. Not
    /// retried: see the module documentation.
    pub async fn close_account(&self, name: impl Into<String>) -> Result<Account> {
        let request = pb::CloseAccountRequest { name: name.into() };
        let account = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.close_account(request).await
            })
            .await?;
        convert::account(account)
    }

    pub async fn get_account(&self, name: impl Into<String>) -> Result<Account> {
        let request = pb::GetAccountRequest { name: name.into() };
        let account = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_account(request).await
            })
            .await?;
        convert::account(account)
    }

    /// One page of the accounts whose name starts with `prefix` ("" for all).
    pub async fn list_accounts(&self, prefix: &str, page: PageRequest) -> Result<Page<Account>> {
        let request = pb::ListAccountsRequest {
            prefix: prefix.to_string(),
            page_size: page.page_size,
            page_token: page.page_token.unwrap_or_default(),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_accounts(request).await
            })
            .await?;
        Ok(Page {
            items: response
                .accounts
                .into_iter()
                .map(convert::account)
                .collect::<Result<_>>()?,
            next_page_token: convert::page_token(response.next_page_token),
        })
    }

    /// Every account whose name starts with `prefix`, reading all pages.
    pub async fn list_all_accounts(&self, prefix: &str) -> Result<Vec<Account>> {
        collect_pages(|page| self.list_accounts(prefix, page)).await
    }

    /// Records a batch; one result per item, in order. Safe to retry as a whole:
    /// items already recorded answer `replayed`.
    pub async fn submit(
        &self,
        batch: impl Into<Batch>,
    ) -> Result<Vec<Result<TransactionRecorded, ItemError>>> {
        self.submit_answered(batch.into(), false).await
    }

    /// As [`Client::submit`], but the server answers briefly: each recorded
    /// transaction carries only its id, kind, seq, times, references and entry
    /// hash (no postings, description, metadata or state). For high-volume
    /// writers that already know what they sent; errors are in full.
    pub async fn submit_brief(
        &self,
        batch: impl Into<Batch>,
    ) -> Result<Vec<Result<TransactionRecorded, ItemError>>> {
        self.submit_answered(batch.into(), true).await
    }

    async fn submit_answered(
        &self,
        batch: Batch,
        brief: bool,
    ) -> Result<Vec<Result<TransactionRecorded, ItemError>>> {
        let expected = batch.len();
        let request = pb::CreateTransactionsRequest {
            items: batch
                .into_entries()
                .into_iter()
                .map(|(item, linked)| convert::item_to_proto(item, linked))
                .collect(),
            brief,
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.create_transactions(request).await
            })
            .await?;
        if response.results.len() != expected {
            return Err(ClientError::InvalidResponse(format!(
                "{} results for {expected} items",
                response.results.len()
            )));
        }
        convert::transaction_results(response.results)
    }

    /// The same as [`Client::submit`], under the RPC's name.
    pub async fn create_transactions(
        &self,
        batch: impl Into<Batch>,
    ) -> Result<Vec<Result<TransactionRecorded, ItemError>>> {
        self.submit(batch).await
    }

    /// Records one transaction (posted or pending); a refusal is an `Api` error.
    pub async fn post_transaction(&self, spec: impl Into<TransactionSpec>) -> Result<Transaction> {
        self.submit_one(Batch::new().with(spec.into())).await
    }

    /// Posts a pending transaction, in full or in part.
    pub async fn post_pending(&self, spec: PostPendingSpec) -> Result<Transaction> {
        let request = convert::post_pending_to_proto(spec);
        let transaction = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.post_pending(request).await
            })
            .await?;
        convert::transaction(transaction)
    }

    /// Voids a pending transaction.
    pub async fn void_pending(&self, spec: VoidPendingSpec) -> Result<Transaction> {
        let request = convert::void_pending_to_proto(spec);
        let transaction = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.void_pending(request).await
            })
            .await?;
        convert::transaction(transaction)
    }

    /// Reverses a posted transaction.
    pub async fn reverse(&self, spec: ReverseSpec) -> Result<Transaction> {
        self.submit_one(Batch::new().with(spec)).await
    }

    async fn submit_one(&self, batch: Batch) -> Result<Transaction> {
        let recorded = single(self.submit(batch).await?)??;
        Ok(recorded.transaction)
    }

    pub async fn get_transaction(&self, id: impl Into<String>) -> Result<Transaction> {
        let request = pb::GetTransactionRequest { id: id.into() };
        let transaction = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_transaction(request).await
            })
            .await?;
        convert::transaction(transaction)
    }

    /// One page of transactions, by effective time.
    pub async fn list_transactions(
        &self,
        filter: &TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<Transaction>> {
        let request = pb::ListTransactionsRequest {
            page_size: page.page_size,
            page_token: page.page_token.unwrap_or_default(),
            ..convert::filter_to_proto(filter)
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_transactions(request).await
            })
            .await?;
        Ok(Page {
            items: response
                .transactions
                .into_iter()
                .map(convert::transaction)
                .collect::<Result<_>>()?,
            next_page_token: convert::page_token(response.next_page_token),
        })
    }

    /// Every transaction matching `filter`, reading all pages.
    pub async fn list_all_transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<Transaction>> {
        collect_pages(|page| self.list_transactions(filter, page)).await
    }

    /// Balances of the named accounts at a point in history.
    pub async fn balances<I, S>(&self, accounts: I, as_of: AsOf) -> Result<Balances>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let request = pb::GetBalancesRequest {
            accounts: accounts.into_iter().map(Into::into).collect(),
            as_of: convert::as_of_to_proto(as_of),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_balances(request).await
            })
            .await?;
        convert::balances(response)
    }

    /// One page of an account's balance changes, with the balance before them.
    pub async fn account_history_page(
        &self,
        account: &str,
        page: PageRequest,
    ) -> Result<AccountHistory> {
        let request = pb::GetAccountHistoryRequest {
            account: account.to_string(),
            page_size: page.page_size,
            page_token: page.page_token.unwrap_or_default(),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_account_history(request).await
            })
            .await?;
        convert::account_history(response)
    }

    /// An account's whole history: its opening (zero) balance and every change.
    pub async fn account_history(&self, account: &str) -> Result<AccountHistory> {
        let first = self
            .account_history_page(account, PageRequest::first(PageRequest::SIZE_MAX))
            .await?;
        let mut history = AccountHistory {
            next_page_token: None,
            ..first.clone()
        };
        let mut token = first.next_page_token;
        let mut pages = 1;
        while let Some(current) = token {
            check_page_count(&mut pages)?;
            let page = PageRequest::after(PageRequest::SIZE_MAX, current.clone());
            let next = self.account_history_page(account, page).await?;
            check_token_moves(&current, next.next_page_token.as_deref())?;
            history.changes.extend(next.changes);
            token = next.next_page_token;
        }
        Ok(history)
    }

    /// A trial balance; see [`TrialBalanceQuery`].
    pub async fn trial_balance(&self, query: TrialBalanceQuery) -> Result<TrialBalance> {
        let request = pb::GetTrialBalanceRequest {
            as_of: convert::as_of_to_proto(query.as_of),
            depth: query.depth,
            prefix: query.prefix,
            currency: query.currency.unwrap_or_default(),
        };
        let response = self
            .call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_trial_balance(request).await
            })
            .await?;
        convert::trial_balance(response)
    }

    /// Streams journal entries from `from_seq`; with `follow`, keeps the stream open
    /// and yields new entries as they are committed. The deadline bounds opening the
    /// stream only. A broken stream ends with an error item; resume from the next seq.
    pub async fn follow_journal(&self, from_seq: u64, follow: bool) -> Result<JournalStream> {
        let mut attempt = 0;
        loop {
            let request = Request::new(pb::FollowJournalRequest { from_seq, follow });
            let mut raw = self.raw.clone();
            let opened =
                tokio::time::timeout(self.policy.timeout, raw.follow_journal(request)).await;
            let error = match opened {
                Ok(Ok(response)) => return Ok(journal_stream(response.into_inner())),
                Ok(Err(status)) => ClientError::from(status),
                Err(_elapsed) => ClientError::Timeout,
            };
            if !error.is_retryable() || attempt >= self.policy.retries {
                return Err(error);
            }
            tokio::time::sleep(self.policy.backoff(attempt)).await;
            attempt += 1;
        }
    }
}

fn journal_stream(streaming: tonic::Streaming<pb::JournalEntry>) -> JournalStream {
    Box::pin(streaming.map(|item| {
        item.map_err(ClientError::from)
            .and_then(convert::journal_entry)
    }))
}

/// The only result of a single-item batch.
fn single<T>(results: Vec<T>) -> Result<T> {
    let count = results.len();
    let mut results = results.into_iter();
    match (results.next(), count) {
        (Some(result), 1) => Ok(result),
        _ => Err(ClientError::InvalidResponse(format!(
            "{count} results for 1 item"
        ))),
    }
}

pub(crate) fn check_page_count(pages: &mut usize) -> Result<()> {
    *pages += 1;
    if *pages > PAGE_COUNT_MAX {
        return Err(ClientError::InvalidResponse(format!(
            "more than {PAGE_COUNT_MAX} pages"
        )));
    }
    Ok(())
}

/// A server that hands back the token it was given would loop the client forever.
fn check_token_moves(current: &str, next: Option<&str>) -> Result<()> {
    if next == Some(current) {
        return Err(ClientError::InvalidResponse(
            "the next page token repeats the current one".into(),
        ));
    }
    Ok(())
}

/// Reads every page of a listing, largest pages first.
pub(crate) async fn collect_pages<T, F, Fut>(fetch: F) -> Result<Vec<T>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        check_page_count(&mut pages)?;
        let page = fetch(PageRequest {
            page_size: PageRequest::SIZE_MAX,
            page_token: token.clone(),
        })
        .await?;
        items.extend(page.items);
        if let Some(current) = &token {
            check_token_moves(current, page.next_page_token.as_deref())?;
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        ClientBuilder::new("x").policy
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        // 50 ms, 100 ms, 200 ms, ... never above the 2 s cap, even for huge attempts.
        let policy = policy();
        assert_eq!(policy.backoff(0), Duration::from_millis(50));
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(3), Duration::from_millis(400));
        assert_eq!(policy.backoff(10), Duration::from_secs(2));
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn only_deduplicated_writes_retry_after_a_deadline() {
        // Goal: an unavailable server is retried for safe and deduplicated
        // calls; a passed deadline only for deduplicated ones (usage events);
        // a refusal never.
        let unavailable = ClientError::Transport("refused".into());
        let refused = ClientError::Api {
            code: crate::error::ErrorCode::MeterNotFound,
            field: String::new(),
            message: "no meter".into(),
            status: tonic::Code::NotFound,
        };
        assert!(may_retry(Retry::Safe, &unavailable));
        assert!(may_retry(Retry::Deduplicated, &unavailable));
        assert!(!may_retry(Retry::Never, &unavailable));
        assert!(!may_retry(Retry::Safe, &ClientError::Timeout));
        assert!(may_retry(Retry::Deduplicated, &ClientError::Timeout));
        assert!(!may_retry(Retry::Deduplicated, &refused));
    }

    #[test]
    fn url_without_scheme_gets_http() {
        // `127.0.0.1:50051` is what people type.
        assert_eq!(with_scheme("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(with_scheme("https://ledger:443"), "https://ledger:443");
    }

    #[test]
    fn only_https_addresses_use_tls() {
        // https:// always gets a TLS config; host:port and http:// never do, and
        // refuse a CA rather than silently going without TLS.
        let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let plain = ClientBuilder::new("127.0.0.1:1");
        assert!(plain
            .client_tls_config("http://127.0.0.1:1")
            .unwrap()
            .is_none());
        let tls = ClientBuilder::new("https://localhost:1").ca_certificate(pem);
        assert!(tls
            .client_tls_config("https://localhost:1")
            .unwrap()
            .is_some());
        let no_ca = ClientBuilder::new("https://localhost:1");
        assert!(no_ca
            .client_tls_config("HTTPS://localhost:1")
            .unwrap()
            .is_some());
        let mixed = ClientBuilder::new("127.0.0.1:1").ca_certificate(pem);
        assert!(matches!(
            mixed.client_tls_config("http://127.0.0.1:1"),
            Err(ClientError::InvalidRequest(message)) if message.contains("https://")
        ));
        let not_pem = ClientBuilder::new("https://localhost:1").ca_certificate("not a cert");
        assert!(matches!(
            not_pem.client_tls_config("https://localhost:1"),
            Err(ClientError::InvalidRequest(message)) if message.contains("PEM")
        ));
    }

    #[test]
    fn api_key_must_be_a_header_value() {
        // A newline in the key is refused before anything is sent.
        let builder = ClientBuilder::new("x").api_key("bad\nkey");
        assert!(matches!(
            builder.interceptor(),
            Err(ClientError::InvalidRequest(_))
        ));
        let mut interceptor = ClientBuilder::new("x").api_key("k1").interceptor().unwrap();
        let request = interceptor.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer k1"
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error_after_bounded_retries() {
        // Nothing listens on port 1: connect fails fast, retries stop, no hang.
        let result = Client::builder("http://127.0.0.1:1")
            .retries(2)
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            .build()
            .await;
        assert!(
            matches!(result, Err(ClientError::Transport(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn lazy_client_reports_unavailable_calls_as_transport() {
        // A lazy client builds without a server; its calls fail with Transport.
        let client = Client::builder("127.0.0.1:1")
            .lazy(true)
            .retries(1)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .build()
            .await
            .unwrap();
        let result = client.ledger_info().await;
        assert!(
            matches!(result, Err(ClientError::Transport(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn silent_server_is_a_timeout_not_a_hang() {
        // A peer that accepts TCP but never speaks HTTP/2: the deadline ends the call.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                connections.push(socket);
            }
        });
        let client = Client::builder(address.to_string())
            .lazy(true)
            .timeout(Duration::from_millis(200))
            .build()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let result = client.ledger_info().await;
        assert_eq!(result, Err(ClientError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        // A peer that closes every connection is retried `retries` times, then given up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let _closer = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        });
        let client = Client::builder(address.to_string())
            .lazy(true)
            .retries(2)
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .build()
            .await
            .unwrap();
        let result = client.ledger_info().await;
        assert!(
            matches!(result, Err(ClientError::Transport(_))),
            "{result:?}"
        );
        let attempts = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&attempts), "{attempts} connections");
    }

    #[tokio::test]
    async fn collect_pages_stops_on_a_repeated_token() {
        // A server that answers the same token again is an error, not a loop.
        let result: Result<Vec<u32>> = collect_pages(|_page| async {
            Ok(Page {
                items: vec![1],
                next_page_token: Some("same".to_string()),
            })
        })
        .await;
        assert!(matches!(result, Err(ClientError::InvalidResponse(_))));
    }

    #[test]
    fn single_requires_exactly_one_result() {
        // A batch of one must answer with one result.
        assert_eq!(single(vec![7]).unwrap(), 7);
        assert!(single::<u8>(vec![]).is_err());
        assert!(single(vec![1, 2]).is_err());
    }
}
