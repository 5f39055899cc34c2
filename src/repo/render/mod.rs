//! Renders the folder weir owns for an app: the routing from the templates in `templates/`
//! (embedded in the binary; a user may point weir at a folder of their own with the same file
//! names), the primary derived from the promoted source (`primary.rs`), the component that
//! scales the canary between releases (`replicas.rs`), and the record.
//!
//! Output is a pure function of (Canary, record, promoted source, current source): same
//! input, same bytes
//! and the same tree id, so an unchanged step shows no diff. It never reads the repository
//! or decides anything.

pub mod primary;
pub mod replicas;
pub mod routes;

use crate::core::names::{REPLICAS_COMPONENT, STATE_FILE};
use crate::core::record::State;
use crate::core::spec::Canary;
use crate::repo::kustomize::{AppSource, Selector};
use crate::repo::objects::{Dir, Node, ObjectId};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// Template files weir renders (the routing), in the order they are listed.
pub const TEMPLATE_FILES: [&str; 3] = [
    "services.yaml",
    "destinationrules.yaml",
    "virtualservice.yaml",
];

/// The folder of the primary in the owned folder.
pub const PRIMARY_DIR: &str = "primary";
/// The name guards in the owned folder.
pub const GUARDS_FILE: &str = "guards.yaml";
/// weir's kustomization in the owned folder.
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

const EMBEDDED: [(&str, &str); 3] = [
    (
        "services.yaml",
        include_str!("../../../templates/services.yaml"),
    ),
    (
        "destinationrules.yaml",
        include_str!("../../../templates/destinationrules.yaml"),
    ),
    (
        "virtualservice.yaml",
        include_str!("../../../templates/virtualservice.yaml"),
    ),
];

/// A template that cannot be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A user template folder lacks a file or cannot be read.
    #[error("template folder {dir}: cannot read {file}: {message}")]
    Load {
        dir: String,
        file: String,
        message: String,
    },
    /// Syntax error or failed expression in a template.
    #[error("template {file}: {message}")]
    Template { file: String, message: String },
    /// The template rendered something that is not YAML.
    #[error("template {file} rendered invalid YAML for {app}: {message}")]
    Output {
        file: String,
        app: String,
        message: String,
    },
}

/// The loaded templates.
pub struct Templates {
    env: Environment<'static>,
    /// The id of all template sources together.
    digest: ObjectId,
}

impl Templates {
    /// The templates embedded in the binary.
    pub fn embedded() -> Result<Templates, RenderError> {
        Self::build(
            EMBEDDED
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )
    }

    /// Templates from their sources, `(file name, text)`; every file of [`TEMPLATE_FILES`]
    /// must be there (the disk adapter reads a folder of them).
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<Templates, RenderError> {
        Self::build(sources)
    }

    /// An id of the templates' sources: two sets render alike when their ids are the same.
    pub fn digest(&self) -> ObjectId {
        self.digest
    }

    fn build(mut sources: Vec<(String, String)>) -> Result<Templates, RenderError> {
        sources.sort();
        let all: Vec<u8> = sources
            .iter()
            .flat_map(|(n, t)| [n.as_bytes(), b"\0", t.as_bytes(), b"\0"].concat())
            .collect();
        let digest = ObjectId::for_blob(&all);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Templates quote what they place with `tojson`; no implicit escaping of comments.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_trim_blocks(false);
        env.set_keep_trailing_newline(true);
        env.add_filter("toyaml", to_yaml);
        for (name, text) in sources {
            env.add_template_owned(name.clone(), text)
                .map_err(|e| RenderError::Template {
                    file: name.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates { env, digest })
    }

    /// Renders weir's whole folder for one app: routing for `state`, the primary from
    /// `primary` (the app's source at `state.promoted_commit`), guards, the replicas
    /// component of the canary from `current` (the source the canary is built from now), and
    /// the record.
    pub fn render_owned(
        &self,
        canary: &Canary,
        selector: &Selector,
        state: &State,
        primary: &AppSource,
        current: &AppSource,
    ) -> Result<Dir, RenderError> {
        let ctx = Context {
            name: &canary.name,
            namespace: &canary.namespace,
            phase: state.phase.to_string(),
            service: ServiceCtx::from(canary),
            selector_label: &selector.label,
            primary_selector: format!("{}-primary", selector.value),
            canary_selector: &selector.value,
            apex_selector: match state.phase {
                crate::core::spec::Phase::Initializing => selector.value.clone(),
                _ => format!("{}-primary", selector.value),
            },
            canary_weight: state.canary_weight.get(),
            primary_weight: state.canary_weight.complement().get(),
            mirrored: state.mirrored,
            hosts: routes::hosts(canary),
            http: routes::http_routes(canary, state),
            extra_ports: primary
                .extra_ports
                .iter()
                .map(|(name, port)| PortCtx { name, port: *port })
                .collect(),
        };
        let mut dir = Dir::default();
        for file in TEMPLATE_FILES {
            let tmpl = self
                .env
                .get_template(file)
                .map_err(|e| RenderError::Template {
                    file: file.to_string(),
                    message: e.to_string(),
                })?;
            let text = tmpl.render(&ctx).map_err(|e| RenderError::Template {
                file: file.to_string(),
                message: describe(&e),
            })?;
            let text = normalise(&text);
            check_yaml(&text).map_err(|e| RenderError::Output {
                file: file.to_string(),
                app: format!("{}/{}", canary.namespace, canary.name),
                message: e.to_string(),
            })?;
            dir.file(file, text);
        }
        let commit = state.promoted_commit.as_deref().unwrap_or("");
        dir.insert(
            PRIMARY_DIR,
            Node::Dir(primary::primary_dir(canary, selector, primary, commit)),
        );
        dir.file(GUARDS_FILE, primary::guards_file(canary, primary));
        dir.file(
            KUSTOMIZATION_FILE,
            primary::owned_kustomization(primary, &TEMPLATE_FILES),
        );
        dir.file(
            &format!("{REPLICAS_COMPONENT}/{KUSTOMIZATION_FILE}"),
            replicas::component(canary, state.phase, current),
        );
        dir.file(
            STATE_FILE,
            crate::core::record::render(&canary.name, &canary.namespace, state),
        );
        Ok(dir)
    }
}

#[derive(Serialize)]
struct Context<'a> {
    name: &'a str,
    namespace: &'a str,
    phase: String,
    service: ServiceCtx<'a>,
    selector_label: &'a str,
    primary_selector: String,
    canary_selector: &'a str,
    /// The apex Service's pods: the primary's, but the target's while the primary is being
    /// created (`Initializing`), so that the Service never points at pods not ready yet.
    apex_selector: String,
    canary_weight: u8,
    primary_weight: u8,
    /// Traffic is mirrored to the canary.
    mirrored: bool,
    /// The VirtualService's hosts (none for a delegate).
    hosts: Vec<String>,
    /// The VirtualService's `http` routes for this step, for every strategy.
    http: Vec<serde_yaml::Value>,
    /// Ports `portDiscovery` adds to the Services.
    extra_ports: Vec<PortCtx<'a>>,
}

#[derive(Serialize)]
struct PortCtx<'a> {
    name: &'a str,
    port: u16,
}

