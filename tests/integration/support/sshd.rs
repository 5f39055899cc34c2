//! A real OpenSSH server (`/usr/sbin/sshd`, Debian's openssh-server) on a loopback address,
//! serving the bare repositories of a test over SSH with `git-upload-pack` and
//! `git-receive-pack`, stopped on drop. It accepts one client key; its own host key and a
//! Flux-style Git Secret folder (`identity`, `identity.pub`, `known_hosts`) are made with
//! `ssh-keygen`.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running sshd, killed on drop.
pub struct Sshd {
    child: Child,
    /// The loopback address it listens on.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The folder laid out as Flux's Git Secret for this server and its client key.
    pub secret: PathBuf,
    /// The user it lets in (the one running the tests).
    pub user: String,
    dir: PathBuf,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "weir-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 and a free port, with its files under `dir`.
    pub fn start(dir: &Path) -> Sshd {
        let port = super::free_port("127.0.0.1");
        Sshd::start_at(dir, "127.0.0.1", port)
    }

    /// Starts sshd on `host:port` (port 22 for scp-like URLs, which name no port).
    pub fn start_at(dir: &Path, host: &str, port: u16) -> Sshd {
        let dir = dir.join(format!("sshd-{host}-{port}"));
        let secret = dir.join("git-secret");
        std::fs::create_dir_all(&secret).unwrap();
        keygen(&dir.join("host_key"));
        keygen(&secret.join("identity"));
        std::fs::copy(secret.join("identity.pub"), dir.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        let name = match port {
            22 => host.to_string(),
            p => format!("[{host}]:{p}"),
        };
        std::fs::write(secret.join("known_hosts"), format!("{name} {kind} {key}\n")).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress {host}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel INFO\n",
                hk = dir.join("host_key").display(),
                ak = dir.join("authorized_keys").display(),
                pid = dir.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        // sshd wants its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("sshd.log")).unwrap(),
            ))
            .spawn()
            .expect("sshd starts (openssh-server)");
        let listening = super::wait::poll(Duration::from_secs(15), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            TcpStream::connect((host, port)).is_ok().then_some(Ok(()))
        });
        match listening {
            Some(Ok(())) => {}
            Some(Err(status)) => panic!(
                "sshd exited ({status}): {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            ),
            None => panic!("sshd did not listen within 15s"),
        }
        Sshd {
            child,
            host: host.to_string(),
            port,
            secret,
            user,
            dir,
        }
    }

    /// The `ssh://` URL of a repository at an absolute path.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@{}:{}{}",
            self.user,
            self.host,
            self.port,
            repo.display()
        )
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
