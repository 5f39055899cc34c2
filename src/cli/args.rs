//! Command-line definitions only: every flag has a `WEIR_*` variable (flag > env > default).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Istio canary releases through Git: Flagger's Canary spec, every step a commit.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "WEIR_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `weir=debug`.
    #[arg(long, env = "WEIR_LOG", default_value = "info", global = true)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// Report output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every Canary and MetricTemplate of a checkout; exits non-zero listing every error.
    Validate(ValidateArgs),
    /// Show what a change (a pull request) will roll out: its validation, and for every app
    /// whose source or Canary it changes, the steps, weights, gates and duration that follow.
    Plan(PlanArgs),
    /// Run one tick, then exit (`--dry-run`: show the commit as a diff, push nothing).
    Step(StepArgs),
    /// Tick until SIGTERM or Ctrl-C, finishing the tick in flight.
    Run(Box<RunArgs>),
    /// Show every app's phase, weights, failed checks, revision and next step.
    Status(StatusArgs),
    /// Open the confirm gates (confirm-rollout, confirm-traffic-increase, confirm-promotion)
    /// for the revision under analysis, by a commit to the app's control file.
    Approve(ControlArgs),
    /// Roll back the revision under analysis at the next step, by a commit.
    Abort(ControlArgs),
    /// Analyse the failed revision again, by a commit.
    Retry(ControlArgs),
    /// Take no step for the app until `weir resume`, by a commit.
    Pause(ControlArgs),
    /// Undo `weir pause`, by a commit.
    Resume(ControlArgs),
}

/// `weir approve|abort|retry|pause|resume`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The app: the Canary's name, or `namespace/name` when the name is not unique.
    pub app: String,
    /// The revision the request is about, as `weir status` shows it (default: the one under
    /// analysis, or the failed one for retry); a request for another revision is refused.
    #[arg(long)]
    pub revision: Option<String>,
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// `weir validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The checkout to check.
    #[arg(long, env = "WEIR_DIR", default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// How steps reach the branch.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// One commit per tick, pushed with a lease.
    Commit,
    /// One pull request per app, merged by weir.
    Pr,
}

/// How weir learns what the cluster runs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ClusterMode {
    /// Git only: a step counts as applied once it is committed (Flux may apply it later).
    None,
    /// The Kubernetes API, read-only: the Flux Kustomization's applied revision and the
    /// Deployments' readiness.
    Kube,
    /// The commit statuses Flux's notification-controller posts on GitHub: which commit the
    /// Kustomization applied and when; no pod readiness.
    Github,
}

/// `weir plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The checkout (a Git work tree; its history must hold the base commit).
    #[arg(long, env = "WEIR_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The commit the change is compared with (a pull request's base). Default: the
    /// `pull_request.base.sha` of `$GITHUB_EVENT_PATH`.
    #[arg(long, env = "WEIR_BASE")]
    pub base: Option<String>,
    /// The change's commit.
    #[arg(long, env = "WEIR_HEAD", default_value = "HEAD")]
    pub head: String,
    /// Also post the Markdown as a comment on the pull request of `$GITHUB_EVENT_PATH`,
    /// updating weir's earlier comment there instead of adding another.
    #[arg(long, env = "WEIR_PLAN_COMMENT")]
    pub comment: bool,
    /// Token for the comment (never printed).
    #[arg(long, env = "WEIR_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// The repository the pull request is in, `owner/name`.
    #[arg(long, env = "GITHUB_REPOSITORY")]
    pub github_repository: Option<String>,
    /// GitHub's REST API (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api: String,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// `weir step`.
