//! Durations as the source formats write them.

use std::time::Duration;

/// Parses a Go / protobuf duration (`1h2m3.5s`, `300ms`, `1.5s`, `10us`, `0s`) as
/// Istio writes them. Fractions are kept to the nanosecond.
pub(crate) fn go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}` (expected e.g. `10s`, `1.5s`, `250ms`, `1h30m`)");
    let t = s.trim();
    if t.is_empty() || t.len() > 64 {
        return Err(bad());
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    if !total.is_finite() || total > 359_999_999.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration as a native one, rounded up to whole milliseconds (the native
/// format's unit); `None` when it is zero.
pub(crate) fn to_config_duration(d: Duration) -> crate::ConfigDuration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    crate::ConfigDuration::new(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
}
