//! The Prometheus adapter of the metric-source port: runs a rendered query (the templating
//! is `core::query`) against `/api/v1/query` and parses the answer.
//!
//! Parsing is a pure function; only [`Client`] does I/O. It never decides whether a value
//! passes: that is the gate's bound, applied by the planner.

use crate::core::secret::Secret;
use std::time::Duration;

/// Why a query gave no usable number. Each is a failed check, never a pass.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    /// Could not connect, or the connection broke.
    #[error("cannot reach Prometheus at {address}: {message}")]
    Transport { address: String, message: String },
    /// No answer within the configured timeout.
    #[error("Prometheus at {address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    /// A non-2xx HTTP status.
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// `status: error` in the JSON answer.
    #[error("Prometheus refused the query ({error_type}): {error}")]
    Api { error_type: String, error: String },
    /// The answer is not the JSON Prometheus documents.
    #[error("cannot read Prometheus' answer: {0}")]
    Decode(String),
    /// An empty result: no series matched.
    #[error("no data")]
    NoData,
    /// More than one series: weir will not guess which one is meant.
    #[error(
        "the query returned {0} series; it must return exactly one (aggregate it, e.g. with sum())"
    )]
    TooManySeries(usize),
}

impl PromError {
    /// The server could not be reached or was in trouble: a transport error, a timeout, HTTP
    /// 429 or 5xx. An answer about the query (a 4xx, a refusal, no data, a bad value) is not.
    pub fn unreachable(&self) -> bool {
        match self {
            PromError::Transport { .. } | PromError::Timeout { .. } => true,
            PromError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Reads the number out of an `/api/v1/query` answer (vector or scalar). NaN and infinities
/// are returned as they are: the bound check fails them.
pub fn parse_response(body: &[u8]) -> Result<f64, PromError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PromError::Decode(e.to_string()))?;
    match v.get("status").and_then(|s| s.as_str()) {
        Some("success") => {}
        Some("error") => {
            return Err(PromError::Api {
                error_type: v["errorType"].as_str().unwrap_or("unknown").to_string(),
                error: v["error"].as_str().unwrap_or("").to_string(),
            })
        }
        _ => return Err(PromError::Decode("no `status` field".into())),
    }
    let data = &v["data"];
    let sample = match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"]
                .as_array()
                .ok_or_else(|| PromError::Decode("`data.result` is not a list".into()))?;
            match result.len() {
                0 => return Err(PromError::NoData),
                1 => &result[0]["value"],
                n => return Err(PromError::TooManySeries(n)),
            }
        }
        Some("scalar") => &data["result"],
        Some(other) => {
            return Err(PromError::Decode(format!(
                "result type `{other}`; an instant vector or scalar is needed"
            )))
        }
        None => return Err(PromError::Decode("no `data.resultType`".into())),
    };
    let text = sample
        .get(1)
        .and_then(|s| s.as_str())
        .ok_or_else(|| PromError::Decode("sample is not [time, \"value\"]".into()))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|_| PromError::Decode(format!("`{t}` is not a number"))),
    }
}

/// The largest answer weir reads from Prometheus.
pub const MAX_BODY: usize = 1024 * 1024;

/// How to reach Prometheus: what every query shares.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Address used when a MetricTemplate names none, and for built-in metrics.
    pub default_address: Option<String>,
    /// `Authorization: Bearer` token.
    pub bearer_token: Option<Secret>,
    /// Basic auth user and password.
    pub basic_auth: Option<(String, Secret)>,
    /// Extra headers, e.g. `X-Scope-OrgID` for a multi-tenant Prometheus.
    pub headers: Vec<(String, String)>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Addresses the repository names (a MetricTemplate's `provider.address`, a Canary's
    /// `metricsServer`) that stand for the default address: an in-cluster name such as
    /// `http://flagger-prometheus.istio-system:9090` that a runner outside the cluster cannot
    /// resolve. Queries to them go to `default_address`, with its credentials.
    pub aliases: Vec<String>,
}

/// Runs instant queries. Cheap to clone.
///
/// Credentials (bearer token, basic auth, extra headers) go only to the origin of the
/// configured address: an address from the repository (a Canary's `metricsServer`, a
/// MetricTemplate's `provider.address`) is queried without them, so a team that names its own
/// server learns nothing. Redirects are not followed, for the same reason.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: std::sync::Arc<Settings>,
    headers: reqwest::header::HeaderMap,
    trusted: Option<String>,
    /// The origins of `settings.aliases`.
    aliases: Vec<String>,
    scrubber: crate::core::secret::Scrubber,
}

