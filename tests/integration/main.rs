//! weir's integration tests: one binary, one module per capability, real Git remotes, a real
//! Prometheus and `kubectl kustomize`.

mod cli;
mod invalid;
mod planner;
mod race;
mod restart;
mod rollout;
mod support;
