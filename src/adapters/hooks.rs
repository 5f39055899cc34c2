//! Flagger's webhooks over HTTP: the adapter behind [`crate::ports::Hooks`].
//!
//! A Canary's gates (`confirm-rollout`, `pre-rollout`, `rollout`, `confirm-promotion`,
//! `post-rollout`, `rollback`, `event`) are URLs that get the JSON payload and answer with a
//! status. Users point them at flagger-loadtester or at their own services, which were written
//! against Flagger's client, so this one behaves as Flagger's does (pkg/controller/webhook.go
//! on top of hashicorp's go-retryablehttp):
//!
//! - `POST` with `Content-Type: application/json`, the payload in Flagger's field order;
//!   credentials in the URL's user-info go as basic auth, as Go's client sends them.
//! - 200, 201 and 202 pass; anything else fails, 204 and an unfollowed 3xx included.
//! - The timeout bounds each attempt, from connecting to the end of the answer.
//! - `retries` more attempts, only after a transport error, a timeout, 429 or a 5xx other
//!   than 501, waiting twice as long each time from a minimum to a maximum, or what a
//!   `Retry-After` header asks, never more than the maximum.
//! - Up to 5 redirects are followed.
//!
//! Where weir does better: a failure says what the server answered (status and the start of
//! its body), also when retries ran out, where Flagger reports only that it gave up.
//!
//! It never decides what a failure means for the rollout (a confirm gate waits, a rollout
//! check counts): that is the planner's business. It never prints a hook's URL without
//! redacting it, nor any header it sent, because hook URLs carry tokens.

use crate::adapters::tls::ClientError;
use crate::core::duration::GoDuration;
use crate::core::events::FIELD_MAX;
use crate::core::hook::{HookCall, HookOutcome};
use crate::core::secret::{redact_url, Scrubber};
use crate::core::text::clean;
use crate::ports::{BoxFuture, Hooks};
use std::time::Duration;

/// The most of an answer's body weir reads: enough for any message a gate sends back, and a
/// bound on what a broken or hostile hook can make weir hold.
pub const MAX_BODY: usize = 64 * 1024;

/// Redirects followed before an answer counts as a failure.
pub const MAX_REDIRECTS: usize = 5;

/// How long to wait between attempts of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSettings {
    /// The wait before the first retry; each further retry waits twice as long.
    pub retry_wait_min: Duration,
    /// The longest wait, also for a `Retry-After` that asks for more.
    pub retry_wait_max: Duration,
}

/// Webhook addresses that stand for others (`--webhook-alias FROM=TO`): a Canary's
/// in-cluster address (`http://flagger-loadtester.prod/`) called from outside the cluster
/// goes to `TO` instead, with the rest of its path and query. The Canary stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookAliases(Vec<(reqwest::Url, reqwest::Url)>);

