//! The endpoints over in-memory embedded-io streams that hand out bytes in
//! chosen splits: golden frames both ways, pings, streaming, limits.

extern crate std;

use std::string::String;
use std::vec::Vec;

use super::*;
use crate::error::LimitKind;

const FIXTURE: &str = include_str!("../../tests/fixtures/reference-frames.json");

/// A frame's content, owned: status, version, files, message.
type Owned = (u8, u8, Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

/// One side of a connection in memory: reads hand out `input` a random
/// number of bytes at a time (at most `largest`), writes take a random
/// number of bytes and keep them.
struct Duplex {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
    /// Seeded, so that a failing split is found again from its seed.
    rng: fastrand::Rng,
    largest: usize,
    /// Writes take nothing once `output` holds this many bytes.
    write_limit: usize,
}

impl Duplex {
    fn new(input: Vec<u8>, seed: u64, largest: usize) -> Self {
        Duplex {
            input,
            at: 0,
            output: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            largest: largest.max(1),
            write_limit: usize::MAX,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> usize {
        let len = self
            .rng
            .usize(1..=self.largest)
            .min(buf.len())
            .min(self.input.len() - self.at);
        buf[..len].copy_from_slice(&self.input[self.at..self.at + len]);
        self.at += len;
        len
    }

    fn write(&mut self, buf: &[u8]) -> usize {
        let room = self.write_limit.saturating_sub(self.output.len());
        let len = self.rng.usize(1..=self.largest).min(buf.len()).min(room);
        self.output.extend_from_slice(&buf[..len]);
        len
    }
}

impl embedded_io::ErrorType for Duplex {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(Duplex::read(self, buf))
    }
}

impl embedded_io::Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(Duplex::write(self, buf))
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(feature = "embedded-io-async")]
impl embedded_io_async::Read for Duplex {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(Duplex::read(self, buf))
    }
}

#[cfg(feature = "embedded-io-async")]
impl embedded_io_async::Write for Duplex {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(Duplex::write(self, buf))
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Runs a future that never waits (the in-memory streams are always ready).
#[cfg(feature = "embedded-io-async")]
fn block_on<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The golden vectors: name, wire bytes, content.
fn golden() -> Vec<(String, Vec<u8>, Owned)> {
    let json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|vector| {
            let expect = &vector["expect"];
            let files = expect["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|file| {
                    let name = file["name"].as_str().unwrap().into();
                    (name, unhex(file["data_hex"].as_str().unwrap()))
                })
                .collect();
            let content = (
                expect["status"].as_u64().unwrap() as u8,
                expect["version"].as_u64().unwrap() as u8,
                files,
                expect["message_hex"].as_str().map(unhex),
            );
            let name = vector["name"].as_str().unwrap().into();
            (name, unhex(vector["wire_hex"].as_str().unwrap()), content)
        })
        .collect()
}

/// Gathers events into frames; checks the events' order and that no
/// payload piece is longer than `largest`.
#[derive(Default)]
struct Gather {
    frames: Vec<Owned>,
    current: Option<Owned>,
    largest_piece: usize,
}

impl Gather {
    fn push(&mut self, event: Event<'_>) {
        let frame = self.current.get_or_insert((0, 0, Vec::new(), None));
        match event {
            Event::FrameStart {
                status, version, ..
            } => *frame = (status.get(), version, Vec::new(), None),
            Event::FileStart { name, .. } => frame.2.push((name.into(), Vec::new())),
            Event::FileData(data) => {
                self.largest_piece = self.largest_piece.max(data.len());
                frame.2.last_mut().unwrap().1.extend_from_slice(data);
            }
            Event::MessageStart { size } => frame.3 = (size > 0).then(Vec::new),
            Event::MessageData(data) => {
                self.largest_piece = self.largest_piece.max(data.len());
                frame.3.as_mut().unwrap().extend_from_slice(data);
            }
            Event::FileEnd => {}
            Event::FrameEnd => self.frames.push(self.current.take().unwrap()),
        }
    }
}

/// An endpoint's receiving loop: every event from `duplex`, read through
/// `buffer`, and the duplex back (with what the endpoint wrote).
type Receive = fn(Duplex, &mut [u8]) -> (Gather, Duplex);

fn receive_blocking(duplex: Duplex, buffer: &mut [u8]) -> (Gather, Duplex) {
    let mut endpoint = blocking::Endpoint::new(duplex, buffer, Limits::DEFAULT);
    let mut gather = Gather::default();
    while let Some(event) = endpoint.next_event().unwrap() {
        gather.push(event);
    }
    (gather, endpoint.into_inner())
}

