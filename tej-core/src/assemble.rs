//! Whole frames from the decoder's events, with each file's bytes going
//! where the receiver chooses: memory, nowhere, a writer or a spool file.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use crate::decode::{Decoder, Event};
use crate::error::{DecodeError, LimitKind};
use crate::frame::{File, FileBody, Frame, FrameView};
use crate::limits::Limits;
use crate::wire::Status;

/// The most a buffer is reserved ahead of the bytes that fill it. Beyond
/// this the buffer grows only as data actually arrives, so a peer that
/// announces a large length and sends nothing costs little.
const MAX_RESERVE_AHEAD: u64 = 1 << 20;
/// Messages that arrive in pieces are received into chunks of at least
/// this size and split off as each completes: one allocation serves many
/// small messages.
const MESSAGE_CHUNK_LEN: usize = 8 * 1024;
/// The most file slots reserved ahead from an announced file count.
const MAX_FILES_RESERVED_AHEAD: u64 = 64;

/// The error of a file destination: a local storage failure.
#[cfg(feature = "std")]
pub use crate::storage::StorageError;
/// The error of a file destination; without `std` there is none.
#[cfg(not(feature = "std"))]
pub type StorageError = core::convert::Infallible;

/// Where a received file's bytes go, chosen per file when its header arrives.
#[non_exhaustive]
pub enum FileTarget {
    /// Into memory: the frame's [`File`] holds the bytes.
    Memory,
    /// Nowhere: the bytes are dropped, the frame reports only the length.
    Discard,
    /// Into this writer as they arrive, flushed when the file's last byte
    /// arrived; the frame reports only the length. A file cut short leaves
    /// in the writer what arrived of it.
    #[cfg(feature = "std")]
    Writer(alloc::boxed::Box<dyn std::io::Write + Send>),
    /// Into this sink (a spool directory: `tej_net::spool::to_dir`), which
    /// also says what the frame reports; see [`FileSink`](crate::storage::FileSink)
    /// for when each of its methods runs.
    #[cfg(feature = "std")]
    Sink(alloc::boxed::Box<dyn crate::storage::FileSink>),
}

impl core::fmt::Debug for FileTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileTarget::Memory => f.write_str("Memory"),
            FileTarget::Discard => f.write_str("Discard"),
            #[cfg(feature = "std")]
            FileTarget::Writer(_) => f.write_str("Writer(..)"),
            #[cfg(feature = "std")]
            FileTarget::Sink(_) => f.write_str("Sink(..)"),
        }
    }
}

/// What one call to [`Assembler::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes to discard"]
pub struct Assembled {
    /// How many bytes of the input were used.
    pub consumed: usize,
    /// A frame, if one completed. When `None`, all input was consumed.
    pub frame: Option<Frame>,
}

/// Decodes a byte stream into whole in-memory [`Frame`]s under [`Limits`].
///
/// A zero-length message is reported as `None` ("no message"), as the
/// reference implementation does. Memory grows with the bytes the peer
/// actually sends (within the limits), never with what it announces.
///
/// ```
/// use tej_core::{Assembler, Frame, Limits};
///
/// let wire = Frame::message("Hello").encode_to_vec().unwrap();
/// let mut assembler = Assembler::new(Limits::default());
/// let assembled = assembler.decode(&wire).unwrap();
/// assert_eq!(assembled.consumed, wire.len());
/// assert_eq!(assembled.frame.unwrap().message.as_deref(), Some(&b"Hello"[..]));
/// ```
#[derive(Debug)]
pub struct Assembler {
    decoder: Decoder,
    partial: PartialFrame,
}

