//! `FileTarget::Writer` does what its docs say: the bytes go to the writer
//! as they arrive, it is flushed once the file's last byte arrived (before
//! the frame is reported), and a file cut short leaves in the writer what
//! arrived of it, unflushed, with no frame reported.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tej_core::{DisconnectReason, File, FileTarget, Frame, Handler, Session, SessionConfig};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs every write (its length) and flush.
struct Recording {
    log: Log,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        self.log
            .lock()
            .unwrap()
            .push(format!("write {}", buf.len()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.log.lock().unwrap().push("flush".into());
        Ok(())
    }
}

struct ToWriter {
    log: Log,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Handler for ToWriter {
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Writer(Box::new(Recording {
            log: self.log.clone(),
            bytes: self.bytes.clone(),
        }))
    }

    fn received(&mut self, _conn: &mut tej_core::Connection<'_>, frame: Frame) {
        let len = frame.files[0].len();
        self.log.lock().unwrap().push(format!("received {len}"));
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.log
            .lock()
            .unwrap()
            .push(format!("disconnected: {reason}"));
    }
}

fn run(wire: &[u8], piece: usize) -> (Vec<String>, Vec<u8>) {
    let log = Log::default();
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let handler = ToWriter {
        log: log.clone(),
        bytes: bytes.clone(),
    };
    let mut session = Session::new(handler, SessionConfig::default());
    session.start(Duration::ZERO);
    for mut chunk in wire.chunks(piece) {
        // Offered again after each file header: the session stops there
        // for a sink that blocks (a writer does).
        while !chunk.is_empty() {
            let used = session.handle_input(chunk, Duration::ZERO);
            assert!(used > 0, "nothing taken");
            chunk = &chunk[used..];
        }
    }
    session.handle_eof(Duration::ZERO);
    let log = log.lock().unwrap().clone();
    let bytes = bytes.lock().unwrap().clone();
    (log, bytes)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Frame::message("m");
    frame.files.push(File::new("f", body.to_vec()));
    frame.encode_to_vec().unwrap()
}

#[test]
fn the_writer_is_flushed_once_after_the_last_byte_before_the_frame_is_reported() {
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let (log, bytes) = run(&frame(&body), 1_000);
    assert_eq!(bytes, body);
    let flush = log.iter().position(|e| e == "flush").expect("a flush");
    assert_eq!(log.iter().filter(|e| *e == "flush").count(), 1, "{log:?}");
    assert!(
        log[..flush].iter().all(|e| e.starts_with("write")),
        "{log:?}"
    );
    assert_eq!(log[flush + 1], "received 10000");
}

#[test]
fn a_file_cut_short_leaves_what_arrived_unflushed_and_no_frame() {
    let body = vec![9u8; 10_000];
    let wire = frame(&body);
    // The stream ends 4,000 bytes before the frame does.
    let (log, bytes) = run(&wire[..wire.len() - 4_000], 1_000);
    assert!(!bytes.is_empty() && bytes.len() < body.len());
    assert!(bytes.iter().all(|&b| b == 9));
    assert!(
        !log.iter()
            .any(|e| e == "flush" || e.starts_with("received")),
        "{log:?}"
    );
    assert!(log.last().unwrap().starts_with("disconnected"), "{log:?}");
}
