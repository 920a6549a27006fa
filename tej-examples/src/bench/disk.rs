//! The disk-to-disk workload: a file in the page cache sent by an adapter
//! to a server spooling it to disk, against plain sockets copying it each
//! way of [`DISK_SWEEP`] (`io::copy`, fixed chunks, `sendfile`/`splice`),
//! the best of which is the baseline.

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

use tej_core::{Connection, FileTarget, Frame, FrameBuilder, Handler, Status};

use super::harness::{joined, loopback, size_name, timed_send, unbounded_config, Quiet};
use crate::runtime::{self, Runtime};

/// The size of the disk workload's writes when it makes its file.
const DISK_BUFFER_LEN: usize = 1024 * 1024;
/// How plain sockets copy a file disk to disk; the best is the disk
/// baseline.
#[cfg(target_os = "linux")]
pub const DISK_SWEEP: &[DiskCopy] = &[
    DiskCopy::StdCopy,
    DiskCopy::Chunks(1024 * 1024),
    DiskCopy::Kernel,
];
/// How plain sockets copy a file disk to disk; the best is the disk
/// baseline.
#[cfg(not(target_os = "linux"))]
pub const DISK_SWEEP: &[DiskCopy] = &[DiskCopy::StdCopy, DiskCopy::Chunks(1024 * 1024)];

/// One way plain sockets copy a file disk to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskCopy {
    /// `std::io::copy` file → socket and socket → file. (std uses no
    /// `sendfile` from a file to a socket, since later changes to the file
    /// could show in what is sent, and no `splice` from a socket to a file:
    /// 8 KiB reads and writes.)
    StdCopy,
    /// Reads and `write_all`s of this many bytes on both sides.
    Chunks(usize),
    /// The kernel moves the bytes: `sendfile(2)` from the file to the
    /// socket, `splice(2)` from the socket through a pipe into the file.
    #[cfg(target_os = "linux")]
    Kernel,
}

impl DiskCopy {
    /// Its key in `baseline.disk_sweep_gib_s`.
    pub fn key(self) -> String {
        match self {
            DiskCopy::StdCopy => "io_copy".into(),
            DiskCopy::Chunks(size) => size.to_string(),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => "sendfile_splice".into(),
        }
    }

    pub(super) fn name(self) -> String {
        match self {
            DiskCopy::StdCopy => "io::copy".into(),
            DiskCopy::Chunks(size) => size_name(size),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => "sendfile+splice".into(),
        }
    }
}

/// Writes `len` bytes to `path`, then reads them once, so that the file
/// sits in the page cache when it is sent.
pub(super) fn write_cached_file(path: &Path, len: u64) -> io::Result<()> {
    let chunk: Vec<u8> = (0..DISK_BUFFER_LEN).map(|i| (i % 251) as u8).collect();
    let mut file = BufWriter::new(std::fs::File::create(path)?);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(io::IntoInnerError::into_error)?;
    let mut buffer = vec![0u8; DISK_BUFFER_LEN];
    let mut file = std::fs::File::open(path)?;
    while file.read(&mut buffer)? > 0 {}
    Ok(())
}

/// Spools every file to `dir`; sends each received frame's first file path.
struct Spooler {
    dir: PathBuf,
    done: SyncSender<Option<PathBuf>>,
}

impl Handler for Spooler {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let path = frame
            .files
            .first()
            .and_then(|file| file.path().map(Path::to_path_buf));
        let _ = self.done.send(path);
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        tej_net::spool::to_dir(self.dir.clone())
    }
}

/// The file at `source` sent from disk (`tej_net::file::open`) to a server spooling
/// it into `spool` (`tej_net::spool::to_dir`); timed until the server's
/// handler has the spooled file.
pub(super) fn tej_disk(runtime: Runtime, source: &Path, spool: &Path) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let dir = spool.to_path_buf();
    let server = runtime::start_server(runtime, loopback(), unbounded_config(), move || Spooler {
        dir: dir.clone(),
        done: done_tx.clone(),
    })?;
    let client = runtime::connect(runtime, server.addr(), Quiet, unbounded_config())?;
    let frame = FrameBuilder::new(Status::DEFAULT)
        .add_file(tej_net::file::open(source)?)
        .build();
    let (spooled, took) = timed_send(&client.sender(), frame, &done, "the file to disk")?;
    client.close()?;
    server.stop();
    let spooled = spooled.ok_or_else(|| io::Error::other("the file was not spooled"))?;
    let len = std::fs::metadata(&spooled)?.len();
    std::fs::remove_file(&spooled)?;
    if len != std::fs::metadata(source)?.len() {
        return Err(io::Error::other("the spooled file has the wrong length"));
    }
    Ok(took)
}

