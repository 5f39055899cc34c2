//! The domain, pure: what Flagger's objects say, what weir records, what it writes, and the
//! planner that decides every step. Nothing here does I/O or reads a clock; a guard test
//! keeps it so.

pub mod alert;
pub mod app;
pub mod cluster;
pub mod control;
pub mod duration;
pub mod events;
pub mod hook;
pub mod join;
pub mod lease;
pub mod located;
pub mod names;
pub mod plan;
pub mod positions;
pub mod query;
pub mod record;
pub mod remote;
pub mod secret;
pub mod spec;
pub mod text;
pub mod yaml;
