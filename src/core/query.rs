//! Flagger's query templating for MetricTemplates and the built-in Istio checks: the
//! placeholders, the variables they take, and the escaping of values that come from the
//! repository, so a value is always one literal in the query. Pure: the Prometheus adapter
//! runs what this renders.

use std::collections::BTreeMap;

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

/// Why a metric query gave no number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct MetricError {
    /// One line, bounded, free of credentials.
    pub message: String,
    /// The query returned no series.
    pub no_data: bool,
    /// The metrics server could not be reached or was in trouble (connection refused or
    /// broken, no answer in time, HTTP 429 or 5xx): says nothing about the canary.
    pub unreachable: bool,
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
}
