//! Whether kbgp is restarting (RFC 4724 §3, the Restart State bit), known from a small file
//! under `--state-dir` (default `/run/kbgp`, a hostPath in the DaemonSet, so that it outlives
//! the container).
//!
//! A running kbgp touches `<dir>/alive` every [`HEARTBEAT`]. At start, a file touched within
//! a neighbor's restart time means the previous kbgp died or stopped gracefully that recently
//! and the peer may still hold its routes as stale: that neighbor's first OPEN sets R. A
//! shutdown with `--on-shutdown withdraw` removes the file (the next start is a fresh one);
//! one that keeps the routes leaves it, as kill -9 does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tracing::warn;

pub const HEARTBEAT: Duration = Duration::from_secs(2);
const FILE: &str = "alive";

pub struct RestartState {
    path: PathBuf,
    task: JoinHandle<()>,
}

/// How long ago the previous kbgp was last alive, from the file in `dir`; `None` when there
/// is no file (a first start, or after a withdrawing shutdown).
pub fn previous(dir: &Path) -> Option<Duration> {
    let m = fs::metadata(dir.join(FILE)).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(m).unwrap_or_default())
}

impl RestartState {
    /// Starts the heartbeat in `dir` (created if needed).
    pub fn start(dir: &Path) -> io::Result<RestartState> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        fs::write(&path, format!("{}\n", std::process::id()))?;
        let p = path.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                if let Err(e) = touch(&p) {
                    warn!(path = %p.display(), "cannot update the restart state file: {e}");
                }
            }
        });
        Ok(RestartState { path, task })
    }

    /// At shutdown: keep the file (the next kbgp is a restart) or remove it.
    pub fn finish(self, keep: bool) {
        self.task.abort();
        let r = if keep { touch(&self.path) } else { fs::remove_file(&self.path) };
        if let Err(e) = r {
            warn!(path = %self.path.display(), "restart state file: {e}");
        }
    }
}

fn touch(p: &Path) -> io::Result<()> {
    fs::File::options().write(true).open(p)?.set_modified(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_left_behind_says_how_long_ago_and_a_withdrawing_stop_removes_it() {
        let dir = std::env::temp_dir().join(format!("kbgp-restart-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(previous(&dir), None, "first start");
        let s = RestartState::start(&dir).unwrap();
        assert!(previous(&dir).unwrap() < Duration::from_secs(5));
        s.finish(true);
        assert!(previous(&dir).is_some(), "kept: the next start is a restart");
        RestartState::start(&dir).unwrap().finish(false);
        assert_eq!(previous(&dir), None, "withdrawn: the next start is fresh");
        let _ = fs::remove_dir_all(&dir);
    }
}
