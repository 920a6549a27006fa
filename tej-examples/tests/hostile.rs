//! Hostile peers against a running server, on every adapter (issue 9):
//! malformed input, slow and idle peers, a peer that never reads, and
//! connections cut mid-file in both directions. After every attack a
//! well-behaved client must still be served, correctly and promptly.
//!
//! Loopback only; every wait is bounded. Each scenario is written once and
//! instantiated per runtime by `hostile!` at the bottom. The load test is
//! in `hostile_load.rs`, the descriptor-exhaustion test (which lowers a
//! process-wide limit) in `hostile_fds.rs`.

use tej_test_support::recorder;
use tej_test_support::{harness, hostile, report};

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hostile::*;
use recorder::{content_digest, Record, Recorder, Seen};
use tej_core::{Frame, FrameBuilder, Limits, SendError, SessionConfig, Status};
use tej_examples::runtime::{self, RunningServer, Runtime};

/// The most this test process may hold resident, at any time, with every
/// scenario of every runtime running in parallel. The attacks announce
/// lengths up to 2^64-1; a server that believed them would blow far past it.
const RSS_CEILING_MIB: u64 = 512;

/// Idle connections held open at once in the slow-and-idle scenarios.
const IDLE_CONNECTIONS: usize = 300;

fn count_connected(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|seen| matches!(seen, Seen::Connected))
        .count()
}

fn count_disconnected(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|seen| matches!(seen, Seen::Disconnected(_)))
        .count()
}

/// How many times each reason was given.
fn tally(reasons: &[String]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for reason in reasons {
        *tally.entry(reason.clone()).or_insert(0) += 1;
    }
    tally
}

