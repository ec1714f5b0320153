//! The gRPC server around an engine: the Ledger, Audit, Admin, Metering,
//! Rating and Billing services, health checking and reflection, on one listener, with a
//! graceful shutdown.
//!
//! [`start`] is what `tallyd` and the in-process tests use: it opens the
//! engine, binds (port 0 picks a free port) and serves in a task;
//! [`RunningServer::shutdown`] stops accepting, lets calls in flight finish,
//! ends journal streams, then shuts the engine down (queued writes finish and
//! are flushed).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tally_proto::v1::admin_server::AdminServer;
use tally_proto::v1::audit_server::AuditServer;
use tally_proto::v1::billing_server::BillingServer;
use tally_proto::v1::ledger_server::LedgerServer;
use tally_proto::v1::metering_server::MeteringServer;
use tally_proto::v1::rating_server::RatingServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::ServerTlsConfig;

use crate::api::{
    AdminService, AuditService, BillingService, LedgerService, MeteringService, RatingService,
};
use crate::auth::layer::AuthLayer;
use crate::config::{Config, ConfigError};
use crate::engine::Engine;

/// Why the server could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("cannot open the ledger: {0}")]
    Engine(#[from] crate::error::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Task(String),
}

/// Settings of the gRPC layer itself.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest gRPC message, either way, in bytes.
    pub message_bytes_max: usize,
    /// Requests per second and API key; 0 means no limit.
    pub requests_per_second_per_key: u64,
    /// Serve over TLS with this certificate and key; `None`: plain HTTP/2.
    pub tls: Option<ServerTlsConfig>,
}

impl ServeOptions {
    /// The options of `config`; reads the `[tls]` files, if any.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(ServeOptions {
            message_bytes_max: config.grpc_message_bytes_max,
            requests_per_second_per_key: config.auth.requests_per_second_per_key,
            tls: config.tls.server_tls_config()?,
        })
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        let config = Config::default();
        ServeOptions {
            message_bytes_max: config.grpc_message_bytes_max,
            requests_per_second_per_key: config.auth.requests_per_second_per_key,
            tls: None,
        }
    }
}

/// How long a graceful shutdown waits for open connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The name health checks ask about.
pub const LEDGER_SERVICE_NAME: &str = "tally.v1.Ledger";

