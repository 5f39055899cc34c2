//! Runs the `weir-traffic` simulator from integration tests.
//!
//! The simulator follows the routing committed to a config repository and serves Istio-style
//! metrics, and the Kubernetes API of a cluster where Flux applies that repository (see
//! `tests/traffic/main.rs`). This module starts it on a free port, learns the port from a port
//! file (with a deadline, no fixed sleeps) and kills it when dropped.

// Each test uses the helpers it needs; the others are not dead, just unused there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::prometheus::http_get;

const PORT_DEADLINE: Duration = Duration::from_secs(10);

/// A running `weir-traffic`, killed on drop.
pub struct Traffic {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Traffic {
    /// The simulator for the fixture's backend (`prod/backend` in `apps/backend`, branch
    /// `main` of `git_dir`), answering with errors for `bad_tags`.
    pub fn backend(git_dir: &Path, bad_tags: &[&str], extra: &[&str]) -> Traffic {
        Traffic::start(
            env!("CARGO_BIN_EXE_weir-traffic"),
            git_dir,
            "main",
            "backend",
            "prod",
            "apps/backend",
            "apps/backend.weir",
            bad_tags,
            extra,
        )
    }

    /// Starts `bin` (tests pass `env!("CARGO_BIN_EXE_weir-traffic")`) following `branch` of
    /// `git_dir`, and waits up to 10 s for it to listen. Requests to workloads running one of
    /// `bad_tags` fail 30% of the time; `extra` are more of the simulator's flags, e.g.
    /// `--matched-share 0.2`.
    // The arguments mirror the simulator's CLI one to one.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        bin: &str,
        git_dir: &Path,
        branch: &str,
        app: &str,
        namespace: &str,
        app_dir: &str,
        weir_dir: &str,
        bad_tags: &[&str],
        extra: &[&str],
    ) -> Traffic {
        let dir = tempfile::tempdir().expect("creating a temp dir for weir-traffic");
        let port_file = dir.path().join("port");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("weir-traffic.log"))
            .expect("creating weir-traffic.log");
        let mut cmd = Command::new(bin);
        cmd.arg("--git-dir")
            .arg(git_dir)
            .args(["--branch", branch, "--app", app, "--namespace", namespace])
            .args(["--app-dir", app_dir, "--weir-dir", weir_dir])
            .args(["--listen", "127.0.0.1:0"])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--kubeconfig-file")
            .arg(&kubeconfig);
        if !bad_tags.is_empty() {
            cmd.arg("--bad-tags").arg(bad_tags.join(","));
        }
        cmd.args(extra);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));

        // The simulator writes the file atomically: once it exists, it is complete. A dead
        // simulator never will, so its exit ends the wait at once.
        let outcome = super::wait::poll(PORT_DEADLINE, || {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                return Some(Ok(text.trim().parse::<u16>().unwrap_or_else(|_| {
                    panic!("weir-traffic wrote a bad port file: {text:?}")
                })));
            }
            child.try_wait().ok().flatten().map(Err)
        });
        let port = match outcome {
            Some(Ok(port)) => port,
            exited => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "weir-traffic did not listen within {PORT_DEADLINE:?} (exit: {exited:?}); log:\n{}",
                    read_log(dir.path())
                );
            }
        };
        Traffic { child, port, dir }
    }

    /// `127.0.0.1:PORT`, as a Prometheus scrape target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A kubeconfig for the simulator's Kubernetes API (written before the port file, so it
    /// is there once the simulator listens).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The body of `GET /state`: one line of JSON with the tags and weights it follows.
    pub fn state(&self) -> String {
        match http_get(self.port, "/state") {
            Ok((200, body)) => body.trim().to_owned(),
            other => panic!(
                "GET /state from weir-traffic: {other:?}; log:\n{}",
                read_log(self.dir.path())
            ),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("weir-traffic.log"))
        .unwrap_or_else(|e| format!("(no log: {e})"))
}
