//! SSH remotes for the git adapter: the key weir signs in with and the host keys it trusts,
//! laid out as Flux's Git Secret is (`identity`, `identity.pub`, `known_hosts`, and an
//! optional `password` for the key), and the check of a server's host key against
//! `known_hosts`. Host-key checking is mandatory: a server whose key is not listed is
//! refused before any credential is sent.
//!
//! `known_hosts` is read as OpenSSH writes it: `host[,host...] keytype base64-key`, hosts
//! either plain (`github.com`, `[127.0.0.1]:2222`, with `*` and `?` wildcards and `!`
//! negation) or hashed (`|1|salt|hash`, HMAC-SHA1 of the host); `@revoked` lines refuse a
//! key; `@cert-authority` lines are not supported and are skipped.

use crate::core::secret::Secret;
use base64::Engine as _;
use std::path::Path;

/// What weir needs for an SSH remote.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The private key (OpenSSH or PEM text).
    pub identity: Secret,
    /// Its passphrase, if it has one.
    pub passphrase: Option<Secret>,
    /// The host keys weir accepts.
    pub known_hosts: KnownHosts,
}

/// Why SSH settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A file could not be read.
    #[error("cannot read {path}: {why}")]
    Unreadable {
        /// Where.
        path: String,
        /// What the system said.
        why: String,
    },
    /// `known_hosts` lists no key weir can use.
    #[error("{path}: no host key in it; weir checks every SSH server's key against known_hosts (get it with `ssh-keyscan HOST`)")]
    NoHostKeys {
        /// Where.
        path: String,
    },
}

fn read(path: &Path) -> Result<String, SshError> {
    std::fs::read_to_string(path).map_err(|e| SshError::Unreadable {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

impl SshSettings {
    /// Reads a folder laid out as Flux's Git Secret: `identity`, `known_hosts`, and
    /// `password` when the key has a passphrase.
    pub fn from_secret_dir(dir: &Path) -> Result<SshSettings, SshError> {
        let password = dir.join("password");
        let passphrase = match password.exists() {
            true => Some(Secret::new(read(&password)?.trim_end_matches(['\n', '\r']))),
            false => None,
        };
        SshSettings::from_files(&dir.join("identity"), &dir.join("known_hosts"), passphrase)
    }

    /// Reads a private key and a known_hosts file.
    pub fn from_files(
        identity: &Path,
        known_hosts: &Path,
        passphrase: Option<Secret>,
    ) -> Result<SshSettings, SshError> {
        let hosts = KnownHosts::parse(&read(known_hosts)?);
        if hosts.entries.is_empty() {
            return Err(SshError::NoHostKeys {
                path: known_hosts.display().to_string(),
            });
        }
        Ok(SshSettings {
            identity: Secret::new(read(identity)?),
            passphrase,
            known_hosts: hosts,
        })
    }
}

/// The parsed lines of a known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<HostEntry>,
}

#[derive(Debug, Clone)]
struct HostEntry {
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
    revoked: bool,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// Comma-separated patterns.
    Patterns(Vec<String>),
    /// `|1|salt|hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// What the check of a host key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key is listed for the host.
    Trusted,
    /// The host is listed with other keys only: a changed key, or a server in the middle.
    Mismatch,
    /// The host is not listed at all.
    Unknown,
    /// The key is listed as revoked.
    Revoked,
}

impl KnownHosts {
    /// Parses known_hosts text; lines weir cannot use are skipped.
    pub fn parse(text: &str) -> KnownHosts {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or("");
            let mut revoked = false;
            if first.starts_with('@') {
                if first != "@revoked" {
                    continue;
                }
                revoked = true;
                first = fields.next().unwrap_or("");
            }
            let (Some(key_type), Some(key)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = b64.decode(key) else { continue };
            let hosts = match first.strip_prefix("|1|") {
                Some(rest) => {
                    let Some((salt, hash)) = rest.split_once('|') else {
                        continue;
                    };
                    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
                        continue;
                    };
                    Hosts::Hashed { salt, hash }
                }
                None => Hosts::Patterns(first.split(',').map(str::to_lowercase).collect()),
            };
            entries.push(HostEntry {
                hosts,
                key_type: key_type.to_string(),
                key,
                revoked,
            });
        }
        KnownHosts { entries }
    }

    /// Checks the raw key (`key`, as libssh2 gives it) that `host` (on `port`) presented.
    pub fn check(&self, host: &str, port: Option<u16>, key: &[u8]) -> HostKeyCheck {
        let host = host.to_lowercase();
        let name = match port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host,
        };
        let listed: Vec<&HostEntry> = self.entries.iter().filter(|e| e.matches(&name)).collect();
        if listed.iter().any(|e| e.revoked && e.key == key) {
            return HostKeyCheck::Revoked;
        }
        if listed.iter().any(|e| !e.revoked && e.key == key) {
            return HostKeyCheck::Trusted;
        }
        if listed.iter().any(|e| !e.revoked) {
            return HostKeyCheck::Mismatch;
        }
        HostKeyCheck::Unknown
    }

    /// The key types listed for `host`, for messages.
    pub fn types_for(&self, host: &str, port: Option<u16>) -> Vec<String> {
        let name = match port {
            Some(p) if p != 22 => format!("[{}]:{p}", host.to_lowercase()),
            _ => host.to_lowercase(),
        };
        let mut types: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.revoked && e.matches(&name))
            .map(|e| e.key_type.clone())
            .collect();
        types.dedup();
        types
    }
}