/// Serves the Tally services, health and reflection on `listener` until
/// `shutdown` resolves, then stops gracefully: no new connections, open
/// journal streams end, calls in flight finish. Does not shut the engine down.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (stop_streams, streams_stopped) = watch::channel(false);
    let auth = AuthLayer::new(Arc::clone(&engine), options.requests_per_second_per_key);
    let admin = AdminServer::new(AdminService::new(Arc::clone(&engine)))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);
    let audit = AuditServer::new(AuditService::new(Arc::clone(&engine)))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);
    let metering = MeteringServer::new(MeteringService::new(Arc::clone(&engine)))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);
    let rating = RatingServer::new(RatingService::new(Arc::clone(&engine)))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);
    let billing = BillingServer::new(BillingService::new(Arc::clone(&engine)))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);
    let ledger = LedgerServer::new(LedgerService::new(engine, streams_stopped))
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(LEDGER_SERVICE_NAME, tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tally_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| ServerError::Task(format!("reflection service: {error}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tally_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| ServerError::Task(format!("reflection service: {error}")))?;

    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; ending journal streams");
        health_reporter
            .set_service_status(LEDGER_SERVICE_NAME, tonic_health::ServingStatus::NotServing)
            .await;
        // Followers would otherwise keep the graceful shutdown waiting forever.
        let _ = stop_streams.send(true);
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls)?;
    }
    // Every call passes the auth layer; it lets health and reflection through.
    builder
        .layer(auth)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger)
        .add_service(audit)
        .add_service(admin)
        .add_service(metering)
        .add_service(rating)
        .add_service(billing)
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    Ok(())
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The address it listens on (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Whether it serves over TLS (`[tls]` in the config).
    pub tls: bool,
    engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// Opens the engine in `config.data_dir`, binds `config.listen` and serves in
/// a background task.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    config.validate()?;
    let options = ServeOptions::from_config(&config)?;
    let tls = options.tls.is_some();
    let listener = TcpListener::bind(config.listen.as_str())
        .await
        .map_err(|source| ServerError::Bind {
            listen: config.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        listen: config.listen.clone(),
        source,
    })?;
    // Opening verifies the journal and may read a lot: keep it off the runtime.
    let engine_config = config.engine_config();
    let engine = tokio::task::spawn_blocking(move || Engine::open(engine_config))
        .await
        .map_err(|error| ServerError::Task(format!("opening the ledger: {error}")))??;
    let engine = Arc::new(engine);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(Arc::clone(&engine), listener, options, async move {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    tracing::info!(%addr, tls, data_dir = %config.data_dir.display(), "serving");
    Ok(RunningServer {
        addr,
        tls,
        engine,
        stop: Some(stop),
        task,
    })
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, or `https://ADDR` over TLS, for clients.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The engine being served (tests inspect it directly).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves until `signal` resolves or the server fails, then shuts down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::select! {
            () = signal => self.shutdown().await,
            finished = &mut self.task => {
                // The server stopped by itself: report why, after the engine flushed.
                self.engine.shutdown().await;
                flatten(finished)
            }
        }
    }

    /// Graceful shutdown: stop accepting, finish calls in flight, end journal
    /// streams, then shut the engine down (queued writes are flushed).
    ///
    /// A connection that never finishes (a stalled client) cannot hold the
    /// shutdown up: after [`SHUTDOWN_GRACE`] the remaining connections are
    /// dropped. Nothing acknowledged is lost by that: every acknowledged write
    /// is on disk already.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(finished) => flatten(finished),
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; dropping them");
                self.task.abort();
                Ok(())
            }
        };
        self.engine.shutdown().await;
        served
    }
}

