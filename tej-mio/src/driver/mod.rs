//! The engine behind [`Server`](crate::Server) and [`Client`](crate::Client):
//! sessions over mio streams in a range of tokens, on anyone's `Poll`.
//!
//! Split by concern: [`conn`] (one connection and its readiness),
//! [`listener`], [`timers`], [`wake`] (the list `Sender`s mark); the
//! drive loop itself is the core's [`Drive`](tej_net::drive::Drive).

mod conn;
mod listener;
mod timers;
mod wake;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Interest, Registry, Token};
use slab::Slab;
use tej_core::{ConnectionInfo, DisconnectReason, Handler, Session, SessionConfig};
use tej_net::accept::{panic_message, Accept};
use tej_net::drive::Step;
use tej_net::{NewHandler, Observer, ReadBuffer};

pub(crate) use conn::describe;
#[cfg(feature = "tls")]
pub(crate) use conn::try_handshake;
pub use conn::Stream;
use conn::{Conn, Opening};
use listener::Acceptor;
pub use listener::Listener;
pub(crate) use listener::{AnyListener, Erased};
use timers::Timers;
use wake::{ConnWaker, WakeList};

/// Connections accepted per turn before the established ones get theirs.
const MAX_ACCEPTS_PER_TURN: usize = 256;

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
pub struct Driver<H: Handler, F = fn() -> H, M = ()> {
    /// The listener's token; connections use the tokens after it.
    first_token: usize,
    /// How many connection slots the token range has room for.
    capacity: usize,
    /// Connections by slot; `None` while one is out for its turn.
    slots: Slab<Option<Box<Conn<H>>>>,
    timers: Timers,
    /// Connections that stopped for fairness with more to do.
    run_queue: VecDeque<usize>,
    /// Where `Sender`s mark their connections.
    wakes: Arc<WakeList>,
    /// The read buffer every connection shares.
    buffer: ReadBuffer,
    /// The time origin of every session's `now`.
    origin: Instant,
    listener: Option<Acceptor<F>>,
    /// Scratch space for due timers and marked connections.
    due: Vec<(usize, Duration)>,
    marked: Vec<Arc<ConnWaker>>,
    /// Handshakes of added sessions that failed, for their owner to report.
    handshake_errors: Vec<(Token, io::Error)>,
    /// How each connection ended, by token (its reason, or its handler's
    /// panic), for the client to report; only kept once asked for (a
    /// server's would grow without end).
    ends: Option<Vec<(Token, io::Result<DisconnectReason>)>>,
    /// Told of every accepted connection, for metrics.
    observer: Option<Arc<dyn Observer>>,
    /// Which shape of factory `F` is ([`NewHandler`]'s marker).
    marker: PhantomData<fn() -> M>,
}

impl<H: Handler, F, M> fmt::Debug for Driver<H, F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field(
                "tokens",
                &(self.first_token..self.first_token + 1 + self.capacity),
            )
            .field("connections", &self.slots.len())
            .field("timers", &self.timers.len())
            .field(
                "listener",
                &self.listener.as_ref().map(|l| l.socket.local_addr()),
            )
            .finish_non_exhaustive()
    }
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
            slots: Slab::new(),
            timers: Timers::default(),
            run_queue: VecDeque::new(),
            wakes: WakeList::new(waker),
            buffer: ReadBuffer::new(SessionConfig::default().read_buffer_len),
            origin: Instant::now(),
            listener: None,
            due: Vec::new(),
            marked: Vec::new(),
            handshake_errors: Vec::new(),
            ends: None,
            observer: None,
            marker: PhantomData,
        }
    }

    /// Accepts connections on `listener` (registered under the range's first
    /// token), running a handler made by `factory` with `config` for each.
    ///
    /// An accept error that concerns one connection is skipped; any other
    /// (such as running out of file descriptors) is logged and the listener
    /// rests for 100 ms, so the loop neither stops nor spins. At most
    /// 10,000 connections are served at once (see
    /// [`with_max_connections`](Driver::with_max_connections)).
    ///
    /// A stream that needs a handshake (TLS: see
    /// `tls::TlsListener`) gets its handler only once
    /// the handshake is done, within `config`'s
    /// [`handshake_timeout`](SessionConfig::handshake_timeout) from
    /// accept; until then it holds its place under the cap.
    ///
    /// # Errors
    ///
    /// The error of registering the listener.
    pub fn listen<L, G, N>(
        self,
        registry: &Registry,
        listener: L,
        config: SessionConfig,
        factory: G,
    ) -> io::Result<Driver<H, G, N>>
    where
        L: Listener + 'static,
        G: NewHandler<N, Handler = H>,
    {
        self.listen_any(registry, Box::new(Erased(listener)), config, factory)
    }

    /// [`listen`](Self::listen) on a boxed listener of any kind.
    pub(crate) fn listen_any<G, N>(
        self,
        registry: &Registry,
        listener: AnyListener,
        config: SessionConfig,
        factory: G,
    ) -> io::Result<Driver<H, G, N>>
    where
        G: NewHandler<N, Handler = H>,
    {
        let listener = Acceptor::new(registry, listener, Token(self.first_token), config, factory)?;
        Ok(Driver {
            first_token: self.first_token,
            capacity: self.capacity,
            slots: self.slots,
            timers: self.timers,
            run_queue: self.run_queue,
            wakes: self.wakes,
            buffer: self.buffer,
            origin: self.origin,
            listener: Some(listener),
            due: self.due,
            marked: self.marked,
            handshake_errors: self.handshake_errors,
            ends: self.ends,
            observer: self.observer,
            marker: PhantomData,
        })
    }
}

