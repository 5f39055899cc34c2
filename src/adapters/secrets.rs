//! Mounted Secrets: the secrets port on a folder laid out as Kubernetes mounts a Secret
//! volume, `<dir>/<namespace>/<name>/<key>`, one file per key whose trailing newline is dropped.
//!
//! Files are read only when they are regular files of at most [`MAX_SECRET_FILE`] bytes; a
//! link is followed only when it stays inside the secret's folder, as the links of a mounted
//! Secret volume (`address -> ..data/address`) do. Errors name the path, never what a file
//! holds.

use crate::core::secret::Secret;
use crate::core::spec::alert_provider::{SecretError, SecretKeys, MAX_SECRET_FILE};
use crate::ports::Secrets;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Secrets mounted under one folder.
#[derive(Debug, Clone)]
pub struct MountedSecrets {
    dir: PathBuf,
}

impl MountedSecrets {
    /// Reads Secrets under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> MountedSecrets {
        MountedSecrets { dir: dir.into() }
    }
}

impl Secrets for MountedSecrets {
    fn read(&self, namespace: &str, name: &str) -> Result<SecretKeys, SecretError> {
        let folder = self.dir.join(namespace).join(name);
        Ok(SecretKeys {
            location: folder.display().to_string(),
            address: read_key(&folder, "address")?,
            token: read_key(&folder, "token")?,
            proxy: read_key(&folder, "proxy")?,
        })
    }
}

/// Reads one key of a secret folder: `None` when the file is absent or empty.
fn read_key(folder: &Path, key: &str) -> Result<Option<Secret>, SecretError> {
    let path = folder.join(key);
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| SecretError::Unreadable {
        path: shown.clone(),
        why: e.to_string(),
    };
    let link = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta.file_type().is_symlink(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    if link {
        let inside = match (std::fs::canonicalize(&path), std::fs::canonicalize(folder)) {
            (Ok(real), Ok(base)) => real.starts_with(&base),
            _ => false,
        };
        if !inside {
            return Err(SecretError::LinkOutside {
                path: shown,
                folder: folder.display().to_string(),
            });
        }
    }
    let meta = std::fs::metadata(&path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile { path: shown });
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(SecretError::TooLarge { path: shown });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretError::TooLarge { path: shown });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText { path: shown })?;
    let value = text.trim_end_matches(['\n', '\r']);
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::alert_provider::{resolve, AlertProviderSpec};
    use crate::core::spec::{AlertSeverity, AlertTarget, ProviderKind};

    const FILE: &str = "platform/alerts/on-call.yaml";

    /// Resolves a provider with the Secrets mounted under `dir` (`None`: none configured).
    fn resolved(provider: &AlertProviderSpec, dir: Option<&Path>) -> Result<AlertTarget, String> {
        let secrets = dir.map(MountedSecrets::new);
        let read = |ns: &str, name: &str| secrets.as_ref().expect("configured").read(ns, name);
        resolve(provider, secrets.as_ref().map(|_| &read as _)).map_err(|e| e.to_string())
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
        let t = resolved(&provider(None), None).unwrap();
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
        let t = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
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
        let t = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
        assert_eq!(t.address.expose(), "https://hooks.slack.com/services/ONLY");
        assert_eq!(t.token, None);
        assert_eq!(t.proxy.as_ref().unwrap().expose(), "http://spec-proxy:3128");
    }

    #[test]
    fn a_secret_without_an_address_or_a_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "token", b"xoxb-secret-token");
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        let expected = dir.path().join("flagger/on-call-url/address");
        assert!(
            err.starts_with(&format!("{}: missing or empty", expected.display())),
            "{err}"
        );
        let err = resolved(&provider(Some("on-call-url")), None).unwrap_err();
        assert!(err.contains("no secrets directory is configured"), "{err}");
        let mut no_ns = provider(Some("on-call-url"));
        no_ns.namespace = None;
        let err = resolved(&no_ns, Some(dir.path())).unwrap_err();
        assert!(err.contains("set metadata.namespace"), "{err}");
        assert!(err.contains("?/on-call"), "{err}");
    }

    #[test]
    fn bad_secret_files_are_refused_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "address", b"not a url SECRET-CONTENT\n");
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: not an absolute http(s) URL (its content is not shown)",
                path.display()
            )
        );
        write(dir.path(), "address", b"https://ok.example/hook");
        let token = write(dir.path(), "token", b"line1 SECRET-CONTENT\nline2");
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert!(err.starts_with(&token.display().to_string()), "{err}");
        assert!(!err.contains("SECRET-CONTENT"), "{err}");
        std::fs::remove_file(&token).unwrap();
        let big = write(dir.path(), "token", &vec![b'a'; 64 * 1024 + 1]);
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: larger than 65536 bytes; a secret value is a line",
                big.display()
            )
        );
        std::fs::remove_file(&big).unwrap();
        std::fs::create_dir(&big).unwrap();
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
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
        let t = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap();
        assert_eq!(t.address.expose(), "https://hooks.example/mounted");

        // A link out of the folder is refused, whatever it points at.
        let outside = dir.path().join("elsewhere");
        std::fs::write(&outside, "https://attacker.example/SECRET-CONTENT").unwrap();
        symlink(&outside, folder.join("token")).unwrap();
        let err = resolved(&provider(Some("on-call-url")), Some(dir.path())).unwrap_err();
        assert!(err.contains("a link that leads outside"), "{err}");
        assert!(!err.contains("SECRET-CONTENT"), "{err}");
    }
}
