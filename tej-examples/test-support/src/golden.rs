//! tej-core's golden frames (`tej-core/tests/fixtures/reference-frames.json`)
//! for the suites that send them to something else: the firmwares, the
//! embedded-io endpoint.

use serde_json::Value;
use tej_core::{Assembler, Frame, Limits};

/// The fixture's text.
const FIXTURE: &str = include_str!("../../../tej-core/tests/fixtures/reference-frames.json");

/// The fixture's vectors, each with its `name`, `wire_hex` and `expect`.
pub fn vectors() -> Vec<Value> {
    let json: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    json.as_array().expect("an array").clone()
}

/// Bytes from lowercase or uppercase hex digits.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Each golden frame: its name, its wire bytes, and the frame tej-core
/// decodes them to.
pub fn frames() -> Vec<(String, Vec<u8>, Frame)> {
    let mut assembler = Assembler::new(Limits::default());
    vectors()
        .iter()
        .map(|vector| {
            let name = vector["name"].as_str().expect("name").to_owned();
            let wire = unhex(vector["wire_hex"].as_str().expect("wire_hex"));
            let assembled = assembler.decode(&wire).expect("golden frames decode");
            let frame = assembled.frame.expect("a whole frame");
            (name, wire, frame)
        })
        .collect()
}