impl Assembler {
    /// An assembler at the start of a stream, enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Assembler {
            decoder: Decoder::new(limits),
            partial: PartialFrame::default(),
        }
    }

    /// The underlying decoder, for its position and limits.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Consumes `input` until a frame completes or the input runs out.
    ///
    /// # Errors
    ///
    /// The decoder's [`DecodeError`]; the stream is then unusable.
    // Inlined so that a small frame is built where the caller uses it:
    // returned through a call, it is stored and reloaded at a stall.
    #[inline]
    pub fn decode(&mut self, input: &[u8]) -> Result<Assembled, DecodeError> {
        if !self.partial.is_started() {
            if let Some(whole) = self.decoder.decode_message_frame(input) {
                return Ok(Assembled {
                    consumed: whole.consumed,
                    frame: Some(FrameView::of(&whole, None).to_frame()),
                });
            }
        }
        let mut consumed = 0;
        loop {
            let decoded = self.decoder.decode(&input[consumed..])?;
            consumed += decoded.consumed;
            let Some(event) = decoded.event else {
                return Ok(Assembled {
                    consumed,
                    frame: None,
                });
            };
            // In-memory files have no storage to fail.
            if let Ok(Some(frame)) = self
                .partial
                .apply(event, None, None, &mut |_, _, _| FileTarget::Memory)
            {
                return Ok(Assembled {
                    consumed,
                    frame: Some(frame),
                });
            }
        }
    }

    /// Call at the end of the stream: `Ok` if it ended between frames.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedEof`] if a frame was cut short.
    pub fn finish(&self) -> Result<(), DecodeError> {
        self.decoder.finish()
    }
}

/// Where the current file's bytes are going.
enum Destination {
    /// Into memory, reserved as the bytes arrive (nothing until then).
    Memory {
        buffer: Vec<u8>,
        size: u64,
    },
    /// Into memory, a slice of the shared input: the whole body arrived in one piece.
    Shared(Bytes),
    Count(u64),
    /// Into a sink, started (its `start` run) with the first bytes or at
    /// the end, not at the header: a driver told that the sink blocks
    /// (`Session::does_file_io`) can move those steps off its async
    /// threads first.
    #[cfg(feature = "std")]
    Sink {
        sink: alloc::boxed::Box<dyn crate::storage::FileSink>,
        /// The announced size, until `start` ran.
        unstarted: Option<u64>,
    },
}

impl Destination {
    fn open(target: FileTarget, size: u64) -> Destination {
        match target {
            FileTarget::Memory => Destination::Memory {
                buffer: Vec::new(),
                size,
            },
            FileTarget::Discard => Destination::Count(0),
            #[cfg(feature = "std")]
            FileTarget::Writer(writer) => Destination::Sink {
                sink: alloc::boxed::Box::new(crate::storage::WriterSink::new(writer)),
                unstarted: Some(size),
            },
            #[cfg(feature = "std")]
            FileTarget::Sink(sink) => Destination::Sink {
                sink,
                unstarted: Some(size),
            },
        }
    }

    /// Runs a sink's `start` if it has not run yet. A sink that failed to
    /// start is abandoned with the frame.
    #[cfg(feature = "std")]
    fn start(&mut self, name: &str) -> Result<(), StorageError> {
        if let Destination::Sink { sink, unstarted } = self {
            if let Some(size) = unstarted.take() {
                sink.start(name, size)?;
            }
        }
        Ok(())
    }

    /// Takes `data`, a piece of the input of file `name`, of which `shared`
    /// (if any) is a shared copy: slices of it are kept instead of copies.
    // Without `std` there is no sink to name the file to.
    #[cfg_attr(not(feature = "std"), allow(unused_variables))]
    fn write(
        &mut self,
        name: &str,
        data: &[u8],
        shared: Option<&Bytes>,
    ) -> Result<(), StorageError> {
        #[cfg(feature = "std")]
        self.start(name)?;
        match self {
            Destination::Memory { buffer, size } => match shared {
                Some(shared) if buffer.is_empty() && data.len() as u64 == *size => {
                    *self = Destination::Shared(shared.slice_ref(data));
                }
                _ => {
                    if buffer.is_empty() {
                        buffer.reserve((*size).min(MAX_RESERVE_AHEAD) as usize);
                    }
                    buffer.extend_from_slice(data);
                }
            },
            // The decoder gives a body no bytes past its announced size.
            Destination::Shared(_) => {}
            Destination::Count(len) => *len += data.len() as u64,
            #[cfg(feature = "std")]
            Destination::Sink { sink, .. } => match shared {
                Some(shared) => sink.write_bytes(shared.slice_ref(data))?,
                None => sink.write(data)?,
            },
        }
        Ok(())
    }
}

/// Why the frame being assembled cannot go on.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// A file's destination failed.
    Storage(StorageError),
    /// A file or message would exceed the bound of where it goes (the
    /// memory bounds, or the stored ones): `value` is the announced size
    /// or the frame's running total.
    Limit {
        limit: LimitKind,
        value: u64,
        max: u64,
    },
}

