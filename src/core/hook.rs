//! A webhook call and its answer: the values the hooks port carries.

/// Flagger's webhook payload, fields in Flagger's order. `metadata` is left out when empty,
/// and its keys are sorted, as Go encodes a map.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookPayload {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// The phase Flagger would send for this hook type.
    pub phase: String,
    /// A stable id of the revision under analysis.
    pub checksum: String,
    /// The hook's metadata (for `event` hooks, with eventMessage, eventType, timestamp).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A webhook call: where, what, how long to wait, how often to try.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// The hook's name in the Canary, for messages.
    pub name: String,
    /// The hook's URL.
    pub url: String,
    /// The JSON payload.
    pub payload: HookPayload,
    /// How long to wait for each attempt.
    pub timeout: std::time::Duration,
    /// Attempts after the first, on a transport error, 429 or a 5xx other than 501.
    pub retries: u32,
    /// `disableTLS`: do not verify the server's certificate.
    pub insecure_tls: bool,
}

/// What a webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// HTTP 200, 201 or 202 (Flagger's rule: anything above 202 fails).
    Passed,
    /// Anything else, or no answer: why, in one bounded line free of credentials.
    Failed(String),
}
