//! A `Driver` on the test's own `Poll`, next to a source of its own:
//! many client sessions, senders on another thread, a timer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tej_mio::mio::net::{TcpStream, UdpSocket};
use tej_mio::mio::{Events as MioEvents, Interest, Poll, Token, Waker};
use tej_mio::{
    Connection, DisconnectReason, Driver, Frame, FrameBuilder, Handler, Session, SessionConfig,
    Status,
};
use tej_test_support::{
    handlers::{Echo, Events},
    mio::Running,
    peer::{text, PATIENCE},
};

const CLIENTS: usize = 200;
const FRAMES: usize = 20;
const WAKE: Token = Token(0);
const UDP: Token = Token(1);

/// Records, per client, the messages and the end.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Vec<String>>>>);

struct Recorder {
    id: usize,
    received: usize,
    log: Log,
}

impl Recorder {
    fn push(&self, entry: String) {
        self.log.0.lock().unwrap()[self.id].push(entry);
    }
}

impl Handler for Recorder {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.push(text(&frame));
        self.received += 1;
        if self.received == FRAMES {
            // Every echo is in: done.
            conn.close();
        }
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.push(format!("disconnected: {reason}"));
    }
}

#[test]
fn many_sessions_on_a_loop_of_our_own() {
    let server = Running::start(SessionConfig::default(), || Echo(Events::default()));
    let mut poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
    let mut udp = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    poll.registry()
        .register(&mut udp, UDP, Interest::READABLE)
        .unwrap();
    let mut driver = Driver::<Recorder>::new(Token(100)..Token(100 + CLIENTS + 2), waker);

    let log = Log(Arc::new(Mutex::new(vec![Vec::new(); CLIENTS + 1])));
    let mut senders = Vec::new();
    for id in 0..CLIENTS {
        let stream = TcpStream::connect(server.addr).unwrap();
        let session = Session::new(
            Recorder {
                id,
                received: 0,
                log: log.clone(),
            },
            SessionConfig::default().send_queue_capacity(2048),
        )
        .with_peer(server.addr);
        senders.push(session.sender());
        let token = driver
            .add_session(poll.registry(), stream, session)
            .unwrap();
        assert!(token.0 > 100 && token.0 < 100 + CLIENTS + 2);
    }
    // One more, which only waits: its idle timeout is the driver's timer.
    let idle = Session::new(
        Recorder {
            id: CLIENTS,
            received: 0,
            log: log.clone(),
        },
        SessionConfig::default().idle_timeout(Some(Duration::from_millis(50))),
    );
    let stream = TcpStream::connect(server.addr).unwrap();
    driver.add_session(poll.registry(), stream, idle).unwrap();
    // The range is full now.
    let stream = TcpStream::connect(server.addr).unwrap();
    let spare = Session::new(
        Recorder {
            id: CLIENTS,
            received: 0,
            log: log.clone(),
        },
        SessionConfig::default(),
    );
    assert!(driver.add_session(poll.registry(), stream, spare).is_err());
    assert_eq!(driver.len(), CLIENTS + 1);

    // Another thread feeds every connection; each closes when its echoes are in.
    let feeder = std::thread::spawn(move || {
        for round in 0..FRAMES {
            for (id, sender) in senders.iter().enumerate() {
                let frame = FrameBuilder::new(Status::DEFAULT)
                    .file("x", vec![id as u8; 300])
                    .message(format!("c{id}-{round}"))
                    .build();
                sender.send_blocking(frame).unwrap();
            }
        }
    });

    // A datagram for the loop's own source.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.send_to(b"mine", udp.local_addr().unwrap()).unwrap();
    let mut own_events = 0;

    let mut events = MioEvents::with_capacity(256);
    let give_up = Instant::now() + PATIENCE;
    while !driver.is_empty() {
        assert!(
            Instant::now() < give_up,
            "the loop did not finish: {driver:?}"
        );
        let timeout = driver
            .poll_timeout()
            .map_or(Duration::from_millis(100), |due| {
                due.min(Duration::from_millis(100))
            });
        poll.poll(&mut events, Some(timeout)).unwrap();
        for event in events.iter() {
            if event.token() == WAKE {
                driver.handle_wake(poll.registry());
            } else if !driver.handle_event(poll.registry(), event) {
                assert_eq!(event.token(), UDP);
                let mut buf = [0; 16];
                let (len, _) = udp.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..len], b"mine");
                own_events += 1;
            }
        }
        driver.handle_timeout(poll.registry());
    }
    feeder.join().unwrap();
    assert_eq!(own_events, 1);

    let log = log.0.lock().unwrap();
    for (id, entries) in log[..CLIENTS].iter().enumerate() {
        let mut expected: Vec<String> = (0..FRAMES).map(|r| format!("echo: c{id}-{r}")).collect();
        expected.push("disconnected: closed locally".into());
        assert_eq!(entries, &expected, "client {id}");
    }
    assert_eq!(log[CLIENTS], vec!["disconnected: idle timeout"]);
    drop(log);
    server.stop();
}
