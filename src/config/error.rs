//! Configuration problems, each naming the document, the field path and what is wrong.

use std::fmt;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The document: its `metadata.name`, or `document N (Kind)` when it has none.
    pub doc: String,
    /// The field path, e.g. `spec.virtualRouters[0].neighbors[1].peerASN`; empty for the
    /// document as a whole.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(doc: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { doc: doc.into(), path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.doc, self.message)
        } else {
            write!(f, "{}: {}: {}", self.doc, self.path, self.message)
        }
    }
}

/// An error per name seen before in `names`: objects of one `kind` with the same name.
pub(crate) fn same_names<S: AsRef<str>>(names: impl Iterator<Item = S>, kind: &str, out: &mut Vec<ConfigError>) {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        let n = n.as_ref().to_string();
        if !seen.insert(n.clone()) {
            out.push(ConfigError::new(n, "metadata.name", format!("another {kind} has this name")));
        }
    }
}

/// Collects errors for one document, with a path prefix.
pub(crate) struct Diag<'a> {
    pub doc: &'a str,
    pub errors: &'a mut Vec<ConfigError>,
}

impl Diag<'_> {
    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.doc, path, message));
    }

    /// Checks an integer against a range; returns it when it fits.
    pub fn range(&mut self, path: &str, v: i64, lo: i64, hi: i64) -> Option<i64> {
        if v < lo || v > hi {
            self.err(path, format!("must be {lo}..={hi}, got {v}"));
            None
        } else {
            Some(v)
        }
    }
}
