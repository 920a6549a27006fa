//! Load, on every adapter (issue 9): a thousand clients connected to one
//! server at once, each sending frames with files and messages and
//! checking every answer. Nothing lost, nothing duplicated, order kept per
//! connection, every payload verified by its sha256.
//!
//! The clients are raw `std::net::TcpStream`s on a small pool of threads,
//! encoding with tej-core and decoding answers with its `Assembler`. The
//! server answers each frame with the digest of its content. One runtime at
//! a time (a lock), so each one's time and memory can be quoted alone.
//!
//! Two more tests need a thousand connections and a quiet process: a burst
//! of connects must not leave clients waiting on the accept queue, and an
//! idle connection must cost the server little memory.

use tej_test_support::recorder;
use tej_test_support::{hostile, per_runtime};

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hostile::*;
use recorder::{content_digest, Record, Seen};
use tej_core::{Assembler, Connection, DisconnectReason, Frame, Handler, Limits, SessionConfig};
use tej_core::{FrameBuilder, Status};
use tej_examples::runtime::{self, Runtime};

/// Clients connected at once.
const CLIENTS: usize = 1000;
/// Threads the clients share.
const CLIENT_THREADS: usize = 16;
/// Frames each client sends, one answer awaited per round.
const ROUNDS: usize = 4;
/// The most this test process's resident memory may grow while a thousand
/// connections are busy (server and clients together). Growth, not the
/// level: memory an earlier test of this process freed may stay resident.
const RSS_GROWTH_CEILING_MIB: u64 = 256;

/// One load test at a time in this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Waits for this process's turn at a load test, then makes room for
/// `peers` client sockets, as many server sockets, and spare ones.
fn alone_with_room_for(peers: usize) -> MutexGuard<'static, ()> {
    let alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    ensure_fd_limit(2 * peers as u64 + 1024);
    alone
}

/// The server's handler: answers every frame with its content digest.
#[derive(Clone)]
struct DigestEcho {
    record: Record,
    frames: Arc<AtomicUsize>,
}

impl Handler for DigestEcho {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.record.push(Seen::Connected);
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        conn.send(Frame::message(content_digest(&frame)))
            .expect("answer queued");
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.record.push(Seen::Disconnected(reason.to_string()));
    }
}

/// Client `client`'s frame of round `round`: 0 to 3 files of up to 12 KiB
/// and a message (or none), all derived from the pair, so that any mix-up
/// changes the digest.
fn load_frame(client: usize, round: usize) -> Frame {
    let mut rng = Rng::new((client * ROUNDS + round) as u64 + 1);
    // Status 2 is a ping, which is not answered.
    let status = 10 + ((client + round) % 100) as u8;
    let mut builder = FrameBuilder::new(Status::new(status).unwrap());
    for file in 0..rng.below(4) {
        let len = rng.below(12 * 1024) as usize;
        builder = builder.file(
            format!("client-{client}/round-{round}/file-{file}.bin"),
            rng.bytes(len),
        );
    }
    if rng.below(4) != 0 {
        let mut message = format!("client {client} round {round} ").into_bytes();
        let extra = rng.below(512) as usize;
        message.extend(rng.bytes(extra));
        builder = builder.message(message);
    }
    builder.build()
}

/// One client's connection and what it has checked.
struct Client {
    id: usize,
    stream: TcpStream,
    assembler: Assembler,
    pending: Vec<u8>,
}

fn connect_client(addr: SocketAddr, id: usize) -> Client {
    let stream = raw_connect(addr);
    stream.set_nodelay(true).unwrap();
    Client {
        id,
        stream,
        assembler: Assembler::new(Limits::default()),
        pending: Vec::new(),
    }
}

/// Figures from one client thread.
#[derive(Default)]
struct ThreadReport {
    frames: usize,
    bytes_sent: usize,
    slowest_connect: Duration,
}

fn client_thread(
    addr: SocketAddr,
    ids: Vec<usize>,
    connected: Arc<Barrier>,
    go: Arc<Barrier>,
) -> ThreadReport {
    let mut report = ThreadReport::default();
    let mut clients: Vec<Client> = ids
        .into_iter()
        .map(|id| {
            let started = Instant::now();
            let client = connect_client(addr, id);
            report.slowest_connect = report.slowest_connect.max(started.elapsed());
            client
        })
        .collect();
    connected.wait();
    go.wait();
    for round in 0..ROUNDS {
        for client in &mut clients {
            let wire = load_frame(client.id, round).encode_to_vec().unwrap();
            client.stream.write_all(&wire).unwrap();
            report.bytes_sent += wire.len();
        }
        for client in &mut clients {
            let answer = read_frame(
                &mut client.stream,
                &mut client.assembler,
                &mut client.pending,
            )
            .unwrap_or_else(|error| {
                panic!("client {} round {round}: no answer: {error}", client.id)
            });
            let expected = content_digest(&load_frame(client.id, round));
            assert_eq!(
                answer.message.as_deref(),
                Some(expected.as_bytes()),
                "client {} round {round}: the answer is not this frame's digest",
                client.id
            );
            assert!(answer.files.is_empty());
            report.frames += 1;
        }
    }
    // Nothing more may come: no duplicate, no stray answer.
    for client in &mut clients {
        client.stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.stream.read_to_end(&mut rest).unwrap();
        assert!(
            client.pending.is_empty() && rest.is_empty(),
            "client {}: {} bytes beyond the answers",
            client.id,
            client.pending.len() + rest.len()
        );
    }
    report
}

