//! Following the branch: the routing at the head, read again only when the head moves.

use std::collections::HashSet;

use anyhow::{bail, Context, Result};

use crate::git::Repo;
use crate::routing::{read_routing, Routing, Target};

/// Reads the routing from the branch head, only when the head moved.
pub struct Follower {
    pub repo: Repo,
    pub target: Target,
    pub last_commit: Option<String>,
    /// Error messages already printed, so a persistent problem is logged once.
    pub reported: HashSet<String>,
}

impl Follower {
    /// Updates `routing` from the branch head; returns whether it changed.
    pub fn refresh(&mut self, routing: &mut Routing) -> bool {
        let next = match self.read() {
            Ok(Some(next)) => next,
            Ok(None) => return false,
            Err(err) => {
                let msg = format!("{err:#}");
                if self.reported.insert(msg.clone()) {
                    eprintln!("weir-traffic: {msg}");
                }
                return false;
            }
        };
        if next == *routing {
            return false;
        }
        eprintln!("weir-traffic: {}", next.describe());
        *routing = next;
        true
    }

    /// The routing at the head, or `None` when the head did not move since the last read.
    fn read(&mut self) -> Result<Option<Routing>> {
        let Some(commit) = self.repo.head()? else {
            self.last_commit = None;
            bail!(
                "branch {} not found in {} (treating the app as not initialised)",
                self.repo.branch,
                self.repo.git_dir.display()
            );
        };
        if self.last_commit.as_ref() == Some(&commit) {
            return Ok(None);
        }
        let routing = read_routing(&self.repo, &commit, &self.target)
            .with_context(|| format!("reading commit {commit}"))?;
        self.last_commit = Some(commit);
        Ok(Some(routing))
    }
}
