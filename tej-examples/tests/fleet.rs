//! A fleet behind a real load balancer: three `tej serve --proxy-protocol
//! --json` processes (on tokio, async-std and mio) behind HAProxy from the
//! system (`deploy/haproxy.cfg` as it is: TCP mode, `send-proxy-v2`, health
//! checks every 200 ms), all on loopback.
//!
//! 1. 300 clients connected at once, each sending two
//!    frames with two files: every client is served by exactly one
//!    backend, which reports its `peer` as the client's own local address
//!    and every file with the SHA-256 the client computed.
//! 2. 90 clients hold their connections; one backend is killed (SIGKILL).
//!    Its clients see their connections end, and nothing was reported
//!    received that they did not send; the others' clients go on.
//! 3. New clients from the moment of the kill: every one that starts after
//!    HAProxy has marked the backend down is served by the others, nothing
//!    lost. Measured: the time from the kill to the first new client served.
//!
//! Needs `haproxy` on the PATH: with `TEJ_REQUIRE_FLEET=1` (CI) its absence
//! fails the test, otherwise the test prints `SKIP: ...` and passes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tej_test_support::serve::ServeProcess;
use tej_tokio::{Client, Connection, DisconnectReason, Frame, FrameBuilder, Handler, Status};

/// The whole test's bound.
const TEST_LIMIT: Duration = Duration::from_secs(55);
/// Any one wait's bound.
const WAIT: Duration = Duration::from_secs(10);

fn haproxy_available() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// One `tej serve` process and the JSON lines it printed.
struct Backend {
    name: String,
    process: ServeProcess,
    addr: SocketAddr,
    lines: Mutex<Vec<Value>>,
}

