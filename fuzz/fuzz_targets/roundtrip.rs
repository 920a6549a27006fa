//! Any frame, encoded and decoded in fuzzer-chosen splits, comes back the
//! same, in exactly `encoded_len` bytes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tej_core::{Assembler, FileRef, FrameBuilder, FrameRef, Limits, Status};

#[derive(Debug, Arbitrary)]
struct Input {
    status: u8,
    version: u8,
    files: Vec<(String, Vec<u8>)>,
    message: Vec<u8>,
    splits: Vec<u16>,
}

fuzz_target!(|input: Input| {
    let status = Status::new(input.status & 0x7f).unwrap();
    let mut builder = FrameBuilder::new(status)
        .version(input.version)
        .message(input.message.clone());
    for (name, data) in &input.files {
        builder = builder.file(name.clone(), data.clone());
    }
    let frame = builder.build();
    let wire = frame.encode_to_vec().unwrap();
    assert_eq!(wire.len() as u64, frame.encoded_len());

    // The allocation-free encoder writes the same bytes.
    let file_refs: Vec<FileRef<'_>> = input
        .files
        .iter()
        .map(|(name, data)| FileRef::new(name, data))
        .collect();
    let mut frame_ref = FrameRef::new(status, &file_refs, Some(&input.message));
    frame_ref.version = input.version;
    assert_eq!(frame_ref.encoded_len(), frame.encoded_len());
    let mut fixed = vec![0u8; wire.len()];
    assert_eq!(frame_ref.encode_into(&mut fixed).unwrap(), wire.len());
    assert_eq!(fixed, wire);

    let mut assembler = Assembler::new(Limits::UNLIMITED);
    let mut decoded = None;
    let mut rest = &wire[..];
    let mut sizes = input.splits.iter().cycle();
    while decoded.is_none() && !rest.is_empty() {
        let size = sizes
            .next()
            .map_or(rest.len(), |&size| usize::from(size).max(1))
            .min(rest.len());
        let assembled = assembler.decode(&rest[..size]).unwrap();
        rest = &rest[assembled.consumed..];
        decoded = assembled.frame;
    }
    assert!(rest.is_empty());
    assert_eq!(decoded.unwrap(), frame);
    assert!(assembler.finish().is_ok());
});
