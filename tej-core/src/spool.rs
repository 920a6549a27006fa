//! Received files written to disk as they arrive, under names that cannot
//! escape the spool directory.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::string::String;

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
/// use tej_core::spool::sanitize_file_name;
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

/// A file being received into a spool directory. Dropped before
/// [`finish`](Self::finish), it removes itself.
pub(crate) struct SpoolFile {
    path: PathBuf,
    writer: Option<BufWriter<fs::File>>,
    len: u64,
}

impl SpoolFile {
    /// Creates a new file for `name` in `dir` (created if missing), never
    /// overwriting: a taken name gets a numbered suffix.
    pub(crate) fn create(dir: &Path, name: &str) -> io::Result<SpoolFile> {
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
                dir.join(std::format!("{stem} ({attempt}){extension}"))
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
            std::format!("no free name for {safe:?} in {}", dir.display()),
        ))
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.write_all(data)?;
            self.len += data.len() as u64;
        }
        Ok(())
    }

    /// Flushes and closes the file; returns its path and length.
    pub(crate) fn finish(mut self) -> io::Result<(PathBuf, u64)> {
        if let Some(writer) = self.writer.take() {
            if let Err(error) = writer.into_inner() {
                let _ = fs::remove_file(&self.path);
                return Err(error.into_error());
            }
        }
        Ok((core::mem::take(&mut self.path), self.len))
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
