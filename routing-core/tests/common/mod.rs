//! Helpers shared by the importer tests.
#![allow(dead_code)] // each test file uses some of them

/// The text of `tests/fixtures/import/<kind>/<name>`.
pub(crate) fn fixture(kind: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/import/{kind}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 1-based line of the `nth` (0-based) line of `text` containing `needle`.
pub(crate) fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} not in text"))
        .0
        + 1
}
