//! The accept loop survives running out of file descriptors, without
//! spinning, and serves the waiting connection once descriptors are back.
//!
//! In its own test binary: it lowers the process's descriptor limit.

use std::os::fd::AsRawFd;
use std::time::Duration;

use rlimit::Resource;
use tej_mio::Frame;
use tej_test_support::{
    handlers::Echo,
    peer::{self, text, wait_until, Peer},
};

mod support;

/// The two lowest descriptor numbers free in this process.
fn two_lowest_free_fds() -> (u64, u64) {
    let first = std::fs::File::open("/dev/null").unwrap();
    let second = std::fs::File::open("/dev/null").unwrap();
    (first.as_raw_fd() as u64, second.as_raw_fd() as u64)
}

#[test]
fn accept_errors_pause_the_listener_and_the_server_goes_on() {
    let (server, events) = support::serve_logging(Echo);
    let mut first = Peer::connect(server.addr);
    first.send(&Frame::message("one"));
    assert_eq!(text(&first.recv().unwrap().unwrap()), "echo: one");

    // Leave exactly one free descriptor below the limit: the client socket
    // takes it, and the server's accept then fails with EMFILE.
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    let ticks_before = peer::cpu_ticks();
    let (_only_free, limit) = two_lowest_free_fds();
    rlimit::setrlimit(Resource::NOFILE, limit, hard).unwrap();
    let mut waiting = Peer::connect(server.addr);
    waiting.send(&Frame::message("two"));

    // Starved for a while: the server must neither stop nor spin.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !server.is_finished(),
        "the server stopped on an accept error"
    );
    assert_eq!(events.len(), 2, "accepted without a descriptor?");
    // Established connections are unaffected.
    first.send(&Frame::message("three"));
    assert_eq!(text(&first.recv().unwrap().unwrap()), "echo: three");

    rlimit::setrlimit(Resource::NOFILE, soft, hard).unwrap();
    // (Reading the CPU time needs a descriptor too.)
    let ticks = peer::cpu_ticks() - ticks_before;
    // A spinning loop would burn about 60 ticks (at 100 Hz) in 600 ms.
    assert!(ticks < 20, "the accept loop spun: {ticks} ticks in 600 ms");
    assert_eq!(text(&waiting.recv().unwrap().unwrap()), "echo: two");
    wait_until("the second connection", || {
        events.contains("received two files=0")
    });
    drop((first, waiting));
    server.stop();
}
