//! The wake list: connections whose [`Sender`](tej_core::Sender) queued a
//! frame or asked to close, marked from any thread, drained by the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Wake, Waker};

/// Marked connections, and the poll's waker to call when the first one is
/// marked.
pub(super) struct WakeList {
    marked: Mutex<Vec<Arc<ConnWaker>>>,
    waker: Arc<mio::Waker>,
}

impl WakeList {
    pub(super) fn new(waker: Arc<mio::Waker>) -> Arc<WakeList> {
        Arc::new(WakeList {
            marked: Mutex::new(Vec::new()),
            waker,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<ConnWaker>>> {
        // Every update is a single push or swap: a panic cannot leave it half done.
        self.marked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A waker for the connection in `slot`, and its state to tell it
    /// from a later connection in the same slot.
    pub(super) fn waker(self: &Arc<Self>, slot: usize) -> (Waker, Arc<ConnWaker>) {
        let state = Arc::new(ConnWaker {
            slot,
            marked: AtomicBool::new(false),
            list: Arc::downgrade(self),
        });
        (Waker::from(Arc::clone(&state)), state)
    }

    /// Wakes the poll.
    fn wake_poll(&self) {
        if let Err(error) = self.waker.wake() {
            tracing::error!(%error, "cannot wake the event loop");
        }
    }

    /// Swaps the marked connections into `into` (left empty before), each
    /// unmarked so that a frame queued from now on marks it again.
    pub(super) fn drain(&self, into: &mut Vec<Arc<ConnWaker>>) {
        std::mem::swap(into, &mut *self.lock());
        for state in into.iter() {
            state.marked.store(false, Ordering::Release);
        }
    }
}

/// The `std::task::Waker` a session registers through `poll_queue`: marks
/// its connection and wakes the poll.
pub(super) struct ConnWaker {
    pub(super) slot: usize,
    /// Already in the list: no need to push or wake again.
    marked: AtomicBool,
    /// Weak: the list holds marked wakers, and outlives no driver.
    list: Weak<WakeList>,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(list) = self.list.upgrade() else {
            // The driver is gone.
            return;
        };
        if self.marked.swap(true, Ordering::AcqRel) {
            return;
        }
        let first = {
            let mut marked = list.lock();
            marked.push(Arc::clone(self));
            marked.len() == 1
        };
        // A non-empty list has been signalled already and not drained yet.
        if first {
            list.wake_poll();
        }
    }
}

/// The list's own waker wakes the poll and marks nothing: what the event
/// loop polls its shutdown signal with.
impl Wake for WakeList {
    fn wake(self: Arc<Self>) {
        self.wake_poll();
    }
}
