//! The endpoint over [`embedded_io_async::Read`] +
//! [`embedded_io_async::Write`]: embassy-net's `TcpSocket`, a smoltcp socket
//! behind a small adapter, an async UART.
//!
//! What a firmware author writes to serve TEJ on embassy-net, whose
//! `TcpSocket` implements both traits: the lines of
//! `tej-examples/embassy-net/src/lib.rs`, compiled for thumbv7em in CI
//! against embassy-net 0.9 (features `tcp`, `proto-ipv4`,
//! `medium-ethernet`). Here `serve`, generic over the traits, compiles on
//! the host without embassy; the embassy-net lines are comments:
//!
//! ```no_run
//! use tej_core::embedded::asynch::Endpoint;
//! use tej_core::embedded::Error;
//! use tej_core::{Event, FrameRef, Limits, Status};
//!
//! // use embassy_net::tcp::TcpSocket;
//! // use embassy_net::Stack;
//! // use embassy_time::Duration;
//! // use static_cell::ConstStaticCell;
//! //
//! // /// The TCP port served.
//! // pub const PORT: u16 = 7000;
//! //
//! // // 10 KiB of RAM for the connection: the socket's receive and send buffers,
//! // // and the endpoint's.
//! // static RX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
//! // static TX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
//! // static BUFFER: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);
//! //
//! // /// Serves TEJ on port [`PORT`] of `stack`, one connection at a time, for
//! // /// ever; the firmware spawns it once the stack is up.
//! // pub async fn run(stack: Stack<'_>) -> ! {
//! //     let (rx, tx, buffer) = (RX.take(), TX.take(), BUFFER.take());
//! //     loop {
//! //         let mut socket = TcpSocket::new(stack, rx, tx);
//! //         // A peer silent this long is dropped, so that the next can connect.
//! //         socket.set_timeout(Some(Duration::from_secs(30)));
//! //         if socket.accept(PORT).await.is_ok() {
//! //             // Ends when the peer closes, sends what is not TEJ or goes away.
//! //             let _ = serve(&mut socket, buffer).await;
//! //         }
//! //         socket.close();
//! //         let _ = socket.flush().await;
//! //     }
//! // }
//!
//! /// Answers every frame with the number of file bytes it carried.
//! async fn serve<S>(socket: S, buffer: &mut [u8]) -> Result<(), Error<S::Error>>
//! where
//!     S: embedded_io_async::Read + embedded_io_async::Write,
//! {
//!     let limits = Limits::DEFAULT.max_file_count(8).max_name_len(64);
//!     let mut endpoint = Endpoint::new(socket, buffer, limits);
//!     let mut received = 0u64;
//!     while let Some(event) = endpoint.next_event().await? {
//!         match event {
//!             Event::FileData(piece) => received += piece.len() as u64,
//!             Event::FrameEnd => {
//!                 let mut text = [0u8; 20];
//!                 let text = decimal(received, &mut text);
//!                 let answer = FrameRef::new(Status::DEFAULT, &[], Some(text));
//!                 endpoint.send(&answer).await?;
//!                 received = 0;
//!             }
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//!
//! /// `n` in decimal ASCII, at the end of `out`.
//! fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
//!     let mut at = out.len();
//!     loop {
//!         at -= 1;
//!         out[at] = b'0' + (n % 10) as u8;
//!         n /= 10;
//!         if n == 0 {
//!             return &out[at..];
//!         }
//!     }
//! }
//! ```

use embedded_io_async::{Read, Write};

use super::{check_names, piece, Error, FrameStore, Inbox, PING};
use crate::{Event, FrameRef, Limits, Status};

endpoint_common! {
    /// A TEJ endpoint over one async stream, both directions: the same rules
    /// as [`blocking::Endpoint`](super::blocking::Endpoint), every read and
    /// write awaited.
}

impl<T: Read + Write> Endpoint<'_, T> {
    /// The next event from the peer, reading as the decoder needs bytes;
    /// `None` when the peer closed the stream between frames.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] from the reader (or from the writer, answering a
    /// ping); [`Error::Decode`] for bytes that are not TEJ, beyond the
    /// limits, or a stream that ended inside a frame.
    pub async fn next_event(&mut self) -> Result<Option<Event<'_>>, Error<T::Error>> {
        let found = loop {
            if let Some(found) = self.inbox.step()? {
                break found;
            }
            let len = self.io.read(self.inbox.space()?).await.map_err(Error::Io)?;
            if len == 0 {
                self.inbox.decoder.finish()?;
                return Ok(None);
            }
            self.inbox.filled(len);
        };
        if self.inbox.owes_ping(found) {
            write_all(&mut self.io, &PING).await?;
        }
        Ok(Some(self.inbox.event(found)))
    }

    /// Receives the next whole frame into `store`; its status, or `None`
    /// when the peer closed the stream between frames.
    ///
    /// # Errors
    ///
    /// As [`next_event`](Self::next_event), and [`Error::Store`] for a frame
    /// that does not fit `store`.
    pub async fn receive_frame<const FILES: usize>(
        &mut self,
        store: &mut FrameStore<'_, FILES>,
    ) -> Result<Option<Status>, Error<T::Error>> {
        while let Some(event) = self.next_event().await? {
            if store.push(&event)? {
                return Ok(Some(store.status()));
            }
        }
        Ok(None)
    }

    /// Sends `frame`, each header and payload straight from where it is.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for a name over 65535 bytes, before anything is
    /// written; [`Error::Io`] or [`Error::WriteZero`] from the writer.
    pub async fn send(&mut self, frame: &FrameRef<'_>) -> Result<(), Error<T::Error>> {
        check_names(frame)?;
        let mut index = 0;
        while let Some(piece) = piece(frame, index) {
            write_all(&mut self.io, piece.bytes()).await?;
            index += 1;
        }
        Ok(())
    }

    /// Flushes the writer.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] from the writer.
    pub async fn flush(&mut self) -> Result<(), Error<T::Error>> {
        self.io.flush().await.map_err(Error::Io)
    }
}

/// Writes all of `bytes`; a writer that takes none is an error, not a panic.
async fn write_all<T: Write>(io: &mut T, mut bytes: &[u8]) -> Result<(), Error<T::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes).await.map_err(Error::Io)? {
            0 => return Err(Error::WriteZero),
            len => bytes = bytes.get(len..).unwrap_or_default(),
        }
    }
    Ok(())
}
