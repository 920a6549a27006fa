//! The read buffer at the edges of its rules, through its public API (its
//! unit tests cover the rules themselves).

use tej_net::ReadBuffer;

const KIB: usize = 1024;
const BULK: usize = 2 << 20;

/// A buffer of `max_len` grown to `BULK` by reads of a 10 MiB body; what
/// is left of the body.
fn grown_for_a_large_body(max_len: usize) -> (ReadBuffer, u64) {
    let mut buffer = ReadBuffer::new(max_len);
    let mut remaining = 10u64 << 20;
    while buffer.len() < BULK {
        let len = buffer.space_for_body(remaining, BULK).len();
        buffer.record_body_read(len, remaining, BULK);
        remaining -= len as u64;
    }
    (buffer, remaining)
}

#[test]
fn a_body_of_exactly_max_len_is_read_as_usual_not_in_bulk() {
    let max = 256 * KIB;
    // Grown for a large body.
    let (mut buffer, _) = grown_for_a_large_body(max);
    // Fifteen reads outside bodies, then one of a body that fits a usual
    // read: the sixteenth small read, and the buffer shrinks back.
    for _ in 0..15 {
        assert_eq!(buffer.space_for_body(0, BULK).len(), max);
    }
    assert_eq!(buffer.len(), BULK);
    assert_eq!(buffer.space_for_body(max as u64, BULK).len(), max);
    assert_eq!(buffer.len(), max);
    // Nor does such a body grow the buffer past max_len when a read fills it.
    buffer.record_body_read(max, max as u64, BULK);
    assert_eq!(buffer.len(), max);
}

#[test]
fn max_len_is_what_it_was_made_with_and_at_least_one() {
    assert_eq!(ReadBuffer::new(1000).max_len(), 1000);
    assert_eq!(ReadBuffer::on_demand(1000).max_len(), 1000);
    assert_eq!(ReadBuffer::new(0).max_len(), 1);
}

#[test]
fn a_quarter_left_is_still_offered_and_a_read_that_fills_it_grows_the_buffer() {
    let mut buffer = ReadBuffer::new(256 * KIB);
    let first = buffer.space().as_ptr() as usize;
    let _held = buffer.take(12 * KIB);
    buffer.record_read(12 * KIB);
    assert_eq!(buffer.len(), 16 * KIB, "a read short of the space");
    // Exactly a quarter of the buffer left: offered, not replaced.
    let rest = buffer.space();
    assert_eq!(
        (rest.as_ptr() as usize, rest.len()),
        (first + 12 * KIB, 4 * KIB)
    );
    // A read that filled all it was offered: the buffer grows.
    let _also_held = buffer.take(4 * KIB);
    buffer.record_read(4 * KIB);
    assert_eq!(buffer.len(), 64 * KIB);
}

#[test]
fn a_buffer_that_shrinks_back_gives_its_large_allocation_up() {
    let max = 256 * KIB;
    let (mut buffer, remaining) = grown_for_a_large_body(max);
    // Nothing taken out of it is held: only a new allocation frees it.
    let bulk = buffer.space_for_body(remaining, BULK).as_ptr() as usize;
    for _ in 0..16 {
        buffer.space_for_body(0, BULK);
    }
    assert_eq!(buffer.len(), max);
    let after = buffer.space_for_body(0, BULK).as_ptr() as usize;
    assert!(
        !(bulk..bulk + BULK).contains(&after),
        "still reads into the bulk allocation"
    );
}
