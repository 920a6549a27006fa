//! Golden frames written by the reference implementation (`tej-protoc`
//! 0.2.4, `tests/fixtures/reference-frames.json`): every vector decodes to its
//! `expect` through the [`Assembler`] and the raw [`Decoder`], in any split,
//! and every `expect` encodes back to `wire_hex` byte for byte.

mod common;

use common::{decode_events, decode_frames, expected_events, OwnedEvent, Rng, Split};
use serde_json::Value;
use tej_core::{
    Assembler, Decoder, EncodeError, FileRef, Frame, FrameBuilder, FrameRef, Limits, Status,
};

const FIXTURE: &str = include_str!("fixtures/reference-frames.json");

/// Random split plans tried per vector, on top of whole and byte by byte.
const RANDOM_SPLITS: u64 = 200;

/// One golden vector, parsed.
struct Vector {
    name: String,
    wire: Vec<u8>,
    status: u8,
    version: u8,
    files: Vec<(String, Vec<u8>)>,
    message: Option<Vec<u8>>,
}

impl Vector {
    /// The frame `expect` describes, built like a user would.
    fn frame(&self) -> Frame {
        let status = Status::new(self.status).expect("fixture status is in 0..=127");
        let mut builder = FrameBuilder::new(status).version(self.version);
        for (name, data) in &self.files {
            builder = builder.file(name.clone(), data.clone());
        }
        if let Some(message) = &self.message {
            builder = builder.message(message.clone());
        }
        builder.build()
    }
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vectors() -> Vec<Vector> {
    let json: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let vectors: Vec<Vector> = json
        .as_array()
        .expect("fixture is an array")
        .iter()
        .map(|vector| {
            let expect = &vector["expect"];
            let byte = |value: &Value| {
                u8::try_from(value.as_u64().expect("a number")).expect("fits a byte")
            };
            Vector {
                name: vector["name"].as_str().expect("name").to_owned(),
                wire: unhex(vector["wire_hex"].as_str().expect("wire_hex")),
                status: byte(&expect["status"]),
                version: byte(&expect["version"]),
                files: expect["files"]
                    .as_array()
                    .expect("files")
                    .iter()
                    .map(|file| {
                        (
                            file["name"].as_str().expect("file name").to_owned(),
                            unhex(file["data_hex"].as_str().expect("data_hex")),
                        )
                    })
                    .collect(),
                message: match &expect["message_hex"] {
                    Value::Null => None,
                    value => Some(unhex(value.as_str().expect("message_hex"))),
                },
            }
        })
        .collect();
    assert!(vectors.len() >= 9, "the fixture lost vectors");
    vectors
}

/// Whole, byte by byte, a few fixed sizes and many random splits.
fn split_plans(seed: u64) -> Vec<Split> {
    if cfg!(miri) {
        // Interpreted, every plan costs a minute: whole, small pieces that
        // cut every field, and one random plan cover the same code.
        return vec![
            Split::Whole,
            Split::Fixed(3),
            Split::Random(Rng::new(seed).next_u64()),
        ];
    }
    let mut plans = vec![
        Split::Whole,
        Split::Bytes,
        Split::Fixed(2),
        Split::Fixed(3),
        Split::Fixed(7),
        Split::Fixed(9),
        Split::Fixed(10),
        Split::Fixed(64),
    ];
    let mut rng = Rng::new(seed);
    plans.extend((0..RANDOM_SPLITS).map(|_| Split::Random(rng.next_u64())));
    plans
}

/// Checks the decoded frame field by field against the JSON, so a mismatch
/// names the field rather than dumping two frames.
fn assert_frame_matches(vector: &Vector, frame: &Frame, plan: Split) {
    let name = &vector.name;
    assert_eq!(frame.status.get(), vector.status, "{name} {plan:?}: status");
    assert_eq!(frame.version, vector.version, "{name} {plan:?}: version");
    assert_eq!(
        frame.files.len(),
        vector.files.len(),
        "{name} {plan:?}: file count"
    );
    for (index, (file, (expected_name, expected_data))) in
        frame.files.iter().zip(&vector.files).enumerate()
    {
        assert_eq!(
            &file.name, expected_name,
            "{name} {plan:?}: file {index} name"
        );
        assert_eq!(
            file.data().map(|data| &data[..]),
            Some(&expected_data[..]),
            "{name} {plan:?}: file {index} data"
        );
    }
    assert_eq!(
        frame.message.as_deref(),
        vector.message.as_deref(),
        "{name} {plan:?}: message"
    );
    assert_eq!(frame, &vector.frame(), "{name} {plan:?}: whole frame");
}

#[test]
fn fixture_covers_the_interesting_cases() {
    let vectors = vectors();
    let names: Vec<&str> = vectors.iter().map(|vector| vector.name.as_str()).collect();
    for wanted in [
        "message_only",
        "empty_frame",
        "ping",
        "one_file_and_message",
        "three_files_one_empty",
        "max_custom_status",
        "version_zero",
        "version_255",
        "binary_message",
    ] {
        assert!(names.contains(&wanted), "fixture lacks {wanted}");
    }
    let empty = vectors.iter().find(|v| v.name == "empty_frame").unwrap();
    assert_eq!(empty.wire.len(), 18, "the smallest frame is 18 bytes");
    assert_eq!(empty.message, None, "null message_hex is no message");
    let ping = vectors.iter().find(|v| v.name == "ping").unwrap();
    assert!(ping.frame().is_ping());
    assert_eq!(ping.frame(), Frame::ping());
}

#[test]
fn assembler_decodes_every_vector_in_any_split() {
    for (index, vector) in vectors().iter().enumerate() {
        for plan in split_plans(index as u64) {
            let chunks = plan.chunks(&vector.wire);
            let mut assembler = Assembler::new(Limits::default());
            let (frames, result) = decode_frames(&mut assembler, &chunks);
            assert_eq!(result, Ok(()), "{} {plan:?}", vector.name);
            assert_eq!(frames.len(), 1, "{} {plan:?}: one frame", vector.name);
            assert_frame_matches(vector, &frames[0], plan);
            assert_eq!(assembler.finish(), Ok(()), "{} {plan:?}", vector.name);
            assert_eq!(
                assembler.decoder().stream_offset(),
                vector.wire.len() as u64
            );
        }
    }
}

#[test]
fn decoder_events_match_every_vector_in_any_split() {
    for (index, vector) in vectors().iter().enumerate() {
        let expected = expected_events(&vector.frame());
        // The event list spelled out from the JSON, not only from the model.
        assert_eq!(
            expected.first(),
            Some(&OwnedEvent::FrameStart {
                status: vector.status,
                version: vector.version,
                file_count: vector.files.len() as u64,
            })
        );
        let before_end = match &vector.message {
            None => OwnedEvent::MessageStart { size: 0 },
            Some(message) => OwnedEvent::MessageData(message.clone()),
        };
        assert_eq!(expected.iter().rev().nth(1), Some(&before_end));
        for plan in split_plans(1000 + index as u64) {
            let chunks = plan.chunks(&vector.wire);
            let mut decoder = Decoder::new(Limits::default());
            let (events, result) = decode_events(&mut decoder, &chunks);
            assert_eq!(result, Ok(()), "{} {plan:?}", vector.name);
            assert_eq!(events, expected, "{} {plan:?}", vector.name);
            assert!(decoder.is_between_frames());
            assert_eq!(decoder.finish(), Ok(()), "{} {plan:?}", vector.name);
        }
    }
}

#[test]
fn all_vectors_back_to_back_decode_in_order() {
    let vectors = vectors();
    let stream: Vec<u8> = vectors.iter().flat_map(|v| v.wire.clone()).collect();
    let expected_events: Vec<OwnedEvent> = vectors
        .iter()
        .flat_map(|v| expected_events(&v.frame()))
        .collect();
    for plan in split_plans(77) {
        let chunks = plan.chunks(&stream);
        let mut assembler = Assembler::new(Limits::default());
        let (frames, result) = decode_frames(&mut assembler, &chunks);
        assert_eq!(result, Ok(()), "{plan:?}");
        assert_eq!(frames.len(), vectors.len(), "{plan:?}");
        for (vector, frame) in vectors.iter().zip(&frames) {
            assert_frame_matches(vector, frame, plan);
        }
        assert_eq!(assembler.finish(), Ok(()));

        let mut decoder = Decoder::new(Limits::default());
        let (events, result) = decode_events(&mut decoder, &chunks);
        assert_eq!(result, Ok(()), "{plan:?}");
        assert_eq!(events, expected_events, "{plan:?}");
        assert_eq!(decoder.finish(), Ok(()));
    }
}

#[test]
fn frame_builder_reencodes_every_vector_byte_for_byte() {
    for vector in vectors() {
        let frame = vector.frame();
        assert_eq!(
            frame.encoded_len(),
            vector.wire.len() as u64,
            "{}: Frame::encoded_len",
            vector.name
        );
        let wire = frame.encode_to_vec().expect("golden frames encode");
        assert_eq!(wire, vector.wire, "{}: encode_to_vec", vector.name);

        // encode_to appends after what the buffer already holds.
        let mut out = b"prefix".to_vec();
        frame.encode_to(&mut out).expect("golden frames encode");
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], &vector.wire[..], "{}: encode_to", vector.name);
    }
}

