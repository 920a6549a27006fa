//! Helpers shared by the integration tests: owned copies of decoder events,
//! feeding loops that check the progress contract of `decode`, split plans
//! and a seeded random generator.

#![allow(dead_code)]

pub mod store;

use tej_core::{Assembler, DecodeError, Decoder, Event, Frame};

/// How many cases a property test runs: `normal`, or a handful under Miri,
/// which interprets every step some thousand times slower. Miri looks for
/// undefined behaviour on the paths taken, not for rare inputs: a few
/// cases cover the code the property test reaches.
pub const fn cases(normal: u32) -> u32 {
    if cfg!(miri) {
        4
    } else {
        normal
    }
}

/// A property test's configuration: [`cases`]`(normal)` cases, and under
/// Miri no file of failures kept (its isolation forbids the file system).
pub fn proptest_config(normal: u32) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::with_cases(cases(normal));
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// A session's callback, as a recording handler saw it (a disconnect by a
/// name for its reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connected,
    Received(Frame),
    Ping(Frame),
    Disconnected(String),
}

/// An owned copy of an [`Event`], with payload pieces kept as they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    /// `Event::FrameStart`.
    FrameStart {
        /// Custom status value.
        status: u8,
        /// Version byte.
        version: u8,
        /// Announced file count.
        file_count: u64,
    },
    /// `Event::FileStart`.
    FileStart {
        /// The name.
        name: String,
        /// Announced data length.
        size: u64,
    },
    /// `Event::FileData` (pieces merged by [`merge_data`]).
    FileData(Vec<u8>),
    /// `Event::FileEnd`.
    FileEnd,
    /// `Event::MessageStart`.
    MessageStart {
        /// Announced message length.
        size: u64,
    },
    /// `Event::MessageData` (pieces merged by [`merge_data`]).
    MessageData(Vec<u8>),
    /// `Event::FrameEnd`.
    FrameEnd,
}

impl OwnedEvent {
    /// Copies a borrowed event. Panics on an empty data event, which the
    /// decoder promises never to return.
    pub fn from_event(event: &Event<'_>) -> Self {
        match *event {
            Event::FrameStart {
                status,
                version,
                file_count,
            } => OwnedEvent::FrameStart {
                status: status.get(),
                version,
                file_count,
            },
            Event::FileStart { name, size } => OwnedEvent::FileStart {
                name: name.to_owned(),
                size,
            },
            Event::FileData(data) => {
                assert!(!data.is_empty(), "FileData events are never empty");
                OwnedEvent::FileData(data.to_vec())
            }
            Event::FileEnd => OwnedEvent::FileEnd,
            Event::MessageStart { size } => OwnedEvent::MessageStart { size },
            Event::MessageData(data) => {
                assert!(!data.is_empty(), "MessageData events are never empty");
                OwnedEvent::MessageData(data.to_vec())
            }
            Event::FrameEnd => OwnedEvent::FrameEnd,
        }
    }
}

/// Joins consecutive data pieces of the same kind, so event lists from
/// different splits of one stream compare equal.
pub fn merge_data(events: Vec<OwnedEvent>) -> Vec<OwnedEvent> {
    let mut merged: Vec<OwnedEvent> = Vec::with_capacity(events.len());
    for event in events {
        match (merged.last_mut(), event) {
            (Some(OwnedEvent::FileData(acc)), OwnedEvent::FileData(more)) => {
                acc.extend_from_slice(&more)
            }
            (Some(OwnedEvent::MessageData(acc)), OwnedEvent::MessageData(more)) => {
                acc.extend_from_slice(&more)
            }
            (_, event) => merged.push(event),
        }
    }
    merged
}

/// The (merged) events a correct decoder reports for `frame`.
pub fn expected_events(frame: &Frame) -> Vec<OwnedEvent> {
    let mut events = vec![OwnedEvent::FrameStart {
        status: frame.status.get(),
        version: frame.version,
        file_count: frame.files.len() as u64,
    }];
    for file in &frame.files {
        let data = file.data().expect("test frames are in memory");
        events.push(OwnedEvent::FileStart {
            name: file.name.clone(),
            size: data.len() as u64,
        });
        if !data.is_empty() {
            events.push(OwnedEvent::FileData(data.to_vec()));
        }
        events.push(OwnedEvent::FileEnd);
    }
    let message = frame.message.as_deref().unwrap_or_default();
    events.push(OwnedEvent::MessageStart {
        size: message.len() as u64,
    });
    if !message.is_empty() {
        events.push(OwnedEvent::MessageData(message.to_vec()));
    }
    events.push(OwnedEvent::FrameEnd);
    events
}

/// The most events in a row that may consume no input (`FileEnd`, `FrameEnd`).
/// A decoder stuck returning events without progress trips this.
const MAX_EVENTS_WITHOUT_PROGRESS: usize = 2;

