//! A `weir run` process of the real binary, as a replica in a cluster runs it: named (its
//! `--identity` and commit prefix are the test's to set), its stderr in a file the test reads,
//! killed when dropped. Its environment carries none of the runner's `WEIR_*` credentials or
//! the pod variables, so only what the test passes counts.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// One `weir run` process; killed when dropped.
pub struct Replica {
    pub name: String,
    pub child: Child,
    log: PathBuf,
}

impl Replica {
    /// Starts `weir run ARGS` with its log in `dir/replica-NAME/stderr`.
    pub fn run<I, S>(name: &str, dir: &Path, args: I) -> Replica
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let home = dir.join(format!("replica-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        let log = home.join("stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.arg("run");
        for arg in args {
            command.arg(arg.into());
        }
        for var in [
            "WEIR_GIT_TOKEN",
            "WEIR_PROMETHEUS",
            "WEIR_REPO",
            "WEIR_REPOS",
            "WEIR_ALERT_URL",
            "POD_NAME",
            "POD_NAMESPACE",
        ] {
            command.env_remove(var);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Its cache folder: `dir/replica-NAME/cache`.
    pub fn cache(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("replica-{name}")).join("cache")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends it a signal (`-TERM`, `-INT`...).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Kills it at once (SIGKILL: no chance to give a Lease up or finish a send).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for it to end, at most `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let child = &mut self.child;
        super::wait::poll(deadline, || child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("{} did not stop", self.name))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags every elected test replica runs with: quick ticks and Lease timings, debug logs,
/// its identity and message prefix, the stand-in's kubeconfig and its own cache folder.
pub fn elected_args(
    name: &str,
    dir: &Path,
    kubeconfig: &Path,
    lease_duration: &str,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "--min-interval",
        "1s",
        "--every",
        "300ms",
        "--log",
        "weir=debug",
        "--leader-elect",
        "--identity",
        name,
        "--lease-duration",
        lease_duration,
        "--renew-deadline",
        "2s",
        "--retry-period",
        "500ms",
        "--message-prefix",
        &format!("[{name}] "),
    ]
    .map(std::ffi::OsString::from)
    .to_vec();
    args.extend([std::ffi::OsString::from("--kubeconfig"), kubeconfig.into()]);
    args.extend([
        std::ffi::OsString::from("--cache"),
        Replica::cache(dir, name).into(),
    ]);
    args
}
