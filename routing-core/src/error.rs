//! Typed errors for configuration parsing, validation and routing outcomes.

use std::fmt;

/// The format a configuration was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML (read with `serde_yaml_ng`).
    Yaml,
    /// JSON.
    Json,
    /// TOML.
    Toml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Toml => "TOML",
        })
    }
}

/// Why a configuration was rejected. The table that was live stays live.
///
/// ```
/// use routing_core::{Config, ConfigError};
/// let err = Config::from_yaml("routes: 7").unwrap_err();
/// assert!(matches!(err, ConfigError::Parse { .. }));
/// assert!(err.to_string().contains("routes"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The document is not well-formed, has a field of the wrong type, or a field
    /// that the model does not know (`deny_unknown_fields`).
    #[error("{format} error at `{path}`{}: {message}", location(*.line, *.column))]
    Parse {
        /// The format being read.
        format: Format,
        /// Field path of the offending value, e.g. `routes[2].rules[0].backends[1].weight`
        /// (`.` for the document root).
        path: String,
        /// 1-based line of the error, when the format reports it.
        line: Option<usize>,
        /// 1-based column of the error, when the format reports it.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The document parsed but breaks one or more rules of the model; every problem
    /// found is listed, each with its field path.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl ConfigError {
    /// The validation errors, if this is [`ConfigError::Invalid`].
    ///
    /// ```
    /// use routing_core::Config;
    /// let yaml = "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: b}]}]}]";
    /// let err = Config::from_yaml(yaml).unwrap().validate().unwrap_err();
    /// assert_eq!(err.errors()[0].path, "routes[0].rules[0].backends[0].name");
    /// ```
    #[must_use]
    pub fn validation(&self) -> Option<&ValidationErrors> {
        match self {
            ConfigError::Invalid(v) => Some(v),
            ConfigError::Parse { .. } => None,
        }
    }

    /// The validation errors (empty for a parse error).
    ///
    /// ```
    /// use routing_core::Config;
    /// let err = Config::from_yaml("backends: [{name: ''}]").unwrap().validate().unwrap_err();
    /// assert_eq!(err.errors()[0].path, "backends[0].name");
    /// ```
    #[must_use]
    pub fn errors(&self) -> &[ValidationError] {
        self.validation().map_or(&[], ValidationErrors::errors)
    }
}

/// Every validation problem found in one configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub(crate) Vec<ValidationError>);

impl ValidationErrors {
    /// The individual errors, in document order.
    ///
    /// ```
    /// use routing_core::{Config, ValidationErrorKind};
    /// let yaml = "backends: [{name: a}, {name: a}]\nroutes: []";
    /// let err = Config::from_yaml(yaml).unwrap().validate().unwrap_err();
    /// assert!(matches!(err.errors()[0].kind, ValidationErrorKind::DuplicateName { .. }));
    /// ```
    #[must_use]
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} error{})",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// One validation problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ValidationError {
    /// Field path, e.g. `routes[2].rules[0].backends[1].weight`.
    pub path: String,
    /// What is wrong.
    pub kind: ValidationErrorKind,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationErrorKind {
    /// A list that must hold at least one element is empty.
    #[error("must not be empty")]
    Empty,
    /// A name is used twice where names must be unique.
    #[error("duplicate name `{name}` (first used at `{first}`)")]
    DuplicateName {
        /// The repeated name.
        name: String,
        /// Field path of the first use.
        first: String,
    },
    /// A backend reference names no backend declared under `backends`.
    #[error("unknown backend `{name}`")]
    UnknownBackend {
        /// The name referred to.
        name: String,
    },
    /// A weight is above [`MAX_WEIGHT`](crate::MAX_WEIGHT).
    #[error("weight {weight} is above the maximum {max}")]
    WeightOutOfRange {
        /// The weight given.
        weight: u64,
        /// The largest weight allowed.
        max: u32,
    },
    /// A regular expression does not compile (or exceeds the size limit).
    #[error("invalid regular expression `{pattern}`: {message}")]
    InvalidRegex {
        /// The pattern.
        pattern: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A hostname is not a valid DNS name or `*.`-wildcard.
    #[error("invalid hostname `{host}`: {reason}")]
    InvalidHostname {
        /// The hostname given.
        host: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A path is not absolute or holds characters a request path cannot.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A header name, header value, method or scheme is not valid HTTP.
    #[error("invalid {what} `{value}`")]
    InvalidHttp {
        /// Which kind of token (`header name`, `method`, …).
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Exactly one of several mutually exclusive fields must be set.
    #[error("exactly one of {} must be set", list(.fields))]
    ExactlyOne {
        /// The field names.
        fields: &'static [&'static str],
    },
    /// A number is outside its allowed range.
    #[error("{value} is out of range (allowed: {allowed})")]
    OutOfRange {
        /// The value given.
        value: String,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// The Maglev table size is not a prime number.
    #[error("maglev table size {size} is not prime (try 65537, 131071 or 655373)")]
    MaglevSizeNotPrime {
        /// The size given.
        size: u64,
    },
    /// At least one of several fields must be set.
    #[error("at least one of {} must be set", list(.fields))]
    AtLeastOne {
        /// The field names.
        fields: &'static [&'static str],
    },
    /// The field is valid alone but contradicts another part of the configuration.
    #[error("{reason}")]
    Conflict {
        /// What contradicts what.
        reason: &'static str,
    },
}

fn list(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collects validation errors with their field paths.
#[derive(Default)]
pub(crate) struct Errors(Vec<ValidationError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, kind: ValidationErrorKind) {
        self.0.push(ValidationError {
            path: path.into(),
            kind,
        });
    }

    pub(crate) fn append(&mut self, mut other: Errors) {
        self.0.append(&mut other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

/// Why a request could not be given a backend. The HTTP layer maps [`RouteError::NoRoute`]
/// to 404 and [`RouteError::NoBackend`] to 503.
///
/// ```
/// use routing_core::{RouteError, Router, RequestInfo};
/// let router = Router::from_yaml("backends: [{name: a}]\nroutes: [{name: r, hostnames: [x.test], rules: [{backends: [{name: a}]}]}]").unwrap();
/// let err = router.load().decide(&RequestInfo::get("http://y.test/"), &mut rand::rng()).unwrap_err();
/// assert_eq!(err, RouteError::NoRoute);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No rule matches the request.
    #[error("no route matches the request")]
    NoRoute,
    /// A rule matched but none of its backends can take new traffic (all weights are
    /// zero, every backend is ejected and the panic threshold is not reached, or a
    /// retry excluded all the others). `rule` is its index in
    /// [`RouteTable::rules`](crate::RouteTable::rules), so the caller can name it
    /// without matching again.
    #[error("no backend available for rule {rule}")]
    NoBackend {
        /// Index of the rule that matched.
        rule: usize,
    },
    /// A TCP connection's service has no target that can take it.
    #[error("no target available for tcp service {service}")]
    NoTarget {
        /// Index of the service in
        /// [`RouteTable::tcp_services`](crate::RouteTable::tcp_services).
        service: usize,
    },
}
