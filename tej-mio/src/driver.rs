//! The engine behind [`Server`](crate::Server) and [`Client`](crate::Client):
//! sessions over mio sockets in a range of tokens, on anyone's `Poll`.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use tej_core::accept::{is_per_connection_error, ACCEPT_ERROR_BACKOFF};
use tej_core::{Handler, Session, SessionConfig};

/// Reads of one connection per turn before the others get theirs.
const MAX_READS_PER_TURN: usize = 16;
/// Writes of one connection per turn before the others get theirs.
const MAX_WRITES_PER_TURN: usize = 16;
/// Connections accepted per turn before the established ones get theirs.
const MAX_ACCEPTS_PER_TURN: usize = 256;
/// Slices in one vectored write.
const MAX_IO_SLICES: usize = 64;
/// TEJ connections on a mio [`Poll`](mio::Poll) that the caller owns: the
/// engine of [`Server`](crate::Server) and [`Client`](crate::Client), for
/// programs that run their own event loop.
///
/// A driver uses a range of [`Token`]s on the caller's [`Registry`]: the
/// first for its listener (if it has one, see [`listen`](Self::listen)), the
/// others for its connections, one each. It needs the poll's one
/// [`mio::Waker`], through which a [`Sender`](crate::Sender) on another
/// thread wakes the loop. The caller's loop:
///
/// 1. `poll.poll(&mut events, driver.poll_timeout())`;
/// 2. for each event: the waker's token → [`handle_wake`](Self::handle_wake);
///    any other token → [`handle_event`](Self::handle_event), which answers
///    `false` for tokens outside the driver's range (the caller's own);
/// 3. [`handle_timeout`](Self::handle_timeout), every time round: it runs the
///    timers that are due and the connections that have more to do.
///
/// Handlers run on the loop's thread, inside these calls. A handler that
/// panics ends its own connection only: the panic is caught, the connection
/// is closed and dropped (its `disconnected` does not run, as on the other
/// adapters), and the driver goes on.
///
/// ```
/// use std::sync::mpsc;
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
///
/// use tej_mio::mio::net::{TcpListener, TcpStream};
/// use tej_mio::mio::{Events, Poll, Token, Waker};
/// use tej_mio::{Connection, Driver, Frame, Handler, Session, SessionConfig};
///
/// /// Answers every frame with its message in capitals.
/// struct Upper;
///
/// impl Handler for Upper {
///     fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
///         let message = frame.message.unwrap_or_default().to_ascii_uppercase();
///         let _ = conn.send(Frame::message(message));
///     }
/// }
///
/// /// Sends one frame on connect and hands the answer back.
/// struct Ask(mpsc::Sender<Frame>);
///
/// impl Handler for Ask {
///     fn connected(&mut self, conn: &mut Connection<'_>) {
///         let _ = conn.send(Frame::message("hello"));
///     }
///     fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
///         let _ = self.0.send(frame);
///     }
/// }
///
/// # fn main() -> std::io::Result<()> {
/// // The program's own poll, waker and tokens: 0 for the waker,
/// // 1 for its own timer work, 10.. for TEJ.
/// const WAKE: Token = Token(0);
/// let mut poll = Poll::new()?;
/// let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
///
/// // A server and a client connection on the same driver: the handler type
/// // is shared, so box them (any `Box<dyn Handler>` is a handler).
/// let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr()?;
/// let mut driver = Driver::<Box<dyn Handler>>::new(Token(10)..Token(10_000), waker.clone())
///     .listen(poll.registry(), listener, SessionConfig::default(), || {
///         Box::new(Upper) as Box<dyn Handler>
///     })?;
///
/// let (answers, answer) = mpsc::channel();
/// let stream = TcpStream::connect(addr)?;
/// let handler: Box<dyn Handler> = Box::new(Ask(answers));
/// let session = Session::new(handler, SessionConfig::default()).with_peer(addr);
/// let sender = session.sender();
/// driver.add_session(poll.registry(), stream, session)?;
///
/// let mut events = Events::with_capacity(256);
/// let give_up = Instant::now() + Duration::from_secs(10);
/// let mut shutting_down = false;
/// while !(shutting_down && driver.is_empty()) {
///     // The program's own deadline joins the driver's.
///     let own = give_up.saturating_duration_since(Instant::now());
///     let timeout = driver.poll_timeout().map_or(own, |due| due.min(own));
///     poll.poll(&mut events, Some(timeout))?;
///     for event in events.iter() {
///         if event.token() == WAKE {
///             driver.handle_wake(poll.registry());
///         } else if !driver.handle_event(poll.registry(), event) {
///             // One of the program's own sources.
///         }
///     }
///     driver.handle_timeout(poll.registry());
///
///     if !shutting_down {
///         if let Ok(frame) = answer.try_recv() {
///             assert_eq!(frame.message.as_deref(), Some(&b"HELLO"[..]));
///             // Close the client from anywhere; shut the whole driver down.
///             sender.close();
///             driver.shutdown(poll.registry());
///             shutting_down = true;
///         }
///     }
///     assert!(Instant::now() < give_up, "no answer in time");
/// }
/// # Ok(())
/// # }
/// ```
pub struct Driver<H: Handler, F = fn() -> H> {
    /// The listener's token; connections use the tokens after it.
    first_token: usize,
    /// How many connection slots the token range has room for.
    capacity: usize,
    slots: Vec<Option<Box<Conn<H>>>>,
    free: Vec<usize>,
    live: usize,
    /// Every connection's next deadline, earliest first.
    timers: BTreeSet<(Duration, usize)>,
    /// Connections that stopped for fairness with more to do.
    run_queue: VecDeque<usize>,
    /// Where `Sender`s mark their connections.
    wakes: Arc<WakeQueue>,
    /// The read buffer every connection shares.
    buffer: Vec<u8>,
    /// The time origin of every session's `now`.
    origin: Instant,
    listener: Option<Listener<F>>,
    /// Scratch space for due timers and marked connections.
    due: Vec<usize>,
    marked: Vec<Arc<ConnWaker>>,
    /// Messages of handler panics, for the client to report.
    panics: Vec<String>,
}

