//! The peer a Rust user picks instead of TEJ: tokio-util's
//! `Framed<TcpStream, LengthDelimitedCodec>` (a u32 length and the bytes)
//! on the small-frame, round-trip and large workloads, on a tokio runtime
//! with two workers as tej-tokio's, client and server in this process.
//! Each is at its best: `feed` for every frame and one `flush`, read and
//! write buffers as large as the adapters' read buffer, `TCP_NODELAY`.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::harness::loopback;
use super::round_trip::ROUND_TRIP_FRAME_LEN;

/// Read and write buffers, as large as the adapters' default read buffer.
const BUFFER_LEN: usize = 256 * 1024;

type Peer = Framed<TcpStream, LengthDelimitedCodec>;

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A codec that takes frames of any length (the large workload's is one
/// frame of the whole payload).
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(usize::MAX)
        .new_codec()
}

fn framed(stream: TcpStream) -> io::Result<Peer> {
    stream.set_nodelay(true)?;
    let mut framed = Framed::with_capacity(stream, codec(), BUFFER_LEN);
    framed.set_backpressure_boundary(BUFFER_LEN);
    Ok(framed)
}

/// A connected pair on loopback: (client, server).
async fn pair() -> io::Result<(Peer, Peer)> {
    let listener = TcpListener::bind(loopback()).await?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    Ok((framed(client?)?, framed(accepted?.0)?))
}

fn joined<T>(result: Result<io::Result<T>, tokio::task::JoinError>) -> io::Result<T> {
    result.map_err(|_| io::Error::other("the Framed peer panicked"))?
}

/// Receives frames until `count` have arrived; the number received.
async fn count_frames(mut server: Peer, count: u64) -> io::Result<u64> {
    let mut frames = 0u64;
    while frames < count {
        match server.next().await {
            Some(frame) => {
                std::hint::black_box(frame?);
                frames += 1;
            }
            None => break,
        }
    }
    Ok(frames)
}

/// `count` frames of `message`, each `feed` into the sink and one `flush`
/// at the end, timed until the server has them all.
pub(super) fn framed_small(count: u64, message: &'static [u8]) -> io::Result<Duration> {
    runtime()?.block_on(async {
        let (mut client, server) = pair().await?;
        let receiver = tokio::spawn(count_frames(server, count));
        let started = Instant::now();
        for _ in 0..count {
            client.feed(Bytes::from_static(message)).await?;
        }
        SinkExt::<Bytes>::flush(&mut client).await?;
        let frames = joined(receiver.await)?;
        let took = started.elapsed();
        if frames != count {
            return Err(io::Error::other("the Framed peer lost frames"));
        }
        Ok(took)
    })
}

/// `count` round trips of a [`ROUND_TRIP_FRAME_LEN`]-byte payload each
/// way (each `send` flushes), after one to warm up.
pub(super) fn framed_round_trips(count: u64) -> io::Result<Duration> {
    runtime()?.block_on(async {
        let (mut client, mut server) = pair().await?;
        let responder = tokio::spawn(async move {
            while let Some(request) = server.next().await {
                server.send(request?.freeze()).await?;
            }
            Ok(())
        });
        let request = Bytes::from_static(&[0x5a; ROUND_TRIP_FRAME_LEN]);
        round_trip(&mut client, &request).await?;
        let started = Instant::now();
        for _ in 0..count {
            round_trip(&mut client, &request).await?;
        }
        let took = started.elapsed();
        drop(client);
        joined(responder.await)?;
        Ok(took)
    })
}

async fn round_trip(client: &mut Peer, request: &Bytes) -> io::Result<()> {
    client.send(request.clone()).await?;
    match client.next().await {
        Some(reply) => reply.map(drop),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// The large payload as one frame, timed until the server has decoded it.
pub(super) fn framed_large(payload: &Bytes) -> io::Result<Duration> {
    runtime()?.block_on(async {
        let (mut client, server) = pair().await?;
        let receiver = tokio::spawn(count_frames(server, 1));
        let started = Instant::now();
        client.send(payload.clone()).await?;
        let frames = joined(receiver.await)?;
        let took = started.elapsed();
        if frames != 1 {
            return Err(io::Error::other("the Framed peer lost the payload"));
        }
        Ok(took)
    })
}
