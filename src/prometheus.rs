//! Prometheus: the queries weir runs, the escaping of values that come from the repo, and the
//! parsing of `/api/v1/query` answers.
//!
//! Rendering and parsing are pure functions; only [`Client`] does I/O. It never decides
//! whether a value passes: that is the gate's bound, applied by the planner's caller.

use crate::secret::Secret;
use std::collections::BTreeMap;
use std::time::Duration;

/// Flagger's built-in Istio success rate: percent of non-5xx responses of the canary.
pub const REQUEST_SUCCESS_RATE: &str = r#"sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)
* 100"#;

/// Flagger's built-in Istio request duration: p99 in milliseconds of the canary.
pub const REQUEST_DURATION: &str = r#"histogram_quantile(
  0.99,
  sum(
    rate(
      istio_request_duration_milliseconds_bucket{
        reporter="destination",
        destination_workload_namespace="{{ namespace }}",
        destination_workload=~"{{ target }}"
      }[{{ interval }}]
    )
  ) by (le)
)"#;

/// A placeholder of a query template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{ name }}`: the Canary's name.
    Name,
    /// `{{ namespace }}`
    Namespace,
    /// `{{ service }}`: the apex Service's name.
    Service,
    /// `{{ ingress }}`: `ingressRef.name`, empty without one.
    Ingress,
    /// `{{ route }}`: `routeRef.name`, empty without one.
    Route,
    /// `{{ target }}`
    Target,
    /// `{{ interval }}`
    Interval,
    /// `{{ variables.NAME }}`
    Variable(String),
}

/// A query template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `{{` without `}}`.
    #[error("`{{{{` at byte {0} is never closed with `}}}}`")]
    Unclosed(usize),
    /// A name weir does not know.
    #[error(
        "unknown placeholder `{{{{ {0} }}}}`; use name, namespace, target, service, ingress, route, interval or variables.NAME"
    )]
    Unknown(String),
    /// `{{ variables.x }}` with no `templateVariables.x`.
    #[error("variable `{0}` is used by the query but not set in templateVariables")]
    MissingVariable(String),
    /// A value placed outside a quoted string that could change the query's meaning.
    #[error("value `{value}` of {name} is used outside a quoted string, where only a duration (such as 1m) is allowed; quote the placeholder in the query")]
    UnsafeBare { name: String, value: String },
}

/// Lists the placeholders of a template, or says why it is malformed.
pub fn placeholders(template: &str) -> Result<Vec<Placeholder>, QueryError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .filter(|end| !after[..*end].contains(['\n', '{']))
            .ok_or(QueryError::Unclosed(offset + start))?;
        out.push(parse_placeholder(after[..end].trim())?);
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(out)
}

fn parse_placeholder(name: &str) -> Result<Placeholder, QueryError> {
    match name {
        "name" => Ok(Placeholder::Name),
        "namespace" => Ok(Placeholder::Namespace),
        "service" => Ok(Placeholder::Service),
        "ingress" => Ok(Placeholder::Ingress),
        "route" => Ok(Placeholder::Route),
        "target" => Ok(Placeholder::Target),
        "interval" => Ok(Placeholder::Interval),
        _ => match name.strip_prefix("variables.") {
            Some(v)
                if !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Ok(Placeholder::Variable(v.to_string()))
            }
            _ => Err(QueryError::Unknown(name.to_string())),
        },
    }
}

/// The values a query template is rendered with.
#[derive(Debug, Clone)]
pub struct QueryVars<'a> {
    /// The Canary's name.
    pub name: &'a str,
    /// The Canary's namespace.
    pub namespace: &'a str,
    /// The apex Service's name.
    pub service: &'a str,
    /// `ingressRef.name`, or empty.
    pub ingress: &'a str,
    /// `routeRef.name`, or empty.
    pub route: &'a str,
    /// The canary workload (the target Deployment's name).
    pub target: &'a str,
    /// The metric's interval, already printed (e.g. `1m`).
    pub interval: &'a str,
    /// `templateVariables`.
    pub variables: &'a BTreeMap<String, String>,
}

/// Where in the query a placeholder stands, which decides how its value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside any string literal.
    Bare,
    /// In a `#` comment.
    Comment,
    /// Inside a string literal delimited by this quote.
    Quoted { quote: char, regex: bool },
}

