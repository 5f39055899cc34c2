//! Turns command-line and environment settings into the validated settings of each adapter.
//!
//! The environment variables, in one list (a flag beats its variable, which beats the
//! default): WEIR_REPO, WEIR_BRANCH, WEIR_GIT_TOKEN, WEIR_CACHE, WEIR_AUTHOR_NAME,
//! WEIR_AUTHOR_EMAIL, WEIR_COMMITTER_NAME, WEIR_COMMITTER_EMAIL, WEIR_MESSAGE_PREFIX,
//! WEIR_PUSH_ATTEMPTS, WEIR_GIT_TIMEOUT, WEIR_TICK_DEADLINE, WEIR_TEMPLATES,
//! WEIR_HISTORY_DEPTH, WEIR_ROOTS, WEIR_MIN_INTERVAL, WEIR_SECRETS_DIR, WEIR_ALERT_URL,
//! WEIR_ALERT_TYPE, WEIR_ALERT_CHANNEL, WEIR_ALERT_SEVERITY,
//! WEIR_PROMETHEUS, WEIR_PROMETHEUS_TOKEN, WEIR_PROMETHEUS_USER, WEIR_PROMETHEUS_PASSWORD,
//! WEIR_PROMETHEUS_HEADERS, WEIR_PROMETHEUS_TIMEOUT, WEIR_EVERY, WEIR_OUTPUT, WEIR_DIR,
//! WEIR_LOG, WEIR_LOG_FORMAT, WEIR_LEADER_ELECT, WEIR_LEASE_NAMESPACE, WEIR_LEASE_NAME,
//! WEIR_IDENTITY, WEIR_LEASE_DURATION, WEIR_RENEW_DEADLINE, WEIR_RETRY_PERIOD, WEIR_REPOS (the
//! file of `weir run --repos`, read by `repos.rs`).

use crate::adapters::git::{default_cache_dir, GitSettings};
use crate::adapters::prometheus;
use crate::adapters::ssh::SshSettings;
use crate::cli::args::{PrometheusArgs, RepoArgs, SpecArgs};
use crate::core::duration::GoDuration;
use crate::core::secret::{SafeUrl, Secret};
use crate::engine;
use crate::repo::render::Templates;
use std::time::Duration;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration flag that does not parse.
    #[error("--{flag}: {source}")]
    Duration {
        flag: &'static str,
        source: crate::core::duration::DurationError,
    },
    /// A header not written `Name: value`.
    #[error("--prometheus-header `{0}`: write it as `Name: value`")]
    Header(String),
    /// A Prometheus URL that is not http(s).
    #[error("--prometheus `{0}`: not an http(s) URL")]
    Address(String),
    /// Basic auth half given.
    #[error("--prometheus-user and --prometheus-password go together")]
    BasicAuth,
    /// A template folder that cannot be used.
    #[error(transparent)]
    Templates(#[from] crate::repo::render::RenderError),
    /// A global alert setting that cannot be used.
    #[error("--{flag}: {message}")]
    Alert { flag: &'static str, message: String },
    /// The Prometheus client could not be built.
    #[error(transparent)]
    Prometheus(#[from] prometheus::PromError),
    /// SSH key or known_hosts that cannot be used.
    #[error(transparent)]
    Ssh(#[from] crate::adapters::ssh::SshError),
    /// No base commit for `weir plan`.
    #[error("--base: {0}")]
    Base(String),
}

/// The base commit of the pull request a GitHub Actions job runs for: `pull_request.base.sha`
/// of the event file `$GITHUB_EVENT_PATH` names.
pub fn pull_request_base() -> Result<String, ConfigError> {
    let event = pull_request_event()?;
    event
        .pointer("/pull_request/base/sha")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ConfigError::Base(
                "the event in $GITHUB_EVENT_PATH has no pull_request.base.sha: run `weir plan` on pull_request events, or give --base".into(),
            )
        })
}

/// The number of the pull request of `$GITHUB_EVENT_PATH`.
pub fn pull_request_number() -> Result<u64, ConfigError> {
    pull_request_event()?
        .pointer("/pull_request/number")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| {
            ConfigError::Base(
                "--comment: the event in $GITHUB_EVENT_PATH has no pull_request.number: comment from pull_request events".into(),
            )
        })
}

