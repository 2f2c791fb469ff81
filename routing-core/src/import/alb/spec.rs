//! The describe-rules JSON as serde reads it (unknown fields refused).

use super::*;

/// `describe-rules` output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Listing {
    pub(super) rules: Vec<Rule>,
    #[serde(default)]
    pub(super) next_marker: Option<String>,
}

/// One listener rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Rule {
    #[serde(default)]
    pub(super) rule_arn: Option<String>,
    #[serde(default)]
    pub(super) priority: Option<String>,
    #[serde(default)]
    pub(super) conditions: Vec<Condition>,
    #[serde(default)]
    pub(super) actions: Vec<Action>,
    #[serde(default)]
    pub(super) is_default: Option<bool>,
    #[serde(default)]
    pub(super) transforms: Vec<Transform>,
}

/// `RuleCondition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Condition {
    #[serde(default)]
    pub(super) field: Option<String>,
    #[serde(default)]
    pub(super) values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) regex_values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) host_header_config: Option<PatternConfig>,
    #[serde(default)]
    pub(super) path_pattern_config: Option<PatternConfig>,
    #[serde(default)]
    pub(super) http_header_config: Option<HttpHeaderConfig>,
    #[serde(default)]
    pub(super) query_string_config: Option<QueryStringConfig>,
    #[serde(default)]
    pub(super) http_request_method_config: Option<ValuesConfig>,
    #[serde(default)]
    pub(super) source_ip_config: Option<ValuesConfig>,
}

/// `HostHeaderConditionConfig` / `PathPatternConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct PatternConfig {
    #[serde(default)]
    pub(super) values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) regex_values: Option<Vec<String>>,
}

/// `HttpHeaderConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct HttpHeaderConfig {
    #[serde(default)]
    pub(super) http_header_name: Option<String>,
    #[serde(default)]
    pub(super) values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) regex_values: Option<Vec<String>>,
}

/// `QueryStringConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct QueryStringConfig {
    #[serde(default)]
    pub(super) values: Vec<QueryPair>,
}

/// `QueryStringKeyValuePair`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct QueryPair {
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) value: Option<String>,
}

/// `HttpRequestMethodConditionConfig` / `SourceIpConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct ValuesConfig {
    #[serde(default)]
    pub(super) values: Vec<String>,
}

/// `Action`. Authentication configurations are not interpreted (they are warned
/// about), so any content is accepted there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Action {
    #[serde(rename = "Type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) target_group_arn: Option<String>,
    #[serde(default)]
    pub(super) authenticate_oidc_config: Option<Value>,
    #[serde(default)]
    pub(super) authenticate_cognito_config: Option<Value>,
    #[serde(default)]
    pub(super) jwt_validation_config: Option<Value>,
    #[serde(default)]
    pub(super) order: Option<i64>,
    #[serde(default)]
    pub(super) redirect_config: Option<Redirect>,
    #[serde(default)]
    pub(super) fixed_response_config: Option<FixedResponse>,
    #[serde(default)]
    pub(super) forward_config: Option<Forward>,
}

/// `RedirectActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Redirect {
    #[serde(default)]
    pub(super) protocol: Option<String>,
    #[serde(default)]
    pub(super) port: Option<String>,
    #[serde(default)]
    pub(super) host: Option<String>,
    #[serde(default)]
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) query: Option<String>,
    pub(super) status_code: String,
}

/// `FixedResponseActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct FixedResponse {
    #[serde(default)]
    pub(super) message_body: Option<String>,
    pub(super) status_code: String,
    #[serde(default)]
    pub(super) content_type: Option<String>,
}

/// `ForwardActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Forward {
    #[serde(default)]
    pub(super) target_groups: Vec<TargetGroupTuple>,
    #[serde(default)]
    pub(super) target_group_stickiness_config: Option<Stickiness>,
}

/// `TargetGroupTuple`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct TargetGroupTuple {
    pub(super) target_group_arn: String,
    #[serde(default)]
    pub(super) weight: Option<i64>,
}

/// `TargetGroupStickinessConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Stickiness {
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) duration_seconds: Option<i64>,
}

/// `RuleTransform`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Transform {
    #[serde(rename = "Type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) host_header_rewrite_config: Option<Rewrites>,
    #[serde(default)]
    pub(super) url_rewrite_config: Option<Rewrites>,
}

/// `HostHeaderRewriteConfig` / `UrlRewriteConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct Rewrites {
    #[serde(default)]
    pub(super) rewrites: Vec<RewriteConfig>,
}

/// `RewriteConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RewriteConfig {
    pub(super) regex: String,
    pub(super) replace: String,
}
