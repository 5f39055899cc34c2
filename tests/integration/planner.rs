//! The planner: table cases and property tests, no I/O.
