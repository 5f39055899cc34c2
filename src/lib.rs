//! weir: Istio canary releases through Git.
//!
//! The planner (`plan`) decides; everything else gathers its inputs or carries out its
//! decisions, through the ports (`ports`): `source`, `spec`, `app` and `rules` read the
//! repository, `prometheus` and `hooks` run the gates, `render` and `state` produce the
//! folder weir owns (`tree` describes it), `git` and `publish` write it, `events` tells what
//! moved, `reconcile` runs one tick, `serve` loops, `commands` wires the adapters for the CLI.

pub mod actions;
pub mod alerts;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod duration;
pub mod events;
pub mod fakes;
pub mod git;
pub mod github;
pub mod hooks;
pub mod plan;
pub mod ports;
pub mod preview;
pub mod prometheus;
pub mod publish;
pub mod pull_request;
pub mod reconcile;
pub mod render;
pub mod rules;
pub mod secret;
pub mod serve;
pub mod source;
pub mod spec;
pub mod state;
pub mod tls;
pub mod tree;
pub mod validate;
pub mod yaml;
pub mod yaml_edit;