/// The reason of every `disconnected` in `seen`, in order.
fn disconnect_reasons(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|seen| match seen {
            Seen::Disconnected(reason) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A well-behaved round trip, then the server's record of its end.
fn probe(runtime: Runtime, server: &RunningServer, record: &Record, tag: &str) -> Duration {
    let before = record.disconnects().len();
    let elapsed = assert_served_promptly(runtime, server.addr(), tag);
    record.wait_until("the probe's end on the server", WAIT, |seen| {
        count_disconnected(seen) > before
    });
    assert_eq!(
        record.disconnects()[before],
        "peer closed the connection",
        "the probe's end"
    );
    elapsed
}

// ---------------------------------------------------------------------------
// 1. Malformed input.

/// Raw frame bytes, field by field.
#[derive(Default, Clone)]
struct Wire(Vec<u8>);

impl Wire {
    /// A frame's first two bytes: `status_byte` (the status bit included)
    /// and version 1.
    fn start(status_byte: u8) -> Wire {
        Wire(vec![status_byte, 1])
    }
    fn byte(mut self, byte: u8) -> Wire {
        self.0.push(byte);
        self
    }
    fn u16(mut self, value: u16) -> Wire {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn u64(mut self, value: u64) -> Wire {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn bytes(mut self, bytes: &[u8]) -> Wire {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// One attack: bytes sent on a connection of their own.
struct Attack {
    name: String,
    bytes: Vec<u8>,
    /// Close our write side after the bytes (otherwise the server must
    /// close the connection by itself).
    then_eof: bool,
    /// The reason the server's `disconnected` must get.
    reason: String,
}

impl Attack {
    fn new(name: &str, bytes: Vec<u8>, then_eof: bool, reason: &str) -> Attack {
        Attack {
            name: name.to_string(),
            bytes,
            then_eof,
            reason: reason.to_string(),
        }
    }
}

/// The template frame the truncations cut: status 5, one file "a.txt"
/// ("data"), message "hello". Field offsets: status 0, version 1, file
/// count 2..10, name length 10..12, name 12..17, file size 17..25, data
/// 25..29, message length 29..37, message 37..42.
fn template() -> Vec<u8> {
    let wire = FrameBuilder::new(Status::new(5).unwrap())
        .file("a.txt", &b"data"[..])
        .message("hello")
        .build()
        .encode_to_vec()
        .unwrap();
    assert_eq!(wire.len(), 42);
    wire
}

fn malformed_attacks() -> Vec<Attack> {
    let whole = template();
    let eof = |field: &str, at: usize| {
        format!("protocol error: stream ended inside the {field} at offset {at}")
    };
    let mut attacks = vec![
        // The status bit.
        Attack::new(
            "status bit 0",
            Wire::start(0x05).u64(0).u64(0).0,
            false,
            "protocol error: status bit is 0 in first byte 0x05 of a frame at offset 0",
        ),
        Attack::new(
            "status bit 0 in the second frame",
            Wire(whole.clone()).byte(0x7f).0,
            false,
            "protocol error: status bit is 0 in first byte 0x7f of a frame at offset 42",
        ),
        // Every field truncated, then the socket closed. A stream may end
        // where a status byte would start: that is a clean close.
        Attack::new(
            "truncated: status (the stream ends where one would start)",
            whole.clone(),
            true,
            "peer closed the connection",
        ),
    ];
    let truncations = [
        ("version", "protocol version", 1),
        ("file count", "file count", 6),
        ("name length", "file name length", 11),
        ("name", "file name", 14),
        ("file size", "file size", 20),
        ("file data", "file data", 27),
        ("message length", "message length", 33),
        ("message", "message", 40),
    ];
    attacks.extend(truncations.map(|(name, field, at)| {
        Attack::new(
            &format!("truncated: {name}"),
            whole[..at].to_vec(),
            true,
            &eof(field, at),
        )
    }));
    attacks.extend([
        // Lengths no one should believe.
        Attack::new(
            "file count 2^64-1",
            Wire::start(0x80).u64(u64::MAX).0,
            false,
            "protocol error: file count 18446744073709551615 exceeds the limit of 1024 at offset 2",
        ),
        Attack::new(
            "file length 2^63 with a few bytes behind",
            Wire::start(0x80)
                .u64(1)
                .u16(5)
                .bytes(b"a.txt")
                .u64(1 << 63)
                .bytes(b"abcd")
                .0,
            false,
            "protocol error: file size 9223372036854775808 exceeds the limit of 1073741824 at offset 17",
        ),
        Attack::new(
            "message length 2^63 with a few bytes behind",
            Wire::start(0x80)
                .u64(0)
                .u64(1 << 63)
                .bytes(b"abcd")
                .0,
            false,
            "protocol error: message size 9223372036854775808 exceeds the limit of 67108864 at offset 10",
        ),
        Attack::new(
            // Within the defaults (the wire's longest name), then cut short.
            "name length 65535, 3 bytes of it, end of stream",
            Wire::start(0x80)
                .u64(1)
                .u16(u16::MAX)
                .bytes(b"abc")
                .0,
            true,
            "protocol error: stream ended inside the file name at offset 15",
        ),
        // Names.
        Attack::new(
            "invalid UTF-8 name",
            Wire::start(0x80)
                .u64(1)
                .u16(4)
                .bytes(&[0xff, 0xfe, b'A', b'B'])
                .u64(0)
                .u64(0)
                .0,
            false,
            "protocol error: file 0 has a name that is not UTF-8 (valid up to byte 0) at offset 12",
        ),
        // The reference's bug: the name length counts characters. "é.txt"
        // is 5 characters, 6 bytes: the name read is "é.tx" and the file
        // size starts at the "t".
        Attack::new(
            "reference bug: \"é.txt\" with name length 5",
            Wire::start(0x80)
                .u64(1)
                .u16(5)
                .bytes("é.txt".as_bytes())
                .u64(4)
                .bytes(b"data")
                .u64(0)
                .0,
            false,
            "protocol error: file size 8358680908399640576 exceeds the limit of 1073741824 at offset 17",
        ),
        // The same bug where the cut falls inside a character.
        Attack::new(
            "reference bug: \"aé\" with name length 2",
            Wire::start(0x80)
                .u64(1)
                .u16(2)
                .bytes("aé".as_bytes())
                .u64(4)
                .bytes(b"data")
                .u64(0)
                .0,
            false,
            "protocol error: file 0 has a name that is not UTF-8 (valid up to byte 1) at offset 12",
        ),
    ]);
    // Every other cut of the template, at every byte, reasons from the oracle.
    for cut in 1..whole.len() {
        let (_, reason) = oracle(&whole[..cut], Limits::default(), true);
        let reason = reason.unwrap();
        assert!(
            reason.starts_with("protocol error: stream ended inside the "),
            "{reason}"
        );
        attacks.push(Attack::new(
            &format!("cut at byte {cut}"),
            whole[..cut].to_vec(),
            true,
            &reason,
        ));
    }
    // Seeded garbage, half of it behind a valid-looking status byte.
    for seed in 1..=12u64 {
        let mut rng = Rng::new(seed);
        let len = 1 + rng.below(4096) as usize;
        let mut bytes = rng.bytes(len);
        if seed % 2 == 0 {
            bytes[0] |= 0x80;
        }
        let (_, reason) = oracle(&bytes, Limits::default(), true);
        attacks.push(Attack::new(
            &format!("garbage seed {seed} ({len} bytes)"),
            bytes,
            true,
            &reason.unwrap(),
        ));
    }
    attacks
}

/// Sends one attack on a connection of its own and checks how it ended:
/// the server closed it, answered exactly the whole frames before the
/// fault, and gave `disconnected` the expected reason.
fn run_attack(server: &RunningServer, record: &Record, limits: Limits, attack: &Attack) {
    let (frames, oracle_reason) = oracle(&attack.bytes, limits, attack.then_eof);
    assert_eq!(
        oracle_reason.as_deref(),
        Some(attack.reason.as_str()),
        "{}: the test's expectation disagrees with tej-core's own decoder",
        attack.name
    );
    let before = record.disconnects().len();
    let mut stream = raw_connect(server.addr());
    if attack.then_eof {
        send_and_finish(&mut stream, &attack.bytes);
    } else {
        let _ = stream.write_all(&attack.bytes);
    }
    let answered = read_until_closed(&mut stream);
    record.wait_until(&format!("the end of {:?}", attack.name), WAIT, |seen| {
        count_disconnected(seen) > before
    });
    assert_eq!(
        record.disconnects()[before],
        attack.reason,
        "attack {:?}",
        attack.name
    );
    let answers = frames_in(&answered);
    // A reset may swallow answers; what arrives must be right.
    assert!(
        answers.len() <= frames,
        "{}: {} answers for {frames} frames",
        attack.name,
        answers.len()
    );
    for answer in &answers {
        assert_eq!(answer.message.as_ref().map(|m| m.len()), Some(64));
    }
}

fn malformed_input(runtime: Runtime) {
    ensure_fd_limit(2048);
    let started = Instant::now();
    let sampler = RssSampler::start();

    // With the default limits: every attack is refused at the field.
    let record = Record::default();
    let server = serve(runtime, SessionConfig::default(), digest_echo(&record));
    let attacks = malformed_attacks();
    for (i, attack) in attacks.iter().enumerate() {
        run_attack(&server, &record, Limits::default(), attack);
        if i % 20 == 0 {
            probe(runtime, &server, &record, &format!("after-attack-{i}"));
        }
    }
    let probe_after = probe(runtime, &server, &record, "after-all-attacks");

    // With no limits at all, as for a trusted peer that streams to disk:
    // announced lengths still cost only what actually arrives. Many such
    // connections at once, each holding its frame open.
    const HOLDERS: usize = 32;
    const BEHIND: usize = 64 * 1024;
    let unlimited_record = Record::default();
    let unlimited = serve(
        runtime,
        SessionConfig::default().limits(Limits::UNLIMITED),
        digest_echo(&unlimited_record),
    );
    let huge_file = Wire::start(0x80)
        .u64(1)
        .u16(7)
        .bytes(b"big.bin")
        .u64(1 << 63)
        .bytes(&vec![0x5a; BEHIND])
        .0;
    let huge_message = Wire::start(0x80)
        .u64(0)
        .u64(1 << 63)
        .bytes(&vec![0xa5; BEHIND])
        .0;
    let huge_count = Wire::start(0x80)
        .u64(u64::MAX)
        .u16(1)
        .bytes(b"x")
        .u64(0)
        .u16(1)
        .bytes(b"y")
        .u64(0)
        .0;
    let mut holders = Vec::new();
    for i in 0..HOLDERS {
        let bytes = match i % 3 {
            0 => &huge_file,
            1 => &huge_message,
            _ => &huge_count,
        };
        let mut stream = raw_connect(unlimited.addr());
        stream.write_all(bytes).unwrap();
        holders.push(stream);
    }
    unlimited_record.wait_until("every holder connected", WAIT, |seen| {
        count_connected(seen) == HOLDERS
    });
    // Give the server time to take in everything that was sent.
    std::thread::sleep(Duration::from_millis(300));
    let holding = assert_rss_under(RSS_CEILING_MIB, "while 2^63-byte frames are held open");
    probe(runtime, &unlimited, &unlimited_record, "while-held");
    for mut stream in holders {
        stream.shutdown(Shutdown::Write).unwrap();
        assert!(read_until_closed(&mut stream).is_empty());
    }
    let seen = unlimited_record.wait_until("every holder's end", WAIT, |seen| {
        count_disconnected(seen) == HOLDERS + 1
    });
    let mut expected = vec!["peer closed the connection".to_string()];
    for i in 0..HOLDERS {
        let bytes = match i % 3 {
            0 => &huge_file,
            1 => &huge_message,
            _ => &huge_count,
        };
        expected.push(oracle(bytes, Limits::UNLIMITED, true).1.unwrap());
    }
    let got = disconnect_reasons(&seen);
    assert_eq!(tally(&got), tally(&expected));
    assert!(tally(&got).contains_key(&format!(
        "protocol error: stream ended inside the file data at offset {}",
        huge_file.len()
    )));
    assert!(tally(&got).contains_key(&format!(
        "protocol error: stream ended inside the message at offset {}",
        huge_message.len()
    )));
    assert!(tally(&got).contains_key(&format!(
        "protocol error: stream ended inside the file name length at offset {}",
        huge_count.len()
    )));
    probe(runtime, &unlimited, &unlimited_record, "after-holders");

    // Only the two probes' frames were ever delivered.
    let delivered: Vec<String> = unlimited_record
        .received()
        .iter()
        .map(|frame| frame.message_text())
        .collect();
    assert_eq!(delivered, ["probe while-held", "probe after-holders"]);
    assert_no_runtime_panic();
    let peak = sampler.stop();
    assert_rss_under(RSS_CEILING_MIB, "after the malformed input");
    unlimited.stop();
    server.stop();
    report!(
        "[hostile] {runtime} malformed input: {} attacks (one connection each) with the \
         default limits, {HOLDERS} frames of 2^63 / 2^64-1 held open without limits; RSS while \
         held {:.1} MiB, peak sampled {:.1} MiB (process, all tests), probe after \
         {probe_after:?}; {:?}",
        attacks.len(),
        mib(holding.rss_kib),
        mib(peak),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 2. Slow and idle peers.

/// A probe frame sent by a [`slowloris`]: the frame, its bytes, the
/// slowloris.
fn slow_probe(
    addr: std::net::SocketAddr,
    interval: Duration,
    duration: Duration,
) -> (Frame, Vec<u8>, JoinHandle<(TcpStream, usize)>) {
    let frame = probe_frame("slowloris");
    let bytes = frame.encode_to_vec().unwrap();
    let loris = slowloris(addr, bytes.clone(), interval, duration);
    (frame, bytes, loris)
}

/// Sends `bytes` one byte per `interval` for `duration` (or until the
/// server closes); returns the stream and how many bytes went out.
fn slowloris(
    addr: std::net::SocketAddr,
    bytes: Vec<u8>,
    interval: Duration,
    duration: Duration,
) -> JoinHandle<(TcpStream, usize)> {
    std::thread::Builder::new()
        .name("hostile-slowloris".into())
        .spawn(move || {
            let mut stream = raw_connect(addr);
            let started = Instant::now();
            let mut sent = 0;
            while started.elapsed() < duration && sent < bytes.len() {
                if stream.write_all(&bytes[sent..sent + 1]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(interval);
            }
            (stream, sent)
        })
        .unwrap()
}

/// Opens `count` idle connections; every other one sends a lone status
/// byte first (idle mid-frame).
fn idle_connections(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|i| {
            let mut stream = raw_connect(addr);
            if i % 2 == 1 {
                stream.write_all(&[0x80]).unwrap();
            }
            stream
        })
        .collect()
}

/// Finishes a slowloris's frame at full speed and checks the answer: the
/// server assembled a frame that arrived a byte at a time.
fn finish_slow_frame(mut stream: TcpStream, bytes: &[u8], sent: usize, frame: &Frame) {
    stream.write_all(&bytes[sent..]).unwrap();
    let mut assembler = tej_core::Assembler::new(Limits::default());
    let mut pending = Vec::new();
    let answer = read_frame(&mut stream, &mut assembler, &mut pending).unwrap();
    assert_eq!(
        answer.message.as_deref(),
        Some(content_digest(frame).as_bytes()),
        "the trickled frame's digest"
    );
    stream.shutdown(Shutdown::Write).unwrap();
    assert!(read_until_closed(&mut stream).is_empty());
}

/// No idle timeout: slow and idle peers cost a connection each, and
/// nobody else waits for them.
fn slow_and_idle_peers_without_timeout(runtime: Runtime) {
    ensure_fd_limit(2048);
    let started = Instant::now();
    let record = Record::default();
    let server = serve(runtime, SessionConfig::default(), digest_echo(&record));

    let (slow_frame, slow_bytes, loris) = slow_probe(
        server.addr(),
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let rss_before_idle = memory().rss_kib;
    let idle = idle_connections(server.addr(), IDLE_CONNECTIONS);
    record.wait_until("every idle connection accepted", WAIT, |seen| {
        count_connected(seen) == IDLE_CONNECTIONS + 1
    });
    let held = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let idle_cost_kib = memory().rss_kib.saturating_sub(rss_before_idle);

    let mut probes = Vec::new();
    while !loris.is_finished() {
        probes.push(probe(
            runtime,
            &server,
            &record,
            &format!("slow-{}", probes.len()),
        ));
        std::thread::sleep(Duration::from_millis(400));
    }
    let (stream, sent) = loris.join().unwrap();
    assert!(sent >= 15, "the slowloris sent only {sent} bytes");
    assert!(
        !closed_by_server(&stream),
        "no idle timeout: the slowloris stays"
    );
    for stream in &idle {
        assert!(
            !closed_by_server(stream),
            "no idle timeout: idle peers stay"
        );
    }
    assert_eq!(
        record.disconnects().len(),
        probes.len(),
        "only the probes ended"
    );
    finish_slow_frame(stream, &slow_bytes, sent, &slow_frame);

    drop(idle);
    let seen = record.wait_until("every idle connection's end", WAIT, |seen| {
        count_disconnected(seen) == probes.len() + 1 + IDLE_CONNECTIONS
    });
    let reasons = disconnect_reasons(&seen);
    let tally = tally(&reasons);
    assert_eq!(
        tally.get("peer closed the connection"),
        Some(&(probes.len() + 1 + IDLE_CONNECTIONS / 2))
    );
    assert_eq!(
        tally.get("protocol error: stream ended inside the protocol version at offset 1"),
        Some(&(IDLE_CONNECTIONS / 2))
    );
    assert_eq!(tally.len(), 2, "{tally:?}");
    assert_no_runtime_panic();
    assert_rss_under(RSS_CEILING_MIB, "with slow and idle peers");
    server.stop();
    let worst = probes.iter().max().unwrap();
    report!(
        "[hostile] {runtime} slow and idle, no timeout: {IDLE_CONNECTIONS} idle + 1 slowloris \
         ({sent} bytes at 100 ms) held {:?}, RSS +{:.1} MiB for them; {} probes, slowest \
         {worst:?}; {:?}",
        held.elapsed(),
        mib(idle_cost_kib),
        probes.len(),
        started.elapsed()
    );
}

/// With an idle timeout, idle peers and a slowloris slower than the timeout
/// are closed with `idle timeout`; the well-behaved are served meanwhile.
///
/// The idle timeout counts silence, as the reference's does: a peer that
/// trickles a byte more often than the timeout is not closed by it (here:
/// every 100 ms against 600 ms), and finishes its frame correctly.
fn slow_and_idle_peers_with_idle_timeout(runtime: Runtime) {
    const TIMEOUT: Duration = Duration::from_millis(600);
    ensure_fd_limit(2048);
    let started = Instant::now();
    let record = Record::default();
    let config = SessionConfig::default().idle_timeout(Some(TIMEOUT));
    let server = serve(runtime, config, digest_echo(&record));

    // One byte a second, the slowloris: silent longer than the timeout.
    let (slow_frame, slow_bytes, loris) = slow_probe(
        server.addr(),
        Duration::from_secs(1),
        Duration::from_millis(2500),
    );
    let trickler = slowloris(
        server.addr(),
        slow_bytes.clone(),
        Duration::from_millis(100),
        Duration::from_millis(2500),
    );
    let connecting = Instant::now();
    let mut idle = idle_connections(server.addr(), IDLE_CONNECTIONS);
    let connected = connecting.elapsed();

    let mut probes = vec![probe(runtime, &server, &record, "idle-0")];
    record.wait_until("every idle connection timed out", WAIT, |seen| {
        seen.iter()
            .filter(|seen| matches!(seen, Seen::Disconnected(reason) if reason == "idle timeout"))
            .count()
            > IDLE_CONNECTIONS
    });
    let all_closed = connecting.elapsed();
    assert!(
        all_closed >= TIMEOUT,
        "closed after {all_closed:?}, before the timeout"
    );
    assert!(
        all_closed < connected + TIMEOUT + Duration::from_secs(3),
        "the last idle connection was closed {all_closed:?} after the first opened"
    );
    for stream in &mut idle {
        assert!(
            read_until_closed(stream).is_empty(),
            "closed without a word"
        );
    }
    probes.push(probe(runtime, &server, &record, "idle-1"));

    // The trickler first: once it stops, the timeout runs for it too.
    let (trickle_stream, trickle_sent) = trickler.join().unwrap();
    assert!(
        !closed_by_server(&trickle_stream),
        "a peer that is never silent for the timeout stays"
    );
    finish_slow_frame(trickle_stream, &slow_bytes, trickle_sent, &slow_frame);
    let (loris_stream, loris_sent) = loris.join().unwrap();
    assert!(closed_by_server(&loris_stream), "the slowloris was closed");
    assert!(loris_sent < slow_bytes.len());
    probes.push(probe(runtime, &server, &record, "idle-2"));

    let seen_after = record.snapshot();
    let reasons = disconnect_reasons(&seen_after);
    let tally = tally(&reasons);
    assert_eq!(
        tally.get("idle timeout"),
        Some(&(IDLE_CONNECTIONS + 1)),
        "{tally:?}"
    );
    assert_no_runtime_panic();
    assert_rss_under(RSS_CEILING_MIB, "with an idle timeout");
    server.stop();
    report!(
        "[hostile] {runtime} slow and idle, {TIMEOUT:?} idle timeout: {IDLE_CONNECTIONS} idle \
         + 1 slowloris (1 byte/s) closed within {all_closed:?} of opening (opening took \
         {connected:?}); a 100 ms trickler stays; slowest probe {:?}; {:?}",
        probes.iter().max().unwrap(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 3. A peer that never reads.

fn never_reading_peer(runtime: Runtime) {
    const CAPACITY: usize = 256 * 1024;
    const FRAME_LEN: usize = 64 * 1024;
    let started = Instant::now();
    let record = Record::default();
    let config = SessionConfig::default()
        .send_queue_capacity(CAPACITY)
        .outbox_high_water(256 * 1024);
    let server = serve(runtime, config, digest_echo(&record));
    let sampler = RssSampler::start();

    // The server pushes to a peer that never reads.
    let stuck = raw_connect(server.addr());
    record.wait_until("connected", WAIT, |seen| count_connected(seen) == 1);
    let sender = record.senders().remove(0);
    let fresh = |i: usize| Frame::message(vec![i as u8; FRAME_LEN]);
    let mut accepted = 0usize;
    let deadline = Instant::now() + WAIT;
    loop {
        match sender.try_send(fresh(accepted)) {
            Ok(()) => accepted += 1,
            Err(SendError::Full(back)) => {
                assert_eq!(back, fresh(accepted), "the refused frame comes back");
                // Full twice, 10 ms apart: the socket is not draining.
                std::thread::sleep(Duration::from_millis(10));
                match sender.try_send(fresh(accepted)) {
                    Err(SendError::Full(_)) => break,
                    Ok(()) => accepted += 1,
                    Err(other) => panic!("{other}"),
                }
            }
            Err(other) => panic!("{other}"),
        }
        assert!(Instant::now() < deadline, "the queue never filled");
    }
    let queued = sender.queued_bytes();
    assert!(
        queued <= CAPACITY + FRAME_LEN + 64,
        "{queued} bytes queued; capacity {CAPACITY}"
    );
    // Everything accepted sits in the queue, the outbox or the kernel's
    // socket buffers (a few MiB on loopback), not in an unbounded heap.
    assert!(
        accepted * FRAME_LEN < 32 << 20,
        "{accepted} frames of 64 KiB accepted for a peer that reads nothing"
    );
    // A blocking send waits for room.
    let blocked = std::thread::Builder::new()
        .name("hostile-send-blocking".into())
        .spawn({
            let sender = sender.clone();
            move || sender.send_blocking(fresh(usize::MAX))
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !blocked.is_finished(),
        "send_blocking did not wait for room"
    );
    let probe_pushing = probe(runtime, &server, &record, "while-stuck");

    // A peer that floods requests and never reads the answers: the server
    // stops reading it once its answers back up.
    let mut flooder = raw_connect(server.addr());
    flooder
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let request = Frame::message("?").encode_to_vec().unwrap();
    let burst: Vec<u8> = request.repeat(1000);
    let count_received = || {
        record
            .snapshot()
            .iter()
            .filter(|seen| match seen {
                Seen::Received(frame) => frame.message.as_deref() == Some(&b"?"[..]),
                _ => false,
            })
            .count()
    };
    let mut written_total = 0usize;
    let deadline = Instant::now() + WAIT;
    let received = loop {
        // Write until the writes stall...
        loop {
            // Partial writes resume where they stopped: the stream stays whole frames.
            let offset = written_total % burst.len();
            match flooder.write(&burst[offset..]) {
                Ok(written) => written_total += written,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(error) => panic!("the flooder's write failed: {error}"),
            }
            assert!(
                Instant::now() < deadline,
                "the server kept reading {written_total} bytes of requests it could not answer"
            );
        }
        // ...and until the server, with requests waiting, takes none for a while.
        let before = count_received();
        std::thread::sleep(Duration::from_millis(500));
        let after = count_received();
        if before == after {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept reading {written_total} bytes of requests it could not answer"
        );
    };
    let requests = written_total / request.len();
    assert!(
        received < requests,
        "{received} of {requests} requests read: the server stopped only for lack of input"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received,
        count_received(),
        "the server still reads the flooder"
    );
    let probe_flooded = probe(runtime, &server, &record, "while-flooded");
    let peak = sampler.peak_kib();
    assert_rss_under(RSS_CEILING_MIB, "with peers that never read");

    // The stuck peers leave: both connections end with an I/O error, the
    // blocked send returns, and the frames never sent come back.
    let before = record.disconnects().len();
    drop(stuck);
    drop(flooder);
    record.wait_until("the stuck peers' end", WAIT, |seen| {
        count_disconnected(seen) == before + 2
    });
    for reason in &record.disconnects()[before..] {
        assert!(
            reason.starts_with("I/O error: "),
            "a peer that left with unread data: {reason}"
        );
    }
    // The blocked send is refused, or, if room opened just as the
    // connection ended, queued; either way the frame comes back.
    let unsent = sender.take_unsent();
    match blocked.join().unwrap() {
        Err(SendError::Closed(frame)) => assert_eq!(frame, fresh(usize::MAX)),
        Ok(()) => assert!(
            unsent.contains(&fresh(usize::MAX)),
            "send_blocking's frame was accepted, never sent and not returned"
        ),
        Err(other) => panic!("send_blocking after the end: {other}"),
    }
    assert!(!unsent.is_empty(), "the frames still queued come back");
    assert!(matches!(
        sender.try_send(Frame::ping()),
        Err(SendError::Closed(_))
    ));
    probe(runtime, &server, &record, "after-stuck");
    assert_no_runtime_panic();
    let peak = peak.max(sampler.stop());
    server.stop();
    report!(
        "[hostile] {runtime} never-reading peer: {accepted} frames of 64 KiB accepted before \
         Full, {queued} bytes queued (capacity {CAPACITY}); flooder: {requests} requests \
         written, {received} read before the server stopped reading; probes {probe_pushing:?} \
         / {probe_flooded:?}; peak RSS sampled {:.1} MiB; {:?}",
        mib(peak),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 4. Abrupt disconnects mid-file.

/// A frame whose first file is whole and whose second is cut: the wire
/// bytes up to `cut`.
struct CutFrame {
    wire: Vec<u8>,
    cut: usize,
}

fn cut_frame() -> CutFrame {
    const FIRST: usize = 300 * 1024;
    const SECOND: usize = 8 << 20;
    let frame = FrameBuilder::new(Status::new(9).unwrap())
        .file("first.bin", vec![1u8; FIRST])
        .file("second.bin", vec![2u8; SECOND])
        .message("never")
        .build();
    let wire = frame.encode_to_vec().unwrap();
    let second_data = 10 + (2 + 9 + 8) + FIRST + (2 + 10 + 8);
    CutFrame {
        wire,
        cut: second_data + SECOND / 2,
    }
}

/// Waits until `dir` holds the whole first file and part of the second.
fn wait_for_partial_spool(dir: &std::path::Path) {
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = dir_entries(dir);
        if entries.len() == 2 && entries.iter().all(|(_, len)| *len > 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the spool never held the partial frame: {entries:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes dropping `stream` reset the connection instead of closing it.
fn abort_on_drop(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

const RESET_REASON_PREFIX: &str = "I/O error: ";

/// A connection cut in the middle of `frame`'s file (reset if `abort`,
/// else closed) ended with `reason`, never reported the frame as
/// received, and left no file of it in `spool`.
fn assert_cut(
    reason: &str,
    abort: bool,
    frame: &CutFrame,
    spool: &std::path::Path,
    record: &Record,
) {
    if abort {
        assert!(
            reason.starts_with(RESET_REASON_PREFIX),
            "reset mid-file: {reason}"
        );
    } else {
        assert_eq!(
            reason,
            format!(
                "protocol error: stream ended inside the file data at offset {}",
                frame.cut
            )
        );
    }
    assert_eq!(
        dir_entries(spool),
        [],
        "the unfinished frame's files are removed"
    );
    assert!(record.received().is_empty(), "never reported as received");
}

/// A client sends half of a large file, then closes (or resets): the
/// server reports the cut and removes every file of the unfinished frame.
fn client_cut_mid_file(runtime: Runtime) {
    let dir = scratch_dir("client-cut");
    let spool = dir.path().join("spool");
    let record = Record::default();
    let mut handler = digest_echo(&record);
    handler.spool_dir = Some(spool.clone());
    let server = serve(runtime, SessionConfig::default(), handler);
    let frame = cut_frame();

    for abort in [false, true] {
        let before = record.disconnects().len();
        let mut stream = raw_connect(server.addr());
        stream.write_all(&frame.wire[..frame.cut]).unwrap();
        wait_for_partial_spool(&spool);
        if abort {
            abort_on_drop(&stream);
            drop(stream);
        } else {
            stream.shutdown(Shutdown::Write).unwrap();
            assert!(read_until_closed(&mut stream).is_empty());
        }
        record.wait_until("the cut", WAIT, |seen| count_disconnected(seen) > before);
        assert_cut(
            &record.disconnects()[before],
            abort,
            &frame,
            &spool,
            &record,
        );
        assert_eq!(record.files_started(), 2 * (before + 1));
    }
    // The spool still works for a whole frame.
    probe(runtime, &server, &record, "after-cut");
    assert_eq!(dir_entries(&spool).len(), 2, "the probe's two files");
    assert_no_runtime_panic();
    server.stop();
    dir.close().unwrap();
}

/// A raw server sends half of a large file to a tej client, then closes
/// (or resets): the client reports the cut and removes the partial files.
fn server_cut_mid_file(runtime: Runtime) {
    let dir = scratch_dir("server-cut");
    let frame = cut_frame();
    for abort in [false, true] {
        let spool = dir
            .path()
            .join(if abort { "spool-reset" } else { "spool-close" });
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut_now, cut_signal) = mpsc::channel::<()>();
        let prefix = frame.wire[..frame.cut].to_vec();
        let raw_server = std::thread::Builder::new()
            .name("hostile-raw-server".into())
            .spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                stream.write_all(&prefix).unwrap();
                cut_signal.recv().unwrap();
                if abort {
                    abort_on_drop(&stream);
                } else {
                    stream.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest);
                    assert!(rest.is_empty(), "the client sent {rest:?}");
                }
            })
            .unwrap();

        let record = Record::default();
        let mut handler = Recorder::new(&record);
        handler.spool_dir = Some(spool.clone());
        let client = runtime::connect(runtime, addr, handler, SessionConfig::default()).unwrap();
        wait_for_partial_spool(&spool);
        cut_now.send(()).unwrap();
        raw_server.join().unwrap();
        client.join().unwrap();
        let reasons = record.disconnects();
        assert_eq!(reasons.len(), 1);
        assert_cut(&reasons[0], abort, &frame, &spool, &record);
        assert_eq!(record.files_started(), 2);
    }
    assert_no_runtime_panic();
    dir.close().unwrap();
}

/// Instantiates every scenario per runtime name. A name `Runtime::ALL`
/// does not have (yet) runs nothing; `every_runtime_is_attacked` fails
/// when `Runtime::ALL` has one that is missing here.
/// Every scenario on each runtime (`module: "runtime name";`), as tests
/// named `module::scenario`, and a test that every runtime is listed.
macro_rules! hostile {
    ($($module:ident: $name:literal;)*) => {
        fn tests() -> Vec<harness::Test> {
            let mut tests: Vec<harness::Test> = vec![(
                "every_runtime_is_attacked".into(),
                Box::new(|| assert_every_runtime_instantiated(&[$($name),*])),
            )];
            let scenarios: [(&str, fn(Runtime)); 6] = [
                ("malformed_input", malformed_input),
                ("slow_and_idle_peers_without_timeout", slow_and_idle_peers_without_timeout),
                ("slow_and_idle_peers_with_idle_timeout", slow_and_idle_peers_with_idle_timeout),
                ("never_reading_peer", never_reading_peer),
                ("client_cut_mid_file", client_cut_mid_file),
                ("server_cut_mid_file", server_cut_mid_file),
            ];
            $(
                for (scenario, run) in scenarios {
                    tests.push((
                        format!("{}::{scenario}", stringify!($module)),
                        Box::new(move || {
                            if let Some(runtime) = runtime_named($name) {
                                run(runtime);
                            }
                        }),
                    ));
                }
            )*
            tests
        }
    };
}

hostile! {
    tokio: "tokio";
    async_std: "async-std";
    smol: "smol";
    mio: "mio";
}

/// Two threads per core, not the matrix's four: the suite's RSS ceiling is
/// the whole process's, shared by the attacks running at once.
fn main() -> std::process::ExitCode {
    harness::run_tests(tests(), 2)
}
