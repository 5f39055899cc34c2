//! A real `git daemon` serving the bare repositories under a folder over git:// on loopback,
//! pushes included, stopped on drop. Needs `git` on PATH.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `git daemon`, killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Serves `root` (base path and the one exported folder) with receive-pack enabled.
    pub fn start(root: &Path) -> GitDaemon {
        let port = super::free_port("127.0.0.1");
        // git-daemon itself: `git daemon` runs it as a child of its own, which killing `git`
        // would leave running after the test.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let mut child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", root.display()))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let listening = super::wait::poll(Duration::from_secs(15), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("git daemon exited: {status}");
            }
            TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then_some(())
        });
        assert!(listening.is_some(), "git daemon did not listen within 15s");
        GitDaemon { child, port }
    }

    /// The git:// URL of a repository under the root.
    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
