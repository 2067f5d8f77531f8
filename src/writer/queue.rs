//! The write queue of one store in this process: the requests handles queue for the writer
//! thread, the lazy expiry deletes and the touches reads queue (both bounded; the excess is
//! dropped), and the waits of the writer for work and of an exiting process for the writer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Durability, WriteKind, WriteRequest};

/// The queue shared by every handle of one store in this process.
pub struct WriteQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    /// Signalled when the writer has nothing queued and nothing being committed (see
    /// [`WriteQueue::wait_idle`]).
    idle: Condvar,
    /// The touches are at [`MAX_QUEUED_TOUCHES`]: reads drop theirs without taking the lock.
    touches_full: AtomicBool,
}

struct QueueState {
    pending: Vec<WriteRequest>,
    /// How many of `pending` are lazy expiry deletes (see [`MAX_QUEUED_LAZY_DELETES`]).
    lazy_deletes: usize,
    closing: bool,
    /// The writer took a group and has not come back for more: it is still committing it.
    committing: bool,
    /// Full keys reads found stale in a bounded directory, to re-stamp (coalesced; at most
    /// [`MAX_QUEUED_TOUCHES`]), the strongest durability of their handles, and when the
    /// first came.
    touches: HashSet<Vec<u8>>,
    touch_durability: Durability,
    touches_since: Option<Instant>,
}

/// Most touches waiting at once; beyond, reads drop theirs (the entry then just looks older).
pub const MAX_QUEUED_TOUCHES: usize = 8_192;
/// Touches ride along with the next writes (eviction only runs in writes, so that is when
/// recency is needed); with none coming, the writer commits them on their own once the first
/// has waited this long, so that other processes' evictions see them. A read-mostly process
/// thus re-stamps at most [`MAX_QUEUED_TOUCHES`] entries per period.
const TOUCH_DELAY: Duration = Duration::from_secs(1);

/// Most lazy expiry deletes waiting for the writer at once. Reads queue one per expired entry
/// they pass; a scan over millions of expired entries would otherwise queue millions (memory
/// growing with them) faster than the writer commits. Beyond this they are dropped: the
/// entries stay invisible, and a later read or `sweepExpired()` deletes them.
pub const MAX_QUEUED_LAZY_DELETES: usize = 16_384;

