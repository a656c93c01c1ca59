//! The Git LFS batch API's wire format
//! (<https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md>), as the hub sends it to
//! upstreams and answers it to clients, and the checks an upstream's answer must pass before
//! anything in it is used.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{LfsError, Oid, Pointer};

/// The media type of batch requests and answers.
pub const MEDIA_TYPE: &str = "application/vnd.git-lfs+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Download,
    Upload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSpec {
    pub oid: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefSpec {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<RefSpec>,
    pub objects: Vec<ObjectSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub href: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAnswer {
    pub oid: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Actions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    pub objects: Vec<ObjectAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
}

/// A body of an error answer (`{"message": ...}`), for the whole batch or an object request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// Where to download one object from, after the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub href: url::Url,
    /// Headers the upstream asked for, each checked to be a valid header.
    pub header: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
}

impl Download {
    /// Whether the upstream gave this action its own authorization, so the mirror's own
    /// credentials must not be added.
    pub fn has_authorization(&self) -> bool {
        self.header
            .iter()
            .any(|(k, _)| k == reqwest::header::AUTHORIZATION)
    }
}

/// What the upstream said of one object we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Download(Download),
    /// The upstream's per-object error (e.g. 404: it does not have it).
    Error {
        code: i64,
        message: String,
    },
}

/// Each object asked for, with what the upstream said of it (or why that cannot be used).
pub type CheckedAnswers = Vec<(Pointer, Result<Answer, LfsError>)>;

/// Checks an upstream's batch answer against the request: only the objects asked for, with
/// the sizes asked for, each with a usable download action or an error. Anything else is
/// `lfs_batch_invalid` naming what was wrong; one bad object fails only that object.
pub fn check_answer(asked: &[Pointer], answer: BatchAnswer) -> Result<CheckedAnswers, LfsError> {
    if let Some(t) = &answer.transfer {
        if t != "basic" {
            return Err(LfsError::BatchInvalid(format!(
                "the upstream chose the transfer adapter {:?}; the hub speaks only \"basic\"",
                truncate(t)
            )));
        }
    }
    if let Some(algo) = &answer.hash_algo {
        if algo != "sha256" {
            return Err(LfsError::BatchInvalid(format!(
                "the upstream uses the hash algorithm {:?}; only sha256 is defined",
                truncate(algo)
            )));
        }
    }
    let mut by_oid: BTreeMap<&str, &Pointer> = asked.iter().map(|p| (p.oid.as_str(), p)).collect();
    let mut out = Vec::with_capacity(asked.len());
    for object in answer.objects {
        let Some(pointer) = by_oid.remove(object.oid.as_str()) else {
            // Not asked for (or twice): ignored rather than trusted.
            continue;
        };
        let pointer = pointer.clone();
        let checked = check_object(&pointer, object);
        out.push((pointer, checked));
    }
    for (_, pointer) in by_oid {
        out.push((
            pointer.clone(),
            Err(LfsError::BatchInvalid(format!(
                "the upstream's batch answer left out object {}",
                pointer.oid
            ))),
        ));
    }
    Ok(out)
}

fn check_object(pointer: &Pointer, object: ObjectAnswer) -> Result<Answer, LfsError> {
    if let Some(error) = object.error {
        return Ok(Answer::Error {
            code: error.code,
            message: truncate(&error.message),
        });
    }
    if object.size != pointer.size {
        return Err(LfsError::BatchInvalid(format!(
            "the upstream gives object {} a size of {} bytes where its pointer says {}",
            pointer.oid, object.size, pointer.size
        )));
    }
    let Some(action) = object.actions.and_then(|a| a.download) else {
        return Err(LfsError::BatchInvalid(format!(
            "the upstream's answer for object {} has neither a download action nor an error",
            pointer.oid
        )));
    };
    let href = parse_href(&action.href).map_err(|why| {
        LfsError::BatchInvalid(format!(
            "the upstream's download address for object {} is unusable: {why}",
            pointer.oid
        ))
    })?;
    let mut header = Vec::with_capacity(action.header.len());
    for (name, value) in &action.header {
        let parsed = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .ok()
            .zip(reqwest::header::HeaderValue::from_str(value).ok());
        match parsed {
            Some((n, v)) if !value.chars().any(char::is_control) => header.push((n, v)),
            _ => {
                return Err(LfsError::BatchInvalid(format!(
                    "the upstream's download action for object {} has a malformed header {:?}",
                    pointer.oid,
                    truncate(name)
                )))
            }
        }
    }
    Ok(Answer::Download(Download { href, header }))
}

