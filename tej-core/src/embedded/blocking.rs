//! The endpoint over blocking [`embedded_io::Read`] + [`embedded_io::Write`]:
//! a UART, or any stream a firmware reads until bytes come.

use embedded_io::{Read, Write};

use super::{check_names, piece, Error, FrameStore, Inbox, PING};
use crate::{Event, FrameRef, Limits, Status};

endpoint_common! {
    /// A TEJ endpoint over one blocking stream, both directions.
    ///
    /// ```no_run
    /// use tej_core::embedded::blocking::Endpoint;
    /// use tej_core::{Event, FrameRef, Limits, Status};
    ///
    /// fn serve<T: embedded_io::Read + embedded_io::Write>(uart: T) -> Result<(), tej_core::embedded::Error<T::Error>> {
    ///     let mut buffer = [0u8; 256];
    ///     let mut endpoint = Endpoint::new(uart, &mut buffer, Limits::DEFAULT.max_file_count(4));
    ///     endpoint.send(&FrameRef::new(Status::DEFAULT, &[], Some(b"ready")))?;
    ///     let mut bytes = 0;
    ///     while let Some(event) = endpoint.next_event()? {
    ///         match event {
    ///             Event::FileData(piece) => bytes += piece.len(),
    ///             Event::FrameEnd => endpoint.send(&FrameRef::new(Status::DEFAULT, &[], Some(b"got it")))?,
    ///             _ => {}
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
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
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, Error<T::Error>> {
        let found = loop {
            if let Some(found) = self.inbox.step()? {
                break found;
            }
            let len = self.io.read(self.inbox.space()?).map_err(Error::Io)?;
            if len == 0 {
                self.inbox.decoder.finish()?;
                return Ok(None);
            }
            self.inbox.filled(len);
        };
        if self.inbox.owes_ping(found) {
            write_all(&mut self.io, &PING)?;
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
    pub fn receive_frame<const FILES: usize>(
        &mut self,
        store: &mut FrameStore<'_, FILES>,
    ) -> Result<Option<Status>, Error<T::Error>> {
        while let Some(event) = self.next_event()? {
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
    pub fn send(&mut self, frame: &FrameRef<'_>) -> Result<(), Error<T::Error>> {
        check_names(frame)?;
        let mut index = 0;
        while let Some(piece) = piece(frame, index) {
            write_all(&mut self.io, piece.bytes())?;
            index += 1;
        }
        Ok(())
    }

    /// Flushes the writer.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] from the writer.
    pub fn flush(&mut self) -> Result<(), Error<T::Error>> {
        self.io.flush().map_err(Error::Io)
    }
}

/// Writes all of `bytes`; a writer that takes none is an error, not a panic.
fn write_all<T: Write>(io: &mut T, mut bytes: &[u8]) -> Result<(), Error<T::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes).map_err(Error::Io)? {
            0 => return Err(Error::WriteZero),
            len => bytes = bytes.get(len..).unwrap_or_default(),
        }
    }
    Ok(())
}
