//! `AlertProvider`: where a Canary's alerts go (Flagger's Slack, Microsoft Teams, Discord,
//! Rocket.Chat and Google Chat providers, and weir's `generic` JSON webhook), validated from
//! the file, and resolved into a delivery target at run time.
//!
//! weir never reads Kubernetes Secrets. A `secretRef` names a folder of files,
//! `<secrets dir>/<namespace>/<secret name>/<key>` with the keys `address`, `token` and
//! `proxy`, which is what mounting the Secret as a volume there produces. The secret's values
//! win over the spec's, as in Flagger's controller. Addresses, tokens and proxies are never
//! printed: a Slack webhook URL holds its token, a proxy URL may hold a password.

use super::canary::{is_dns_label, is_dns_subdomain, is_http_url};
use super::raw::ObjectMeta;
use super::{p, Located, LocatedError};
use crate::core::secret::Secret;
use serde::Deserialize;

/// The `kind` of the documents read here.
pub const KIND: &str = "AlertProvider";

/// The accepted `spec.type` values: Flagger's five, and weir's `generic`.
pub const TYPES: [&str; 6] = ["slack", "msteams", "discord", "rocket", "gchat", "generic"];

/// The largest secret file weir reads.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The wire form of an AlertProvider document (`flagger.app/v1beta1`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAlertProvider {
    // apiVersion and kind were checked by the scanner before the strict parse; status is
    // Flagger's, written in the cluster. They are accepted, not used.
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMeta,
    spec: RawSpec,
    #[allow(dead_code)]
    #[serde(default)]
    status: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    proxy: Option<String>,
    #[serde(default)]
    secret_ref: Option<RawSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    name: String,
}

