//! Unit tests of the import driver: document splitting, lines, lists, native documents
//! and the backend map.
#![allow(clippy::unwrap_used)]

use super::*;
use std::time::Duration;

#[test]
fn go_durations() {
    assert_eq!(go_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(go_duration("1h2m").unwrap(), Duration::from_secs(3720));
    assert_eq!(go_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(go_duration("0s").unwrap(), Duration::ZERO);
    for bad in ["", "s", "1", "1x", "1.2.3s", "-1s", "9999999999h"] {
        assert!(go_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(
        to_config_duration(Duration::from_micros(1500)).to_string(),
        "2ms"
    );
}

#[test]
fn kinds_and_lines() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nbackends: [{name: a}]\nroutes:\n  - name: r\n    rules: [{backends: [{name: a}]}]\n";
    let imported = import(&[Source::new("m.yaml", text)], &ImportOptions::default()).unwrap();
    assert_eq!(imported.kinds, BTreeSet::from([SourceKind::Native]));
    assert_eq!(imported.warnings.len(), 1, "{:?}", imported.warnings);
    assert!(imported.warnings[0].message.contains("Service"));
    assert_eq!(imported.origins[0].at.line, Some(7));
    assert_eq!(imported.origins[0].at.document, 1);
    let err = import(
        &[Source::new("m.yaml", "backends: [{name: a, colour: red}]")],
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.errors()[0].at.path, "backends[0].colour");
    assert_eq!(err.errors()[0].at.line, Some(1));
}

#[test]
fn lists_are_expanded() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: c}\n";
    // Only a ConfigMap: skipped with a warning at its line, and nothing routable
    // is an error, not "ok: 0 routes".
    let err = import(&[Source::new("l.yaml", text)], &ImportOptions::default()).unwrap_err();
    assert_eq!(err.warnings()[0].at.path, "items[0]");
    assert_eq!(err.warnings()[0].at.line, Some(4));
    assert_eq!(err.errors()[0].kind, ImportErrorKind::NothingRoutable);
    assert_eq!(err.errors()[0].at.source, "l.yaml");
    // With a route beside it, the List is read and the ConfigMap skipped.
    let route = "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]\n";
    let imported = import(
        &[Source::new("l.yaml", text), Source::new("r.yaml", route)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(imported.warnings[0].at.path, "items[0]");
    assert_eq!(imported.config.routes.len(), 1);
}

#[test]
fn backend_map_is_strict_when_given() {
    let opts = ImportOptions::default().with_backend_map(BackendMap::default());
    let mut out = Out::new(&opts);
    let at = Location {
        source: "x".into(),
        document: 0,
        resource: None,
        path: "p".into(),
        line: None,
    };
    assert!(out
        .backend(&["h/v1".into(), "h".into()], "h-v1", &at)
        .is_none());
    assert!(matches!(
        &out.errors[0].kind,
        ImportErrorKind::UnknownBackend(m) if m.contains("`h/v1` or `h`")
    ));
}
