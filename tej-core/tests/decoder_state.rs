//! What the decoder tells about where it is in the stream, step by step:
//! [`Decoder::body_remaining`] (the drive reads a body straight through by
//! it), [`Decoder::is_between_frames`] and [`Decoder::finish`] at each
//! field, and the one-step path for message frames at its bounds.

use tej_core::{Decoder, Event, FrameBuilder, Limits, Status};

/// Decodes `input` to its end, returning the events and, after each,
/// `body_remaining`.
fn events_with_remaining(decoder: &mut Decoder, mut input: &[u8]) -> Vec<(String, u64)> {
    let mut seen = Vec::new();
    loop {
        let decoded = decoder.decode(input).unwrap();
        let consumed = decoded.consumed;
        let Some(event) = decoded.event else {
            assert_eq!(consumed, input.len());
            return seen;
        };
        let name = match event {
            Event::FrameStart { .. } => "frame".to_string(),
            Event::FileStart { name, .. } => format!("file {name}"),
            Event::FileData(data) => format!("data {}", data.len()),
            Event::FileEnd => "file end".to_string(),
            Event::MessageStart { size } => format!("message {size}"),
            Event::MessageData(data) => format!("message data {}", data.len()),
            Event::FrameEnd => "end".to_string(),
        };
        input = &input[consumed..];
        seen.push((name, decoder.body_remaining()));
    }
}

#[test]
fn body_remaining_counts_down_through_each_body_and_is_zero_elsewhere() {
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("a", vec![1u8; 10])
        .file("e", Vec::new())
        .message(vec![b'm'; 7])
        .build();
    let wire = frame.encode_to_vec().unwrap();
    let mut decoder = Decoder::new(Limits::DEFAULT);
    assert_eq!(decoder.body_remaining(), 0);

    // File "a": header 10 + 2 + 1 + 8 = 21 bytes; then 4 of its 10 bytes.
    let seen = events_with_remaining(&mut decoder, &wire[..25]);
    assert_eq!(
        seen,
        [
            ("frame".to_string(), 0),
            ("file a".to_string(), 10),
            ("data 4".to_string(), 6),
        ]
    );
    assert_eq!(decoder.body_remaining(), 6);
    // The rest of it, the empty file, the message in two pieces.
    let seen = events_with_remaining(&mut decoder, &wire[25..31]);
    assert_eq!(
        seen,
        [("data 6".to_string(), 0), ("file end".to_string(), 0)]
    );
    let message_at = wire.len() - 7;
    let seen = events_with_remaining(&mut decoder, &wire[31..message_at + 3]);
    assert_eq!(
        seen,
        [
            ("file e".to_string(), 0),
            ("file end".to_string(), 0),
            ("message 7".to_string(), 7),
            ("message data 3".to_string(), 4),
        ]
    );
    let seen = events_with_remaining(&mut decoder, &wire[message_at + 3..]);
    assert_eq!(
        seen,
        [("message data 4".to_string(), 0), ("end".to_string(), 0)]
    );
    assert!(decoder.is_between_frames());
    assert_eq!(decoder.stream_offset(), wire.len() as u64);
}

#[test]
fn one_step_message_frames_stop_at_the_smaller_of_the_message_and_frame_limits() {
    let ten = tej_core::Frame::message(vec![b'm'; 10])
        .encode_to_vec()
        .unwrap();
    let eleven = tej_core::Frame::message(vec![b'm'; 11])
        .encode_to_vec()
        .unwrap();
    for limits in [
        Limits::DEFAULT.max_message_size(10),
        Limits::DEFAULT.max_message_size(100).max_frame_size(10),
    ] {
        let mut decoder = Decoder::new(limits);
        let whole = decoder.decode_message_frame(&ten).expect("at the limit");
        assert_eq!((whole.consumed, whole.message.len()), (ten.len(), 10));
        assert_eq!(decoder.stream_offset(), ten.len() as u64);
        // Over it: left to the event path, which reports the error.
        assert_eq!(decoder.decode_message_frame(&eleven), None);
        assert_eq!(decoder.stream_offset(), ten.len() as u64);
        let mut rest = &eleven[..];
        let error = loop {
            match decoder.decode(rest) {
                Ok(decoded) => rest = &rest[decoded.consumed..],
                Err(error) => break error,
            }
        };
        assert_eq!(error.offset(), ten.len() as u64 + 10);
    }
}

#[test]
fn one_step_message_frames_only_between_frames() {
    let wire = tej_core::Frame::message("hello").encode_to_vec().unwrap();
    let mut decoder = Decoder::new(Limits::DEFAULT);
    // Half a status byte's worth: one byte held in the scratch buffer.
    let partial = decoder.decode(&wire[..1]).unwrap();
    assert_eq!((partial.consumed, partial.event), (1, None));
    assert_eq!(decoder.decode_message_frame(&wire), None);
    // Part-way through the frame's header fields.
    let mut decoder = Decoder::new(Limits::DEFAULT);
    let _ = decoder.decode(&wire[..10]).unwrap();
    assert!(!decoder.is_between_frames());
    assert_eq!(decoder.decode_message_frame(&wire), None);
    // A frame with a file is not one.
    let with_file = FrameBuilder::new(Status::DEFAULT)
        .file("f", &b"x"[..])
        .build()
        .encode_to_vec()
        .unwrap();
    assert_eq!(
        Decoder::new(Limits::DEFAULT).decode_message_frame(&with_file),
        None
    );
    // A fresh decoder takes two frames in a row, each to its end.
    let mut two = wire.clone();
    two.extend_from_slice(&wire);
    let mut decoder = Decoder::new(Limits::DEFAULT);
    let first = decoder.decode_message_frame(&two).unwrap();
    let second = decoder
        .decode_message_frame(&two[first.consumed..])
        .unwrap();
    assert_eq!(second.message, b"hello");
    assert_eq!(decoder.stream_offset(), two.len() as u64);
}
