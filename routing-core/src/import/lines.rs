//! Field path → line, for messages: one pass of yaml-rust2's marked event stream
//! over the source (serde's YAML values carry no positions).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

struct Receiver {
    target: usize,
    /// Index of the current document (incremented at each `DocumentStart`).
    doc: Option<usize>,
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Receiver {
    fn record(&mut self, path: &str, line: usize) {
        if self.doc == Some(self.target) {
            self.lines.entry(path.to_owned()).or_insert(line);
        }
    }

    /// A node starts: its path, after updating the enclosing frame. `None` for a
    /// mapping key (recorded here, no node of its own).
    fn node(&mut self, scalar_key: Option<&str>, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map {
                path,
                key,
                expecting_key,
            }) => {
                if *expecting_key {
                    *expecting_key = false;
                    let k = scalar_key.unwrap_or("?").to_owned();
                    let p = join(path, &k);
                    *key = Some(k);
                    self.record(&p, line);
                    None
                } else {
                    *expecting_key = true;
                    Some(join(path, key.as_deref().unwrap_or("?")))
                }
            }
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.doc = Some(self.doc.map_or(0, |d| d + 1));
                self.stack.clear();
            }
            Event::Scalar(ref v, ..) => {
                if let Some(p) = self.node(Some(v), line) {
                    self.record(&p, line);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node(None, line) {
                    self.record(&p, line);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A complex key: its content gets the `?` path; the value follows.
                let path = self.node(None, line).unwrap_or_else(|| "?".to_owned());
                self.record(&path, line);
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        expecting_key: true,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// The line (1-based) of every field path of document `doc` (0-based) in `text`:
/// a mapping entry's line is its key's, a sequence item's is its first token's, the
/// document's own is under `""`. Stops quietly at a syntax error.
pub(crate) fn line_map(text: &str, doc: usize) -> HashMap<String, usize> {
    let mut r = Receiver {
        target: doc,
        doc: None,
        stack: Vec::new(),
        lines: HashMap::new(),
    };
    let _ = Parser::new_from_str(text).load(&mut r, true);
    r.lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::line_map;

    #[test]
    fn block_and_flow() {
        let t = "a: 1\nb:\n  - x: 2\n    y: [3, {z: 4}]\n  - w\n---\nc:\n  d: 5\n";
        let m = line_map(t, 0);
        assert_eq!(m["a"], 1);
        assert_eq!(m["b"], 2);
        assert_eq!(m["b[0]"], 3);
        assert_eq!(m["b[0].y"], 4);
        assert_eq!(m["b[0].y[1].z"], 4);
        assert_eq!(m["b[1]"], 5);
        let m = line_map(t, 1);
        assert_eq!(m["c.d"], 8);
        assert!(!m.contains_key("a"));
    }

    #[test]
    fn json() {
        let t = "{\n  \"Rules\": [\n    {\n      \"Priority\": \"1\"\n    }\n  ]\n}\n";
        let m = line_map(t, 0);
        assert_eq!(m["Rules[0].Priority"], 4);
    }

    #[test]
    fn broken_input_gives_what_it_has() {
        let m = line_map("a: 1\nb: [\n", 0);
        assert_eq!(m["a"], 1);
    }
}