/// Calls `step` on what is left of `chunk` until it returns nothing,
/// appending what it returns (`what`: "an event", "a frame") to `out`.
/// Checks the progress contract on every call: `consumed` never exceeds
/// the input, nothing returned means every byte was consumed, and at most
/// `max_idle` returned in a row consume nothing.
fn feed<T: std::fmt::Debug>(
    chunk: &[u8],
    what: &str,
    max_idle: usize,
    out: &mut Vec<T>,
    mut step: impl FnMut(&[u8]) -> Result<(usize, Option<T>), DecodeError>,
) -> Result<(), DecodeError> {
    let mut rest = chunk;
    let mut idle = 0;
    loop {
        let (consumed, item) = step(rest)?;
        assert!(consumed <= rest.len(), "consumed more than the input");
        let Some(item) = item else {
            assert_eq!(
                consumed,
                rest.len(),
                "a call without {what} must consume all its input"
            );
            return Ok(());
        };
        if consumed == 0 {
            idle += 1;
            assert!(
                idle <= max_idle,
                "{what} returned without consuming input: {item:?}"
            );
        } else {
            idle = 0;
        }
        out.push(item);
        rest = &rest[consumed..];
    }
}

/// Feeds `chunks` in order with `feed_one`; what it gathered, and the first
/// error if any (with what came before it).
fn feed_all<T>(
    chunks: &[&[u8]],
    mut feed_one: impl FnMut(&[u8], &mut Vec<T>) -> Result<(), DecodeError>,
) -> (Vec<T>, Result<(), DecodeError>) {
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(error) = feed_one(chunk, &mut out) {
            return (out, Err(error));
        }
    }
    (out, Ok(()))
}

/// Feeds one chunk to `decoder`, looping until it asks for more input, and
/// appends the events, checking the progress contract (see [`feed`]) and
/// that `stream_offset` advances by what each call consumed.
pub fn feed_decoder(
    decoder: &mut Decoder,
    chunk: &[u8],
    events: &mut Vec<OwnedEvent>,
) -> Result<(), DecodeError> {
    feed(
        chunk,
        "an event",
        MAX_EVENTS_WITHOUT_PROGRESS,
        events,
        |rest| {
            let before = decoder.stream_offset();
            let decoded = decoder.decode(rest)?;
            let consumed = decoded.consumed;
            let event = decoded.event.as_ref().map(OwnedEvent::from_event);
            assert_eq!(
                decoder.stream_offset(),
                before + consumed as u64,
                "stream_offset advances by `consumed`"
            );
            Ok((consumed, event))
        },
    )
}

/// Feeds `chunks` in order to `decoder`; the merged events, and the first
/// error if any (with the events before it).
pub fn decode_events(
    decoder: &mut Decoder,
    chunks: &[&[u8]],
) -> (Vec<OwnedEvent>, Result<(), DecodeError>) {
    let (events, result) = feed_all(chunks, |chunk, events| feed_decoder(decoder, chunk, events));
    (merge_data(events), result)
}

/// Feeds one chunk to `assembler` until it asks for more, collecting frames,
/// with the same progress checks as [`feed_decoder`] (one frame at most
/// without input).
pub fn feed_assembler(
    assembler: &mut Assembler,
    chunk: &[u8],
    frames: &mut Vec<Frame>,
) -> Result<(), DecodeError> {
    feed(chunk, "a frame", 1, frames, |rest| {
        let assembled = assembler.decode(rest)?;
        Ok((assembled.consumed, assembled.frame))
    })
}

/// Feeds `chunks` to `assembler`; the frames, and the first error if any.
pub fn decode_frames(
    assembler: &mut Assembler,
    chunks: &[&[u8]],
) -> (Vec<Frame>, Result<(), DecodeError>) {
    feed_all(chunks, |chunk, frames| {
        feed_assembler(assembler, chunk, frames)
    })
}

/// The whole frames a session wrote into `wire`, and how many bytes
/// follow the last one (a frame written part-way).
pub fn whole_frames(wire: &[u8]) -> (Vec<Frame>, usize) {
    let mut assembler = Assembler::new(tej_core::Limits::DEFAULT);
    let (frames, result) = decode_frames(&mut assembler, &[wire]);
    result.expect("the bytes out decode");
    let whole: usize = frames.iter().map(|f| f.encoded_len() as usize).sum();
    (frames, wire.len() - whole)
}

/// A seeded generator (fastrand's) for split points and filler bytes, with
/// the draws the tests use.
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A value in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        self.0.usize(low..=high)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.0.fill(&mut bytes);
        bytes
    }
}

/// How to cut a stream into the chunks handed to a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// All at once.
    Whole,
    /// One byte per call.
    Bytes,
    /// Chunks of a fixed size.
    Fixed(usize),
    /// Random chunk sizes (some empty) from a seed: small, medium and large.
    Random(u64),
}

impl Split {
    /// The chunks of `data` under this plan. Concatenated they are `data`.
    pub fn chunks<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let chunks: Vec<&[u8]> = match *self {
            Split::Whole => vec![data],
            Split::Bytes => data.chunks(1).collect(),
            Split::Fixed(size) => data.chunks(size.max(1)).collect(),
            Split::Random(seed) => {
                let mut rng = Rng::new(seed);
                // The scale varies per seed so some plans are mostly tiny
                // pieces and others mostly large ones.
                let scale = [2, 9, 33, 257, data.len().max(1)][rng.range(0, 4)];
                let mut chunks = Vec::new();
                let mut rest = data;
                while !rest.is_empty() {
                    let take = rng.range(0, scale).min(rest.len());
                    chunks.push(&rest[..take]);
                    rest = &rest[take..];
                }
                chunks
            }
        };
        debug_assert_eq!(chunks.concat(), data);
        chunks
    }
}
