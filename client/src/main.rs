//! `tally`: the command-line client of the Tally ledger.
//!
//! Exit codes: 0 on success, 1 when the server could not be reached or refused
//! the request, 2 for usage errors (bad flags, unreadable input files).

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // clap prints its own usage errors and exits 2 (0 for --help and --version).
    let args = cli::args::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli::run(args, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
