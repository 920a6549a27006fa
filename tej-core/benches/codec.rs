//! Codec benchmarks: decoding one frame carrying a 64 MiB file (bytes per
//! second), decoding 10,000 small frames from one buffer (frames per second,
//! through the raw decoder and the assembler), and encoding small frames
//! (into a reused `Vec` and into a fixed buffer).
//!
//! Input is fed in 64 KiB chunks, as a socket read loop would. Run with
//! `cargo bench -p tej-core`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tej_core::{Assembler, Decoder, Event, FileRef, Frame, FrameBuilder, FrameRef, Limits, Status};

/// The read size of the simulated socket loop.
const CHUNK: usize = 64 << 10;
/// The large file's size.
const LARGE_FILE: usize = 64 << 20;
/// How many small frames are decoded per iteration.
const SMALL_FRAMES: usize = 10_000;

/// Feeds `stream` to `decoder` in [`CHUNK`]-byte pieces, handing every
/// payload slice to `on_payload`; returns the payload bytes seen.
fn decode_all(decoder: &mut Decoder, stream: &[u8], mut on_payload: impl FnMut(&[u8])) -> u64 {
    let mut payload = 0u64;
    for mut chunk in stream.chunks(CHUNK) {
        loop {
            let decoded = decoder.decode(chunk).expect("valid stream");
            match decoded.event {
                Some(Event::FileData(data) | Event::MessageData(data)) => {
                    on_payload(data);
                    payload += black_box(data).len() as u64;
                }
                Some(event) => {
                    black_box(event);
                }
                None => break,
            }
            chunk = &chunk[decoded.consumed..];
        }
    }
    payload
}

/// Feeds `stream` to `assembler` in [`CHUNK`]-byte pieces; returns the frames.
fn assemble_all(assembler: &mut Assembler, stream: &[u8]) -> usize {
    let mut frames = 0;
    for mut chunk in stream.chunks(CHUNK) {
        loop {
            let assembled = assembler.decode(chunk).expect("valid stream");
            chunk = &chunk[assembled.consumed..];
            match assembled.frame {
                Some(frame) => {
                    black_box(frame);
                    frames += 1;
                }
                None => break,
            }
        }
    }
    frames
}

fn large_file(c: &mut Criterion) {
    let data: Vec<u8> = (0..LARGE_FILE).map(|i| (i * 31 % 251) as u8).collect();
    let stream = FrameBuilder::new(Status::DEFAULT)
        .file("large.bin", data)
        .message("done")
        .build()
        .encode_to_vec()
        .unwrap();

    let mut group = c.benchmark_group("decode_64MiB_file");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(stream.len() as u64));
    // Zero-copy: payloads come back as slices of the input, so this measures
    // the per-chunk cost of the state machine, not the bytes.
    group.bench_function("decoder", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(Limits::DEFAULT);
            let payload = decode_all(&mut decoder, black_box(&stream), |_| {});
            assert_eq!(payload, LARGE_FILE as u64 + 4);
        })
    });
    // The same, copying every payload slice into a reused buffer, as a
    // receiver writing the file somewhere would.
    let mut sink = vec![0u8; LARGE_FILE + 4];
    group.bench_function("decoder_copy_out", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(Limits::DEFAULT);
            let mut at = 0;
            let payload = decode_all(&mut decoder, black_box(&stream), |data| {
                sink[at..at + data.len()].copy_from_slice(data);
                at += data.len();
            });
            assert_eq!(payload, at as u64);
            black_box(&sink);
        })
    });
    group.bench_function("assembler", |b| {
        b.iter(|| {
            let mut assembler = Assembler::new(Limits::DEFAULT);
            assert_eq!(assemble_all(&mut assembler, black_box(&stream)), 1);
        })
    });
    group.finish();
}

fn small_frames(c: &mut Criterion) {
    let one = Frame::message(vec![b'm'; 64]).encode_to_vec().unwrap();
    let stream = one.repeat(SMALL_FRAMES);

    let mut group = c.benchmark_group("decode_10k_small_frames");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    group.bench_function("decoder", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(Limits::DEFAULT);
            let payload = decode_all(&mut decoder, black_box(&stream), |_| {});
            assert_eq!(payload, 64 * SMALL_FRAMES as u64);
        })
    });
    group.bench_function("assembler", |b| {
        b.iter(|| {
            let mut assembler = Assembler::new(Limits::DEFAULT);
            assert_eq!(
                assemble_all(&mut assembler, black_box(&stream)),
                SMALL_FRAMES
            );
        })
    });
    group.finish();
}

fn encode_small(c: &mut Criterion) {
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("file.txt", &b"hello world\n"[..])
        .message(vec![b'm'; 64])
        .build();
    let files = [FileRef::new("file.txt", b"hello world\n")];
    let message = [b'm'; 64];
    let frame_ref = FrameRef::new(Status::DEFAULT, &files, Some(&message));
    assert_eq!(frame.encoded_len(), frame_ref.encoded_len());

    let mut group = c.benchmark_group("encode_small_frame");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1024);
    group.bench_function("frame_encode_to_reused_vec", |b| {
        b.iter(|| {
            out.clear();
            black_box(&frame).encode_to(&mut out).unwrap();
            black_box(out.len())
        })
    });
    let mut buffer = [0u8; 1024];
    group.bench_function("frame_ref_encode_into", |b| {
        b.iter(|| {
            let written = black_box(&frame_ref).encode_into(&mut buffer).unwrap();
            black_box(&buffer[..written]);
        })
    });
    group.finish();
}

criterion_group!(benches, large_file, small_frames, encode_small);
criterion_main!(benches);
