//! `iperf3` on loopback, when installed: a reference figure for what the
//! machine's TCP can do, printed beside the plain-TCP baseline.

use std::net::TcpListener;
use std::time::Duration;

use super::harness::loopback;

/// How long `iperf3` runs.
pub(super) const IPERF3_SECONDS: u32 = 3;

/// `iperf3 -c` with 1 MiB writes against `iperf3 -s -1` on loopback, GiB/s;
/// the error says why there is no figure.
pub(super) fn iperf3() -> Result<f64, String> {
    use std::process::{Command, Stdio};

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let installed = Command::new("iperf3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        return Err("iperf3 is not installed".into());
    }
    let port = TcpListener::bind(loopback())
        .and_then(|listener| listener.local_addr())
        .map_err(|error| error.to_string())?
        .port()
        .to_string();
    let _server = KillOnDrop(
        Command::new("iperf3")
            .args(["-s", "-1", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| error.to_string())?,
    );
    let mut last = String::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let output = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port, "-l", "1M", "-J"])
            .args(["-t", &IPERF3_SECONDS.to_string()])
            .stderr(Stdio::null())
            .output()
            .map_err(|error| error.to_string())?;
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
        if let Some(bits) = report["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bits / 8.0 / f64::from(1u32 << 30));
        }
        last = report["error"].as_str().unwrap_or("no figure").to_string();
    }
    Err(format!("iperf3 failed: {last}"))
}
