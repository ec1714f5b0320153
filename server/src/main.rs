//! `tallyd`: the Tally ledger server.
//!
//! ```text
//! tallyd [run] [--config FILE] [--data-dir DIR] [--listen ADDR]
//! tallyd rebuild --data-dir DIR    rebuild every cache from the journal
//! tallyd verify --data-dir DIR     check the journal's hash chain and entries
//! ```
//!
//! Once ready, `run` prints `tallyd listening on ADDR` on stdout (logs go to
//! stderr) and serves until SIGTERM or Ctrl-C, then shuts down gracefully.
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e` in `mimalloc.h`,
/// the same index in its v2 and v3; `libmimalloc-sys` names no constant for
/// it). A test checks it reads back the documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed by the allocator is kept before it is returned to
/// the operating system. Every batch allocates and frees its items, entries
/// and answers; with mimalloc's default (1 s) much of that memory was
/// returned between batches and faulted back in, zeroed by the kernel (about
/// 50,000 page faults and 7 % more CPU per million transfers,
/// docs/benchmarks.md). Ten seconds keeps it while the ledger is busy and
/// still returns it when the load stops. `MIMALLOC_PURGE_DELAY` overrides.
const PURGE_DELAY_MS: std::os::raw::c_long = 10_000;

fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's integer options; any value is valid
        // and mimalloc reads its options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tally_server::audit::keys;
use tally_server::config::Config;
use tally_server::server;

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tallyd",
    version,
    about = "The Tally double-entry ledger server"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the ledger over gRPC (the default).
    Run(RunArgs),
    /// Rebuild every derived cache (balances, indexes) from the journal.
    Rebuild(MaintenanceArgs),
    /// Verify the journal: hash chain, canonical encoding, balances.
    Verify(MaintenanceArgs),
    /// Create the ledger's ed25519 signing key (owner-only) and print its
    /// public key; never overwrites an existing key. With --rotate, retire the
    /// current key to keys/retired/ and create a new one: the next start
    /// records the rotation in the journal, signed by both keys.
    Keygen(KeygenArgs),
    /// Print the public key (C2SP vkey) that auditors verify checkpoints with.
    Pubkey(MaintenanceArgs),
}

#[derive(Debug, Clone, Args)]
struct KeygenArgs {
    /// Directory of the ledger's journal and caches.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The key's name, as in checkpoint signature lines (e.g. books.example.com/ledger).
    #[arg(long, default_value = tally_server::audit::keys::DEFAULT_KEY_NAME)]
    name: String,
    /// Retire the current key and create a new one (the server must be stopped).
    #[arg(long)]
    rotate: bool,
}

#[derive(Debug, Clone, Default, Args)]
struct RunArgs {
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the ledger's journal and caches.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on, host:port (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct MaintenanceArgs {
    /// Directory of the ledger's journal and caches. The server must not be running.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Rebuild(args)) => {
            init_logging("info");
            report(maintenance::rebuild(&args.data_dir))
        }
        Some(Command::Verify(args)) => {
            init_logging("info");
            report(maintenance::verify(&args.data_dir))
        }
        Some(Command::Keygen(args)) if args.rotate => report(
            keys::rotate(&args.data_dir, &args.name)
                .map(|(old, new)| {
                    format!(
                        "retired {}\nnew {}\nthe next start of tallyd records the rotation",
                        old.verifier().to_vkey(),
                        new.verifier().to_vkey()
                    )
                })
                .map_err(|error| error.to_string()),
        ),
        Some(Command::Keygen(args)) => report(
            keys::generate(&args.data_dir, &args.name)
                .map(|signer| signer.verifier().to_vkey())
                .map_err(|error| error.to_string()),
        ),
        Some(Command::Pubkey(args)) => report(
            keys::load(&args.data_dir)
                .map(|signer| signer.verifier().to_vkey())
                .map_err(|error| error.to_string()),
        ),
    }
}

/// Prints a maintenance report on stdout, or the failure on stderr.
fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tallyd: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The file's configuration (or the defaults) with the flags applied.
fn load_config(args: &RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|error| error.to_string())?,
        None => Config::default(),
    };
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    // The environment is the better place for a secret than a config file.
    if let Ok(token) = std::env::var(BOOTSTRAP_ADMIN_KEY_ENV) {
        config.auth.bootstrap_admin_key = Some(token);
    }
    config.validate().map_err(|error| error.to_string())?;
    Ok(config)
}

fn init_logging(default_filter: &str) {
    // RUST_LOG, when set, wins over the configured level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(args: RunArgs) -> ExitCode {
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tallyd: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tallyd: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "tallyd stopped");
            eprintln!("tallyd: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The environment variable that gives the first admin key's token.
const BOOTSTRAP_ADMIN_KEY_ENV: &str = "TALLY_BOOTSTRAP_ADMIN_KEY";

async fn serve(config: Config) -> Result<(), server::ServerError> {
    let running = server::start(config).await?;
    if let Some(token) = running.engine().take_bootstrap_token() {
        show_bootstrap_token(&token);
    }
    let termination = termination();
    announce(running.addr);
    let outcome = running.run_until(termination).await;
    tracing::info!("stopped");
    outcome
}

/// Shows the first admin key once, on stdout only (never in the log).
fn show_bootstrap_token(token: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "tallyd created the first admin api key; it is shown only now, store it:\n\n    TALLY_API_KEY={token}\n"
    );
    let _ = stdout.flush();
}

/// The one line scripts and tests wait for.
fn announce(addr: std::net::SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // Nothing useful can be done if stdout is gone; the server still runs.
    let _ = writeln!(stdout, "tallyd listening on {addr}");
    let _ = stdout.flush();
}

/// Listens for Ctrl-C and, on Unix, SIGTERM from the moment it is called (it
/// must run before `announce`: a script may send SIGTERM as soon as it reads
/// the line); the future resolves on the first of them.
fn termination() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let received = |listener: std::io::Result<tokio::signal::unix::Signal>, name| async move {
                match listener {
                    Ok(mut listener) => {
                        listener.recv().await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = received(interrupt, "Ctrl-C") => tracing::info!("Ctrl-C received"),
                () = received(terminate, "SIGTERM") => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}

/// The offline maintenance commands, as text reports.
mod maintenance {
    use super::Path;

    pub fn rebuild(data_dir: &Path) -> Result<String, String> {
        tally_server::maintenance::rebuild(data_dir)
            .map(|report| report.to_string())
            .map_err(|error| format!("rebuild of {} failed: {error}", data_dir.display()))
    }

    pub fn verify(data_dir: &Path) -> Result<String, String> {
        tally_server::maintenance::verify(data_dir)
            .map(|report| report.to_string())
            .map_err(|error| format!("verify of {} failed: {error}", data_dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        // Goal: clap's own consistency checks pass.
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_run() {
        // Goal: `tallyd --listen X` and `tallyd run --listen X` are the same.
        let cli = Cli::try_parse_from(["tallyd", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.listen.as_deref(), Some("127.0.0.1:0"));
        let cli = Cli::try_parse_from(["tallyd", "run", "--data-dir", "d"]).unwrap();
        match cli.command {
            Some(Command::Run(args)) => assert_eq!(args.data_dir, Some(PathBuf::from("d"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_purge_delay_option_is_the_one_named() {
        // Goal: the hard-coded option index is mimalloc's purge delay: it
        // reads back its documented default (1,000 ms) unless the
        // environment set it, and then what was set.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(default, 1_000);
        }
        keep_freed_memory();
        let set = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(set, PURGE_DELAY_MS);
        }
    }

    #[test]
    fn maintenance_needs_a_data_dir() {
        // Goal: `verify` without --data-dir is a usage error (exit code 2).
        let error = Cli::try_parse_from(["tallyd", "verify"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(Cli::try_parse_from(["tallyd", "rebuild", "--data-dir", "d"]).is_ok());
    }

    #[test]
    fn keygen_names_the_key_or_uses_the_default() {
        // Goal: `keygen` takes an optional key name; `pubkey` needs a data dir.
        let cli = Cli::try_parse_from(["tallyd", "keygen", "--data-dir", "d"]).unwrap();
        match cli.command {
            Some(Command::Keygen(args)) => assert_eq!(args.name, keys::DEFAULT_KEY_NAME),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "tallyd",
            "keygen",
            "--data-dir",
            "d",
            "--name",
            "b.example/l",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Keygen(args)) if args.name == "b.example/l"));
        assert_eq!(
            Cli::try_parse_from(["tallyd", "pubkey"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn flags_override_the_file() {
        // Goal: a flag beats the config file's value; other keys stay.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tally.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7\"\nlog-level = \"warn\"\n").unwrap();
        let args = RunArgs {
            config: Some(path),
            data_dir: None,
            listen: Some("127.0.0.1:0".to_string()),
        };
        let config = load_config(&args).unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.log_level, "warn");
    }
}