impl Backend {
    fn start(name: &str, runtime: &str, save_dir: &Path) -> Backend {
        let process = ServeProcess::spawn(
            Command::new(env!("CARGO_BIN_EXE_tej"))
                .args(["serve", "--bind", "127.0.0.1:0"])
                .args(["--proxy-protocol", "--json"])
                .args(["--runtime", runtime, "--reply", "ok", "--save-dir"])
                .arg(save_dir),
        );
        let addr = process.listening(WAIT).parse().unwrap();
        Backend {
            name: name.into(),
            process,
            addr,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Every event `kind` printed so far.
    fn events(&self, kind: &str) -> Vec<Value> {
        let mut lines = self.lines.lock().unwrap();
        while let Some(line) = self.process.next_line(Duration::ZERO) {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
            lines.push(value);
        }
        lines
            .iter()
            .filter(|v| v["event"] == kind)
            .cloned()
            .collect()
    }
}

/// How many events `kind` the backends printed so far, together.
fn count(backends: &[Backend], kind: &str) -> usize {
    backends.iter().map(|b| b.events(kind).len()).sum()
}

/// HAProxy in the foreground with deploy/haproxy.cfg, and when its stderr
/// said each line.
struct Balancer {
    child: Child,
    frontend: SocketAddr,
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Balancer {
    fn start(backends: &[Backend]) -> Balancer {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy.cfg");
        // A free port: bound, read, released, then taken by HAProxy.
        let frontend = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new("haproxy");
        command
            .args(["-f", config, "-db"])
            .env("TEJ_FRONTEND", frontend.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (i, backend) in backends.iter().enumerate() {
            command.env(format!("TEJ_BACKEND_{}", i + 1), backend.addr.to_string());
        }
        let mut child = command.spawn().expect("haproxy starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let pipe = BufReader::new(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in pipe.lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        // Listening once the port cannot be bound any more (no probe
        // connection, which a backend would report).
        let deadline = Instant::now() + WAIT;
        while TcpListener::bind(frontend).is_ok() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("haproxy exited: {status}: {:?}", stderr.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "haproxy does not listen");
            thread::sleep(Duration::from_millis(20));
        }
        Balancer {
            child,
            frontend,
            stderr,
        }
    }

    /// When HAProxy said `server` is DOWN.
    fn down_at(&self, server: &str) -> Option<Instant> {
        let needle = format!("Server tej_servers/{server} is DOWN");
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .find(|(_, line)| line.contains(&needle))
            .map(|(at, _)| *at)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client saw: replies and the end of its connection.
#[derive(Default)]
struct Track {
    replies: AtomicUsize,
    ended: Mutex<Option<(Instant, String)>>,
}

struct Acks(Arc<Track>);

impl Handler for Acks {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.0.replies.fetch_add(1, Ordering::SeqCst);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        *self.0.ended.lock().unwrap() = Some((Instant::now(), reason.to_string()));
    }
}

/// A client's frame: its files' SHA-256s, in order.
type Sent = Vec<String>;

/// One client through the balancer.
struct Peer {
    client: Client,
    local: SocketAddr,
    track: Arc<Track>,
    /// Frames sent, and whether each was answered.
    sent: Vec<(Sent, bool)>,
}

fn content(id: u64, frame: u64, file: u64) -> Vec<u8> {
    let mut state = (id << 32 | frame << 16 | file).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 1 + (state % (48 << 10)) as usize;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Peer {
    /// Connects from `source` (a loopback address of the phase's own: on
    /// loopback the kernel reuses ports still in TIME_WAIT, and a port one
    /// phase's client had could otherwise come back as another's).
    async fn connect(frontend: SocketAddr, source: [u8; 4]) -> std::io::Result<Peer> {
        let track = Arc::new(Track::default());
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let stream = socket.connect(frontend).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let client = Client::from_stream(
            stream,
            Acks(Arc::clone(&track)),
            tej_tokio::SessionConfig::default(),
        );
        Ok(Peer {
            client,
            local,
            track,
            sent: Vec::new(),
        })
    }

    /// Sends frame `n` of client `id` with `files` files and waits (up to
    /// `patience`) for its answer; whether it came.
    async fn send(&mut self, id: u64, n: u64, files: u64, patience: Duration) -> bool {
        let mut builder = FrameBuilder::new(Status::DEFAULT);
        let mut hashes = Vec::new();
        for file in 0..files {
            let data = content(id, n, file);
            hashes.push(sha256(&data));
            builder = builder.file(format!("c{id}-f{n}-{file}.bin"), data);
        }
        let frame = builder.message(format!("client {id} frame {n}")).build();
        let before = self.track.replies.load(Ordering::SeqCst);
        let queued = self.client.sender().send(frame).await.is_ok();
        let deadline = Instant::now() + patience;
        let mut answered = false;
        while queued && Instant::now() < deadline {
            if self.track.replies.load(Ordering::SeqCst) > before {
                answered = true;
                break;
            }
            if self.track.ended.lock().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.sent.push((hashes, answered));
        answered
    }

    async fn close(self) -> Vec<(Sent, bool)> {
        self.client.close();
        let _ = tokio::time::timeout(WAIT, self.client.join()).await;
        self.sent
    }
}

/// Every `received` event's files by peer, over all backends: which
/// backend, and the SHA-256s of each frame's files.
fn received_by_peer(backends: &[Backend]) -> HashMap<String, Vec<(String, Sent)>> {
    let mut by_peer: HashMap<String, Vec<(String, Sent)>> = HashMap::new();
    for backend in backends {
        for event in backend.events("received") {
            let peer = event["peer"].as_str().unwrap_or("?").to_string();
            let files = event["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|file| file["sha256"].as_str().unwrap().to_string())
                .collect();
            by_peer
                .entry(peer)
                .or_default()
                .push((backend.name.clone(), files));
        }
    }
    by_peer
}

/// Which backend reported `connected` for each peer (all of them, to catch
/// a peer reported twice).
fn connected_by_peer(backends: &[Backend]) -> HashMap<String, Vec<String>> {
    let mut by_peer: HashMap<String, Vec<String>> = HashMap::new();
    for backend in backends {
        for event in backend.events("connected") {
            let peer = event["peer"].as_str().unwrap_or("?").to_string();
            by_peer.entry(peer).or_default().push(backend.name.clone());
        }
    }
    by_peer
}

/// Checks one client against what the backends reported: it was reported
/// connected by exactly one backend, under its own address; that backend
/// reported every answered frame with the right hashes; nothing was
/// reported that it did not send. Returns the backend's name, if any.
fn check_client(
    local: SocketAddr,
    sent: &[(Sent, bool)],
    connected: &HashMap<String, Vec<String>>,
    received: &HashMap<String, Vec<(String, Sent)>>,
) -> Option<String> {
    let peer = local.to_string();
    let backends = connected.get(&peer).cloned().unwrap_or_default();
    assert!(
        backends.len() <= 1,
        "{peer} reported connected by {backends:?}"
    );
    let reported = received.get(&peer).cloned().unwrap_or_default();
    for (backend, files) in &reported {
        assert_eq!(
            Some(backend),
            backends.first(),
            "{peer}: frame on another backend"
        );
        assert!(
            sent.iter().any(|(hashes, _)| hashes == files),
            "{peer}: {backend} reported a frame that was not sent: {files:?}"
        );
    }
    for (hashes, answered) in sent {
        if *answered {
            let count = reported.iter().filter(|(_, files)| files == hashes).count();
            assert_eq!(count, 1, "{peer}: an answered frame reported {count} times");
        }
    }
    backends.first().cloned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_fleet_behind_haproxy_serves_everyone_and_survives_losing_a_backend() {
    if !haproxy_available() {
        if std::env::var("TEJ_REQUIRE_FLEET").as_deref() == Ok("1") {
            panic!("TEJ_REQUIRE_FLEET=1 but haproxy is not installed");
        }
        println!("SKIP: haproxy is not installed (apt-get install haproxy)");
        return;
    }
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let mut backends: Vec<Backend> = [("tej1", "tokio"), ("tej2", "async-std"), ("tej3", "mio")]
        .iter()
        .map(|(name, runtime)| {
            let dir = scratch.path().join(name);
            Backend::start(name, runtime, &dir)
        })
        .collect();
    let balancer = Balancer::start(&backends);
    let frontend = balancer.frontend;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. 300 clients connected at once, two frames of two files each.
    let mut served: Vec<(SocketAddr, Vec<(Sent, bool)>)> = Vec::new();
    let peers = runtime.block_on(async {
        let tasks: Vec<_> = (0..300u64)
            .map(|id| {
                tokio::spawn(async move {
                    // A source address of this phase's own (see Peer::connect).
                    let mut peer = Peer::connect(frontend, [127, 0, 1, 1])
                        .await
                        .expect("connect");
                    for n in 0..2 {
                        assert!(peer.send(id, n, 2, WAIT).await, "client {id} unanswered");
                    }
                    peer
                })
            })
            .collect();
        let mut peers = Vec::new();
        for task in tasks {
            peers.push(task.await.expect("a client task"));
        }
        peers
    });
    // Every client is still connected here: all 300 are at once.
    wait_until("300 connections reported", || {
        count(&backends, "connected") >= 300
    });
    let concurrent = count(&backends, "connected") - count(&backends, "disconnected");
    assert_eq!(concurrent, 300, "clients connected at once");
    // Each backend reports the client as `peer` and HAProxy as `proxy`.
    for backend in &backends {
        for event in backend.events("connected") {
            let address = |key: &str| -> SocketAddr {
                let text = event[key].as_str();
                text.and_then(|text| text.parse().ok())
                    .unwrap_or_else(|| panic!("{}: no {key} in {event}", backend.name))
            };
            assert_eq!(address("peer").ip().to_string(), "127.0.1.1", "{event}");
            assert_eq!(address("proxy").ip().to_string(), "127.0.0.1", "{event}");
        }
    }
    runtime.block_on(async {
        for peer in peers {
            let local = peer.local;
            served.push((local, peer.close().await));
        }
    });
    wait_until("300 disconnections reported", || {
        count(&backends, "disconnected") >= 300
    });
    let connected = connected_by_peer(&backends);
    let received = received_by_peer(&backends);
    let mut per_backend: BTreeMap<String, usize> = BTreeMap::new();
    for (local, sent) in &served {
        let backend = check_client(*local, sent, &connected, &received)
            .unwrap_or_else(|| panic!("{local} was never reported connected"));
        *per_backend.entry(backend).or_default() += 1;
    }
    let known: BTreeSet<String> = served.iter().map(|(l, _)| l.to_string()).collect();
    for peer in connected.keys() {
        assert!(known.contains(peer), "a connection nobody made: {peer}");
    }
    let files: usize = received.values().map(|frames| frames.len() * 2).sum();
    println!(
        "phase 1: {} clients served ({concurrent} connected at once), {} frames, {files} files \
         verified by SHA-256; per backend {per_backend:?}",
        served.len(),
        served.len() * 2
    );
    assert_eq!(served.len(), 300);
    for backend in &backends {
        assert!(
            per_backend.get(&backend.name).copied().unwrap_or(0) >= 50,
            "{per_backend:?}"
        );
    }

    // 2. 90 clients hold their connections, one answered frame each.
    let mut holders = runtime.block_on(async {
        let tasks: Vec<_> = (0..90u64)
            .map(|i| {
                let id = 1000 + i;
                tokio::spawn(async move {
                    let mut peer = Peer::connect(frontend, [127, 0, 0, 2])
                        .await
                        .expect("connect");
                    assert!(peer.send(id, 0, 1, WAIT).await, "holder {id} unanswered");
                    (id, peer)
                })
            })
            .collect();
        let mut holders = Vec::new();
        for task in tasks {
            holders.push(task.await.unwrap());
        }
        holders
    });
    let connected = connected_by_peer(&backends);
    let on = |peer: &Peer| connected[&peer.local.to_string()][0].clone();
    let victim_name = backends[0].name.clone();
    let on_victim = holders.iter().filter(|(_, p)| on(p) == victim_name).count();

    // Kill the first backend, then start new clients at once, one every
    // 10 ms for 1.5 s, each sending one frame.
    let killed_at = Instant::now();
    backends[0].process.child.kill().unwrap();
    backends[0].process.child.wait().unwrap();
    let newcomers = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..150u64 {
            let id = 2000 + i;
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let Ok(mut peer) = Peer::connect(frontend, [127, 0, 0, 3]).await else {
                    return (start, None, None);
                };
                let answered = peer.send(id, 0, 1, Duration::from_secs(5)).await;
                let at = answered.then(Instant::now);
                let local = peer.local;
                let sent = peer.close().await;
                (start, at, Some((local, sent)))
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap());
        }
        done
    });

    // The victim's holders saw their connections end; the others' still
    // answer.
    wait_until("the victim's clients to see their end", || {
        holders
            .iter()
            .filter(|(_, p)| on(p) == victim_name)
            .all(|(_, p)| p.track.ended.lock().unwrap().is_some())
    });
    let mut ended_after = Vec::new();
    for (_, peer) in holders.iter().filter(|(_, p)| on(p) == victim_name) {
        let (at, reason) = peer.track.ended.lock().unwrap().clone().unwrap();
        assert!(at >= killed_at, "ended before the kill: {reason}");
        ended_after.push(at - killed_at);
    }
    let survivors_answered = runtime.block_on(async {
        let mut answered = 0;
        for (id, peer) in holders.iter_mut().filter(|(_, p)| on(p) != victim_name) {
            assert!(
                peer.send(*id, 1, 1, WAIT).await,
                "a survivor's client stopped"
            );
            answered += 1;
        }
        answered
    });
    let down_at = balancer.down_at(&victim_name);

    // Nothing reported that was not sent, for holders and newcomers alike.
    let holders: Vec<(SocketAddr, Vec<(Sent, bool)>)> = runtime.block_on(async {
        let mut closed = Vec::new();
        for (_, peer) in holders {
            let local = peer.local;
            closed.push((local, peer.close().await));
        }
        closed
    });
    thread::sleep(Duration::from_millis(200));
    let connected = connected_by_peer(&backends);
    let received = received_by_peer(&backends);
    for (local, sent) in &holders {
        check_client(*local, sent, &connected, &received).expect("a holder was reported");
    }
    let mut first_served: Option<Duration> = None;
    let (mut served_new, mut failed_before_down) = (0, 0);
    let mut new_per_backend: BTreeMap<String, usize> = BTreeMap::new();
    for (start, answered_at, outcome) in &newcomers {
        let after_down = down_at.is_some_and(|down| *start >= down);
        match (answered_at, outcome) {
            (Some(at), Some((local, sent))) => {
                served_new += 1;
                let backend = check_client(*local, sent, &connected, &received)
                    .expect("a served newcomer was reported");
                assert_ne!(backend, victim_name);
                *new_per_backend.entry(backend).or_default() += 1;
                let since = *at - killed_at;
                first_served = Some(first_served.map_or(since, |first| first.min(since)));
            }
            (_, outcome) => {
                assert!(
                    !after_down,
                    "a client that started after HAProxy marked {victim_name} down was not served"
                );
                if let Some((local, sent)) = outcome {
                    check_client(*local, sent, &connected, &received);
                }
                failed_before_down += 1;
            }
        }
    }
    let down = down_at.map(|at| at - killed_at);
    let after_down = newcomers
        .iter()
        .filter(|(start, _, _)| down_at.is_some_and(|down| *start >= down))
        .count();
    println!(
        "phase 2: killed {victim_name} holding {on_victim} of 90 clients; all {on_victim} saw their \
         connection end (within {:?} of the kill), no frame reported that was not sent; \
         {survivors_answered} clients of the other backends answered after the kill",
        ended_after.iter().max().copied().unwrap_or_default()
    );
    println!(
        "phase 3: HAProxy marked {victim_name} down {down:?} after the kill; {served_new} of 150 new \
         clients served ({new_per_backend:?}), {failed_before_down} not served (all before the \
         mark), {after_down} started after it, all served; first new client served {first_served:?} \
         after the kill"
    );
    assert!(down.is_some(), "HAProxy never reported {victim_name} down");
    assert!(after_down > 0, "no client started after the mark down");
    assert!(first_served.is_some());
    let total = 300 + 90 + served_new;
    println!("fleet: {total} clients served in {:?}", started.elapsed());
    assert!(
        started.elapsed() < TEST_LIMIT,
        "took {:?}",
        started.elapsed()
    );
    drop(balancer);
    drop(backends);
}
