//! The `tally` binary on its own, without a server: what a user sees when a
//! command is wrong or the server is not there. (This file also makes
//! `cargo test --workspace` build the binary that `tests/cli.rs` drives
//! against a real server.)

use std::process::{Command, Output};

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .env_remove("TALLY_SERVER")
        .env_remove("TALLY_API_KEY")
        .output()
        .expect("run tally")
}

#[test]
fn help_lists_every_command() {
    // Goal: `tally --help` succeeds and names each command group.
    let output = tally(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in [
        "info",
        "currency",
        "account",
        "tx",
        "balance",
        "trial-balance",
        "journal",
    ] {
        assert!(
            text.contains(command),
            "--help does not mention {command}:\n{text}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    // Goal: a malformed command line is a usage error (exit 2), sent nowhere.
    let output = tally(&["tx", "post", "--id", "t1", "--debit", "assets:cash=1e5"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = tally(&["no-such-command"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn an_unreachable_server_exits_1_with_an_error_line() {
    // Goal: no server at the address gives `error: ...` on stderr and exit 1,
    // within the deadline, instead of hanging.
    let output = tally(&["--server", "http://127.0.0.1:1", "--timeout", "2s", "info"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
}