/// Renders a query, escaping each value for where it stands: inside a quoted label value it
/// is escaped for the string (and for RE2 after `=~` or `!~`); outside strings only plain
/// words and durations are allowed. A value from the repo therefore cannot close a string,
/// add a matcher or change the expression.
pub fn render(template: &str, vars: &QueryVars) -> Result<String, QueryError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .filter(|end| !after[..*end].contains(['\n', '{']))
            .ok_or(QueryError::Unclosed(offset + start))?;
        let ph = parse_placeholder(after[..end].trim())?;
        let (name, value) = match &ph {
            Placeholder::Name => ("name".to_string(), vars.name.to_string()),
            Placeholder::Namespace => ("namespace".to_string(), vars.namespace.to_string()),
            Placeholder::Service => ("service".to_string(), vars.service.to_string()),
            Placeholder::Ingress => ("ingress".to_string(), vars.ingress.to_string()),
            Placeholder::Route => ("route".to_string(), vars.route.to_string()),
            Placeholder::Target => ("target".to_string(), vars.target.to_string()),
            Placeholder::Interval => ("interval".to_string(), vars.interval.to_string()),
            Placeholder::Variable(v) => (
                format!("variables.{v}"),
                vars.variables
                    .get(v)
                    .cloned()
                    .ok_or_else(|| QueryError::MissingVariable(v.clone()))?,
            ),
        };
        match context_at(&out) {
            // Outside strings a value can only be a duration (`[{{ interval }}]`): anything
            // else could be a metric, a function or an operator.
            Context::Bare => {
                if !is_duration(&value) {
                    return Err(QueryError::UnsafeBare { name, value });
                }
                out.push_str(&value);
            }
            // In a comment a value stays in the comment: no line break can end it.
            Context::Comment => {
                out.extend(value.chars().filter(|c| !c.is_control()));
            }
            Context::Quoted { quote, regex } => {
                let value = if regex { regex_escape(&value) } else { value };
                out.push_str(&string_escape(&value, quote));
            }
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Decides where the end of `text` lies: in a PromQL string literal (and which), in a `#`
/// comment, or in the expression itself. Quotes inside comments and `#` inside strings do
/// not count.
fn context_at(text: &str) -> Context {
    let mut open: Option<(char, usize)> = None;
    let mut escaped = false;
    let mut comment = false;
    for (i, c) in text.char_indices() {
        if comment {
            if c == '\n' {
                comment = false;
            }
            continue;
        }
        match open {
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    open = Some((c, i));
                } else if c == '#' {
                    comment = true;
                }
            }
            Some((q, _)) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    open = None;
                }
            }
        }
    }
    if comment {
        return Context::Comment;
    }
    match open {
        None => Context::Bare,
        Some((quote, at)) => {
            let before = text[..at].trim_end();
            let regex = before.ends_with("=~") || before.ends_with("!~");
            Context::Quoted { quote, regex }
        }
    }
}

