//! Transfers through the fault proxy (`tej_test_support::fault_proxy`) on
//! every runtime and transport: a client uploads a frame with two files
//! while the server greets it with a file of its own, spools what it
//! receives (`tej_net::spool::to_dir`) and answers with the content's
//! digest.
//!
//! - `clean_*` faults (slicing into 1 B-64 KiB pieces, delayed replies, a
//!   stall under the idle timeout) must deliver every frame byte for byte,
//!   both ways, and the spool must hold exactly the two files.
//! - `cut_*` faults (a reset, a truncation or a flipped bit mid-frame, a
//!   blackhole both ways, a stall over the idle timeout) must end both
//!   sides with a one-line reason within [`CUT_BOUND`], report no frame
//!   that did not arrive whole, and leave the spool empty.
//!
//! Each test prints its row of the fault matrix (`FAULT-MATRIX ...`; see it
//! with `--nocapture`). Seeds are fixed; `TEJ_FAULT_SEED` picks another.

use std::path::Path;
use std::time::{Duration, Instant};

use tej_core::{Frame, FrameBuilder, FrameTimeout, SessionConfig, Status};
use tej_examples::runtime::Endpoint;
use tej_test_support::fault_proxy::{Addr, Fault, FaultProxy, Rng};
use tej_test_support::matrix::{connect_to, same_runtime, serve, Net, Setup};
use tej_test_support::{harness, matrix, report};

use tej_test_support::peer::pattern;
use tej_test_support::recorder::{content_digest, FrameSummary, Record, Recorder, Seen};

/// Nothing received for this long ends a session, on both sides.
const IDLE: Duration = Duration::from_secs(1);
/// A cut transfer must have ended on both sides this long after it began:
/// the idle timeout, the close linger, and room for a loaded machine.
const CUT_BOUND: Duration = Duration::from_secs(8);
/// A clean transfer's whole wait.
const CLEAN_WAIT: Duration = Duration::from_secs(30);
/// The uploaded file: the faults land inside it.
const UPLOAD_LEN: usize = 512 * 1024;
const UPLOAD_NAME: &str = "a.bin";
const SMALL_NAME: &str = "b.txt";
const SMALL_LEN: usize = 3000;

fn seed() -> u64 {
    std::env::var("TEJ_FAULT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x7e1_fa17)
}

fn config() -> SessionConfig {
    let mut config = SessionConfig::default();
    config.idle_timeout = Some(IDLE);
    config.stall_timeout = Some(IDLE);
    config.frame_timeout = Some(FrameTimeout::new(Duration::from_secs(3), 256 * 1024));
    config.close_linger = Duration::from_secs(1);
    config.handshake_timeout = Duration::from_secs(5);
    config
}

fn upload(seed: u64) -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file(UPLOAD_NAME, pattern(UPLOAD_LEN, seed))
        .file(SMALL_NAME, pattern(SMALL_LEN, seed + 1))
        .message("upload")
        .build()
}

fn greeting() -> Frame {
    FrameBuilder::new(Status::new(7).unwrap())
        .file("greeting.bin", pattern(256 * 1024, 42))
        .message("hello")
        .build()
}

/// Where the faults go: a point inside the uploaded file's bytes (the
/// frame's first 40 bytes, or a TLS handshake's first KiBs, come before).
fn mid_upload(rng: &mut Rng) -> u64 {
    16 * 1024 + rng.below((UPLOAD_LEN - 64 * 1024) as u64)
}

/// Over plain transports, the top bit of the message's length, once both
/// files have landed in the spool: a length over `max_message_size`, so a
/// protocol error that must take the landed files back. (A flipped file
/// length would be accepted: spooled files have no size bound by default,
/// and the transfer then ends at the idle timeout. A flipped bit in a
/// file's bytes arrives as flipped: TEJ carries no checksum.) Over TLS, any
/// bit inside a record: its authentication fails.
fn flip_point(s: Setup, rng: &mut Rng) -> Fault {
    if s.net == Net::Tls {
        return Fault::FlipBit {
            at: mid_upload(rng),
            bit: rng.below(8) as u8,
        };
    }
    let files = 2 + UPLOAD_NAME.len() + 8 + UPLOAD_LEN + 2 + SMALL_NAME.len() + 8 + SMALL_LEN;
    let at = tej_core::wire::FRAME_HEADER_LEN + files;
    Fault::FlipBit {
        at: at as u64,
        bit: 7,
    }
}

fn proxy_in_front(server: &matrix::TestServer, fault: Fault, seed: u64) -> FaultProxy {
    let target = match server.endpoint() {
        Endpoint::Tcp(addr) => Addr::Tcp(*addr),
        Endpoint::Unix(path) => Addr::Unix(path.clone()),
    };
    FaultProxy::start(None, target, fault, seed).expect("the proxy starts")
}

fn endpoint(proxy: &FaultProxy) -> Endpoint {
    match proxy.addr() {
        Addr::Tcp(addr) => Endpoint::Tcp(*addr),
        Addr::Unix(path) => Endpoint::Unix(path.clone()),
    }
}

