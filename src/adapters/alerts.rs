//! Alert providers: the JSON each chat service expects (Flagger's Slack, Discord, Rocket.Chat,
//! Microsoft Teams and Google Chat messages, and weir's own generic document), and the HTTP
//! delivery of an [`Alert`] to its targets.
//!
//! The payload builders are pure functions of an alert and a target; only [`HttpNotifier`]
//! does I/O. Every value that comes from the alert passes through [`crate::core::text::clean`]
//! (one line, bounded). A target's address, token and proxy are secrets (a Slack webhook URL
//! holds its token): they go on the wire and nowhere else, never into a log or an error.

use crate::adapters::tls::ClientError;
use crate::core::alert::{Alert, StepReport};
use crate::core::join::join_all;
use crate::core::secret::{Scrubber, Secret};
use crate::core::spec::{AlertSeverity, AlertTarget, ProviderKind};
use crate::ports::{BoxFuture, Notifier};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::ser::SerializeMap;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tracing::{debug, warn};

/// Slack channel when the provider names none, as in Flagger.
pub const DEFAULT_CHANNEL: &str = "general";
/// User name shown when the provider names none (Flagger's is `flagger`).
pub const DEFAULT_USERNAME: &str = "weir";
/// The most of an answer weir reads: receivers answer `ok` or a short error.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// The longest value from an alert that a message carries.
const VALUE_MAX: usize = crate::core::events::FIELD_MAX;
/// The longest part of a receiver's error answer that an error message shows.
const ANSWER_SHOWN: usize = 200;

fn clean(value: &str) -> String {
    crate::core::text::clean(value, VALUE_MAX)
}

/// The lowercase name of a provider kind, as an AlertProvider's `spec.type` spells it.
pub fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Slack => "slack",
        ProviderKind::Msteams => "msteams",
        ProviderKind::Discord => "discord",
        ProviderKind::Rocket => "rocket",
        ProviderKind::Gchat => "gchat",
        ProviderKind::Generic => "generic",
    }
}

/// Whether `target` receives alerts of `severity`: its own severity and above.
pub fn takes(target: &AlertTarget, severity: AlertSeverity) -> bool {
    target.min_severity <= severity
}

/// `<name>.<namespace>`, as Flagger titles its messages.
fn workload(alert: &Alert) -> String {
    format!("{}.{}", clean(&alert.app.name), clean(&alert.app.namespace))
}

/// The rows an alert shows, in order: its own fields, then `Phase`, `Canary weight`,
/// `Failed checks` (when any failed), `Failing` (the failing checks) and `Commit` (when
/// published). Names and values are cleaned.
pub fn fields(alert: &Alert) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = alert
        .fields
        .iter()
        .map(|(name, value)| (clean(name), clean(value)))
        .collect();
    out.push(("Phase".into(), alert.phase.to_string()));
    out.push(("Canary weight".into(), format!("{}%", alert.canary_weight)));
    if alert.failed_checks > 0 {
        out.push((
            "Failed checks".into(),
            format!("{}/{}", alert.failed_checks, alert.threshold),
        ));
    }
    if !alert.failing.is_empty() {
        out.push(("Failing".into(), clean(&alert.failing.join("; "))));
    }
    if let Some(commit) = &alert.commit {
        out.push(("Commit".into(), clean(commit)));
    }
    out
}

/// Slack's (and Discord's and Rocket.Chat's) incoming-webhook message: one attachment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackPayload {
    /// The channel.
    pub channel: String,
    /// The user name shown.
    pub username: String,
    /// Always empty: weir sends an emoji.
    pub icon_url: String,
    /// `:rocket:`, as Flagger.
    pub icon_emoji: String,
    /// The one attachment.
    pub attachments: Vec<SlackAttachment>,
}

/// The attachment that carries the message and the fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackAttachment {
    /// `good` or `danger` (Slack), `#0076D7` or `#FF0000` (Rocket.Chat).
    pub color: String,
    /// `<name>.<namespace>`.
    pub author_name: String,
    /// The alert's message.
    pub text: String,
    /// `["text"]`: the message is markdown.
    pub mrkdwn_in: Vec<String>,
    /// The alert's rows.
    pub fields: Vec<SlackField>,
}

/// One row of a Slack attachment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackField {
    /// The row's name.
    pub title: String,
    /// The row's value.
    pub value: String,
    /// Always false: one row per line.
    pub short: bool,
}

