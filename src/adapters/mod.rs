//! One room per I/O boundary, each implementing its port (`crate::ports`). Adapters may use
//! `core` and `repo`; the engine never names them, only `cli` wires them.

pub mod alerts;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod git;
pub mod github;
pub mod hooks;
pub mod http_server;
pub mod lease;
pub mod prometheus;
pub mod publish;
pub mod secrets;
pub mod ssh;
pub mod tls;
