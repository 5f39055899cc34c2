//! What the cluster view says about a step: the value the cluster-view port carries.

/// Whether the cluster runs what a commit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The commit is applied and the workloads are ready.
    Yes,
    /// Not yet, and why.
    NotYet(String),
}