/// Slack's documented escaping of `&`, `<` and `>`, without which `<!channel>` in a value
/// would page a whole channel.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_shaped(
    alert: &Alert,
    target: &AlertTarget,
    color: &str,
    escape: fn(&str) -> String,
) -> SlackPayload {
    SlackPayload {
        channel: target
            .channel
            .clone()
            .unwrap_or_else(|| DEFAULT_CHANNEL.into()),
        username: target
            .username
            .clone()
            .unwrap_or_else(|| DEFAULT_USERNAME.into()),
        icon_url: String::new(),
        icon_emoji: ":rocket:".into(),
        attachments: vec![SlackAttachment {
            color: color.into(),
            author_name: workload(alert),
            text: escape(&clean(&alert.message)),
            mrkdwn_in: vec!["text".into()],
            fields: fields(alert)
                .into_iter()
                .map(|(title, value)| SlackField {
                    title: escape(&title),
                    value: escape(&value),
                    short: false,
                })
                .collect(),
        }],
    }
}

/// The Slack message: green, or red (`danger`) for errors. `&`, `<` and `>` in values are
/// escaped as Slack asks.
pub fn slack_payload(alert: &Alert, target: &AlertTarget) -> SlackPayload {
    let color = if alert.severity == AlertSeverity::Error {
        "danger"
    } else {
        "good"
    };
    slack_shaped(alert, target, color, slack_escape)
}

/// The Discord message: Slack's, sent to Discord's Slack-compatible endpoint
/// ([`discord_address`]).
pub fn discord_payload(alert: &Alert, target: &AlertTarget) -> SlackPayload {
    let color = if alert.severity == AlertSeverity::Error {
        "danger"
    } else {
        "good"
    };
    slack_shaped(alert, target, color, str::to_string)
}

/// The Rocket.Chat message: Slack-shaped, blue, or red for errors.
pub fn rocket_payload(alert: &Alert, target: &AlertTarget) -> SlackPayload {
    let color = if alert.severity == AlertSeverity::Error {
        "#FF0000"
    } else {
        "#0076D7"
    };
    slack_shaped(alert, target, color, str::to_string)
}

/// A Microsoft Teams MessageCard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamsPayload {
    /// `MessageCard`.
    #[serde(rename = "@type")]
    pub type_: String,
    /// `http://schema.org/extensions`.
    #[serde(rename = "@context")]
    pub context: String,
    /// `0076D7`, or `FF0000` for errors.
    #[serde(rename = "themeColor")]
    pub theme_color: String,
    /// `<name>.<namespace>`.
    pub summary: String,
    /// One section.
    pub sections: Vec<TeamsSection>,
}

/// The card's section: the message, the workload, the rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsSection {
    /// The alert's message.
    pub activity_title: String,
    /// `<name>.<namespace>`.
    pub activity_subtitle: String,
    /// The alert's rows.
    pub facts: Vec<TeamsFact>,
}

/// One row of a Teams card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamsFact {
    /// The row's name.
    pub name: String,
    /// The row's value.
    pub value: String,
}

/// The Microsoft Teams message.
pub fn msteams_payload(alert: &Alert, _target: &AlertTarget) -> TeamsPayload {
    let color = if alert.severity == AlertSeverity::Error {
        "FF0000"
    } else {
        "0076D7"
    };
    TeamsPayload {
        type_: "MessageCard".into(),
        context: "http://schema.org/extensions".into(),
        theme_color: color.into(),
        summary: workload(alert),
        sections: vec![TeamsSection {
            activity_title: clean(&alert.message),
            activity_subtitle: workload(alert),
            facts: fields(alert)
                .into_iter()
                .map(|(name, value)| TeamsFact { name, value })
                .collect(),
        }],
    }
}

/// A Google Chat card message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GchatPayload {
    /// One card.
    pub cards: Vec<GchatCard>,
}

/// The card: a header and one section per row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GchatCard {
    /// `weir` and `<name>.<namespace>`.
    pub header: GchatHeader,
    /// The message first, then one section per row.
    pub sections: Vec<GchatSection>,
}

/// The card's header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GchatHeader {
    /// `weir`.
    pub title: String,
    /// `<name>.<namespace>`.
    pub subtitle: String,
}

/// A card section of one text widget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GchatSection {
    /// One widget.
    pub widgets: Vec<GchatWidget>,
}

/// A text widget.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GchatWidget {
    /// The text.
    pub text_paragraph: GchatText,
}

