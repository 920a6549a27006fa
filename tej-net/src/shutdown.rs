//! The graceful-shutdown signal every adapter shares: one [`ShutdownHandle`]
//! type for a server, its connections, a client and an accept loop of your
//! own, whatever the runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use event_listener::{Event, EventListener, Listener};

/// Asks a server and its connections (or one connection) to end
/// gracefully, from any thread or task: no new connections are accepted,
/// each connection finishes the frame it is receiving, flushes what it
/// queued and closes.
///
/// Clones share the signal; dropping handles never gives it, only
/// [`shutdown`](Self::shutdown) does. The signal is runtime-agnostic:
/// [`wait`](Self::wait) is a plain future that any executor can poll, and
/// [`wait_blocking`](Self::wait_blocking) blocks a thread.
///
/// ```
/// use tej_net::ShutdownHandle;
///
/// let shutdown = ShutdownHandle::new();
/// let remote = shutdown.clone();
/// let waiter = std::thread::spawn(move || remote.wait_blocking());
/// shutdown.shutdown();
/// waiter.join().unwrap();
/// assert!(shutdown.is_shutdown());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<Signal>,
}

#[derive(Debug, Default)]
struct Signal {
    started: AtomicBool,
    event: Event,
}

impl ShutdownHandle {
    /// A signal not yet given.
    pub fn new() -> ShutdownHandle {
        ShutdownHandle::default()
    }

    /// Starts the graceful shutdown; every waiter wakes. Idempotent.
    pub fn shutdown(&self) {
        self.inner.started.store(true, Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
    }

    /// A future that completes once shutdown has started. It owns a clone
    /// of the handle (`'static`), so it can be stored and polled by hand
    /// with any waker, as an event loop without a runtime does.
    pub fn wait(&self) -> Wait {
        Wait {
            signal: Arc::clone(&self.inner),
            listener: None,
        }
    }

    /// Blocks the thread until shutdown has started.
    pub fn wait_blocking(&self) {
        loop {
            if self.is_shutdown() {
                return;
            }
            let listener = self.inner.event.listen();
            // Checked again after listening: a shutdown in between is not missed.
            if self.is_shutdown() {
                return;
            }
            listener.wait();
        }
    }
}

/// The future of [`ShutdownHandle::wait`]: ready once shutdown has started.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Wait {
    signal: Arc<Signal>,
    listener: Option<EventListener>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.signal.started.load(Ordering::SeqCst) {
                self.listener = None;
                return Poll::Ready(());
            }
            match self.listener.as_mut() {
                None => {
                    // Listen, then check the flag again at the top of the loop.
                    self.listener = Some(self.signal.event.listen());
                }
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_wait_is_woken_by_shutdown_and_then_ready() {
        let handle = ShutdownHandle::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut wait = handle.wait();
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        handle.clone().shutdown();
        assert!(count.0.load(Ordering::SeqCst) >= 1);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_ready());
        // A wait made after the signal is ready at once.
        assert!(Pin::new(&mut handle.wait()).poll(&mut cx).is_ready());
    }

    #[test]
    fn dropping_handles_gives_no_signal() {
        let handle = ShutdownHandle::new();
        drop(handle.clone());
        assert!(!handle.is_shutdown());
    }

    #[test]
    fn many_waits_dropped_unwoken_do_not_pile_up() {
        let handle = ShutdownHandle::new();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..10_000 {
            let mut wait = handle.wait();
            assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        }
        assert_eq!(handle.inner.event.total_listeners(), 0);
    }
}