impl From<StorageError> for ApplyError {
    fn from(error: StorageError) -> Self {
        ApplyError::Storage(error)
    }
}

/// The frame being assembled. Dropping it part-way removes the files it
/// spooled: a frame that never completed is never reported.
#[derive(Default)]
pub(crate) struct PartialFrame {
    frame: Option<Frame>,
    file: Option<(String, Destination)>,
    /// The sinks of this frame's finished files, with each file's index in
    /// the frame, kept until the frame is whole: then committed, or
    /// abandoned if it never is.
    #[cfg(feature = "std")]
    landed: Vec<(usize, alloc::boxed::Box<dyn crate::storage::FileSink>)>,
    /// The message so far, copied (chunks shared by many small messages).
    message: BytesMut,
    /// The message, when it arrived whole in a shared input: a slice of it.
    message_shared: Option<Bytes>,
    /// The announced length of the message being received.
    message_size: u64,
    /// Announced bytes of this frame going to memory, and elsewhere.
    in_memory: u64,
    stored: u64,
}

/// `total + size` if it stays within `max`, else the error of `limit`.
fn add_within(total: u64, size: u64, limit: LimitKind, max: u64) -> Result<u64, ApplyError> {
    let value = total.saturating_add(size);
    if value > max {
        return Err(ApplyError::Limit { limit, value, max });
    }
    Ok(value)
}

impl core::fmt::Debug for PartialFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PartialFrame")
            .field(
                "files_done",
                &self.frame.as_ref().map(|frame| frame.files.len()),
            )
            .field("file", &self.file.as_ref().map(|(name, _)| name))
            .field("message_len", &self.message.len())
            .finish()
    }
}

impl PartialFrame {
    /// Whether the file being received goes to a sink whose writes may
    /// block (a writer, a spool file).
    pub(crate) fn is_storing(&self) -> bool {
        #[cfg(feature = "std")]
        return matches!(&self.file, Some((_, Destination::Sink { sink, .. })) if sink.blocks());
        #[cfg(not(feature = "std"))]
        false
    }

    /// Whether a file's body is being received.
    pub(crate) fn in_file(&self) -> bool {
        self.file.is_some()
    }

    /// Whether a frame is in progress.
    pub(crate) fn is_started(&self) -> bool {
        self.frame.is_some()
    }

    /// Bytes of the frame being assembled held in memory: finished files'
    /// names and in-memory bodies, the current file's, the message so far.
    pub(crate) fn memory_len(&self) -> usize {
        let done: usize = self.frame.as_ref().map_or(0, |frame| {
            frame
                .files
                .iter()
                .map(|file| {
                    file.name.len()
                        + match &file.body {
                            FileBody::Memory(data) => data.len(),
                            _ => 0,
                        }
                })
                .sum()
        });
        let current = self.file.as_ref().map_or(0, |(name, destination)| {
            name.len()
                + match destination {
                    Destination::Memory { buffer, .. } => buffer.len(),
                    Destination::Shared(data) => data.len(),
                    _ => 0,
                }
        });
        let message = self.message.len() + self.message_shared.as_ref().map_or(0, Bytes::len);
        done + current + message
    }