/// Text in Google Chat's small HTML subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GchatText {
    /// HTML; every value in it is escaped.
    pub text: String,
}

/// Escapes text for Google Chat's HTML.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn gchat_section(text: String) -> GchatSection {
    GchatSection {
        widgets: vec![GchatWidget {
            text_paragraph: GchatText { text },
        }],
    }
}

/// The Google Chat message: the message in bold, then each row as `name<br><b>value</b>`.
pub fn gchat_payload(alert: &Alert, _target: &AlertTarget) -> GchatPayload {
    let mut sections = vec![gchat_section(format!(
        "<b>{}</b>",
        html_escape(&clean(&alert.message))
    ))];
    sections.extend(fields(alert).into_iter().map(|(name, value)| {
        gchat_section(format!(
            "{}<br><b>{}</b>",
            html_escape(&name),
            html_escape(&value)
        ))
    }));
    GchatPayload {
        cards: vec![GchatCard {
            header: GchatHeader {
                title: "weir".into(),
                subtitle: workload(alert),
            },
            sections,
        }],
    }
}

/// weir's own alert document, for any receiver that reads JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericPayload {
    /// `<namespace>/<name>`.
    pub app: String,
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// `info`, `warn` or `error`.
    pub severity: AlertSeverity,
    /// Flagger's wording of what happened.
    pub message: String,
    /// The phase after the step.
    pub phase: String,
    /// The canary weight after the step, in percent.
    pub canary_weight: u8,
    /// Failed checks so far.
    pub failed_checks: u32,
    /// The failed-checks threshold.
    pub threshold: u32,
    /// The checks that failed, with their values.
    pub failing: Vec<String>,
    /// The commit (or pull request) that made the step; `null` when not published.
    pub commit: Option<String>,
    /// The alert's own rows, as an object in their order.
    pub fields: OrderedFields,
}

/// Rows serialized as a JSON object that keeps their order; a repeated name keeps its first
/// value, so the object has no duplicate keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderedFields(pub Vec<(String, String)>);

impl Serialize for OrderedFields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&(String, String)> =
            self.0.iter().filter(|(k, _)| seen.insert(k)).collect();
        let mut map = serializer.serialize_map(Some(unique.len()))?;
        for (k, v) in unique {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// weir's generic JSON alert.
pub fn generic_payload(alert: &Alert, _target: &AlertTarget) -> GenericPayload {
    let name = clean(&alert.app.name);
    let namespace = clean(&alert.app.namespace);
    GenericPayload {
        app: format!("{namespace}/{name}"),
        name,
        namespace,
        severity: alert.severity,
        message: clean(&alert.message),
        phase: alert.phase.to_string(),
        canary_weight: alert.canary_weight.get(),
        failed_checks: alert.failed_checks,
        threshold: alert.threshold,
        failing: alert.failing.iter().map(|f| clean(f)).collect(),
        commit: alert.commit.as_deref().map(clean),
        fields: OrderedFields(
            alert
                .fields
                .iter()
                .map(|(k, v)| (clean(k), clean(v)))
                .collect(),
        ),
    }
}

/// Any provider's message, serialized as that provider expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Payload {
    /// Slack, Discord, Rocket.Chat.
    Slack(SlackPayload),
    /// Microsoft Teams.
    Teams(TeamsPayload),
    /// Google Chat.
    Gchat(GchatPayload),
    /// weir's generic document.
    Generic(GenericPayload),
}

impl Payload {
    /// The JSON body, keys in the order above.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers always serialize")
    }
}

/// The message for `target`'s kind.
pub fn payload(alert: &Alert, target: &AlertTarget) -> Payload {
    match target.kind {
        ProviderKind::Slack => Payload::Slack(slack_payload(alert, target)),
        ProviderKind::Discord => Payload::Slack(discord_payload(alert, target)),
        ProviderKind::Rocket => Payload::Slack(rocket_payload(alert, target)),
        ProviderKind::Msteams => Payload::Teams(msteams_payload(alert, target)),
        ProviderKind::Gchat => Payload::Gchat(gchat_payload(alert, target)),
        ProviderKind::Generic => Payload::Generic(generic_payload(alert, target)),
    }
}

