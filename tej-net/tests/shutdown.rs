//! The shutdown signal seen from other threads.

use std::sync::mpsc;
use std::time::Duration;

use tej_net::ShutdownHandle;

#[test]
fn wait_blocking_returns_once_shutdown_starts_and_at_once_after() {
    let handle = ShutdownHandle::new();
    assert!(!handle.is_shutdown());
    let (done, woke) = mpsc::channel();
    let waiter = handle.clone();
    std::thread::spawn(move || {
        waiter.wait_blocking();
        done.send(()).unwrap();
    });
    assert!(
        woke.recv_timeout(Duration::from_millis(100)).is_err(),
        "returned before the signal"
    );
    handle.shutdown();
    woke.recv_timeout(Duration::from_secs(10))
        .expect("woken by the signal");
    assert!(handle.is_shutdown());
    // Given already: no wait.
    handle.wait_blocking();
}