impl Default for WriteQueue {
    fn default() -> Self {
        WriteQueue {
            state: Mutex::new(QueueState {
                pending: Vec::new(),
                lazy_deletes: 0,
                closing: false,
                committing: false,
                touches: HashSet::new(),
                touch_durability: Durability::NoSync,
                touches_since: None,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            touches_full: AtomicBool::new(false),
        }
    }
}

impl WriteQueue {
    /// Queues requests in order; gives them back if the queue is closing.
    pub fn push_many(&self, requests: Vec<WriteRequest>) -> Result<(), Vec<WriteRequest>> {
        let mut state = self.state.lock();
        if state.closing {
            return Err(requests);
        }
        // Only the first request of a group needs to wake the writer: later ones find it
        // committing, and it takes everything queued when it comes back.
        let wake = state.pending.is_empty();
        state.pending.extend(requests);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues lazy expiry deletes (delete each full key if it is still expired at `now`; no
    /// reply) while fewer than [`MAX_QUEUED_LAZY_DELETES`] wait; drops the rest. Returns how
    /// many were queued.
    pub fn push_lazy_deletes(
        &self,
        full_keys: impl IntoIterator<Item = Vec<u8>>,
        now: u64,
        durability: Durability,
    ) -> usize {
        let mut state = self.state.lock();
        if state.closing {
            return 0;
        }
        let room = MAX_QUEUED_LAZY_DELETES.saturating_sub(state.lazy_deletes);
        let wake = state.pending.is_empty();
        let before = state.pending.len();
        let requests = full_keys
            .into_iter()
            .take(room)
            .map(|full_key| WriteRequest {
                kind: WriteKind::DeleteIfExpired { full_key, now },
                durability,
                reply: None,
            });
        state.pending.extend(requests);
        let queued = state.pending.len() - before;
        state.lazy_deletes += queued;
        drop(state);
        if wake && queued > 0 {
            self.wake.notify_one();
        }
        queued
    }

    /// Queues a touch of `full_key` (see [`MAX_QUEUED_TOUCHES`]); false if dropped.
    pub fn push_touch(&self, full_key: &[u8], durability: Durability) -> bool {
        if self.touches_full.load(Ordering::Relaxed) {
            return false;
        }
        let mut state = self.state.lock();
        if state.closing
            || (state.touches.len() >= MAX_QUEUED_TOUCHES && !state.touches.contains(full_key))
        {
            return false;
        }
        state.touch_durability = state.touch_durability.max(durability);
        if state.touches.contains(full_key) {
            return true;
        }
        state.touches.insert(full_key.to_vec());
        if state.touches.len() >= MAX_QUEUED_TOUCHES {
            self.touches_full.store(true, Ordering::Relaxed);
        }
        let first = state.touches_since.is_none();
        if first {
            state.touches_since = Some(Instant::now());
        }
        drop(state);
        if first {
            self.wake.notify_one();
        }
        true
    }

    /// The queued touches and their durability, taken (with a group or after [`take`]
    /// returned one for them).
    pub(super) fn take_touches(&self) -> (Vec<Vec<u8>>, Durability) {
        let mut state = self.state.lock();
        state.touches_since = None;
        self.touches_full.store(false, Ordering::Relaxed);
        let durability = std::mem::replace(&mut state.touch_durability, Durability::NoSync);
        (state.touches.drain().collect(), durability)
    }

    /// Waits for work; `None` once closing and drained. An empty group: only touches are due.
    pub(super) fn take(&self) -> Option<Vec<WriteRequest>> {
        let mut state = self.state.lock();
        // Back for more: the previous group is committed and its replies delivered.
        state.committing = false;
        if state.pending.is_empty() {
            self.idle.notify_all();
        }
        loop {
            if !state.pending.is_empty() {
                state.lazy_deletes = 0;
                state.committing = true;
                return Some(std::mem::take(&mut state.pending));
            }
            if state.closing {
                return None;
            }
            match state.touches_since {
                Some(since) if since.elapsed() >= TOUCH_DELAY => return Some(Vec::new()),
                Some(since) => {
                    self.wake.wait_until(&mut state, since + TOUCH_DELAY);
                }
                None => self.wake.wait(&mut state),
            }
        }
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.state.lock().pending.is_empty()
    }

    /// Blocks until everything queued so far is committed (and its replies delivered), or
    /// until `deadline`; true if the queue emptied. For a process about to exit: not used by
    /// any write or read path.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock();
        while !state.pending.is_empty() || state.committing {
            if self.idle.wait_until(&mut state, deadline).timed_out() {
                return state.pending.is_empty() && !state.committing;
            }
        }
        true
    }

    /// Stops accepting work; the writer drains what is queued, then exits.
    pub fn close(&self) {
        self.state.lock().closing = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy_deletes(queue: &WriteQueue, keys: std::ops::Range<usize>) -> usize {
        queue.push_lazy_deletes(
            keys.map(|i| format!("k{i}").into_bytes()),
            1,
            Durability::NoSync,
        )
    }

    #[test]
    fn lazy_deletes_wait_in_the_queue_up_to_their_bound_and_the_rest_are_dropped() {
        let queue = WriteQueue::default();
        let offered = MAX_QUEUED_LAZY_DELETES + 500;
        assert_eq!(lazy_deletes(&queue, 0..offered), MAX_QUEUED_LAZY_DELETES);
        assert_eq!(lazy_deletes(&queue, 0..1), 0, "full: dropped");
        // Other writes are never dropped.
        assert!(queue
            .push_many(vec![WriteRequest {
                kind: WriteKind::Sweep { now: 1 },
                durability: Durability::NoSync,
                reply: None,
            }])
            .is_ok());
        let taken = queue.take().unwrap();
        assert_eq!(taken.len(), MAX_QUEUED_LAZY_DELETES + 1);
        assert!(matches!(
            taken.last().unwrap().kind,
            WriteKind::Sweep { .. }
        ));
        // Once the writer took them, there is room again.
        assert_eq!(lazy_deletes(&queue, 0..10), 10);
        queue.close();
        assert_eq!(lazy_deletes(&queue, 0..1), 0, "closing: dropped");
        assert_eq!(queue.take().unwrap().len(), 10, "queued ones still drain");
        assert!(queue.take().is_none());
    }

    #[test]
    fn touches_are_coalesced_bounded_and_taken_with_the_next_group() {
        let queue = WriteQueue::default();
        assert!(queue.push_touch(b"hot", Durability::NoSync));
        assert!(queue.push_touch(b"hot", Durability::Strict), "coalesced");
        for i in 1..MAX_QUEUED_TOUCHES {
            assert!(queue.push_touch(format!("k{i}").as_bytes(), Durability::NoSync));
        }
        assert!(
            !queue.push_touch(b"one too many", Durability::NoSync),
            "full: dropped"
        );
        // A write comes: the writer takes the group, then the touches to apply with it.
        assert!(queue
            .push_many(vec![WriteRequest {
                kind: WriteKind::Sweep { now: 1 },
                durability: Durability::NoSync,
                reply: None,
            }])
            .is_ok());
        assert_eq!(queue.take().unwrap().len(), 1);
        let (touches, durability) = queue.take_touches();
        assert_eq!(touches.len(), MAX_QUEUED_TOUCHES);
        assert_eq!(
            durability,
            Durability::Strict,
            "the strongest of their handles"
        );
        assert!(queue.push_touch(b"room again", Durability::NoSync));
        queue.close();
        assert!(!queue.push_touch(b"closing", Durability::NoSync));
    }
}
