//! LFS pointer files: the small text blobs git stores in place of a large file
//! (<https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md>).

use std::fmt;

/// Pointer files are small; git-lfs never reads a blob of this size or more as one.
pub const MAX_POINTER_SIZE: usize = 1024;

/// The first line of every pointer of the current spec version.
pub const POINTER_PREFIX: &[u8] = b"version https://git-lfs.github.com/spec/v1\n";

/// An object id: the SHA-256 of the object's content, 64 lowercase hex digits. Safe to use
/// as a file name and in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(String);

impl Oid {
    /// Accepts exactly 64 lowercase hex digits, as the spec writes them.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of some content.
    pub fn of(content: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(content)))
    }

    pub(crate) fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object a pointer names: its id and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer {
    pub oid: Oid,
    pub size: u64,
}

impl Pointer {
    /// Reads a pointer file. `None` for anything else (an ordinary small file, a pointer of
    /// another hash algorithm or spec version, a malformed one): such blobs are ordinary
    /// content and are mirrored as they are.
    pub fn parse(blob: &[u8]) -> Option<Self> {
        if blob.len() >= MAX_POINTER_SIZE || !blob.starts_with(POINTER_PREFIX) {
            return None;
        }
        let text = std::str::from_utf8(blob).ok()?;
        let mut oid = None;
        let mut size = None;
        // Keys after `version` are sorted and unique; unknown `ext-*` keys are allowed.
        for line in text.lines().skip(1) {
            let (key, value) = line.split_once(' ')?;
            match key {
                "oid" => oid = Some(Oid::parse(value.strip_prefix("sha256:")?)?),
                "size" => {
                    if value.is_empty()
                        || !value.bytes().all(|b| b.is_ascii_digit())
                        || (value.len() > 1 && value.starts_with('0'))
                    {
                        return None;
                    }
                    size = Some(value.parse().ok()?);
                }
                _ => {}
            }
        }
        Some(Self {
            oid: oid?,
            size: size?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn reads_pointers_and_nothing_else() {
        let good =
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n");
        assert_eq!(
            Pointer::parse(good.as_bytes()),
            Some(Pointer {
                oid: Oid::parse(OID).unwrap(),
                size: 12345
            })
        );
        let with_ext = format!("version https://git-lfs.github.com/spec/v1\next-0-foo sha256:{OID}\noid sha256:{OID}\nsize 0\n");
        assert_eq!(Pointer::parse(with_ext.as_bytes()).unwrap().size, 0);
        for bad in [
            "hello world\n".to_owned(),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\n"),
            "version https://git-lfs.github.com/spec/v1\nsize 1\n".to_owned(),
            format!("version https://git-lfs.github.com/spec/v1\noid sha1:{OID}\nsize 1\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1\n", OID.to_uppercase()),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize -1\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 01\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 99999999999999999999999\n"),
            "version https://git-lfs.github.com/spec/v1\noid sha256:../../etc/passwd\nsize 1\n".to_owned(),
        ] {
            assert_eq!(Pointer::parse(bad.as_bytes()), None, "{bad:?}");
        }
        let mut huge = good.into_bytes();
        huge.resize(MAX_POINTER_SIZE, b'\n');
        assert_eq!(Pointer::parse(&huge), None);
    }

    #[test]
    fn oids_are_64_lowercase_hex_digits() {
        assert!(Oid::parse(OID).is_some());
        assert!(Oid::parse(&OID[1..]).is_none());
        assert!(Oid::parse(&format!("{OID}0")).is_none());
        assert!(Oid::parse(&OID.replace('4', "g")).is_none());
        assert_eq!(
            Oid::of(b"hello").as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
