//! The static file source: load, and notice changes.
//!
//! The source is one or more files or directories (every `*.yaml`/`*.yml` in them). Change
//! detection hashes the list of files and their content, so an edit that keeps the size, an
//! editor's rename-over, a Kubernetes ConfigMap's symlink swap and a file added to a
//! directory are all seen, and touching a file without changing it is not a change. The
//! content is read (in 64 KiB pieces) only when a file's size, modification time or inode
//! moved: a large file that nobody touches costs a `stat` per check.

use crate::config::{ConfigError, Loaded, expand, load_files};
use std::cell::RefCell;
use std::hash::Hasher;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A file's path, size, modification time (seconds, nanoseconds) and inode.
type Stamp = (PathBuf, u64, i64, i64, u64);

pub struct FileSource {
    paths: Vec<PathBuf>,
    seen: Option<u64>,
    /// The files' stamps when last hashed.
    stamp: RefCell<Option<Vec<Stamp>>>,
}

fn stamps(paths: &[PathBuf]) -> Option<Vec<Stamp>> {
    let files = expand(paths).ok()?;
    files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).ok()?;
            Some((f, m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect()
}

fn fingerprint(paths: &[PathBuf]) -> Option<u64> {
    let files = expand(paths).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        h.write(f.as_os_str().as_encoded_bytes());
        let mut r = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(f).ok()?);
        loop {
            let buf = r.fill_buf().ok()?;
            if buf.is_empty() {
                break;
            }
            h.write(buf);
            let n = buf.len();
            r.consume(n);
        }
    }
    Some(h.finish())
}

impl FileSource {
    pub fn new(paths: Vec<PathBuf>) -> FileSource {
        FileSource { paths, seen: None, stamp: RefCell::new(None) }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// A short name for logs: the paths, comma-separated.
    pub fn describe(&self) -> String {
        self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Loads every file and remembers their state as seen.
    pub fn load(&mut self) -> Result<Loaded, Vec<ConfigError>> {
        *self.stamp.borrow_mut() = stamps(&self.paths);
        self.seen = fingerprint(&self.paths);
        load_files(&self.paths)
    }

    /// Whether anything changed since the last load. Files that cannot be read are not a
    /// change: the running configuration stays until readable files replace them.
    pub fn changed(&self) -> bool {
        let now = stamps(&self.paths);
        if now.is_some() && *self.stamp.borrow() == now {
            return false;
        }
        match fingerprint(&self.paths) {
            None => false,
            Some(f) => {
                // Touched but not changed: no need to read it again until it moves again.
                if self.seen == Some(f) {
                    *self.stamp.borrow_mut() = now;
                }
                self.seen != Some(f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_content_changes_only() {
        let dir = std::env::temp_dir().join(format!("kbgp-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yaml");
        std::fs::write(&p, "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n").unwrap();
        let mut s = FileSource::new(vec![dir.clone()]);
        assert!(s.changed(), "never loaded");
        s.load().unwrap();
        assert!(!s.changed());
        std::fs::write(&p, "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n").unwrap();
        assert!(!s.changed(), "same content rewritten");
        std::fs::write(&p, "apiVersion: v1\nkind: Node\nmetadata: {name: b}\n").unwrap();
        assert!(s.changed(), "same size, new content");
        s.load().unwrap();
        std::fs::write(dir.join("d.yml"), "apiVersion: v1\nkind: Node\nmetadata: {name: c}\n").unwrap();
        assert!(s.changed(), "a file added to the directory");
        assert_eq!(s.load().unwrap().world.nodes.len(), 2);
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        assert!(!s.changed(), "only YAML files count");
        std::fs::write(dir.join("e.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: b}\n").unwrap();
        let e = s.load().unwrap_err();
        assert_eq!(e[0].to_string(), "b: metadata.name: another Node has this name");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!s.changed(), "a missing file keeps the running configuration");
    }
}