fn thousand_clients(runtime: Runtime) {
    let _alone = alone_with_room_for(CLIENTS);
    let started = Instant::now();
    let sampler = RssSampler::start();
    let before = memory();
    let overflows_before = listen_overflows();

    let record = Record::default();
    let frames = Arc::new(AtomicUsize::new(0));
    let handler = DigestEcho {
        record: record.clone(),
        frames: frames.clone(),
    };
    watch_panics();
    let server = runtime::start_server(runtime, loopback(), SessionConfig::default(), move || {
        handler.clone()
    })
    .expect("server starts");
    let addr = server.addr();

    let connected = Arc::new(Barrier::new(CLIENT_THREADS + 1));
    let go = Arc::new(Barrier::new(CLIENT_THREADS + 1));
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|thread| {
            let ids: Vec<usize> = (thread..CLIENTS).step_by(CLIENT_THREADS).collect();
            let connected = connected.clone();
            let go = go.clone();
            std::thread::Builder::new()
                .name(format!("hostile-load-{thread}"))
                .spawn(move || client_thread(addr, ids, connected, go))
                .unwrap()
        })
        .collect();

    connected.wait();
    record.wait_until("a thousand connections accepted", WAIT, |seen| {
        seen.len() == CLIENTS
    });
    let connect_time = started.elapsed();
    let held = record.snapshot().len();
    let exchange_started = Instant::now();
    go.wait();
    let reports: Vec<ThreadReport> = threads
        .into_iter()
        .map(|thread| thread.join().expect("a client thread failed"))
        .collect();
    let exchange_time = exchange_started.elapsed();
    let seen = record.wait_until("every connection's end", WAIT, |seen| {
        seen.len() == 2 * CLIENTS
    });
    let peak = sampler.stop();
    let after = memory();
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map_or("unknown".to_string(), |(after, before)| {
            (after - before).to_string()
        });

    let answered: usize = reports.iter().map(|report| report.frames).sum();
    let bytes_sent: usize = reports.iter().map(|report| report.bytes_sent).sum();
    let slowest_connect = reports
        .iter()
        .map(|report| report.slowest_connect)
        .max()
        .unwrap();
    assert_eq!(answered, CLIENTS * ROUNDS, "every frame answered");
    assert_eq!(
        frames.load(Ordering::Relaxed),
        CLIENTS * ROUNDS,
        "the server received each frame exactly once"
    );
    let ends: Vec<&Seen> = seen
        .iter()
        .filter(|seen| matches!(seen, Seen::Disconnected(_)))
        .collect();
    assert_eq!(ends.len(), CLIENTS);
    for end in ends {
        assert_eq!(
            end,
            &Seen::Disconnected("peer closed the connection".into())
        );
    }
    assert_served_promptly(runtime, addr, "after-load");
    assert_no_runtime_panic();
    let growth = peak.saturating_sub(before.rss_kib);
    assert!(
        growth < RSS_GROWTH_CEILING_MIB * 1024,
        "{runtime}: RSS grew by {:.1} MiB under load; the ceiling is {RSS_GROWTH_CEILING_MIB} MiB",
        mib(growth)
    );
    server.stop();
    eprintln!(
        "[hostile] {runtime} load: {held} connections held at once ({CLIENTS} clients on \
         {CLIENT_THREADS} threads), {answered} frames ({:.1} MiB) sent and answered, all \
         digests right, in order, none duplicated; connect {connect_time:?} (slowest single \
         connect {slowest_connect:?}; accept-queue overflows {overflows}), exchange \
         {exchange_time:?}, total {:?}; RSS before {:.1} MiB, peak sampled {:.1} MiB, after \
         {:.1} MiB, VmHWM {:.1} MiB",
        bytes_sent as f64 / (1 << 20) as f64,
        started.elapsed(),
        mib(before.rss_kib),
        mib(peak),
        mib(after.rss_kib),
        mib(after.hwm_kib)
    );
}

/// Connections opened at once in the burst.
const BURST: usize = 1000;
/// The most a loopback connect may take during the burst. The kernel
/// completes the handshake itself while the listener's accept queue has
/// room; a SYN dropped on a full queue is retried after a second.
const CONNECT_BOUND: Duration = Duration::from_millis(500);