#[derive(Serialize)]
struct ServiceCtx<'a> {
    name: &'a str,
    port: u16,
    port_name: &'a str,
    target_port: &'a serde_json::Value,
    app_protocol: Option<&'a str>,
    traffic_distribution: Option<&'a str>,
    headless: bool,
    delegation: bool,
    apex: &'a crate::core::spec::Metadata,
    primary: &'a crate::core::spec::Metadata,
    canary: &'a crate::core::spec::Metadata,
    gateways: &'a [String],
    hosts: &'a [String],
    traffic_policy: Option<&'a serde_json::Value>,
    #[serde(rename = "match")]
    match_: &'a [serde_json::Value],
    retries: Option<&'a serde_json::Value>,
    timeout: Option<&'a str>,
    headers: Option<&'a serde_json::Value>,
    cors_policy: Option<&'a serde_json::Value>,
    rewrite: Option<&'a serde_json::Value>,
}

impl<'a> ServiceCtx<'a> {
    fn from(c: &'a Canary) -> ServiceCtx<'a> {
        let s = &c.service;
        ServiceCtx {
            name: &s.name,
            port: s.port,
            port_name: &s.port_name,
            target_port: &s.target_port,
            app_protocol: s.app_protocol.as_deref(),
            traffic_distribution: s.traffic_distribution.as_deref(),
            headless: s.headless,
            delegation: s.delegation,
            apex: &s.apex,
            primary: &s.primary,
            canary: &s.canary,
            gateways: &s.gateways,
            hosts: &s.hosts,
            traffic_policy: s.traffic_policy.as_ref(),
            match_: &s.match_,
            retries: s.retries.as_ref(),
            timeout: s.timeout.as_deref(),
            headers: s.headers.as_ref(),
            cors_policy: s.cors_policy.as_ref(),
            rewrite: s.rewrite.as_ref(),
        }
    }
}

/// `{{ value | toyaml(8) }}`: block YAML whose continuation lines are indented by `indent`,
/// in the templates' own style (strings quoted as JSON, lists indented under their key,
/// keys in their order).
fn to_yaml(value: minijinja::Value, indent: usize) -> Result<String, minijinja::Error> {
    let json = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let pad = " ".repeat(indent);
    Ok(block(&json)
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                line.clone()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The lines of `v` as block YAML, at indent 0.
fn block(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value as J;
    match v {
        J::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (k, v) in map {
                let k = yaml_key(k);
                match v {
                    J::Object(m) if !m.is_empty() => {
                        out.push(format!("{k}:"));
                        out.extend(block(v).into_iter().map(|l| format!("  {l}")));
                    }
                    J::Array(a) if !a.is_empty() => {
                        out.push(format!("{k}:"));
                        out.extend(block(v).into_iter().map(|l| format!("  {l}")));
                    }
                    _ => out.push(format!("{k}: {}", scalar(v))),
                }
            }
            out
        }
        J::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                let lines = block(item);
                for (i, l) in lines.into_iter().enumerate() {
                    out.push(if i == 0 {
                        format!("- {l}")
                    } else {
                        format!("  {l}")
                    });
                }
            }
            out
        }
        _ => vec![scalar(v)],
    }
}

/// A scalar (or an empty collection) on one line: strings as JSON, which YAML reads as a
/// double-quoted scalar.
fn scalar(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Object(_) => "{}".to_string(),
        J::Array(_) => "[]".to_string(),
        other => other.to_string(),
    }
}

/// A key as written: plain when it cannot be read as anything but that string.
fn yaml_key(k: &str) -> String {
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        k.to_string()
    } else {
        serde_json::Value::String(k.to_string()).to_string()
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// One trailing newline, no trailing spaces: stable bytes whatever the template's whitespace.
fn normalise(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    while out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    out
}

fn check_yaml(text: &str) -> Result<(), crate::core::yaml::YamlError> {
    crate::core::yaml::documents(text).map(|_| ())
}
