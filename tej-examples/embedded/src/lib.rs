//! TEJ on a microcontroller: the echo that `tej-firmware` runs, with no
//! allocator, no `std` and fixed buffers only.
//!
//! The protocol work is `tej-core`'s blocking embedded-io endpoint
//! ([`Endpoint`]), which reads into a buffer the caller lends, answers
//! pings, and collects each frame into a [`FrameStore`] over another buffer
//! the caller lends (a `static` on the firmware, so that its size shows in
//! `.bss`). On top of it, [`run`] is the firmware's whole behaviour over any
//! [`embedded_io`] stream: a [`READY`] frame at boot, an [`ECHO`] of every
//! frame received, [`BYE`] and a clean exit after a [`QUIT`], and a
//! [`REFUSED`] frame naming the error, then a failing exit, for anything
//! else.
//!
//! The decoder's [`LIMITS`] are sized to the store, so whatever would not
//! fit (too many files, a long name, a large file or message) is refused as
//! a [`DecodeError::LimitExceeded`](tej_core::DecodeError::LimitExceeded)
//! the moment its length is read, before a single byte of it is stored.
//!
//! ```
//! use tej_core::embedded::blocking::Endpoint;
//! use tej_core::embedded::FrameStore;
//! use tej_embedded_example::{run, Exit, LIMITS, MAX_FILES, STORAGE};
//!
//! // An echo over a stream that carries one frame of status 3, then ends.
//! struct Stream(&'static [u8], Vec<u8>);
//! impl embedded_io::ErrorType for Stream {
//!     type Error = core::convert::Infallible;
//! }
//! impl embedded_io::Read for Stream {
//!     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
//!         embedded_io::Read::read(&mut self.0, buf)
//!     }
//! }
//! impl embedded_io::Write for Stream {
//!     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
//!         self.1.extend_from_slice(buf);
//!         Ok(buf.len())
//!     }
//!     fn flush(&mut self) -> Result<(), Self::Error> {
//!         Ok(())
//!     }
//! }
//!
//! let quit = &[0x83, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
//! let mut buffer = [0u8; 16];
//! let mut storage = [0u8; STORAGE];
//! let mut store = FrameStore::<MAX_FILES>::new(&mut storage);
//! let mut endpoint = Endpoint::new(Stream(quit, Vec::new()), &mut buffer, LIMITS);
//! let exit = run(&mut endpoint, &mut store, |_| {});
//! assert_eq!((exit.frames, exit.how), (0, Exit::Success));
//! // READY at boot, then BYE.
//! assert_eq!(endpoint.into_inner().1[0], 0x80 | 5);
//! ```
//!
//! `tej-examples/firmware` runs it on a Cortex-M4 (QEMU's `mps2-an386`)
//! over UART0; this crate's own tests run it on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt::Write as _;

use embedded_io::{Read, Write};
use heapless::String;
use tej_core::embedded::blocking::Endpoint;
use tej_core::embedded::{Error, FrameStore};
use tej_core::{FrameRef, Limits, Status};

/// Most files in one received frame.
pub const MAX_FILES: usize = 4;
/// Longest file name received, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest file received, in bytes.
pub const MAX_FILE_LEN: usize = 1024;
/// Largest message received, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Bytes of the [`FrameStore`] that holds the largest frame [`LIMITS`] allow.
pub const STORAGE: usize =
    FrameStore::<'static, MAX_FILES>::storage_for(MAX_NAME_LEN, MAX_FILE_LEN, MAX_MESSAGE_LEN);

/// The limits that match a [`FrameStore`] of [`STORAGE`] bytes.
pub const LIMITS: Limits = FrameStore::<'static, MAX_FILES>::limits(
    Limits::DEFAULT,
    MAX_NAME_LEN as u16,
    MAX_FILE_LEN as u64,
    MAX_MESSAGE_LEN as u64,
);

/// A status from a literal, checked at compile time.
const fn status(value: u8) -> Status {
    match Status::new(value) {
        Ok(status) => status,
        Err(_) => panic!("custom status out of range"),
    }
}