    /// Takes one event, a piece of the input of which `shared` (if any) is
    /// a shared copy; returns the frame it completes, if any. `choose`
    /// picks each file's target from its name, announced size and index.
    /// With `limits`, each file is checked against the bound of where it
    /// goes (memory or stored) and the message against the frame's memory
    /// bound; without, the decoder's own checks are all there is.
    #[inline]
    pub(crate) fn apply(
        &mut self,
        event: Event<'_>,
        shared: Option<&Bytes>,
        limits: Option<&Limits>,
        choose: &mut dyn FnMut(&str, u64, usize) -> FileTarget,
    ) -> Result<Option<Frame>, ApplyError> {
        match event {
            Event::FrameStart {
                status,
                version,
                file_count,
            } => {
                let mut started = Frame::new(status);
                started.version = version;
                started.files =
                    Vec::with_capacity(file_count.min(MAX_FILES_RESERVED_AHEAD) as usize);
                self.frame = Some(started);
                self.in_memory = 0;
                self.stored = 0;
            }
            Event::FileStart { name, size } => {
                let index = self.frame.as_ref().map_or(0, |frame| frame.files.len());
                let target = choose(name, size, index);
                if let Some(limits) = limits {
                    self.count(&target, size, limits)?;
                }
                self.file = Some((String::from(name), Destination::open(target, size)));
            }
            Event::FileData(data) => {
                if let Some((name, destination)) = &mut self.file {
                    destination.write(name, data, shared)?;
                }
            }
            Event::FileEnd => {
                if let Some((name, destination)) = self.file.take() {
                    let body = self.finish(&name, destination)?;
                    self.frame
                        .get_or_insert_with(|| Frame::new(Status::DEFAULT))
                        .files
                        .push(File { name, body });
                }
            }
            Event::MessageStart { size } => {
                if let Some(limits) = limits {
                    self.count_in_memory(size, limits)?;
                }
                self.message_size = size;
            }
            Event::MessageData(data) => match shared {
                Some(shared)
                    if self.message.is_empty() && data.len() as u64 == self.message_size =>
                {
                    self.message_shared = Some(shared.slice_ref(data));
                }
                _ => {
                    if self.message.is_empty() {
                        let wanted = self.message_size.min(MAX_RESERVE_AHEAD) as usize;
                        if self.message.capacity() < wanted && !self.message.try_reclaim(wanted) {
                            self.message = BytesMut::with_capacity(wanted.max(MESSAGE_CHUNK_LEN));
                        }
                    }
                    self.message.extend_from_slice(data);
                }
            },
            Event::FrameEnd => {
                let mut done = self.frame.take().unwrap_or_default();
                // The frame is whole: its files are the receiver's now. A
                // commit that fails leaves every landed file to `Drop`'s
                // abandon, committed or not: the frame is never reported.
                #[cfg(feature = "std")]
                {
                    for (index, sink) in &mut self.landed {
                        if let Some(body) = sink.commit()? {
                            if let Some(file) = done.files.get_mut(*index) {
                                file.body = body;
                            }
                        }
                    }
                    self.landed.clear();
                }
                done.message = match self.message_shared.take() {
                    Some(message) => Some(message),
                    None => {
                        let message = self.message.split().freeze();
                        (!message.is_empty()).then_some(message)
                    }
                };
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    /// Ends the body of file `name`: what the frame reports for it.
    #[cfg_attr(not(feature = "std"), allow(unused_variables, unused_mut))]
    fn finish(
        &mut self,
        name: &str,
        mut destination: Destination,
    ) -> Result<FileBody, StorageError> {
        // A sink that got no bytes (an empty file) starts here.
        #[cfg(feature = "std")]
        let started = destination.start(name);
        Ok(match destination {
            Destination::Memory { buffer, .. } => FileBody::Memory(buffer.into()),
            Destination::Shared(data) => FileBody::Memory(data),
            Destination::Count(len) => FileBody::Delivered { len },
            #[cfg(feature = "std")]
            Destination::Sink { mut sink, .. } => match started.and_then(|()| sink.finish()) {
                Ok(body) => {
                    let index = self.frame.as_ref().map_or(0, |frame| frame.files.len());
                    self.landed.push((index, sink));
                    body
                }
                Err(error) => {
                    sink.abandon();
                    return Err(error);
                }
            },
        })
    }

    /// Counts `size` more bytes of the frame kept in memory against the frame size limit.
    fn count_in_memory(&mut self, size: u64, limits: &Limits) -> Result<(), ApplyError> {
        self.in_memory = add_within(
            self.in_memory,
            size,
            LimitKind::FrameSize,
            limits.max_frame_size,
        )?;
        Ok(())
    }

    /// Counts a file of `size` bytes going to `target` against its bounds.
    fn count(&mut self, target: &FileTarget, size: u64, limits: &Limits) -> Result<(), ApplyError> {
        if matches!(target, FileTarget::Memory) {
            add_within(0, size, LimitKind::FileSize, limits.max_file_size)?;
            self.count_in_memory(size, limits)?;
        } else {
            add_within(
                0,
                size,
                LimitKind::StoredFileSize,
                limits.max_stored_file_size,
            )?;
            self.stored = add_within(
                self.stored,
                size,
                LimitKind::StoredFrameSize,
                limits.max_stored_frame_size,
            )?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl Drop for PartialFrame {
    fn drop(&mut self) {
        // A frame that never completed is never reported: undo its files.
        if let Some((_, Destination::Sink { sink, .. })) = &mut self.file {
            sink.abandon();
        }
        for (_, sink) in &mut self.landed {
            sink.abandon();
        }
    }
}
