//! Every adapter against the real reference implementation (`tej-protoc`
//! 0.2.4), over loopback sockets, in both directions.
//!
//! Skipped with a printed reason when Python is missing, unless
//! `TEJ_REQUIRE_INTEROP=1` (as in CI), which turns the skip into a failure.

use tej_test_support::python;
use tej_test_support::recorder;

use std::net::{Ipv4Addr, SocketAddr};

use python::{file_json, generated_file, hex, ReferencePeer, DEFAULT_TIMEOUT};
use recorder::{hex_sha256, FrameSummary, Record, Recorder, Seen};
use serde_json::Value;
use tej_core::{Frame, FrameBuilder, SessionConfig, Status};
use tej_examples::runtime::{self, Runtime};

const BIG: u64 = 64 << 20;
const STREAMED: usize = 100;

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["event"] == name)
        .collect()
}

/// The reference's stream (`msg-0` to `msg-{STREAMED - 1}`) is among
/// `frames`, whole and in order.
fn assert_streamed(frames: &[FrameSummary]) {
    let streamed: Vec<String> = frames
        .iter()
        .map(|frame| frame.message_text())
        .filter(|text| text.starts_with("msg-"))
        .collect();
    assert_eq!(
        streamed,
        (0..STREAMED)
            .map(|i| format!("msg-{i}"))
            .collect::<Vec<_>>()
    );
}

fn reference_client_to_our_server(runtime: Runtime) {
    let Some(python) = python::reference_python() else {
        return;
    };
    let record = Record::default();
    let server_file = generated_file(100_000, 3);
    let mut handler = Recorder::new(&record);
    handler.greeting = vec![FrameBuilder::new(Status::DEFAULT)
        .file("srv.bin", server_file.clone())
        .message("Hello")
        .build()];
    handler.reply = Some(Frame::message("ack"));
    let server = runtime::start_server(
        runtime,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SessionConfig::default(),
        move || handler.clone(),
    )
    .unwrap();
    let addr = server.addr();

    let on_connect = [
        r#"{"message":"Hello from python","files":[{"name":"a.bin","size":1048576,"seed":7},{"name":"b.txt","text":"hi there"},{"name":"empty.txt","text":""}]}"#,
        r#"{"message_hex":"00ff10fe80"}"#,
        r#"{}"#,
        r#"{"ping":true}"#,
        r#"{"status":5,"files":[{"name":"big.bin","size":67108864,"seed":11}],"message":"big"}"#,
    ];
    let mut args: Vec<String> = Vec::new();
    for spec in on_connect {
        args.extend(["--send-on-connect".into(), spec.into()]);
    }
    let expected_from_us = 1 + 4 + STREAMED;
    args.extend([
        "--stream".into(),
        STREAMED.to_string(),
        "--exit-after-frames".into(),
        expected_from_us.to_string(),
    ]);
    let mut client = ReferencePeer::client(&python, addr.port(), &args);
    let events = client.events_until("done", DEFAULT_TIMEOUT * 2);
    client.expect_success(DEFAULT_TIMEOUT);

    // What the reference received from us: the greeting, then one ack per frame.
    let received = events_named(&events, "received");
    assert_eq!(received.len(), expected_from_us);
    assert_eq!(received[0]["message_hex"], hex(b"Hello"));
    assert_eq!(received[0]["files"][0], file_json("srv.bin", &server_file));
    assert!(received[1..]
        .iter()
        .all(|event| event["message_hex"] == hex(b"ack")));

    // What we received from the reference: everything, in order per sender.
    let seen = record.wait_until("disconnect", DEFAULT_TIMEOUT, |seen| {
        matches!(seen.last(), Some(Seen::Disconnected(_)))
    });
    assert_eq!(seen[0], Seen::Connected);
    assert_eq!(
        seen.last(),
        Some(&Seen::Disconnected("peer closed the connection".into()))
    );
    let pings = seen
        .iter()
        .filter(|seen| matches!(seen, Seen::Ping(_)))
        .count();
    assert_eq!(pings, 1, "the ping goes to ping_received");
    let frames = record.received();
    assert_streamed(&frames);
    let scripted: Vec<_> = frames
        .iter()
        .filter(|frame| !frame.message_text().starts_with("msg-"))
        .collect();
    assert_eq!(scripted.len(), 4);
    assert_eq!(scripted[0].message_text(), "Hello from python");
    let names: Vec<_> = scripted[0]
        .files
        .iter()
        .map(|file| (file.name.as_str(), file.size))
        .collect();
    assert_eq!(names, [("a.bin", 1 << 20), ("b.txt", 8), ("empty.txt", 0)]);
    assert_eq!(
        scripted[0].files[0].sha256,
        hex_sha256(&generated_file(1 << 20, 7))
    );
    assert_eq!(scripted[0].files[1].sha256, hex_sha256(b"hi there"));
    assert_eq!(
        scripted[1].message.as_deref(),
        Some(&[0x00, 0xff, 0x10, 0xfe, 0x80][..])
    );
    assert_eq!(scripted[2].message, None, "an empty message is no message");
    assert!(scripted[2].files.is_empty());
    assert_eq!(scripted[3].status, 5);
    assert_eq!(scripted[3].files[0].size, BIG);
    assert_eq!(
        scripted[3].files[0].sha256,
        hex_sha256(&generated_file(BIG, 11))
    );

    server.stop();
}