/// `scheme://host:port` of an address, with the default port made explicit.
fn origin(address: &str) -> Option<String> {
    let url = reqwest::Url::parse(address).ok()?;
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

impl Client {
    /// Builds the HTTP client once; TLS uses rustls with the ring provider.
    pub fn new(settings: Settings) -> Result<Client, PromError> {
        crate::adapters::tls::install_crypto_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| PromError::Decode(format!("header name `{k}` is invalid: {e}")))?;
            let mut value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| PromError::Decode(format!("header `{k}` value is invalid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PromError::Transport {
                address: String::new(),
                message: e.to_string(),
            })?;
        // Anything that comes back (an error body echoing the request) is scrubbed of what
        // weir sent.
        let mut secrets: Vec<String> = settings.headers.iter().map(|(_, v)| v.clone()).collect();
        if let Some(t) = &settings.bearer_token {
            secrets.push(t.expose().to_string());
        }
        if let Some((user, p)) = &settings.basic_auth {
            secrets.push(p.expose().to_string());
            secrets.push(crate::core::secret::basic_credential(user, p.expose()));
        }
        let trusted = settings.default_address.as_deref().and_then(origin);
        let mut aliases = Vec::new();
        for alias in &settings.aliases {
            aliases.push(origin(alias).ok_or_else(|| {
                PromError::Decode(format!(
                    "Prometheus alias `{}` is not an http(s) address",
                    crate::core::secret::redact_url(alias)
                ))
            })?);
        }
        Ok(Client {
            http,
            headers,
            trusted,
            aliases,
            settings: std::sync::Arc::new(settings),
            scrubber: crate::core::secret::Scrubber::new(secrets),
        })
    }

    /// The configured settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// True when `address` is on the configured Prometheus' origin, the only one that gets
    /// credentials and whose error bodies are shown.
    pub fn is_trusted(&self, address: &str) -> bool {
        self.trusted.is_some() && origin(address) == self.trusted
    }

    /// Where a query for `address` goes: the default address when `address` is on an
    /// alias's origin, else `address` itself.
    pub fn resolve<'a>(&'a self, address: &'a str) -> &'a str {
        match (&self.settings.default_address, origin(address)) {
            (Some(default), Some(o)) if self.aliases.contains(&o) => default,
            _ => address,
        }
    }

    /// Runs `query` against `address` (`http://host:9090`), returning its one value.
    pub async fn query(&self, address: &str, query: &str) -> Result<f64, PromError> {
        let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
        let trusted = self.is_trusted(address);
        let mut request = self.http.post(&url).form(&[("query", query)]);
        if trusted {
            request = request.headers(self.headers.clone());
            if let Some(token) = &self.settings.bearer_token {
                request = request.bearer_auth(token.expose());
            }
            if let Some((user, password)) = &self.settings.basic_auth {
                request = request.basic_auth(user, Some(password.expose()));
            }
        }
        let shown = crate::core::secret::redact_url(address);
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(&shown, e))?;
        let status = response.status();
        // Read at most MAX_BODY: an answer of one number is small; a huge one is refused
        // before it is all in memory.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport(&shown, e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(PromError::Decode(format!(
                    "the answer is larger than {MAX_BODY} bytes; weir reads no more of it"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // Prometheus sends its JSON error body with 400/422/503: prefer its message.
            if let Err(api) = parse_response(&body) {
                if matches!(api, PromError::Api { .. }) {
                    return Err(api);
                }
            }
            // Any other body is shown only from the configured Prometheus: an address
            // from the repository must not turn weir into a reader of internal services'
            // pages into Git.
            let body = if trusted {
                String::from_utf8_lossy(&body).chars().take(300).collect()
            } else {
                format!(
                    "{} bytes not shown ({shown} is not the configured Prometheus)",
                    body.len()
                )
            };
            return Err(PromError::Http {
                status: status.as_u16(),
                body,
            });
        }
        parse_response(&body)
    }

    fn transport(&self, address: &str, e: reqwest::Error) -> PromError {
        transport_error(address, self.settings.timeout, e)
    }
}