#[cfg(feature = "embedded-io-async")]
fn receive_async(duplex: Duplex, buffer: &mut [u8]) -> (Gather, Duplex) {
    let mut endpoint = asynch::Endpoint::new(duplex, buffer, Limits::DEFAULT);
    let mut gather = Gather::default();
    block_on(async {
        while let Some(event) = endpoint.next_event().await.unwrap() {
            gather.push(event);
        }
    });
    (gather, endpoint.into_inner())
}

/// Receives `input` with `receive`, handed out in reads of at most
/// `largest` bytes (split as `seed` says) into a buffer of `buffer` bytes:
/// the events, and what the endpoint wrote.
fn receive_split(
    receive: Receive,
    input: Vec<u8>,
    seed: u64,
    largest: usize,
    buffer: usize,
) -> (Gather, Vec<u8>) {
    let mut buffer = std::vec![0u8; buffer];
    let (gather, duplex) = receive(Duplex::new(input, seed, largest), &mut buffer);
    (gather, duplex.output)
}

fn receivers() -> Vec<(&'static str, Receive)> {
    let mut receivers: Vec<(&'static str, Receive)> = std::vec![("blocking", receive_blocking)];
    #[cfg(feature = "embedded-io-async")]
    receivers.push(("async", receive_async));
    receivers
}

#[test]
fn golden_frames_are_received_in_any_split() {
    let vectors = golden();
    let mut all = Vec::new();
    let mut expected = Vec::new();
    let mut pings = Vec::new();
    for (_, wire, content) in &vectors {
        all.extend_from_slice(wire);
        expected.push(content.clone());
        if content.0 == 2 {
            pings.extend_from_slice(&PING);
        }
    }
    for (kind, receive) in receivers() {
        for seed in 0..50 {
            for (largest, buffer) in [(1, 1), (3, 7), (64, 16), (1000, 4096), (5, 300)] {
                let (gather, output) = receive_split(receive, all.clone(), seed, largest, buffer);
                assert!(
                    gather.frames == expected,
                    "{kind}: seed {seed}, reads of {largest}, buffer {buffer}"
                );
                assert!(gather.largest_piece <= buffer.min(largest));
                assert_eq!(output, pings, "{kind}: each ping is answered with a ping");
            }
        }
        // One vector at a time too, each on its own stream.
        for (name, wire, content) in &vectors {
            let (gather, _) = receive_split(receive, wire.clone(), 7, 13, 32);
            assert!(gather.frames == [content.clone()], "{kind}: {name}");
        }
    }
}

fn frame_ref<'a>(content: &'a Owned, files: &'a mut Vec<FileRef<'a>>) -> FrameRef<'a> {
    files.extend(
        content
            .2
            .iter()
            .map(|(name, data)| FileRef::new(name, data)),
    );
    FrameRef {
        status: Status::new(content.0).unwrap(),
        version: content.1,
        files,
        message: content.3.as_deref(),
    }
}

#[test]
fn golden_frames_are_sent_byte_for_byte() {
    for (name, wire, content) in golden() {
        for seed in 0..20 {
            let mut files = Vec::new();
            let frame = frame_ref(&content, &mut files);
            let mut buffer = [0u8; 8];
            let duplex = Duplex::new(Vec::new(), seed, 1 + seed as usize * 3);
            let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
            endpoint.send(&frame).unwrap();
            endpoint.flush().unwrap();
            assert_eq!(endpoint.into_inner().output, wire, "blocking: {name}");
            #[cfg(feature = "embedded-io-async")]
            {
                let duplex = Duplex::new(Vec::new(), seed, 1 + seed as usize * 3);
                let mut endpoint = asynch::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
                block_on(endpoint.send(&frame)).unwrap();
                block_on(endpoint.flush()).unwrap();
                assert_eq!(endpoint.into_inner().output, wire, "async: {name}");
            }
        }
    }
}

#[test]
fn pings_are_answered_unless_told_not_to() {
    let ping = FrameRef::new(Status::PING, &[], Some(b"are you there"));
    let mut wire = [0u8; 64];
    let len = ping.encode_into(&mut wire).unwrap();
    let mut buffer = [0u8; 16];
    let duplex = Duplex::new(wire[..len].to_vec(), 1, 5);
    let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
    let mut gather = Gather::default();
    while let Some(event) = endpoint.next_event().unwrap() {
        gather.push(event);
    }
    let seen = (2, 1, Vec::new(), Some(b"are you there".to_vec()));
    assert!(gather.frames == [seen], "the caller sees the ping");
    assert_eq!(endpoint.into_inner().output, PING);

    let duplex = Duplex::new(wire[..len].to_vec(), 1, 5);
    let mut endpoint =
        blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT).answer_pings(false);
    while endpoint.next_event().unwrap().is_some() {}
    assert!(endpoint.into_inner().output.is_empty());
}