/// A frame of this status asks the echo to answer [`BYE`] and stop.
pub const QUIT: Status = status(3);
/// The answer to [`QUIT`], sent just before a successful exit.
pub const BYE: Status = status(4);
/// The frame sent at boot: the echo is listening.
pub const READY: Status = status(5);
/// The answer to every other frame but a ping: the same files and message.
pub const ECHO: Status = status(6);
/// Sent when the input cannot be taken; its message names the error.
pub const REFUSED: Status = status(7);

/// The message of the [`READY`] frame.
pub const READY_MESSAGE: &[u8] = b"tej-firmware ready";
/// The message of the [`BYE`] frame.
pub const BYE_MESSAGE: &[u8] = b"tej-firmware bye";

/// Longest [`REFUSED`] message: room for any error's text.
pub const MAX_REFUSAL_LEN: usize = 192;

/// How the echo ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit<E> {
    /// A [`QUIT`] frame was answered with [`BYE`].
    Success,
    /// The peer closed the stream between frames.
    Closed,
    /// The input was refused with a [`REFUSED`] frame naming this error.
    Refused(Error<E>),
    /// The stream failed.
    Failed(Error<E>),
}

/// What [`run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ran<E> {
    /// How it ended.
    pub how: Exit<E>,
    /// How many frames it echoed.
    pub frames: usize,
}

/// Runs the echo over `endpoint` until it ends, receiving each frame into
/// `store`; `on_echo` sees every frame just echoed. After
/// [`Exit::Refused`], read what the peer still sends before closing (the
/// refusal is lost if the connection is reset with input unread).
pub fn run<T: Read + Write>(
    endpoint: &mut Endpoint<'_, T>,
    store: &mut FrameStore<'_, MAX_FILES>,
    on_echo: impl FnMut(&FrameStore<'_, MAX_FILES>),
) -> Ran<T::Error> {
    let mut frames = 0;
    let how = match send(endpoint, READY, READY_MESSAGE) {
        Ok(()) => echo(endpoint, store, on_echo, &mut frames),
        Err(error) => Exit::Failed(error),
    };
    let _ = endpoint.flush();
    Ran { how, frames }
}

/// Echoes frame after frame, counting them in `frames`, until the end.
fn echo<T: Read + Write>(
    endpoint: &mut Endpoint<'_, T>,
    store: &mut FrameStore<'_, MAX_FILES>,
    mut on_echo: impl FnMut(&FrameStore<'_, MAX_FILES>),
    frames: &mut usize,
) -> Exit<T::Error> {
    loop {
        match endpoint.receive_frame(store) {
            // The endpoint answered the ping.
            Ok(Some(Status::PING)) => {}
            Ok(Some(QUIT)) => {
                return match send(endpoint, BYE, BYE_MESSAGE) {
                    Ok(()) => Exit::Success,
                    Err(error) => Exit::Failed(error),
                }
            }
            Ok(Some(_)) => {
                let files = store.file_refs();
                let echoed = FrameRef::new(ECHO, &files, store.message());
                if let Err(error) = endpoint.send(&echoed) {
                    return Exit::Failed(error);
                }
                *frames += 1;
                on_echo(store);
            }
            Ok(None) => return Exit::Closed,
            Err(error @ (Error::Decode(_) | Error::Store(_))) => {
                let mut text: String<MAX_REFUSAL_LEN> = String::new();
                // Cut short only if an error's text outgrew the buffer.
                let _ = write!(text, "refused: {error}");
                return match send(endpoint, REFUSED, text.as_bytes()) {
                    Ok(()) => Exit::Refused(error),
                    Err(error) => Exit::Failed(error),
                };
            }
            Err(error) => return Exit::Failed(error),
        }
    }
}

/// Sends a frame with no files and `message`.
fn send<T: Read + Write>(
    endpoint: &mut Endpoint<'_, T>,
    status: Status,
    message: &[u8],
) -> Result<(), Error<T::Error>> {
    endpoint.send(&FrameRef::new(status, &[], Some(message)))
}

#[cfg(test)]
mod tests;