/// Why an alert did not reach a target. No variant holds the address, token or proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The address is not an absolute http(s) URL.
    #[error("the provider's address is not an absolute http(s) URL")]
    BadAddress,
    /// The proxy cannot be used.
    #[error("the provider's proxy is not a usable http(s) URL")]
    BadProxy,
    /// The token cannot go in an HTTP header.
    #[error("the provider's token cannot be sent in an HTTP header (control characters?)")]
    BadToken,
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Could not connect, or the connection broke.
    #[error("cannot reach the receiver: {0}")]
    Transport(String),
    /// The receiver answered something other than 2xx.
    #[error("the receiver answered HTTP {status}: {answer}")]
    Http {
        /// The status code.
        status: u16,
        /// The start of its answer, cleaned of the target's secrets.
        answer: String,
    },
    /// Slack's Web API answered 200 with `"ok": false`.
    #[error("Slack refused the message: {0}")]
    Refused(String),
}

impl DeliveryError {
    /// Worth another attempt: no answer, or an answer that says "later" (408, 425, 429,
    /// 5xx). A bad address or token, a 3xx or another 4xx will not get better by itself.
    pub fn is_transient(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Transport(_) => true,
            DeliveryError::Http { status, .. } => {
                matches!(status, 408 | 425 | 429) || *status >= 500
            }
            _ => false,
        }
    }
}

/// Where a target's message goes: its address, or for Discord the address's Slack-compatible
/// endpoint.
pub fn endpoint(target: &AlertTarget) -> Result<String, DeliveryError> {
    let address = target.address.expose();
    let url = http_url(address)?;
    match target.kind {
        ProviderKind::Discord => Ok(discord_url(url)),
        _ => Ok(address.to_string()),
    }
}

fn http_url(address: &str) -> Result<url::Url, DeliveryError> {
    match url::Url::parse(address) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        _ => Err(DeliveryError::BadAddress),
    }
}

/// Discord's Slack-compatible endpoint: `<address>/slack`, unless the path already ends in
/// `/slack`. The query (`?wait=true`, `?thread_id=`) is kept.
pub fn discord_address(address: &str) -> Result<String, DeliveryError> {
    http_url(address).map(discord_url)
}

fn discord_url(mut url: url::Url) -> String {
    if !url.path().ends_with("/slack") {
        let path = format!("{}/slack", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url.to_string()
}

/// The headers of a delivery: JSON, and Slack's bearer token when the target has one. No
/// other kind gets the token, as in Flagger.
pub fn request_headers(target: &AlertTarget) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let (ProviderKind::Slack, Some(token)) = (target.kind, &target.token) {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| DeliveryError::BadToken)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// A scrubber that knows a target's secrets, and the parts of its address an answer may
/// echo (the path of a Slack or Discord webhook is its token).
fn scrubber(target: &AlertTarget) -> Scrubber {
    let mut secrets = vec![target.address.expose().to_string()];
    for s in [&target.token, &target.proxy].into_iter().flatten() {
        secrets.push(s.expose().to_string());
    }
    if let Ok(url) = url::Url::parse(target.address.expose()) {
        secrets.push(url.path().to_string());
        secrets.extend(url.query().map(str::to_string));
        secrets.extend(
            url.path()
                .split('/')
                .filter(|s| s.len() >= 8)
                .map(str::to_string),
        );
    }
    Scrubber::new(secrets)
}

/// How hard [`HttpNotifier`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierSettings {
    /// Time allowed for one attempt, answer included.
    pub timeout: Duration,
    /// Attempts per target (at least one is made).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each next one.
    pub retry_wait: Duration,
}

impl Default for NotifierSettings {
    /// 5 s per attempt (Flagger's), 3 attempts, waits of 1 s then 2 s.
    fn default() -> NotifierSettings {
        NotifierSettings {
            timeout: Duration::from_secs(5),
            attempts: 3,
            retry_wait: Duration::from_secs(1),
        }
    }
}

/// What became of an alert at one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The target's `namespace/name`, for logs.
    pub provider: String,
    /// The target's kind.
    pub kind: ProviderKind,
    /// The attempt that succeeded, or why the last one failed.
    pub outcome: Result<u32, DeliveryError>,
}

/// Proxied clients kept at most; beyond that a client is built for the call.
const PROXY_CLIENTS_MAX: usize = 32;

/// Posts alerts to alert providers over HTTP(S) (rustls). Targets are served concurrently;
/// each gets bounded attempts; failures are logged, never returned.
pub struct HttpNotifier {
    settings: NotifierSettings,
    direct: reqwest::Client,
    /// One client per proxy (a client's proxy is fixed when it is built), made on first use.
    proxied: Mutex<HashMap<String, reqwest::Client>>,
}

