//! Flux's source and kustomize controllers, played: the branch head is applied `lag` after it
//! is first seen, as Flux applies a push some seconds after it lands. What the mesh routes
//! follows the applied commit, never the head.
//!
//! Heads that move faster than the lag are not all applied: each time, the newest head seen at
//! least `lag` ago is, and the ones before it are skipped, as Flux skips revisions that
//! arrive between two reconciliations.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::git::Repo;

/// Follows the branch and says which commit to apply when.
pub struct Flux {
    repo: Repo,
    lag: Duration,
    /// The last head seen.
    last_seen: Option<String>,
    /// Heads seen and not applied yet, oldest first, with when each was first seen.
    queue: VecDeque<(String, Instant)>,
    /// Error messages already printed, so a persistent problem is logged once.
    reported: HashSet<String>,
}

impl Flux {
    /// Follows `repo`'s branch, applying a new head `lag` after it is first seen.
    pub fn new(repo: Repo, lag: Duration) -> Flux {
        Flux {
            repo,
            lag,
            last_seen: None,
            queue: VecDeque::new(),
            reported: HashSet::new(),
        }
    }

    /// The repository followed.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The head as the simulator starts: the cluster ran it before, so it is applied at once.
    pub fn initial(&mut self) -> Option<String> {
        let head = self.head()?;
        self.last_seen = Some(head.clone());
        Some(head)
    }

    /// The commit to apply at `now`, if a head seen at least `lag` ago is not applied yet.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        if let Some(head) = self.head() {
            self.saw(head, now);
        }
        self.take_due(now)
    }

    /// Notes that the branch is at `head` at `now`.
    fn saw(&mut self, head: String, now: Instant) {
        if self.last_seen.as_ref() != Some(&head) {
            self.last_seen = Some(head.clone());
            self.queue.push_back((head, now));
        }
    }

    /// The newest head seen at least `lag` before `now`, dropping it and the older ones.
    fn take_due(&mut self, now: Instant) -> Option<String> {
        let newest_due = self
            .queue
            .iter()
            .rposition(|(_, seen)| now.saturating_duration_since(*seen) >= self.lag)?;
        self.queue
            .drain(..=newest_due)
            .next_back()
            .map(|(commit, _)| commit)
    }

    /// The branch head, or `None` (reported once) when it cannot be read.
    fn head(&mut self) -> Option<String> {
        match self.read_head() {
            Ok(head) => Some(head),
            Err(err) => {
                self.report(&format!("{err:#}"));
                None
            }
        }
    }

    fn read_head(&self) -> Result<String> {
        self.repo.head()?.with_context(|| {
            format!(
                "branch {} not found in {} (treating the app as not initialised)",
                self.repo.branch,
                self.repo.git_dir.display()
            )
        })
    }

    /// Prints `msg` on stderr unless it was printed before.
    pub fn report(&mut self, msg: &str) {
        if self.reported.insert(msg.to_string()) {
            eprintln!("weir-traffic: {msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flux(lag_ms: u64) -> Flux {
        Flux::new(
            Repo::open(std::path::Path::new("/nonexistent"), "main"),
            Duration::from_millis(lag_ms),
        )
    }

    #[test]
    fn a_head_is_applied_once_it_is_lag_old() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut f = flux(2000);
        f.saw("a".into(), at(0));
        // Seen again: still the same head, still the time it was first seen.
        f.saw("a".into(), at(1500));
        assert_eq!(f.take_due(at(1999)), None);
        assert_eq!(f.take_due(at(2000)).as_deref(), Some("a"));
        assert_eq!(f.take_due(at(5000)), None, "applied once");
    }

    #[test]
    fn heads_faster_than_the_lag_skip_to_the_newest_due() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut f = flux(2000);
        f.saw("a".into(), at(0));
        f.saw("b".into(), at(500));
        f.saw("c".into(), at(2400));
        assert_eq!(f.take_due(at(2600)).as_deref(), Some("b"));
        assert_eq!(f.take_due(at(4000)), None);
        assert_eq!(f.take_due(at(4400)).as_deref(), Some("c"));
    }

    #[test]
    fn without_a_lag_the_head_is_applied_at_once() {
        let t0 = Instant::now();
        let mut f = flux(0);
        f.saw("a".into(), t0);
        assert_eq!(f.take_due(t0).as_deref(), Some("a"));
    }
}
