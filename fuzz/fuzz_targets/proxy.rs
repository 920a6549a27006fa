//! Raw bytes fed to the PROXY header decoder the way an adapter reads a
//! socket: chunks of at most `wanted()` bytes. No panic; a pending decoder
//! always wants something; `Overfed` never happens; a header is exactly the
//! bytes consumed and within the bound; errors are sticky; and reading one
//! byte at a time gives the same answer after the same number of bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tej_core::proxy::{ProxyDecoder, ProxyError, ProxyHeader, DEFAULT_MAX_LEN, MAX_LEN};

/// Reads `data` as a socket, at most `cap` bytes per read (0: no cap).
fn read(data: &[u8], max_len: usize, cap: usize) -> (Result<ProxyHeader, ProxyError>, usize) {
    let mut decoder = ProxyDecoder::new(max_len);
    let mut at = 0;
    loop {
        let wanted = decoder.wanted();
        assert!(wanted > 0, "a pending decoder wants nothing");
        let n = if cap == 0 { wanted } else { wanted.min(cap) }.min(data.len() - at);
        if n == 0 {
            let result = decoder.finish();
            assert_eq!(result, Err(ProxyError::Truncated { received: at }));
            return (result, at);
        }
        at += n;
        match decoder.push(&data[at - n..at]) {
            Ok(None) => assert_eq!(decoder.consumed(), at),
            Ok(Some(header)) => {
                assert_eq!(header.len, at);
                assert!(header.len <= decoder.max_len());
                assert_eq!(decoder.wanted(), 0);
                assert_eq!(decoder.push(&[]), Ok(Some(header)));
                assert!(decoder.push(&[0]).is_err());
                return (Ok(header), at);
            }
            Err(error) => {
                assert!(!matches!(error, ProxyError::Overfed { .. }), "{error}");
                assert_eq!(decoder.push(&[]), Err(error));
                assert_eq!(decoder.finish(), Err(error));
                return (Err(error), at);
            }
        }
    }
}

// The input is `[cap, bound] + stream`: `cap` caps each read (0: read
// what `wanted()` says); `bound` picks `max_len` (0: the default, 255: the
// largest, else `4 * bound`).
fuzz_target!(|raw: &[u8]| {
    let [cap, bound, ref data @ ..] = *raw else {
        return;
    };
    let max_len = match bound {
        0 => DEFAULT_MAX_LEN,
        255 => MAX_LEN,
        n => usize::from(n) * 4,
    };
    let (result, taken) = read(data, max_len, usize::from(cap));
    let (bytewise, bytewise_taken) = read(data, max_len, 1);
    assert_eq!(result, bytewise);
    // Reads are sized for valid headers, so a refusal may come at a
    // different point; an accepted header is the same bytes either way.
    if result.is_ok() {
        assert_eq!(taken, bytewise_taken);
    }
});