/// The files in `dir`, by name (none if it was never made).
fn spooled(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn disconnect(seen: &[Seen]) -> Option<String> {
    seen.iter().find_map(|seen| match seen {
        Seen::Disconnected(reason) => Some(reason.clone()),
        _ => None,
    })
}

fn row(name: &str, s: Setup, outcome: &str) {
    report!(
        "FAULT-MATRIX fault={name} runtime={} transport={} {outcome}",
        s.server.name(),
        s.net.name()
    );
}

/// One transfer through `fault`; `clean` says whether it must arrive.
fn transfer(s: Setup, name: &str, clean: bool, fault: fn(Setup, &mut Rng) -> Fault) {
    let seed = seed();
    let mut rng = Rng::new(
        seed ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
    );
    let fault = fault(s, &mut rng);
    let context = format!("{name} ({fault:?}, seed {seed})");
    let temp = tempfile::tempdir().unwrap();
    let spool = temp.path().join("spool");

    let server_record = Record::default();
    let mut handler = Recorder::new(&server_record);
    handler.spool_dir = Some(spool.clone());
    handler.echo_digest = true;
    handler.greeting = vec![greeting()];
    let server = serve(s, config(), handler);
    let proxy = proxy_in_front(&server, fault, seed);

    let client_record = Record::default();
    let started = Instant::now();
    let client = connect_to(
        s,
        &endpoint(&proxy),
        Recorder::new(&client_record),
        config(),
    );
    let frame = upload(seed);
    let sent = FrameSummary::of(&frame);
    let digest = content_digest(&frame);
    client.sender().send_blocking(frame).unwrap();

    if clean {
        let seen = client_record.wait_until(&context, CLEAN_WAIT, |seen| {
            seen.iter()
                .filter(|seen| matches!(seen, Seen::Received(_)))
                .count()
                >= 2
                || seen
                    .iter()
                    .any(|seen| matches!(seen, Seen::Disconnected(_)))
        });
        let received = client_record.received();
        assert_eq!(
            received.len(),
            2,
            "{context}: the greeting and the digest, then {seen:?}"
        );
        assert_eq!(received[0], FrameSummary::of(&greeting()), "{context}");
        assert_eq!(received[1].message_text(), digest, "{context}");
        assert_eq!(server_record.received(), [sent], "{context}");
        assert_eq!(spooled(&spool), [UPLOAD_NAME, SMALL_NAME], "{context}");
        let took = started.elapsed();
        client.close().unwrap();
        server_record.wait_until("the server's disconnect", CLEAN_WAIT, |seen| {
            disconnect(seen).is_some()
        });
        row(name, s, &format!("clean in {:.1}s", took.as_secs_f64()));
    } else {
        let client_seen =
            client_record.wait_until(&context, CUT_BOUND, |seen| disconnect(seen).is_some());
        let server_seen = server_record.wait_until(
            &context,
            CUT_BOUND.saturating_sub(started.elapsed()),
            |seen| disconnect(seen).is_some(),
        );
        let took = started.elapsed();
        let (client_reason, server_reason) = (
            disconnect(&client_seen).unwrap(),
            disconnect(&server_seen).unwrap(),
        );
        // The server was cut mid-frame: that is an error, never a quiet end.
        assert!(
            !server_reason.starts_with("peer closed") && server_reason != "closed locally",
            "{context}: the server's reason: {server_reason}"
        );
        assert!(
            !client_reason.contains("locally") && !client_reason.is_empty(),
            "{context}: the client's reason: {client_reason}"
        );
        for reason in [&client_reason, &server_reason] {
            assert!(!reason.contains('\n'), "{context}: one line: {reason}");
        }
        assert_eq!(
            server_record.received(),
            [],
            "{context}: nothing of a cut frame is reported"
        );
        // The greeting may have arrived whole before the cut; nothing else.
        for frame in client_record.received() {
            assert_eq!(frame, FrameSummary::of(&greeting()), "{context}");
        }
        assert_eq!(
            spooled(&spool),
            Vec::<String>::new(),
            "{context}: nothing of a cut frame stays on disk"
        );
        let _ = client.close();
        row(
            name,
            s,
            &format!(
                "failed cleanly in {:.1}s; server: {server_reason}; client: {client_reason}",
                took.as_secs_f64()
            ),
        );
    }
    server.stop();
    drop(proxy);
}

/// Each fault scenario (`name: "what", clean, fault;`): a function `name`
/// that runs [`transfer`] with the fault that `fault` draws for the setup,
/// clean or cut; and the matrix of them all on every runtime and transport.
macro_rules! faults {
    ($($scenario:ident: $what:literal, $clean:literal, $fault:expr;)*) => {
        $(
            fn $scenario(s: Setup) {
                transfer(s, $what, $clean, $fault);
            }
        )*

        matrix! {
            [$($scenario),*]
            same_runtime("tcp_", Net::Tcp),
            same_runtime("unix_", Net::Unix),
            same_runtime("tls_", Net::Tls),
        }
    };
}

faults! {
    clean_sliced: "sliced", true, |_, _| Fault::Slice;
    clean_delayed_replies: "delayed replies", true,
        |_, _| Fault::DelayReplies(Duration::from_millis(50));
    clean_short_stall: "short stall", true,
        |_, rng| Fault::Stall { at: mid_upload(rng), pause: IDLE / 4 };
    cut_reset: "reset", false, |_, rng| Fault::Reset { at: mid_upload(rng) };
    cut_truncated: "truncated", false, |_, rng| Fault::Truncate { at: mid_upload(rng) };
    cut_flipped_bit: "flipped bit", false, flip_point;
    cut_blackhole: "blackhole", false, |_, rng| Fault::Blackhole { at: mid_upload(rng) };
    cut_long_stall: "long stall", false,
        |_, rng| Fault::Stall { at: mid_upload(rng), pause: IDLE * 3 };
}

fn main() -> std::process::ExitCode {
    harness::run(vec![("", cases())])
}