#[derive(Debug, Args)]
pub struct StepArgs {
    /// Build the tick's commit and show it as a unified diff; push nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// Where specs are and what they may say.
#[derive(Debug, Args, Clone)]
pub struct SpecArgs {
    /// Folders (relative to the repository root) searched for Canary and MetricTemplate files.
    #[arg(long, env = "WEIR_ROOTS", value_delimiter = ',', default_value = ".")]
    pub roots: Vec<String>,
    /// Smallest analysis interval accepted.
    #[arg(long, env = "WEIR_MIN_INTERVAL", default_value = "10s")]
    pub min_interval: String,
}

/// Options of every command that talks to a repository.
#[derive(Debug, Args, Clone)]
pub struct RepoArgs {
    /// The config repository: a path, file://, git:// or https:// URL.
    #[arg(long, env = "WEIR_REPO")]
    pub repo: String,
    /// The branch weir reads and writes.
    #[arg(long, env = "WEIR_BRANCH", default_value = "main")]
    pub branch: String,
    /// Token for https remotes (never printed).
    #[arg(long, env = "WEIR_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<String>,
    /// For SSH remotes (`ssh://...`, `git@host:path`): a folder laid out as Flux's Git
    /// Secret, holding `identity` (the private key), `known_hosts` and, for a key with a
    /// passphrase, `password`. Mount the same Secret Flux uses.
    #[arg(long, env = "WEIR_GIT_SSH_DIR", conflicts_with_all = ["git_ssh_key", "git_known_hosts"])]
    pub git_ssh_dir: Option<PathBuf>,
    /// For SSH remotes: the private key file (instead of --git-ssh-dir).
    #[arg(long, env = "WEIR_GIT_SSH_KEY", requires = "git_known_hosts")]
    pub git_ssh_key: Option<PathBuf>,
    /// For SSH remotes: the known_hosts file whose keys weir accepts (instead of
    /// --git-ssh-dir). Every server key is checked.
    #[arg(long, env = "WEIR_GIT_KNOWN_HOSTS", requires = "git_ssh_key")]
    pub git_known_hosts: Option<PathBuf>,
    /// Folder of cached clones (default: $XDG_CACHE_HOME/weir or ~/.cache/weir).
    #[arg(long, env = "WEIR_CACHE")]
    pub cache: Option<PathBuf>,
    /// How steps reach the branch: `commit` pushes each step; `pr` opens one pull request
    /// per app (branch `weir/<namespace>/<name>`) and merges it, after an approving review at
    /// the phases of --pr-review.
    #[arg(long, env = "WEIR_MODE", value_enum, default_value = "commit")]
    pub mode: Mode,
    /// PR mode: steps into these phases wait for an approving review of their commit
    /// (comma-separated Flagger phases; `none` for none).
    #[arg(
        long,
        env = "WEIR_PR_REVIEW",
        value_delimiter = ',',
        default_value = "Promoting"
    )]
    pub pr_review: Vec<String>,
    /// Report every step on GitHub: a commit status on each commit weir makes and a
    /// Deployment per release whose statuses follow the phases.
    #[arg(long, env = "WEIR_GITHUB_STATUSES")]
    pub github_statuses: bool,
    /// Token for GitHub's API (never printed); default the --git-token.
    #[arg(
        long = "github-token",
        env = "WEIR_GITHUB_TOKEN",
        hide_env_values = true
    )]
    pub github_token: Option<String>,
    /// The repository on GitHub, `owner/name`; default read from --repo.
    #[arg(long = "github-repository", env = "GITHUB_REPOSITORY")]
    pub github_repository: Option<String>,
    /// GitHub's REST API (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(
        long = "github-api",
        env = "GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api: String,
    /// Commit author name.
    #[arg(long, env = "WEIR_AUTHOR_NAME", default_value = "weir")]
    pub author_name: String,
    /// Commit author email.
    #[arg(long, env = "WEIR_AUTHOR_EMAIL", default_value = "weir@localhost")]
    pub author_email: String,
    /// Committer name (default: the author's).
    #[arg(long, env = "WEIR_COMMITTER_NAME")]
    pub committer_name: Option<String>,
    /// Committer email (default: the author's).
    #[arg(long, env = "WEIR_COMMITTER_EMAIL")]
    pub committer_email: Option<String>,
    /// Prepended to every commit subject, e.g. `[weir] `.
    #[arg(long, env = "WEIR_MESSAGE_PREFIX", default_value = "")]
    pub message_prefix: String,
    /// Longest wait for the Git remote to connect or answer.
    #[arg(long, env = "WEIR_GIT_TIMEOUT", default_value = "30s")]
    pub git_timeout: String,
    /// Longest a tick may take; a tick past it is abandoned before it publishes.
    #[arg(long, env = "WEIR_TICK_DEADLINE", default_value = "5m")]
    pub tick_deadline: String,
    /// Push attempts per tick when the branch moves under weir.
    #[arg(long, env = "WEIR_PUSH_ATTEMPTS", default_value_t = 5)]
    pub push_attempts: u32,
    /// Folder of templates replacing the embedded ones (same file names).
    #[arg(long, env = "WEIR_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Commits searched for a rollout record that is missing at the head.
    #[arg(long, env = "WEIR_HISTORY_DEPTH", default_value_t = 200)]
    pub history_depth: usize,
    /// Where the Secrets that AlertProviders name are mounted: weir reads
    /// <dir>/<namespace>/<secret>/address (and token, proxy).
    #[arg(long, env = "WEIR_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Alerts of Canaries that name no AlertProvider go here (Flagger's global provider);
    /// a webhook URL, never printed.
    #[arg(long, env = "WEIR_ALERT_URL", hide_env_values = true)]
    pub alert_url: Option<String>,
    /// What the --alert-url receiver speaks: slack, msteams, discord, rocket, gchat, generic.
    #[arg(long, env = "WEIR_ALERT_TYPE", default_value = "slack")]
    pub alert_type: String,
    /// Slack, Discord or Rocket.Chat channel for --alert-url.
    #[arg(long, env = "WEIR_ALERT_CHANNEL")]
    pub alert_channel: Option<String>,
    /// The least severity sent to --alert-url: info, warn or error.
    #[arg(long, env = "WEIR_ALERT_SEVERITY", default_value = "info")]
    pub alert_severity: String,
    /// How weir learns that Flux applied a step and the pods are ready: `kube` reads the
    /// Flux Kustomization and the Deployments through the Kubernetes API (read-only); `github`
    /// reads the commit statuses Flux's notification-controller posts (applied or failed, no
    /// pod readiness); `none` counts a step as applied once committed, and shows
    /// `applied: unknown`.
    #[arg(long, env = "WEIR_CLUSTER", value_enum, default_value = "none")]
    pub cluster: ClusterMode,
    /// For --cluster github: the Flux Kustomization (its metadata.name) whose commit statuses
    /// (`kustomization/<name>/...`) say what was applied, for Canaries whose annotation
    /// weir.dev/kustomization names none.
    #[arg(long, env = "WEIR_FLUX_KUSTOMIZATION", default_value = "apps")]
    pub flux_kustomization: String,
    /// The kubeconfig for --cluster kube (default: the in-cluster service account, then
    /// KUBECONFIG and ~/.kube/config).
    #[arg(long, env = "WEIR_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// A webhook address Canaries name (e.g. the in-cluster `http://flagger-loadtester.prod/`)
    /// called at another from outside the cluster: `FROM=TO`, the rest of the path kept.
    /// Repeatable (env: comma-separated).
    #[arg(
        long = "webhook-alias",
        env = "WEIR_WEBHOOK_ALIASES",
        value_delimiter = ','
    )]
    pub webhook_aliases: Vec<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// How to reach Prometheus.