fn our_client_to_reference_server(runtime: Runtime) {
    let Some(python) = python::reference_python() else {
        return;
    };
    let on_connect = [
        r#"{"message":"Hello","files":[{"name":"p.bin","size":200000,"seed":9}]}"#,
        r#"{"ping":true}"#,
        r#"{"status":7,"files":[{"name":"big.bin","size":67108864,"seed":5}]}"#,
    ];
    let mut args: Vec<String> = vec!["--reply-to-each".into(), r#"{"message":"ack"}"#.into()];
    for spec in on_connect {
        args.extend(["--send-on-connect".into(), spec.into()]);
    }
    args.extend([
        "--stream".into(),
        STREAMED.to_string(),
        "--exit-on-disconnect".into(),
    ]);
    let (mut server, port) = ReferencePeer::server(&python, &args);

    let record = Record::default();
    let client = runtime::connect(
        runtime,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Recorder::new(&record),
        SessionConfig::default(),
    )
    .unwrap();
    let sender = client.sender();
    let big = generated_file(BIG, 13);
    let ours = [
        FrameBuilder::new(Status::DEFAULT)
            .file("one.txt", &b"first file"[..])
            .file("two.bin", generated_file(70_000, 1))
            .file("nothing", Vec::new())
            .message("several files")
            .build(),
        Frame::new(Status::DEFAULT),
        Frame::message(vec![0u8, 159, 146, 150, 255]),
        Frame::ping(),
        FrameBuilder::new(Status::new(9).unwrap())
            .file("big.bin", big.clone())
            .build(),
    ];
    // Both directions at once: our stream runs while the reference streams to us.
    let streaming = std::thread::spawn({
        let sender = sender.clone();
        move || {
            for i in 0..STREAMED {
                sender
                    .send_blocking(Frame::message(format!("ours-{i}")))
                    .unwrap();
            }
        }
    });
    for frame in ours {
        sender.send_blocking(frame).unwrap();
    }
    streaming.join().unwrap();

    let non_ping_from_us = 4 + STREAMED;
    let events = server.events_until_count("received", non_ping_from_us, DEFAULT_TIMEOUT * 2);
    let received = events_named(&events, "received");
    let scripted: Vec<_> = received
        .iter()
        .filter(|event| {
            !event["message_hex"]
                .as_str()
                .unwrap_or("")
                .starts_with(&hex(b"ours-"))
        })
        .collect();
    assert_eq!(scripted.len(), 4);
    assert_eq!(scripted[0]["message_hex"], hex(b"several files"));
    assert_eq!(
        scripted[0]["files"],
        serde_json::json!([
            file_json("one.txt", b"first file"),
            file_json("two.bin", &generated_file(70_000, 1)),
            file_json("nothing", b""),
        ])
    );
    assert_eq!(scripted[1]["message_len"], 0);
    assert_eq!(scripted[1]["message_hex"], Value::Null);
    assert_eq!(scripted[2]["message_hex"], "009f9296ff");
    assert_eq!(scripted[3]["status"], 9);
    assert_eq!(scripted[3]["files"][0], file_json("big.bin", &big));
    let streamed: Vec<_> = received
        .iter()
        .filter_map(|event| event["message_hex"].as_str())
        .filter(|message| message.starts_with(&hex(b"ours-")))
        .map(str::to_owned)
        .collect();
    let expected: Vec<_> = (0..STREAMED)
        .map(|i| hex(format!("ours-{i}").as_bytes()))
        .collect();
    assert_eq!(streamed, expected, "our stream arrives whole and in order");
    assert_eq!(events_named(server.history(), "ping").len(), 1);

    // What we received: the scripted frames, the reference's stream, one ack per frame.
    let from_reference = 2 + STREAMED + non_ping_from_us;
    record.wait_until(
        "every frame from the reference",
        DEFAULT_TIMEOUT * 2,
        |seen| {
            seen.iter()
                .filter(|seen| matches!(seen, Seen::Received(_)))
                .count()
                >= from_reference
        },
    );
    let frames = record.received();
    assert_eq!(frames.len(), from_reference);
    let hello = frames
        .iter()
        .find(|frame| frame.message_text() == "Hello")
        .unwrap();
    assert_eq!(
        hello.files[0].sha256,
        hex_sha256(&generated_file(200_000, 9))
    );
    let big_from_reference = frames.iter().find(|frame| frame.status == 7).unwrap();
    assert_eq!(big_from_reference.files[0].size, BIG);
    assert_eq!(
        big_from_reference.files[0].sha256,
        hex_sha256(&generated_file(BIG, 5))
    );
    assert_streamed(&frames);
    assert_eq!(
        frames
            .iter()
            .filter(|frame| frame.message_text() == "ack")
            .count(),
        non_ping_from_us
    );
    assert_eq!(
        record
            .snapshot()
            .iter()
            .filter(|seen| matches!(seen, Seen::Ping(_)))
            .count(),
        1
    );

    client.close().unwrap();
    assert_eq!(record.disconnects(), ["closed locally"]);
    server.wait_for("done", DEFAULT_TIMEOUT);
    server.expect_success(DEFAULT_TIMEOUT);
}

macro_rules! interop {
    ($($module:ident: $runtime:expr;)*) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn reference_client_to_our_server() {
                    super::reference_client_to_our_server($runtime);
                }
                #[test]
                fn our_client_to_reference_server() {
                    super::our_client_to_reference_server($runtime);
                }
            }
        )*
    };
}

interop! {
    tokio: Runtime::Tokio;
    async_std: Runtime::AsyncStd;
    mio: Runtime::Mio;
}
