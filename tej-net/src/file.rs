//! Files on disk as [`File`]s to send: opened when they are named (the
//! blocking step, on the caller's thread), read in chunks as the
//! connection has room; queueing them opens nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tej_core::storage::{FileSource, StorageError};
use tej_core::{File, FileBody};

/// A file on disk as a [`FileSource`]: opened and its length read when it
/// is named, so a file that grows, moves or is removed later is sent as it
/// was, and sending it opens nothing on the thread that queues it (an async
/// runtime's).
#[derive(Debug, Clone)]
pub struct DiskFile {
    path: PathBuf,
    len: u64,
    /// The file opened when named; each send reads it at its own offsets.
    /// `None` for a spooled file, opened by path when sent (a frame of many
    /// received files holds no descriptor per file).
    #[cfg(unix)]
    opened: Option<Arc<fs::File>>,
}

impl PartialEq for DiskFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.len == other.len
    }
}

impl Eq for DiskFile {}

impl DiskFile {
    /// The file at `path`, as it is now: opened here.
    ///
    /// # Errors
    ///
    /// The error of opening `path` or reading its metadata.
    pub fn new(path: impl Into<PathBuf>) -> io::Result<DiskFile> {
        let path = path.into();
        let file = fs::File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(DiskFile {
            path,
            len,
            #[cfg(unix)]
            opened: Some(Arc::new(file)),
        })
    }

    /// A file a spool sink just wrote and closed, of `len` bytes.
    pub(crate) fn spooled(path: PathBuf, len: u64) -> DiskFile {
        DiskFile {
            path,
            len,
            #[cfg(unix)]
            opened: None,
        }
    }
}

/// Reads an opened file from its start at offsets of its own, so that
/// sends of one file do not share a position.
#[cfg(unix)]
struct ReadAt {
    file: Arc<fs::File>,
    offset: u64,
}

#[cfg(unix)]
impl io::Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl FileSource for DiskFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self) -> Result<Box<dyn io::Read + Send>, StorageError> {
        #[cfg(unix)]
        if let Some(file) = &self.opened {
            return Ok(Box::new(ReadAt {
                file: Arc::clone(file),
                offset: 0,
            }));
        }
        Ok(Box::new(fs::File::open(&self.path)?))
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// A file on disk named `name` for the peer, sent by streaming it from
/// `path`, which is opened here: the blocking step, before any runtime's
/// `send`.
///
/// # Errors
///
/// The error of opening `path` or reading its metadata.
pub fn from_path(name: impl Into<String>, path: impl Into<PathBuf>) -> io::Result<File> {
    Ok(File {
        name: name.into(),
        body: FileBody::Source(Arc::new(DiskFile::new(path)?)),
    })
}

/// A file on disk named after the last component of `path` (its file
/// name, as the peer will see it), sent by streaming it from `path`.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let file = tej_net::file::open("reports/2026.pdf")?;
/// assert_eq!(file.name, "2026.pdf");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// `InvalidInput` if `path` has no file name (such as `/` or `..`) or the
/// name is not UTF-8; otherwise the error of opening it.
pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no UTF-8 file name to send it under", path.display()),
            )
        })?;
    from_path(name, path)
}