impl HostEntry {
    fn matches(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Hashed { salt, hash } => hmac_sha1(salt, name.as_bytes()) == hash.as_slice(),
            Hosts::Patterns(patterns) => {
                let mut matched = false;
                for p in patterns {
                    match p.strip_prefix('!') {
                        Some(negated) if wildcard(negated, name) => return false,
                        Some(_) => {}
                        None => matched |= wildcard(p, name),
                    }
                }
                matched
            }
        }
    }
}

/// OpenSSH's host patterns: `*` any run, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// HMAC-SHA1 (RFC 2104), as OpenSSH hashes host names.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHb3Fpz5ckvfZ1hXzIAdNTPkHLmzk1SzuoQK0c3sAbMr";

    fn raw(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn checks_a_key_per_host_and_port() {
        let hosts = KnownHosts::parse(&format!(
            "# comment\ngithub.com,140.82.121.4 ssh-ed25519 {KEY}\n[127.0.0.1]:2222 ssh-ed25519 {OTHER}\n"
        ));
        let cases = [
            ("github.com", None, KEY, HostKeyCheck::Trusted),
            ("GitHub.com", Some(22), KEY, HostKeyCheck::Trusted),
            ("140.82.121.4", None, KEY, HostKeyCheck::Trusted),
            ("github.com", None, OTHER, HostKeyCheck::Mismatch),
            ("gitlab.com", None, KEY, HostKeyCheck::Unknown),
            ("127.0.0.1", Some(2222), OTHER, HostKeyCheck::Trusted),
            ("127.0.0.1", None, OTHER, HostKeyCheck::Unknown),
            ("127.0.0.1", Some(2222), KEY, HostKeyCheck::Mismatch),
        ];
        for (host, port, key, want) in cases {
            assert_eq!(hosts.check(host, port, &raw(key)), want, "{host} {port:?}");
        }
    }

    #[test]
    fn wildcards_negation_revocation_and_hashed_names() {
        // `|1|...` is what `ssh-keygen -H` writes for git.example.com with this salt.
        let salt = [7u8; 20];
        let b64 = base64::engine::general_purpose::STANDARD;
        let hash = hmac_sha1(&salt, b"git.example.com");
        let hosts = KnownHosts::parse(&format!(
            "*.corp,!bad.corp ssh-ed25519 {KEY}\n|1|{}|{} ssh-ed25519 {OTHER}\n@revoked * ssh-ed25519 {OTHER}\n@cert-authority *.corp ssh-ed25519 {OTHER}\n",
            b64.encode(salt),
            b64.encode(hash)
        ));
        assert_eq!(
            hosts.check("git.corp", None, &raw(KEY)),
            HostKeyCheck::Trusted
        );
        assert_eq!(
            hosts.check("bad.corp", None, &raw(KEY)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            hosts.check("git.example.com", None, &raw(OTHER)),
            HostKeyCheck::Revoked
        );
        assert_eq!(
            hosts.check("git.example.com", None, &raw(KEY)),
            HostKeyCheck::Mismatch
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202, test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
