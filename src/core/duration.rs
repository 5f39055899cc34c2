//! Go-style durations as Flagger writes them (`15s`, `1m30s`, `500ms`, `2h`).
//!
//! Owns parsing and printing only; it never reads a clock.

use std::fmt;
use std::time::Duration;

/// The longest duration weir reads: ten years, far beyond any analysis interval, and far
/// below what would overflow a time computed from it.
const MAX_MS: u64 = 10 * 366 * 24 * 3_600_000;

/// A duration written the way Kubernetes and Flagger write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration; write it like 30s, 1m or 1m30s (units: ms, s, m, h)")]
pub struct DurationError {
    /// The text that was refused.
    pub input: String,
}

impl GoDuration {
    /// Parses `1h2m3s`, `500ms`, `10s`. A bare `0` is zero; other bare numbers are refused
    /// because Flagger refuses them too.
    pub fn parse(input: &str) -> Result<GoDuration, DurationError> {
        let err = || DurationError {
            input: input.to_string(),
        };
        let s = input.trim();
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if s.is_empty() {
            return Err(err());
        }
        let mut total_ms: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .ok_or_else(err)?;
            if digits == 0 {
                return Err(err());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let factor_ms = match &rest[..unit_len] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return Err(err()),
            };
            rest = &rest[unit_len..];
            let term = (number * factor_ms).round();
            if !term.is_finite() || term > MAX_MS as f64 {
                return Err(err());
            }
            total_ms = total_ms.saturating_add(term as u128);
        }
        if total_ms > u128::from(MAX_MS) {
            return Err(err());
        }
        let ms = u64::try_from(total_ms).map_err(|_| err())?;
        Ok(GoDuration(Duration::from_millis(ms)))
    }

    /// The std duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for GoDuration {
    /// Prints the shortest exact form: `1m30s`, `15s`, `500ms`; PromQL accepts all of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        let h = secs / 3600;
        secs %= 3600;
        let m = secs / 60;
        secs %= 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if secs > 0 {
            write!(f, "{secs}s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        let nines = "9".repeat(400);
        assert!(GoDuration::parse(&format!("{nines}h")).is_err());
        assert!(GoDuration::parse(&format!("{nines}h{nines}h")).is_err());
        assert!(GoDuration::parse("18446744073709551615ms").is_err());
        assert!(GoDuration::parse("87600h").is_ok());
        assert!(GoDuration::parse("100000h").is_err());
    }

    #[test]
    fn parses_flagger_forms() {
        let cases = [
            ("15s", 15_000),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("2h", 7_200_000),
            ("1.5s", 1_500),
            ("0", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                GoDuration::parse(text).unwrap().0,
                Duration::from_millis(ms),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        for bad in ["10", "", "s", "10x", "1m10", "-5s"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_round_trip() {
        for text in ["15s", "1m", "1m30s", "500ms", "2h", "1h0m5s"] {
            let d = GoDuration::parse(text).unwrap();
            assert_eq!(GoDuration::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(GoDuration::parse("90s").unwrap().to_string(), "1m30s");
    }
}
