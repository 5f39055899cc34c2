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
use super::{p, Located, SpecError};
use crate::ports::{AlertSeverity, AlertTarget, ProviderKind};
use crate::secret::Secret;
use serde::Deserialize;
use std::io::Read;
use std::path::Path;

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
pub fn read(src: &str, doc: usize, at: &Located) -> Result<AlertProviderSpec, Vec<SpecError>> {
    super::strict::<RawAlertProvider>(src, doc, at).and_then(|raw| validate(raw, at))
}

/// Checks an AlertProvider's meaning: a known type, an http(s) address or a secret that
/// holds one, a usable proxy, and names that can be folders.
pub fn validate(raw: RawAlertProvider, at: &Located) -> Result<AlertProviderSpec, Vec<SpecError>> {
    let mut errors = Vec::new();
    let accepted = TYPES.join(", ");
    if !is_dns_subdomain(&raw.metadata.name) {
        errors.push(at.error(
            &p(&["metadata", "name"]),
            format!(
                "`{}` is not a valid name; use lowercase letters, digits, `-` and `.`",
                crate::events::clean(&raw.metadata.name, 100)
            ),
        ));
    }
    if let Some(ns) = &raw.metadata.namespace {
        if !is_dns_label(ns) {
            errors.push(at.error(
                &p(&["metadata", "namespace"]),
                format!(
                    "`{}` is not a valid namespace; use lowercase letters, digits and `-`",
                    crate::events::clean(ns, 100)
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
                        crate::events::clean(&t, 100)
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
                    crate::events::clean(name, 100)
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

/// Turns a provider into a delivery target, reading its `secretRef` (if any) from
/// `<secrets_dir>/<namespace>/<secret name>/`: `address` (required there), `token` and
/// `proxy` (optional), each one file whose trailing newline is dropped. The secret's address
/// and proxy win over the spec's. `min_severity` is left at `info`: the Canary's alert entry
/// sets it.
///
/// Files are read only when they are regular files of at most [`MAX_SECRET_FILE`] bytes; a
/// link is followed only when it stays inside the secret's folder, as the links of a mounted
/// Secret volume (`address -> ..data/address`) do. Errors name the path, never what a file
/// holds.
pub fn resolve(
    provider: &AlertProviderSpec,
    secrets_dir: Option<&Path>,
) -> Result<AlertTarget, String> {
    let shown = provider.display_name();
    let mut address = provider.address.clone();
    let mut token = None;
    let mut proxy = provider.proxy.clone();
    if let Some(secret) = &provider.secret_ref {
        let Some(dir) = secrets_dir else {
            return Err(format!(
                "AlertProvider {shown} ({}) reads Secret `{secret}`, but no secrets directory \
                 is configured; weir reads it from <secrets dir>/<namespace>/{secret}/address",
                provider.file
            ));
        };
        let Some(namespace) = provider.namespace.as_deref() else {
            return Err(format!(
                "AlertProvider {shown} ({}) reads Secret `{secret}` but has no namespace to \
                 find it in; set metadata.namespace",
                provider.file
            ));
        };
        // Both names become folders: checked again, since the caller may have set them.
        if !is_dns_label(namespace) || !is_dns_subdomain(secret) {
            return Err(format!(
                "AlertProvider {shown} ({}): namespace and secret name must be DNS names",
                provider.file
            ));
        }
        let folder = dir.join(namespace).join(secret);
        let address_path = folder.join("address");
        let from_secret = read_key(&folder, "address")?.ok_or_else(|| {
            format!(
                "{}: missing or empty; Secret `{secret}` of AlertProvider {shown} must hold \
                 the webhook URL under `address`",
                address_path.display()
            )
        })?;
        if !is_http_url(from_secret.expose()) {
            return Err(format!(
                "{}: not an absolute http(s) URL (its content is not shown)",
                address_path.display()
            ));
        }
        address = Some(from_secret);
        token = read_key(&folder, "token")?;
        if let Some(t) = &token {
            if t.expose().chars().any(char::is_control) {
                return Err(format!(
                    "{}: holds more than one line or control characters (its content is not \
                     shown)",
                    folder.join("token").display()
                ));
            }
        }
        if let Some(p) = read_key(&folder, "proxy")? {
            if !is_http_url(p.expose()) {
                return Err(format!(
                    "{}: not an absolute http(s) URL (its content is not shown)",
                    folder.join("proxy").display()
                ));
            }
            proxy = Some(p);
        }
    }
    let address = address.ok_or_else(|| {
        format!(
            "AlertProvider {shown} ({}) has no address: set spec.address or spec.secretRef",
            provider.file
        )
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

/// Reads one key of a secret folder: `None` when the file is absent or empty.
fn read_key(folder: &Path, key: &str) -> Result<Option<Secret>, String> {
    let path = folder.join(key);
    let shown = path.display();
    let link = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta.file_type().is_symlink(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown}: cannot read: {e}")),
    };
    if link {
        let inside = match (std::fs::canonicalize(&path), std::fs::canonicalize(folder)) {
            (Ok(real), Ok(base)) => real.starts_with(&base),
            _ => false,
        };
        if !inside {
            return Err(format!(
                "{shown}: a link that leads outside {}; weir follows only links within the \
                 secret's folder, as a mounted Secret volume has",
                folder.display()
            ));
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(too_large(&path));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(too_large(&path));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8 text"))?;
    let value = text.trim_end_matches(['\n', '\r']);
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

fn too_large(path: &Path) -> String {
    format!(
        "{}: larger than {MAX_SECRET_FILE} bytes; a secret value is a line",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml_edit::PositionIndex;
    use std::path::PathBuf;

    const FILE: &str = "platform/alerts/on-call.yaml";

    fn parse(src: &str) -> Result<AlertProviderSpec, Vec<SpecError>> {
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

    fn provider(secret: Option<&str>) -> AlertProviderSpec {
        AlertProviderSpec {
            file: FILE.into(),
            name: "on-call".into(),
            namespace: Some("flagger".into()),
            kind: ProviderKind::Slack,
            channel: Some("alerts".into()),
            username: None,
            address: Some(Secret::new("https://hooks.slack.com/services/SPEC")),
            proxy: Some(Secret::new("http://spec-proxy:3128")),
            secret_ref: secret.map(str::to_string),
        }
    }

    fn write(dir: &Path, key: &str, value: &[u8]) -> PathBuf {
        let folder = dir.join("flagger/on-call-url");
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(key);
        std::fs::write(&path, value).unwrap();
        path
    }

    #[test]
    fn resolves_the_spec_alone() {
        let t = resolve(&provider(None), None).unwrap();
        assert_eq!(t.provider, "flagger/on-call");
        assert_eq!(t.kind, ProviderKind::Slack);
        assert_eq!(t.address.expose(), "https://hooks.slack.com/services/SPEC");
        assert_eq!(t.proxy.as_ref().unwrap().expose(), "http://spec-proxy:3128");
        assert_eq!(t.token, None);
        assert_eq!(t.channel.as_deref(), Some("alerts"));
        assert_eq!(t.min_severity, AlertSeverity::Info);
    }

    #[test]
    fn the_secrets_files_win_over_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "address",
            b"https://hooks.slack.com/services/FROM-SECRET\n",
        );
        write(dir.path(), "token", b"xoxb-secret-token\r\n");
        write(dir.path(), "proxy", b"http://user:pw@secret-proxy:3128\n");
        let t = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
        assert_eq!(
            t.address.expose(),
            "https://hooks.slack.com/services/FROM-SECRET"
        );
        assert_eq!(t.token.as_ref().unwrap().expose(), "xoxb-secret-token");
        assert_eq!(
            t.proxy.as_ref().unwrap().expose(),
            "http://user:pw@secret-proxy:3128"
        );
        // Without token and proxy files, the spec's proxy stays and there is no token.
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "address",
            b"https://hooks.slack.com/services/ONLY",
        );
        let t = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
        assert_eq!(t.address.expose(), "https://hooks.slack.com/services/ONLY");
        assert_eq!(t.token, None);
        assert_eq!(t.proxy.as_ref().unwrap().expose(), "http://spec-proxy:3128");
    }

    #[test]
    fn a_secret_without_an_address_or_a_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "token", b"xoxb-secret-token");
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        let expected = dir.path().join("flagger/on-call-url/address");
        assert!(
            err.starts_with(&format!("{}: missing or empty", expected.display())),
            "{err}"
        );
        let err = resolve(&provider(Some("on-call-url")), None).unwrap_err();
        assert!(err.contains("no secrets directory is configured"), "{err}");
        let mut no_ns = provider(Some("on-call-url"));
        no_ns.namespace = None;
        let err = resolve(&no_ns, Some(dir.path())).unwrap_err();
        assert!(err.contains("set metadata.namespace"), "{err}");
        assert!(err.contains("?/on-call"), "{err}");
    }

    #[test]
    fn bad_secret_files_are_refused_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "address", b"not a url SECRET-CONTENT\n");
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: not an absolute http(s) URL (its content is not shown)",
                path.display()
            )
        );
        write(dir.path(), "address", b"https://ok.example/hook");
        let token = write(dir.path(), "token", b"line1 SECRET-CONTENT\nline2");
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert!(err.starts_with(&token.display().to_string()), "{err}");
        assert!(!err.contains("SECRET-CONTENT"), "{err}");
        std::fs::remove_file(&token).unwrap();
        let big = write(dir.path(), "token", &vec![b'a'; 64 * 1024 + 1]);
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: larger than 65536 bytes; a secret value is a line",
                big.display()
            )
        );
        std::fs::remove_file(&big).unwrap();
        std::fs::create_dir(&big).unwrap();
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert_eq!(err, format!("{}: not a regular file", big.display()));
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_inside_the_secrets_folder() {
        use std::os::unix::fs::symlink;
        // A mounted Secret volume: key -> ..data/key, ..data -> ..<timestamp>.
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("flagger/on-call-url");
        let stamped = folder.join("..2026_11_24_10_00_00.1");
        std::fs::create_dir_all(&stamped).unwrap();
        std::fs::write(stamped.join("address"), "https://hooks.example/mounted\n").unwrap();
        symlink("..2026_11_24_10_00_00.1", folder.join("..data")).unwrap();
        symlink("..data/address", folder.join("address")).unwrap();
        let t = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
        assert_eq!(t.address.expose(), "https://hooks.example/mounted");

        // A link out of the folder is refused, whatever it points at.
        let outside = dir.path().join("elsewhere");
        std::fs::write(&outside, "https://attacker.example/SECRET-CONTENT").unwrap();
        symlink(&outside, folder.join("token")).unwrap();
        let err = resolve(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert!(err.contains("a link that leads outside"), "{err}");
        assert!(!err.contains("SECRET-CONTENT"), "{err}");
    }
}