impl<H: Handler, F> fmt::Debug for Driver<H, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field(
                "tokens",
                &(self.first_token..self.first_token + 1 + self.capacity),
            )
            .field("connections", &self.live)
            .field("timers", &self.timers.len())
            .field(
                "listener",
                &self.listener.as_ref().map(|l| l.socket.local_addr()),
            )
            .finish_non_exhaustive()
    }
}

/// The accepting side of a driver.
struct Listener<F> {
    socket: TcpListener,
    config: SessionConfig,
    factory: F,
    /// Registered with the poll (not resting after an error).
    registered: bool,
    /// Connections may be waiting: accept without waiting for an event.
    ready: bool,
    /// Resting after an accept error until then.
    paused_until: Option<Duration>,
}

/// Connections whose `Sender` queued frames or asked to close, and the
/// poll's waker to call when the first one is marked.
struct WakeQueue {
    marked: Mutex<Vec<Arc<ConnWaker>>>,
    waker: Arc<mio::Waker>,
}

impl WakeQueue {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<ConnWaker>>> {
        // Every update is a single push or swap: a panic cannot leave it half done.
        self.marked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `std::task::Waker` a session registers through `poll_queue`: marks
/// its connection and wakes the poll.
struct ConnWaker {
    slot: usize,
    /// Already in the queue: no need to push or wake again.
    marked: AtomicBool,
    /// Weak: the queue holds marked wakers, and outlives no driver.
    queue: Weak<WakeQueue>,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(queue) = self.queue.upgrade() else {
            // The driver is gone.
            return;
        };
        if self.marked.swap(true, Ordering::AcqRel) {
            return;
        }
        let first = {
            let mut marked = queue.lock();
            marked.push(Arc::clone(self));
            marked.len() == 1
        };
        // A non-empty queue has been signalled already and not drained yet.
        if first {
            if let Err(error) = queue.waker.wake() {
                tracing::error!(%error, "cannot wake the event loop");
            }
        }
    }
}

/// One connection: its socket, its session and what is known of its readiness.
struct Conn<H: Handler> {
    session: Session<H>,
    stream: TcpStream,
    token: Token,
    waker: Waker,
    wake_state: Arc<ConnWaker>,
    /// The socket may have bytes to read: cleared only by `WouldBlock`.
    read_ready: bool,
    /// The socket may take bytes: cleared only by `WouldBlock`.
    write_ready: bool,
    /// Whether `WRITABLE` is part of the registered interest.
    writable_interest: bool,
    /// The deadline this connection has in the driver's timers.
    deadline: Option<Duration>,
    /// Whether it waits in the run queue.
    scheduled: bool,
}

impl<H: Handler> Driver<H> {
    /// A driver without a listener, using the tokens in `tokens` (the first
    /// is kept for a listener, see [`listen`](Self::listen)); `waker` is the
    /// poll's waker, whose events go to [`handle_wake`](Self::handle_wake).
    ///
    /// # Panics
    ///
    /// If `tokens` holds fewer than two tokens.
    pub fn new(tokens: Range<Token>, waker: Arc<mio::Waker>) -> Driver<H> {
        let Range {
            start: Token(first),
            end: Token(end),
        } = tokens;
        assert!(
            end > first.saturating_add(1),
            "a driver needs at least two tokens: one for a listener, one for a connection"
        );
        Driver {
            first_token: first,
            capacity: end - first - 1,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BTreeSet::new(),
            run_queue: VecDeque::new(),
            wakes: Arc::new(WakeQueue {
                marked: Mutex::new(Vec::new()),
                waker,
            }),
            buffer: Vec::new(),
            origin: Instant::now(),
            listener: None,
            due: Vec::new(),
            marked: Vec::new(),
            panics: Vec::new(),
        }
    }