/// An href the hub will connect to: http or https, a host, no credentials, nothing a parser
/// would silently drop (control characters, spaces).
pub fn parse_href(href: &str) -> Result<url::Url, String> {
    if href.len() > 8192 {
        return Err("longer than 8192 characters".into());
    }
    if href.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it contains control characters or spaces".into());
    }
    let url = url::Url::parse(href).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme {:?} is not http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials".into());
    }
    Ok(url)
}

/// Upstream text quoted in our messages: short, one line.
fn truncate(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line
}

/// Whether an object spec from a client is well formed: an oid we can store under.
pub fn pointer_of(spec: &ObjectSpec) -> Option<Pointer> {
    Some(Pointer {
        oid: Oid::parse(&spec.oid)?,
        size: spec.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Pointer {
        Pointer {
            oid: Oid::of(&[n]),
            size: 1,
        }
    }

    fn answer(json: serde_json::Value) -> BatchAnswer {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn takes_only_what_was_asked_for() {
        let (a, b) = (p(1), p(2));
        let got = check_answer(
            &[a.clone(), b.clone()],
            answer(serde_json::json!({
                "transfer": "basic",
                "objects": [
                    {"oid": a.oid.as_str(), "size": 1, "actions": {"download": {"href": "https://cdn.example/x", "header": {"Authorization": "RemoteAuth abc"}}}},
                    {"oid": p(3).oid.as_str(), "size": 1, "actions": {"download": {"href": "https://evil.example/"}}},
                ]
            })),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let Ok(Answer::Download(d)) = &got[0].1 else {
            panic!("{got:?}")
        };
        assert_eq!(d.href.as_str(), "https://cdn.example/x");
        assert!(d.has_authorization());
        assert_eq!(got[1].0, b);
        assert!(matches!(got[1].1, Err(LfsError::BatchInvalid(_))));
    }

    #[test]
    fn refuses_hostile_objects_one_by_one() {
        let a = p(1);
        let oid = a.oid.as_str();
        for (object, why) in [
            (
                serde_json::json!({"oid": oid, "size": 2, "actions": {"download": {"href": "https://x/"}}}),
                "size",
            ),
            (serde_json::json!({"oid": oid, "size": 1}), "neither"),
            (
                serde_json::json!({"oid": oid, "size": 1, "actions": {"download": {"href": "https://x/a\r\nX-Evil: 1"}}}),
                "control",
            ),
            (
                serde_json::json!({"oid": oid, "size": 1, "actions": {"download": {"href": "file:///etc/passwd"}}}),
                "scheme",
            ),
            (
                serde_json::json!({"oid": oid, "size": 1, "actions": {"download": {"href": "https://u:p@x/"}}}),
                "credentials",
            ),
            (
                serde_json::json!({"oid": oid, "size": 1, "actions": {"download": {"href": "https://x/", "header": {"X-A": "b\r\nc"}}}}),
                "header",
            ),
        ] {
            let got = check_answer(
                std::slice::from_ref(&a),
                answer(serde_json::json!({"objects": [object]})),
            )
            .unwrap();
            let Err(e) = &got[0].1 else {
                panic!("{why}: accepted")
            };
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
        let got = check_answer(
            std::slice::from_ref(&a),
            answer(serde_json::json!({"objects": [{"oid": oid, "size": 1, "error": {"code": 404, "message": "gone\nreally"}}]})),
        )
        .unwrap();
        assert_eq!(
            got[0].1.as_ref().unwrap(),
            &Answer::Error {
                code: 404,
                message: "gone really".into()
            }
        );
        assert!(check_answer(
            std::slice::from_ref(&a),
            answer(serde_json::json!({"transfer": "tus", "objects": []}))
        )
        .is_err());
        assert!(check_answer(
            &[a],
            answer(serde_json::json!({"hash_algo": "sha512", "objects": []}))
        )
        .is_err());
    }

    #[test]
    fn negative_sizes_do_not_parse() {
        assert!(
            serde_json::from_str::<BatchAnswer>(r#"{"objects": [{"oid": "x", "size": -1}]}"#)
                .is_err()
        );
    }
}
