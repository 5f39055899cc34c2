//! `git daemon` for the benchmarks: a Git host on loopback, so that weir fetches and pushes
//! over the network as it would in production, and the host does the server's work.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `git daemon` serving a folder of bare repositories on a free loopback port, push enabled;
/// killed on drop.
pub struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    pub fn start(root: &Path) -> Daemon {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // git-daemon itself, not `git daemon`, which would leave it running on kill.
            let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
            let exec_path = String::from_utf8(exec_path.stdout).unwrap();
            let mut child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
                .args(["--reuseaddr", "--export-all", "--enable=receive-pack"])
                .arg(format!("--base-path={}", root.display()))
                .args(["--listen=127.0.0.1", &format!("--port={port}")])
                .arg(root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Daemon { child, port };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
