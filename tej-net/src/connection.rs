//! A connection you await: the [`Sender`] it sends with and the
//! [`Incoming`] frames it receives, from
//! [`Server::accept`](crate::Server::accept),
//! [`Server::serve_connections`](crate::Server::serve_connections) or
//! [`Client::open`](crate::Client::open).

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use tej_core::{ConnectionInfo, DisconnectReason, Sender, Session};

use crate::incoming::{self, Incoming, IncomingFrame, StreamHandler};

/// One TEJ connection, run by its session in a task of its own, seen as
/// two halves: a [`Sender`] (any task or thread) and the [`Incoming`]
/// frames, a `Stream` this type also is.
///
/// ```no_run
/// # async fn demo(mut conn: tej_net::AsyncConnection) -> std::io::Result<()> {
/// use futures_lite::{io, StreamExt};
///
/// while let Some(frame) = conn.next().await {
///     let mut frame = frame.map_err(std::io::Error::other)?;
///     while let Some(mut file) = frame.next_file().await? {
///         // Read as it arrives: the peer is held to this pace.
///         io::copy(&mut file, &mut io::sink()).await?;
///     }
///     let message = frame.message().await?;
///     conn.sender().send(tej_core::Frame::message("stored")).await.ok();
///     let _ = message;
/// }
/// # Ok(())
/// # }
/// ```
///
/// **Dropping it (or its [`Incoming`] half) closes the connection
/// gracefully**: what was queued is still sent, then the connection
/// closes; a server's [`serve_connections`](crate::Server::serve_connections)
/// does this when the closure handling the connection returns.
pub struct AsyncConnection {
    sender: Sender,
    incoming: Incoming,
    info: ConnectionInfo,
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A session with the stream handler, and the connection that is its
/// other end: what a server or client runs in the connection's task.
pub(crate) fn pair(
    buffer: usize,
    config: std::sync::Arc<tej_core::SessionConfig>,
    info: ConnectionInfo,
) -> (Session<StreamHandler>, AsyncConnection) {
    let (handler, incoming) = incoming::channel(buffer);
    let session = Session::with_shared_config(handler, config).with_info(info.clone());
    let sender = session.sender();
    let connection = AsyncConnection {
        incoming: incoming.closing(sender.clone()),
        sender,
        info,
    };
    (session, connection)
}

impl AsyncConnection {
    /// A sender for this connection, usable from any task or thread.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The next frame; `None` once the connection has ended (after an
    /// `Err` with the reason if it ended abnormally). See [`Incoming`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a frame is taken only when this returns it.
    pub async fn next_frame(&mut self) -> Option<Result<IncomingFrame, DisconnectReason>> {
        self.incoming.next_frame().await
    }

    /// The incoming half.
    pub fn incoming(&mut self) -> &mut Incoming {
        &mut self.incoming
    }

    /// The two halves apart: dropping the [`Incoming`] then closes the
    /// connection gracefully.
    pub fn split(self) -> (Sender, Incoming) {
        (self.sender, self.incoming)
    }

    /// The peer's address: the client's as a PROXY header named it, when
    /// one did. `None` over a Unix socket.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.info.peer
    }

    /// This side's address, when known.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.info.local
    }

    /// The proxy the connection came through (PROXY protocol), if any.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.info.proxy
    }

    /// What is known of the connection: addresses, transport and, over
    /// TLS, what the handshake agreed on.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Asks the connection to close once what is queued has been sent.
    pub fn close(&self) {
        self.sender.close();
    }

    /// Why the connection ended, once it has.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.incoming.disconnect_reason()
    }
}

impl Stream for AsyncConnection {
    type Item = Result<IncomingFrame, DisconnectReason>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().incoming.poll_frame(cx)
    }
}