fn flatten(
    finished: Result<Result<(), ServerError>, tokio::task::JoinError>,
) -> Result<(), ServerError> {
    finished.map_err(|error| ServerError::Task(format!("the server task failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_proto::v1 as pb;
    use tally_proto::v1::ledger_client::LedgerClient;
    use tokio_stream::StreamExt;
    use tonic_types::StatusExt;

    /// The first admin key of the test ledger (test-only, public).
    const TEST_TOKEN: &str = concat!(
        "tly_00000000000000b2_",
        "7e57000000000000000000000000000000000000000000000000000000000b2b",
    );

    type KeyedClient = LedgerClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
        >,
    >;

    fn with_key(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let header = format!("Bearer {TEST_TOKEN}").parse().unwrap();
        request.metadata_mut().insert("authorization", header);
        Ok(request)
    }

    async fn keyed_client(url: String) -> KeyedClient {
        let channel = tonic::transport::Channel::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        LedgerClient::with_interceptor(channel, with_key as _)
    }

    fn test_config(dir: &std::path::Path) -> Config {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".to_string(),
            ..Config::default()
        };
        config.auth.bootstrap_admin_key = Some(TEST_TOKEN.to_string());
        config
    }

    fn posting(account: &str, direction: pb::Direction, amount: &str) -> pb::Posting {
        pb::Posting {
            account: account.to_string(),
            direction: direction as i32,
            amount: amount.to_string(),
            currency: String::new(),
        }
    }

    fn transfer(id: &str, amount: &str, linked: bool) -> pb::TransactionItem {
        pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::Transaction(
                pb::TransactionSpec {
                    id: id.to_string(),
                    postings: vec![
                        posting("assets:cash", pb::Direction::Debit, amount),
                        posting("revenue:sales", pb::Direction::Credit, amount),
                    ],
                    ..Default::default()
                },
            )),
            linked,
        }
    }

    async fn set_up(client: &mut KeyedClient) {
        client
            .create_currencies(pb::CreateCurrenciesRequest {
                currencies: vec![pb::Currency {
                    code: "USD".to_string(),
                    scale: 2,
                }],
            })
            .await
            .unwrap();
        let accounts = [
            ("assets:cash", pb::AccountType::Asset),
            ("revenue:sales", pb::AccountType::Revenue),
        ]
        .into_iter()
        .map(|(name, account_type)| pb::AccountSpec {
            name: name.to_string(),
            r#type: account_type as i32,
            currency: "USD".to_string(),
            ..Default::default()
        })
        .collect();
        let response = client
            .create_accounts(pb::CreateAccountsRequest { accounts })
            .await
            .unwrap()
            .into_inner();
        assert!(response
            .results
            .iter()
            .all(|r| matches!(r.outcome, Some(pb::account_result::Outcome::Account(_)))));
    }

    #[tokio::test]
    async fn serves_writes_reads_and_a_followed_journal_then_stops() {
        // Goal: the whole edge works in process: batch results in request order
        // with a malformed item failing only its chain, balances, errors as
        // statuses with details, and a followed journal stream that ends at
        // shutdown instead of holding it up.
        let dir = tempfile::tempdir().unwrap();
        let running = start(test_config(dir.path())).await.unwrap();
        let mut client = keyed_client(running.url()).await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(
            tonic::transport::Channel::from_shared(running.url())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        let serving = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: LEDGER_SERVICE_NAME.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            serving.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        set_up(&mut client).await;

        let mut follower = client
            .follow_journal(pb::FollowJournalRequest {
                from_seq: 0,
                follow: true,
            })
            .await
            .unwrap()
            .into_inner();

        let mut bad = transfer("t2", "1", true);
        if let Some(pb::transaction_item::Kind::Transaction(spec)) = &mut bad.kind {
            spec.postings[1].amount = "1e2".to_string();
        }
        let results = client
            .create_transactions(pb::CreateTransactionsRequest {
                items: vec![
                    transfer("t1", "10.50", false),
                    bad,
                    transfer("t3", "1", false),
                    transfer("t4", "2", false),
                ],
                brief: false,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let outcome = |i: usize| results[i].outcome.clone().unwrap();
        assert!(matches!(
            outcome(0),
            pb::transaction_result::Outcome::Transaction(_)
        ));
        match outcome(1) {
            pb::transaction_result::Outcome::Error(e) => {
                assert_eq!(e.code, pb::ErrorCode::FieldInvalid as i32);
                assert_eq!(e.field, "items[1].transaction.postings[1].amount");
            }
            other => panic!("{other:?}"),
        }
        match outcome(2) {
            pb::transaction_result::Outcome::Error(e) => {
                assert_eq!(e.code, pb::ErrorCode::LinkedItemFailed as i32)
            }
            other => panic!("{other:?}"),
        }
        match outcome(3) {
            pb::transaction_result::Outcome::Transaction(t) => {
                assert_eq!(t.id, "t4");
                assert_eq!(t.postings[0].amount, "2.00");
            }
            other => panic!("{other:?}"),
        }

        let balances = client
            .get_balances(pb::GetBalancesRequest {
                accounts: vec!["assets:cash".to_string()],
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            balances.balances[0].balance.as_ref().unwrap().balance,
            "12.50"
        );

        let missing = client
            .get_account(pb::GetAccountRequest {
                name: "assets:nothing".to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert_eq!(
            missing.get_details_error_info().unwrap().reason,
            "ACCOUNT_NOT_FOUND"
        );
        let too_big = client
            .list_accounts(pb::ListAccountsRequest {
                page_size: 1_001,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(too_big.code(), tonic::Code::InvalidArgument);

        let info = client
            .get_ledger_info(pb::GetLedgerInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut seen = 0;
        while seen < info.journal_length {
            let entry = follower.next().await.unwrap().unwrap();
            assert_eq!(entry.seq, seen);
            assert!(!entry.json.is_empty());
            seen += 1;
        }

        tokio::time::timeout(std::time::Duration::from_secs(10), running.shutdown())
            .await
            .expect("shutdown waits for nothing")
            .unwrap();
        // The follower's stream ended with the server.
        let rest = tokio::time::timeout(std::time::Duration::from_secs(5), follower.next())
            .await
            .expect("stream ended");
        assert!(!matches!(rest, Some(Ok(_))));
    }
}
