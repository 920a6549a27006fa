//! Property tests: any frame survives encode → decode in any split, through
//! the [`Assembler`] and the raw [`Decoder`]; streams of several frames decode
//! in order; arbitrary and corrupted bytes never panic, every `decode` call
//! makes progress, the outcome does not depend on how the stream is split,
//! and errors are sticky; the one-step decoding of whole frames without
//! files agrees with the event-by-event path.

mod common;

use common::{decode_events, decode_frames, expected_events, merge_data, OwnedEvent, Split};
use proptest::collection::vec;
use proptest::prelude::*;
use tej_core::{
    Assembler, DecodeError, Decoder, FileRef, Frame, FrameBuilder, FrameRef, Limits, Status,
};

/// Names of up to 40 arbitrary Unicode scalar values (so up to 160 bytes),
/// with plain ASCII and a few fixed non-ASCII names mixed in.
fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 0..40).prop_map(|chars| chars.into_iter().collect()),
        "[a-z0-9_./-]{0,40}",
        Just("é.txt".to_owned()),
        Just("日本語のファイル名.txt".to_owned()),
        Just("🦀 crab.rs".to_owned()),
    ]
}

fn arb_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..16), vec(any::<u8>(), 0..4096)]
}

/// A frame as the brief describes: any status and version byte, up to five
/// files, a message that is absent or non-empty.
fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        0u8..=127,
        any::<u8>(),
        vec((arb_name(), arb_data()), 0..6),
        proptest::option::of(vec(any::<u8>(), 1..512)),
    )
        .prop_map(|(status, version, files, message)| {
            let mut builder = FrameBuilder::new(Status::new(status).unwrap()).version(version);
            for (name, data) in files {
                builder = builder.file(name, data);
            }
            if let Some(message) = message {
                builder = builder.message(message);
            }
            builder.build()
        })
}

fn arb_split() -> impl Strategy<Value = Split> {
    prop_oneof![
        1 => Just(Split::Whole),
        1 => Just(Split::Bytes),
        2 => (1usize..80).prop_map(Split::Fixed),
        4 => any::<u64>().prop_map(Split::Random),
    ]
}

/// Tight limits, the defaults, or none at all.
fn arb_limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::DEFAULT),
        Just(Limits::UNLIMITED),
        Just(
            Limits::DEFAULT
                .max_file_count(4)
                .max_name_len(16)
                .max_file_size(1024)
                .max_message_size(256)
                .max_frame_size(2048)
        ),
    ]
}

/// The files of `frame` as `FileRef`s, for the allocation-free encoder.
fn file_refs(frame: &Frame) -> Vec<FileRef<'_>> {
    frame
        .files
        .iter()
        .map(|file| FileRef::new(&file.name, file.data().unwrap()))
        .collect()
}

/// Whether the stream ended between frames, as both decoders must agree.
fn finish_both(decoder: &Decoder, assembler: &Assembler) -> Result<(), DecodeError> {
    let result = decoder.finish();
    assert_eq!(assembler.finish(), result, "assembler and decoder disagree");
    result
}

/// After an error the decoder and the assembler return it again, whatever
/// they are given, and `finish` reports it too.
fn assert_sticky(decoder: &mut Decoder, assembler: &mut Assembler, error: DecodeError) {
    let valid = Frame::message("after the error").encode_to_vec().unwrap();
    for input in [&[][..], &[0x80][..], &[0x00][..], &valid[..]] {
        assert_eq!(decoder.decode(input), Err(error), "decoder is poisoned");
        assert_eq!(assembler.decode(input), Err(error), "assembler is poisoned");
    }
    assert_eq!(decoder.finish(), Err(error));
    assert_eq!(assembler.finish(), Err(error));
}

