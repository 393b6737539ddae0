//! `#json:FIELD[.FIELD…]`: one field of a secret whose value is a JSON object. A string
//! gives its text; any other value its compact JSON. Messages name the path, never a value.

use akv_core::JsonPath;
use serde_json::Value;

/// Why a field cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonFieldError {
    #[error("the secret's value is not JSON ({0}), so #json:{1} cannot be read from it")]
    NotJson(String, JsonPath),
    #[error("#json:{path}: field '{missing}' is missing{}", at_text(.at))]
    Missing {
        path: JsonPath,
        missing: String,
        at: String,
    },
    #[error("#json:{path}: '{at}' is {kind}, which has no field '{step}'")]
    NotContainer {
        path: JsonPath,
        step: String,
        at: String,
        kind: &'static str,
    },
}

fn at_text(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!(" in '{at}'")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Follows `path` in the JSON `value`.
pub fn field(value: &str, path: &JsonPath) -> Result<String, JsonFieldError> {
    let root: Value = serde_json::from_str(value).map_err(|e| {
        // serde_json's message names a position and a category, never the content.
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends too early".to_string(),
            _ => format!("line {} column {}", e.line(), e.column()),
        };
        JsonFieldError::NotJson(what, path.clone())
    })?;
    let mut current = &root;
    let mut walked: Vec<&str> = Vec::new();
    for step in path.steps() {
        let at = walked.join(".");
        let next = match current {
            Value::Object(map) => map.get(step),
            Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            other => {
                return Err(JsonFieldError::NotContainer {
                    path: path.clone(),
                    step: step.to_string(),
                    at: if at.is_empty() {
                        "the value".into()
                    } else {
                        at
                    },
                    kind: kind(other),
                })
            }
        };
        current = next.ok_or_else(|| JsonFieldError::Missing {
            path: path.clone(),
            missing: step.to_string(),
            at,
        })?;
        walked.push(step);
    }
    Ok(match current {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"user": "app", "password": "p@ss\u0000w", "port": 5432,
        "tls": {"enabled": true, "ca": null}, "hosts": ["a", {"name": "b"}],
        "nested": {"list": [1, 2.5, "x"]}, "0": "zero"}"#;

    fn p(s: &str) -> JsonPath {
        s.parse().expect(s)
    }

    #[test]
    fn follows_paths() {
        for (path, want) in [
            ("user", "app"),
            ("password", "p@ss\0w"),
            ("port", "5432"),
            ("tls", r#"{"ca":null,"enabled":true}"#),
            ("tls.enabled", "true"),
            ("tls.ca", "null"),
            ("hosts", r#"["a",{"name":"b"}]"#),
            ("hosts.0", "a"),
            ("hosts.1.name", "b"),
            ("nested.list.1", "2.5"),
            ("0", "zero"),
        ] {
            assert_eq!(field(DOC, &p(path)).expect(path), want, "{path}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        for (doc, path, want) in [
            (DOC, "missing", "#json:missing: field 'missing' is missing"),
            (DOC, "tls.key", "#json:tls.key: field 'key' is missing in 'tls'"),
            (DOC, "hosts.2", "#json:hosts.2: field '2' is missing in 'hosts'"),
            (DOC, "hosts.x", "#json:hosts.x: field 'x' is missing in 'hosts'"),
            (DOC, "user.x", "#json:user.x: 'user' is a string, which has no field 'x'"),
            ("42", "a", "#json:a: 'the value' is a number, which has no field 'a'"),
            ("s3cr3t", "a", "the secret's value is not JSON (line 1 column 1), so #json:a cannot be read from it"),
            ("{\"a\": ", "a", "the secret's value is not JSON (it ends too early), so #json:a cannot be read from it"),
        ] {
            let err = field(doc, &p(path)).expect_err(path).to_string();
            assert_eq!(err, want, "{path}");
            assert!(!err.contains("s3cr3t"));
        }
    }
}