#[test]
fn a_file_larger_than_the_buffer_streams_through() {
    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let files = [FileRef::new("big.bin", &data)];
    let frame = FrameRef::new(Status::DEFAULT, &files, Some(b"done"));
    let mut wire = std::vec![0u8; frame.encoded_len() as usize];
    frame.encode_into(&mut wire).unwrap();
    for (kind, receive) in receivers() {
        let (gather, _) = receive_split(receive, wire.clone(), 3, 5000, 512);
        assert!(gather.largest_piece <= 512, "{kind}");
        assert_eq!(gather.frames.len(), 1, "{kind}");
        assert!(gather.frames[0].2[0].1 == data, "{kind}");
        assert_eq!(gather.frames[0].3.as_deref(), Some(&b"done"[..]), "{kind}");
    }
}

#[test]
fn limits_are_checked_before_anything_they_announce_is_read() {
    let limits = Limits::DEFAULT.max_file_count(2).max_file_size(100);
    // Only the headers: a read past them would find the stream's end.
    let cases: [(Vec<u8>, LimitKind); 3] = [
        (
            [&[0x80, 1][..], &3u64.to_be_bytes()].concat(),
            LimitKind::FileCount,
        ),
        (
            [
                &[0x80, 1][..],
                &1u64.to_be_bytes(),
                &1u16.to_be_bytes(),
                b"a",
                &101u64.to_be_bytes(),
            ]
            .concat(),
            LimitKind::FileSize,
        ),
        (
            [&[0x80, 1][..], &1u64.to_be_bytes(), &300u16.to_be_bytes()].concat(),
            LimitKind::NameLength,
        ),
    ];
    for (wire, kind) in cases {
        let mut buffer = [0u8; 64];
        let limits = limits.max_name_len(u16::MAX);
        let mut endpoint = blocking::Endpoint::new(Duplex::new(wire, 0, 64), &mut buffer, limits);
        let error = loop {
            match endpoint.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{kind:?}: the stream ended without an error"),
                Err(error) => break error,
            }
        };
        let Error::Decode(DecodeError::LimitExceeded { limit, max, .. }) = error else {
            panic!("{kind:?}: {error:?}");
        };
        assert_eq!(limit, kind);
        if kind == LimitKind::NameLength {
            assert_eq!(
                max, NAME_CAPACITY as u64,
                "names are capped at the endpoint's capacity"
            );
        }
    }
}

#[test]
fn the_end_of_the_stream_is_told_apart_from_a_cut_frame() {
    let mut buffer = [0u8; 8];
    let mut endpoint = blocking::Endpoint::new(
        Duplex::new(PING.to_vec(), 0, 4),
        &mut buffer,
        Limits::DEFAULT,
    );
    while endpoint.next_event().unwrap().is_some() {}
    assert!(
        matches!(endpoint.next_event(), Ok(None)),
        "stays at the end"
    );

    let mut endpoint = blocking::Endpoint::new(
        Duplex::new(PING[..11].to_vec(), 0, 4),
        &mut buffer,
        Limits::DEFAULT,
    );
    let error = loop {
        match endpoint.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a cut frame is not a clean end"),
            Err(error) => break error,
        }
    };
    assert!(matches!(
        error,
        Error::Decode(DecodeError::UnexpectedEof { .. })
    ));
}

#[test]
fn frames_are_stored_whole_and_sent_back_from_the_store() {
    for (name, wire, content) in golden() {
        let mut storage = [0u8; 1024];
        let mut store = FrameStore::<'_, 4>::new(&mut storage);
        let mut buffer = [0u8; 16];
        let duplex = Duplex::new(wire.clone(), 9, 7);
        let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
        let status = endpoint.receive_frame(&mut store).unwrap();
        assert_eq!(status.map(Status::get), Some(content.0), "{name}");
        assert_eq!(store.version(), content.1, "{name}");
        let files: Vec<(String, Vec<u8>)> = store
            .files()
            .map(|file| (file.name.into(), file.data.to_vec()))
            .collect();
        assert_eq!(files, content.2, "{name}");
        assert_eq!(store.message(), content.3.as_deref(), "{name}");
        assert_eq!(endpoint.receive_frame(&mut store).unwrap(), None, "{name}");

        let files = store.file_refs();
        let mut frame = FrameRef::new(store.status(), &files, store.message());
        frame.version = store.version();
        let mut output = [0u8; 16];
        let mut endpoint =
            blocking::Endpoint::new(Duplex::new(Vec::new(), 2, 9), &mut output, Limits::DEFAULT);
        endpoint.send(&frame).unwrap();
        assert_eq!(endpoint.into_inner().output, wire, "{name}");
    }
}

