//! The echo over an in-memory stream that hands out its input in chosen
//! pieces.

use super::*;
use tej_core::{DecodeError, FileRef, LimitKind};

/// Input handed out `chunk` bytes at a time; output kept.
struct Stream {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    output: Vec<u8>,
}

impl embedded_io::ErrorType for Stream {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let len = self.chunk.min(buf.len()).min(self.input.len() - self.at);
        buf[..len].copy_from_slice(&self.input[self.at..self.at + len]);
        self.at += len;
        Ok(len)
    }
}

impl embedded_io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A frame's encoding.
fn wire(frame: &FrameRef<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame.encoded_len() as usize];
    frame.encode_into(&mut out).unwrap();
    out
}

/// Runs the echo over `input` read `chunk` bytes at a time: what it ran,
/// what it sent and how much input it left unread.
fn run_over(input: &[u8], chunk: usize) -> (Ran<core::convert::Infallible>, Vec<u8>, usize) {
    let stream = Stream {
        input: input.to_vec(),
        at: 0,
        chunk,
        output: Vec::new(),
    };
    let mut buffer = [0u8; 16];
    let mut storage = [0u8; STORAGE];
    let mut store = FrameStore::<MAX_FILES>::new(&mut storage);
    let mut endpoint = Endpoint::new(stream, &mut buffer, LIMITS);
    let ran = run(&mut endpoint, &mut store, |_| {});
    let stream = endpoint.into_inner();
    (ran, stream.output, stream.input.len() - stream.at)
}

fn ready() -> Vec<u8> {
    wire(&FrameRef::new(READY, &[], Some(READY_MESSAGE)))
}

#[test]
fn the_store_holds_the_largest_frame_the_limits_allow() {
    assert_eq!(STORAGE, 4 * (64 + 1024) + 1024);
    assert_eq!(LIMITS.max_file_count, MAX_FILES as u64);
    assert_eq!(
        LIMITS.max_frame_size,
        (MAX_FILES * MAX_FILE_LEN + MAX_MESSAGE_LEN) as u64
    );
}

#[test]
fn echoes_every_frame_in_every_split_answers_pings_then_quits() {
    let big = [0xa5u8; MAX_FILE_LEN];
    let name = "é".repeat(MAX_NAME_LEN / 2);
    let message = [b'm'; MAX_MESSAGE_LEN];
    let full = [
        FileRef::new(&name, &big),
        FileRef::new("b", &big),
        FileRef::new("", b""),
        FileRef::new("d", &big[..7]),
    ];
    let one = [FileRef::new("a.txt", b"hello")];
    let frames = [
        FrameRef::new(Status::DEFAULT, &[], None),
        FrameRef::new(REFUSED, &full, Some(&message)),
        FrameRef::new(Status::MAX, &one, None),
    ];
    let mut input = Vec::new();
    let mut expected = ready();
    for frame in &frames {
        input.extend(wire(frame));
        expected.extend(wire(&FrameRef::new(ECHO, frame.files, frame.message)));
    }
    // A ping, with a file even: answered with an empty ping, not echoed.
    input.extend(wire(&FrameRef::new(Status::PING, &one, Some(b"ping"))));
    expected.extend(wire(&FrameRef::new(Status::PING, &[], None)));
    input.extend(wire(&FrameRef::new(QUIT, &one, Some(b"stop"))));
    expected.extend(wire(&FrameRef::new(BYE, &[], Some(BYE_MESSAGE))));
    // Bytes after the quit are never read.
    let after = wire(&FrameRef::new(Status::DEFAULT, &[], None));
    input.extend(&after);
    for chunk in [1, 2, 3, 7, 64, 1000, input.len()] {
        let (ran, out, unread) = run_over(&input, chunk);
        assert_eq!(ran.how, Exit::Success, "chunk {chunk}");
        assert_eq!(ran.frames, frames.len(), "chunk {chunk}");
        assert!(out == expected, "chunk {chunk}: answers differ");
        assert!(unread <= after.len(), "chunk {chunk}");
    }
}

#[test]
fn what_does_not_fit_is_refused_from_its_header() {
    let long_name = "n".repeat(MAX_NAME_LEN + 1);
    let big = [0u8; MAX_FILE_LEN + 1];
    let message = [0u8; MAX_MESSAGE_LEN + 1];
    let named = [FileRef::new(&long_name, b"")];
    let large = [FileRef::new("big", &big)];
    let five: [FileRef<'_>; 5] = core::array::from_fn(|_| FileRef::new("f", b""));
    let cases = [
        (
            FrameRef::new(Status::DEFAULT, &named, None),
            LimitKind::NameLength,
            10 + 2,
        ),
        (
            FrameRef::new(Status::DEFAULT, &large, None),
            LimitKind::FileSize,
            10 + 2 + 3 + 8,
        ),
        (
            FrameRef::new(Status::DEFAULT, &five, None),
            LimitKind::FileCount,
            10,
        ),
        (
            FrameRef::new(Status::DEFAULT, &[], Some(&message)),
            LimitKind::MessageSize,
            10 + 8,
        ),
    ];
    for (frame, kind, header) in cases {
        let bytes = wire(&frame);
        // The whole frame, read a byte at a time: reading stops at the header.
        let (ran, out, unread) = run_over(&bytes, 1);
        let Exit::Refused(Error::Decode(DecodeError::LimitExceeded { limit, .. })) = ran.how else {
            panic!("{kind:?}: {ran:?}");
        };
        assert_eq!(limit, kind);
        assert_eq!(
            unread,
            bytes.len() - header,
            "{kind:?}: nothing past the header was read"
        );
        let out = &out[ready().len()..];
        let text = format!("refused: cannot decode: {kind} ");
        assert_eq!(out[0], 0x80 | 7, "{kind:?}");
        assert!(
            std::str::from_utf8(&out[18..]).unwrap().starts_with(&text),
            "{kind:?}: {:?}",
            std::string::String::from_utf8_lossy(out)
        );
    }
}

#[test]
fn refusal_names_the_error() {
    let (ran, out, _) = run_over(&[0x00, 0x01], 1);
    assert_eq!(ran.frames, 0);
    assert!(matches!(
        ran.how,
        Exit::Refused(Error::Decode(DecodeError::StatusBitClear { byte: 0, .. }))
    ));
    let text = b"refused: cannot decode: status bit is 0 in first byte 0x00 of a frame at offset 0";
    let mut expected = ready();
    expected.extend(wire(&FrameRef::new(REFUSED, &[], Some(text))));
    assert_eq!(out, expected);
}

#[test]
fn the_end_of_the_stream_ends_the_echo() {
    let (ran, out, _) = run_over(&[], 4);
    assert_eq!((ran.how, out), (Exit::Closed, ready()));
    let (ran, _, _) = run_over(&[0x80, 0x01, 0x00], 4);
    assert!(matches!(
        ran.how,
        Exit::Refused(Error::Decode(DecodeError::UnexpectedEof { .. }))
    ));
}