impl WebhookAliases {
    /// Parses `FROM=TO` pairs of http(s) URLs; the error names the pair, credentials hidden.
    pub fn parse(pairs: &[String]) -> Result<WebhookAliases, String> {
        let mut aliases = Vec::new();
        for pair in pairs {
            let bad = || {
                format!(
                    "webhook alias `{}` is not FROM=TO with two http(s) URLs, e.g. http://flagger-loadtester.prod/=http://127.0.0.1:8080/",
                    redact_url(pair)
                )
            };
            let (from, to) = pair.split_once('=').ok_or_else(bad)?;
            let url = |text: &str| {
                reqwest::Url::parse(text.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            };
            let (Some(from), Some(to)) = (url(from), url(to)) else {
                return Err(bad());
            };
            aliases.push((from, to));
        }
        Ok(WebhookAliases(aliases))
    }

    /// The address to call for `url`: the first alias whose origin is the URL's and whose
    /// path is a prefix of its path swaps that prefix; any other URL is called as it is.
    pub fn resolve(&self, url: reqwest::Url) -> reqwest::Url {
        for (from, to) in &self.0 {
            let prefix = from.path().trim_end_matches('/');
            let rest = match url.path().strip_prefix(prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => continue,
            };
            if url.origin() != from.origin() {
                continue;
            }
            let mut out = to.clone();
            let base = to.path().trim_end_matches('/');
            let path = match (base, rest) {
                ("", "") => "/".to_string(),
                (b, r) => format!("{b}{r}"),
            };
            out.set_path(&path);
            out.set_query(url.query());
            return out;
        }
        url
    }
}

impl Default for HookSettings {
    /// Flagger's (go-retryablehttp's): 1s up to 30s.
    fn default() -> HookSettings {
        HookSettings {
            retry_wait_min: Duration::from_secs(1),
            retry_wait_max: Duration::from_secs(30),
        }
    }
}

/// Calls webhooks over HTTP(S). Cheap to clone; the HTTP clients are built once.
#[derive(Debug, Clone)]
pub struct HttpHooks {
    /// Verifies the server's certificate.
    verified: reqwest::Client,
    /// Accepts any certificate: only for hooks with `disableTLS: true`.
    insecure: reqwest::Client,
    settings: HookSettings,
    aliases: WebhookAliases,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// The server answered with a status.
    Answered {
        status: u16,
        /// The start of the body, lossily decoded; empty for a passing status.
        body: String,
        /// The wait a `Retry-After` header asked for.
        retry_after: Option<Duration>,
    },
    /// No complete answer within the timeout.
    TimedOut,
    /// No answer at all: the connection failed or broke.
    Unreachable {
        /// What went wrong, in a few words.
        reason: String,
        /// Worth another attempt: false for a certificate refused, a bad scheme, too many
        /// redirects, which another attempt would only repeat.
        retryable: bool,
    },
}

impl HttpHooks {
    /// Builds the HTTP clients; TLS uses rustls with the process's provider.
    pub fn new(settings: HookSettings) -> Result<HttpHooks, ClientError> {
        crate::adapters::tls::install_crypto_provider();
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
                .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
                .tls_danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|source| ClientError {
                    what: "webhook",
                    source,
                })
        };
        Ok(HttpHooks {
            verified: build(false)?,
            insecure: build(true)?,
            settings,
            aliases: WebhookAliases::default(),
        })
    }

    /// The same client, calling aliased addresses at their stand-ins.
    pub fn with_aliases(mut self, aliases: WebhookAliases) -> HttpHooks {
        self.aliases = aliases;
        self
    }

    /// The waits this client uses.
    pub fn settings(&self) -> HookSettings {
        self.settings
    }

    /// Calls one hook, retrying as Flagger does, and says whether it passed.
    async fn run(&self, call: &HookCall) -> HookOutcome {
        let shown = redact_url(&call.url);
        let url = match reqwest::Url::parse(&call.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => self.aliases.resolve(url),
            Ok(url) => {
                return failed(format!(
                    "cannot call {shown}: scheme `{}` is not http or https",
                    url.scheme()
                ))
            }
            Err(e) => return failed(format!("cannot call {shown}: not a URL ({e})")),
        };
        let scrubber = scrubber_for(&url);
        let body = match serde_json::to_vec(&call.payload) {
            Ok(body) => body,
            Err(e) => return failed(format!("cannot encode the payload: {e}")),
        };
        let client = if call.insecure_tls {
            &self.insecure
        } else {
            &self.verified
        };
        let attempts = call.retries.saturating_add(1);
        let mut made = 0u32;
        loop {
            made += 1;
            let attempt = attempt(client, &url, &body, call.timeout).await;
            if let Attempt::Answered {
                status: 200..=202, ..
            } = attempt
            {
                return HookOutcome::Passed;
            }
            if made >= attempts || !worth_retrying(&attempt) {
                let message = describe(&attempt, made, &shown, call.timeout);
                return failed(scrubber.scrub(&message));
            }
            let retry_after = match &attempt {
                Attempt::Answered { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = backoff(&self.settings, made - 1, retry_after);
            tracing::debug!(
                hook = %call.name,
                attempt = made,
                wait_ms = wait.as_millis() as u64,
                outcome = %scrubber.scrub(&describe(&attempt, 1, &shown, call.timeout)),
                "webhook attempt failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

impl Hooks for HttpHooks {
    fn call<'a>(&'a self, call: &'a HookCall) -> BoxFuture<'a, HookOutcome> {
        Box::pin(self.run(call))
    }
}

/// A failure, as one bounded line.
fn failed(message: String) -> HookOutcome {
    HookOutcome::Failed(clean(&message, FIELD_MAX))
}

/// A scrubber for what comes back from this URL: a server may echo the URL, its user-info or
/// its query values without the scheme that [`redact_url`] looks for.
fn scrubber_for(url: &reqwest::Url) -> Scrubber {
    let mut secrets = Vec::new();
    if !url.username().is_empty() {
        secrets.push(url.username().to_string());
    }
    if let Some(p) = url.password() {
        secrets.push(p.to_string());
    }
    // Both the encoded and decoded forms, as a server may echo either.
    if let Some(q) = url.query() {
        for pair in q.split('&') {
            if let Some((_, v)) = pair.split_once('=') {
                secrets.push(v.to_string());
            }
        }
    }
    secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
    Scrubber::new(secrets)
}

/// Sends the payload once and reads what came back.
async fn attempt(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: &[u8],
    timeout: Duration,
) -> Attempt {
    let sent = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .timeout(timeout)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => return transport_failure(&e),
    };
    let status = response.status().as_u16();
    if (200..=202).contains(&status) {
        // The body of a pass says nothing weir uses.
        return Attempt::Answered {
            status,
            body: String::new(),
            retry_after: None,
        };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
    // The status is the verdict; the body only explains it. A body that breaks off or runs
    // late leaves what arrived, and no more than MAX_BODY is kept.
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_BODY - bytes.len();
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() >= room {
            break;
        }
    }
    Attempt::Answered {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        retry_after,
    }
}

/// Classifies a request that got no answer, as go-retryablehttp's default policy does: a
/// refused certificate, a bad URL or a redirect loop are final; anything else may pass on
/// another attempt.
fn transport_failure(e: &reqwest::Error) -> Attempt {
    if e.is_timeout() {
        return Attempt::TimedOut;
    }
    if e.is_redirect() {
        return Attempt::Unreachable {
            reason: format!("more than {MAX_REDIRECTS} redirects"),
            retryable: false,
        };
    }
    if e.is_builder() {
        return Attempt::Unreachable {
            reason: root_cause(e),
            retryable: false,
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        // io::Error's source() skips the error it wraps, so look inside it by hand.
        let inner = match s.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => Some(s),
        };
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            if matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_)
            ) {
                return Attempt::Unreachable {
                    reason: format!(
                        "the server's certificate is not trusted ({tls}); fix the certificate, \
                         or set disableTLS on the hook if the network is trusted"
                    ),
                    retryable: false,
                };
            }
        }
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return Attempt::TimedOut;
        }
        source = s.source();
    }
    Attempt::Unreachable {
        reason: root_cause(e),
        retryable: true,
    }
}

