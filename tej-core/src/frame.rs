//! The whole-frame model: [`Frame`], [`File`], [`FrameBuilder`].

use alloc::string::String;
use alloc::vec::Vec;

use bytes::{BufMut, Bytes};

use crate::encode::{checked_name_len, file_header_len, frame_header, message_header};
use crate::error::EncodeError;
use crate::wire::{Status, FRAME_HEADER_LEN, MESSAGE_HEADER_LEN, PROTOCOL_VERSION};

/// Where a file's bytes are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FileBody {
    /// In memory.
    Memory(Bytes),
    /// Handed elsewhere as it arrived (a receiver's writer, or discarded):
    /// only the length is known here.
    Delivered {
        /// Its length in bytes.
        len: u64,
    },
    /// Somewhere a [`FileSource`](crate::storage::FileSource) reads it
    /// from: a received file spooled to disk, or a file to send that a
    /// session streams in chunks.
    #[cfg(feature = "std")]
    Source(alloc::sync::Arc<dyn crate::storage::FileSource>),
}

impl PartialEq for FileBody {
    /// Bodies in memory by their bytes, delivered ones by length, sources by
    /// identity or by the same path and length.
    fn eq(&self, other: &FileBody) -> bool {
        match (self, other) {
            (FileBody::Memory(a), FileBody::Memory(b)) => a == b,
            (FileBody::Delivered { len: a }, FileBody::Delivered { len: b }) => a == b,
            #[cfg(feature = "std")]
            (FileBody::Source(a), FileBody::Source(b)) => {
                alloc::sync::Arc::ptr_eq(a, b)
                    || (a.path().is_some() && a.path() == b.path() && a.len() == b.len())
            }
            _ => false,
        }
    }
}

impl Eq for FileBody {}

impl FileBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            FileBody::Memory(data) => data.len() as u64,
            FileBody::Delivered { len } => *len,
            #[cfg(feature = "std")]
            FileBody::Source(source) => source.len(),
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named file of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The name as sent: UTF-8, not a path to trust.
    pub name: String,
    /// The bytes, in memory or on disk.
    pub body: FileBody,
}

impl File {
    /// A file held in memory.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        File {
            name: name.into(),
            body: FileBody::Memory(data.into()),
        }
    }

    /// A file whose bytes `source` gives when its frame is sent (a file on
    /// disk: `tej_net::file::open`).
    #[cfg(feature = "std")]
    pub fn from_source(
        name: impl Into<String>,
        source: impl crate::storage::FileSource + 'static,
    ) -> Self {
        File {
            name: name.into(),
            body: FileBody::Source(alloc::sync::Arc::new(source)),
        }
    }

    /// The data length in bytes.
    pub fn len(&self) -> u64 {
        self.body.len()
    }

    /// Whether the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The bytes, if they are in memory.
    pub fn data(&self) -> Option<&Bytes> {
        match &self.body {
            FileBody::Memory(data) => Some(data),
            _ => None,
        }
    }

    /// Where the bytes are on disk, if they are.
    #[cfg(feature = "std")]
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.body {
            FileBody::Source(source) => source.path(),
            _ => None,
        }
    }
}

/// A whole frame: status, version, files and an optional message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The custom status.
    pub status: Status,
    /// The protocol version byte.
    pub version: u8,
    /// The files, in wire order.
    pub files: Vec<File>,
    /// The message. On the wire a zero length means "no message", so
    /// `Some` of an empty message is received as `None`.
    pub message: Option<Bytes>,
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new(Status::DEFAULT)
    }
}

impl Frame {
    /// An empty version-1 frame with `status`.
    pub fn new(status: Status) -> Self {
        Frame {
            status,
            version: PROTOCOL_VERSION,
            files: Vec::new(),
            message: None,
        }
    }

    /// A frame with status 0 carrying only `message`.
    pub fn message(message: impl Into<Bytes>) -> Self {
        FrameBuilder::new(Status::DEFAULT).message(message).build()
    }

    /// The empty status-2 frame the reference sends as a ping.
    pub fn ping() -> Self {
        Frame::new(Status::PING)
    }

    /// Whether this frame is a ping (status 2).
    pub fn is_ping(&self) -> bool {
        self.status.is_ping()
    }