impl std::fmt::Debug for HttpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpNotifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpNotifier {
    /// Builds the client for targets without a proxy.
    pub fn new(settings: NotifierSettings) -> Result<HttpNotifier, ClientError> {
        crate::adapters::tls::install_crypto_provider();
        let direct = client_builder(&settings)
            .build()
            .map_err(|source| ClientError {
                what: "alert",
                source,
            })?;
        Ok(HttpNotifier {
            settings,
            direct,
            proxied: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &NotifierSettings {
        &self.settings
    }

    fn client(&self, proxy: Option<&Secret>) -> Result<reqwest::Client, DeliveryError> {
        let Some(proxy) = proxy else {
            return Ok(self.direct.clone());
        };
        let key = proxy.expose();
        let mut cache = self.proxied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = cache.get(key) {
            return Ok(client.clone());
        }
        match url::Url::parse(key) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => return Err(DeliveryError::BadProxy),
        }
        // reqwest's error would print the proxy URL, which may hold credentials.
        let proxy = reqwest::Proxy::all(key).map_err(|_| DeliveryError::BadProxy)?;
        let client = client_builder(&self.settings)
            .proxy(proxy)
            .build()
            .map_err(|_| DeliveryError::BadProxy)?;
        if cache.len() < PROXY_CLIENTS_MAX {
            cache.insert(key.to_string(), client.clone());
        }
        Ok(client)
    }

    /// Delivers `alert` to each target that takes its severity, all at once, and says what
    /// became of each (in the order of the targets). Failures are also logged, naming the
    /// provider and never its address.
    pub async fn deliver(&self, alert: &Alert) -> Vec<Delivery> {
        let deliveries = alert
            .targets
            .iter()
            .filter(|t| takes(t, alert.severity))
            .map(|t| self.deliver_one(alert, t));
        crate::core::join::join_all(deliveries).await
    }

    async fn deliver_one(&self, alert: &Alert, target: &AlertTarget) -> Delivery {
        let outcome = self.attempts(alert, target).await;
        let kind = kind_name(target.kind);
        match &outcome {
            Ok(attempt) => debug!(
                provider = %target.provider,
                kind,
                app = %alert.app,
                attempt,
                "alert delivered"
            ),
            Err(error) => warn!(
                provider = %target.provider,
                kind,
                app = %alert.app,
                error = %error,
                "alert not delivered"
            ),
        }
        Delivery {
            provider: target.provider.clone(),
            kind: target.kind,
            outcome,
        }
    }

    async fn attempts(&self, alert: &Alert, target: &AlertTarget) -> Result<u32, DeliveryError> {
        let url = endpoint(target)?;
        let headers = request_headers(target)?;
        let client = self.client(target.proxy.as_ref())?;
        let body = payload(alert, target).to_json();
        let scrub = scrubber(target);
        let attempts = self.settings.attempts.max(1);
        let mut wait = self.settings.retry_wait;
        let mut attempt = 1;
        loop {
            let request = client
                .post(&url)
                .headers(headers.clone())
                .body(body.clone());
            match self.send(request, target, &scrub).await {
                Ok(()) => return Ok(attempt),
                Err(e) if e.is_transient() && attempt < attempts => {
                    debug!(
                        provider = %target.provider,
                        kind = kind_name(target.kind),
                        attempt,
                        error = %e,
                        "alert attempt failed; trying again"
                    );
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            attempt += 1;
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        target: &AlertTarget,
        scrub: &Scrubber,
    ) -> Result<(), DeliveryError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(e, self.settings.timeout, scrub))?;
        let status = response.status();
        // An answer that breaks off after a 2xx still means the message was taken.
        let answer = read_answer(&mut response).await;
        if !status.is_success() {
            return Err(DeliveryError::Http {
                status: status.as_u16(),
                answer: shown(&answer, scrub),
            });
        }
        // Slack's Web API (chat.postMessage, used with a token) answers 200 and says in the
        // body whether it took the message; incoming webhooks answer `ok` as text.
        if target.kind == ProviderKind::Slack && target.token.is_some() {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer) {
                if v.get("ok") == Some(&serde_json::Value::Bool(false)) {
                    let why = v
                        .get("error")
                        .and_then(|e| e.as_str())
                        .unwrap_or("no reason");
                    return Err(DeliveryError::Refused(shown(why.as_bytes(), scrub)));
                }
            }
        }
        Ok(())
    }
}

/// Reads at most [`MAX_RESPONSE`] bytes of an answer; what cannot be read is left.
async fn read_answer(response: &mut reqwest::Response) -> Vec<u8> {
    let mut answer = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE - answer.len();
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if answer.len() >= MAX_RESPONSE {
            break;
        }
    }
    answer
}

/// The start of an answer, one line, without the target's secrets.
fn shown(answer: &[u8], scrub: &Scrubber) -> String {
    let text = String::from_utf8_lossy(answer);
    crate::core::text::clean(&scrub.scrub(&text), ANSWER_SHOWN)
}

fn transport_error(e: reqwest::Error, timeout: Duration, scrub: &Scrubber) -> DeliveryError {
    if e.is_timeout() {
        return DeliveryError::Timeout(timeout);
    }
    // reqwest puts the URL in its message: take it out, then scrub what the causes say.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    DeliveryError::Transport(crate::core::text::clean(&scrub.scrub(&message), VALUE_MAX))
}

fn client_builder(settings: &NotifierSettings) -> reqwest::ClientBuilder {
    // No redirects: a webhook that moves is a configuration to fix, and following one would
    // send the message (and, for Slack, its token) to a place nobody configured.
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
}

impl Notifier for HttpNotifier {
    fn notify<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Each failure is already logged by `deliver`.
            self.deliver(alert).await;
        })
    }
}

