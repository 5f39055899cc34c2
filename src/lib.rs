//! weir: Istio canary releases through Git.
//!
//! # The house
//! The folders are the layers, and **code imports only downwards**:
//!
//! ```text
//! cli ──► engine ──► ports ──► repo ──► core
//!  │                   ▲
//!  └──► adapters ──────┘   (adapters implement ports; they may use repo and core)
//! test_support ──► anything   (compiled only for tests or with the test-support feature)
//! ```
//!
//! - [`core`]: the domain, pure: Flagger's spec, the rollout record and control file, events
//!   and the text weir writes, query templating, the names of weir's files, and the planner
//!   ([`core::plan`]), which makes every decision. No I/O crate, no `std::fs`, no `std::env`,
//!   no clock: time is an input.
//! - [`repo`]: config-repo trees without I/O: Git objects, finding specs, the kustomize-lite
//!   build of an app, rules across apps, rendering weir's folder and the primary.
//! - [`ports`]: one trait per I/O boundary; the values they carry live in `core` and `repo`.
//! - [`adapters`]: one room per boundary (git, disk, Prometheus, webhooks, alerts, GitHub, the
//!   publishers, the clock, the cluster view), each implementing its port.
//! - [`engine`]: one tick: gather, ask the planner, fetch evidence, execute, publish, tell.
//!   It carries out decisions and makes none.
//! - [`cli`]: arguments, configuration, output, one file per command; it wires the adapters.
//!
//! A test (`tests/integration/layers.rs`) reads every file and fails on an upward import,
//! an I/O import in `core` or `repo`, or an import cycle between files.

pub mod adapters;
pub mod cli;
pub mod core;
pub mod engine;
pub mod ports;
pub mod repo;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
