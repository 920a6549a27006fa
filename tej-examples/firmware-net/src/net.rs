//! The network: smoltcp's interface over the LAN9118, its TCP sockets, and
//! a smoltcp socket as an [`embedded_io_async`] stream for the endpoint.
//!
//! Everything runs on one core in one loop: the loop polls the interface,
//! then every connection's future. A future that would wait returns
//! `Pending` and is polled again on the next turn, so no waker is needed.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::clock;
use crate::lan9118::Lan9118;

/// The interface, its device and its sockets, shared by the loop and the
/// connections; borrowed only between two awaits.
pub struct Net {
    pub iface: Interface,
    pub device: Lan9118,
    pub sockets: SocketSet<'static>,
}

impl Net {
    /// Lets smoltcp send and receive what is due.
    pub fn poll(&mut self) {
        let Net {
            iface,
            device,
            sockets,
        } = self;
        iface.poll(clock::now(), device, sockets);
    }
}

/// Why a socket stream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The connection was reset or aborted.
    Reset,
    /// The peer closed its side: no more can be sent.
    Closed,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NetError::Reset => "connection reset",
            NetError::Closed => "connection closed",
        })
    }
}

impl core::error::Error for NetError {}

impl embedded_io_async::Error for NetError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            NetError::Reset => embedded_io_async::ErrorKind::ConnectionReset,
            NetError::Closed => embedded_io_async::ErrorKind::BrokenPipe,
        }
    }
}

/// One TCP socket of [`Net`], as a stream.
#[derive(Clone, Copy)]
pub struct Socket<'n> {
    net: &'n RefCell<Net>,
    handle: SocketHandle,
}

impl<'n> Socket<'n> {
    pub fn new(net: &'n RefCell<Net>, handle: SocketHandle) -> Self {
        Socket { net, handle }
    }

    /// Runs `f` on the smoltcp socket.
    pub fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut net = self.net.borrow_mut();
        f(net.sockets.get_mut::<tcp::Socket<'static>>(self.handle))
    }

    /// Waits until `ready` says the socket is ready.
    pub async fn until(&self, mut ready: impl FnMut(&mut tcp::Socket<'static>) -> bool) {
        poll_fn(|_| {
            if self.with(&mut ready) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Reads and drops what the peer sends until it closes its side or
    /// sends nothing for `quiet_ms`; gives up after `most_ms` in all.
    pub async fn drain(&self, quiet_ms: u32, most_ms: u32) {
        let start = clock::millis();
        let mut last = start;
        let mut sink = [0u8; 256];
        poll_fn(|_| {
            let now = clock::millis();
            let got = self.with(|socket| {
                let mut got = 0;
                while let Ok(len @ 1..) = socket.recv_slice(&mut sink) {
                    got += len;
                }
                (got, socket.may_recv())
            });
            if got.0 > 0 {
                last = now;
            }
            let done =
                !got.1 || now.wrapping_sub(last) >= quiet_ms || now.wrapping_sub(start) >= most_ms;
            if done {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl embedded_io_async::ErrorType for Socket<'_> {
    type Error = NetError;
}

impl embedded_io_async::Read for Socket<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        poll_fn(|_| {
            self.with(|socket| {
                if socket.can_recv() {
                    return Poll::Ready(socket.recv_slice(buf).map_err(|_| NetError::Reset));
                }
                if socket.may_recv() {
                    return Poll::Pending;
                }
                // After the peer's FIN the stream ends; without one it broke.
                Poll::Ready(match socket.state() {
                    tcp::State::Closed | tcp::State::Listen => Err(NetError::Reset),
                    _ => Ok(0),
                })
            })
        })
        .await
    }
}

impl embedded_io_async::Write for Socket<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        poll_fn(|_| {
            self.with(|socket| {
                if socket.can_send() {
                    return Poll::Ready(socket.send_slice(buf).map_err(|_| NetError::Closed));
                }
                if socket.may_send() {
                    return Poll::Pending;
                }
                Poll::Ready(Err(match socket.state() {
                    tcp::State::Closed | tcp::State::Listen => NetError::Reset,
                    _ => NetError::Closed,
                }))
            })
        })
        .await
    }

    /// Waits until the peer has acknowledged everything sent.
    async fn flush(&mut self) -> Result<(), NetError> {
        poll_fn(|_| {
            self.with(|socket| {
                if socket.send_queue() == 0 {
                    Poll::Ready(Ok(()))
                } else if socket.is_active() {
                    Poll::Pending
                } else {
                    Poll::Ready(Err(NetError::Reset))
                }
            })
        })
        .await
    }
}
