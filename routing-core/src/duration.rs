//! Durations written the Gateway API way (GEP-2257): `10s`, `250ms`, `1h30m`.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration in configuration, written as one to four `<number><unit>` parts with the
/// units `h`, `m`, `s`, `ms` (GEP-2257), e.g. `10s`, `1h30m`, `250ms`, `0s`.
///
/// ```
/// use routing_core::ConfigDuration;
/// let d: ConfigDuration = "1m30s".parse().unwrap();
/// assert_eq!(d.as_duration(), std::time::Duration::from_secs(90));
/// assert_eq!(d.to_string(), "1m30s");
/// assert!("1.5s".parse::<ConfigDuration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    /// Wraps a [`Duration`] (sub-millisecond parts are kept but not printed).
    ///
    /// ```
    /// use routing_core::ConfigDuration;
    /// assert_eq!(ConfigDuration::new(std::time::Duration::from_millis(1500)).to_string(), "1s500ms");
    /// ```
    #[must_use]
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }

    /// The duration.
    ///
    /// ```
    /// # use routing_core::ConfigDuration;
    /// assert_eq!("2h".parse::<ConfigDuration>().unwrap().as_duration().as_secs(), 7200);
    /// ```
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        self.0
    }
}

/// `99999h59m59s999ms`, the longest duration with a valid canonical form.
const MAX_MS: u64 = 99_999 * 3_600_000 + 59 * 60_000 + 59 * 1_000 + 999;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}`: expected one to four parts like `10s`, `250ms`, `1h30m` (units h, m, s, ms; at most 5 digits each; at most 99999h59m59s999ms in all)")]
pub struct DurationParseError(String);

impl std::str::FromStr for ConfigDuration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError(s.to_owned());
        let bytes = s.as_bytes();
        let (mut i, mut parts, mut total_ms) = (0usize, 0u32, 0u64);
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() || digits.len() > 5 {
                return Err(err());
            }
            let n: u64 = digits.parse().map_err(|_| err())?;
            let unit_ms = if s[i..].starts_with("ms") {
                i += 2;
                1
            } else if s[i..].starts_with('h') {
                i += 1;
                3_600_000
            } else if s[i..].starts_with('m') {
                i += 1;
                60_000
            } else if s[i..].starts_with('s') {
                i += 1;
                1_000
            } else {
                return Err(err());
            };
            parts += 1;
            if parts > 4 {
                return Err(err());
            }
            total_ms += n * unit_ms; // at most 4 * 99_999 h: no overflow
        }
        // Cap at the largest duration whose canonical form (`Display`) is itself valid, so
        // that everything that parses can be written back: `99999h1h` parses by the
        // grammar but `100000h` would not.
        if parts == 0 || total_ms > MAX_MS {
            return Err(err());
        }
        Ok(Self(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `10s`, `250ms` or `1h30m`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_api_examples() {
        for (s, ms) in [
            ("0s", 0),
            ("0h0m0s", 0),
            ("1h", 3_600_000),
            ("500ms", 500),
            ("2h600ms", 7_200_600),
            ("1h2m3s4ms", 3_723_004),
            ("99999s", 99_999_000),
            ("99999h59m59s999ms", u128::from(MAX_MS)),
        ] {
            let d: ConfigDuration = s.parse().unwrap_or_else(|e| panic!("{s} must parse: {e}"));
            assert_eq!(d.as_duration().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn rejects_what_gep_2257_rejects() {
        for s in [
            "",
            "1",
            "s",
            "1.5s",
            "-1s",
            "1d",
            "100000s",
            "1h1m1s1ms1h",
            " 1s",
            "1s ",
            "1S",
            "1µs",
        ] {
            assert!(
                s.parse::<ConfigDuration>().is_err(),
                "`{s}` must be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["1h30m", "250ms", "0s", "1h2m3s4ms"] {
            let d: ConfigDuration = s.parse().expect("valid");
            assert_eq!(d.to_string(), s);
        }
    }
}
