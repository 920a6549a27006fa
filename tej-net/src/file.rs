//! Files on disk as [`File`]s to send: opened when their frame is queued,
//! read in chunks as the connection has room.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tej_core::storage::{FileSource, StorageError};
use tej_core::{File, FileBody};

/// A file on disk as a [`FileSource`]: its length is read when it is named,
/// so a file that grows later is sent as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFile {
    path: PathBuf,
    len: u64,
}

impl DiskFile {
    /// The file at `path`, as it is now.
    ///
    /// # Errors
    ///
    /// The error of reading `path`'s metadata.
    pub fn new(path: impl Into<PathBuf>) -> io::Result<DiskFile> {
        let path = path.into();
        let len = fs::metadata(&path)?.len();
        Ok(DiskFile { path, len })
    }

    /// A file a spool sink just wrote and closed, of `len` bytes.
    pub(crate) fn spooled(path: PathBuf, len: u64) -> DiskFile {
        DiskFile { path, len }
    }
}

impl FileSource for DiskFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self) -> Result<Box<dyn io::Read + Send>, StorageError> {
        Ok(Box::new(fs::File::open(&self.path)?))
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// A file on disk named `name` for the peer, sent by streaming it from
/// `path`.
///
/// # Errors
///
/// The error of reading `path`'s metadata.
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
/// name is not UTF-8; otherwise the error of reading its metadata.
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
