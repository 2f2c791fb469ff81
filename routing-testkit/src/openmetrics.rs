//! A strict parser of the OpenMetrics text format, for tests of the exporters
//! (`routing_tower::metrics`, `routing_ebpf::metrics`).
//!
//! It checks the structure, not only the values: `# HELP` then `# TYPE` (and an
//! optional `# UNIT`) open each family, every sample belongs to the family opened last
//! with a suffix its type allows (`_total` for a counter, none for a gauge, `_bucket`,
//! `_sum` or `_count` for a histogram), families are not repeated, metric names are
//! valid, label values are quoted (with `\\`, `\"` and `\n` escapes), and the text
//! ends with exactly one `# EOF`.
//!
//! ```
//! use routing_testkit::openmetrics::{parse, value};
//! let text = "# HELP hits Requests.\n# TYPE hits counter\nhits_total{backend=\"v1\"} 3\n# EOF\n";
//! let (types, samples) = parse(text).unwrap();
//! assert_eq!(types["hits"], "counter");
//! assert_eq!(value(&samples, "hits_total", &[("backend", "v1")]), Some(3.0));
//! assert!(parse("hits_total 3\n").is_err(), "no `# EOF`");
//! ```

use std::collections::HashMap;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with its suffix (`hits_total`).
    pub name: String,
    /// The labels, in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf` is infinity).
    pub value: f64,
}

/// Parses OpenMetrics text, checking its structure (see the module docs): the type of
/// each family by name, and every sample in order.
///
/// # Errors
/// A message naming the first line that breaks the format.
///
/// ```
/// let text = "# HELP up Up.\n# TYPE up gauge\nup 1\n# EOF\n";
/// let (_, samples) = routing_testkit::openmetrics::parse(text).unwrap();
/// assert_eq!(samples[0].value, 1.0);
/// ```
pub fn parse(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut help: Option<String> = None;
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !text.ends_with('\n') || lines.last() != Some(&"# EOF") {
        return Err("must end with `# EOF\\n`".into());
    }
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split(' ').next().unwrap_or_default().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').ok_or("TYPE without type")?;
            if help.as_deref() != Some(name) {
                return Err(format!("TYPE {name} not after its HELP"));
            }
            if !["counter", "gauge", "histogram"].contains(&ty) {
                return Err(format!("unexpected type {ty}"));
            }
            if types.insert(name.to_owned(), ty.to_owned()).is_some() {
                return Err(format!("family {name} repeated"));
            }
            current = Some((name.to_owned(), ty.to_owned()));
        } else if line.starts_with("# UNIT ") {
        } else if line.starts_with('#') {
            return Err(format!("unexpected comment {line}"));
        } else {
            let sample = parse_sample(line)?;
            let (family, ty) = current.as_ref().ok_or("sample before any TYPE")?;
            let suffix = sample
                .name
                .strip_prefix(family.as_str())
                .ok_or_else(|| format!("{} outside family {family}", sample.name))?;
            let allowed: &[&str] = match ty.as_str() {
                "counter" => &["_total"],
                "gauge" => &[""],
                _ => &["_bucket", "_sum", "_count"],
            };
            if !allowed.contains(&suffix) {
                return Err(format!("{} not allowed in {ty} {family}", sample.name));
            }
            samples.push(sample);
        }
    }
    Ok((types, samples))
}

/// Parses one sample line: `name{k="v",…} value` or `name value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let (series, value) = line.rsplit_once(' ').ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().map_err(|_| format!("bad value in {line}"))?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let mut body = rest.strip_suffix('}').ok_or("unclosed labels")?;
            let mut labels = Vec::new();
            while !body.is_empty() {
                let (key, rest) = body.split_once("=\"").ok_or("bad label")?;
                // The value ends at the first unescaped quote.
                let mut val = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => val.push('\n'),
                            Some((_, c)) => val.push(c),
                            None => return Err("dangling escape".into()),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => val.push(c),
                        None => return Err("unterminated label value".into()),
                    }
                };
                labels.push((key.to_owned(), val));
                body = &rest[end + 1..];
                body = body.strip_prefix(',').unwrap_or(body);
            }
            (name, labels)
        }
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid_name {
        return Err(format!("bad metric name in {line}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The value of the sample named `name` with exactly these labels (in any order).
///
/// ```
/// use routing_testkit::openmetrics::{parse, value};
/// let text = "# HELP up Up.\n# TYPE up gauge\nup{a=\"1\",b=\"2\"} 1\n# EOF\n";
/// let (_, s) = parse(text).unwrap();
/// assert_eq!(value(&s, "up", &[("b", "2"), ("a", "1")]), Some(1.0));
/// assert_eq!(value(&s, "up", &[("a", "1")]), None, "every label must be given");
/// ```
#[must_use]
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_errors_are_found() {
        let ok = "# HELP a A.\n# TYPE a counter\na_total{x=\"q\\\"\\n,\"} 1\n# EOF\n";
        let (_, s) = parse(ok).expect("valid");
        assert_eq!(s[0].labels, [("x".to_owned(), "q\"\n,".to_owned())]);
        for bad in [
            "# HELP a A.\n# TYPE a counter\na 1\n# EOF\n",
            "# TYPE a counter\na_total 1\n# EOF\n",
            "# HELP a A.\n# TYPE a counter\na_total 1\n# HELP a A.\n# TYPE a counter\n# EOF\n",
            "# HELP a A.\n# TYPE a gauge\nb 1\n# EOF\n",
            "# HELP a A.\n# TYPE a summary\n# EOF\n",
            "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n# EOF\n",
            "# HELP a A.\n# TYPE a gauge\na 1\n# EOF\n# EOF\n",
            "# HELP a A.\n# TYPE a gauge\na one\n# EOF\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
        let h = "# HELP l L.\n# TYPE l histogram\n# UNIT l seconds\nl_bucket{le=\"+Inf\"} 2\nl_sum 0.5\nl_count 2\n# EOF\n";
        assert_eq!(parse(h).expect("histogram").1.len(), 3);
    }
}
