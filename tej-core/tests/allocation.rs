//! Memory is sized by the bytes a peer sends, never by the lengths it
//! announces: hostile frames (a 2^60-byte file or message, 2^64 - 1 files,
//! the largest lengths the limits allow, a 65535-byte name, random bytes) fed
//! to the [`Assembler`] keep the bytes allocated under 2 MiB plus a small
//! multiple of the input, measured with an instrumented global allocator.
//!
//! The allocator counts every thread, so the tests here take a lock and run
//! one at a time; inputs are built before the measured region.
//!
//! Not under Miri: the measurements feed megabytes through the assembler
//! (hours when interpreted), and Miri's own allocations would be counted by
//! the instrumented global allocator. The same paths run under Miri in
//! `errors.rs` and `roundtrip.rs`.
#![cfg(not(miri))]

mod common;

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};

use std::time::Duration;

use bytes::Bytes;
use common::Rng;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tej_core::{
    Assembler, Connection, DecodeError, Frame, FrameBuilder, Handler, LimitKind, Limits, Session,
    SessionConfig, Status,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

/// Allocations a measurement of 10,000 frames may count without any being
/// per frame: a few made once, and those of the test harness reporting
/// another test meanwhile (the allocator counts every thread). One per
/// frame would be 10,000.
const ONCE_ONLY: usize = 64;

/// What every measurement may use on top of the input it was given.
const BASE_ALLOWANCE: usize = 2 * MIB;

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Limits a server taking untrusted input might pick.
const SMALL: Limits = Limits::DEFAULT
    .max_file_count(16)
    .max_name_len(255)
    .max_file_size(64 << 10)
    .max_message_size(64 << 10)
    .max_frame_size(256 << 10);

/// What feeding a stream did: frames out, the outcome and the bytes allocated.
struct Fed {
    frames: usize,
    result: Result<(), DecodeError>,
    /// Total bytes allocated while feeding (allocations plus growth by
    /// reallocation), which bounds the peak.
    allocated: usize,
}

/// Feeds `stream` to a new assembler in `chunk`-byte pieces and counts every
/// byte allocated meanwhile. Frames are dropped as they come (as a server
/// hands them on), so what is measured is the work of the assembler.
fn feed(stream: &[u8], chunk: usize, limits: Limits) -> Fed {
    let region = Region::new(GLOBAL);
    let mut assembler = Assembler::new(limits);
    let mut frames = 0;
    let mut result = Ok(());
    'feed: for mut piece in stream.chunks(chunk) {
        loop {
            match assembler.decode(piece) {
                Ok(assembled) => {
                    piece = &piece[assembled.consumed..];
                    match assembled.frame {
                        Some(_) => frames += 1,
                        None => break,
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break 'feed;
                }
            }
        }
    }
    drop(assembler);
    let allocated = region.change().bytes_allocated;
    Fed {
        frames,
        result,
        allocated,
    }
}

fn assert_bounded(fed: &Fed, input: usize, what: &str) {
    let bound = BASE_ALLOWANCE + 4 * input;
    assert!(
        fed.allocated <= bound,
        "{what}: {} bytes allocated for {input} bytes of input (bound {bound})",
        fed.allocated
    );
}

/// A frame header announcing `file_count` files.
fn header(file_count: u64) -> Vec<u8> {
    let mut bytes = vec![0x80, 1];
    bytes.extend_from_slice(&file_count.to_be_bytes());
    bytes
}

/// One file header announcing `size` bytes of data (none of which follow).
fn file_header(name: &[u8], size: u64) -> Vec<u8> {
    let mut bytes = (name.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes
}

#[test]
fn measurement_sees_allocations() {
    // The instrument works: an assembler holding a 3 MiB frame allocates
    // at least that much, so the bounds below are not vacuous.
    let _serial = serial();
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("big", vec![7u8; 3 * MIB])
        .build();
    let stream = frame.encode_to_vec().unwrap();
    let fed = feed(&stream, 64 << 10, Limits::DEFAULT);
    assert_eq!(fed.result, Ok(()));
    assert_eq!(fed.frames, 1);
    assert!(
        fed.allocated >= 3 * MIB,
        "only {} bytes seen",
        fed.allocated
    );
    assert_bounded(&fed, stream.len(), "a real 3 MiB file");
}

/// A 2^60-byte payload announced by `announced` (whose last field is its
/// length, at `offset`): refused at the length under small limits with
/// nothing allocated for it; accepted without limits and followed by 3 MiB
/// of data (from `seed`), memory following the data that arrives. Then
/// `allowed`, the largest payload of its kind the defaults allow, barely
/// started: at most the bounded reservation. `what` names the payload.
fn assert_huge_announcement_bounded(
    what: &str,
    announced: Vec<u8>,
    limit: LimitKind,
    offset: u64,
    seed: u64,
    allowed: Vec<u8>,
) {
    let _serial = serial();
    let fed = feed(&announced, 64 << 10, SMALL);
    assert_eq!(
        fed.result,
        Err(DecodeError::LimitExceeded {
            limit,
            value: 1 << 60,
            max: 64 << 10,
            offset,
        })
    );
    assert!(fed.allocated < 64 << 10, "{} bytes", fed.allocated);

    let mut with_data = announced;
    with_data.extend(Rng::new(seed).bytes(3 * MIB));
    let fed = feed(&with_data, 64 << 10, Limits::UNLIMITED);
    assert_eq!(fed.result, Ok(()));
    assert_eq!(fed.frames, 0);
    let unlimited = format!("2^60-byte {what}, unlimited");
    assert_bounded(&fed, with_data.len(), &unlimited);

    let fed = feed(&allowed, 64 << 10, Limits::DEFAULT);
    assert_eq!(fed.result, Ok(()));
    assert_bounded(&fed, allowed.len(), &format!("largest {what} announced"));
}

#[test]
fn huge_file_announcement() {
    let mut stream = header(1);
    stream.extend_from_slice(&file_header(b"huge.bin", 1 << 60));
    // Default limits allow a 1 GiB file.
    let mut gigabyte = header(1);
    gigabyte.extend_from_slice(&file_header(b"gig", 1 << 30));
    gigabyte.extend_from_slice(b"only a little data");
    let limit = LimitKind::FileSize;
    assert_huge_announcement_bounded("file", stream, limit, 20, 1, gigabyte);
}

#[test]
fn huge_message_announcement() {
    let mut stream = header(0);
    stream.extend_from_slice(&(1u64 << 60).to_be_bytes());
    // The largest message the defaults allow (64 MiB).
    let mut allowed = header(0);
    allowed.extend_from_slice(&(64u64 << 20).to_be_bytes());
    allowed.extend_from_slice(b"hello");
    let limit = LimitKind::MessageSize;
    assert_huge_announcement_bounded("message", stream, limit, 10, 2, allowed);
}

#[test]
fn huge_file_count_announcement() {
    let _serial = serial();
    let stream = header(u64::MAX);
    let fed = feed(&stream, 64 << 10, SMALL);
    assert_eq!(
        fed.result,
        Err(DecodeError::LimitExceeded {
            limit: LimitKind::FileCount,
            value: u64::MAX,
            max: 16,
            offset: 2,
        })
    );
    assert!(fed.allocated < 64 << 10, "{} bytes", fed.allocated);

    // No limits: 2^64 - 1 files accepted, then 20,000 small files arrive.
    // The file list grows with the files that come, not the count.
    let mut with_files = stream.clone();
    let mut rng = Rng::new(3);
    for index in 0..20_000u32 {
        let name = format!("file-{index:08}.dat");
        let data = rng.bytes(32);
        with_files.extend_from_slice(&file_header(name.as_bytes(), data.len() as u64));
        with_files.extend_from_slice(&data);
    }
    let fed = feed(&with_files, 64 << 10, Limits::UNLIMITED);
    assert_eq!(fed.result, Ok(()));
    assert_eq!(fed.frames, 0);
    assert_bounded(&fed, with_files.len(), "2^64 - 1 files, unlimited");

    // Default limits: 1024 files announced, none sent.
    let fed = feed(&header(1024), 64 << 10, Limits::DEFAULT);
    assert_eq!(fed.result, Ok(()));
    assert!(fed.allocated < 64 << 10, "{} bytes", fed.allocated);
}

#[test]
fn longest_name() {
    let _serial = serial();
    let mut stream = header(1);
    stream.extend_from_slice(&file_header(&[b'n'; 65535], 1 << 40));
    let fed = feed(&stream, 1024, Limits::UNLIMITED);
    assert_eq!(fed.result, Ok(()));
    assert_bounded(&fed, stream.len(), "65535-byte name");

    let fed = feed(&stream, 1024, SMALL);
    assert_eq!(
        fed.result,
        Err(DecodeError::LimitExceeded {
            limit: LimitKind::NameLength,
            value: 65535,
            max: 255,
            offset: 10,
        })
    );
    assert!(fed.allocated < 64 << 10, "{} bytes", fed.allocated);
}

#[test]
fn many_small_frames_do_not_accumulate() {
    // 20,000 complete frames: each is handed out and dropped, so the total
    // allocated is proportional to the input, not to anything announced.
    let _serial = serial();
    let frame = Frame::message(vec![b'm'; 64]);
    let one = frame.encode_to_vec().unwrap();
    let stream = one.repeat(20_000);
    let fed = feed(&stream, 64 << 10, SMALL);
    assert_eq!(fed.result, Ok(()));
    assert_eq!(fed.frames, 20_000);
    assert_bounded(&fed, stream.len(), "20,000 small frames");
}

#[test]
fn random_bytes() {
    let _serial = serial();
    let mut rng = Rng::new(4);
    for round in 0..64 {
        // Past the status bit half the time, so random lengths get read.
        let len = rng.range(0, 256 << 10);
        let mut stream = rng.bytes(len);
        if let Some(first) = stream.first_mut() {
            *first |= 0x80;
        }
        let chunk = rng.range(1, 64 << 10);
        for limits in [SMALL, Limits::DEFAULT, Limits::UNLIMITED] {
            let fed = feed(&stream, chunk, limits);
            assert_bounded(&fed, stream.len(), &format!("random round {round}"));
        }
    }
}

#[test]
fn random_announcements_with_valid_names() {
    // Random bytes rarely get past a file name (random names are not
    // UTF-8). These streams have a valid header and ASCII name with random
    // file counts and sizes, then random data, so the sizes get acted on.
    let _serial = serial();
    let mut rng = Rng::new(5);
    for round in 0..32 {
        let file_count = (rng.next_u64() >> rng.range(0, 63)).max(1);
        let name_len = rng.range(0, 64);
        let name: Vec<u8> = (0..name_len)
            .map(|_| b'a' + rng.range(0, 25) as u8)
            .collect();
        let size = rng.next_u64() >> rng.range(0, 40);
        let mut stream = header(file_count);
        stream.extend_from_slice(&file_header(&name, size));
        let len = rng.range(0, 2 * MIB);
        stream.extend(rng.bytes(len));
        let chunk = rng.range(1, 64 << 10);

        let fed = feed(&stream, chunk, Limits::UNLIMITED);
        let what = format!("round {round}: {file_count} files, size {size}");
        // Unless the data ran past the announced size into a random next
        // header, nothing is wrong with this stream.
        if size >= len as u64 {
            assert_eq!(fed.result, Ok(()), "{what}");
        }
        assert_bounded(&fed, stream.len(), &what);
        for limits in [SMALL, Limits::DEFAULT] {
            let fed = feed(&stream, chunk, limits);
            assert_bounded(&fed, stream.len(), &what);
        }
    }
}

#[test]
fn messages_arriving_in_pieces_share_receive_chunks() {
    // 1,000 frames of 64-byte messages in 7-byte pieces, so every message
    // is assembled event by event: they are received into shared chunks
    // (8 KiB each), not one allocation per message.
    let _serial = serial();
    let one = Frame::message(vec![b'm'; 64]).encode_to_vec().unwrap();
    let stream = one.repeat(1_000);
    let region = Region::new(GLOBAL);
    let fed = feed(&stream, 7, SMALL);
    let allocations = region.change().allocations;
    assert_eq!(fed.result, Ok(()));
    assert_eq!(fed.frames, 1_000);
    assert!(
        allocations < 250,
        "{allocations} allocations for 1,000 messages"
    );
}

/// Counts the frames it is given and where their messages and files are:
/// how many lie within `within` (the input's address range).
struct Where {
    within: std::ops::Range<usize>,
    frames: usize,
    inside: usize,
}

impl Where {
    fn new(input: &[u8]) -> Where {
        let start = input.as_ptr() as usize;
        Where {
            within: start..start + input.len(),
            frames: 0,
            inside: 0,
        }
    }

    fn is_inside(&self, data: &[u8]) -> bool {
        let start = data.as_ptr() as usize;
        self.within.contains(&start) && start + data.len() <= self.within.end
    }
}

impl Handler for Where {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.frames += 1;
        let mut parts = frame.files.iter().filter_map(|file| file.data());
        if let Some(message) = &frame.message {
            if self.is_inside(message) && parts.all(|data| self.is_inside(data)) {
                self.inside += 1;
            }
        }
    }
}

/// What handing a stream to a session did.
struct Received {
    frames: usize,
    /// Frames whose message and in-memory files are slices of the input.
    inside: usize,
    used: usize,
    allocations: usize,
}

/// Hands `stream` to a new session in one piece, shared or not, counting
/// the allocations made meanwhile.
fn session_fed(stream: &Bytes, shared: bool) -> Received {
    let mut session = Session::new(Where::new(stream), SessionConfig::default());
    session.start(Duration::ZERO);
    let region = Region::new(GLOBAL);
    let used = if shared {
        session.handle_bytes(stream, Duration::ZERO)
    } else {
        session.handle_input(stream, Duration::ZERO)
    };
    let allocations = region.change().allocations;
    Received {
        frames: session.handler().frames,
        inside: session.handler().inside,
        used,
        allocations,
    }
}

#[test]
fn small_frames_from_a_shared_buffer_are_slices_of_it() {
    // 10,000 frames of 64-byte messages in one shared buffer: every message
    // is a slice of it, and receiving them allocates nothing per frame.
    let _serial = serial();
    let one = Frame::message(vec![b'm'; 64]).encode_to_vec().unwrap();
    let stream = Bytes::from(one.repeat(10_000));
    let seen = session_fed(&stream, true);
    assert_eq!(seen.used, stream.len());
    assert_eq!(seen.frames, 10_000);
    assert_eq!(seen.inside, 10_000, "messages copied out of the input");
    // The same wire as a plain slice: each message copied out.
    assert_eq!(session_fed(&stream, false).inside, 0);
    // A few, once (the buffer made shareable), none per frame.
    let allocations = seen.allocations;
    assert!(
        allocations <= ONCE_ONLY,
        "{allocations} allocations for 10,000 frames"
    );

    // Frames with small files in memory and a message: the files' bodies
    // are slices too (only their names and file lists are allocated).
    let one = FrameBuilder::new(Status::DEFAULT)
        .file("a", vec![1u8; 100])
        .file("b", vec![2u8; 3000])
        .message("done")
        .build()
        .encode_to_vec()
        .unwrap();
    let stream = Bytes::from(one.repeat(1_000));
    let seen = session_fed(&stream, true);
    assert_eq!(seen.used, stream.len());
    assert_eq!(seen.frames, 1_000);
    assert_eq!(seen.inside, 1_000, "bodies copied out of the input");
    let allocations = seen.allocations;
    assert!(
        allocations <= 4 * 1_000,
        "{allocations} allocations for 1,000 frames"
    );
}

/// Counts the frames lent to it whose message lies inside the input.
struct Viewer(Where);

impl Handler for Viewer {
    fn received_view<'a>(
        &mut self,
        _conn: &mut Connection<'_>,
        frame: tej_core::FrameView<'a>,
    ) -> Option<tej_core::FrameView<'a>> {
        self.0.frames += 1;
        if frame
            .message()
            .is_some_and(|message| self.0.is_inside(message))
        {
            self.0.inside += 1;
        }
        None
    }
}

#[test]
fn small_frames_lent_to_the_handler_are_views_of_the_input_even_unshared() {
    // The same 10,000 frames, lent: from a plain slice too, every message
    // is a view of the input and nothing is allocated per frame (the
    // default `received_view` would copy each one out of a plain slice).
    let _serial = serial();
    let one = Frame::message(vec![b'm'; 64]).encode_to_vec().unwrap();
    let stream = one.repeat(10_000);
    let mut session = Session::new(Viewer(Where::new(&stream)), SessionConfig::default());
    session.start(Duration::ZERO);
    let region = Region::new(GLOBAL);
    let used = session.handle_input(&stream, Duration::ZERO);
    let allocations = region.change().allocations;
    assert_eq!(used, stream.len());
    assert_eq!(session.handler().0.frames, 10_000);
    assert_eq!(session.handler().0.inside, 10_000);
    assert!(
        allocations <= ONCE_ONLY,
        "{allocations} allocations for 10,000 frames"
    );
}
