//! Reading a payload: the body becomes a `serde_json::Value` once, and fields are taken from it
//! by dotted paths. A missing or mistyped field the event needs is `MissingField(path)`, not a
//! serde message that could quote the body.

use serde_json::Value;

use crate::WebhookError;

/// Strings taken from a payload longer than this are dropped (URLs, refs) — nothing real is.
const MAX_URL_OR_REF: usize = 2048;

/// The body as a JSON object.
pub(crate) fn object(body: &[u8]) -> Result<Value, WebhookError> {
    if body.starts_with(b"payload=") {
        return Err(WebhookError::MalformedJson {
            detail: "it is form-encoded (payload=…); set the webhook's content type to \
                     application/json"
                .into(),
        });
    }
    // serde_json's syntax messages say where and what ("expected value at line 1 column 1"),
    // never quote the input; parsing into `Value` raises no type errors (which would).
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson {
        detail: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(WebhookError::MalformedJson {
            detail: "the top level is not an object".into(),
        });
    }
    Ok(value)
}

/// The value at a dotted path (`repository.clone_url`); object keys only.
pub(crate) fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    get(v, path)?.as_str()
}

pub(crate) fn require_str<'a>(v: &'a Value, path: &'static str) -> Result<&'a str, WebhookError> {
    str_at(v, path).ok_or(WebhookError::MissingField(path))
}

/// A non-empty string at `path`.
pub(crate) fn require_name<'a>(v: &'a Value, path: &'static str) -> Result<&'a str, WebhookError> {
    str_at(v, path)
        .filter(|s| !s.trim().is_empty())
        .ok_or(WebhookError::MissingField(path))
}

/// A non-negative integer, written as a number or as a string of digits.
pub(crate) fn u64_at(v: &Value, path: &str) -> Option<u64> {
    match get(v, path)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn require_u64(v: &Value, path: &'static str) -> Result<u64, WebhookError> {
    u64_at(v, path).ok_or(WebhookError::MissingField(path))
}

/// An id as text: a number, or a non-empty string.
pub(crate) fn require_id(v: &Value, path: &'static str) -> Result<String, WebhookError> {
    match get(v, path) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(WebhookError::MissingField(path)),
    }
}

/// Whether the value at `path` is present and not null (GitHub's `issue.pull_request`).
pub(crate) fn present(v: &Value, path: &str) -> bool {
    get(v, path).is_some_and(|v| !v.is_null())
}

/// An ordered set of strings (URLs or refs): blanks, control characters and absurd lengths
/// are dropped, duplicates skipped.
#[derive(Default)]
pub(crate) struct Strings(Vec<String>);

impl Strings {
    pub(crate) fn push(&mut self, s: &str) {
        let s = s.trim();
        if s.is_empty() || s.len() > MAX_URL_OR_REF || s.chars().any(char::is_control) {
            return;
        }
        if !self.0.iter().any(|have| have == s) {
            self.0.push(s.to_owned());
        }
    }

    /// The strings at each path that holds one.
    pub(crate) fn push_paths(&mut self, v: &Value, paths: &[&str]) {
        for path in paths {
            if let Some(s) = str_at(v, path) {
                self.push(s);
            }
        }
    }

    /// `field` of each object in the array at `path` (Bitbucket Server's `links.clone[].href`).
    pub(crate) fn push_each(&mut self, v: &Value, path: &str, field: &str) {
        if let Some(items) = get(v, path).and_then(Value::as_array) {
            for item in items {
                if let Some(s) = item.get(field).and_then(Value::as_str) {
                    self.push(s);
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_ids_and_numbers() {
        let v: Value = serde_json::json!({
            "a": {"b": {"c": "x", "n": 7, "s": " 8 ", "neg": -1, "e": ""}},
            "arr": [1],
            "null": null,
        });
        assert_eq!(str_at(&v, "a.b.c"), Some("x"));
        assert_eq!(str_at(&v, "a.b.n"), None);
        assert_eq!(u64_at(&v, "a.b.n"), Some(7));
        assert_eq!(u64_at(&v, "a.b.s"), Some(8));
        assert_eq!(u64_at(&v, "a.b.neg"), None);
        assert_eq!(require_id(&v, "a.b.n"), Ok("7".to_owned()));
        assert_eq!(
            require_id(&v, "a.b.e"),
            Err(WebhookError::MissingField("a.b.e"))
        );
        assert_eq!(
            require_name(&v, "a.b.e"),
            Err(WebhookError::MissingField("a.b.e"))
        );
        assert_eq!(get(&v, "arr.0"), None);
        assert!(!present(&v, "null"));
        assert!(!present(&v, "missing"));
        assert!(present(&v, "a.b"));
    }

    #[test]
    fn malformed_bodies_are_described_without_being_quoted() {
        let err = object(b"{\"secret-looking\": tru").unwrap_err().to_string();
        assert!(err.starts_with("the body is not a JSON object: "), "{err}");
        assert!(!err.contains("secret-looking"), "{err}");
        assert!(object(b"[1,2]")
            .unwrap_err()
            .to_string()
            .contains("not an object"));
        assert!(object(b"payload=%7B%7D")
            .unwrap_err()
            .to_string()
            .contains("form-encoded"));
        assert!(object(b"").is_err());
        assert!(object(b"\xff\xfe").is_err());
        let deep = "[".repeat(10_000);
        assert!(object(deep.as_bytes()).is_err());
    }

    #[test]
    fn strings_are_cleaned_and_deduplicated() {
        let mut s = Strings::default();
        for x in ["a", " a ", "", "b\nc", "b", &"x".repeat(3000)] {
            s.push(x);
        }
        assert_eq!(s.into_vec(), ["a", "b"]);
    }
}