/// A PromQL duration: one or more `<number><unit>`, units ms, s, m, h, d, w, y.
fn is_duration(value: &str) -> bool {
    let mut rest = value;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_escape(value: &str, quote: char) -> String {
    if quote == '`' {
        // Raw strings have no escapes: drop the backquote rather than let it end the string.
        return value.chars().filter(|c| *c != '`').collect();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

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
    scrubber: crate::secret::Scrubber,
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
        crate::tls::install_crypto_provider();
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
            secrets.push(crate::secret::basic_credential(user, p.expose()));
        }
        let trusted = settings.default_address.as_deref().and_then(origin);
        let mut aliases = Vec::new();
        for alias in &settings.aliases {
            aliases.push(origin(alias).ok_or_else(|| {
                PromError::Decode(format!(
                    "Prometheus alias `{}` is not an http(s) address",
                    crate::secret::redact_url(alias)
                ))
            })?);
        }
        Ok(Client {
            http,
            headers,
            trusted,
            aliases,
            settings: std::sync::Arc::new(settings),
            scrubber: crate::secret::Scrubber::new(secrets),
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
        let shown = crate::secret::redact_url(address);
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
        message: crate::secret::redact_url(&message),
    }
}

impl crate::ports::MetricSource for Client {
    fn query<'a>(
        &'a self,
        address: Option<&'a str>,
        query: &'a str,
    ) -> crate::ports::BoxFuture<'a, Result<f64, crate::ports::MetricError>> {
        Box::pin(async move {
            let address = address
                .map(|a| self.resolve(a).to_string())
                .or_else(|| self.settings.default_address.clone());
            let Some(address) = address else {
                return Err(crate::ports::MetricError {
                    message: "no Prometheus address: set --prometheus (WEIR_PROMETHEUS) or the MetricTemplate's provider.address".into(),
                    no_data: false,
                });
            };
            Client::query(self, &address, query)
                .await
                .map_err(|e| crate::ports::MetricError {
                    message: crate::events::clean(&self.scrubber.scrub(&e.to_string()), 300),
                    no_data: e == PromError::NoData,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(target: &'a str, variables: &'a BTreeMap<String, String>) -> QueryVars<'a> {
        QueryVars {
            name: "backend",
            namespace: "prod",
            service: "backend",
            ingress: "",
            route: "",
            target,
            interval: "1m",
            variables,
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
    fn renders_builtin_success_rate() {
        let none = BTreeMap::new();
        let q = render(REQUEST_SUCCESS_RATE, &vars("backend", &none)).unwrap();
        assert!(q.contains(r#"destination_workload=~"backend""#));
        assert!(q.contains(r#"destination_workload_namespace="prod""#));
        assert!(q.contains("[1m]"));
        assert!(!q.contains("{{"));
    }

    #[test]
    fn escapes_values_for_their_context() {
        let mut v = BTreeMap::new();
        v.insert("path".to_string(), r#"/api"} or vector(100) #"#.to_string());
        let q = render(
            r#"sum(rate(x{path="{{ variables.path }}", w=~"{{ target }}"}[{{ interval }}]))"#,
            &vars("my.app", &v),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum(rate(x{path="/api\"} or vector(100) #", w=~"my\\.app"}[1m]))"#
        );
    }

    /// The attack found in review: an apostrophe in a comment made the escaper think later
    /// placeholders were quoted, so a value rewrote the query. Comments are comments.
    #[test]
    fn quotes_in_comments_do_not_open_strings() {
        let mut v = BTreeMap::new();
        v.insert("code".to_string(), r#"5.*"}) * 0 + 100 #"#.to_string());
        let template =
            "# don't count 4xx\nsum(rate(x{code=~\"{{ variables.code }}\"}[{{ interval }}]))";
        let q = render(template, &vars("b", &v)).unwrap();
        assert_eq!(
            q,
            r#"# don't count 4xx
sum(rate(x{code=~"5\\.\\*\"\\}\\) \\* 0 \\+ 100 #"}[1m]))"#
        );
        // A bare placeholder after such a comment is still bare, and refused unless a
        // duration.
        let err = render("# it's\nx + {{ variables.code }}", &vars("b", &v)).unwrap_err();
        assert!(matches!(err, QueryError::UnsafeBare { .. }), "{err}");
        // A value in a comment cannot end the comment.
        let mut v = BTreeMap::new();
        v.insert("n".to_string(), "a\nvector(1)".to_string());
        assert_eq!(
            render("x # {{ variables.n }}", &vars("b", &v)).unwrap(),
            "x # avector(1)"
        );
    }

    #[test]
    fn only_durations_stand_outside_strings() {
        for ok in ["1m", "30s", "1h30m", "500ms", "2d", "1w", "1y"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "1", "m", "1m ", "up", "1m]", "1.5m", "sum", "-1m"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever a repository puts in a variable, the rendered query holds it as exactly
        /// one string literal that reads back as the value: the rest of the query is the
        /// template's.
        #[test]
        fn a_value_is_always_one_literal(value in "\\PC{0,40}", regex in proptest::bool::ANY) {
            let mut v = BTreeMap::new();
            v.insert("x".to_string(), value.clone());
            let op = if regex { "=~" } else { "=" };
            let template = format!("sum(rate(m{{a{op}\"{{{{ variables.x }}}}\", b=\"c\"}}[{{{{ interval }}}}]))");
            let q = render(&template, &vars("t", &v)).unwrap();
            let prefix = format!("sum(rate(m{{a{op}\"");
            proptest::prop_assert!(q.starts_with(&prefix));
            // Read the literal back as PromQL would, up to its closing quote.
            let body = &q[prefix.len()..];
            let mut read = String::new();
            let mut chars = body.chars();
            let mut closed_at = None;
            let mut i = 0;
            while let Some(c) = chars.next() {
                i += c.len_utf8();
                match c {
                    '\\' => {
                        let n = chars.next().unwrap();
                        i += n.len_utf8();
                        read.push(match n { 'n' => '\n', 'r' => '\r', 't' => '\t', other => other });
                    }
                    '"' => { closed_at = Some(i); break; }
                    c => read.push(c),
                }
            }
            let closed_at = closed_at.expect("the literal is closed");
            proptest::prop_assert_eq!(&body[closed_at..], ", b=\"c\"}[1m]))");
            let expected: String = value.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect();
            let expected = if regex { regex_escape(&expected) } else { expected };
            proptest::prop_assert_eq!(read, expected);
        }
    }

    #[test]
    fn refuses_unsafe_bare_values_and_unknown_names() {
        let mut v = BTreeMap::new();
        v.insert("w".to_string(), "5m]) or vector(1".to_string());
        let err = render("rate(x[{{ variables.w }}])", &vars("b", &v)).unwrap_err();
        assert!(matches!(err, QueryError::UnsafeBare { .. }), "{err}");
        let none = BTreeMap::new();
        assert_eq!(
            render("{{ nope }}", &vars("b", &none)).unwrap_err(),
            QueryError::Unknown("nope".into())
        );
        assert_eq!(
            render("x{a=\"{{ variables.missing }}\"}", &vars("b", &none)).unwrap_err(),
            QueryError::MissingVariable("missing".into())
        );
        assert!(matches!(
            placeholders("{{ target"),
            Err(QueryError::Unclosed(0))
        ));
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
