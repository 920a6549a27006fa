//! What the accept loops of every adapter share: which accept errors are
//! one connection's, the connection cap and how its refusals are logged,
//! a panic's message, and binding a TCP listener.

use std::io::{Error, ErrorKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tej_net::accept::{
    after_accept_error, is_per_connection_error, listen_tcp, panic_message, ConnectionCap,
    ACCEPT_ERROR_BACKOFF,
};
use tracing::{span, Event, Level, Metadata, Subscriber};

#[test]
fn only_an_aborted_reset_or_interrupted_accept_is_one_connection_s_error() {
    for kind in [
        ErrorKind::ConnectionAborted,
        ErrorKind::ConnectionReset,
        ErrorKind::Interrupted,
    ] {
        let error = Error::from(kind);
        assert!(is_per_connection_error(&error), "{kind:?}");
        assert_eq!(after_accept_error(&error), None, "{kind:?}: no pause");
    }
    // EMFILE: out of file descriptors, a condition that lasts.
    let error = Error::from_raw_os_error(24);
    assert!(!is_per_connection_error(&error));
    assert_eq!(after_accept_error(&error), Some(ACCEPT_ERROR_BACKOFF));
    assert!(ACCEPT_ERROR_BACKOFF > Duration::ZERO);
}

#[test]
fn the_cap_admits_its_maximum_and_a_freed_slot_admits_one_more() {
    let cap = ConnectionCap::new(2);
    assert_eq!(cap.max(), 2);
    let first = cap.try_acquire().unwrap();
    let second = cap.try_acquire().unwrap();
    assert_eq!(cap.open(), 2);
    let refused = cap.try_acquire().unwrap_err();
    assert_eq!(refused.max, 2);
    assert!(refused.first);
    assert!(refused.to_string().starts_with("2 connections are open"));
    assert!(!cap.try_acquire().unwrap_err().first, "already refusing");
    assert_eq!(cap.open(), 2, "a refusal takes no slot");
    drop(first);
    assert_eq!(cap.open(), 1);
    let third = cap.try_acquire().unwrap();
    // At the cap again after a slot freed: a first refusal again.
    assert!(cap.try_acquire().unwrap_err().first);
    drop((second, third));
    assert_eq!(cap.open(), 0);
    // A cap of 0 admits nothing.
    assert!(ConnectionCap::new(0).try_acquire().is_err());
}

/// Records the level of every event, for the thread it is the default of.
#[derive(Clone, Default)]
struct Levels(Arc<Mutex<Vec<Level>>>);

impl Subscriber for Levels {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}
    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        self.0.lock().unwrap().push(*event.metadata().level());
    }
    fn enter(&self, _span: &span::Id) {}
    fn exit(&self, _span: &span::Id) {}
}

#[test]
fn admit_warns_at_the_first_refusal_only() {
    let levels = Levels::default();
    let seen = levels.0.clone();
    tracing::subscriber::with_default(levels, || {
        let cap = ConnectionCap::new(1);
        let slot = cap.admit(&"a").expect("under the cap");
        assert!(cap.admit(&"b").is_none());
        assert!(cap.admit(&"c").is_none());
        drop(slot);
        assert!(cap.admit(&"d").is_some());
    });
    assert_eq!(*seen.lock().unwrap(), [Level::WARN, Level::DEBUG]);
}

#[test]
fn a_panic_s_message_is_its_text_whatever_its_type() {
    let text: Box<dyn std::any::Any + Send> = Box::new("static text");
    assert_eq!(panic_message(text.as_ref()), "static text");
    let formatted: Box<dyn std::any::Any + Send> = Box::new(format!("code {}", 7));
    assert_eq!(panic_message(formatted.as_ref()), "code 7");
    let other: Box<dyn std::any::Any + Send> = Box::new(7u32);
    assert_eq!(panic_message(other.as_ref()), "a panic without a message");
}

#[test]
fn listen_tcp_binds_the_first_address_it_can() {
    let listener = listen_tcp(["127.0.0.1:0".parse().unwrap()]).unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    // Non-blocking: nothing to accept yet.
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    // Its port taken: the next address is tried.
    let other = listen_tcp([addr, "127.0.0.1:0".parse().unwrap()]).unwrap();
    assert_ne!(other.local_addr().unwrap(), addr);
    assert_eq!(listen_tcp([addr]).unwrap_err().kind(), ErrorKind::AddrInUse);
    assert_eq!(listen_tcp([]).unwrap_err().kind(), ErrorKind::InvalidInput);
}
