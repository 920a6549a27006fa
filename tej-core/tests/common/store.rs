//! File storage in memory, through the core's file traits: what a session
//! does with a sink and a source, tested without a disk.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tej_core::storage::{FileSink, FileSource, StorageError};
use tej_core::{File, FileBody, FileTarget};

/// Named byte strings standing in for a directory of files.
#[derive(Clone, Default, Debug)]
pub struct MemStore(Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>);

impl MemStore {
    /// A target that stores the file under its name, made unique.
    pub fn target(&self) -> FileTarget {
        FileTarget::Sink(Box::new(MemSink {
            store: self.clone(),
            path: None,
        }))
    }

    /// Stores `bytes` at `path`, replacing what was there.
    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.0.lock().unwrap().insert(path.into(), bytes.into());
    }

    /// A file to send named `name`, read from `path` when sent.
    pub fn file(&self, name: &str, path: &str) -> File {
        let len = self.read(Path::new(path)).expect("stored").len() as u64;
        File::from_source(
            name,
            MemSource {
                store: self.clone(),
                path: path.into(),
                len,
            },
        )
    }

    /// The bytes at `path`.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(path).cloned()
    }

    /// How many files are stored.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

struct MemSink {
    store: MemStore,
    path: Option<PathBuf>,
}

impl FileSink for MemSink {
    fn start(&mut self, name: &str, _size: u64) -> Result<(), StorageError> {
        let mut files = self.store.0.lock().unwrap();
        let path = (0..)
            .map(|n| PathBuf::from(format!("{name}#{n}")))
            .find(|path| !files.contains_key(path))
            .expect("a free name");
        files.insert(path.clone(), Vec::new());
        self.path = Some(path);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let path = self.path.as_ref().expect("started");
        let mut files = self.store.0.lock().unwrap();
        files.get_mut(path).expect("stored").extend_from_slice(data);
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        let path = self.path.clone().expect("started");
        let len = self.store.read(&path).expect("stored").len() as u64;
        Ok(FileBody::Source(Arc::new(MemSource {
            store: self.store.clone(),
            path,
            len,
        })))
    }

    fn abandon(&mut self) {
        if let Some(path) = self.path.take() {
            self.store.0.lock().unwrap().remove(&path);
        }
    }
}

#[derive(Debug)]
struct MemSource {
    store: MemStore,
    path: PathBuf,
    len: u64,
}

impl FileSource for MemSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self) -> Result<Box<dyn io::Read + Send>, StorageError> {
        let bytes = self
            .store
            .read(&self.path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not stored"))?;
        Ok(Box::new(io::Cursor::new(bytes)))
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