#[test]
fn a_store_refuses_what_does_not_fit_before_storing_it() {
    let data = [1u8; 40];
    let files = [FileRef::new("a", &data), FileRef::new("b", &data)];
    let mut wire = [0u8; 256];
    let len = FrameRef::new(Status::DEFAULT, &files, None)
        .encode_into(&mut wire)
        .unwrap();
    let mut storage = [0u8; 60];
    let mut store = FrameStore::<'_, 4>::new(&mut storage);
    let mut buffer = [0u8; 16];
    let duplex = Duplex::new(wire[..len].to_vec(), 0, 16);
    let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
    let error = endpoint.receive_frame(&mut store).unwrap_err();
    assert_eq!(
        error,
        Error::Store(StoreError::NoRoom {
            needed: 41,
            available: 19
        })
    );
    assert_eq!(
        store.used(),
        41,
        "the second file was refused from its header"
    );

    let mut storage = [0u8; 60];
    let mut store = FrameStore::<'_, 1>::new(&mut storage);
    let duplex = Duplex::new(wire[..len].to_vec(), 0, 16);
    let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
    let error = endpoint.receive_frame(&mut store).unwrap_err();
    assert_eq!(
        error,
        Error::Store(StoreError::TooManyFiles { count: 2, max: 1 })
    );

    // With the store's limits, the decoder refuses first, naming the offset.
    let limits = FrameStore::<'_, 1>::limits(Limits::DEFAULT, 8, 40, 10);
    assert_eq!(FrameStore::<'_, 1>::storage_for(8, 40, 10), 58);
    let duplex = Duplex::new(wire[..len].to_vec(), 0, 16);
    let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, limits);
    let error = endpoint.receive_frame(&mut store).unwrap_err();
    assert!(matches!(
        error,
        Error::Decode(DecodeError::LimitExceeded {
            limit: LimitKind::FileCount,
            offset: 2,
            ..
        })
    ));
}

#[test]
fn a_writer_that_takes_nothing_is_an_error() {
    let mut buffer = [0u8; 8];
    let mut duplex = Duplex::new(Vec::new(), 0, 4);
    duplex.write_limit = 5;
    let mut endpoint = blocking::Endpoint::new(duplex, &mut buffer, Limits::DEFAULT);
    let frame = FrameRef::new(Status::DEFAULT, &[], Some(b"hello"));
    assert_eq!(endpoint.send(&frame), Err(Error::WriteZero));

    let long = "n".repeat(70_000);
    let files = [FileRef::new(&long, b"")];
    let mut endpoint =
        blocking::Endpoint::new(Duplex::new(Vec::new(), 0, 4), &mut buffer, Limits::DEFAULT);
    let error = endpoint.send(&FrameRef::new(Status::DEFAULT, &files, None));
    assert_eq!(
        error,
        Err(Error::Encode(EncodeError::NameTooLong { len: 70_000 }))
    );
    assert!(
        endpoint.into_inner().output.is_empty(),
        "nothing sent half-done"
    );
}

#[test]
fn an_empty_buffer_is_an_error() {
    let mut endpoint =
        blocking::Endpoint::new(Duplex::new(PING.to_vec(), 0, 4), &mut [], Limits::DEFAULT);
    assert!(matches!(endpoint.next_event(), Err(Error::EmptyBuffer)));
}

#[test]
fn errors_say_what_went_wrong() {
    let error: Error<core::convert::Infallible> = Error::Store(StoreError::NoRoom {
        needed: 41,
        available: 19,
    });
    assert_eq!(
        std::format!("{error}"),
        "cannot store: 41 bytes, but room for 19"
    );
    let error: Error<core::convert::Infallible> =
        Error::Decode(DecodeError::StatusBitClear { byte: 0, offset: 3 });
    assert_eq!(
        std::format!("{error}"),
        "cannot decode: status bit is 0 in first byte 0x00 of a frame at offset 3"
    );
}