fn transport_error(address: &str, timeout: Duration, e: reqwest::Error) -> PromError {
    if e.is_timeout() {
        return PromError::Timeout {
            address: address.to_string(),
            timeout,
        };
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    PromError::Transport {
        address: address.to_string(),
        message: crate::core::secret::redact_url(&message),
    }
}

impl crate::ports::MetricSource for Client {
    fn query<'a>(
        &'a self,
        address: Option<&'a str>,
        query: &'a str,
    ) -> crate::ports::BoxFuture<'a, Result<f64, crate::core::query::MetricError>> {
        Box::pin(async move {
            let address = address
                .map(|a| self.resolve(a).to_string())
                .or_else(|| self.settings.default_address.clone());
            let Some(address) = address else {
                return Err(crate::core::query::MetricError {
                    message: "no Prometheus address: set --prometheus (WEIR_PROMETHEUS) or the MetricTemplate's provider.address".into(),
                    no_data: false,
                    unreachable: false,
                });
            };
            Client::query(self, &address, query).await.map_err(|e| {
                crate::core::query::MetricError {
                    message: crate::core::text::clean(&self.scrubber.scrub(&e.to_string()), 300),
                    no_data: e == PromError::NoData,
                    unreachable: e.unreachable(),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_an_unreachable_server_from_an_answer_about_the_query() {
        let http = |status| PromError::Http {
            status,
            body: String::new(),
        };
        let cases = [
            (
                PromError::Transport {
                    address: "a".into(),
                    message: "connection refused".into(),
                },
                true,
            ),
            (
                PromError::Timeout {
                    address: "a".into(),
                    timeout: Duration::from_secs(5),
                },
                true,
            ),
            (http(503), true),
            (http(500), true),
            (http(429), true),
            (http(400), false),
            (http(404), false),
            (
                PromError::Api {
                    error_type: "bad_data".into(),
                    error: "parse error".into(),
                },
                false,
            ),
            (PromError::Decode("x".into()), false),
            (PromError::NoData, false),
            (PromError::TooManySeries(2), false),
        ];
        for (error, unreachable) in cases {
            assert_eq!(error.unreachable(), unreachable, "{error}");
        }
    }

    #[test]
    fn an_alias_stands_for_the_configured_address() {
        let client = Client::new(Settings {
            default_address: Some("https://prom.example.com/tenant".into()),
            aliases: vec!["http://flagger-prometheus.istio-system:9090".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            client.resolve("http://Flagger-Prometheus.istio-system:9090/"),
            "https://prom.example.com/tenant"
        );
        assert!(client.is_trusted(client.resolve("http://flagger-prometheus.istio-system:9090")));
        // Another port or host is not the alias: it is queried as named, without credentials.
        for other in [
            "http://flagger-prometheus.istio-system",
            "http://flagger-prometheus.istio-system:9091",
            "http://prometheus.istio-system:9090",
        ] {
            assert_eq!(client.resolve(other), other);
            assert!(!client.is_trusted(other));
        }
        let bad = Client::new(Settings {
            aliases: vec!["flagger-prometheus:9090".into()],
            ..Default::default()
        });
        assert!(bad.is_err());
    }

    #[test]
    fn credentials_go_to_the_configured_origin_only() {
        let client = Client::new(Settings {
            default_address: Some("http://Prometheus.istio-system:80/prefix".into()),
            bearer_token: Some(Secret::new("t0ken")),
            ..Default::default()
        })
        .unwrap();
        assert!(client.is_trusted("http://prometheus.istio-system"));
        assert!(client.is_trusted("http://prometheus.istio-system:80/other/"));
        assert!(!client.is_trusted("https://prometheus.istio-system"));
        assert!(!client.is_trusted("http://prometheus.istio-system:9090"));
        assert!(!client.is_trusted("http://prometheus.istio-system.evil.example"));
        assert!(!client.is_trusted("http://user@evil.example"));
        assert!(!client.is_trusted("not a url"));
        let none = Client::new(Settings::default()).unwrap();
        assert!(!none.is_trusted("http://prometheus.istio-system"));
    }

    #[test]
    fn parses_prometheus_answers() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"99.5"]}]}}"#;
        assert_eq!(parse_response(vector).unwrap(), 99.5);
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"3"]}}"#;
        assert_eq!(parse_response(scalar).unwrap(), 3.0);
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_response(empty).unwrap_err(), PromError::NoData);
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(parse_response(nan).unwrap().is_nan());
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert_eq!(
            parse_response(two).unwrap_err(),
            PromError::TooManySeries(2)
        );
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            parse_response(err).unwrap_err().to_string(),
            "Prometheus refused the query (bad_data): parse error at char 4"
        );
        assert!(matches!(
            parse_response(b"<html>"),
            Err(PromError::Decode(_))
        ));
    }

    /// Answers one HTTP request with `body` and returns the request it received.
    fn one_shot(status: &str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let status = status.to_string();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
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
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        (address, handle)
    }

    #[tokio::test]
    async fn sends_credentials_headers_and_the_query() {
        let (address, server) = one_shot(
            "200 OK",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}"#,
        );
        let client = Client::new(Settings {
            default_address: Some(address.clone()),
            bearer_token: Some(Secret::new("t0ken")),
            headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
            timeout: Duration::from_secs(5),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(client.query(&address, "up{job=\"x\"}").await.unwrap(), 42.0);
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /api/v1/query "), "{request}");
        assert!(request.contains("authorization: bearer t0ken"), "{request}");
        assert!(request.contains("x-scope-orgid: team-a"), "{request}");
        assert!(request.contains("query=up%7bjob%3d%22x%22%7d"), "{request}");

        let (address, server) = one_shot(
            "200 OK",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#,
        );
        let client = Client::new(Settings {
            default_address: Some(address.clone()),
            basic_auth: Some(("weir".into(), Secret::new("pw"))),
            timeout: Duration::from_secs(5),
            ..Settings::default()
        })
        .unwrap();
        client.query(&address, "1").await.unwrap();
        // base64("weir:pw")
        assert!(server.join().unwrap().contains("Basic d2Vpcjpwdw=="));
    }

    #[tokio::test]
    async fn error_answers_keep_prometheus_message() {
        let (address, server) = one_shot(
            "400 Bad Request",
            r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#,
        );
        let client = Client::new(Settings {
            timeout: Duration::from_secs(5),
            ..Settings::default()
        })
        .unwrap();
        let err = client.query(&address, "sum(").await.unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "Prometheus refused the query (bad_data): 1:5: parse error: unexpected end of input"
        );
        let err = client.query("http://127.0.0.1:9", "up").await.unwrap_err();
        assert!(matches!(err, PromError::Transport { .. }), "{err}");
    }
}