#[derive(Debug, Args, Clone)]
pub struct PrometheusArgs {
    /// Default Prometheus address (built-in metrics and templates without an address).
    #[arg(long = "prometheus", env = "WEIR_PROMETHEUS")]
    pub address: Option<String>,
    /// Bearer token (never printed).
    #[arg(
        long = "prometheus-token",
        env = "WEIR_PROMETHEUS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Basic auth user.
    #[arg(long = "prometheus-user", env = "WEIR_PROMETHEUS_USER")]
    pub user: Option<String>,
    /// Basic auth password (never printed).
    #[arg(
        long = "prometheus-password",
        env = "WEIR_PROMETHEUS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Extra header `Name: value`, repeatable (env: comma-separated).
    #[arg(
        long = "prometheus-header",
        env = "WEIR_PROMETHEUS_HEADERS",
        value_delimiter = ','
    )]
    pub headers: Vec<String>,
    /// An address MetricTemplates or Canaries name (e.g. the in-cluster
    /// `http://flagger-prometheus.istio-system:9090`) that stands for --prometheus: queries to
    /// it go to --prometheus with its credentials, without editing the templates. Repeatable
    /// (env: comma-separated).
    #[arg(
        long = "prometheus-alias",
        env = "WEIR_PROMETHEUS_ALIASES",
        value_delimiter = ','
    )]
    pub aliases: Vec<String>,
    /// Query timeout.
    #[arg(
        long = "prometheus-timeout",
        env = "WEIR_PROMETHEUS_TIMEOUT",
        default_value = "10s"
    )]
    pub timeout: String,
}

