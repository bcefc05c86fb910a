//! A YAML document as a tree that remembers where each value was written,
//! so an error about a compose file names its line and column. yaml-rust2
//! parses (the YAML 1.2 test suite passes through it); this file only
//! builds the tree from its events, resolving anchors, aliases and the
//! `<<` merge key that compose files use for shared blocks (`x-common: &c`).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a value starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct At {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for At {
    fn from(m: Marker) -> At {
        At {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// One value and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub at: At,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// Any scalar, as written (numbers and booleans too: compose reads
    /// `5432` and `"5432"` alike).
    Text(String),
    List(Vec<Node>),
    /// Keys in file order, each with where it was written.
    Map(Vec<(String, At, Node)>),
}

impl Node {
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Text(_) => "a single value",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub at: At,
    pub message: String,
}

/// Parses the first document of `src` (an empty file is `Null`).
pub(crate) fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut b, false).map_err(|e| SyntaxError {
        at: (*e.marker()).into(),
        message: e.info().to_string(),
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.done.unwrap_or(Node {
        at: At { line: 1, column: 1 },
        value: Value::Null,
    }))
}

/// A container under construction: the node, its anchor id, a map's key
/// waiting for its value, and the keys a `<<` merge put in (which the
/// map's own keys replace, wherever they are written).
type Open = (Node, usize, Option<(String, At)>, Vec<String>);

/// Collects events into nodes; containers under construction on a stack.
#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    done: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, _, pending_key, merged)) = self.stack.last_mut() else {
            self.done.get_or_insert(node);
            return;
        };
        match &mut parent.value {
            Value::List(items) => items.push(node),
            Value::Map(entries) => match pending_key.take() {
                None => {
                    let key = match &node.value {
                        Value::Text(s) => s.clone(),
                        Value::Null => String::new(),
                        _ => {
                            self.error.get_or_insert(SyntaxError {
                                at: node.at,
                                message: "a key must be a single value, not a list or mapping"
                                    .into(),
                            });
                            String::new()
                        }
                    };
                    *pending_key = Some((key, node.at));
                }
                Some((key, at)) if key == "<<" => merge(entries, merged, node, at, &mut self.error),
                Some((key, at)) => {
                    // Compose's YAML reader refuses a repeated key; a
                    // merged one is replaced.
                    if let Some(m) = merged.iter().position(|k| *k == key) {
                        merged.remove(m);
                        entries.retain(|(k, _, _)| *k != key);
                    } else if entries.iter().any(|(k, _, _)| *k == key) {
                        self.error.get_or_insert(SyntaxError {
                            at,
                            message: format!("`{key}` appears twice in this mapping"),
                        });
                    }
                    entries.push((key, at, node));
                }
            },
            _ => unreachable!("only lists and maps are pushed"),
        }
    }
}

/// `<<: *base` (or a list of them): the base's keys, unless the map
/// already has them.
fn merge(
    entries: &mut Vec<(String, At, Node)>,
    merged: &mut Vec<String>,
    node: Node,
    at: At,
    error: &mut Option<SyntaxError>,
) {
    let bases = match node.value {
        Value::List(l) => l,
        _ => vec![node],
    };
    for base in bases {
        match base.value {
            Value::Map(m) => {
                for (k, kat, v) in m {
                    if !entries.iter().any(|(e, _, _)| *e == k) {
                        merged.push(k.clone());
                        entries.push((k, kat, v));
                    }
                }
            }
            _ => {
                error.get_or_insert(SyntaxError {
                    at,
                    message: "`<<` merges mappings only".into(),
                });
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at: At = mark.into();
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain_null = style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let value = if plain_null {
                    Value::Null
                } else {
                    Value::Text(text)
                };
                self.push_value(Node { at, value }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    at,
                    value: Value::List(Vec::new()),
                },
                anchor,
                None,
                Vec::new(),
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    at,
                    value: Value::Map(Vec::new()),
                },
                anchor,
                None,
                Vec::new(),
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor, _, _)) = self.stack.pop() {
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.at = at;
                    self.push_value(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        at,
                        message: "an alias (`*name`) to an anchor that is not defined above it"
                            .into(),
                    });
                }
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_place_and_merges_resolve() {
        let src = "x-base: &base\n  restart: always\n  image: a\nservices:\n  db:\n    <<: *base\n    image: postgres:15\n    ports: [\"5432:5432\"]\n";
        let doc = parse(src).unwrap();
        let db = doc.get("services").unwrap().get("db").unwrap();
        assert_eq!(db.get("image").unwrap().as_text(), Some("postgres:15"));
        assert_eq!(db.get("restart").unwrap().as_text(), Some("always"));
        assert_eq!(db.get("image").unwrap().at.line, 7);
    }

    #[test]
    fn a_repeated_key_is_refused_where_it_repeats() {
        let e = parse("services:\n  db:\n    image: a\n    image: b\n").unwrap_err();
        assert_eq!((e.at.line, e.at.column), (4, 5), "{e:?}");
        assert!(e.message.contains("image"), "{e:?}");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let e = parse("services:\n  db:\n    image: [unclosed\n").unwrap_err();
        assert!(e.at.line >= 3, "{e:?}");
    }
}
