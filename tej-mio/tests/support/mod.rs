//! What more than one of tej-mio's test binaries needs beyond
//! `tej-test-support`.

use tej_mio::{Handler, SessionConfig};
use tej_test_support::{handlers::Events, mio::Running};

/// Starts a server (default configuration) whose handlers, each made by
/// `make`, all log to one [`Events`]; returns the server and that log.
pub fn serve_logging<H: Handler + 'static>(make: fn(Events) -> H) -> (Running, Events) {
    let events = Events::default();
    let log = events.clone();
    let server = Running::start(SessionConfig::default(), move || make(log.clone()));
    (server, events)
}
