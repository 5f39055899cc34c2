//! What names a config repository outside weir: its URL without credentials (for Lease
//! names, metric labels and logs), and whether a URL or an `owner/name` that a webhook
//! carries is the same repository. Pure text; no I/O.

/// The URL without user-info, query or fragment (`https://x:token@host/p.git?t=1` is
/// `https://host/p.git`); a path or an scp-like address (`git@host:path`) is kept as it is,
/// since neither can carry a password.
pub fn bare(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let path = path.split(['?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// `host/path` of a remote, lower-cased, without scheme, user, default port, query, `.git`
/// or a trailing slash: the same for every way of writing one repository's address
/// (`https://github.com/acme/fleet.git`, `git@github.com:acme/fleet.git`,
/// `ssh://git@github.com:22/acme/fleet`, `git://github.com/acme/fleet.git`). Another port
/// is kept (`host:8443/path`): it may be another server. `None` for a local path, which no
/// webhook names.
pub fn identity(url: &str) -> Option<String> {
    let bare = bare(url);
    let (host, path) = match bare.split_once("://") {
        Some(("file", _)) => return None,
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/')?;
            let default = match scheme {
                "https" => "443",
                "http" => "80",
                "ssh" => "22",
                "git" => "9418",
                _ => "",
            };
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port == default => host,
                _ => authority,
            };
            (host, path)
        }
        // scp-like: `user@host:path`, where the host has no slash before the colon.
        None => {
            let (authority, path) = bare.split_once(':')?;
            if authority.contains('/') || authority.is_empty() {
                return None;
            }
            (
                authority.rsplit_once('@').map_or(authority, |(_, h)| h),
                path,
            )
        }
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}").to_lowercase())
}

/// True when `configured` (a remote weir serves) and `other` (an address a webhook
/// carries) name one repository.
pub fn same(configured: &str, other: &str) -> bool {
    matches!((identity(configured), identity(other)), (Some(a), Some(b)) if a == b)
}

/// True when `full_name` (GitHub's `owner/name`) is the path of `configured`, whatever its
/// host (github.com or a GitHub Enterprise server).
pub fn named(configured: &str, full_name: &str) -> bool {
    let Some(id) = identity(configured) else {
        return false;
    };
    let path = id.split_once('/').map_or("", |(_, p)| p);
    !full_name.is_empty() && path == full_name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_drops_credentials_only() {
        assert_eq!(
            bare("https://x-access-token:ghp_abc@github.com/acme/fleet.git?t=1#f"),
            "https://github.com/acme/fleet.git"
        );
        assert_eq!(bare("/srv/git/fleet.git"), "/srv/git/fleet.git");
        assert_eq!(
            bare("git@github.com:acme/fleet.git"),
            "git@github.com:acme/fleet.git"
        );
    }

    #[test]
    fn every_spelling_of_one_repository_is_the_same() {
        let forms = [
            "https://github.com/acme/fleet.git",
            "https://token@GitHub.com/acme/fleet",
            "https://github.com/acme/fleet/",
            "git@github.com:acme/fleet.git",
            "ssh://git@github.com:22/acme/fleet.git",
            "git://github.com/acme/fleet.git",
        ];
        for a in forms {
            for b in forms {
                assert!(same(a, b), "{a} vs {b}");
            }
            assert!(named(a, "acme/fleet"), "{a}");
            assert!(named(a, "Acme/Fleet"), "{a}");
            assert!(!named(a, "acme/other"), "{a}");
            assert!(!same(a, "https://github.com/acme/fleet-2.git"), "{a}");
            assert!(!same(a, "https://gitlab.com/acme/fleet.git"), "{a}");
        }
        assert!(!same(
            "https://git.example.com/acme/fleet.git",
            "https://git.example.com:8443/acme/fleet.git"
        ));
        assert!(same(
            "https://git.example.com:443/acme/fleet.git",
            "https://git.example.com/acme/fleet.git"
        ));
        assert_eq!(identity("/srv/git/fleet.git"), None);
        assert_eq!(identity("file:///srv/git/fleet.git"), None);
        assert!(!same("/srv/git/fleet.git", "/srv/git/fleet.git"));
        assert!(!named("/srv/git/acme/fleet", "acme/fleet"));
        assert!(!named("https://github.com/acme/fleet.git", ""));
    }
}
