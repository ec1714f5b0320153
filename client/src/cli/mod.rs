//! The `tally` command-line client: argument parsing (`args`), execution
//! (`commands`), and output (`render` for text, `json` for `--json`).

pub mod args;
mod audit;
mod audit_event;
mod billing;
mod commands;
mod customer;
mod events;
mod json;
mod meter;
mod plan;
mod render;
mod txfile;
mod usage;

use std::fmt;

use tally_client::ClientError;

pub use commands::run;

/// Why a command failed, and so which exit code it returns.
#[derive(Debug)]
pub enum CliError {
    /// The command line or an input file is wrong; nothing was sent. Exit 2.
    Usage(String),
    /// The call failed, or the server refused it. Exit 1.
    Client(ClientError),
    /// Some items of a batch were refused (each was already reported). Exit 1.
    Rejected { refused: usize, total: usize },
    /// Writing the output failed. Exit 1.
    Output(String),
    /// A checkpoint, proof, export or the ledger's history did not verify. Exit 1.
    Verification(String),
    /// `usage send` could not deliver a batch (the server was unreachable after the
    /// retries, or refused the whole call): the events from `from_line` on were not sent.
    /// Exit 2.
    Undelivered {
        error: ClientError,
        from_line: usize,
    },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::Client(ClientError::InvalidRequest(_))
            | CliError::Undelivered { .. } => 2,
            CliError::Client(_)
            | CliError::Rejected { .. }
            | CliError::Output(_)
            | CliError::Verification(_) => 1,
        }
    }

    /// True when stdout was closed by its reader (`tally journal tail | head`),
    /// which ends the command quietly rather than as a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(message) if message.contains("Broken pipe"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) | CliError::Output(message) => f.write_str(message),
            CliError::Client(error) => write!(f, "{error}"),
            CliError::Rejected { refused, total } => {
                write!(f, "{refused} of {total} items were refused")
            }
            CliError::Verification(message) => write!(f, "verification failed: {message}"),
            CliError::Undelivered { error, from_line } => write!(
                f,
                "the events from line {from_line} on were not sent: {error}; sending the input again is safe (event ids deduplicate)"
            ),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        CliError::Client(error)
    }
}

impl From<tally_client::ItemError> for CliError {
    fn from(error: tally_client::ItemError) -> Self {
        CliError::Client(error.into())
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::Output(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_client::ErrorCode;

    #[test]
    fn exit_codes_and_messages() {
        // Usage errors exit 2; server and API errors exit 1 and read CODE: message (field: path).
        assert_eq!(CliError::Usage("bad".into()).exit_code(), 2);
        let api = CliError::Client(ClientError::Api {
            code: ErrorCode::AccountNotFound,
            field: "postings[0].account".into(),
            message: "no account assets:bank".into(),
            status: tonic::Code::NotFound,
        });
        assert_eq!(api.exit_code(), 1);
        assert_eq!(
            api.to_string(),
            "ACCOUNT_NOT_FOUND: no account assets:bank (field: postings[0].account)"
        );
        let unreachable = CliError::Client(ClientError::Transport("connection refused".into()));
        assert_eq!(unreachable.exit_code(), 1);
    }
}
