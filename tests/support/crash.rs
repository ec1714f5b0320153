//! What the crash tests share: a `tallyd` killed (SIGKILL) and restarted on
//! its data directory while clients keep writing, following it through a
//! watch of its address, and resending whatever went unanswered.

use crate::workload::Rng;
use crate::Tallyd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tally_client::Client;
use tokio::sync::watch;

/// The server the clients should talk to: its generation (one more per
/// start) and URL; `None` while it is down.
pub type ServerSlot = (u64, Option<String>);

/// A client that tries each call once: the crash tests retry themselves,
/// across restarts, so that they see every lost answer.
pub async fn connect_once(url: &str) -> Option<Client> {
    crate::client_builder(url.to_string())
        .retries(0)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .ok()
}

/// Starts tallyd on `dir` without blocking the runtime.
pub async fn start_tallyd(dir: &Path) -> Tallyd {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Tallyd::start(&dir))
        .await
        .unwrap()
}

/// When the kills come: each after `after_min` plus up to `after_spread`
/// more writes were acknowledged since the last start, then up to
/// `pause_ms_max` ms more.
pub struct KillSchedule {
    pub kills: usize,
    pub after_min: usize,
    pub after_spread: usize,
    pub pause_ms_max: usize,
    /// How often the acknowledged count is looked at.
    pub poll: Duration,
    /// Every write the clients will make (a kill must come before the last).
    pub total: usize,
    /// What a write is, for the messages ("batches", "publishes").
    pub unit: &'static str,
}

/// Kills tallyd as `schedule` says, restarting it on the same directory each
/// time and publishing its new address in `slot`; returns the server left
/// running.
pub async fn kill_and_restart(
    mut server: Tallyd,
    schedule: &KillSchedule,
    rng: &mut Rng,
    slot: &watch::Sender<ServerSlot>,
    acknowledged: &AtomicUsize,
) -> Tallyd {
    let (total, unit) = (schedule.total, schedule.unit);
    for kill in 1..=schedule.kills {
        let wanted = acknowledged.load(Ordering::SeqCst)
            + schedule.after_min
            + rng.below(schedule.after_spread);
        while acknowledged.load(Ordering::SeqCst) < wanted {
            assert!(
                acknowledged.load(Ordering::SeqCst) < total,
                "all {total} {unit} were acknowledged before kill {kill}: the workload is too small"
            );
            tokio::time::sleep(schedule.poll).await;
        }
        tokio::time::sleep(Duration::from_millis(
            rng.below(schedule.pause_ms_max) as u64
        ))
        .await;
        let at = acknowledged.load(Ordering::SeqCst);
        slot.send_modify(|(_, url)| *url = None);
        let dir = server.data_dir.clone();
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .unwrap();
        server = start_tallyd(&dir).await;
        slot.send_modify(|(generation, url)| {
            *generation += 1;
            *url = Some(server.url.clone());
        });
        println!("kill {kill}: after {at} of {total} {unit} were acknowledged");
    }
    server
}

/// The kill schedule's random source: seeded from the environment variable
/// `var` when set (to replay a run), else from the clock; the seed is printed
/// so that any run can be replayed.
pub fn seeded_rng(var: &str) -> Rng {
    let seed = std::env::var(var)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        });
    println!("crash schedule seed: {seed} ({var}={seed} replays it)");
    Rng(seed | 1)
}
