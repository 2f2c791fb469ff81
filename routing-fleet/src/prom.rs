//! A small client of Prometheus' HTTP API: instant queries (`/api/v1/query`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromError {
    /// The base URL or the query does not make a request URI.
    #[error("`{url}` is not a usable Prometheus URL: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request did not get an answer (connection refused, reset, timeout).
    #[error("querying Prometheus at `{url}`: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Prometheus answered with an error (`status: error`: bad query, timeout…).
    #[error("Prometheus refused `{query}` (HTTP {code}, {error_type}): {error}")]
    Api {
        /// The query.
        query: String,
        /// The HTTP status.
        code: u16,
        /// `errorType` (`bad_data`, `timeout`, `execution`…).
        error_type: String,
        /// `error`.
        error: String,
    },
    /// The answer was not the API's JSON, or not an instant vector.
    #[error("unexpected answer to `{query}`: {reason}")]
    Decode {
        /// The query.
        query: String,
        /// Why.
        reason: String,
    },
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (without `__name__` after an aggregation).
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN` when Prometheus says so).
    pub value: f64,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// A Prometheus server's HTTP API, e.g. `http://127.0.0.1:9090`.
///
/// ```no_run
/// # async fn run() -> Result<(), routing_fleet::PromError> {
/// let prom = routing_fleet::Prometheus::new("http://127.0.0.1:9090")?;
/// let up = prom.query("sum(up)", None).await?;
/// println!("{} targets up", up.first().map_or(0.0, |s| s.value));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Prometheus {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Prometheus {
    /// A client of the server at `base` (`http://host:port`, no path).
    ///
    /// # Errors
    /// [`PromError::Url`] unless `base` is an `http://` URL.
    pub fn new(base: &str) -> Result<Self, PromError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: http::Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| PromError::Url {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(PromError::Url {
                url: base,
                reason: "wants http://host:port".into(),
            });
        }
        Ok(Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(5),
        })
    }

    /// The base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Evaluates `query` at `time` (the server's now when `None`) and returns the
    /// instant vector (a scalar answer is one sample without labels).
    ///
    /// # Errors
    /// [`PromError`]: unreachable, refused by Prometheus, or not a vector.
    pub async fn query(
        &self,
        query: &str,
        time: Option<SystemTime>,
    ) -> Result<Vec<Sample>, PromError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("query", query);
        if let Some(t) = time {
            let secs = t
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            form.append_pair("time", &format!("{secs:.3}"));
        }
        let url = format!("{}/api/v1/query?{}", self.base, form.finish());
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| PromError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let unreachable = |reason: String| PromError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let fetch = async {
            let res = self
                .client
                .get(uri)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let code = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, PromError>((code, body))
        };
        let (code, body) = tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))??;
        let decode = |reason: String| PromError::Decode {
            query: query.to_owned(),
            reason,
        };
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            decode(format!(
                "HTTP {code}: {e}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        if answer.status != "success" {
            return Err(PromError::Api {
                query: query.to_owned(),
                code,
                error_type: answer.error_type.unwrap_or_default(),
                error: answer.error.unwrap_or_default(),
            });
        }
        let data = answer.data.ok_or_else(|| decode("no `data`".into()))?;
        match data.result_type.as_str() {
            "vector" => {
                let samples: Vec<VectorSample> =
                    serde_json::from_value(data.result).map_err(|e| decode(e.to_string()))?;
                samples
                    .into_iter()
                    .map(|s| {
                        Ok(Sample {
                            labels: s.metric,
                            value: parse_value(&s.value.1).ok_or_else(|| {
                                decode(format!("`{}` is not a number", s.value.1))
                            })?,
                        })
                    })
                    .collect()
            }
            "scalar" => {
                let (_, v): (f64, String) =
                    serde_json::from_value(data.result).map_err(|e| decode(e.to_string()))?;
                let value =
                    parse_value(&v).ok_or_else(|| decode(format!("`{v}` is not a number")))?;
                Ok(vec![Sample {
                    labels: BTreeMap::new(),
                    value,
                }])
            }
            other => Err(decode(format!("a `{other}`, not an instant vector"))),
        }
    }

    /// The sum of an instant vector's values: 0 for an empty vector (no series).
    ///
    /// # Errors
    /// As [`query`](Self::query).
    pub async fn sum(&self, query: &str, time: Option<SystemTime>) -> Result<f64, PromError> {
        Ok(self
            .query(query, time)
            .await?
            .iter()
            .map(|s| s.value)
            .filter(|v| !v.is_nan())
            .sum())
    }
}

/// Prometheus' number format: Go floats plus `+Inf`, `-Inf`, `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// A PromQL string literal for `s` (double-quoted, `\` and `"` escaped).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as a RE2 regular expression matching itself literally.
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escapes() {
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_value("1.5e3"), Some(1500.0));
        assert_eq!(parse_value("x"), None);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(regex_escape("v1:8080@127.0.0.1"), r"v1:8080@127\.0\.0\.1");
        assert!(matches!(
            Prometheus::new("ftp://x"),
            Err(PromError::Url { .. })
        ));
    }
}