/// A thousand clients connect at once, as fast as 16 threads can: every
/// connect completes promptly (none waits for a SYN retransmit because the
/// accept queue overflowed), every connection is accepted, and a
/// well-behaved client is served meanwhile.
fn connection_burst(runtime: Runtime) {
    let _alone = alone_with_room_for(BURST);
    let record = Record::default();
    let server = serve(runtime, SessionConfig::default(), digest_echo(&record));
    let addr = server.addr();
    let overflows_before = listen_overflows();
    let go = Arc::new(Barrier::new(CLIENT_THREADS + 1));
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|thread| {
            let go = go.clone();
            let count = (thread..BURST).step_by(CLIENT_THREADS).count();
            std::thread::Builder::new()
                .name(format!("hostile-burst-{thread}"))
                .spawn(move || {
                    go.wait();
                    (0..count)
                        .map(|_| {
                            let started = Instant::now();
                            let stream = TcpStream::connect(addr).expect("connect");
                            (stream, started.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    go.wait();
    let connections: Vec<(TcpStream, Duration)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("a burst thread failed"))
        .collect();
    let connected = started.elapsed();
    record.wait_until("every connection of the burst accepted", WAIT, |seen| {
        seen.len() == BURST
    });
    let accepted = started.elapsed();
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map_or("unknown".to_string(), |(after, before)| {
            (after - before).to_string()
        });
    let probe = assert_served_promptly(runtime, addr, "during-burst");
    let slowest = connections.iter().map(|(_, took)| *took).max().unwrap();
    let late = connections
        .iter()
        .filter(|(_, took)| *took >= CONNECT_BOUND)
        .count();
    drop(connections);
    record.wait_until("every connection's end", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Disconnected(_)))
            .count()
            == BURST + 1
    });
    assert_no_runtime_panic();
    server.stop();
    eprintln!(
        "[hostile] {runtime} burst: {BURST} connects from {CLIENT_THREADS} threads done in \
         {connected:?}, all accepted after {accepted:?}; slowest connect {slowest:?}, {late} \
         took {CONNECT_BOUND:?} or more; accept-queue overflows {overflows}; a client served \
         in {probe:?} meanwhile"
    );
    // The kernel caps every listener's backlog at somaxconn: below the
    // burst's size no server can take it without drops.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < BURST {
        eprintln!("net.core.somaxconn is {somaxconn}: the burst's connect times are not checked");
        return;
    }
    assert_eq!(
        late, 0,
        "{runtime}: {late} of {BURST} connects took {CONNECT_BOUND:?} or more (slowest \
         {slowest:?}); the kernel counted {overflows} accept-queue overflows: SYNs were dropped \
         because the listener's backlog filled before the server accepted"
    );
}

/// Idle connections whose memory is measured.
const IDLE: usize = 1000;
/// The most one idle connection may add to the server's resident memory.
/// A peer that sends nothing should cost little more than its socket and
/// session; a read buffer of the default 256 KiB, zeroed up front for
/// each connection, does not fit.
const IDLE_COST_CEILING_KIB: u64 = 64;

/// A thousand peers connect and send nothing: each costs the server a
/// bounded, small amount of resident memory. Measured after some ordinary
/// traffic has come and gone, as on a server that has been running.
fn idle_connection_cost(runtime: Runtime) {
    let _alone = alone_with_room_for(IDLE);
    let record = Record::default();
    let server = serve(runtime, SessionConfig::default(), digest_echo(&record));
    let addr = server.addr();
    for i in 0..30 {
        round_trip(runtime, addr, &format!("warm-up-{i}"));
    }
    record.wait_until("the warm-up's end", WAIT, |seen| seen.len() == 3 * 30);
    std::thread::sleep(Duration::from_millis(200));
    let before = memory().rss_kib;
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| {
            std::thread::sleep(Duration::from_micros(300));
            raw_connect(addr)
        })
        .collect();
    record.wait_until("every idle peer accepted", WAIT, |seen| {
        seen.len() == 3 * 30 + IDLE
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = memory().rss_kib;
    let per_connection = after.saturating_sub(before) / IDLE as u64;
    let probe = assert_served_promptly(runtime, addr, "among-idle");
    drop(idle);
    record.wait_until("every idle peer's end", WAIT, |seen| {
        seen.len() == 3 * 30 + 3 + 2 * IDLE
    });
    assert_no_runtime_panic();
    server.stop();
    eprintln!(
        "[hostile] {runtime} idle cost: {IDLE} idle connections took RSS from {:.1} to {:.1} \
         MiB, {per_connection} KiB each; a client served in {probe:?} among them",
        mib(before),
        mib(after)
    );
    assert!(
        per_connection <= IDLE_COST_CEILING_KIB,
        "{runtime}: each idle connection costs {per_connection} KiB of resident memory \
         ({IDLE} cost {:.1} MiB); the ceiling is {IDLE_COST_CEILING_KIB} KiB",
        mib(after - before)
    );
}

per_runtime! {
    check: every_runtime_is_loaded;
    runtimes: [tokio: "tokio", async_std: "async-std", smol: "smol", mio: "mio"];
    tests: {
        thousand_clients: thousand_clients();
        idle_connection_cost: idle_connection_cost();
        connection_burst: connection_burst();
    }
}