#[test]
fn frame_ref_reencodes_every_vector_into_a_fixed_buffer() {
    for vector in vectors() {
        let files: Vec<FileRef<'_>> = vector
            .files
            .iter()
            .map(|(name, data)| FileRef::new(name, data))
            .collect();
        let mut frame = FrameRef::new(
            Status::new(vector.status).unwrap(),
            &files,
            vector.message.as_deref(),
        );
        frame.version = vector.version;
        assert_eq!(
            frame.encoded_len(),
            vector.wire.len() as u64,
            "{}: FrameRef::encoded_len",
            vector.name
        );

        let mut buffer = [0xAAu8; 4096];
        let written = frame.encode_into(&mut buffer).expect("fits 4 KiB");
        assert_eq!(written, vector.wire.len(), "{}: bytes written", vector.name);
        assert_eq!(&buffer[..written], &vector.wire[..], "{}", vector.name);
        assert!(
            buffer[written..].iter().all(|&byte| byte == 0xAA),
            "{}: nothing written past the frame",
            vector.name
        );

        // A buffer of exactly the frame's length is enough; one byte less is not.
        let mut exact = vec![0u8; vector.wire.len()];
        assert_eq!(frame.encode_into(&mut exact), Ok(vector.wire.len()));
        assert_eq!(exact, vector.wire);
        let mut short = vec![0u8; vector.wire.len() - 1];
        assert_eq!(
            frame.encode_into(&mut short),
            Err(EncodeError::BufferTooSmall {
                needed: vector.wire.len() as u64,
                available: vector.wire.len() - 1,
            })
        );
    }
}

#[test]
fn decoded_vectors_reencode_to_the_same_bytes() {
    for vector in vectors() {
        let mut assembler = Assembler::new(Limits::default());
        let assembled = assembler
            .decode(&vector.wire)
            .expect("golden frames decode");
        assert_eq!(assembled.consumed, vector.wire.len());
        let frame = assembled.frame.expect("one whole frame");
        assert_eq!(
            frame.encode_to_vec().unwrap(),
            vector.wire,
            "{}",
            vector.name
        );
    }
}
