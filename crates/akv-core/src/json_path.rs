//! The path of a `#json:FIELD[.FIELD…]` part: fields of a JSON object, or decimal array
//! indexes, separated by dots. Parsing only; following a path is akv-env's.

use std::fmt;
use std::str::FromStr;

use crate::reference::ReferenceError;

/// The longest field name.
pub const FIELD_MAX: usize = 128;
/// The most fields a path may have.
pub const DEPTH_MAX: usize = 32;

/// A checked JSON path, e.g. `db.hosts.0`. Each step is 1 to [`FIELD_MAX`] of
/// `[A-Za-z0-9_-]`; a step of decimal digits also indexes an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(Vec<String>);

impl JsonPath {
    /// The steps, in order.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl FromStr for JsonPath {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::EmptyJsonPath);
        }
        let steps: Vec<&str> = s.split('.').collect();
        if steps.len() > DEPTH_MAX {
            return Err(ReferenceError::JsonPathTooDeep(steps.len()));
        }
        for step in &steps {
            if step.is_empty() {
                return Err(ReferenceError::EmptyJsonField(s.to_string()));
            }
            if step.len() > FIELD_MAX {
                return Err(ReferenceError::JsonFieldTooLong(step.len()));
            }
            if let Some(c) = step
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            {
                return Err(ReferenceError::BadJsonFieldChar {
                    field: step.to_string(),
                    found: crate::reference::CharDesc(c),
                });
            }
        }
        Ok(JsonPath(steps.into_iter().map(str::to_string).collect()))
    }
}