/// Writes every dirty page back before a disk-to-disk copy (not timed), so
/// that no copy pays for the writeback of the ones before it: without it,
/// whichever copies came after a few GiB of writes ran into the kernel's
/// dirty-page throttling, and the order decided the ratios.
pub(super) fn settle_page_cache() {
    #[cfg(target_os = "linux")]
    rustix::fs::sync();
}

/// Disk to disk on plain sockets, copied `how`. Timed from the connected
/// socket until the file is written.
pub(super) fn plain_disk_copy(source: &Path, dir: &Path, how: DiskCopy) -> io::Result<Duration> {
    fn copy_in_chunks(from: &mut impl Read, to: &mut impl Write, chunk: usize) -> io::Result<u64> {
        let mut buffer = vec![0u8; chunk];
        let mut total = 0u64;
        loop {
            let read = from.read(&mut buffer)?;
            if read == 0 {
                return Ok(total);
            }
            to.write_all(&buffer[..read])?;
            total += read as u64;
        }
    }

    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let target = dir.join("plain-copy.bin");
    let written = target.clone();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut file = std::fs::File::create(&written)?;
        match how {
            DiskCopy::StdCopy => io::copy(&mut stream, &mut file),
            DiskCopy::Chunks(chunk) => copy_in_chunks(&mut stream, &mut file, chunk),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => kernel::splice_to_file(&stream, &file),
        }
    });
    let mut file = std::fs::File::open(source)?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    let sent = match how {
        DiskCopy::StdCopy => io::copy(&mut file, &mut stream)?,
        DiskCopy::Chunks(chunk) => copy_in_chunks(&mut file, &mut stream, chunk)?,
        #[cfg(target_os = "linux")]
        DiskCopy::Kernel => kernel::sendfile_to_socket(&file, &stream)?,
    };
    drop(stream);
    let copied = joined(receiver, "the disk receiver")?;
    let took = started.elapsed();
    std::fs::remove_file(&target)?;
    if copied != sent || sent != std::fs::metadata(source)?.len() {
        return Err(io::Error::other("the plain disk copy lost bytes"));
    }
    Ok(took)
}

/// The kernel's own copies for the disk baseline, through rustix.
#[cfg(target_os = "linux")]
mod kernel {
    use std::fs::File;
    use std::io;
    use std::net::TcpStream;

    use rustix::pipe::{fcntl_setpipe_size, pipe, splice, SpliceFlags};

    /// Most bytes one call moves.
    const PIECE: usize = 1 << 20;

    /// The whole file to the socket with `sendfile(2)`.
    pub(super) fn sendfile_to_socket(file: &File, socket: &TcpStream) -> io::Result<u64> {
        let mut offset = 0u64;
        loop {
            let sent = rustix::fs::sendfile(socket, file, Some(&mut offset), PIECE)?;
            if sent == 0 {
                return Ok(offset);
            }
        }
    }

    /// Everything the socket delivers until its end, into the file, with
    /// `splice(2)` through a pipe (a 1 MiB pipe where the kernel allows).
    pub(super) fn splice_to_file(socket: &TcpStream, file: &File) -> io::Result<u64> {
        let (pipe_out, pipe_in) = pipe()?;
        let pipe_len = fcntl_setpipe_size(&pipe_in, PIECE).unwrap_or(64 * 1024);
        let mut total = 0u64;
        loop {
            let moved = splice(socket, None, &pipe_in, None, pipe_len, SpliceFlags::MOVE)?;
            if moved == 0 {
                return Ok(total);
            }
            let mut left = moved;
            while left > 0 {
                match splice(&pipe_out, None, file, None, left, SpliceFlags::MOVE)? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    spliced => left -= spliced,
                }
            }
            total += moved as u64;
        }
    }
}