impl<H: Handler, F: NewHandler<M, Handler = H>, M> Driver<H, F, M> {
    /// Caps the connections the listener has open at once (default
    /// 10,000): beyond it a new connection is accepted and closed at once,
    /// and accepting serves again when one ends. No effect without a listener.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        if let Some(listener) = &mut self.listener {
            listener.cap = tej_net::accept::ConnectionCap::new(max);
        }
        self
    }

    /// Tells `observer` of every connection the listener accepts: refused
    /// at the cap, failed in its handshake (a PROXY header that timed out
    /// counts as a handshake failure here), connected, its traffic,
    /// disconnected and why (see [`Observer`]). Sessions added with
    /// [`add_session`](Self::add_session) are not observed.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Registers `stream` and starts `session` on it: `connected` runs
    /// before this returns, and what it sends is written at once. The
    /// session's [`Sender`](tej_core::Sender) (take it with
    /// [`Session::sender`] first) pushes frames from any thread.
    ///
    /// The stream may still be connecting (mio's `TcpStream::connect`
    /// returns at once): until it is, reads and writes wait, and a failed
    /// connection ends the session with an I/O error.
    ///
    /// A stream that needs a handshake (a
    /// `tls::TlsStream`) starts the session only once
    /// the handshake is done, within the session's
    /// [`handshake_timeout`](SessionConfig::handshake_timeout); if it
    /// fails, the session is dropped without any callback and the error
    /// is kept for [`take_handshake_errors`](Self::take_handshake_errors).
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
        stream: impl Stream + 'static,
        session: Session<H>,
    ) -> io::Result<Token> {
        let handshake_until = self
            .now()
            .saturating_add(session.config().handshake_timeout);
        let peer = stream.peer_addr();
        self.add(
            registry,
            Opening {
                session: Some(session),
                stream: Box::new(stream),
                peer,
                handshake_until,
                slot: None,
            },
        )
    }

    /// The handshakes of sessions added with
    /// [`add_session`](Self::add_session) that failed or timed out since
    /// last asked, by the connection's token.
    pub fn take_handshake_errors(&mut self) -> Vec<(Token, io::Error)> {
        std::mem::take(&mut self.handshake_errors)
    }

    fn add(&mut self, registry: &Registry, mut opening: Opening<H>) -> io::Result<Token> {
        let entry = self.slots.vacant_entry();
        let slot = entry.key();
        if slot >= self.capacity {
            return Err(io::Error::other("no free token left in the driver's range"));
        }
        let token = Token(self.first_token + 1 + slot);
        registry.register(&mut *opening.stream, token, Interest::READABLE)?;
        let waker = self.wakes.waker(slot);
        entry.insert(Some(Box::new(Conn::new(opening, token, waker))));
        self.turn(registry, slot, |_| {});
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
        conn.ready(event);
        self.turn(registry, slot, |_| {});
        true
    }

    /// Takes the frames and close requests that [`Sender`](tej_core::Sender)s
    /// queued on other threads. Call it when the poll's waker fires (calling
    /// it more often does no harm).
    pub fn handle_wake(&mut self, registry: &Registry) {
        let mut marked = std::mem::take(&mut self.marked);
        self.wakes.drain(&mut marked);
        for state in marked.drain(..) {
            let current = matches!(
                self.slots.get(state.slot),
                Some(Some(conn)) if Arc::ptr_eq(&conn.wake_state, &state)
            );
            if current {
                self.turn(registry, state.slot, |_| {});
            }
        }
        self.marked = marked;
    }

    /// How long the poll may wait before [`handle_timeout`](Self::handle_timeout)
    /// has work: until the earliest timer (idle timeout, ping, frame
    /// deadline, close linger, the listener's rest), zero if a connection
    /// has more to do now, `None` if nothing is timed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let listener_ready = self.listener.as_ref().is_some_and(|l| l.ready);
        if listener_ready || !self.run_queue.is_empty() {
            return Some(Duration::ZERO);
        }
        let rest = self.listener.as_ref().and_then(|l| l.paused_until);
        let next = [self.timers.next(), rest].into_iter().flatten().min()?;
        Some(next.saturating_sub(self.now()))
    }

    /// Runs what is due: the timers whose deadline has passed, the
    /// connections that stopped for fairness with more to read or write,
    /// and the listener after its rest. Call it after every poll, whether
    /// the poll timed out or not.
    pub fn handle_timeout(&mut self, registry: &Registry) {
        let now = self.now();
        if let Some(listener) = &mut self.listener {
            listener.resume(registry, now);
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        for (slot, deadline) in due.drain(..) {
            if let Some(Some(conn)) = self.slots.get_mut(slot) {
                conn.deadline = None;
                self.turn(registry, slot, |conn| conn.timer_fired(deadline));
            }
        }
        self.due = due;

        for _ in 0..self.run_queue.len() {
            let Some(slot) = self.run_queue.pop_front() else {
                break;
            };
            if let Some(Some(conn)) = self.slots.get_mut(slot) {
                conn.scheduled = false;
                self.turn(registry, slot, |_| {});
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
        if let Some(listener) = self.listener.take() {
            listener.close(registry);
        }
        let slots: Vec<usize> = self.slots.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.turn(registry, slot, Conn::shutdown);
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether the driver accepts connections (it has a listener that was
    /// not shut down).
    pub fn is_listening(&self) -> bool {
        self.listener.is_some()
    }

    /// The listener's address, if the driver has one.
    ///
    /// # Errors
    ///
    /// The operating system's error, if it cannot tell.
    pub fn listener_addr(&self) -> Option<io::Result<std::net::SocketAddr>> {
        self.listener.as_ref().map(|l| l.socket.local_addr())
    }

    /// Keeps how each connection ended from now on, for
    /// [`take_ends`](Self::take_ends).
    pub(crate) fn keep_ends(&mut self) {
        self.ends.get_or_insert_with(Vec::new);
    }

    /// How the connections that ended since last asked ended, by token:
    /// the reason their handler was given, or an error if it panicked.
    pub(crate) fn take_ends(&mut self) -> Vec<(Token, io::Result<DisconnectReason>)> {
        self.ends.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A waker that wakes the poll (and no connection).
    pub(crate) fn poll_waker(&self) -> std::task::Waker {
        std::task::Waker::from(Arc::clone(&self.wakes))
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs `action` on one connection, then its handshake while it has
    /// one, then the core's drive step (making the session first, for an
    /// accepted connection); then re-arms its interest and timer, queues it
    /// if its budget ran out, and drops it if it ended, failed its
    /// handshake or its handler panicked.
    fn turn(&mut self, registry: &Registry, slot: usize, action: impl FnOnce(&mut Conn<H>)) {
        let Some(mut conn) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let deadline = conn.deadline;
        let token = conn.token();
        let span = conn.span.clone();
        let _entered = span.enter();
        let now = self.now();
        let buffer = &mut self.buffer;
        let acceptor = self.listener.as_mut();
        // A clone (only when observing): `self` is borrowed again below.
        let observing = self.observer.clone().filter(|_| conn.is_accepted());
        let observer = observing.as_deref();
        // Whether the observer was told this connection is open, for a panic.
        let mut opened = conn.session.is_some();
        let opened_now = &mut opened;
        // The connection moves into the closure: if its handler panics, it is
        // dropped while unwinding, and a session dropped then does not call
        // its handler again.
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || -> (_, Turn) {
            action(&mut conn);
            match conn.handshake(now) {
                Ok(true) => {}
                Ok(false) => {
                    let waiting = conn.update_interest(registry).map(|()| Step::Pending);
                    return (conn, waiting.map_err(Some));
                }
                Err(failure) => return (conn, Err(failure)),
            }
            if conn.session.is_none() {
                // An accepted connection, its handshake done: its handler now.
                let Some(acceptor) = acceptor else {
                    return (conn, Err(None));
                };
                let info = conn.info();
                tej_net::observe::record_handshake(&conn.span, &info);
                let handler = acceptor.factory.new_handler(&info);
                let session = Session::with_shared_config(handler, Arc::clone(&acceptor.config))
                    .with_info(info);
                tej_net::observe::opened(observer, session.info());
                *opened_now = true;
                conn.session = Some(session);
            }
            let mut step = conn.step(buffer, now, observer);
            if step == Step::Pending {
                if let Err(error) = conn.update_interest(registry) {
                    // The session has failed: step it again.
                    conn.fail(error);
                    step = Step::Yield;
                }
            }
            (conn, Ok(step))
        }));
        let (mut conn, turn) = match outcome {
            Ok(outcome) => outcome,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(
                    token = token.0,
                    panic = %message,
                    "a connection's handler panicked; the connection is dropped"
                );
                if let Some(ends) = &mut self.ends {
                    let why = format!("the connection's handler panicked: {message}");
                    ends.push((token, Err(io::Error::other(why))));
                }
                self.release(slot, deadline);
                if let (Some(observer), true) = (observer, opened) {
                    let dropped = tej_core::DisconnectReason::Dropped;
                    observer.disconnected(&ConnectionInfo::default(), &dropped);
                }
                return;
            }
        };
        let step = match turn {
            Ok(step) => step,
            Err(failure) => {
                if let Some(error) = failure {
                    // A PROXY header that timed out counts as a handshake's failure.
                    let in_header = tej_net::proxy::is_proxy_error(&error);
                    tej_net::observe::handshake_ended(observer, conn.peer, &error, in_header);
                    if conn.session.is_some() {
                        self.handshake_errors.push((token, error));
                    }
                }
                Step::Done
            }
        };
        if step == Step::Done {
            if let Some(session) = &conn.session {
                if let Some(reason) = session.disconnect_reason() {
                    tej_net::observe::closed(observer, session.info(), reason);
                    if let Some(ends) = &mut self.ends {
                        ends.push((token, Ok(reason.clone())));
                    }
                }
            }
            if let Err(error) = registry.deregister(conn.stream()) {
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
        let next = conn.poll_timeout();
        self.timers.reset(slot, deadline, next);
        conn.deadline = next;
        if step == Step::Yield && !conn.scheduled {
            conn.scheduled = true;
            self.run_queue.push_back(slot);
        }
        self.slots[slot] = Some(conn);
    }

    /// Frees a connection's slot and its timer.
    fn release(&mut self, slot: usize, deadline: Option<Duration>) {
        self.timers.reset(slot, deadline, None);
        self.slots.remove(slot);
    }

    /// Accepts what is waiting, up to the turn's budget.
    fn accept(&mut self, registry: &Registry) {
        let now = self.now();
        for _ in 0..MAX_ACCEPTS_PER_TURN {
            let Some(listener) = self.listener.as_mut() else {
                return;
            };
            listener.ready = false;
            match listener.accept(registry, now, self.observer.as_deref()) {
                Some(Accept::Serve(stream, peer, slot)) => {
                    let handshake_until = now.saturating_add(listener.config.handshake_timeout);
                    let opening = Opening {
                        session: None,
                        stream,
                        peer,
                        handshake_until,
                        slot: Some(slot),
                    };
                    if let Err(error) = self.add(registry, opening) {
                        tracing::warn!(%error, ?peer, "cannot serve an accepted connection");
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
        // More may wait: come back after the others had their turn.
        if let Some(listener) = self.listener.as_mut() {
            listener.ready = true;
        }
    }
}

/// How a connection's turn ended: its drive step (`Pending` while its
/// handshake waits), or else why its handshake failed (`None`: cut by a
/// shutdown).
type Turn = Result<Step, Option<io::Error>>;
