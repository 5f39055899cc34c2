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

/// Replaces the user-info and the query values of every URL in `text` with `***`
/// (`https://user:token@host/p?access_token=x` becomes `https://***@host/p?access_token=***`).
/// Used on messages that come back from libraries which may echo a URL they were given.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '>' || c == ')')
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let (authority, path) = match url.find(['/', '?', '#']) {
            Some(j) => url.split_at(j),
            None => (url, ""),
        };
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        out.push_str(&redact_query(path));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `/p?a=1&b=2#f` -> `/p?a=***&b=***`: query values (and fragments) can carry tokens.
fn redact_query(path: &str) -> String {
    let Some(q) = path.find('?') else {
        return match path.find('#') {
            Some(h) => format!("{}#***", &path[..h]),
            None => path.to_string(),
        };
    };
    let (before, query) = path.split_at(q + 1);
    let query = query.split('#').next().unwrap_or("");
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) => format!("{k}=***"),
            None => pair.to_string(),
        })
        .collect();
    format!("{before}{}", pairs.join("&"))
}

/// Removes secrets from text that came from outside (an error body, a remote's message):
/// every known secret value, URL credentials and query values, and whatever follows words
/// that announce a credential (`Authorization:`, `Bearer`, `Basic`, `token=`, `password=`).
#[derive(Clone, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

/// Words after which the next word is a credential.
const ANNOUNCERS: [&str; 8] = [
    "authorization:",
    "bearer",
    "basic",
    "token=",
    "token:",
    "password=",
    "password:",
    "secret=",
];

/// What ends a word when looking for a credential after an announcing word.
const SEPARATORS: [char; 8] = [' ', '\t', '\n', '\r', '"', '\'', ',', ';'];

/// The `Authorization: Basic` credential for a user and password (RFC 7617: standard base64
/// of `user:password`), so that an echo of the header can be recognised and scrubbed.
pub fn basic_credential(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Scrubber {
    /// A scrubber that knows these secret values.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Scrubber {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        // Longest first, so a secret that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber { secrets }
    }

    /// The text with every secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = redact_url(text);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        // Whatever follows an announcing word, up to the next space or quote.
        let mut result = String::with_capacity(out.len());
        let mut hide_next = false;
        for word in out.split_inclusive(SEPARATORS) {
            let core = word.trim_end_matches(SEPARATORS);
            let sep = &word[core.len()..];
            if core.is_empty() {
                result.push_str(word);
                continue;
            }
            let lower = core.to_ascii_lowercase();
            if ANNOUNCERS.iter().any(|a| lower.ends_with(a)) {
                // `Authorization: Bearer x`: the announcer stays, what follows goes.
                result.push_str(word);
                hide_next = true;
            } else if hide_next {
                result.push_str("***");
                result.push_str(sep);
                hide_next = false;
            } else if let Some(at) = ANNOUNCERS
                .iter()
                .filter_map(|a| lower.find(a).map(|p| p + a.len()))
                .min()
            {
                // `token=value` in one word: the name stays, the value goes.
                result.push_str(&core[..at]);
                result.push_str("***");
                result.push_str(sep);
            } else {
                result.push_str(word);
            }
        }
        result
    }
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
    fn query_values_and_announced_credentials_are_hidden() {
        assert_eq!(
            redact_url("GET https://p.example/api/v1/query?query=up&access_token=abc#frag"),
            "GET https://p.example/api/v1/query?query=***&access_token=***"
        );
        let s = Scrubber::new(["hunter22".to_string(), "ab".to_string()]);
        let text = "echo: Authorization: Bearer eyJhbGciOi.x.y, Authorization: Basic dXNlcjpwYXNz; x-api-key hunter22 token=zzz ok";
        let scrubbed = s.scrub(text);
        for secret in ["eyJhbGciOi", "dXNlcjpwYXNz", "hunter22", "zzz"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(scrubbed.ends_with(" ok"), "{scrubbed}");
    }

    #[test]
    fn basic_credentials_are_encoded_as_rfc_7617_shows() {
        // RFC 7617, section 2: Aladdin / open sesame.
        assert_eq!(
            basic_credential("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_credential("a", "b"), "YTpi");
        assert_eq!(basic_credential("ab", "c"), "YWI6Yw==");
        let s = Scrubber::new([basic_credential("user", "pass")]);
        assert_eq!(s.scrub("echo dXNlcjpwYXNz\nnext"), "echo ***\nnext");
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
