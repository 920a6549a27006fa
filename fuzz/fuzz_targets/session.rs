//! Two sessions wired back to back under a fuzzer-chosen sequence of
//! operations: callbacks come in the documented order and `disconnected`
//! runs exactly once for each.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tej_core::{
    Connection, DisconnectReason, Frame, FrameBuilder, Handler, Limits, Session, SessionConfig,
    Status,
};

#[derive(Debug, Arbitrary)]
enum Op {
    Send {
        side: bool,
        /// How: `try_send`, `feed`, or a `BufferedSender`.
        how: u8,
        status: u8,
        files: Vec<(String, Vec<u8>)>,
        message: Vec<u8>,
    },
    SendFromCallback {
        side: bool,
    },
    Flush {
        side: bool,
    },
    Deliver {
        side: bool,
        max: u16,
    },
    Raw {
        side: bool,
        bytes: Vec<u8>,
    },
    Advance {
        millis: u16,
    },
    Close {
        side: bool,
    },
    Shutdown {
        side: bool,
    },
    Eof {
        side: bool,
    },
    IoError {
        side: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    Connected,
    Frame,
    Disconnected,
}

#[derive(Default)]
struct Checker {
    log: Rc<RefCell<Vec<Callback>>>,
    reply_next: Rc<RefCell<bool>>,
}

impl Checker {
    fn record(&self, callback: Callback) {
        let mut log = self.log.borrow_mut();
        match callback {
            Callback::Connected => assert!(log.is_empty(), "connected must come first, once"),
            _ => assert_eq!(
                log.first(),
                Some(&Callback::Connected),
                "nothing before connected"
            ),
        }
        assert!(
            !log.contains(&Callback::Disconnected),
            "nothing after disconnected"
        );
        log.push(callback);
    }
}

impl Handler for Checker {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.record(Callback::Connected);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        assert!(!frame.is_ping());
        self.record(Callback::Frame);
        if std::mem::take(&mut *self.reply_next.borrow_mut()) {
            let _ = conn.send(Frame::message("reply"));
        }
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        assert!(frame.is_ping());
        self.record(Callback::Frame);
    }
    fn disconnected(&mut self, _reason: DisconnectReason) {
        self.record(Callback::Disconnected);
    }
}

fn config() -> SessionConfig {
    SessionConfig::default()
        .limits(
            Limits::DEFAULT
                .max_file_count(16)
                .max_name_len(128)
                .max_file_size(1 << 16)
                .max_message_size(1 << 16)
                .max_frame_size(1 << 17),
        )
        .idle_timeout(Some(Duration::from_millis(5_000)))
        .ping_interval(Some(Duration::from_millis(700)))
        .send_queue_capacity(1 << 16)
        .outbox_high_water(1 << 16)
        .close_linger(Duration::from_millis(2_000))
}

/// Moves up to `max` bytes from `from` to `to`; returns how many.
fn deliver(
    from: &mut Session<Checker>,
    to: &mut Session<Checker>,
    max: usize,
    now: Duration,
) -> usize {
    if !from.wants_write() || !to.wants_read() {
        return 0;
    }
    let mut slices: [&[u8]; 8] = [&[]; 8];
    let filled = from.transmit(&mut slices);
    let mut bytes = Vec::new();
    for slice in &slices[..filled] {
        bytes.extend_from_slice(slice);
    }
    bytes.truncate(max.max(1));
    let used = to.handle_input(&bytes, now);
    assert!(used <= bytes.len());
    from.advance(used);
    used
}

/// Polls `future` once; `None` if it was not ready.
fn poll_once<F: std::future::Future>(future: F, waker: &std::task::Waker) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let logs = [
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(Vec::new())),
    ];
    let replies = [Rc::new(RefCell::new(false)), Rc::new(RefCell::new(false))];
    let mut sessions: Vec<Session<Checker>> = (0..2)
        .map(|i| {
            Session::new(
                Checker {
                    log: logs[i].clone(),
                    reply_next: replies[i].clone(),
                },
                config(),
            )
        })
        .collect();
    let mut now = Duration::ZERO;
    for session in &mut sessions {
        session.start(now);
    }
    let waker = std::task::Waker::noop().clone();
    let mut buffered: [Option<tej_core::BufferedSender>; 2] = [None, None];
    for op in ops.into_iter().take(256) {
        match op {
            Op::Send {
                side,
                how,
                status,
                files,
                message,
            } => {
                let mut builder =
                    FrameBuilder::new(Status::new(status & 0x7f).unwrap()).message(message);
                for (name, data) in files.into_iter().take(4) {
                    builder = builder.file(name, data);
                }
                let frame = builder.build();
                let sender = sessions[usize::from(side)].sender();
                // Nothing here may block: a full queue has no other thread
                // to drain it, so futures are polled once and dropped.
                match how % 3 {
                    0 => {
                        let _ = sender.try_send(frame);
                    }
                    1 => {
                        let _ = poll_once(sender.feed(frame), &waker);
                    }
                    _ => {
                        let buffered =
                            buffered[usize::from(side)].get_or_insert_with(|| sender.buffered());
                        let _ = poll_once(buffered.feed(frame), &waker);
                    }
                }
                sessions[usize::from(side)].poll_queue(&waker);
            }
            Op::Flush { side } => {
                sessions[usize::from(side)].sender().flush();
                if let Some(buffered) = &mut buffered[usize::from(side)] {
                    let _ = poll_once(buffered.flush(), &waker);
                }
                sessions[usize::from(side)].poll_queue(&waker);
            }
            Op::SendFromCallback { side } => *replies[usize::from(side)].borrow_mut() = true,
            Op::Deliver { side, max } => {
                let (a, b) = sessions.split_at_mut(1);
                let (from, to) = if side {
                    (&mut b[0], &mut a[0])
                } else {
                    (&mut a[0], &mut b[0])
                };
                deliver(from, to, usize::from(max), now);
            }
            Op::Raw { side, bytes } => {
                let used = sessions[usize::from(side)].handle_input(&bytes, now);
                assert!(used <= bytes.len());
            }
            Op::Advance { millis } => {
                now += Duration::from_millis(u64::from(millis));
                for session in &mut sessions {
                    if session
                        .poll_timeout()
                        .is_some_and(|deadline| deadline <= now)
                    {
                        session.handle_timeout(now);
                    }
                }
            }
            Op::Close { side } => sessions[usize::from(side)].close(),
            Op::Shutdown { side } => sessions[usize::from(side)].shutdown(),
            Op::Eof { side } => sessions[usize::from(side)].handle_eof(now),
            Op::IoError { side } => sessions[usize::from(side)]
                .handle_io_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        }
        for (session, log) in sessions.iter().zip(&logs) {
            // Closed means disconnected has run, and only then.
            assert_eq!(
                session.is_closed(),
                log.borrow().last() == Some(&Callback::Disconnected)
            );
        }
    }
    drop(buffered);
    drop(sessions);
    for log in &logs {
        let log = log.borrow();
        assert_eq!(log.first(), Some(&Callback::Connected));
        assert_eq!(log.last(), Some(&Callback::Disconnected));
        assert_eq!(
            log.iter().filter(|c| **c == Callback::Disconnected).count(),
            1
        );
        assert_eq!(log.iter().filter(|c| **c == Callback::Connected).count(), 1);
    }
});
