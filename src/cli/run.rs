//! `weir run`: ticks until SIGTERM or SIGINT, one loop per repository (`--repo`, or each entry
//! of `--repos`; the loop is `engine::serve`), each as the elected leader of its own Lease
//! when `--leader-elect`, and with `--listen`, serves the metrics, health and the inbound
//! webhooks of all of them (`adapters::http_server`).

use super::args::{LeaderArgs, RunArgs};
use super::repos::{self, Served};
use super::wire::{engine, leader, publisher};
use super::{config, OK};
use crate::adapters::http_server;
use crate::core::secret::Secret;
use crate::engine::lease::Elector;
use crate::engine::metrics::{Metrics, RepoMetrics};
use crate::engine::serve::{self, Stop};
use crate::engine::Engine;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tracing::{error, info, info_span, Instrument};

/// Runs `weir run`.
pub(crate) async fn command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunArgs {
        repo,
        repos,
        every,
        listen,
        github_webhook_secret,
        flux_webhook_secret,
        leader: leader_args,
    } = args;
    let every = config::duration("every", &every)?;
    let served = match &repos {
        Some(file) => repos::load(file, &repo)?,
        None if repo.repo.is_empty() => anyhow::bail!(
            "no repository: give --repo (WEIR_REPO), or a file listing several with --repos (WEIR_REPOS)"
        ),
        None => vec![Served::single(repo, leader_args.lease_name.clone())],
    };
    let metrics = Arc::new(Metrics::new());
    let loops: Vec<http_server::Loop> = served
        .iter()
        .map(|s| http_server::Loop {
            repo: s.args.repo.clone(),
            branch: s.args.branch.clone(),
            wake: Arc::new(Notify::new()),
        })
        .collect();
    let secret = |s: Option<String>| s.filter(|s| !s.is_empty()).map(Secret::new);
    let hooks = (secret(github_webhook_secret), secret(flux_webhook_secret));
    let stop = serve::on_signals()?;
    listen_if_asked(listen.as_deref(), hooks, &metrics, loops.clone()).await?;
    let wired = wire_all(served, loops, &leader_args, &metrics).await?;
    run_all(wired, every, stop).await?;
    Ok(ExitCode::from(OK))
}

/// Wires every repository before any ticks: one that cannot be wired stops the start.
async fn wire_all(
    served: Vec<Served>,
    loops: Vec<http_server::Loop>,
    leader_args: &LeaderArgs,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<RepoLoop>> {
    let several = served.len() > 1;
    let mut wired = Vec::new();
    for (one, hook) in served.into_iter().zip(loops) {
        let label = one.label();
        let repo = RepoLoop::wire(one, leader_args, metrics, hook.wake).await;
        // With several, an error says which repository it is about.
        wired.push(repo.map_err(|e| match several {
            true => anyhow::anyhow!("repository {} ({}): {e:#}", label.0, label.1),
            false => e,
        })?);
    }
    Ok(wired)
}

/// Runs every loop until `stop`. A loop that panicked ends the process (the others with
/// it, their Leases then expiring), so that it is restarted rather than serving fewer
/// repositories.
async fn run_all(wired: Vec<RepoLoop>, every: Duration, stop: Stop) -> anyhow::Result<()> {
    let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel();
    let count = wired.len();
    for (i, one) in wired.into_iter().enumerate() {
        one.start(i, every, stop.clone(), ended.clone())?;
    }
    for _ in 0..count {
        if let Some(Err(repository)) = endings.recv().await {
            anyhow::bail!("the loop of {repository} stopped on a panic (above); stopping every loop so that weir is restarted");
        }
    }
    Ok(())
}

/// Serves /metrics, /healthz, /readyz and the webhooks when `--listen` is set; bound before
/// the first tick, so a taken port fails at once.
async fn listen_if_asked(
    listen: Option<&str>,
    (github_secret, flux_secret): (Option<Secret>, Option<Secret>),
    metrics: &Arc<Metrics>,
    loops: Vec<http_server::Loop>,
) -> anyhow::Result<()> {
    let Some(addr) = listen else {
        if github_secret.is_some() || flux_secret.is_some() {
            anyhow::bail!("a webhook secret is set but --listen (WEIR_LISTEN) is not: weir would serve no webhook; set --listen, e.g. 0.0.0.0:9797")
        }
        return Ok(());
    };
    let listener = http_server::bind(addr).await?;
    info!(
        addr = %listener.local_addr()?,
        github_hook = github_secret.is_some(),
        flux_hook = flux_secret.is_some(),
        "serving /metrics, /healthz, /readyz"
    );
    let served = http_server::Config {
        exposition: metrics.clone(),
        loops,
        github_secret,
        flux_secret,
    };
    tokio::spawn(async move {
        if let Err(e) = http_server::serve(listener, served).await {
            error!("the HTTP server stopped: {e}");
        }
    });
    Ok(())
}

/// One repository's loop: its engine, its Lease, its wake and its series.
struct RepoLoop {
    engine: Engine,
    elector: Option<Arc<Elector>>,
    wake: Arc<Notify>,
    metrics: RepoMetrics,
    label: (String, String),
}

impl RepoLoop {
    async fn wire(
        served: Served,
        leader_args: &LeaderArgs,
        metrics: &Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> anyhow::Result<RepoLoop> {
        let label = served.label();
        let args = &served.args;
        let engine = engine(args, publisher(args)?).await?;
        let elector = match leader_args.leader_elect {
            true => Some(leader(leader_args, args, &served.lease_name).await?),
            false => None,
        };
        let engine = match &elector {
            Some(elector) => engine.with_leader(elector.clone()),
            None => engine,
        };
        Ok(RepoLoop {
            engine,
            elector,
            wake,
            metrics: metrics.repository(&args.repo, &args.branch),
            label,
        })
    }

    /// Runs the loop on a thread of its own, with its own runtime: a tick's Git calls block
    /// their thread (libgit2 is synchronous), and must hold up neither the other
    /// repositories, nor the HTTP server, nor the Lease renewals, which stay on the runtime
    /// that calls this. `ended` hears when the loop has ended: `Err` with the repository's
    /// name when it panicked.
    fn start(
        self,
        i: usize,
        every: Duration,
        stop: Stop,
        ended: UnboundedSender<Result<(), String>>,
    ) -> anyhow::Result<()> {
        let main = tokio::runtime::Handle::current();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let repository = format!("{} ({})", self.label.0, self.label.1);
        std::thread::Builder::new()
            .name(format!("weir-repo-{i}"))
            .spawn(move || {
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    runtime.block_on(self.run(every, stop, &main))
                }));
                let _ = ended.send(ran.map_err(|_| repository));
            })?;
        Ok(())
    }

    /// Ticks until `stop`, then gives the Lease up, so that a standby takes over at once
    /// rather than after the lease expires.
    async fn run(mut self, every: Duration, stop: Stop, main: &tokio::runtime::Handle) {
        let span = info_span!("repo", repo = %self.label.0, branch = %self.label.1);
        async move {
            let renewing = self.elector.as_ref().map(|e| e.clone().spawn(main));
            serve::run(&mut self.engine, every, &self.wake, &self.metrics, stop).await;
            if let (Some(elector), Some(renewing)) = (self.elector, renewing) {
                renewing.abort();
                elector.release().await;
            }
        }
        .instrument(span)
        .await
    }
}
