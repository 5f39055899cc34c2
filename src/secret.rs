//! Values that must never reach a log, an error or a commit: tokens, passwords, URLs with
//! credentials. Their Debug and Display print a redaction, never the value.

use std::fmt;

/// A token or password.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A remote URL whose user-info (user and password or token) is hidden when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SafeUrl(String);

impl SafeUrl {
    /// Wraps a URL or a local path.
    pub fn new(url: impl Into<String>) -> SafeUrl {
        SafeUrl(url.into())
    }

    /// The full value, credentials included, for the git transport only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any user-info replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// Replaces the user-info of every URL in `text` with `***`. Used on messages that come back
/// from libraries which may echo a URL they were given.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafeUrl({})", self.redacted())
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_secret() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        let u = SafeUrl::new("https://x-access-token:ghp_abc@github.com/acme/config.git");
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("ghp_abc"), "{shown}");
        assert!(shown.contains("github.com/acme/config.git"));
    }

    #[test]
    fn redacts_urls_inside_messages() {
        let msg = "failed to connect to https://user:pw@host:8443/repo and http://plain/x";
        assert_eq!(
            redact_url(msg),
            "failed to connect to https://***@host:8443/repo and http://plain/x"
        );
    }
}
