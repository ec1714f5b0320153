//! Test harness shared by the end-to-end tests and the benchmarks: starts a
//! real `tallyd` process on an ephemeral port over a real data directory, and
//! can stop it gracefully (SIGTERM) or kill it (SIGKILL).

pub mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let mut child = Command::new(tallyd_binary())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tallyd");
        let stdout = child.stdout.take().expect("tallyd stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("tallyd listening on ") {
                    let _ = sender.send(addr.trim().to_string());
                }
            }
        });
        let started = Instant::now();
        let addr = loop {
            if let Ok(addr) = receiver.recv_timeout(Duration::from_millis(100)) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tallyd exited before listening: {status}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "tallyd did not start within {START_TIMEOUT:?}"
            );
        };
        Tallyd {
            child,
            url: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
        }
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
}

impl Drop for Tallyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
