//! When to send a GitHub request again, and how long to wait first: pure functions of the
//! answer's status, its rate-limit headers, the attempts made and the time, so that every
//! case is a table row. The adapter ([`super::rest`]) sleeps; this module only decides.
//!
//! GitHub's rules (docs.github.com, "Rate limits for the REST API"): a 429, or a 403 with
//! `x-ratelimit-remaining: 0` or a message about a secondary rate limit, means "not now";
//! `retry-after` (seconds) says how long to wait, else `x-ratelimit-reset` (epoch seconds)
//! says when the limit lifts, else wait at least a minute. A wait longer than weir's cap is
//! not waited inside a tick: the error says when to come back.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How hard to try one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The longest wait inside one call; a rate limit that lifts later ends the call with a
    /// transient error that says when.
    pub max_wait: Duration,
    /// The wait before the first retry after a server error; doubled each time.
    pub backoff_min: Duration,
    /// The longest wait after a server error.
    pub backoff_max: Duration,
}

impl Default for RetrySettings {
    /// Four attempts, waits of at most a minute (GitHub's advice for secondary limits), server
    /// errors retried after 1, 2 and 4 seconds.
    fn default() -> RetrySettings {
        RetrySettings {
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// The parts of an answer that decide a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The `retry-after` header.
    pub retry_after: Option<&'a str>,
    /// The `x-ratelimit-remaining` header.
    pub remaining: Option<&'a str>,
    /// The `x-ratelimit-reset` header (epoch seconds).
    pub reset: Option<&'a str>,
    /// GitHub's `message`, or the start of the body.
    pub message: &'a str,
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the answer: a success, or an error a retry would only repeat.
    Done,
    /// Send the request again after this wait.
    RetryAfter(Duration),
    /// Stop: rate limited for longer than the cap, or out of attempts. `retry_at` is when
    /// GitHub said the limit lifts, when it said.
    GiveUp {
        /// When to try again, when known.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// What GitHub asks to wait after a secondary rate limit without a `retry-after`.
pub const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// Whether an answer is a rate limit rather than a refusal.
pub fn is_rate_limited(answer: &Answer<'_>) -> bool {
    match answer.status {
        429 => true,
        403 => {
            answer.remaining.map(str::trim) == Some("0")
                || answer.message.to_ascii_lowercase().contains("rate limit")
        }
        _ => false,
    }
}

/// How long a rate-limited answer asks to wait.
pub fn rate_limit_wait(answer: &Answer<'_>, now: DateTime<Utc>) -> Duration {
    if let Some(secs) = answer
        .retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_secs(secs);
    }
    if answer.remaining.map(str::trim) == Some("0") {
        if let Some(reset) = answer.reset.and_then(|v| v.trim().parse::<i64>().ok()) {
            let secs = reset.saturating_sub(now.timestamp()).max(1);
            return Duration::from_secs(secs.unsigned_abs());
        }
    }
    SECONDARY_WAIT
}

/// The wait before retry number `retry` (1 for the first) after a server error.
pub fn backoff(settings: &RetrySettings, retry: u32) -> Duration {
    2u32.checked_pow(retry.saturating_sub(1))
        .and_then(|factor| settings.backoff_min.checked_mul(factor))
        .map_or(settings.backoff_max, |wait| wait.min(settings.backoff_max))
}

/// Decides about `answer`, after `attempts` attempts (1 after the first). Server errors are
/// retried only when `retry_server_errors` (a request GitHub may have carried out before it
/// failed, such as posting a comment, is not sent twice).
pub fn decide(
    settings: &RetrySettings,
    answer: &Answer<'_>,
    attempts: u32,
    retry_server_errors: bool,
    now: DateTime<Utc>,
) -> Verdict {
    let out_of_attempts = attempts >= settings.max_attempts;
    if is_rate_limited(answer) {
        let wait = rate_limit_wait(answer, now);
        let retry_at = chrono::Duration::from_std(wait)
            .ok()
            .and_then(|d| now.checked_add_signed(d));
        if out_of_attempts || wait > settings.max_wait {
            return Verdict::GiveUp { retry_at };
        }
        return Verdict::RetryAfter(wait);
    }
    if (500..=599).contains(&answer.status) {
        if retry_server_errors && !out_of_attempts {
            return Verdict::RetryAfter(backoff(settings, attempts));
        }
        return Verdict::GiveUp { retry_at: None };
    }
    Verdict::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn answer(status: u16) -> Answer<'static> {
        Answer {
            status,
            retry_after: None,
            remaining: Some("4999"),
            reset: Some("1700003600"),
            message: "",
        }
    }

    fn decide1(a: &Answer<'_>, attempts: u32) -> Verdict {
        decide(&RetrySettings::default(), a, attempts, true, now())
    }

    #[test]
    fn successes_and_refusals_are_kept() {
        for status in [200, 201, 204, 400, 401, 404, 405, 409, 422] {
            assert_eq!(decide1(&answer(status), 1), Verdict::Done, "{status}");
        }
        let forbidden = Answer {
            message: "Resource not accessible by integration",
            ..answer(403)
        };
        assert_eq!(decide1(&forbidden, 1), Verdict::Done);
    }

    #[test]
    fn rate_limits_wait_as_github_asks() {
        let too_many = Answer {
            retry_after: Some("7"),
            ..answer(429)
        };
        assert_eq!(
            decide1(&too_many, 1),
            Verdict::RetryAfter(Duration::from_secs(7))
        );
        let primary = Answer {
            remaining: Some("0"),
            reset: Some("1700000030"),
            message: "API rate limit exceeded for user ID 1.",
            ..answer(403)
        };
        assert_eq!(
            decide1(&primary, 1),
            Verdict::RetryAfter(Duration::from_secs(30))
        );
        let secondary = Answer {
            message: "You have exceeded a secondary rate limit. Please wait a few minutes.",
            ..answer(403)
        };
        assert_eq!(decide1(&secondary, 1), Verdict::RetryAfter(SECONDARY_WAIT));
        // A reset already past still waits a second.
        let past = Answer {
            reset: Some("1699999000"),
            ..primary
        };
        assert_eq!(
            decide1(&past, 1),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }

    #[test]
    fn long_limits_and_spent_attempts_give_up_with_the_time_to_come_back() {
        let hour = Answer {
            remaining: Some("0"),
            reset: Some("1700003600"),
            ..answer(403)
        };
        assert_eq!(
            decide1(&hour, 1),
            Verdict::GiveUp {
                retry_at: DateTime::from_timestamp(1_700_003_600, 0)
            }
        );
        let short = Answer {
            retry_after: Some("2"),
            ..answer(429)
        };
        assert_eq!(
            decide1(&short, 4),
            Verdict::GiveUp {
                retry_at: DateTime::from_timestamp(1_700_000_002, 0)
            }
        );
    }

    #[test]
    fn server_errors_back_off_and_are_not_repeated_when_unsafe() {
        assert_eq!(
            decide1(&answer(502), 1),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            decide1(&answer(500), 3),
            Verdict::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(decide1(&answer(503), 4), Verdict::GiveUp { retry_at: None });
        let settings = RetrySettings::default();
        assert_eq!(
            decide(&settings, &answer(502), 1, false, now()),
            Verdict::GiveUp { retry_at: None }
        );
        let capped = RetrySettings {
            max_attempts: 40,
            ..settings
        };
        assert_eq!(backoff(&capped, 30), capped.backoff_max);
    }
}
