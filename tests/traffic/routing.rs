//! Routing: what one revision of the repository says about an app, reduced to the tags its
//! two workloads run and the weights weir's VirtualService gives them.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::git::{normalise_dir, Repo};
use crate::yaml::{deployment_tag, first_resource, kustomization_tag, virtualservice_weights};

/// The files to read for one app.
pub struct Target {
    pub app: String,
    pub app_dir: String,
    pub weir_dir: String,
}

/// The routing committed at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// Tag of the app's own Deployment (the canary target, named `<app>`).
    canary_tag: Option<String>,
    /// Tag of weir's `<app>-primary` Deployment.
    primary_tag: Option<String>,
    /// `(primary, canary)` weights from weir's VirtualService; `None` until weir wrote one.
    weights: Option<(u32, u32)>,
    /// The same for the first route with `match` conditions, when there is one.
    matched: Option<(u32, u32)>,
}

/// Index of each workload in the per-workload arrays.
pub const PRIMARY: usize = 0;
pub const CANARY: usize = 1;

impl Routing {
    /// Fraction of the traffic each workload receives, `[primary, canary]`, when
    /// `matched_share` of the requests match the first `match` route.
    pub fn shares(&self, matched_share: f64) -> [f64; 2] {
        let split = |weights: (u32, u32)| match weights {
            (0, 0) => [1.0, 0.0],
            (p, c) => {
                let total = f64::from(p + c);
                [f64::from(p) / total, f64::from(c) / total]
            }
        };
        match (self.weights, self.matched) {
            // Before weir, the mesh sends everything to the app's own Deployment.
            (None, _) => [0.0, 1.0],
            (Some(default), None) => split(default),
            (Some(default), Some(matched)) => {
                let (d, m) = (split(default), split(matched));
                let mix = |i: usize| (1.0 - matched_share) * d[i] + matched_share * m[i];
                [mix(PRIMARY), mix(CANARY)]
            }
        }
    }

    /// The tag each workload runs, `[primary, canary]`.
    pub fn workload_tags(&self) -> [Option<String>; 2] {
        [self.primary_tag.clone(), self.canary_tag.clone()]
    }

    /// The `/state` view. An uninitialised app is shown as its only workload being the primary.
    pub fn view(&self) -> StateView<'_> {
        match self.weights {
            None => StateView {
                primary_tag: self.canary_tag.as_deref(),
                canary_tag: self.canary_tag.as_deref(),
                primary_weight: 100,
                canary_weight: 0,
                initialised: false,
            },
            Some((primary_weight, canary_weight)) => StateView {
                primary_tag: self.primary_tag.as_deref(),
                canary_tag: self.canary_tag.as_deref(),
                primary_weight,
                canary_weight,
                initialised: true,
            },
        }
    }

    pub fn describe(&self) -> String {
        let tag = |t: &Option<String>| t.clone().unwrap_or_else(|| "?".to_owned());
        match self.weights {
            None => format!(
                "not initialised by weir: all traffic to canary workload, tag {}",
                tag(&self.canary_tag)
            ),
            Some((p, c)) => format!(
                "primary {} weight {p}, canary {} weight {c}",
                tag(&self.primary_tag),
                tag(&self.canary_tag)
            ),
        }
    }
}

/// The body of `GET /state`.
#[derive(Serialize)]
pub struct StateView<'a> {
    primary_tag: Option<&'a str>,
    canary_tag: Option<&'a str>,
    primary_weight: u32,
    canary_weight: u32,
    initialised: bool,
}

/// The routing committed at `commit`.
pub fn read_routing(repo: &Repo, commit: &str, target: &Target) -> Result<Routing> {
    let kustomization = format!("{}/kustomization.yaml", target.app_dir);
    let virtualservice = format!("{}/virtualservice.yaml", target.weir_dir);
    let mut canary_tag = match repo.read(commit, &kustomization)? {
        Some(src) => kustomization_tag(&src).with_context(|| kustomization.clone())?,
        None => None,
    };
    if canary_tag.is_none() {
        canary_tag = find_deployment_tag(repo, commit, &target.app_dir, &target.app)?;
    }
    let primary_tag = match primary_source(repo, commit, &target.weir_dir)? {
        Some(dir) => {
            let tag = match repo.read(commit, &format!("{dir}/kustomization.yaml"))? {
                Some(k) => kustomization_tag(&k)?,
                None => None,
            };
            match tag {
                Some(t) => Some(t),
                None => find_deployment_tag(repo, commit, &dir, &target.app)?,
            }
        }
        None => None,
    };
    let (weights, matched) = match repo.read(commit, &virtualservice)? {
        Some(src) => {
            let w = virtualservice_weights(&src, &target.app).with_context(|| virtualservice)?;
            (Some(w.default), w.matched)
        }
        None => (None, None),
    };
    Ok(Routing {
        canary_tag,
        primary_tag,
        weights,
        matched,
    })
}

/// The folder of the app's source that weir carries under `primary/` (the first resource of
/// `primary/kustomization.yaml`), when weir wrote one.
pub fn primary_source(repo: &Repo, commit: &str, weir_dir: &str) -> Result<Option<String>> {
    let file = format!("{weir_dir}/primary/kustomization.yaml");
    let Some(src) = repo.read(commit, &file)? else {
        return Ok(None);
    };
    Ok(first_resource(&src)
        .with_context(|| file.clone())?
        .map(|source| format!("{weir_dir}/primary/{}", normalise_dir(&source))))
}

/// The tag of the Deployment `app` in any YAML file of the app folder, for apps whose
/// `kustomization.yaml` sets no `images:` tag.
fn find_deployment_tag(repo: &Repo, commit: &str, dir: &str, app: &str) -> Result<Option<String>> {
    for path in repo.list_dir(commit, dir)? {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        if let Some(src) = repo.read(commit, &path)? {
            // Files that are not Kubernetes YAML are not ours to judge; skip them.
            if let Ok(Some(tag)) = deployment_tag(&src, app) {
                return Ok(Some(tag));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_requests_follow_the_match_route() {
        let routing = Routing {
            weights: Some((100, 0)),
            matched: Some((0, 100)),
            ..Routing::default()
        };
        assert_eq!(routing.shares(0.0), [1.0, 0.0]);
        assert_eq!(routing.shares(0.25), [0.75, 0.25]);
        let plain = Routing {
            weights: Some((90, 10)),
            ..Routing::default()
        };
        assert_eq!(plain.shares(0.5), [0.9, 0.1]);
    }

    #[test]
    fn uninitialised_app_sends_everything_to_the_app_workload() {
        let routing = Routing {
            canary_tag: Some("6.1.0".into()),
            ..Routing::default()
        };
        assert_eq!(routing.shares(0.5), [0.0, 1.0]);
        let json = serde_json::to_string(&routing.view()).unwrap();
        assert_eq!(
            json,
            r#"{"primary_tag":"6.1.0","canary_tag":"6.1.0","primary_weight":100,"canary_weight":0,"initialised":false}"#
        );
    }
}
