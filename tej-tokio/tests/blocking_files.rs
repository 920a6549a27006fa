//! On Tokio's multi-thread runtime, file steps that block run off the
//! async threads from the first to the last: a sink whose every step
//! (`start`, `write`, `finish`) and a source whose every read call
//! `blocking_send`, which panics on an async thread, move every file whole.

use std::io;
use std::sync::Arc;

use tej_test_support::peer::within;
use tej_tokio::tej_core::storage::{FileSink, FileSource, StorageError};
use tej_tokio::{Client, Connection, File, FileBody, FileTarget, Frame, Handler, Server};
use tokio::sync::mpsc;

/// A step of a file's storage or reading, as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Start(String, u64),
    Bytes(usize),
    Finish,
    Read(usize),
}

/// Stores nothing; reports each step through a channel of one slot, so
/// that it blocks the thread it runs on.
struct BlockingSink {
    steps: mpsc::Sender<Step>,
    len: u64,
}

impl BlockingSink {
    fn report(&self, step: Step) -> Result<(), StorageError> {
        self.steps.blocking_send(step).map_err(io::Error::other)
    }
}

impl FileSink for BlockingSink {
    fn start(&mut self, name: &str, size: u64) -> Result<(), StorageError> {
        self.report(Step::Start(name.to_owned(), size))
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.len += data.len() as u64;
        self.report(Step::Bytes(data.len()))
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        self.report(Step::Finish)?;
        Ok(FileBody::Delivered { len: self.len })
    }
}

/// Hands every file to a [`BlockingSink`] and every frame to a channel.
struct Store {
    steps: mpsc::Sender<Step>,
    frames: mpsc::UnboundedSender<Frame>,
}

impl Handler for Store {
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Sink(Box::new(BlockingSink {
            steps: self.steps.clone(),
            len: 0,
        }))
    }

    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let _ = self.frames.send(frame);
    }
}

/// A body of `len` bytes of `byte` whose reads block (each reported
/// through a channel of one slot).
#[derive(Debug)]
struct BlockingSource {
    len: u64,
    byte: u8,
    reads: mpsc::Sender<Step>,
}

struct BlockingReader {
    left: u64,
    byte: u8,
    reads: mpsc::Sender<Step>,
}

impl io::Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].fill(self.byte);
        self.left -= n as u64;
        self.reads
            .blocking_send(Step::Read(n))
            .map_err(io::Error::other)?;
        Ok(n)
    }
}

impl FileSource for BlockingSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self) -> Result<Box<dyn io::Read + Send>, StorageError> {
        Ok(Box::new(BlockingReader {
            left: self.len,
            byte: self.byte,
            reads: self.reads.clone(),
        }))
    }
}

/// Collects the steps reported on `steps` until every sender is gone.
fn collect(mut steps: mpsc::Receiver<Step>) -> tokio::task::JoinHandle<Vec<Step>> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(step) = steps.recv().await {
            all.push(step);
        }
        all
    })
}

struct Quiet;

impl Handler for Quiet {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_steps_that_block_run_off_the_async_threads() {
    const SIZES: [u64; 4] = [0, 10, 100_000, 3_000_000];
    const FRAMES: usize = 4;
    let (sink_steps, sink_seen) = mpsc::channel(1);
    let (frames_in, mut frames) = mpsc::unbounded_channel();
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(move || Store {
        steps: sink_steps.clone(),
        frames: frames_in.clone(),
    }));
    let sink_seen = collect(sink_seen);

    let (reads, reads_seen) = mpsc::channel(1);
    let reads_seen = collect(reads_seen);
    let client = Client::connect(addr, Quiet).await.unwrap();
    for round in 0..FRAMES {
        let mut frame = Frame::message("files");
        for (index, len) in SIZES.into_iter().enumerate() {
            let source = BlockingSource {
                len,
                byte: round as u8,
                reads: reads.clone(),
            };
            frame.files.push(File {
                name: format!("f{round}-{index}"),
                body: FileBody::Source(Arc::new(source)),
            });
        }
        client.sender().send(frame).await.unwrap();
    }
    drop(reads);
    for _ in 0..FRAMES {
        let frame = within("a frame", frames.recv()).await.unwrap();
        let lens: Vec<u64> = frame.files.iter().map(|file| file.body.len()).collect();
        assert_eq!(lens, SIZES, "a frame with other files");
    }
    client.close();
    within("the client to end", client.join()).await.unwrap();
    shutdown.shutdown();
    within("the server to end", serving).await.unwrap();

    // Every file went through its sink whole, in order: started, its
    // bytes, finished (an empty one started at its end).
    let steps = within("the sink's steps", sink_seen).await.unwrap();
    let mut expected_files = (0..FRAMES).flat_map(|round| {
        SIZES
            .into_iter()
            .enumerate()
            .map(move |(index, len)| (format!("f{round}-{index}"), len))
    });
    let mut current: Option<(u64, u64)> = None;
    for step in steps {
        match step {
            Step::Start(name, len) => {
                assert_eq!(current, None, "{name} started inside another file");
                assert_eq!(Some((name, len)), expected_files.next());
                current = Some((len, 0));
            }
            Step::Bytes(n) => current.as_mut().expect("bytes outside a file").1 += n as u64,
            Step::Finish => {
                let (len, got) = current.take().expect("a finish outside a file");
                assert_eq!(got, len);
            }
            Step::Read(_) => unreachable!("a read on the server"),
        }
    }
    assert_eq!(expected_files.next(), None, "files missing");
    // And every byte sent was read from its source.
    let read: usize = within("the reads", reads_seen)
        .await
        .unwrap()
        .into_iter()
        .map(|step| match step {
            Step::Read(n) => n,
            other => unreachable!("{other:?} on the client"),
        })
        .sum();
    assert_eq!(read as u64, FRAMES as u64 * SIZES.iter().sum::<u64>());
}
