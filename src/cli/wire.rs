//! The one place that wires the real adapters into the engine: the config repository, the
//! publisher of the chosen mode, Prometheus, the webhook client, the notifiers and the
//! secrets.

use super::args::{ClusterMode, LeaderArgs, RepoArgs};
use super::config;
use crate::adapters::clock::SystemClock;
use crate::adapters::git::Git2Repo;
use crate::adapters::publish::DirectCommit;
use crate::engine::{Engine, Ports};
use crate::ports::{ClusterView, Publisher, Secrets};
use std::sync::Arc;

/// Wires the real adapters.
pub(crate) async fn engine(
    args: &RepoArgs,
    publisher: Box<dyn Publisher>,
) -> anyhow::Result<Engine> {
    let repo = Git2Repo::open(config::git(args)?)?;
    let metrics = config::prometheus(&args.prometheus)?;
    let templates = config::templates(args)?;
    let settings = config::engine(args)?;
    let ports = Ports {
        repo: Box::new(repo),
        publisher,
        metrics: Arc::new(metrics),
        clock: Arc::new(SystemClock),
        notifier: notifier(args)?,
        hooks: Arc::new(
            crate::adapters::hooks::HttpHooks::new(crate::adapters::hooks::HookSettings::default())
                .map_err(anyhow::Error::msg)?
                .with_aliases(
                    crate::adapters::hooks::WebhookAliases::parse(&args.webhook_aliases)
                        .map_err(anyhow::Error::msg)?,
                ),
        ),
        secrets: args.secrets_dir.as_ref().map(|dir| {
            Arc::new(crate::adapters::secrets::MountedSecrets::new(dir)) as Arc<dyn Secrets>
        }),
        cluster: cluster(args).await?,
    };
    Ok(Engine::new(ports, templates, settings))
}

/// The cluster view of `--cluster`: none, the Kubernetes API, or Flux's commit statuses on
/// GitHub.
pub(crate) async fn cluster(args: &RepoArgs) -> anyhow::Result<Option<Arc<dyn ClusterView>>> {
    match args.cluster {
        ClusterMode::None => Ok(None),
        ClusterMode::Kube => {
            let view = crate::adapters::cluster::KubeView::connect(args.kubeconfig.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("--cluster kube: {e}"))?;
            Ok(Some(Arc::new(view)))
        }
        ClusterMode::Github => {
            let view = crate::adapters::github::applied::CommitStatusView::new(
                github(args, "--cluster github")?,
                &args.flux_kustomization,
            )
            .map_err(|e| anyhow::anyhow!("--flux-kustomization: {e}"))?;
            Ok(Some(Arc::new(view)))
        }
    }
}

/// The elector of `--leader-elect` on the Lease `name`: its namespace, the identity and
/// the timings from the flags or their defaults.
pub(crate) async fn leader(
    args: &LeaderArgs,
    repo: &RepoArgs,
    name: &str,
) -> anyhow::Result<Arc<crate::engine::lease::Elector>> {
    let timings = crate::core::lease::Timings {
        lease_duration: config::duration("lease-duration", &args.lease_duration)?,
        renew_deadline: config::duration("renew-deadline", &args.renew_deadline)?,
        retry_period: config::duration("retry-period", &args.retry_period)?,
    }
    .validate()
    .map_err(anyhow::Error::msg)?;
    let namespace = args.lease_namespace.clone().or_else(|| {
        std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
    });
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let store = crate::adapters::lease::KubeLease::connect(
        repo.kubeconfig.as_deref(),
        namespace.as_deref(),
        name,
    )
    .await
    .map_err(|e| anyhow::anyhow!("--leader-elect: {e}"))?;
    tracing::info!(identity, lease = %crate::ports::LeaseStore::describe(&store), "leader election on");
    Ok(Arc::new(crate::engine::lease::Elector::new(
        Arc::new(store),
        identity,
        timings,
        Arc::new(SystemClock),
    )))
}

/// The machine's name, for a default identity (`HOSTNAME`, else `/etc/hostname`).
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".to_string())
}

/// The alert providers, and GitHub when asked to report steps there.
pub(crate) fn notifier(args: &RepoArgs) -> anyhow::Result<Arc<dyn crate::ports::Notifier>> {
    let alerts = Arc::new(
        crate::adapters::alerts::HttpNotifier::new(
            crate::adapters::alerts::NotifierSettings::default(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    if !args.github_statuses {
        return Ok(alerts);
    }
    let github = github(args, "--github-statuses")?;
    let reporter = crate::adapters::github::report::GitHubReporter::new(github, &args.branch);
    Ok(Arc::new(crate::adapters::alerts::Fanout(vec![
        alerts,
        Arc::new(reporter),
    ])))
}

/// The GitHub API client for the config repository (`why` names the flag that needs it).
pub(crate) fn github(
    args: &RepoArgs,
    why: &str,
) -> anyhow::Result<Arc<dyn crate::adapters::github::GitHub>> {
    let token = args
        .github_token
        .as_deref()
        .or(args.git_token.as_deref())
        .ok_or_else(|| {
            anyhow::anyhow!("{why} needs --github-token (WEIR_GITHUB_TOKEN) or --git-token")
        })?;
    let repo = match args.github_repository.as_deref() {
        Some(full) => crate::adapters::github::RepoName::from_full_name(full)?,
        None => crate::adapters::github::RepoName::from_remote_url(&args.repo)?,
    };
    let github = crate::adapters::github::rest::RestGitHub::new(
        repo,
        &crate::core::secret::Secret::new(token),
        crate::adapters::github::rest::RestSettings {
            base_url: args.github_api.clone(),
            ..Default::default()
        },
    )?;
    Ok(Arc::new(github))
}

/// The publisher of `--mode`.
pub(crate) fn publisher(args: &RepoArgs) -> anyhow::Result<Box<dyn Publisher>> {
    match args.mode {
        crate::cli::args::Mode::Commit => Ok(Box::new(DirectCommit {
            prefix: args.message_prefix.clone(),
        })),
        crate::cli::args::Mode::Pr => {
            let review = crate::core::spec::canary::review_phases(&args.pr_review.join(",")).map_err(|bad| {
                anyhow::anyhow!("--pr-review `{}`: not a phase (Progressing, WaitingPromotion, Promoting, Finalising, Succeeded, Failed), or `none`", bad.0)
            })?;
            Ok(Box::new(
                crate::adapters::publish::pull_request::PullRequests::new(
                    github(args, "--mode pr")?,
                    crate::adapters::publish::pull_request::PrSettings {
                        base: args.branch.clone(),
                        prefix: args.message_prefix.clone(),
                        review,
                        ..Default::default()
                    },
                ),
            ))
        }
    }
}
