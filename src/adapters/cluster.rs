//! Cluster views. Without a cluster, Git alone says what is applied.

use crate::core::app::AppRef;
use crate::core::cluster::Applied;
use crate::ports::{BoxFuture, ClusterView};
use crate::repo::objects::ObjectId;

/// The cluster view without a cluster: a commit counts as applied once it is on the branch,
/// and a step becomes due when its interval has passed since the commit that made the
/// previous one.
#[derive(Debug, Default, Clone, Copy)]
pub struct GitOnly;

impl ClusterView for GitOnly {
    fn applied<'a>(&'a self, _app: &'a AppRef, _commit: ObjectId) -> BoxFuture<'a, Applied> {
        Box::pin(async { Applied::Yes })
    }
}