/// Decodes `stream` split by `split` with the decoder and the assembler,
/// checks the progress contract (inside the helpers), split independence and
/// stickiness; returns the frames, merged events and outcome.
fn decode_checked(
    stream: &[u8],
    split: Split,
    limits: Limits,
) -> (Vec<Frame>, Vec<OwnedEvent>, Result<(), DecodeError>) {
    let chunks = split.chunks(stream);

    let mut decoder = Decoder::new(limits);
    let (events, decoder_result) = decode_events(&mut decoder, &chunks);
    let mut assembler = Assembler::new(limits);
    let (frames, assembler_result) = decode_frames(&mut assembler, &chunks);
    assert_eq!(decoder_result, assembler_result, "same error either way");

    // The same stream in one piece gives the same outcome: errors and their
    // offsets do not depend on how the bytes were split.
    let mut whole = Decoder::new(limits);
    let (whole_events, whole_result) = decode_events(&mut whole, &[stream]);
    assert_eq!(decoder_result, whole_result, "outcome depends on the split");
    assert_eq!(events, whole_events, "events depend on the split");

    // The assembler's frames are exactly the completed frames of the events.
    let completed = events
        .iter()
        .filter(|event| **event == OwnedEvent::FrameEnd)
        .count();
    assert_eq!(frames.len(), completed, "one frame per FrameEnd");

    match decoder_result {
        Ok(()) => {
            assert_eq!(decoder.stream_offset(), stream.len() as u64);
            assert_eq!(assembler.decoder().stream_offset(), stream.len() as u64);
            let finished = finish_both(&decoder, &assembler);
            assert_eq!(finished.is_ok(), decoder.is_between_frames());
        }
        Err(error) => {
            assert!(
                error.offset() < stream.len() as u64,
                "error inside the stream"
            );
            assert_sticky(&mut decoder, &mut assembler, error);
        }
    }
    (frames, events, decoder_result)
}

proptest! {
    #![proptest_config(common::proptest_config(256))]

    #[test]
    fn any_frame_roundtrips_in_any_split(frame in arb_frame(), split in arb_split()) {
        let wire = frame.encode_to_vec().unwrap();
        prop_assert_eq!(wire.len() as u64, frame.encoded_len());

        // The allocation-free encoder writes the same bytes.
        let files = file_refs(&frame);
        let mut frame_ref = FrameRef::new(frame.status, &files, frame.message.as_deref());
        frame_ref.version = frame.version;
        prop_assert_eq!(frame_ref.encoded_len(), wire.len() as u64);
        let mut buffer = vec![0u8; wire.len() + 7];
        prop_assert_eq!(frame_ref.encode_into(&mut buffer), Ok(wire.len()));
        prop_assert_eq!(&buffer[..wire.len()], &wire[..]);

        // Names are written with their byte length, not their char count.
        let mut at = 10;
        for file in &frame.files {
            let len = u16::from_be_bytes([wire[at], wire[at + 1]]);
            prop_assert_eq!(usize::from(len), file.name.len());
            at += 2 + file.name.len() + 8 + file.len() as usize;
        }

        let (frames, events, result) = decode_checked(&wire, split, Limits::DEFAULT);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(frames, vec![frame.clone()]);
        prop_assert_eq!(events, expected_events(&frame));
    }

    #[test]
    fn frames_back_to_back_decode_in_order(
        frames in vec(arb_frame(), 1..5),
        split in arb_split(),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            frame.encode_to(&mut stream).unwrap();
        }
        let total: u64 = frames.iter().map(Frame::encoded_len).sum();
        prop_assert_eq!(stream.len() as u64, total);

        let (decoded, events, result) = decode_checked(&stream, split, Limits::DEFAULT);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(decoded, frames.clone());
        let expected = merge_data(frames.iter().flat_map(expected_events).collect());
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn whole_message_frames_decode_in_one_step_as_event_by_event(
        bytes in vec(any::<u8>(), 0..120),
        frame in arb_frame(),
        prefix in any::<bool>(),
        limits in arb_limits(),
    ) {
        // Random bytes, or a real frame (often with no files) followed by them.
        let mut stream = if prefix { frame.encode_to_vec().unwrap() } else { Vec::new() };
        stream.extend_from_slice(&bytes);
        let mut fast = Decoder::new(limits);
        let Some(whole) = fast.decode_message_frame(&stream) else {
            prop_assert_eq!(fast.stream_offset(), 0, "None consumes nothing");
            return Ok(());
        };
        prop_assert_eq!(fast.stream_offset(), whole.consumed as u64);
        prop_assert!(fast.is_between_frames());
        // The event path reads the same frame from the same bytes.
        let mut slow = Decoder::new(limits);
        let mut input = &stream[..whole.consumed];
        let mut message = Vec::new();
        let mut header = None;
        while let Some(event) = {
            let decoded = slow.decode(input).unwrap();
            input = &input[decoded.consumed..];
            decoded.event
        } {
            match event {
                tej_core::Event::FrameStart { status, version, file_count } => {
                    prop_assert_eq!(file_count, 0);
                    header = Some((status, version));
                }
                tej_core::Event::MessageData(data) => message.extend_from_slice(data),
                tej_core::Event::FrameEnd => break,
                _ => {}
            }
        }
        prop_assert!(input.is_empty());
        prop_assert_eq!(header, Some((whole.status, whole.version)));
        prop_assert_eq!(&message[..], whole.message);
        prop_assert_eq!(slow.stream_offset(), fast.stream_offset());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..600),
        split in arb_split(),
        limits in arb_limits(),
    ) {
        let (_, _, result) = decode_checked(&bytes, split, limits);
        if let Some(&first) = bytes.first() {
            if first & 0x80 == 0 {
                prop_assert_eq!(
                    result,
                    Err(DecodeError::StatusBitClear { byte: first, offset: 0 })
                );
            }
        } else {
            prop_assert_eq!(result, Ok(()));
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_status_byte_never_panic(
        status in 0x80u8..=0xFF,
        bytes in vec(any::<u8>(), 0..600),
        split in arb_split(),
        limits in arb_limits(),
    ) {
        // Half of all random streams stop at the status bit; this gets past it.
        let mut stream = vec![status];
        stream.extend_from_slice(&bytes);
        let (_, events, result) = decode_checked(&stream, split, limits);
        if let Err(DecodeError::StatusBitClear { offset, .. }) = result {
            prop_assert!(offset > 0, "the first status byte was valid");
        }
        prop_assert!(!events.is_empty() || stream.len() < 10 || result.is_err());
    }

    #[test]
    fn corrupted_frames_never_panic(
        frames in vec(arb_frame(), 1..3),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        split in arb_split(),
        limits in arb_limits(),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            frame.encode_to(&mut stream).unwrap();
        }
        for (index, byte) in edits {
            let at = index.index(stream.len());
            stream[at] = byte;
        }
        if truncate {
            stream.truncate(cut.index(stream.len()));
        }
        let (decoded, _, result) = decode_checked(&stream, split, limits);
        // Every whole frame takes at least 18 bytes of the stream.
        prop_assert!(decoded.len() * 18 <= stream.len());
        if result.is_ok() && truncate && decoded.is_empty() && !stream.is_empty() {
            // A truncated non-empty stream with no whole frame cannot end cleanly.
            let mut decoder = Decoder::new(limits);
            let (_, again) = decode_events(&mut decoder, &[&stream]);
            prop_assert_eq!(again, Ok(()));
            prop_assert!(decoder.finish().is_err());
        }
    }
}