/// `weir run`.
#[derive(Debug, Args)]
#[command(mut_arg("repo", |a| a.required(false).default_value("")))]
pub struct RunArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A YAML file listing the repositories this process serves, each with its own tick loop
    /// and Lease (instead of --repo): `- repo: URL` entries, optionally with `branch`,
    /// `roots`, `cache` and `lease-name`; the flags give what an entry does not set.
    #[arg(long, env = "WEIR_REPOS", conflicts_with_all = ["repo", "lease_name"])]
    pub repos: Option<PathBuf>,
    /// Time between ticks.
    #[arg(long, env = "WEIR_EVERY", default_value = "10s")]
    pub every: String,
    /// Serve /metrics, /healthz, /readyz and the inbound webhooks on this address, e.g.
    /// `0.0.0.0:9797`. Without it, weir serves nothing.
    #[arg(long, env = "WEIR_LISTEN")]
    pub listen: Option<String>,
    /// Secret of the GitHub webhook (`push` events) at /hooks/github; without it the hook
    /// is not served.
    #[arg(long, env = "WEIR_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Secret of Flux notification-controller's `generic-hmac` provider at /hooks/flux;
    /// without it the hook is not served.
    #[arg(long, env = "WEIR_FLUX_WEBHOOK_SECRET", hide_env_values = true)]
    pub flux_webhook_secret: Option<String>,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election among replicas of `weir run` on one repository (a Kubernetes Lease).
#[derive(Debug, Args, Clone)]
pub struct LeaderArgs {
    /// Write only while holding a Lease, so that one of several replicas writes the repository.
    #[arg(long, env = "WEIR_LEADER_ELECT")]
    pub leader_elect: bool,
    /// The Lease's namespace (default: $POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, env = "WEIR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// The Lease's name (default: `weir-` and a short hash of the repository URL without
    /// credentials and of the branch).
    #[arg(long, env = "WEIR_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// This replica's name in the Lease (default: $POD_NAME, else the hostname and the pid).
    #[arg(long, env = "WEIR_IDENTITY")]
    pub identity: Option<String>,
    /// How long the Lease holds after a renewal (whole seconds).
    #[arg(long, env = "WEIR_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: String,
    /// A leader that has not renewed for this long stops writing.
    #[arg(long, env = "WEIR_RENEW_DEADLINE", default_value = "10s")]
    pub renew_deadline: String,
    /// Time between attempts to acquire or renew the Lease.
    #[arg(long, env = "WEIR_RETRY_PERIOD", default_value = "2s")]
    pub retry_period: String,
}

/// `weir status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Output format.
    #[arg(long, env = "WEIR_OUTPUT", value_enum, default_value = "table")]
    pub output: Output,
}
