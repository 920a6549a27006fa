//! Watching a frame's bytes leave: the [`SendProgress`] of
//! [`Sender::send_tracked`](crate::Sender::send_tracked), fed by the outbox
//! as the connection writes. A leaf: knows nothing of the queue or session.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::{Context, Poll, Waker};
use std::sync::PoisonError;

use crate::frame::Frame;
use crate::session::sync::{Arc, AtomicU64, Condvar, Mutex, MutexGuard};
use crate::wire::{FILE_HEADER_FIXED_LEN, FRAME_HEADER_LEN};

/// The connection ended before the whole frame was written. The frame
/// itself is not lost: the connection's
/// [`Sender::take_unsent`](crate::Sender::take_unsent) gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotWritten {
    /// Bytes of the frame written to the stream before it ended.
    pub written: u64,
    /// The frame's length on the wire.
    pub total: u64,
}

impl core::fmt::Display for NotWritten {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let NotWritten { written, total } = self;
        write!(
            f,
            "the connection ended after {written} of the frame's {total} bytes were written"
        )
    }
}

impl core::error::Error for NotWritten {}

#[derive(Debug)]
struct State {
    written: AtomicU64,
    total: u64,
    /// Where each file's data starts in the frame, and its length.
    files: Vec<(u64, u64)>,
    end: Mutex<End>,
    ended: Condvar,
}

#[derive(Debug, Default)]
struct End {
    outcome: Option<Result<(), NotWritten>>,
    /// The tasks awaiting [`Written`] futures, each under its future's id:
    /// one entry per live future, removed when it is dropped.
    waiters: Vec<(u64, Waker)>,
    next_waiter: u64,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, End> {
        self.end.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How much of one frame has been written to the connection's stream.
///
/// Returned by [`Sender::send_tracked`](crate::Sender::send_tracked). Bytes
/// count as written when the stream took them (for TCP, the kernel's send
/// buffer, not the peer's hands). Poll [`bytes_written`](Self::bytes_written)
/// from any thread for a progress bar, or await [`written`](Self::written).
#[derive(Debug, Clone)]
pub struct SendProgress {
    state: Arc<State>,
}

impl SendProgress {
    /// The frame's length on the wire: headers, names, files and message.
    pub fn total(&self) -> u64 {
        self.state.total
    }

    /// Bytes of the frame written so far.
    pub fn bytes_written(&self) -> u64 {
        self.state.written.load(Ordering::Acquire)
    }

    /// For the frame's file `index`: its data bytes written so far and its
    /// length; `None` if the frame has no such file.
    pub fn file_written(&self, index: usize) -> Option<(u64, u64)> {
        let &(start, len) = self.state.files.get(index)?;
        let written = self.bytes_written().saturating_sub(start).min(len);
        Some((written, len))
    }

    /// The outcome, once known: `Ok` when every byte was written.
    pub fn outcome(&self) -> Option<Result<(), NotWritten>> {
        self.state.lock().outcome
    }

    /// Completes when the whole frame has been written, or with
    /// [`NotWritten`] when the connection ended first. Any number of tasks
    /// may wait, each on a `written` future of its own (from this handle or
    /// a clone): every one is woken.
    pub fn written(&self) -> Written<'_> {
        Written {
            progress: self,
            waiter: None,
        }
    }

    /// Blocks the thread until [`written`](Self::written) would complete.
    ///
    /// # Errors
    ///
    /// [`NotWritten`] when the connection ended first.
    pub fn wait_blocking(&self) -> Result<(), NotWritten> {
        let mut end = self.state.lock();
        loop {
            if let Some(outcome) = end.outcome {
                return outcome;
            }
            end = self
                .state
                .ended
                .wait(end)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The future of [`SendProgress::written`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Written<'a> {
    progress: &'a SendProgress,
    /// This future's entry among the state's waiters, once it has waited.
    waiter: Option<u64>,
}

impl Future for Written<'_> {
    type Output = Result<(), NotWritten>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut end = this.progress.state.lock();
        if let Some(outcome) = end.outcome {
            return Poll::Ready(outcome);
        }
        let registered = this
            .waiter
            .and_then(|id| end.waiters.iter_mut().find(|(waiter, _)| *waiter == id));
        match registered {
            Some((_, waker)) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                let id = end.next_waiter;
                end.next_waiter += 1;
                end.waiters.push((id, cx.waker().clone()));
                this.waiter = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for Written<'_> {
    /// A future given up on no longer needs waking.
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            self.progress
                .state
                .lock()
                .waiters
                .retain(|(waiter, _)| *waiter != id);
        }
    }
}

/// The writing side of a [`SendProgress`], carried with its frame into the
/// outbox. Dropped before the frame was written whole (the connection
/// ended, the frame was handed back), it reports [`NotWritten`].
#[derive(Debug)]
pub(crate) struct Tracker {
    state: Arc<State>,
}

impl Tracker {
    /// A tracker for `frame` and the handle that watches it.
    pub(crate) fn new(frame: &Frame) -> (Tracker, SendProgress) {
        let mut offset = FRAME_HEADER_LEN as u64;
        let files = frame
            .files
            .iter()
            .map(|file| {
                offset += (FILE_HEADER_FIXED_LEN + file.name.len()) as u64;
                let start = offset;
                offset += file.len();
                (start, file.len())
            })
            .collect();
        let state = Arc::new(State {
            written: AtomicU64::new(0),
            total: frame.encoded_len(),
            files,
            end: Mutex::new(End::default()),
            ended: Condvar::new(),
        });
        let progress = SendProgress {
            state: Arc::clone(&state),
        };
        (Tracker { state }, progress)
    }

    /// The frame's length on the wire.
    pub(crate) fn total(&self) -> u64 {
        self.state.total
    }

    /// `written` bytes of the frame are on the stream; the whole frame at
    /// its total, which ends the tracking.
    pub(crate) fn advance_to(&self, written: u64) {
        let written = written.min(self.state.total);
        self.state.written.fetch_max(written, Ordering::AcqRel);
        if written == self.state.total {
            self.end(Ok(()));
        }
    }

    fn end(&self, outcome: Result<(), NotWritten>) {
        let mut end = self.state.lock();
        if end.outcome.is_some() {
            return;
        }
        end.outcome = Some(outcome);
        let waiters = core::mem::take(&mut end.waiters);
        drop(end);
        self.state.ended.notify_all();
        for (_, waker) in waiters {
            waker.wake();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let written = self.state.written.load(Ordering::Acquire);
        self.end(Err(NotWritten {
            written,
            total: self.state.total,
        }));
    }
}