#[test]
fn an_empty_message_is_no_message() {
    // The wire cannot tell an empty message from none: the builder, both
    // encoders and the assembler all agree on `None`.
    let built = FrameBuilder::new(Status::DEFAULT)
        .message(Vec::new())
        .build();
    assert_eq!(built.message, None);
    assert_eq!(built, Frame::default());
    let none = FrameRef::new(Status::DEFAULT, &[], None);
    let empty = FrameRef::new(Status::DEFAULT, &[], Some(&[]));
    let (mut a, mut b) = ([0u8; 18], [0u8; 18]);
    assert_eq!(none.encode_into(&mut a), Ok(18));
    assert_eq!(empty.encode_into(&mut b), Ok(18));
    assert_eq!(a, b);
    assert_eq!(&a[..], &built.encode_to_vec().unwrap()[..]);
    assert_eq!(a, [0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    let (frames, events, result) = decode_checked(&a, Split::Bytes, Limits::DEFAULT);
    assert_eq!(result, Ok(()));
    assert_eq!(frames, vec![built]);
    assert_eq!(
        events,
        [
            OwnedEvent::FrameStart {
                status: 0,
                version: 1,
                file_count: 0
            },
            OwnedEvent::MessageStart { size: 0 },
            OwnedEvent::FrameEnd,
        ]
    );
}

#[test]
fn zero_length_files_have_no_data_events() {
    let frame = FrameBuilder::new(Status::MAX)
        .file("", Vec::new())
        .file("empty", Vec::new())
        .build();
    let wire = frame.encode_to_vec().unwrap();
    let (frames, events, result) = decode_checked(&wire, Split::Bytes, Limits::DEFAULT);
    assert_eq!(result, Ok(()));
    assert_eq!(frames, vec![frame.clone()]);
    assert_eq!(events, expected_events(&frame));
    assert!(!events
        .iter()
        .any(|event| matches!(event, OwnedEvent::FileData(_))));
    assert_eq!(frames[0].files[0].name, "");
    assert!(frames[0].files.iter().all(|file| file.is_empty()));
}
