//! Received files written to disk as they arrive, under names that cannot
//! escape the spool directory.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tej_core::storage::{FileSink, StorageError};
use tej_core::{FileBody, FileTarget};

use crate::file::DiskFile;

/// Longest sanitised name, in bytes; room is left for a collision suffix.
const MAX_SAFE_NAME_LEN: usize = 200;
/// How many numbered variants of a name are tried before giving up.
const MAX_COLLISION_ATTEMPTS: u32 = 10_000;
/// Write buffer for spooled files: a few socket reads' worth per syscall.
const SPOOL_BUFFER_LEN: usize = 256 * 1024;

/// A file name from the wire made safe to create inside a directory.
///
/// Path separators, NUL and other control characters become `_`; a leading
/// dot becomes `_` (no hidden files, no `.` or `..`); an empty name becomes
/// `file`; long names are cut at a character boundary. The result is a
/// single path component that stays inside whatever directory it is
/// joined to.
///
/// ```
/// use tej_net::spool::sanitize_file_name;
///
/// assert_eq!(sanitize_file_name("../../etc/passwd"), "_._.._etc_passwd");
/// assert_eq!(sanitize_file_name("/abs"), "_abs");
/// assert_eq!(sanitize_file_name(""), "file");
/// assert_eq!(sanitize_file_name("report.pdf"), "report.pdf");
/// ```
pub fn sanitize_file_name(name: &str) -> String {
    let mut safe = String::with_capacity(name.len().min(MAX_SAFE_NAME_LEN));
    for c in name.chars() {
        if safe.len() + c.len_utf8() > MAX_SAFE_NAME_LEN {
            break;
        }
        let unsafe_here = c == '/' || c == '\\' || c.is_control() || (safe.is_empty() && c == '.');
        safe.push(if unsafe_here { '_' } else { c });
    }
    if safe.is_empty() {
        safe.push_str("file");
    }
    safe
}

/// Where a handler sends an incoming file to land in `dir` (created if
/// missing), under a sanitised unique name; the frame reports its path.
/// A file cut short, or one of a frame that never completed, is removed,
/// never reported.
///
/// ```
/// use tej_core::{FileTarget, Handler};
///
/// struct Saver;
/// impl Handler for Saver {
///     fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
///         tej_net::spool::to_dir("inbox")
///     }
/// }
/// ```
pub fn to_dir(dir: impl Into<PathBuf>) -> FileTarget {
    FileTarget::Sink(Box::new(SpoolSink {
        dir: dir.into(),
        file: None,
        observer: None,
    }))
}

/// As [`to_dir`], and every byte also goes to `observer` as it is spooled:
/// a hasher, a progress meter. Its errors end the connection like the
/// spool file's.
///
/// ```
/// use std::io::{self, Write};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use tej_core::{FileTarget, Handler};
///
/// /// Counts the bytes of the file arriving, for a progress display.
/// struct Meter(Arc<AtomicU64>);
/// impl Write for Meter {
///     fn write(&mut self, data: &[u8]) -> io::Result<usize> {
///         self.0.fetch_add(data.len() as u64, Ordering::Relaxed);
///         Ok(data.len())
///     }
///     fn flush(&mut self) -> io::Result<()> {
///         Ok(())
///     }
/// }
///
/// struct Saver(Arc<AtomicU64>);
/// impl Handler for Saver {
///     fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
///         tej_net::spool::to_dir_with("inbox", Box::new(Meter(self.0.clone())))
///     }
/// }
/// ```
pub fn to_dir_with(dir: impl Into<PathBuf>, observer: Box<dyn Write + Send>) -> FileTarget {
    FileTarget::Sink(Box::new(SpoolSink {
        dir: dir.into(),
        file: None,
        observer: Some(observer),
    }))
}

/// A spool directory as a [`FileSink`]: the file is created when its body
/// starts.
struct SpoolSink {
    dir: PathBuf,
    file: Option<SpoolFile>,
    observer: Option<Box<dyn Write + Send>>,
}

impl SpoolSink {
    fn file(&mut self) -> io::Result<&mut SpoolFile> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("a spool file written before it was started"))
    }
}

impl FileSink for SpoolSink {
    fn start(&mut self, name: &str, _size: u64) -> Result<(), StorageError> {
        self.file = Some(SpoolFile::create(&self.dir, name)?);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.file()?.write(data)?;
        if let Some(observer) = &mut self.observer {
            observer.write_all(data)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        if let Some(observer) = &mut self.observer {
            observer.flush()?;
        }
        self.observer = None;
        let (path, len) = self.file()?.finish()?;
        Ok(FileBody::Source(Arc::new(DiskFile::spooled(path, len))))
    }

    fn abandon(&mut self) {
        if let Some(file) = self.file.take() {
            file.remove();
        }
    }
}

/// A file being received into a spool directory. Dropped before
/// [`finish`](Self::finish), it removes itself.
struct SpoolFile {
    path: PathBuf,
    writer: Option<BufWriter<fs::File>>,
    len: u64,
}

impl SpoolFile {
    /// Creates a new file for `name` in `dir` (created if missing), never
    /// overwriting: a taken name gets a numbered suffix.
    fn create(dir: &Path, name: &str) -> io::Result<SpoolFile> {
        fs::create_dir_all(dir)?;
        let safe = sanitize_file_name(name);
        let (stem, extension) = match safe.rfind('.') {
            Some(dot) if dot > 0 => (&safe[..dot], &safe[dot..]),
            _ => (&safe[..], ""),
        };
        for attempt in 0..MAX_COLLISION_ATTEMPTS {
            let candidate = if attempt == 0 {
                dir.join(&safe)
            } else {
                dir.join(format!("{stem} ({attempt}){extension}"))
            };
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&candidate)
            {
                Ok(file) => {
                    return Ok(SpoolFile {
                        path: candidate,
                        writer: Some(BufWriter::with_capacity(SPOOL_BUFFER_LEN, file)),
                        len: 0,
                    })
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no free name for {safe:?} in {}", dir.display()),
        ))
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.write_all(data)?;
            self.len += data.len() as u64;
        }
        Ok(())
    }

    /// Flushes and closes the file; returns its path and length. The file
    /// stays until [`remove`](Self::remove).
    fn finish(&mut self) -> io::Result<(PathBuf, u64)> {
        if let Some(writer) = self.writer.take() {
            if let Err(error) = writer.into_inner() {
                let _ = fs::remove_file(&self.path);
                return Err(error.into_error());
            }
        }
        Ok((self.path.clone(), self.len))
    }

    /// Removes the file, finished or not.
    fn remove(mut self) {
        self.writer = None;
        let _ = fs::remove_file(&self.path);
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // An incomplete file must not look like a received one.
            let _ = fs::remove_file(&self.path);
        }
    }
}
