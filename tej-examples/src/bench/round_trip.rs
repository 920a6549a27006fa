//! The round-trip workload: request and response on one connection, one
//! [`ROUND_TRIP_FRAME_LEN`]-byte frame each way, against a blocking
//! ping-pong of the same bytes on plain sockets with `TCP_NODELAY`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

use tej_core::{Connection, Frame, Handler, SessionConfig, Status};

use super::harness::{joined, loopback, wait};
use crate::runtime::{self, Runtime};

/// Bytes of one round trip's frame each way: a TEJ frame with no files and
/// no message.
pub const ROUND_TRIP_FRAME_LEN: usize = 18;

/// The round trips' frame: no files, no message.
fn round_trip_frame() -> Frame {
    Frame::new(Status::DEFAULT)
}

/// Answers every frame with a [`round_trip_frame`].
struct Responder;

impl Handler for Responder {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let _ = conn.send(round_trip_frame());
    }
}

/// Sends a request on connect and on every reply. The first round trip
/// warms up; the clock starts at its reply and stops `left` replies later.
struct Requester {
    left: u64,
    started: Option<Instant>,
    done: SyncSender<Duration>,
}

impl Handler for Requester {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn.send(round_trip_frame());
    }

    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let Some(started) = self.started else {
            self.started = Some(Instant::now());
            let _ = conn.send(round_trip_frame());
            return;
        };
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.send(started.elapsed());
        } else {
            let _ = conn.send(round_trip_frame());
        }
    }
}

/// `count` round trips after one to warm up, timed by the client's handler.
pub(super) fn tej_round_trips(runtime: Runtime, count: u64) -> io::Result<Duration> {
    let server =
        runtime::start_server(runtime, loopback(), SessionConfig::default(), || Responder)?;
    let (done_tx, done) = mpsc::sync_channel(1);
    let client = runtime::connect(
        runtime,
        server.addr(),
        Requester {
            left: count,
            started: None,
            done: done_tx,
        },
        SessionConfig::default(),
    )?;
    let took = wait(&done, "the round trips")?;
    client.close()?;
    server.stop();
    Ok(took)
}

/// A blocking ping-pong on plain sockets with `TCP_NODELAY`: one
/// [`ROUND_TRIP_FRAME_LEN`]-byte TEJ frame each way, `count` times after
/// one to warm up.
pub(super) fn plain_ping_pong(count: u64) -> io::Result<Duration> {
    let frame = round_trip_frame()
        .encode_to_vec()
        .map_err(|error| io::Error::other(error.to_string()))?;
    if frame.len() != ROUND_TRIP_FRAME_LEN {
        return Err(io::Error::other(format!(
            "the round trip frame is {} bytes, not {ROUND_TRIP_FRAME_LEN}",
            frame.len()
        )));
    }
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let reply = frame.clone();
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut request = [0u8; ROUND_TRIP_FRAME_LEN];
        for _ in 0..=count {
            stream.read_exact(&mut request)?;
            stream.write_all(&reply)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut answer = [0u8; ROUND_TRIP_FRAME_LEN];
    stream.write_all(&frame)?;
    stream.read_exact(&mut answer)?;
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&frame)?;
        stream.read_exact(&mut answer)?;
    }
    let took = started.elapsed();
    joined(server, "the ping-pong server")?;
    Ok(took)
}
