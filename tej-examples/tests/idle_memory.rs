//! What an idle connection holds on the server, on every runtime: the heap
//! still allocated once `CONNECTIONS` plain TCP connections that send
//! nothing are open, counted by an instrumented global allocator, stays
//! under `IDLE_BUDGET` bytes each.
//!
//! This is the cost BENCHMARKS.md measures as RSS ("Idle connections"):
//! the read buffer made only once bytes arrive, and the connection's
//! futures holding each of their parts once. A future that keeps its
//! arguments beside the future they are moved into (an `async fn` over
//! the session) or a handshake's state kept for the connection's life
//! triples it (10 KiB, found in BENCHMARKS.md, "Idle connections, again").
//! No tracing subscriber is installed, so spans cost nothing here.
#![cfg(not(miri))]

use std::alloc::System;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tej_core::{ConnectionInfo, Handler, SessionConfig};
use tej_examples::runtime::{self, Runtime};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Connections opened first and kept, so that what a runtime allocates
/// once (worker state, slab pages, the listener's buffers) is not counted.
const WARM_UP: usize = 50;
/// Connections measured.
const CONNECTIONS: usize = 300;
/// Bytes of heap an idle connection may hold on the server: its task, its
/// session, its send queue and the runtime's registration (about 3 KiB).
const IDLE_BUDGET: usize = 4096;

/// A handler that does nothing.
struct Idle;

impl Handler for Idle {}

/// Bytes allocated and not yet freed, in every thread.
fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Opens `count` connections into `streams` and waits until the server has
/// made a handler for every connection so far, then a moment for each
/// session's first poll.
fn open(
    addr: std::net::SocketAddr,
    count: usize,
    streams: &mut Vec<TcpStream>,
    made: &AtomicUsize,
) -> Result<(), String> {
    for _ in 0..count {
        let stream = TcpStream::connect(addr).map_err(|error| format!("connect: {error}"))?;
        streams.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while made.load(Ordering::SeqCst) < streams.len() {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} connections served after 20 s",
                made.load(Ordering::SeqCst),
                streams.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

#[test]
fn an_idle_connection_holds_under_4_kib_on_every_runtime() {
    let mut over = Vec::new();
    for &runtime in Runtime::ALL {
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let server = runtime::start_server(
            runtime,
            "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
            SessionConfig::default(),
            move |_: &ConnectionInfo| {
                counted.fetch_add(1, Ordering::SeqCst);
                Idle
            },
        )
        .expect("start the server");
        let mut streams = Vec::with_capacity(WARM_UP + CONNECTIONS);
        open(server.addr(), WARM_UP, &mut streams, &made).unwrap();
        let before = live_bytes();
        open(server.addr(), CONNECTIONS, &mut streams, &made).unwrap();
        let after = live_bytes();
        let each = (after - before) / CONNECTIONS as isize;
        println!(
            "IDLE-MEMORY {}: {each} bytes of heap per idle connection",
            runtime.name()
        );
        if each > IDLE_BUDGET as isize {
            over.push(format!("{}: {each} bytes", runtime.name()));
        }
        drop(streams);
        server.stop();
    }
    assert!(
        over.is_empty(),
        "idle connections over {IDLE_BUDGET} bytes each: {}",
        over.join(", ")
    );
}
