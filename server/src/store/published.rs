//! What readers may see, and read-your-writes for answers sent before the fold.
//!
//! Readers see the journal up to the *published* length: groups the publisher
//! has folded into the read model. A transaction batch is answered from its
//! group alone (ids, seqs, hashes), and a usage batch from what the writer
//! made of it (each event's entry and place), so the publisher sends those
//! answers before it folds the group, and the fold leaves the answer's
//! critical path. The
//! price is a window in which a client holds an answer that reads do not
//! reflect yet. So before that answer goes out, the publisher *announces* the
//! group's end, and every read first waits until the published length reaches
//! the announced one: any read that starts after an answer was sent sees that
//! answer's writes (at most one fold of waiting, a few milliseconds).
//!
//! A thread that already holds the read model (a read in progress) never
//! waits again: it has waited when it took the model, and waiting while
//! holding it would block the very fold it waits for.

use super::read_model::ReadModel;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

/// How long a read waits for a fold before it reads anyway (with an error in
/// the log): only a stopped publisher takes that long.
const FOLD_WAIT_MAX: Duration = Duration::from_secs(10);

thread_local! {
    /// Read-model guards this thread holds.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

#[derive(Default)]
pub(super) struct Published {
    /// Journal length folded into the read model: what readers see.
    length: AtomicU64,
    /// Journal length whose answers may have been sent (durable, maybe not
    /// folded yet); never behind what a sent answer names.
    announced: AtomicU64,
    folded: Mutex<()>,
    fold_done: Condvar,
}

impl Published {
    /// The published length, without waiting (for the publisher itself).
    pub(super) fn length_now(&self) -> u64 {
        self.length.load(Ordering::Acquire)
    }

    /// Called before answers for the journal up to `length` are sent.
    pub(super) fn announce(&self, length: u64) {
        self.announced.fetch_max(length, Ordering::AcqRel);
    }

    /// Called by the publisher once the read model holds `length` entries.
    pub(super) fn set(&self, length: u64) {
        self.length.store(length, Ordering::Release);
        let _held = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        self.fold_done.notify_all();
    }

    /// The published length once it has reached every announced answer.
    pub(super) fn length_for_reads(&self) -> u64 {
        self.wait_for_announced();
        self.length_now()
    }

    fn wait_for_announced(&self) {
        if HELD.with(Cell::get) > 0 {
            return;
        }
        let target = self.announced.load(Ordering::Acquire);
        if self.length_now() >= target {
            return;
        }
        let mut held = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        while self.length_now() < target {
            let Some(left) = FOLD_WAIT_MAX.checked_sub(started.elapsed()) else {
                tracing::error!(
                    target,
                    published = self.length_now(),
                    "a read waited too long for the publisher; it reads what is published"
                );
                return;
            };
            held = self
                .fold_done
                .wait_timeout(held, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The read model, once it reflects every announced answer.
    pub(super) fn read<'a>(&self, model: &'a RwLock<ReadModel>) -> ModelGuard<'a> {
        self.wait_for_announced();
        let guard = model.read().unwrap_or_else(|p| p.into_inner());
        HELD.with(|held| held.set(held.get() + 1));
        ModelGuard { guard }
    }
}

/// A read of the read model (counted, so that a nested read does not wait).
pub struct ModelGuard<'a> {
    guard: RwLockReadGuard<'a, ReadModel>,
}

impl std::ops::Deref for ModelGuard<'_> {
    type Target = ReadModel;
    fn deref(&self) -> &ReadModel {
        &self.guard
    }
}

impl Drop for ModelGuard<'_> {
    fn drop(&mut self) {
        HELD.with(|held| held.set(held.get() - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reads_wait_for_an_announced_fold_and_not_for_more() {
        let published = Arc::new(Published::default());
        let model = Arc::new(RwLock::new(ReadModel::default()));
        published.set(5);
        assert_eq!(published.length_for_reads(), 5, "nothing announced");
        published.announce(8);
        let reader = {
            let (published, model) = (Arc::clone(&published), Arc::clone(&model));
            std::thread::spawn(move || {
                let _model = published.read(&model);
                published.length_for_reads()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "the read waits for the fold");
        published.set(8);
        assert_eq!(reader.join().unwrap(), 8);
    }

    #[test]
    fn a_read_in_progress_does_not_wait_again() {
        let published = Published::default();
        let model = RwLock::new(ReadModel::default());
        published.set(3);
        let outer = published.read(&model);
        // Announced while the read holds the model: waiting now would block
        // the fold it waits for.
        published.announce(9);
        assert_eq!(published.length_for_reads(), 3);
        drop(outer);
        assert_eq!(HELD.with(Cell::get), 0);
    }
}