fn pull_request_event() -> Result<serde_json::Value, ConfigError> {
    let Some(path) = std::env::var_os("GITHUB_EVENT_PATH") else {
        return Err(ConfigError::Base(
            "give the commit to compare with (not in a GitHub Actions pull_request job, where $GITHUB_EVENT_PATH names it)".into(),
        ));
    };
    let text = std::fs::read(&path).map_err(|e| {
        ConfigError::Base(format!(
            "reading $GITHUB_EVENT_PATH ({}): {e}",
            path.to_string_lossy()
        ))
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| ConfigError::Base(format!("$GITHUB_EVENT_PATH is not JSON: {e}")))
}

/// Parses a duration flag.
pub fn duration(flag: &'static str, text: &str) -> Result<Duration, ConfigError> {
    GoDuration::parse(text)
        .map(|d| d.get())
        .map_err(|source| ConfigError::Duration { flag, source })
}

/// Where specs are looked for.
pub fn spec(args: &SpecArgs) -> Result<(Vec<String>, Duration), ConfigError> {
    Ok((
        args.roots.clone(),
        duration("min-interval", &args.min_interval)?,
    ))
}

/// Git settings.
pub fn git(args: &RepoArgs) -> Result<GitSettings, ConfigError> {
    let author = (args.author_name.clone(), args.author_email.clone());
    Ok(GitSettings {
        timeout: duration("git-timeout", &args.git_timeout)?,
        url: SafeUrl::new(args.repo.clone()),
        branch: args.branch.clone(),
        cache_dir: args.cache.clone().unwrap_or_else(default_cache_dir),
        token: args.git_token.clone().map(Secret::new),
        ssh: ssh(args)?,
        committer: (
            args.committer_name
                .clone()
                .unwrap_or_else(|| author.0.clone()),
            args.committer_email
                .clone()
                .unwrap_or_else(|| author.1.clone()),
        ),
        author,
    })
}

/// The key and host keys for an SSH remote, when given.
fn ssh(args: &RepoArgs) -> Result<Option<SshSettings>, ConfigError> {
    let settings = match (&args.git_ssh_dir, &args.git_ssh_key, &args.git_known_hosts) {
        (Some(dir), _, _) => SshSettings::from_secret_dir(dir)?,
        (None, Some(key), Some(hosts)) => SshSettings::from_files(key, hosts, None)?,
        _ => return Ok(None),
    };
    Ok(Some(settings))
}

/// Prometheus client.
pub fn prometheus(args: &PrometheusArgs) -> Result<prometheus::Client, ConfigError> {
    if let Some(a) = &args.address {
        match url::Url::parse(a) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => return Err(ConfigError::Address(a.clone())),
        }
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| ConfigError::Header(h.clone()))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let basic_auth = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some((u.clone(), Secret::new(p.clone()))),
        (None, None) => None,
        _ => return Err(ConfigError::BasicAuth),
    };
    Ok(prometheus::Client::new(prometheus::Settings {
        default_address: args.address.clone(),
        bearer_token: args.token.clone().map(Secret::new),
        basic_auth,
        headers,
        timeout: duration("prometheus-timeout", &args.timeout)?,
        aliases: args.aliases.clone(),
    })?)
}

/// Tick settings.
pub fn engine(args: &RepoArgs) -> Result<engine::Settings, ConfigError> {
    let (roots, min_interval) = spec(&args.spec)?;
    Ok(engine::Settings {
        roots,
        min_interval,
        max_push_attempts: args.push_attempts,
        history_depth: args.history_depth,
        tick_deadline: duration("tick-deadline", &args.tick_deadline)?,
        default_alerts: default_alerts(args)?,
        ..engine::Settings::default()
    })
}

/// Templates: the user's folder, or the embedded ones.
pub fn templates(args: &RepoArgs) -> Result<Templates, ConfigError> {
    Ok(match &args.templates {
        Some(dir) => crate::adapters::disk::templates(dir)?,
        None => Templates::embedded()?,
    })
}

/// The global alert target (`--alert-url`), if one is set.
fn default_alerts(args: &RepoArgs) -> Result<Vec<crate::core::spec::AlertTarget>, ConfigError> {
    use crate::core::spec::AlertSeverity;
    use crate::core::spec::AlertTarget;
    let Some(url) = args.alert_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(Vec::new());
    };
    let Some(kind) = crate::core::spec::alert_provider::kind(&args.alert_type) else {
        return Err(ConfigError::Alert {
            flag: "alert-type",
            message: format!(
                "`{}` is not one of slack, msteams, discord, rocket, gchat, generic",
                crate::core::text::clean(&args.alert_type, 40)
            ),
        });
    };
    let min_severity = match args.alert_severity.as_str() {
        "info" => AlertSeverity::Info,
        "warn" => AlertSeverity::Warn,
        "error" => AlertSeverity::Error,
        other => {
            return Err(ConfigError::Alert {
                flag: "alert-severity",
                message: format!(
                    "`{}` is not one of info, warn, error",
                    crate::core::text::clean(other, 40)
                ),
            })
        }
    };
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            return Err(ConfigError::Alert {
                flag: "alert-url",
                message: "not an absolute http(s) URL (not shown: it may hold a token)".into(),
            })
        }
    }
    Ok(vec![AlertTarget {
        provider: "default".into(),
        kind,
        address: Secret::new(url.to_string()),
        token: None,
        channel: args.alert_channel.clone(),
        username: None,
        proxy: None,
        min_severity,
    }])
}
