//! [`FrameStore`]: a whole received frame, kept in a buffer the caller lends.

use core::fmt;
use core::ops::Range;

use crate::wire::Status;
use crate::{Event, FileRef, Limits};

/// Why a [`FrameStore`] cannot take a frame. Both are found from a header,
/// before any byte it announces is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreError {
    /// The frame has more files than the store has places for.
    TooManyFiles {
        /// Files the frame announced.
        count: u64,
        /// Places in the store.
        max: usize,
    },
    /// A name and its data, or the message, do not fit in what is left.
    NoRoom {
        /// Bytes announced.
        needed: u64,
        /// Bytes left in the store.
        available: usize,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::TooManyFiles { count, max } => {
                write!(f, "{count} files, but room for {max}")
            }
            StoreError::NoRoom { needed, available } => {
                write!(f, "{needed} bytes, but room for {available}")
            }
        }
    }
}

impl core::error::Error for StoreError {}

/// A file's name and data, as places in the store.
#[derive(Debug, Clone)]
struct Stored {
    name: Range<usize>,
    data: Range<usize>,
}

/// A whole frame in a buffer the caller lends: names, file data and the
/// message one after the other, and the places of up to `FILES` files.
///
/// Fill it with an endpoint's `receive_frame`, or event by event with
/// [`push`](Self::push). Give the endpoint [`limits`](Self::limits), so that
/// whatever would not fit is refused by the decoder, with its offset in the
/// stream, rather than here.
#[derive(Debug)]
pub struct FrameStore<'s, const FILES: usize> {
    storage: &'s mut [u8],
    used: usize,
    status: Status,
    version: u8,
    files: heapless::Vec<Stored, FILES>,
    message: Range<usize>,
}

impl<'s, const FILES: usize> FrameStore<'s, FILES> {
    /// An empty store over `storage`.
    pub fn new(storage: &'s mut [u8]) -> Self {
        FrameStore {
            storage,
            used: 0,
            status: Status::DEFAULT,
            version: 0,
            files: heapless::Vec::new(),
            message: 0..0,
        }
    }

    /// The bytes of storage needed for `FILES` files of `file` bytes with
    /// names of `name` bytes and a message of `message` bytes.
    pub const fn storage_for(name: usize, file: usize, message: usize) -> usize {
        FILES * (name + file) + message
    }

    /// `base` with the file count, names, files and message bounded so that
    /// every frame the decoder lets through fits: `FILES` files of names up
    /// to `name` bytes and data up to `file` bytes, a message up to
    /// `message` bytes. Needs [`storage_for`](Self::storage_for) those bytes.
    pub const fn limits(base: Limits, name: u16, file: u64, message: u64) -> Limits {
        base.max_file_count(FILES as u64)
            .max_name_len(name)
            .max_file_size(file)
            .max_message_size(message)
            .max_frame_size(FILES as u64 * file + message)
    }

    /// Takes one event of a frame; `true` once the frame is complete and
    /// readable here (until the next frame starts).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the frame does not fit, from the header that
    /// says so, before storing anything it announces.
    pub fn push(&mut self, event: &Event<'_>) -> Result<bool, StoreError> {
        match *event {
            Event::FrameStart {
                status,
                version,
                file_count,
            } => {
                self.used = 0;
                self.files.clear();
                self.message = 0..0;
                self.status = status;
                self.version = version;
                if file_count > FILES as u64 {
                    return Err(StoreError::TooManyFiles {
                        count: file_count,
                        max: FILES,
                    });
                }
            }
            Event::FileStart { name, size } => {
                self.room(name.len() as u64 + size)?;
                let name = self.append(name.as_bytes())?;
                let stored = Stored {
                    name,
                    data: self.used..self.used,
                };
                self.files
                    .push(stored)
                    .map_err(|_| StoreError::TooManyFiles {
                        count: FILES as u64 + 1,
                        max: FILES,
                    })?;
            }
            Event::FileData(data) => {
                let range = self.append(data)?;
                if let Some(file) = self.files.last_mut() {
                    file.data.end = range.end;
                }
            }
            Event::MessageStart { size } => {
                self.room(size)?;
                self.message = self.used..self.used;
            }
            Event::MessageData(data) => {
                self.message.end = self.append(data)?.end;
            }
            Event::FileEnd => {}
            Event::FrameEnd => return Ok(true),
        }
        Ok(false)
    }

    fn room(&self, needed: u64) -> Result<(), StoreError> {
        let available = self.storage.len() - self.used;
        if needed > available as u64 {
            return Err(StoreError::NoRoom { needed, available });
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<Range<usize>, StoreError> {
        self.room(bytes.len() as u64)?;
        let start = self.used;
        self.used += bytes.len();
        self.storage[start..self.used].copy_from_slice(bytes);
        Ok(start..self.used)
    }

    /// The frame's custom status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The frame's protocol version byte.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// How many files the frame has stored.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The files, in wire order.
    pub fn files(&self) -> impl Iterator<Item = FileRef<'_>> {
        self.files.iter().map(|file| {
            let name = core::str::from_utf8(&self.storage[file.name.clone()]).unwrap_or_default();
            FileRef::new(name, &self.storage[file.data.clone()])
        })
    }

    /// The message; `None` for "no message" (on the wire, length 0).
    pub fn message(&self) -> Option<&[u8]> {
        let message = &self.storage[self.message.clone()];
        (!message.is_empty()).then_some(message)
    }

    /// The files as [`FileRef`]s, for a [`FrameRef`](crate::FrameRef) that sends them on:
    /// `FrameRef::new(status, &store.file_refs(), store.message())`.
    pub fn file_refs(&self) -> heapless::Vec<FileRef<'_>, FILES> {
        self.files().collect()
    }

    /// Bytes of storage the frame takes.
    pub fn used(&self) -> usize {
        self.used
    }
}