    /// Accepts connections on `listener` (registered under the range's first
    /// token), running a handler made by `factory` with `config` for each.
    ///
    /// An accept error that concerns one connection is skipped; any other
    /// (such as running out of file descriptors) is logged and the listener
    /// rests for 100 ms, so the loop neither stops nor spins.
    ///
    /// # Errors
    ///
    /// The error of registering the listener.
    pub fn listen<G>(
        self,
        registry: &Registry,
        mut listener: TcpListener,
        config: SessionConfig,
        factory: G,
    ) -> io::Result<Driver<H, G>>
    where
        G: FnMut() -> H,
    {
        registry.register(&mut listener, Token(self.first_token), Interest::READABLE)?;
        let listener = Listener {
            socket: listener,
            config,
            factory,
            registered: true,
            ready: true,
            paused_until: None,
        };
        Ok(Driver {
            first_token: self.first_token,
            capacity: self.capacity,
            slots: self.slots,
            free: self.free,
            live: self.live,
            timers: self.timers,
            run_queue: self.run_queue,
            wakes: self.wakes,
            buffer: self.buffer,
            origin: self.origin,
            listener: Some(listener),
            due: self.due,
            marked: self.marked,
            panics: self.panics,
        })
    }
}

impl<H: Handler, F: FnMut() -> H> Driver<H, F> {
    /// Registers `stream` and starts `session` on it: `connected` runs
    /// before this returns, and what it sends is written at once. The
    /// session's [`Sender`](tej_core::Sender) (take it with
    /// [`Session::sender`] first) pushes frames from any thread.
    ///
    /// The stream may still be connecting (mio's `TcpStream::connect`
    /// returns at once): until it is, reads and writes wait, and a failed
    /// connection ends the session with an I/O error.
    ///
    /// Returns the connection's token. The connection may already have
    /// ended when this returns (a handler that closes at once).
    ///
    /// # Errors
    ///
    /// No free token in the range, or the error of registering the stream.
    /// The session has not started then.
    pub fn add_session(
        &mut self,
        registry: &Registry,
        mut stream: TcpStream,
        session: Session<H>,
    ) -> io::Result<Token> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < self.capacity => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(io::Error::other("no free token left in the driver's range")),
        };
        let token = self.token_of(slot);
        if let Err(error) = registry.register(&mut stream, token, Interest::READABLE) {
            self.free.push(slot);
            return Err(error);
        }
        let wake_state = Arc::new(ConnWaker {
            slot,
            marked: AtomicBool::new(false),
            queue: Arc::downgrade(&self.wakes),
        });
        self.slots[slot] = Some(Box::new(Conn {
            session,
            stream,
            token,
            waker: Waker::from(Arc::clone(&wake_state)),
            wake_state,
            // Assume ready until the socket says otherwise.
            read_ready: true,
            write_ready: true,
            writable_interest: false,
            deadline: None,
            scheduled: false,
        }));
        self.live += 1;
        self.turn(registry, slot, |conn, now| {
            conn.session.start(now);
            conn.session.poll_queue(&conn.waker);
        });
        Ok(token)
    }

    /// Handles one readiness event. Returns `false`, doing nothing, if the
    /// token is not in the driver's range.
    pub fn handle_event(&mut self, registry: &Registry, event: &Event) -> bool {
        let Token(token) = event.token();
        if token < self.first_token || token - self.first_token > self.capacity {
            return false;
        }
        if token == self.first_token {
            if let Some(listener) = &mut self.listener {
                listener.ready = true;
                self.accept(registry);
            }
            return true;
        }
        let slot = token - self.first_token - 1;
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            // A connection that ended earlier in this batch of events.
            return true;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.read_ready = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.write_ready = true;
        }
        self.turn(registry, slot, |_, _| {});
        true
    }

    /// Takes the frames and close requests that [`Sender`](tej_core::Sender)s
    /// queued on other threads. Call it when the poll's waker fires (calling
    /// it more often does no harm).
    pub fn handle_wake(&mut self, registry: &Registry) {
        std::mem::swap(&mut self.marked, &mut *self.wakes.lock());
        let mut marked = std::mem::take(&mut self.marked);
        for state in marked.drain(..) {
            // Cleared before the queue is read: a frame queued from now on marks again.
            state.marked.store(false, Ordering::Release);
            let current = matches!(
                self.slots.get(state.slot),
                Some(Some(conn)) if Arc::ptr_eq(&conn.wake_state, &state)
            );
            if current {
                self.turn(registry, state.slot, |conn, _| {
                    conn.session.poll_queue(&conn.waker);
                });
            }
        }
        self.marked = marked;
    }

    /// How long the poll may wait before [`handle_timeout`](Self::handle_timeout)
    /// has work: until the earliest timer (idle timeout, ping, close linger,
    /// the listener's rest), zero if a connection has more to do now, `None`
    /// if nothing is timed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let listener_ready = self.listener.as_ref().is_some_and(|l| l.ready);
        if listener_ready || !self.run_queue.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self.timers.first().map(|&(deadline, _)| deadline);
        let rest = self.listener.as_ref().and_then(|l| l.paused_until);
        let next = match (timer, rest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(next.saturating_sub(self.now()))
    }

    /// Runs what is due: the timers whose deadline has passed, the
    /// connections that stopped for fairness with more to read or write,
    /// and the listener after its rest. Call it after every poll, whether
    /// the poll timed out or not.
    pub fn handle_timeout(&mut self, registry: &Registry) {
        let now = self.now();
        self.resume_listener(registry, now);

        let mut due = std::mem::take(&mut self.due);
        while let Some(&(deadline, slot)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            if let Some(Some(conn)) = self.slots.get_mut(slot) {
                conn.deadline = None;
                due.push(slot);
            }
        }
        for slot in due.drain(..) {
            self.turn(registry, slot, |conn, now| conn.session.handle_timeout(now));
        }
        self.due = due;

        for _ in 0..self.run_queue.len() {
            let Some(slot) = self.run_queue.pop_front() else {
                break;
            };
            if let Some(Some(conn)) = self.slots.get_mut(slot) {
                conn.scheduled = false;
                self.turn(registry, slot, |_, _| {});
            }
        }

        if self.listener.as_ref().is_some_and(|l| l.ready) {
            self.accept(registry);
        }
    }

    /// Shuts down gracefully: the listener is closed, and every connection
    /// finishes the frame it is receiving, flushes what it queued and
    /// closes. Keep running the loop until [`is_empty`](Self::is_empty).
    /// Connections added afterwards are not affected.
    pub fn shutdown(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            if listener.registered {
                if let Err(error) = registry.deregister(&mut listener.socket) {
                    tracing::debug!(%error, "could not deregister the listener");
                }
            }
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                self.turn(registry, slot, |conn, _| conn.session.shutdown());
            }
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The listener's address, if the driver has one.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    pub fn listener_addr(&self) -> Option<io::Result<std::net::SocketAddr>> {
        self.listener.as_ref().map(|l| l.socket.local_addr())
    }

    /// Messages of the handler panics caught so far, taken.
    pub(crate) fn take_panics(&mut self) -> Vec<String> {
        std::mem::take(&mut self.panics)
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn token_of(&self, slot: usize) -> Token {
        Token(self.first_token + 1 + slot)
    }

    /// Runs `action` on one connection, then moves its bytes as far as the
    /// socket and the turn's budget allow, re-arms its interest and timer,
    /// and drops it if it ended or its handler panicked.
    fn turn(
        &mut self,
        registry: &Registry,
        slot: usize,
        action: impl FnOnce(&mut Conn<H>, Duration),
    ) {
        let Some(mut conn) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let deadline = conn.deadline;
        let token = conn.token;
        let origin = self.origin;
        let buffer = &mut self.buffer;
        // The connection moves into the closure: if its handler panics, it is
        // dropped while unwinding, and a session dropped then does not call
        // its handler again.
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
            action(&mut conn, origin.elapsed());
            conn.drive(registry, buffer, origin);
            conn
        }));
        let mut conn = match outcome {
            Ok(conn) => conn,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(
                    token = token.0,
                    panic = %message,
                    "a connection's handler panicked; the connection is dropped"
                );
                self.panics.push(message);
                self.release(slot, deadline);
                return;
            }
        };
        if conn.session.is_closed() {
            if let Err(error) = registry.deregister(&mut conn.stream) {
                tracing::debug!(%error, "could not deregister a closed connection");
            }
            self.release(slot, deadline);
            // A handler's own `Drop` is the last of its code to run here.
            if panic::catch_unwind(AssertUnwindSafe(move || drop(conn))).is_err() {
                tracing::error!(
                    token = token.0,
                    "a connection's handler panicked while dropped"
                );
            }
            return;
        }
        let next = conn.session.poll_timeout();
        if next != deadline {
            if let Some(old) = deadline {
                self.timers.remove(&(old, slot));
            }
            if let Some(new) = next {
                self.timers.insert((new, slot));
            }
            conn.deadline = next;
        }
        if conn.has_more_work() && !conn.scheduled {
            conn.scheduled = true;
            self.run_queue.push_back(slot);
        }
        self.slots[slot] = Some(conn);
    }

    /// Frees a connection's slot and its timer.
    fn release(&mut self, slot: usize, deadline: Option<Duration>) {
        if let Some(deadline) = deadline {
            self.timers.remove(&(deadline, slot));
        }
        self.slots[slot] = None;
        self.free.push(slot);
        self.live -= 1;
    }

    /// Accepts what is waiting, up to the turn's budget.
    fn accept(&mut self, registry: &Registry) {
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        listener.ready = false;
        let mut accepted = 0;
        while listener.registered {
            if accepted == MAX_ACCEPTS_PER_TURN {
                // More may wait: come back after the others had their turn.
                listener.ready = true;
                break;
            }
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    accepted += 1;
                    self.open(registry, &mut listener, stream, peer);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if is_per_connection_error(&error) => {
                    tracing::debug!(%error, "a connection failed before it was accepted");
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed; pausing before the next accept");
                    if let Err(error) = registry.deregister(&mut listener.socket) {
                        tracing::debug!(%error, "could not deregister the listener");
                    }
                    listener.registered = false;
                    listener.paused_until = Some(self.now() + ACCEPT_ERROR_BACKOFF);
                }
            }
        }
        self.listener = Some(listener);
    }

    /// Starts a session for an accepted connection.
    fn open(
        &mut self,
        registry: &Registry,
        listener: &mut Listener<F>,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) {
        // Small frames must not wait for Nagle's algorithm; writes are already coalesced.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not disable Nagle's algorithm");
        }
        let factory = &mut listener.factory;
        let handler = match panic::catch_unwind(AssertUnwindSafe(factory)) {
            Ok(handler) => handler,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(panic = %message, "the handler factory panicked; connection dropped");
                self.panics.push(message);
                return;
            }
        };
        let session = Session::new(handler, listener.config.clone()).with_peer(peer);
        if let Err(error) = self.add_session(registry, stream, session) {
            tracing::warn!(%error, %peer, "cannot serve an accepted connection");
        }
    }

    /// Registers the listener again once its rest is over.
    fn resume_listener(&mut self, registry: &Registry, now: Duration) {
        let first_token = Token(self.first_token);
        let Some(listener) = &mut self.listener else {
            return;
        };
        if listener.paused_until.is_none_or(|until| now < until) {
            return;
        }
        listener.paused_until = None;
        match registry.register(&mut listener.socket, first_token, Interest::READABLE) {
            Ok(()) => {
                listener.registered = true;
                listener.ready = true;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot register the listener again; pausing");
                listener.paused_until = Some(now + ACCEPT_ERROR_BACKOFF);
            }
        }
    }
}

