//! Test harness shared by the end-to-end tests and the benchmarks: starts a
//! real `tallyd` process on an ephemeral port over a real data directory, and
//! can stop it gracefully (SIGTERM) or kill it (SIGKILL).
//!
//! Every server it starts is given [`ADMIN_TOKEN`] as its first admin key, and
//! every client or `tally` command made here ([`connect`], [`client_builder`],
//! [`tally_command`]) sends it, so tests work whether or not the server
//! checks API keys.

pub mod crash;
pub mod loadgen;
pub mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin API key of every `tallyd` the harness starts. **Test-only**: a
/// fixed, public value (key id `00000000000000a1`), never to be used by a real
/// ledger.
pub const ADMIN_TOKEN: &str = concat!(
    "tly_00000000000000a1_",
    "7e57000000000000000000000000000000000000000000000000000000000a1a",
);

/// The environment variable from which a `tallyd` on a fresh data directory
/// takes its first admin key (a full token).
pub const BOOTSTRAP_ADMIN_KEY_VAR: &str = "TALLY_BOOTSTRAP_ADMIN_KEY";

/// The environment variable from which the `tally` CLI takes its API key.
pub const API_KEY_VAR: &str = "TALLY_API_KEY";

/// A client builder for the server at `url` that sends [`ADMIN_TOKEN`]; add
/// timeouts, retries etc. as with `Client::builder`.
pub fn client_builder(url: impl Into<String>) -> tally_client::ClientBuilder {
    tally_client::Client::builder(url).api_key(ADMIN_TOKEN)
}

/// `Client::connect(url)` with [`ADMIN_TOKEN`] (default settings otherwise).
pub async fn connect(url: impl Into<String>) -> tally_client::Result<tally_client::Client> {
    client_builder(url).build().await
}

/// A `Command` for the `tally` binary ([`tally_binary`]) with `TALLY_API_KEY`
/// set to [`ADMIN_TOKEN`]; the caller adds the server and arguments.
pub fn tally_command() -> Command {
    let mut command = Command::new(tally_binary());
    command.env(API_KEY_VAR, ADMIN_TOKEN);
    command
}

/// How long a `tallyd` may take to say it is listening (it replays the journal
/// first).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The `tallyd` binary built alongside the tests (`cargo test --workspace`
/// builds it: it is the binary of a workspace member with integration tests).
/// `TALLYD_BIN` overrides it.
pub fn tallyd_binary() -> PathBuf {
    workspace_binary("tallyd", "TALLYD_BIN", "cargo build -p tally-server")
}

/// The `tally` command-line client, found like [`tallyd_binary`]; `TALLY_BIN`
/// overrides it.
pub fn tally_binary() -> PathBuf {
    workspace_binary("tally", "TALLY_BIN", "cargo build -p tally-client")
}

/// A binary of a workspace member, next to the test executable's profile
/// directory, unless the environment variable `override_var` names one.
fn workspace_binary(name: &str, override_var: &str, build_command: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} does not exist: build it with `{build_command}` or run `cargo test --workspace`",
        binary.display()
    );
    binary
}

/// Runs `tallyd verify --data-dir DIR` (the server must not be running on it)
/// and returns its exit status and output.
pub fn verify_data_dir(data_dir: &Path) -> std::process::Output {
    offline_command("verify", data_dir)
}

/// Runs `tallyd rebuild --data-dir DIR` (the server must not be running on it).
pub fn rebuild_data_dir(data_dir: &Path) -> std::process::Output {
    offline_command("rebuild", data_dir)
}

fn offline_command(command: &str, data_dir: &Path) -> std::process::Output {
    Command::new(tallyd_binary())
        .arg(command)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run tallyd {command}: {error}"))
}

/// `tallyd` serving `data_dir` on a free local port, with warnings logged and
/// [`ADMIN_TOKEN`] as the first admin key of a new ledger; stdout and stderr
/// are the caller's to set.
pub fn tallyd_command(data_dir: &Path) -> Command {
    let mut command = Command::new(tallyd_binary());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env(BOOTSTRAP_ADMIN_KEY_VAR, ADMIN_TOKEN)
        .stdin(Stdio::null());
    command
}

/// Waits for the `tallyd listening on ADDR` line on `child`'s piped stdout;
/// returns the address and when the line came. Panics if tallyd exits first,
/// or (after killing it) if the line takes longer than `timeout`.
pub fn await_listening(child: &mut Child, timeout: Duration) -> (String, Instant) {
    let stdout = child.stdout.take().expect("tallyd's stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("tallyd listening on ") {
                let _ = sender.send((addr.trim().to_string(), Instant::now()));
            }
        }
    });
    let started = Instant::now();
    loop {
        if let Ok(listening) = receiver.recv_timeout(Duration::from_millis(100)) {
            return listening;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tallyd exited before listening: {status}");
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tallyd did not start within {timeout:?}");
        }
    }
}

/// A running `tallyd` process.
pub struct Tallyd {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub data_dir: PathBuf,
}

impl Tallyd {
    /// Starts `tallyd` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Tallyd {
        Self::start_with_args(data_dir, &[])
    }

    pub fn start_with_args(data_dir: &Path, extra_args: &[&str]) -> Tallyd {
        let mut child = tallyd_command(data_dir)
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tallyd");
        let (addr, _) = await_listening(&mut child, START_TIMEOUT);
        Tallyd {
            child,
            url: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// A client of this server with [`ADMIN_TOKEN`] (see [`connect`]).
    pub async fn client(&self) -> tally_client::Result<tally_client::Client> {
        connect(self.url.clone()).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or clean up, like a crash or power cut of
    /// the process.
    pub fn kill(mut self) {
        self.child.kill().expect("kill tallyd");
        self.child.wait().expect("reap tallyd");
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status.
    ///
    /// Blocks the calling thread. From an async test, call it through
    /// `tokio::task::spawn_blocking`: the graceful shutdown waits for every open
    /// connection to answer its GOAWAY, and a client whose runtime is blocked
    /// here cannot answer.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "could not send SIGTERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait tallyd") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tallyd did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM, expects a clean exit, then runs
    /// `tallyd verify` on its data directory and expects it to pass: what a
    /// test that killed and restarted the server ends with.
    pub fn terminate_and_verify(self) {
        let data_dir = self.data_dir.clone();
        let status = self.terminate();
        assert!(status.success(), "tallyd exited with {status}");
        let verify = verify_data_dir(&data_dir);
        assert!(
            verify.status.success(),
            "tallyd verify failed: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

impl Drop for Tallyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::ADMIN_TOKEN;

    #[test]
    fn admin_token_has_the_token_shape() {
        // tly_<16 lowercase hex key id>_<64 lowercase hex secret>
        let rest = ADMIN_TOKEN.strip_prefix("tly_").expect("tly_ prefix");
        let (id, secret) = rest.split_once('_').expect("id_secret");
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        assert_eq!(id.len(), 16);
        assert_eq!(secret.len(), 64);
        assert!(lower_hex(id) && lower_hex(secret), "{ADMIN_TOKEN}");
    }
}