    /// The exact number of bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|file| file_header_len(&file.name) as u64 + file.len())
            .sum();
        let message = self
            .message
            .as_ref()
            .map_or(0, |message| message.len() as u64);
        (FRAME_HEADER_LEN + MESSAGE_HEADER_LEN) as u64 + files + message
    }

    /// Appends the encoded frame to `out` (a `Vec<u8>`, a `BytesMut`, ...).
    ///
    /// # Errors
    ///
    /// [`EncodeError::NameTooLong`] for a name over 65535 bytes,
    /// [`EncodeError::BodyNotInMemory`] for a file that must be streamed by a
    /// session. On error `out` is left as it was.
    pub fn encode_to(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        for file in &self.files {
            checked_name_len(&file.name)?;
            if file.data().is_none() {
                return Err(EncodeError::BodyNotInMemory);
            }
        }
        out.put_slice(&frame_header(
            self.status,
            self.version,
            self.files.len() as u64,
        ));
        for file in &self.files {
            let data = file.data().map(|data| &data[..]).unwrap_or_default();
            out.put_slice(&(file.name.len() as u16).to_be_bytes());
            out.put_slice(file.name.as_bytes());
            out.put_slice(&(data.len() as u64).to_be_bytes());
            out.put_slice(data);
        }
        let message = self.message.as_deref().unwrap_or_default();
        out.put_slice(&message_header(message.len() as u64));
        out.put_slice(message);
        Ok(())
    }

    /// The encoded frame in a new vector.
    ///
    /// # Errors
    ///
    /// As [`encode_to`](Self::encode_to).
    pub fn encode_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(usize::try_from(self.encoded_len()).unwrap_or(0));
        self.encode_to(&mut out)?;
        Ok(out)
    }
}

impl From<crate::encode::FrameRef<'_>> for Frame {
    /// An owned copy of a borrowed frame: its files in memory, and an empty
    /// message as "no message" (the two encode alike).
    fn from(frame: crate::encode::FrameRef<'_>) -> Self {
        Frame {
            status: frame.status,
            version: frame.version,
            files: frame
                .files
                .iter()
                .map(|file| File::new(file.name, Bytes::copy_from_slice(file.data)))
                .collect(),
            message: frame
                .message
                .filter(|message| !message.is_empty())
                .map(Bytes::copy_from_slice),
        }
    }
}

/// Builds a [`Frame`] step by step, like the reference's `BytesBuilder`.
///
/// ```
/// use tej_core::{FrameBuilder, Status};
///
/// let frame = FrameBuilder::new(Status::DEFAULT)
///     .file("file.txt", &b"hello world\n"[..])
///     .message("Sending from client")
///     .build();
/// let wire = frame.encode_to_vec().unwrap();
/// assert_eq!(wire.len() as u64, frame.encoded_len());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FrameBuilder {
    frame: Frame,
}

impl FrameBuilder {
    /// A builder for a version-1 frame with `status`.
    pub fn new(status: Status) -> Self {
        FrameBuilder {
            frame: Frame::new(status),
        }
    }

    /// Sets the protocol version byte (1 unless told otherwise).
    pub fn version(mut self, version: u8) -> Self {
        self.frame.version = version;
        self
    }

    /// Adds a file held in memory.
    pub fn file(mut self, name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.frame.files.push(File::new(name, data));
        self
    }

    /// Adds a file of any body.
    pub fn add_file(mut self, file: File) -> Self {
        self.frame.files.push(file);
        self
    }

    /// Sets the message. An empty message is no message: the wire cannot
    /// tell them apart.
    pub fn message(mut self, message: impl Into<Bytes>) -> Self {
        let message = message.into();
        self.frame.message = (!message.is_empty()).then_some(message);
        self
    }

    /// The frame.
    pub fn build(self) -> Frame {
        self.frame
    }
}

/// A frame without files that arrived whole in one read, lent to
/// [`Handler::received_view`](crate::Handler::received_view) for the length
/// of the call: its message is a view of the bytes read, with nothing
/// allocated or reference-counted for it.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub(crate) status: Status,
    pub(crate) version: u8,
    /// Empty for "no message".
    pub(crate) message: &'a [u8],
    /// The shared buffer `message` is part of, if the input was one.
    pub(crate) shared: Option<&'a Bytes>,
}

impl<'a> FrameView<'a> {
    /// The frame `whole` decoded from `shared`'s bytes (if shared).
    #[inline(always)]
    pub(crate) fn of(whole: &crate::decode::MessageFrame<'a>, shared: Option<&'a Bytes>) -> Self {
        FrameView {
            status: whole.status,
            version: whole.version,
            message: whole.message,
            shared,
        }
    }

    /// The custom status.
    #[inline]
    pub fn status(&self) -> Status {
        self.status
    }

    /// The protocol version byte, as sent.
    #[inline]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The message; `None` for "no message" (a length of 0), as
    /// [`Frame::message`] says it.
    #[inline]
    pub fn message(&self) -> Option<&'a [u8]> {
        (!self.message.is_empty()).then_some(self.message)
    }

    /// The frame as an owned [`Frame`]: its message a slice of the buffer
    /// read into when that is shared (`Session::handle_bytes`, as
    /// `tej_net`'s drive reads), else a copy.
    // Inlined so that a frame is built where the handler receives it, as
    // the session's delivery is.
    #[inline(always)]
    pub fn to_frame(&self) -> Frame {
        let message = if self.message.is_empty() {
            None
        } else if let Some(shared) = self.shared {
            Some(shared.slice_ref(self.message))
        } else {
            // One allocation each: faster than copying into a chunk shared
            // by many messages (see BENCHMARKS.md, "the receive path").
            Some(Bytes::copy_from_slice(self.message))
        };
        Frame {
            status: self.status,
            version: self.version,
            files: Vec::new(),
            message,
        }
    }
}
