//! The static file source: load, and notice changes.
//!
//! Change detection compares size, modification time and a hash of the content, so an edit
//! that keeps the size, an editor's rename-over and a Kubernetes ConfigMap's symlink swap are
//! all seen; touching the file without changing it is not a change.

use crate::config::{ConfigError, Loaded, load_file};
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

type Fingerprint = (SystemTime, u64, u64);

pub struct FileSource {
    path: PathBuf,
    seen: Option<Fingerprint>,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    let text = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&text);
    Some((m.modified().ok()?, m.len(), h.finish()))
}

impl FileSource {
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource { path: path.into(), seen: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file and remembers its state as seen.
    pub fn load(&mut self) -> Result<Loaded, Vec<ConfigError>> {
        self.seen = fingerprint(&self.path);
        load_file(&self.path)
    }

    /// Whether the content changed since the last load. A file that disappeared is not a
    /// change: the running configuration stays until a readable file replaces it.
    pub fn changed(&self) -> bool {
        match fingerprint(&self.path) {
            None => false,
            Some(f) => self.seen.is_none_or(|s| s.2 != f.2 || s.1 != f.1),
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
        let mut s = FileSource::new(&p);
        assert!(s.changed(), "never loaded");
        s.load().unwrap();
        assert!(!s.changed());
        std::fs::write(&p, "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n").unwrap();
        assert!(!s.changed(), "same content rewritten");
        std::fs::write(&p, "apiVersion: v1\nkind: Node\nmetadata: {name: b}\n").unwrap();
        assert!(s.changed(), "same size, new content");
        std::fs::remove_file(&p).unwrap();
        assert!(!s.changed(), "a missing file keeps the running configuration");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
