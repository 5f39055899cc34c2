//! weir: Istio canary releases through Git.
//!
//! The planner (`plan`) decides; everything else gathers its inputs or carries out its
//! decisions: `source`, `spec` and `app` read the repository, `prometheus` runs the gates,
//! `render` and `state` produce the files weir owns, `git` commits and pushes, `reconcile`
//! runs one tick, `serve` loops, `commands` wires it all for the CLI.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod duration;
pub mod git;
pub mod kustomize;
pub mod plan;
pub mod prometheus;
pub mod reconcile;
pub mod render;
pub mod secret;
pub mod serve;
pub mod source;
pub mod spec;
pub mod state;
pub mod tls;
pub mod yaml_edit;