/// The innermost cause of an error, in plain words for the usual socket failures. The
/// outer layers (`error sending request for url (...)`, `client error (Connect)`) repeat the
/// URL or say nothing.
fn root_cause(e: &reqwest::Error) -> String {
    use std::io::ErrorKind;
    let mut deepest: &(dyn std::error::Error + 'static) = e;
    while let Some(s) = deepest.source() {
        deepest = s;
    }
    if let Some(io) = deepest.downcast_ref::<std::io::Error>() {
        let words = match io.kind() {
            ErrorKind::ConnectionRefused => Some("connection refused"),
            ErrorKind::ConnectionReset => Some("connection reset by the server"),
            ErrorKind::ConnectionAborted => Some("connection aborted"),
            ErrorKind::UnexpectedEof => Some("connection closed before an answer"),
            ErrorKind::BrokenPipe => Some("connection closed while sending"),
            _ => None,
        };
        if let Some(words) = words {
            return words.to_string();
        }
    }
    redact_url(&deepest.to_string())
}

/// Whether another attempt could change the outcome (go-retryablehttp's default policy).
fn worth_retrying(attempt: &Attempt) -> bool {
    match attempt {
        Attempt::Answered { status, .. } => *status == 429 || (*status >= 500 && *status != 501),
        Attempt::TimedOut => true,
        Attempt::Unreachable { retryable, .. } => *retryable,
    }
}

/// The wait before retry number `retry` (0 for the first): the minimum doubled each time, or
/// what the server asked for; never more than the maximum.
fn backoff(settings: &HookSettings, retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(asked) = retry_after {
        return asked.min(settings.retry_wait_max);
    }
    2u32.checked_pow(retry)
        .and_then(|factor| settings.retry_wait_min.checked_mul(factor))
        .map_or(settings.retry_wait_max, |wait| {
            wait.min(settings.retry_wait_max)
        })
}

/// Reads `Retry-After`: seconds, or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// One line saying why a call failed, after `made` attempts.
fn describe(attempt: &Attempt, made: u32, shown_url: &str, timeout: Duration) -> String {
    let tries = if made > 1 {
        format!(" after {made} attempts")
    } else {
        String::new()
    };
    match attempt {
        Attempt::Answered { status, body, .. } => {
            let body = clean(body, FIELD_MAX);
            if body.is_empty() {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                format!("HTTP {status}{reason}{tries}")
            } else {
                format!("HTTP {status}{tries}: {body}")
            }
        }
        Attempt::TimedOut => format!("no answer within {}{tries}", GoDuration(timeout)),
        Attempt::Unreachable { reason, .. } => {
            format!("cannot reach {shown_url}{tries} ({reason})")
        }
    }
}

/// The hooks adapter when none is wired: every call fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn call<'a>(&'a self, _call: &'a HookCall) -> BoxFuture<'a, HookOutcome> {
        Box::pin(async { HookOutcome::Failed("no webhook client is configured".into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hook::HookPayload;
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// How the test server answers one connection.
    enum Reply {
        /// Sends this status line, extra header lines and body, then closes.
        Status(&'static str, &'static str, &'static str),
        /// Reads the request and says nothing until the client gives up.
        Silent,
        /// Reads the request and closes without a word.
        Hangup,
    }

    /// Serves one connection per reply, in order, and returns the requests it read.
    fn serve(replies: Vec<Reply>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                seen.push(read_request(&mut conn));
                match reply {
                    Reply::Status(status, headers, body) => {
                        let text = format!(
                            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        conn.write_all(text.as_bytes()).unwrap();
                    }
                    Reply::Silent => {
                        conn.set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        let _ = conn.read(&mut [0u8; 16]);
                    }
                    Reply::Hangup => {}
                }
            }
            seen
        });
        (address, handle)
    }

    fn read_request(conn: &mut TcpStream) -> String {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&request).into_owned()
    }

    fn body_of(request: &str) -> &str {
        request.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    fn payload(metadata: &[(&str, &str)]) -> HookPayload {
        HookPayload {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "abc".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn call(url: &str, retries: u32) -> HookCall {
        HookCall {
            name: "load-test".into(),
            url: url.to_string(),
            payload: payload(&[("type", "cmd"), ("cmd", "hey")]),
            timeout: Duration::from_secs(5),
            retries,
            insecure_tls: false,
        }
    }

    fn hooks() -> HttpHooks {
        HttpHooks::new(HookSettings {
            retry_wait_min: Duration::from_millis(1),
            retry_wait_max: Duration::from_millis(20),
        })
        .unwrap()
    }

    async fn outcome_of(replies: Vec<Reply>, retries: u32) -> (HookOutcome, Vec<String>) {
        let (url, server) = serve(replies);
        let outcome = hooks().call(&call(&format!("{url}/hook"), retries)).await;
        (outcome, server.join().unwrap())
    }

    fn failure(outcome: HookOutcome) -> String {
        match outcome {
            HookOutcome::Failed(m) => m,
            HookOutcome::Passed => panic!("the call passed"),
        }
    }

    #[tokio::test]
    async fn posts_the_payload_as_flagger_encodes_it() {
        let (outcome, seen) = outcome_of(vec![Reply::Status("200 OK", "", "")], 0).await;
        assert_eq!(outcome, HookOutcome::Passed);
        let request = &seen[0];
        assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("\r\ncontent-type: application/json\r\n"),
            "{request}"
        );
        assert_eq!(
            body_of(request),
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc","metadata":{"cmd":"hey","type":"cmd"}}"#
        );

        let (url, server) = serve(vec![Reply::Status("200 OK", "", "")]);
        let mut bare = call(&url, 0);
        bare.payload = payload(&[]);
        assert_eq!(hooks().call(&bare).await, HookOutcome::Passed);
        assert_eq!(
            body_of(&server.join().unwrap()[0]),
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc"}"#
        );
    }

    #[tokio::test]
    async fn only_200_201_and_202_pass() {
        for status in ["200 OK", "201 Created", "202 Accepted"] {
            let (outcome, _) = outcome_of(vec![Reply::Status(status, "", "")], 0).await;
            assert_eq!(outcome, HookOutcome::Passed, "{status}");
        }
        let cases = [
            ("204 No Content", "", "HTTP 204 No Content"),
            ("301 Moved Permanently", "", "HTTP 301 Moved Permanently"),
            ("403 Forbidden", "Forbidden", "HTTP 403: Forbidden"),
            (
                "404 Not Found",
                "404 page not found\n",
                "HTTP 404: 404 page not found",
            ),
            ("500 Internal Server Error", "boom", "HTTP 500: boom"),
        ];
        for (status, body, expected) in cases {
            let (outcome, seen) = outcome_of(vec![Reply::Status(status, "", body)], 0).await;
            assert_eq!(failure(outcome), expected);
            assert_eq!(seen.len(), 1, "{status} was sent once");
        }
    }

    #[tokio::test]
    async fn retries_server_errors_and_keeps_the_last_answer() {
        let (outcome, seen) = outcome_of(
            vec![
                Reply::Status("500 Internal Server Error", "", "warming up"),
                Reply::Status("503 Service Unavailable", "", ""),
                Reply::Status("200 OK", "", ""),
            ],
            2,
        )
        .await;
        assert_eq!(outcome, HookOutcome::Passed);
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|r| body_of(r) == body_of(&seen[0])));

        let fail = || Reply::Status("500 Internal Server Error", "", "boom");
        let (outcome, seen) = outcome_of(vec![fail(), fail(), fail()], 2).await;
        assert_eq!(failure(outcome), "HTTP 500 after 3 attempts: boom");
        assert_eq!(seen.len(), 3);

        let (outcome, _) = outcome_of(
            vec![
                Reply::Status("429 Too Many Requests", "", ""),
                Reply::Status("202 Accepted", "", ""),
            ],
            1,
        )
        .await;
        assert_eq!(outcome, HookOutcome::Passed);
    }

    #[tokio::test]
    async fn answers_that_another_attempt_cannot_change_are_not_retried() {
        for (status, expected) in [
            ("501 Not Implemented", "HTTP 501: no"),
            ("403 Forbidden", "HTTP 403: no"),
            ("400 Bad Request", "HTTP 400: no"),
        ] {
            // A retry would find the server gone and the message would say so.
            let (url, server) = serve(vec![Reply::Status(status, "", "no")]);
            let outcome = hooks().call(&call(&url, 3)).await;
            assert_eq!(failure(outcome), expected);
            assert_eq!(server.join().unwrap().len(), 1, "{status}");
        }
    }

    #[tokio::test]
    async fn retry_after_is_honoured_up_to_the_maximum_wait() {
        let slow = HttpHooks::new(HookSettings {
            retry_wait_min: Duration::from_millis(1),
            retry_wait_max: Duration::from_secs(5),
        })
        .unwrap();
        let (url, server) = serve(vec![
            Reply::Status("429 Too Many Requests", "Retry-After: 1\r\n", ""),
            Reply::Status("200 OK", "", ""),
        ]);
        let start = Instant::now();
        assert_eq!(slow.call(&call(&url, 1)).await, HookOutcome::Passed);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        server.join().unwrap();

        // An hour asked, 20ms allowed.
        let (url, server) = serve(vec![
            Reply::Status("503 Service Unavailable", "Retry-After: 3600\r\n", ""),
            Reply::Status("200 OK", "", ""),
        ]);
        let start = Instant::now();
        assert_eq!(hooks().call(&call(&url, 1)).await, HookOutcome::Passed);
        assert!(start.elapsed() < Duration::from_secs(2));
        server.join().unwrap();
    }

    #[test]
    fn waits_double_from_the_minimum_to_the_maximum() {
        let s = HookSettings::default();
        let waits: Vec<u64> = (0..7).map(|n| backoff(&s, n, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(&s, u32::MAX, None), s.retry_wait_max);
        assert_eq!(
            backoff(&s, 0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(&s, 0, Some(Duration::from_secs(3600))),
            s.retry_wait_max
        );
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[tokio::test]
    async fn each_attempt_has_the_timeout() {
        let (url, server) = serve(vec![Reply::Silent, Reply::Silent]);
        let mut slow = call(&url, 1);
        slow.timeout = Duration::from_millis(200);
        let start = Instant::now();
        let message = failure(hooks().call(&slow).await);
        assert_eq!(message, "no answer within 200ms after 2 attempts");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(server.join().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_dropped_connection_is_retried_then_reported() {
        let (outcome, seen) = outcome_of(vec![Reply::Hangup, Reply::Hangup], 1).await;
        let message = failure(outcome);
        assert!(
            message.starts_with("cannot reach http://127.0.0.1:"),
            "{message}"
        );
        assert!(message.contains("/hook after 2 attempts ("), "{message}");
        assert_eq!(seen.len(), 2);

        let (outcome, _) =
            outcome_of(vec![Reply::Hangup, Reply::Status("200 OK", "", "")], 1).await;
        assert_eq!(outcome, HookOutcome::Passed);
    }

    #[tokio::test]
    async fn follows_up_to_five_redirects() {
        let hop = || Reply::Status("307 Temporary Redirect", "Location: /next\r\n", "");
        let mut replies: Vec<Reply> = (0..5).map(|_| hop()).collect();
        replies.push(Reply::Status("200 OK", "", ""));
        let (outcome, seen) = outcome_of(replies, 0).await;
        assert_eq!(outcome, HookOutcome::Passed);
        // 307 keeps the method and the body.
        assert!(seen[5].starts_with("POST /next "), "{}", seen[5]);
        assert_eq!(body_of(&seen[5]), body_of(&seen[0]));

        let (outcome, seen) = outcome_of((0..6).map(|_| hop()).collect(), 2).await;
        let message = failure(outcome);
        assert!(message.ends_with(" (more than 5 redirects)"), "{message}");
        assert_eq!(seen.len(), 6, "a redirect loop is not retried");
    }

    #[tokio::test]
    async fn url_credentials_go_as_basic_auth_and_never_into_messages() {
        let (url, server) = serve(vec![Reply::Status(
            "401 Unauthorized",
            "",
            "bad credentials hook-user:s3cr3t-pw for /hook?token=t0k3n-value",
        )]);
        let with_secrets =
            url.replace("http://", "http://hook-user:s3cr3t-pw@") + "/hook?token=t0k3n-value";
        let message = failure(hooks().call(&call(&with_secrets, 0)).await);
        let request = server.join().unwrap().remove(0);
        // base64("hook-user:s3cr3t-pw")
        assert!(
            request.contains("Basic aG9vay11c2VyOnMzY3IzdC1wdw=="),
            "{request}"
        );
        assert!(
            request.starts_with("POST /hook?token=t0k3n-value "),
            "{request}"
        );
        for secret in ["s3cr3t-pw", "t0k3n-value"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(message.starts_with("HTTP 401: "), "{message}");

        let refused = "http://hook-user:s3cr3t-pw@127.0.0.1:9/hook?token=t0k3n-value";
        let message = failure(hooks().call(&call(refused, 0)).await);
        assert_eq!(
            message,
            "cannot reach http://***@127.0.0.1:9/hook?token=*** (connection refused)"
        );

        let message = failure(hooks().call(&call("ftp://u:s3cr3t-pw@host/x", 0)).await);
        assert!(!message.contains("s3cr3t-pw"), "{message}");
        assert!(message.contains("is not http or https"), "{message}");
        let message = failure(hooks().call(&call("http://u:s3cr3t-pw@[::1/x", 0)).await);
        assert!(!message.contains("s3cr3t-pw"), "{message}");
    }

    // Two workers: the connection task must run to close the socket while this one joins
    // the server's thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_huge_error_body_is_read_to_a_bound_and_cut_to_one_line() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            read_request(&mut conn);
            conn.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 104857600\r\n\r\nline one\nline two ",
            )
            .unwrap();
            let chunk = vec![b'x'; 16 * 1024];
            let mut sent = 0usize;
            while conn.write_all(&chunk).is_ok() && sent < 100 * 1024 * 1024 {
                sent += chunk.len();
            }
            sent
        });
        let message = failure(hooks().call(&call(&url, 0)).await);
        assert!(
            message.starts_with("HTTP 500: line one line two xxx"),
            "{message}"
        );
        assert!(message.chars().count() <= FIELD_MAX + 3, "{message}");
        let sent = server.join().unwrap();
        assert!(
            sent < 10 * 1024 * 1024,
            "the server could send {sent} bytes"
        );
    }

    #[test]
    fn an_alias_swaps_the_origin_and_path_prefix_and_keeps_the_rest() {
        let aliases = WebhookAliases::parse(&[
            "http://flagger-loadtester.prod/=http://127.0.0.1:8080/".to_string(),
            "http://gate.prod/approve=https://gate.example.com/v2/approve".to_string(),
        ])
        .unwrap();
        let go = |u: &str| aliases.resolve(reqwest::Url::parse(u).unwrap()).to_string();
        assert_eq!(
            go("http://flagger-loadtester.prod/"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            go("http://flagger-loadtester.prod/gate/check?x=1"),
            "http://127.0.0.1:8080/gate/check?x=1"
        );
        assert_eq!(
            go("http://gate.prod/approve"),
            "https://gate.example.com/v2/approve"
        );
        assert_eq!(go("http://gate.prod/approved"), "http://gate.prod/approved");
        // Another port or scheme is another origin: called as named.
        assert_eq!(
            go("http://flagger-loadtester.prod:81/"),
            "http://flagger-loadtester.prod:81/"
        );
        assert_eq!(
            go("https://flagger-loadtester.prod/"),
            "https://flagger-loadtester.prod/"
        );
    }

    #[test]
    fn a_bad_alias_is_refused_without_its_credentials() {
        let e = WebhookAliases::parse(&["http://u:hunter2@a.prod/".to_string()]).unwrap_err();
        assert!(e.contains("FROM=TO") && !e.contains("hunter2"), "{e}");
        assert!(WebhookAliases::parse(&["ftp://a/=http://b/".to_string()]).is_err());
    }
}
