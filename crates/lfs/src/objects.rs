//! The hub's LFS objects: one content-addressed store under the data directory, shared by
//! every repository (`objects/ab/cd/<oid>`). An object is written to `tmp/`, checked against
//! its id and size while it streams in, fsynced, and only then renamed into place: a file at
//! an object's path is always complete and verified, whatever crashed when.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{LfsError, Oid, Pointer};

/// Temporary files older than this are leftovers of a process that died (no write takes a
/// day: the sync timeout ends it first), removed when a store is opened. Younger ones may be
/// another replica's writes in progress.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
    max_object_bytes: u64,
}

impl ObjectStore {
    /// Opens (creating) the store under `root`, refusing objects over `max_object_bytes`.
    pub fn open(root: &Path, max_object_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("objects"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        let store = Self {
            root: root.to_path_buf(),
            max_object_bytes,
        };
        store.sweep_tmp();
        Ok(store)
    }

    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// Where an object lives (whether or not it is there).
    pub fn path(&self, oid: &Oid) -> PathBuf {
        let id = oid.as_str();
        self.root
            .join("objects")
            .join(&id[0..2])
            .join(&id[2..4])
            .join(id)
    }

    /// Whether the object is stored with this size. Objects are verified before they are
    /// stored, so a file of the right size is the object.
    pub async fn contains(&self, pointer: &Pointer) -> bool {
        matches!(tokio::fs::metadata(self.path(&pointer.oid)).await, Ok(m) if m.is_file() && m.len() == pointer.size)
    }

    /// Opens a stored object for reading, with its size.
    pub async fn open_object(&self, oid: &Oid) -> io::Result<(tokio::fs::File, u64)> {
        let file = tokio::fs::File::open(self.path(oid)).await?;
        let len = file.metadata().await?.len();
        Ok((file, len))
    }

    /// Starts writing an object. Refuses one over the size limit before any byte is read.
    pub async fn writer(&self, pointer: &Pointer) -> Result<ObjectWriter, LfsError> {
        if pointer.size > self.max_object_bytes {
            return Err(LfsError::TooLarge {
                oid: pointer.oid.clone(),
                size: pointer.size,
                limit: self.max_object_bytes,
            });
        }
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{:016x}",
            pointer.oid,
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(ObjectWriter {
            file: Some(file),
            tmp: Some(tmp),
            dest: self.path(&pointer.oid),
            expected: pointer.clone(),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Removes an object no repository references any more.
    pub async fn remove(&self, oid: &Oid) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(oid)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn sweep_tmp(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// An object being written. Dropped unfinished, its temporary file is removed.
pub struct ObjectWriter {
    file: Option<tokio::fs::File>,
    tmp: Option<PathBuf>,
    dest: PathBuf,
    expected: Pointer,
    hasher: Sha256,
    written: u64,
}

impl ObjectWriter {
    pub fn expected(&self) -> &Pointer {
        &self.expected
    }

    /// Appends a piece. More bytes than the pointer's size is an error at once, so a hostile
    /// server cannot fill the disk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), LfsError> {
        self.written += chunk.len() as u64;
        if self.written > self.expected.size {
            return Err(LfsError::ObjectInvalid {
                oid: self.expected.oid.clone(),
                detail: format!(
                    "more than the {} bytes its pointer gives",
                    self.expected.size
                ),
            });
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().ok_or_else(closed)?;
        file.write_all(chunk).await?;
        Ok(())
    }

    /// Checks size and id, makes the content durable, and moves it into place.
    pub async fn finish(mut self) -> Result<(), LfsError> {
        let oid = self.expected.oid.clone();
        if self.written != self.expected.size {
            return Err(LfsError::ObjectInvalid {
                oid,
                detail: format!(
                    "{} bytes where its pointer gives {}",
                    self.written, self.expected.size
                ),
            });
        }
        let actual = Oid::from_digest(&std::mem::take(&mut self.hasher).finalize());
        if actual != oid {
            return Err(LfsError::ObjectInvalid {
                oid,
                detail: format!("its content has the SHA-256 {actual}"),
            });
        }
        let mut file = self.file.take().ok_or_else(closed)?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let tmp = self.tmp.take().ok_or_else(closed)?;
        let dest = self.dest.clone();
        let parent = dest.parent().map(Path::to_path_buf);
        if let Some(parent) = &parent {
            tokio::fs::create_dir_all(parent).await?;
        }
        if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        if let Some(parent) = parent {
            // The rename is durable once its directory is.
            if let Ok(dir) = tokio::fs::File::open(&parent).await {
                let _ = dir.sync_all().await;
            }
        }
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::other("the object writer was already finished")
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(content: &[u8]) -> Pointer {
        Pointer {
            oid: Oid::of(content),
            size: content.len() as u64,
        }
    }

    fn tmp_files(root: &Path) -> usize {
        std::fs::read_dir(root.join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn stores_only_verified_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path(), 1 << 20).unwrap();
        let good = pointer(b"hello world");
        let mut w = store.writer(&good).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        w.finish().await.unwrap();
        assert!(store.contains(&good).await);
        assert_eq!(
            std::fs::read(store.path(&good.oid)).unwrap(),
            b"hello world"
        );

        // Same size, other content: refused, nothing visible, no temporary file left.
        let claimed = pointer(b"HELLO WORLD");
        let mut w = store.writer(&claimed).await.unwrap();
        w.write(b"hello world").await.unwrap();
        let err = w.finish().await.unwrap_err();
        assert!(matches!(err, LfsError::ObjectInvalid { .. }), "{err}");
        assert!(!store.contains(&claimed).await);
        assert_eq!(tmp_files(dir.path()), 0);

        // Short and long bodies.
        let mut w = store.writer(&claimed).await.unwrap();
        w.write(b"HELLO").await.unwrap();
        assert!(w.finish().await.is_err());
        let mut w = store.writer(&claimed).await.unwrap();
        assert!(w.write(b"HELLO WORLD!").await.is_err());
        drop(w);
        assert_eq!(tmp_files(dir.path()), 0);
        assert!(!store.path(&claimed.oid).exists());
    }

    #[tokio::test]
    async fn refuses_objects_over_the_limit_before_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path(), 4).unwrap();
        let err = store.writer(&pointer(b"12345")).await.err().unwrap();
        assert!(matches!(err, LfsError::TooLarge { limit: 4, .. }), "{err}");
    }
}