impl<H: Handler> Conn<H> {
    /// Writes and reads while the session wants to and the socket lets it,
    /// within the turn's budget, then makes the registered interest match
    /// what the session wants.
    fn drive(&mut self, registry: &Registry, buffer: &mut Vec<u8>, origin: Instant) {
        let mut reads = 0;
        let mut writes = 0;
        loop {
            let mut progress = false;
            // Flush first: what leaves the outbox may lift backpressure.
            while self.write_ready && self.session.wants_write() && writes < MAX_WRITES_PER_TURN {
                writes += 1;
                progress = true;
                if !self.write_once() {
                    break;
                }
            }
            // Reading resumes here as soon as the session wants it again,
            // whether or not a new event came: with edge-triggered readiness
            // none would come for bytes already waiting.
            if self.read_ready && self.session.wants_read() && reads < MAX_READS_PER_TURN {
                reads += 1;
                progress = true;
                self.read_once(buffer, origin);
            }
            if !progress || self.session.is_closed() {
                break;
            }
        }
        if !self.session.is_closed() {
            self.update_interest(registry);
        }
    }

    /// One vectored write of what the session offers; false if nothing was
    /// offered.
    fn write_once(&mut self) -> bool {
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let filled = self.session.transmit_io_slices(&mut slices);
        if filled == 0 {
            // Nothing after all: a file to send failed and closed the session.
            return false;
        }
        match self.stream.write_vectored(&slices[..filled]) {
            Ok(0) => self
                .session
                .handle_io_error(io::ErrorKind::WriteZero.into()),
            // A partial write is fine: the session keeps the rest, in order.
            Ok(written) => self.session.advance(written),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.write_ready = false,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => self.session.handle_io_error(error),
        }
        true
    }

    /// One read into the shared buffer, handed to the session.
    fn read_once(&mut self, buffer: &mut Vec<u8>, origin: Instant) {
        let len = self.session.config().read_buffer_len.max(1);
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        match self.stream.read(&mut buffer[..len]) {
            Ok(0) => self.session.handle_eof(origin.elapsed()),
            Ok(read) => {
                // What a closing session does not use is not for it.
                let _ = self.session.handle_input(&buffer[..read], origin.elapsed());
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.read_ready = false,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => self.session.handle_io_error(error),
        }
    }

    /// `WRITABLE` only while the session has bytes to write.
    fn update_interest(&mut self, registry: &Registry) {
        let wants_write = self.session.wants_write();
        if wants_write == self.writable_interest {
            return;
        }
        let interest = if wants_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match registry.reregister(&mut self.stream, self.token, interest) {
            Ok(()) => self.writable_interest = wants_write,
            Err(error) => self.session.handle_io_error(error),
        }
    }

    /// Whether the turn's budget ran out with more to read or write now.
    fn has_more_work(&self) -> bool {
        (self.read_ready && self.session.wants_read())
            || (self.write_ready && self.session.wants_write())
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
