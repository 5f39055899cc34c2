//! Shared test fixtures: real Git remotes, a real Prometheus, the traffic simulator, a
//! Kubernetes API stand-in, and a Flux-like `kubectl kustomize` build of any commit.

pub mod faults;
pub mod flux;
pub mod git_daemon;
pub mod git_http;
pub mod github;
pub mod http;
pub mod kube_api;
pub mod loadtester;
pub mod prometheus;
pub mod racing;
pub mod receiver;
pub mod replica;
pub mod repo;
pub mod sshd;
pub mod traffic;
pub mod wait;

/// A port on `host` free right now (bound and released: another process may take it first).
pub fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}