/// Several notifiers, each told everything.
#[derive(Clone, Default)]
pub struct Fanout(pub Vec<std::sync::Arc<dyn Notifier>>);

impl Notifier for Fanout {
    fn notify<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            join_all(self.0.iter().map(|n| n.notify(alert))).await;
        })
    }

    fn step<'a>(&'a self, step: &'a StepReport) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            join_all(self.0.iter().map(|n| n.step(step))).await;
        })
    }
}

/// The notifier when no alert provider is configured: the log already has every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify<'a>(&'a self, _alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::app::AppRef;
    use crate::core::spec::Phase;
    use crate::core::spec::Weight;

    fn target(kind: ProviderKind) -> AlertTarget {
        AlertTarget {
            provider: "prod/on-call".into(),
            kind,
            address: Secret::new("https://hooks.example.com/services/T0/B0/SECRETPATHTOKEN"),
            token: None,
            channel: None,
            username: None,
            proxy: None,
            min_severity: AlertSeverity::Info,
        }
    }

    fn alert(severity: AlertSeverity) -> Alert {
        Alert {
            app: AppRef {
                namespace: "prod".into(),
                name: "backend".into(),
                dir: "apps/backend".into(),
            },
            severity,
            message: "Rolling back backend.prod failed checks threshold reached 2".into(),
            phase: Phase::Failed,
            canary_weight: Weight::new(20).unwrap(),
            failed_checks: 2,
            threshold: 2,
            failing: vec![
                "request-success-rate 91.3 < 99".into(),
                "request-duration 620 > 500".into(),
            ],
            commit: Some("0123456789abcdef".into()),
            fields: vec![
                ("Target".into(), "Deployment/backend.prod".into()),
                ("Traffic routing".into(), "Weight step: 10 max: 50".into()),
            ],
            targets: vec![],
        }
    }

    fn pretty(p: &Payload) -> String {
        let text = serde_json::to_string_pretty(p).unwrap();
        // Key order as sent, not as a map would sort it.
        assert_eq!(
            serde_json::to_vec(p).unwrap(),
            p.to_json(),
            "to_json is the compact form"
        );
        text
    }

    #[test]
    fn slack_payload_is_flaggers_with_weirs_name() {
        let p = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Slack));
        insta::assert_snapshot!("slack", pretty(&p));
        let info = slack_payload(&alert(AlertSeverity::Info), &target(ProviderKind::Slack));
        assert_eq!(info.attachments[0].color, "good");
        assert_eq!(
            (info.channel.as_str(), info.username.as_str()),
            ("general", "weir")
        );
        let mut t = target(ProviderKind::Slack);
        t.channel = Some("on-call".into());
        t.username = Some("canary-bot".into());
        let named = slack_payload(&alert(AlertSeverity::Warn), &t);
        assert_eq!(
            (named.channel.as_str(), named.username.as_str()),
            ("on-call", "canary-bot")
        );
        assert_eq!(named.attachments[0].color, "good");
    }

    #[test]
    fn slack_control_sequences_in_values_are_escaped() {
        let mut a = alert(AlertSeverity::Info);
        a.message = "hello <!channel> & <@U123>".into();
        let p = slack_payload(&a, &target(ProviderKind::Slack));
        assert_eq!(
            p.attachments[0].text,
            "hello &lt;!channel&gt; &amp; &lt;@U123&gt;"
        );
    }

    #[test]
    fn discord_and_rocket_payloads_are_slack_shaped() {
        let d = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Discord));
        insta::assert_snapshot!("discord", pretty(&d));
        let r = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Rocket));
        insta::assert_snapshot!("rocket", pretty(&r));
        let ok = rocket_payload(&alert(AlertSeverity::Warn), &target(ProviderKind::Rocket));
        assert_eq!(ok.attachments[0].color, "#0076D7");
    }

    #[test]
    fn msteams_payload_is_a_message_card() {
        let p = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Msteams));
        insta::assert_snapshot!("msteams", pretty(&p));
        let ok = msteams_payload(&alert(AlertSeverity::Info), &target(ProviderKind::Msteams));
        assert_eq!(ok.theme_color, "0076D7");
    }

    #[test]
    fn gchat_payload_is_cards_with_escaped_html() {
        let p = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Gchat));
        insta::assert_snapshot!("gchat", pretty(&p));
        let mut a = alert(AlertSeverity::Info);
        a.message = "<script>x</script> & \"q\"".into();
        a.fields = vec![("<i>".into(), "a<b".into())];
        let g = gchat_payload(&a, &target(ProviderKind::Gchat));
        let sections = &g.cards[0].sections;
        assert_eq!(
            sections[0].widgets[0].text_paragraph.text,
            "<b>&lt;script&gt;x&lt;/script&gt; &amp; &quot;q&quot;</b>"
        );
        assert_eq!(
            sections[1].widgets[0].text_paragraph.text,
            "&lt;i&gt;<br><b>a&lt;b</b>"
        );
    }

    #[test]
    fn generic_payload_is_weirs_document() {
        let p = payload(&alert(AlertSeverity::Error), &target(ProviderKind::Generic));
        insta::assert_snapshot!("generic", pretty(&p));
        let mut a = alert(AlertSeverity::Info);
        a.commit = None;
        a.failing.clear();
        a.failed_checks = 0;
        a.fields = vec![
            ("b".into(), "1".into()),
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
        ];
        let text =
            String::from_utf8(payload(&a, &target(ProviderKind::Generic)).to_json()).unwrap();
        assert!(
            text.ends_with(r#""failing":[],"commit":null,"fields":{"b":"1","a":"2"}}"#),
            "{text}"
        );
        assert!(text.contains(r#""severity":"info","#), "{text}");
    }

    #[test]
    fn fields_follow_the_alerts_own_and_skip_what_is_unknown() {
        let all = fields(&alert(AlertSeverity::Error));
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Target",
                "Traffic routing",
                "Phase",
                "Canary weight",
                "Failed checks",
                "Failing",
                "Commit"
            ]
        );
        assert_eq!(all[3].1, "20%");
        assert_eq!(all[4].1, "2/2");
        assert_eq!(
            all[5].1,
            "request-success-rate 91.3 < 99; request-duration 620 > 500"
        );
        let mut a = alert(AlertSeverity::Info);
        a.failed_checks = 0;
        a.failing.clear();
        a.commit = None;
        a.fields.clear();
        let names: Vec<String> = fields(&a).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Phase", "Canary weight"]);
    }

    #[test]
    fn values_from_the_alert_are_one_bounded_line() {
        let mut a = alert(AlertSeverity::Info);
        a.message = format!("line one\nSigned-off-by: x\r\n{}", "y".repeat(1000));
        a.fields = vec![("Na\nme".into(), "v\u{7}al\nue".into())];
        a.commit = Some("abc\ndef".into());
        for kind in [
            ProviderKind::Slack,
            ProviderKind::Msteams,
            ProviderKind::Gchat,
            ProviderKind::Generic,
        ] {
            let text = String::from_utf8(payload(&a, &target(kind)).to_json()).unwrap();
            assert!(!text.contains("\\n") && !text.contains("\\r"), "{text}");
            assert!(!text.contains("\\u0007"), "{text}");
            assert!(!text.contains(&"y".repeat(301)), "{kind:?} is bounded");
        }
        let g = generic_payload(&a, &target(ProviderKind::Generic));
        assert_eq!(g.message.chars().count(), 303, "300 characters and `...`");
        assert_eq!(g.commit.as_deref(), Some("abc def"));
    }

    #[test]
    fn discord_gets_the_slack_endpoint_once() {
        for (address, expected) in [
            (
                "https://discord.com/api/webhooks/1/abc",
                "https://discord.com/api/webhooks/1/abc/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/abc/",
                "https://discord.com/api/webhooks/1/abc/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/abc/slack",
                "https://discord.com/api/webhooks/1/abc/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/abc?wait=true",
                "https://discord.com/api/webhooks/1/abc/slack?wait=true",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/slack"),
        ] {
            assert_eq!(discord_address(address).unwrap(), expected, "{address}");
        }
        assert_eq!(
            discord_address("discord.com/x"),
            Err(DeliveryError::BadAddress)
        );
        assert_eq!(discord_address("ftp://x/y"), Err(DeliveryError::BadAddress));
        let mut t = target(ProviderKind::Discord);
        t.address = Secret::new("https://discord.com/api/webhooks/1/abc");
        assert_eq!(
            endpoint(&t).unwrap(),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        let slack = target(ProviderKind::Slack);
        assert_eq!(endpoint(&slack).unwrap(), slack.address.expose());
    }

    #[test]
    fn targets_take_their_severity_and_above() {
        let mut t = target(ProviderKind::Slack);
        let all = [
            AlertSeverity::Info,
            AlertSeverity::Warn,
            AlertSeverity::Error,
        ];
        let taken = |t: &AlertTarget| -> Vec<AlertSeverity> {
            all.into_iter().filter(|s| takes(t, *s)).collect()
        };
        assert_eq!(taken(&t), all);
        t.min_severity = AlertSeverity::Warn;
        assert_eq!(taken(&t), [AlertSeverity::Warn, AlertSeverity::Error]);
        t.min_severity = AlertSeverity::Error;
        assert_eq!(taken(&t), [AlertSeverity::Error]);
    }

    #[test]
    fn only_slack_gets_the_bearer_token() {
        for kind in [
            ProviderKind::Slack,
            ProviderKind::Msteams,
            ProviderKind::Discord,
            ProviderKind::Rocket,
            ProviderKind::Gchat,
            ProviderKind::Generic,
        ] {
            let mut t = target(kind);
            t.token = Some(Secret::new("xoxb-123"));
            let headers = request_headers(&t).unwrap();
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            let auth = headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap());
            if kind == ProviderKind::Slack {
                assert_eq!(auth, Some("Bearer xoxb-123"));
                assert!(headers[AUTHORIZATION].is_sensitive());
            } else {
                assert_eq!(auth, None, "{kind:?}");
            }
        }
        assert!(request_headers(&target(ProviderKind::Slack))
            .unwrap()
            .get(AUTHORIZATION)
            .is_none());
        let mut bad = target(ProviderKind::Slack);
        bad.token = Some(Secret::new("x\ny"));
        assert_eq!(request_headers(&bad), Err(DeliveryError::BadToken));
    }

    #[test]
    fn answers_are_shown_without_the_targets_secrets() {
        let mut t = target(ProviderKind::Slack);
        t.token = Some(Secret::new("xoxb-token-value"));
        let scrub = scrubber(&t);
        let echoed = "no_service: POST /services/T0/B0/SECRETPATHTOKEN with xoxb-token-value";
        let text = shown(echoed.as_bytes(), &scrub);
        assert!(!text.contains("SECRETPATHTOKEN"), "{text}");
        assert!(!text.contains("xoxb-token-value"), "{text}");
        assert!(text.starts_with("no_service: POST "), "{text}");
    }

    #[test]
    fn only_some_failures_are_worth_another_attempt() {
        let http = |status| DeliveryError::Http {
            status,
            answer: String::new(),
        };
        for status in [408, 425, 429, 500, 502, 503] {
            assert!(http(status).is_transient(), "{status}");
        }
        for status in [301, 400, 403, 404, 410] {
            assert!(!http(status).is_transient(), "{status}");
        }
        assert!(DeliveryError::Transport("reset".into()).is_transient());
        assert!(DeliveryError::Timeout(Duration::from_secs(5)).is_transient());
        assert!(!DeliveryError::BadAddress.is_transient());
        assert!(!DeliveryError::Refused("invalid_auth".into()).is_transient());
    }
}
