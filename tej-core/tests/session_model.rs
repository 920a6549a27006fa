//! A state-machine model of one `Session`: proptest draws a configuration
//! and a run of operations (the peer writing frames, their bytes handed
//! over in random pieces, the peer reading or not, time passing, frames
//! sent from the handler and from a `Sender`, closes,
//! shutdowns, end of stream, I/O errors) and after every step checks the
//! session against the reference model in `model/` (shared with the fuzz
//! target `session_ops`, which also draws files to sinks and from sources
//! and a `BufferedSender`): callbacks in order and once, the frames
//! reported exactly those taken whole, the bytes out exactly the frames
//! sent, each kind in order, every Sender frame written or handed back once,
//! memory within the documented bound (`session::memory`) at every step.

mod common;
mod model;

use std::time::Duration;

use model::{Kind, Model, Op, PeerFile, PeerFrame, SendHow, Store, LIMITS, MAX_QUEUED};
use proptest::prelude::*;
use tej_core::SessionConfig;

/// A frame the peer writes: valid ones of up to 3 files (names up to 8
/// bytes, data up to 199) and a message up to 299 bytes, a closing one,
/// and two the session must refuse. Files go to memory; `numbered` names
/// and fills them.
fn peer_frame() -> impl Strategy<Value = PeerFrame> {
    let files = proptest::collection::vec((0usize..=8, 0usize..200), 0..=3);
    let message = proptest::option::of(0usize..300);
    let kind = prop_oneof![Just(Kind::Plain), Just(Kind::Ask), Just(Kind::Ping)];
    prop_oneof![
        8 => (kind, files, message).prop_map(|(kind, files, message)| PeerFrame::Valid {
            kind,
            files: files
                .into_iter()
                .map(|(name_len, data_len)| PeerFile {
                    name: "_".repeat(name_len),
                    data: vec![0; data_len],
                    store: Store::Memory,
                })
                .collect(),
            message: message.map(|len| vec![b'm'; len]),
        }),
        1 => Just(PeerFrame::Valid {
            kind: Kind::Bye,
            files: Vec::new(),
            message: None,
        }),
        1 => Just(PeerFrame::BadStatus),
        1 => Just(PeerFrame::TooLarge),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let how = prop_oneof![Just(SendHow::Try), Just(SendHow::Send), Just(SendHow::Feed)];
    prop_oneof![
        6 => peer_frame().prop_map(Op::PeerWrites),
        8 => prop_oneof![1u16..20, 1u16..2000].prop_map(|len| Op::Deliver(len, false)),
        6 => prop_oneof![1u16..20, 1u16..4000].prop_map(Op::PeerReads),
        3 => prop_oneof![0u16..500, 500u16..4000].prop_map(Op::Tick),
        5 => (prop_oneof![0u16..64, 0..MAX_QUEUED as u16], how)
            .prop_map(|(len, how)| Op::Send(len, how, Vec::new())),
        1 => Just(Op::Flush),
        4 => Just(Op::PollQueue),
        1 => Just(Op::SenderClose),
        1 => Just(Op::Close),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Eof),
        1 => Just(Op::IoError),
    ]
}

/// The files of the `n`th frame the peer writes named from their place
/// and `n` (names keep their drawn length) and filled with `n`, so that
/// frames differ.
fn numbered(mut ops: Vec<Op>) -> Vec<Op> {
    let mut n = 0;
    for op in &mut ops {
        let Op::PeerWrites(frame) = op else {
            continue;
        };
        if let PeerFrame::Valid { files, .. } = frame {
            for (index, file) in files.iter_mut().enumerate() {
                let name_len = file.name.len();
                file.name = format!("{index}{n}")
                    .chars()
                    .cycle()
                    .take(name_len)
                    .collect();
                file.data.fill(n as u8);
            }
        }
        n += 1;
    }
    ops
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (
        prop_oneof![Just(64usize), Just(700), Just(8192)],
        prop_oneof![Just(19usize), Just(500), Just(16384)],
        proptest::option::of(prop_oneof![Just(300u64), Just(1000)]),
        proptest::option::of(Just(5000u64)),
    )
        .prop_map(|(high_water, capacity, ping, idle)| {
            SessionConfig::default()
                .limits(LIMITS)
                .outbox_high_water(high_water)
                .send_queue_capacity(capacity)
                .ping_interval(ping.map(Duration::from_millis))
                .idle_timeout(idle.map(Duration::from_millis))
                .close_linger(Duration::from_secs(3))
        })
}

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn the_session_follows_its_reference_model(
        config in config(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut model = Model::new(config);
        model.check();
        for op in numbered(ops) {
            model.apply(op);
            model.check();
        }
        model.finish();
    }
}
