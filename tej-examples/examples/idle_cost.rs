//! What an idle connection costs `tej serve`: the server's resident memory
//! before and after `N` connections that send nothing, per connection, on
//! each runtime.
//!
//! `cargo run --release -p tej-examples --example idle_cost -- [N] [RUNTIME...]`
//!
//! `N` defaults to 10,000; the runtimes to all of them. It runs the `tej`
//! binary built next to it (`TEJ_BIN` picks another, to compare two
//! builds), raises the limit on open files for itself and the server (to
//! `2 N` and more: over the hard limit needs the privilege to), and opens
//! the connections from 127.0.0.2, 127.0.0.3, … (20,000 each), so that
//! 100,000 do not run out of ephemeral ports. Connections are opened in
//! batches of 500, each counted once the server reports it `connected`
//! (`--json`); the RSS is read from `/proc/PID/status` half a second after
//! the server started and one second after the last connection. Linux only.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Connections opened from one source address.
const PER_SOURCE: usize = 20_000;
/// Connections opened before waiting for the server to report them.
const BATCH: usize = 500;
/// The most the server may take to report a batch.
const WAIT: Duration = Duration::from_secs(120);

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map_or(10_000, |arg| arg.parse().expect("N is a number"));
    let mut runtimes: Vec<String> = args.collect();
    if runtimes.is_empty() {
        runtimes = ["tokio", "async-std", "smol", "mio"]
            .map(String::from)
            .to_vec();
    }
    raise_open_files(2 * count as u64 + 1024);
    let tej = tej_binary();
    println!(
        "{count} idle connections to `tej serve` ({})",
        tej.display()
    );
    // Each runtime connects from addresses of its own: the ports of the
    // runtime before are still in TIME_WAIT.
    let sources_per_run = count.div_ceil(PER_SOURCE);
    for (run, runtime) in runtimes.into_iter().enumerate() {
        match measure(&tej, &runtime, count, run * sources_per_run) {
            Ok((before, after)) => println!(
                "{runtime:<9} RSS {:.1} MiB before, {:.1} MiB after: {:.2} KiB per idle connection",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                after.saturating_sub(before) as f64 / count as f64
            ),
            Err(error) => {
                eprintln!("idle_cost: {runtime}: {error}");
                std::process::exit(1);
            }
        }
    }
}

/// The server's RSS in KiB before and after `count` idle connections.
fn measure(
    tej: &PathBuf,
    runtime: &str,
    count: usize,
    first_source: usize,
) -> Result<(u64, u64), String> {
    let mut server = Server::start(tej, runtime, count)?;
    let before = rss_kib(server.child.id())?;
    let mut connections = Vec::with_capacity(count);
    // In batches, reading the server's events in between: a server whose
    // output is not read stops at a full pipe.
    for batch in (0..count).step_by(BATCH) {
        let end = (batch + BATCH).min(count);
        for index in batch..end {
            connections.push(connect(server.addr, first_source, index).map_err(|error| {
                format!("connection {index}: {error} (raise the limit on open files or ports)")
            })?);
        }
        server.wait_connected(end - batch)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(server.child.id())?;
    drop(connections);
    Ok((before, after))
}

/// One plain TCP connection from 127.0.0.(2 + `first_source`) and up,
/// `PER_SOURCE` per address.
fn connect(server: SocketAddr, first_source: usize, index: usize) -> std::io::Result<TcpStream> {
    let source = (2 + first_source + index / PER_SOURCE) as u32;
    let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + source);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddrV4::new(source, 0).into())?;
    socket.connect(&server.into())?;
    Ok(socket.into())
}

/// `tej serve --json` on loopback, its events read as they come.
struct Server {
    child: Child,
    events: std::io::Lines<BufReader<std::process::ChildStdout>>,
    addr: SocketAddr,
}

impl Server {
    fn start(tej: &PathBuf, runtime: &str, count: usize) -> Result<Server, String> {
        let mut child = Command::new(tej)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--json",
                "--runtime",
                runtime,
            ])
            .args(["--max-connections", &(count + 16).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", tej.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let mut events = BufReader::new(stdout).lines();
        let addr = loop {
            let line = next_event(&mut events)?;
            if let Some(addr) = event_field(&line, "listening", "addr") {
                break addr.parse().map_err(|_| format!("bad address in {line}"))?;
            }
        };
        // Let the runtime's threads start before the first reading.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Server {
            child,
            events,
            addr,
        })
    }

    fn wait_connected(&mut self, count: usize) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = 0;
        while seen < count {
            if Instant::now() > deadline {
                return Err(format!("only {seen} of a batch of {count} reported"));
            }
            if event_field(&next_event(&mut self.events)?, "connected", "event").is_some() {
                seen += 1;
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn next_event(
    events: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
) -> Result<String, String> {
    match events.next() {
        Some(Ok(line)) => Ok(line),
        Some(Err(error)) => Err(format!("reading the server's events: {error}")),
        None => Err("the server ended".into()),
    }
}

/// `field` of a JSON event line whose `event` is `event`.
fn event_field(line: &str, event: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value["event"] != event {
        return None;
    }
    value[field].as_str().map(String::from)
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("cannot read the server's status: {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in the server's status".into())
}

/// Raises this process's limit on open files to `want` (the server
/// inherits it); over the hard limit where permitted, else to the hard limit.
fn raise_open_files(want: u64) {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).expect("getrlimit");
    if soft >= want {
        return;
    }
    if rlimit::setrlimit(Resource::NOFILE, want, want.max(hard)).is_err() {
        let _ = rlimit::setrlimit(Resource::NOFILE, hard, hard);
    }
}

/// The `tej` binary beside this example (target/<profile>/tej), or `TEJ_BIN`.
fn tej_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TEJ_BIN") {
        return PathBuf::from(path);
    }
    let example = std::env::current_exe().expect("the example's path");
    example
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("tej"))
        .expect("target/<profile>/tej")
}
