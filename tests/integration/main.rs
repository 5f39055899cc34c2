//! weir's integration tests: one binary, one module per capability, real Git remotes, a real
//! Prometheus and `kubectl kustomize`.

mod action;
mod alerts;
mod auth;
mod cache;
mod canary_replicas;
mod cli;
mod cluster_plan;
mod cluster_view;
mod corpus;
mod deploy;
mod executor;
mod github;
mod gitops_istio;
mod hostile;
mod invalid;
mod kube_stand_in;
mod layers;
mod leader;
mod outage;
mod plan_preview;
mod plan_strategies;
mod planner;
mod pr_mode;
mod primary;
mod race;
mod repair;
mod restart;
mod rollout;
mod snapshots;
mod ssh;
mod stand_ins;
mod strategies;
mod support;