/// A validated AlertProvider.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertProviderSpec {
    /// Repository-relative path of its file.
    pub file: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` when the file leaves it to a kustomization, in which
    /// case the caller sets it before [`resolve`].
    pub namespace: Option<String>,
    /// `spec.type`.
    pub kind: ProviderKind,
    /// `spec.channel` (Slack, Discord, Rocket.Chat).
    pub channel: Option<String>,
    /// `spec.username` (Slack, Discord, Rocket.Chat).
    pub username: Option<String>,
    /// `spec.address`, the webhook URL; the secret's `address` wins over it.
    pub address: Option<Secret>,
    /// `spec.proxy`; the secret's `proxy` wins over it.
    pub proxy: Option<Secret>,
    /// `spec.secretRef.name`.
    pub secret_ref: Option<String>,
}

impl AlertProviderSpec {
    /// `namespace/name`, with `?` for an unknown namespace.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace.as_deref().unwrap_or("?"), self.name)
    }
}

/// The provider kind a `spec.type` names.
pub fn kind(type_: &str) -> Option<ProviderKind> {
    Some(match type_ {
        "slack" => ProviderKind::Slack,
        "msteams" => ProviderKind::Msteams,
        "discord" => ProviderKind::Discord,
        "rocket" => ProviderKind::Rocket,
        "gchat" => ProviderKind::Gchat,
        "generic" => ProviderKind::Generic,
        _ => return None,
    })
}

/// Flagger treats an empty string as an unset field (Helm charts render `""`).
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Parses document `doc` of `src` strictly and validates it.
pub fn read(src: &str, doc: usize, at: &Located) -> Result<AlertProviderSpec, Vec<LocatedError>> {
    super::strict::<RawAlertProvider>(src, doc, at).and_then(|raw| validate(raw, at))
}

/// Checks an AlertProvider's meaning: a known type, an http(s) address or a secret that
/// holds one, a usable proxy, and names that can be folders.
pub fn validate(
    raw: RawAlertProvider,
    at: &Located,
) -> Result<AlertProviderSpec, Vec<LocatedError>> {
    let mut errors = Vec::new();
    let accepted = TYPES.join(", ");
    if !is_dns_subdomain(&raw.metadata.name) {
        errors.push(at.error(
            &p(&["metadata", "name"]),
            format!(
                "`{}` is not a valid name; use lowercase letters, digits, `-` and `.`",
                crate::core::text::clean(&raw.metadata.name, 100)
            ),
        ));
    }
    if let Some(ns) = &raw.metadata.namespace {
        if !is_dns_label(ns) {
            errors.push(at.error(
                &p(&["metadata", "namespace"]),
                format!(
                    "`{}` is not a valid namespace; use lowercase letters, digits and `-`",
                    crate::core::text::clean(ns, 100)
                ),
            ));
        }
    }
    let spec = raw.spec;
    let kind = match set(spec.type_) {
        None => {
            errors.push(at.error(
                &p(&["spec", "type"]),
                format!("required: the kind of receiver, one of {accepted}"),
            ));
            None
        }
        Some(t) => {
            let k = kind(&t);
            if k.is_none() {
                errors.push(at.error(
                    &p(&["spec", "type"]),
                    format!(
                        "`{}` is not a provider type weir knows; use one of {accepted}",
                        crate::core::text::clean(&t, 100)
                    ),
                ));
            }
            k
        }
    };
    let address = set(spec.address);
    if let Some(a) = &address {
        if !is_http_url(a) {
            errors.push(at.error(
                &p(&["spec", "address"]),
                "not an absolute http(s) URL such as https://hooks.slack.com/services/...; \
                 the value is not shown, as a webhook address holds its token",
            ));
        }
    }
    let proxy = set(spec.proxy);
    if let Some(proxy) = &proxy {
        if !is_http_url(proxy) {
            errors.push(at.error(
                &p(&["spec", "proxy"]),
                "not an absolute http(s) URL such as http://proxy.internal:3128; \
                 the value is not shown, as a proxy URL may hold a password",
            ));
        }
    }
    let secret_ref = spec.secret_ref.map(|s| s.name);
    if let Some(name) = &secret_ref {
        if !is_dns_subdomain(name) {
            errors.push(at.error(
                &p(&["spec", "secretRef", "name"]),
                format!(
                    "`{}` is not a valid Secret name; use lowercase letters, digits, `-` and `.`",
                    crate::core::text::clean(name, 100)
                ),
            ));
        }
    }
    if address.is_none() && secret_ref.is_none() {
        errors.push(at.error(
            &p(&["spec"]),
            "no address: set spec.address to the webhook URL, or spec.secretRef.name to a \
             secret that holds it under `address`",
        ));
    }
    for (field, value) in [("channel", &spec.channel), ("username", &spec.username)] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            errors.push(at.error(
                &p(&["spec", field]),
                "must be one line without control characters",
            ));
        }
    }
    match kind {
        Some(kind) if errors.is_empty() => Ok(AlertProviderSpec {
            file: at.file().to_string(),
            name: raw.metadata.name,
            namespace: raw.metadata.namespace,
            kind,
            channel: set(spec.channel),
            username: set(spec.username),
            address: address.map(Secret::new),
            proxy: proxy.map(Secret::new),
            secret_ref,
        }),
        _ => Err(errors),
    }
}

/// Turns a provider into a delivery target, reading its `secretRef` (if any) through
/// `secrets` (`None`: no secret store is configured): `address` (required there), `token` and
/// `proxy` (optional). The secret's address and proxy win over the spec's. `min_severity` is
/// left at `info`: the Canary's alert entry sets it. Errors name where a key was read, never
/// what it holds.
pub fn resolve(
    provider: &AlertProviderSpec,
    secrets: ReadSecret,
) -> Result<AlertTarget, TargetError> {
    let shown = provider.display_name();
    let mut address = provider.address.clone();
    let mut token = None;
    let mut proxy = provider.proxy.clone();
    if let Some(secret) = &provider.secret_ref {
        let Some(read) = secrets else {
            return Err(TargetError::NoSecretStore {
                provider: shown,
                file: provider.file.clone(),
                secret: secret.clone(),
            });
        };
        let Some(namespace) = provider.namespace.as_deref() else {
            return Err(TargetError::NoNamespace {
                provider: shown,
                file: provider.file.clone(),
                secret: secret.clone(),
            });
        };
        // Both names become folders: checked again, since the caller may have set them.
        if !is_dns_label(namespace) || !is_dns_subdomain(secret) {
            return Err(TargetError::BadNames {
                provider: shown,
                file: provider.file.clone(),
            });
        }
        let keys = read(namespace, secret)?;
        let at = |key: &str| format!("{}/{key}", keys.location);
        let from_secret = keys
            .address
            .clone()
            .ok_or_else(|| TargetError::NoSecretAddress {
                at: at("address"),
                secret: secret.clone(),
                provider: shown.clone(),
            })?;
        if !is_http_url(from_secret.expose()) {
            return Err(TargetError::NotAUrl { at: at("address") });
        }
        address = Some(from_secret);
        token = keys.token.clone();
        if let Some(t) = &token {
            if t.expose().chars().any(char::is_control) {
                return Err(TargetError::NotALine { at: at("token") });
            }
        }
        if let Some(p) = keys.proxy.clone() {
            if !is_http_url(p.expose()) {
                return Err(TargetError::NotAUrl { at: at("proxy") });
            }
            proxy = Some(p);
        }
    }
    let address = address.ok_or_else(|| TargetError::NoAddress {
        provider: shown.clone(),
        file: provider.file.clone(),
    })?;
    Ok(AlertTarget {
        provider: shown,
        kind: provider.kind,
        address,
        token,
        channel: provider.channel.clone(),
        username: provider.username.clone(),
        proxy,
        min_severity: AlertSeverity::Info,
    })
}

/// The keys of a provider's Secret, as the secrets port reads them.
#[derive(Debug, Clone, Default)]
pub struct SecretKeys {
    /// Where the Secret was read, for messages (a folder: `/secrets/flagger/on-call-url`).
    pub location: String,
    /// The webhook URL.
    pub address: Option<Secret>,
    /// Sent as a bearer token.
    pub token: Option<Secret>,
    /// An HTTP(S) proxy.
    pub proxy: Option<Secret>,
}

/// Reads a Secret's keys by namespace and name, or says why not.
pub type ReadSecret<'a> = Option<&'a dyn Fn(&str, &str) -> Result<SecretKeys, SecretError>>;

/// Why a Secret's key could not be read. Each names the path, never what the file holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The file exists but reading it failed.
    #[error("{path}: cannot read: {why}")]
    Unreadable {
        /// Where.
        path: String,
        /// What the system said.
        why: String,
    },
    /// A link that leaves the Secret's folder (a mounted volume's links stay inside).
    #[error("{path}: a link that leads outside {folder}; weir follows only links within the secret's folder, as a mounted Secret volume has")]
    LinkOutside {
        /// The link.
        path: String,
        /// The Secret's folder.
        folder: String,
    },
    /// A folder, a fifo, a device.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// Where.
        path: String,
    },
    /// Larger than [`MAX_SECRET_FILE`].
    #[error("{path}: larger than {MAX_SECRET_FILE} bytes; a secret value is a line")]
    TooLarge {
        /// Where.
        path: String,
    },
    /// Not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// Where.
        path: String,
    },
}

/// Why an AlertProvider gives no delivery target. Each names the provider or the path of
/// the key at fault, never a secret's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The provider names a Secret and no secret store is configured.
    #[error("AlertProvider {provider} ({file}) reads Secret `{secret}`, but no secrets directory is configured; weir reads it from <secrets dir>/<namespace>/{secret}/address")]
    NoSecretStore {
        /// `namespace/name`.
        provider: String,
        /// Its file.
        file: String,
        /// The Secret.
        secret: String,
    },
    /// The provider names a Secret but has no namespace to find it in.
    #[error("AlertProvider {provider} ({file}) reads Secret `{secret}` but has no namespace to find it in; set metadata.namespace")]
    NoNamespace {
        /// `namespace/name`.
        provider: String,
        /// Its file.
        file: String,
        /// The Secret.
        secret: String,
    },
    /// The namespace or the Secret's name is not a DNS name (each becomes a folder).
    #[error("AlertProvider {provider} ({file}): namespace and secret name must be DNS names")]
    BadNames {
        /// `namespace/name`.
        provider: String,
        /// Its file.
        file: String,
    },
    /// The Secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The Secret has no `address`.
    #[error("{at}: missing or empty; Secret `{secret}` of AlertProvider {provider} must hold the webhook URL under `address`")]
    NoSecretAddress {
        /// Where the key was looked for.
        at: String,
        /// The Secret.
        secret: String,
        /// `namespace/name`.
        provider: String,
    },
    /// A key that must be a URL is not one.
    #[error("{at}: not an absolute http(s) URL (its content is not shown)")]
    NotAUrl {
        /// The key.
        at: String,
    },
    /// The token is not one line.
    #[error("{at}: holds more than one line or control characters (its content is not shown)")]
    NotALine {
        /// The key.
        at: String,
    },
    /// Neither the spec nor a Secret gives an address.
    #[error(
        "AlertProvider {provider} ({file}) has no address: set spec.address or spec.secretRef"
    )]
    NoAddress {
        /// `namespace/name`.
        provider: String,
        /// Its file.
        file: String,
    },
}

/// How much an alert matters. A Canary's alert entry receives its own severity and above
/// (`info` everything, `warn` warnings and errors, `error` errors only), as in Flagger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Progress: a release started, finished.
    Info,
    /// Needs a look: a gate waits for approval, a manual rollback.
    Warn,
    /// Went wrong: a rollback on failed checks.
    Error,
}

/// The kinds of alert provider weir delivers to: Flagger's five, and a plain JSON webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams incoming webhook (MessageCard).
    Msteams,
    /// Discord, through its Slack-compatible endpoint (`<address>/slack`).
    Discord,
    /// Rocket.Chat incoming webhook (Slack-shaped).
    Rocket,
    /// Google Chat webhook (cards).
    Gchat,
    /// weir's own JSON document, for any receiver.
    Generic,
}

/// One place alerts go: a resolved AlertProvider, or the global default.
#[derive(Debug, Clone)]
pub struct AlertTarget {
    /// `namespace/name` of the AlertProvider, or `default` for the global one; for logs.
    pub provider: String,
    /// What the receiver speaks.
    pub kind: ProviderKind,
    /// The webhook URL: a secret (Slack's holds its token); never logged.
    pub address: crate::core::secret::Secret,
    /// Sent as `Authorization: Bearer` (Slack only, as in Flagger).
    pub token: Option<crate::core::secret::Secret>,
    /// Slack/Discord/Rocket channel.
    pub channel: Option<String>,
    /// Slack/Discord/Rocket user name shown.
    pub username: Option<String>,
    /// An HTTP(S) proxy for this provider; may hold credentials.
    pub proxy: Option<crate::core::secret::Secret>,
    /// The least severity this target receives.
    pub min_severity: AlertSeverity,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::positions::PositionIndex;

    const FILE: &str = "platform/alerts/on-call.yaml";

    fn parse(src: &str) -> Result<AlertProviderSpec, Vec<LocatedError>> {
        let index = PositionIndex::parse(src).unwrap();
        let at = Located {
            file: FILE,
            doc: 0,
            index: Some(&index),
        };
        read(src, 0, &at)
    }

    fn errors(src: &str) -> Vec<String> {
        parse(src)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const SLACK: &str = "\
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
  namespace: flagger
spec:
  type: slack
  channel: on-call-alerts
  username: flagger
  address: https://hooks.slack.com/services/T0/B0/XYZ
  proxy: http://my-http-proxy.com
";

    #[test]
    fn reads_flaggers_example() {
        let p = parse(SLACK).unwrap();
        assert_eq!(
            p,
            AlertProviderSpec {
                file: FILE.into(),
                name: "on-call".into(),
                namespace: Some("flagger".into()),
                kind: ProviderKind::Slack,
                channel: Some("on-call-alerts".into()),
                username: Some("flagger".into()),
                address: Some(Secret::new("https://hooks.slack.com/services/T0/B0/XYZ")),
                proxy: Some(Secret::new("http://my-http-proxy.com")),
                secret_ref: None,
            }
        );
        assert_eq!(p.display_name(), "flagger/on-call");
        assert!(!format!("{p:?}").contains("XYZ"), "Debug hides the address");
    }

    #[test]
    fn every_type_is_read_and_empty_strings_are_unset() {
        for (t, kind) in [
            ("slack", ProviderKind::Slack),
            ("msteams", ProviderKind::Msteams),
            ("discord", ProviderKind::Discord),
            ("rocket", ProviderKind::Rocket),
            ("gchat", ProviderKind::Gchat),
            ("generic", ProviderKind::Generic),
        ] {
            let src = format!(
                "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: x\nspec:\n  type: {t}\n  channel: \"\"\n  secretRef:\n    name: x-url\n"
            );
            let p = parse(&src).unwrap();
            assert_eq!(p.kind, kind);
            assert_eq!(p.channel, None);
            assert_eq!(p.namespace, None);
            assert_eq!(p.secret_ref.as_deref(), Some("x-url"));
        }
    }

    #[test]
    fn a_missing_or_unknown_type_names_the_field_and_the_choices() {
        let missing = SLACK.replace("  type: slack\n", "");
        assert_eq!(
            errors(&missing),
            ["platform/alerts/on-call.yaml:7:3: error: spec.type: required: the kind of receiver, one of slack, msteams, discord, rocket, gchat, generic"]
        );
        let unknown = SLACK.replace("type: slack", "type: teams");
        assert_eq!(
            errors(&unknown),
            ["platform/alerts/on-call.yaml:7:9: error: spec.type: `teams` is not a provider type weir knows; use one of slack, msteams, discord, rocket, gchat, generic"]
        );
    }

    #[test]
    fn a_bad_address_or_proxy_is_located_and_not_shown() {
        let src = SLACK
            .replace(
                "https://hooks.slack.com/services/T0/B0/XYZ",
                "hooks.slack.com/services/T0/B0/XYZ",
            )
            .replace("http://my-http-proxy.com", "user:pw@proxy");
        let errs = errors(&src);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "platform/alerts/on-call.yaml:10:12: error: spec.address: not an absolute http(s) URL"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with(
                "platform/alerts/on-call.yaml:11:10: error: spec.proxy: not an absolute http(s) URL"
            ),
            "{errs:?}"
        );
        for e in &errs {
            assert!(!e.contains("XYZ") && !e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn an_address_or_a_secret_is_required_and_both_are_accepted() {
        let neither = SLACK.replace(
            "  address: https://hooks.slack.com/services/T0/B0/XYZ\n",
            "",
        );
        assert_eq!(
            errors(&neither),
            ["platform/alerts/on-call.yaml:7:3: error: spec: no address: set spec.address to the webhook URL, or spec.secretRef.name to a secret that holds it under `address`"]
        );
        let both = format!("{SLACK}  secretRef:\n    name: on-call-url\n");
        let p = parse(&both).unwrap();
        assert_eq!(p.secret_ref.as_deref(), Some("on-call-url"));
        assert!(p.address.is_some());
    }

    #[test]
    fn a_secret_name_that_could_leave_the_folder_is_refused() {
        let src = format!("{SLACK}  secretRef:\n    name: ../../etc\n");
        assert_eq!(
            errors(&src),
            ["platform/alerts/on-call.yaml:13:11: error: spec.secretRef.name: `../../etc` is not a valid Secret name; use lowercase letters, digits, `-` and `.`"]
        );
    }

    #[test]
    fn unknown_fields_and_bad_names_are_located() {
        let typo = SLACK.replace("channel:", "chanel:");
        let errs = errors(&typo);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(
                "platform/alerts/on-call.yaml:8:3: error: spec.chanel: unknown field `chanel`"
            ),
            "{errs:?}"
        );
        let name = SLACK
            .replace("name: on-call", "name: On_Call")
            .replace("namespace: flagger", "namespace: a/b");
        assert_eq!(
            errors(&name),
            [
                "platform/alerts/on-call.yaml:4:9: error: metadata.name: `On_Call` is not a valid name; use lowercase letters, digits, `-` and `.`",
                "platform/alerts/on-call.yaml:5:14: error: metadata.namespace: `a/b` is not a valid namespace; use lowercase letters, digits and `-`",
            ]
        );
    }
}
