//! Leader election, applied: one process per repository writes. It reads the Lease through
//! its port, asks `core::lease` what to write, and writes it; it decides nothing itself.
//!
//! A background task renews (or tries to acquire) every retry period. Before each tick the
//! loop asks [`Elector::lead`], and before each push the engine asks
//! [`Elector::may_publish`]: both do a fresh round against the API first, so a Lease taken
//! by another process is seen before the next push, not a retry period later. A push starts
//! only with at least the margin of the lease left (`core::lease::may_publish`).

use crate::core::lease::{self, Action, LeaseError, LeaseRecord, Standing, Timings};
use crate::ports::{Clock, LeaseStore};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::Mutex;
use tracing::{debug, info, warn, Instrument};

/// Elects this process, or not, on one Lease.
pub struct Elector {
    store: Arc<dyn LeaseStore>,
    me: String,
    timings: Timings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The renewal time of the last write that made this process the holder.
    renewed: Option<DateTime<Utc>>,
    /// The Lease as last read or written.
    last: Option<LeaseRecord>,
    /// Whether the last round found this process leading, to log changes once.
    leading: bool,
}

impl Elector {
    /// An elector for identity `me` on `store`.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        me: impl Into<String>,
        timings: Timings,
        clock: Arc<dyn Clock>,
    ) -> Elector {
        Elector {
            store,
            me: me.into(),
            timings,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// The identity this process holds the Lease under.
    pub fn identity(&self) -> &str {
        &self.me
    }

    /// One round: read the Lease, decide, write. Returns where this process stands after it.
    pub async fn round(&self) -> Standing {
        let mut state = self.state.lock().await;
        // A round that cannot finish within the renew deadline counts as not renewed.
        let attempt =
            tokio::time::timeout(self.timings.renew_deadline, self.attempt(&mut state)).await;
        match attempt {
            Ok(Ok(Some(written))) => {
                state.renewed = written.renew_time;
                state.last = Some(written);
            }
            Ok(Ok(None)) => state.renewed = None,
            Ok(Err(LeaseError::Conflict)) => {
                debug!(lease = %self.store.describe(), "another process wrote the Lease first");
            }
            Ok(Err(LeaseError::Unavailable(why))) => {
                warn!(lease = %self.store.describe(), "cannot renew or acquire the Lease: {why}");
            }
            Err(_) => {
                warn!(lease = %self.store.describe(), timeout = ?self.timings.renew_deadline, "the Lease could not be read and written in time");
            }
        }
        let standing = lease::standing(state.renewed, self.clock.now(), self.timings);
        let leading = matches!(standing, Standing::Leading { .. });
        if leading != state.leading {
            state.leading = leading;
            match leading {
                true => {
                    info!(identity = %self.me, lease = %self.store.describe(), "leading: this process writes the repository")
                }
                false => {
                    let holder = state
                        .last
                        .as_ref()
                        .and_then(|l| l.holder())
                        .unwrap_or("nobody");
                    info!(identity = %self.me, holder, lease = %self.store.describe(), "not leading: another process writes the repository, or none can renew the Lease")
                }
            }
        }
        standing
    }

    /// Reads and writes once: the Lease written as holder, or `None` when another holds it.
    async fn attempt(&self, state: &mut State) -> Result<Option<LeaseRecord>, LeaseError> {
        let read = self.store.get().await?;
        state.last = read.clone();
        let now = self.clock.now();
        match lease::decide(read.as_ref(), &self.me, now, self.timings) {
            Action::Create(record) => self.store.create(&record).await.map(Some),
            Action::Take(record) | Action::Renew(record) => {
                self.store.update(&record).await.map(Some)
            }
            Action::Follow { holder, until } => {
                debug!(holder, until = %until, "the Lease is held");
                Ok(None)
            }
        }
    }

    /// Before a tick: a fresh round; `Err` names the holder when this process does not lead.
    pub async fn lead(&self) -> Result<(), String> {
        match self.round().await {
            Standing::Leading { .. } => Ok(()),
            Standing::Following => Err(self.who()),
        }
    }

    /// Before a push: a fresh round, then at least the margin of the lease must be left.
    pub async fn may_publish(&self) -> Result<(), String> {
        self.round().await;
        let renewed = self.state.lock().await.renewed;
        lease::may_publish(renewed, self.clock.now(), self.timings)
            .map(|_| ())
            .map_err(|why| format!("{}: {why}; {}", self.store.describe(), self.who()))
    }

    fn who(&self) -> String {
        match self
            .state
            .try_lock()
            .ok()
            .and_then(|s| s.last.as_ref().and_then(|l| l.holder().map(str::to_string)))
        {
            Some(holder) if holder != self.me => format!("{holder} holds it"),
            _ => "it could not be renewed".to_string(),
        }
    }

    /// Renews or tries to acquire every retry period on the runtime of `on`, until the task
    /// is aborted. Give it a runtime whose threads nothing blocks (not a repository's loop,
    /// whose Git calls block its thread), so that a long fetch never delays a renewal.
    pub fn spawn(self: Arc<Self>, on: &tokio::runtime::Handle) -> tokio::task::JoinHandle<()> {
        let renewing = async move {
            loop {
                self.round().await;
                tokio::time::sleep(self.timings.retry_period).await;
            }
        };
        // Its logs name the repository, as the loop's do.
        on.spawn(renewing.in_current_span())
    }

    /// Gives the Lease up (no holder), so that a standby takes it at once; nothing when this
    /// process does not hold it.
    pub async fn release(&self) {
        let mut state = self.state.lock().await;
        state.renewed = None;
        let release = async {
            let read = self.store.get().await?;
            match read.and_then(|l| lease::release(&l, &self.me, self.clock.now())) {
                Some(released) => self.store.update(&released).await.map(Some),
                None => Ok(None),
            }
        };
        match tokio::time::timeout(self.timings.retry_period, release).await {
            Ok(Ok(Some(_))) => info!(lease = %self.store.describe(), "released the Lease"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                warn!(lease = %self.store.describe(), "could not release the Lease ({e}); it expires on its own")
            }
            Err(_) => {
                warn!(lease = %self.store.describe(), "could not release the Lease in time; it expires on its own")
            }
        }
    }
}
