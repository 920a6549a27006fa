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
///
/// A frame's files land under their names only once the whole frame has
/// arrived: while it arrives, each file is written under a hidden name
/// (`.NAME.part`), and moved to its name just before the frame is
/// reported. A file cut short, or one of a frame that never completed, is
/// removed, never reported; a process killed mid-frame leaves at most a
/// hidden `.part` file.
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

    fn commit(&mut self) -> Result<Option<FileBody>, StorageError> {
        let file = self.file()?;
        let path = file.commit()?;
        Ok(Some(FileBody::Source(Arc::new(DiskFile::spooled(
            path, file.len,
        )))))
    }

    fn abandon(&mut self) {
        if let Some(file) = self.file.take() {
            file.remove();
        }
    }
}

/// A file being received into a spool directory: written under a hidden
/// name (`.NAME.part`, never a name [`sanitize_file_name`] gives), moved to
/// its own name by [`commit`](Self::commit) once its frame is whole.
/// Dropped before [`finish`](Self::finish), it removes itself.
struct SpoolFile {
    dir: PathBuf,
    /// The sanitised name it takes at commit.
    name: String,
    /// Where it is now: the hidden name, then its own.
    path: PathBuf,
    writer: Option<BufWriter<fs::File>>,
    len: u64,
}

/// `name` in `dir`, or with a numbered suffix (`name (1).ext`) for attempt 1 on.
fn numbered(dir: &Path, name: &str, attempt: u32) -> PathBuf {
    if attempt == 0 {
        return dir.join(name);
    }
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    dir.join(format!("{stem} ({attempt}){extension}"))
}

fn no_free_name(dir: &Path, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {name:?} in {}", dir.display()),
    )
}

impl SpoolFile {
    /// Creates the hidden file for `name` in `dir` (created if missing).
    fn create(dir: &Path, name: &str) -> io::Result<SpoolFile> {
        fs::create_dir_all(dir)?;
        let safe = sanitize_file_name(name);
        let hidden = format!(".{safe}.part");
        for attempt in 0..MAX_COLLISION_ATTEMPTS {
            let candidate = numbered(dir, &hidden, attempt);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&candidate)
            {
                Ok(file) => {
                    return Ok(SpoolFile {
                        dir: dir.to_path_buf(),
                        name: safe,
                        path: candidate,
                        writer: Some(BufWriter::with_capacity(SPOOL_BUFFER_LEN, file)),
                        len: 0,
                    })
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(no_free_name(dir, &hidden))
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.write_all(data)?;
            self.len += data.len() as u64;
        }
        Ok(())
    }

    /// Flushes and closes the file; returns its path (still hidden) and
    /// length. The file stays until [`remove`](Self::remove).
    fn finish(&mut self) -> io::Result<(PathBuf, u64)> {
        if let Some(writer) = self.writer.take() {
            if let Err(error) = writer.into_inner() {
                let _ = fs::remove_file(&self.path);
                return Err(error.into_error());
            }
        }
        Ok((self.path.clone(), self.len))
    }

    /// Gives the finished file its own name, never replacing a file: a
    /// taken name gets a numbered suffix. A hard link claims the name
    /// atomically; where the file system has none, a rename to a name
    /// that is free.
    fn commit(&mut self) -> io::Result<PathBuf> {
        for attempt in 0..MAX_COLLISION_ATTEMPTS {
            let candidate = numbered(&self.dir, &self.name, attempt);
            match fs::hard_link(&self.path, &candidate) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.path);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) if !candidate.exists() => fs::rename(&self.path, &candidate)?,
                Err(_) => continue,
            }
            self.path = candidate;
            return Ok(self.path.clone());
        }
        Err(no_free_name(&self.dir, &self.name))
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
