//! Raw bytes fed to the decoder and the assembler in fuzzer-chosen splits:
//! no panic, no call without progress, and the two agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tej_core::{Assembler, Decoder, Event, Limits};

/// The input is `[flags, split seed, stream...]`, so that a corpus file is a
/// readable TEJ stream behind two bytes: bit 0 of `flags` picks tight
/// limits, and the seed drives the sizes the stream is cut into.
struct Input<'a> {
    tight_limits: bool,
    splits: Vec<u16>,
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(raw: &'a [u8]) -> Option<Input<'a>> {
        let (&flags, rest) = raw.split_first()?;
        let (&seed, data) = rest.split_first()?;
        // A small linear congruential sequence: 1-byte to 4 KiB cuts.
        let mut state = u32::from(seed) | 1;
        let splits = (0..32)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let magnitude = (state >> 16) % 13;
                1 + ((state >> 4) % (1 << magnitude)) as u16
            })
            .collect();
        Some(Input {
            tight_limits: flags & 1 == 1,
            splits: if seed == 0 { Vec::new() } else { splits },
            data,
        })
    }
}

fn limits(tight: bool) -> Limits {
    if tight {
        Limits::DEFAULT
            .max_file_count(8)
            .max_name_len(64)
            .max_file_size(4096)
            .max_message_size(4096)
            .max_frame_size(8192)
    } else {
        // Generous but bounded, so the fuzzer's malloc limit catches any
        // allocation sized by an announced length.
        Limits::DEFAULT
            .max_file_size(1 << 40)
            .max_message_size(1 << 40)
            .max_frame_size(1 << 40)
    }
}

fn chunks<'a>(data: &'a [u8], splits: &[u16]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = data;
    let mut sizes = splits.iter().cycle();
    while !rest.is_empty() {
        let size = sizes
            .next()
            .map_or(rest.len(), |&size| usize::from(size).max(1))
            .min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::parse(raw) else {
        return;
    };
    let limits = limits(input.tight_limits);
    let mut decoder = Decoder::new(limits);
    let mut frames_from_events = 0usize;
    let mut failed = None;
    'feed: for chunk in chunks(input.data, &input.splits) {
        let mut rest = chunk;
        loop {
            let before = rest.len();
            match decoder.decode(rest) {
                Ok(decoded) => {
                    assert!(decoded.consumed <= before);
                    rest = &rest[decoded.consumed..];
                    match decoded.event {
                        None => {
                            assert!(rest.is_empty(), "no event, yet input left unconsumed");
                            break;
                        }
                        Some(Event::FileData(data) | Event::MessageData(data)) => {
                            assert!(!data.is_empty());
                            assert_eq!(
                                data.len(),
                                decoded.consumed,
                                "payload is a slice of the input"
                            );
                        }
                        Some(Event::FrameEnd) => frames_from_events += 1,
                        Some(_) => {}
                    }
                }
                Err(error) => {
                    // Errors are sticky.
                    assert_eq!(decoder.decode(&[0x80]).unwrap_err(), error);
                    failed = Some(error);
                    break 'feed;
                }
            }
        }
    }

    // The assembler, fed the same stream in one piece, agrees.
    let mut assembler = Assembler::new(limits);
    let mut frames = 0usize;
    let mut rest = input.data;
    let assembler_error = loop {
        match assembler.decode(rest) {
            Ok(assembled) => {
                rest = &rest[assembled.consumed..];
                match assembled.frame {
                    Some(_) => frames += 1,
                    None => break None,
                }
            }
            Err(error) => break Some(error),
        }
    };
    assert_eq!(frames, frames_from_events);
    assert_eq!(assembler_error, failed);
    if failed.is_none() {
        assert_eq!(decoder.finish().is_ok(), assembler.finish().is_ok());
    }
});
