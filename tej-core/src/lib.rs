//! `tej-core`: the TEJ protocol without I/O.
//!
//! TEJ is a full-duplex protocol over one TCP connection; each frame carries
//! any number of named files and one optional message (see [`wire`] for the
//! layout). This crate is the part every runtime shares:
//!
//! - [`decode`]: a resumable, zero-copy streaming [`Decoder`] that turns bytes
//!   into borrowed [`Event`]s, enforcing [`Limits`] the moment a length is read;
//! - [`encode`]: frame, file and message headers written into the caller's
//!   buffer, payloads left where they are (for vectored writes);
//! - with the `alloc` feature, the whole-frame model ([`Frame`],
//!   [`FrameBuilder`]) and the [`Assembler`] that builds frames from events.
//!
//! The crate is `#![no_std]` whatever the features, and opens no file,
//! socket or thread: its default build depends on `heapless` and `nom`
//! only. `alloc` brings in the allocator-backed types and `std` the
//! cross-thread [`Sender`] and the [`storage`] traits through which file
//! bodies reach a session; the I/O around it is in `tej-net`.
//!
//! ```
//! use tej_core::{Decoder, Event, FrameRef, FileRef, Limits, Status};
//!
//! // Encode into a fixed buffer: no allocator needed.
//! let files = [FileRef::new("hello.txt", b"hello world")];
//! let frame = FrameRef::new(Status::DEFAULT, &files, Some(b"hi"));
//! let mut wire = [0u8; 64];
//! let len = frame.encode_into(&mut wire).unwrap();
//! assert_eq!(len as u64, frame.encoded_len());
//!
//! // Decode it back, event by event, until the decoder wants more input.
//! let mut decoder = Decoder::new(Limits::default());
//! let mut input = &wire[..len];
//! let mut names = 0;
//! loop {
//!     let decoded = decoder.decode(input).unwrap();
//!     input = &input[decoded.consumed..];
//!     match decoded.event {
//!         Some(Event::FileStart { name, size }) => {
//!             assert_eq!((name, size), ("hello.txt", 11));
//!             names += 1;
//!         }
//!         Some(_) => {}
//!         None => break,
//!     }
//! }
//! assert_eq!(names, 1);
//! assert!(decoder.finish().is_ok());
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Builder-style setters for a struct's public fields, one a field:
/// `field(arg: Type)` becomes `pub const fn field(mut self, arg: Type) -> Self`,
/// documented as setting that field.
macro_rules! setters {
    ($($field:ident($arg:ident: $ty:ty);)*) => {
        $(
            #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
            pub const fn $field(mut self, $arg: $ty) -> Self {
                self.$field = $arg;
                self
            }
        )*
    };
}

pub mod decode;
pub mod encode;
pub mod error;
pub mod limits;
pub mod proxy;
pub mod wire;

#[cfg(feature = "alloc")]
pub mod assemble;
#[cfg(feature = "embedded-io")]
pub mod embedded;
#[cfg(feature = "alloc")]
pub mod frame;
#[cfg(feature = "alloc")]
pub mod session;
#[cfg(feature = "std")]
pub mod storage;

pub use decode::{Decoded, Decoder, Event, MessageFrame};
pub use encode::{FileRef, FrameRef};
pub use error::{DecodeError, EncodeError, Field, LimitKind};
pub use limits::Limits;
pub use proxy::{ProxyDecoder, ProxyError, ProxyHeader};
pub use wire::{Status, PROTOCOL_VERSION};

#[cfg(feature = "alloc")]
pub use assemble::{Assembled, Assembler, FileTarget};
#[cfg(feature = "alloc")]
pub use frame::{File, FileBody, Frame, FrameBuilder, FrameView};
#[cfg(feature = "std")]
pub use session::{BufferedSender, NotWritten, SendFuture, SendProgress, Sender, Written};
#[cfg(feature = "alloc")]
pub use session::{
    Connection, ConnectionInfo, DisconnectReason, FrameTimeout, Handler, SendError, Session,
    SessionConfig, TlsInfo, Traffic, Transport,
};

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
