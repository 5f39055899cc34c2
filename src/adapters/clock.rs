//! The wall clock, the one adapter of the clock port.

use crate::ports::Clock;
use chrono::{DateTime, Utc};

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
