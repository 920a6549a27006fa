//! The TLS workload's configurations: rustls with ring and the test
//! certificates of `testdata/tls` built into the binary, so that the large
//! file can be sent over TLS and set against the same adapter's plain run
//! (the sending itself is [`large`](super::large)'s).

use std::io;
use std::path::Path;
use std::sync::Arc;

/// The test certificates of `testdata/tls`, built into the binary so that
/// `tej bench` runs from anywhere: a CA and a server certificate for
/// `localhost`/`127.0.0.1` signed by it. For measuring only.
const TLS_CA_PEM: &[u8] = include_bytes!("../../../testdata/tls/ca.pem");
const TLS_SERVER_PEM: &[u8] = include_bytes!("../../../testdata/tls/server.pem");
const TLS_SERVER_KEY: &[u8] = include_bytes!("../../../testdata/tls/server.key");

/// The TLS configurations of the TLS large-file workload: rustls with ring,
/// as `tej serve --tls-*` and `tej send --tls` build them
/// ([`crate::tls`]), from the built-in certificates (written to the
/// bench's scratch directory for those functions to read).
pub(super) struct BenchTls {
    pub(super) server: Arc<rustls::ServerConfig>,
    pub(super) client: crate::tls::ClientTls,
}

impl BenchTls {
    pub(super) fn new(dir: &Path) -> io::Result<BenchTls> {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let ca = tls_dir.join("ca.pem");
        let cert = tls_dir.join("server.pem");
        let key = tls_dir.join("server.key");
        std::fs::write(&ca, TLS_CA_PEM)?;
        std::fs::write(&cert, TLS_SERVER_PEM)?;
        std::fs::write(&key, TLS_SERVER_KEY)?;
        let failed = |error: anyhow::Error| io::Error::other(format!("{error:#}"));
        Ok(BenchTls {
            server: crate::tls::server_config(&cert, &key, None).map_err(failed)?,
            client: crate::tls::ClientTls {
                config: crate::tls::client_config(Some(&ca), None).map_err(failed)?,
                server_name: crate::tls::server_name("localhost").map_err(failed)?,
            },
        })
    }
}
