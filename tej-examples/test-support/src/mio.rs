//! A tej-mio server on a thread of its own, and a bounded join.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tej_core::{DisconnectReason, Handler, SessionConfig};
use tej_mio::{Client, Server, ShutdownHandle};

use crate::peer::{wait_until, PATIENCE};

/// A server running on its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Starts a server on a free loopback port.
    pub fn start<F, H>(config: SessionConfig, factory: F) -> Running
    where
        F: FnMut() -> H + Send + 'static,
        H: Handler,
    {
        let server = Server::bind("127.0.0.1:0").unwrap().with_config(config);
        let addr = server.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let shutdown = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run(factory));
        Running {
            addr,
            shutdown,
            thread,
        }
    }

    /// Whether `run` has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for `run` to return (after a shutdown), within [`PATIENCE`].
    pub fn wait(self) {
        wait_until("the server to stop", || self.thread.is_finished());
        self.thread.join().unwrap().unwrap();
    }

    /// Shuts the server down and waits for `run` to return.
    pub fn stop(self) {
        self.shutdown.shutdown();
        assert!(self.shutdown.is_shutdown());
        self.wait();
    }
}

/// Joins a client within [`PATIENCE`].
pub fn join(client: Client) -> io::Result<DisconnectReason> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(client.join());
    });
    result
        .recv_timeout(PATIENCE)
        .expect("the client's loop did not end in time")
}
