//! Files on disk through a session: sent from `tej_net::file`, received
//! into `tej_net::spool`, with what only a disk can show (names that stay
//! inside the directory, files removed from it, a file that changed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tej_core::{
    Connection, DisconnectReason, FileTarget, Frame, FrameBuilder, Handler, Session, SessionConfig,
    Status,
};

/// Keeps what it receives and how it ended; spools to `dir`, with `tee`
/// watching the bytes when given.
#[derive(Default)]
struct Spooler {
    dir: PathBuf,
    tee: Option<Tee>,
    frames: Vec<Frame>,
    ended: Option<DisconnectReason>,
}

impl Handler for Spooler {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.frames.push(frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.ended = Some(reason);
    }
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        match &self.tee {
            Some(tee) => tej_net::spool::to_dir_with(self.dir.clone(), Box::new(tee.clone())),
            None => tej_net::spool::to_dir(self.dir.clone()),
        }
    }
}

/// A writer that keeps what it is given.
#[derive(Clone, Default)]
struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spooler(dir: &Path) -> Session<Spooler> {
    let mut session = Session::new(
        Spooler {
            dir: dir.to_path_buf(),
            ..Spooler::default()
        },
        SessionConfig::default(),
    );
    session.start(Duration::ZERO);
    session
}

/// Writes `len` bytes of a pattern into file `name` of `dir`: its path and content.
fn write_source(dir: &Path, name: &str, len: u32) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

/// Sends `frame` from a client session to a new spooler into `spool`, which
/// it returns once every byte has arrived.
fn send_to_spool(frame: Frame, spool: &Path) -> Session<Spooler> {
    let mut client = Session::new(Spooler::default(), SessionConfig::default());
    client.start(Duration::ZERO);
    let mut server = spooler(spool);
    client.sender().try_send(frame).unwrap();
    client.poll_queue(&noop_waker());
    transfer(&mut client, &mut server);
    server
}

/// The bytes of the frame `frame` builds.
fn encoded(frame: FrameBuilder) -> Vec<u8> {
    frame.build().encode_to_vec().unwrap()
}

/// Where the files of a received `frame` are.
fn paths(frame: &Frame) -> Vec<&Path> {
    frame.files.iter().map(|f| f.path().unwrap()).collect()
}

/// Everything `from` has to write, into `to`.
fn transfer<A: Handler, B: Handler>(from: &mut Session<A>, to: &mut Session<B>) {
    while from.wants_write() {
        let mut slices: [&[u8]; 16] = [&[]; 16];
        let filled = from.transmit(&mut slices);
        let bytes: Vec<u8> = slices[..filled].concat();
        if bytes.is_empty() {
            break;
        }
        let used = to.handle_input(&bytes, Duration::ZERO);
        from.advance(used);
    }
}

/// Hands all of `input` to `session` as a driver would: offered again
/// while the session takes some (it stops after each file header that
/// chose a sink that blocks, such as a spool file).
fn take_all<H: Handler>(session: &mut Session<H>, mut input: &[u8]) {
    while !input.is_empty() {
        let used = session.handle_input(input, Duration::ZERO);
        if used == 0 {
            break;
        }
        input = &input[used..];
    }
}

fn noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

#[test]
fn files_stream_from_disk_and_spool_inside_the_directory_under_distinct_names() {
    let scratch = tempfile::tempdir().unwrap();
    let (source, content) = write_source(scratch.path(), "source.bin", 1_000_000);
    let spool = scratch.path().join("received");

    let frame = FrameBuilder::new(Status::DEFAULT)
        .add_file(tej_net::file::from_path("../escape.bin", &source).unwrap())
        .add_file(tej_net::file::from_path("../escape.bin", &source).unwrap())
        .build();
    let server = send_to_spool(frame, &spool);

    let received = &server.handler().frames[0];
    assert_eq!(received.files[0].name, "../escape.bin", "reported as sent");
    let paths = paths(received);
    assert_ne!(paths[0], paths[1], "colliding names get distinct files");
    for path in paths {
        assert_eq!(path.parent().unwrap(), spool, "inside the directory");
        assert_eq!(std::fs::read(path).unwrap(), content);
    }
}

#[test]
fn the_files_of_a_frame_cut_short_are_removed_from_the_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let mut session = spooler(scratch.path());
    let wire = encoded(
        FrameBuilder::new(Status::DEFAULT)
            .file("done.bin", vec![1u8; 1000])
            .file("cut.bin", vec![2u8; 100_000]),
    );
    take_all(&mut session, &wire[..50_000]);
    assert_eq!(names(scratch.path()), [".cut.bin.part", ".done.bin.part"]);
    session.handle_eof(Duration::ZERO);
    assert!(session.handler().frames.is_empty());
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "no partial file and no file of an unfinished frame is left"
    );
}

