//! How file bodies reach a session without it knowing where they live: a
//! [`FileSink`] takes an incoming file's bytes, a [`FileSource`] gives an
//! outgoing file's. The session decides when each is called (limits first,
//! a frame's files kept only once the whole frame has arrived); what they
//! do (a spool file, an async stream, a hash) is theirs. `tej-net` has the
//! disk implementations.

use alloc::boxed::Box;
use core::fmt;
use std::io;
use std::path::Path;

use crate::frame::FileBody;

/// The error of a file's storage: the local side failed, not the peer.
pub type StorageError = io::Error;

/// Where an incoming file's bytes go, chosen by
/// [`Handler::file_target`](crate::Handler::file_target) as
/// [`FileTarget::Sink`](crate::FileTarget::Sink).
///
/// The session calls [`start`](Self::start) when the file's header
/// arrived, [`write`](Self::write) with the body's bytes in order,
/// then [`finish`](Self::finish) once the last one arrived. The sink is kept
/// until its frame is whole: then [`commit`](Self::commit) runs (a spool
/// file takes its name only then), before the frame is reported; if the
/// frame never completes (the peer cut it, a limit or a later file failed),
/// [`abandon`](Self::abandon) runs instead, so a frame's files are kept
/// only when all of it arrived. After `finish` a sink should hold no more
/// than `commit` and `abandon` need (a path, not a buffer).
pub trait FileSink: Send {
    /// The file `name` (as sent: not a path to trust) of `size` bytes
    /// begins; called once, before any [`write`](Self::write).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    fn start(&mut self, name: &str, size: u64) -> Result<(), StorageError> {
        let _ = (name, size);
        Ok(())
    }

    /// Takes the next bytes of the body, all of them.
    ///
    /// # Errors
    ///
    /// The storage's; the connection then ends with
    /// [`DisconnectReason::Storage`](crate::DisconnectReason::Storage).
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError>;

    /// As [`write`](Self::write), when the bytes are in a shared buffer
    /// (the session was given its input as [`Bytes`](bytes::Bytes):
    /// `Session::handle_bytes`): a sink that keeps them in memory can keep
    /// this slice of the read buffer instead of a copy. The default writes
    /// them.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    fn write_bytes(&mut self, data: bytes::Bytes) -> Result<(), StorageError> {
        self.write(&data)
    }

    /// The body is complete: flush it and say what the frame reports for
    /// it (its [`FileBody`]).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    fn finish(&mut self) -> Result<FileBody, StorageError>;

    /// The whole frame this file belongs to has arrived: make the file
    /// final (a spool file moves to its name). Called once, after
    /// [`finish`](Self::finish), for each of the frame's files in order,
    /// before the frame is reported. A body returned replaces the one
    /// `finish` gave (the file's final place). The default keeps it.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write); the frame is then not reported and every
    /// file of it is abandoned, committed or not.
    fn commit(&mut self) -> Result<Option<FileBody>, StorageError> {
        Ok(None)
    }

    /// The frame this file belongs to will never be delivered: undo what
    /// was stored (a spool file removes itself). Called at most once, after
    /// [`finish`](Self::finish) (or [`commit`](Self::commit)) or in its place.
    fn abandon(&mut self) {}

    /// Whether [`write`](Self::write) and [`finish`](Self::finish) may
    /// block the thread (disk I/O): an executor whose threads must not
    /// block moves such steps off them
    /// ([`Session::does_file_io`](crate::Session::does_file_io)).
    fn blocks(&self) -> bool {
        true
    }
}

/// An outgoing file whose bytes are not in memory, as
/// [`FileBody::Source`]: opened when its frame is queued, read in chunks as
/// the connection has room, so a file of any size costs a chunk of memory.
pub trait FileSource: Send + Sync + fmt::Debug {
    /// The body's length, fixed when the file was named: exactly this many
    /// bytes are sent.
    fn len(&self) -> u64;

    /// Whether the body has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens the body for reading from its start. Called on the thread
    /// that queues the frame (an async runtime's, for `Sender::send`):
    /// it should not block, so a source on disk opens its file when it is
    /// named, as `tej_net::file` does, and hands out readers here.
    ///
    /// # Errors
    ///
    /// The storage's; the frame is then refused with
    /// [`SendError::File`](crate::SendError::File) and handed back.
    fn open(&self) -> Result<Box<dyn io::Read + Send>, StorageError>;

    /// Where the body is on disk, if it is a file there.
    fn path(&self) -> Option<&Path> {
        None
    }
}

/// [`FileTarget::Writer`](crate::FileTarget::Writer) as a sink: the bytes
/// go to the writer, the frame reports only the length.
pub(crate) struct WriterSink {
    writer: Box<dyn io::Write + Send>,
    len: u64,
}

impl WriterSink {
    pub(crate) fn new(writer: Box<dyn io::Write + Send>) -> WriterSink {
        WriterSink { writer, len: 0 }
    }
}

impl FileSink for WriterSink {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.writer.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        self.writer.flush()?;
        Ok(FileBody::Delivered { len: self.len })
    }
}