/// Queueing a named file opens nothing (an async runtime's thread does not
/// block on it): it was opened when named, and is sent from that handle
/// even once its path is gone.
#[cfg(unix)]
#[test]
fn a_file_is_opened_when_named_not_when_sent() {
    let scratch = tempfile::tempdir().unwrap();
    let (source, content) = write_source(scratch.path(), "named.bin", 300_000);
    let file = tej_net::file::from_path("named.bin", &source).unwrap();
    std::fs::remove_file(&source).unwrap();

    // The same file twice in one frame: each send reads from its own start.
    let frame = FrameBuilder::new(Status::DEFAULT)
        .add_file(file.clone())
        .add_file(file)
        .build();
    let server = send_to_spool(frame, &scratch.path().join("received"));

    let received = &server.handler().frames[0];
    assert_eq!(received.files.len(), 2);
    for file in &received.files {
        assert_eq!(std::fs::read(file.path().unwrap()).unwrap(), content);
    }
}

#[test]
fn a_file_truncated_after_it_was_queued_ends_the_connection() {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("shrinks.bin");
    std::fs::write(&source, vec![5u8; 10_000]).unwrap();
    let file = tej_net::file::from_path("shrinks.bin", &source).unwrap();
    let mut session = spooler(scratch.path());
    session
        .sender()
        .try_send(FrameBuilder::new(Status::DEFAULT).add_file(file).build())
        .unwrap();
    session.poll_queue(&noop_waker());
    std::fs::write(&source, vec![5u8; 10]).unwrap();
    let mut slices: [&[u8]; 8] = [&[]; 8];
    assert_eq!(session.transmit(&mut slices), 0);
    assert!(session.is_closed());
    assert!(matches!(
        session.handler().ended,
        Some(DisconnectReason::Storage(_))
    ));
    assert!(tej_net::file::from_path("gone", scratch.path().join("missing")).is_err());
}

#[test]
fn file_open_takes_its_name_from_the_path() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("report.txt");
    std::fs::write(&path, b"twelve bytes").unwrap();
    let file = tej_net::file::open(&path).unwrap();
    assert_eq!(file.name, "report.txt");
    assert_eq!(file.len(), 12);
    assert_eq!(file.path(), Some(path.as_path()));
    let error = tej_net::file::open("/").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let missing = tej_net::file::open(scratch.path().join("missing.txt")).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn to_dir_with_sees_every_byte_as_it_is_spooled() {
    let scratch = tempfile::tempdir().unwrap();
    let tee = Tee::default();
    let mut session = spooler(scratch.path());
    session.handler_mut().tee = Some(tee.clone());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let wire = encoded(FrameBuilder::new(Status::DEFAULT).file("x.bin", data.clone()));
    // Half first: the writer has seen exactly the bytes spooled so far.
    take_all(&mut session, &wire[..100_000]);
    assert_eq!(tee.0.lock().unwrap().len(), 100_000 - 25);
    take_all(&mut session, &wire[100_000..]);
    assert_eq!(*tee.0.lock().unwrap(), data);
    let frame = &session.handler().frames[0];
    assert_eq!(std::fs::read(frame.files[0].path().unwrap()).unwrap(), data);
}

/// The entries of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn files_take_their_names_only_once_the_whole_frame_has_arrived() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("a.bin"), b"already here").unwrap();
    let mut session = spooler(scratch.path());
    let wire = encoded(
        FrameBuilder::new(Status::DEFAULT)
            .file("a.bin", vec![1u8; 1000])
            .file("b.bin", vec![2u8; 1000])
            .message("both"),
    );
    // Both files written, the message still missing: hidden names only.
    take_all(&mut session, &wire[..wire.len() - 2]);
    assert_eq!(
        names(scratch.path()),
        [".a.bin.part", ".b.bin.part", "a.bin"]
    );
    assert!(session.handler().frames.is_empty());
    take_all(&mut session, &wire[wire.len() - 2..]);
    assert_eq!(names(scratch.path()), ["a (1).bin", "a.bin", "b.bin"]);
    let frame = &session.handler().frames[0];
    let paths = paths(frame);
    assert_eq!(
        paths,
        [
            scratch.path().join("a (1).bin"),
            scratch.path().join("b.bin")
        ],
        "the frame reports the final names; a taken one is never replaced"
    );
    assert_eq!(std::fs::read(paths[0]).unwrap(), vec![1u8; 1000]);
    assert_eq!(
        std::fs::read(scratch.path().join("a.bin")).unwrap(),
        b"already here"
    );
}
