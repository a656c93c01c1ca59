//! Git's pkt-line framing and the two ref advertisements a listing reads: protocol v0's
//! (the refs follow the connection's first packet) and protocol v2's `ls-refs` answer. Pure
//! and strict: the bytes come from a server nobody vouched for, so every length, name and
//! object id is checked, and what the parser keeps is bounded by [`Limits`].
//!
//! A pkt-line is four lowercase or uppercase hex digits giving the length of the whole line
//! (the four digits included), then the payload. `0000` is a flush, `0001` a delimiter and
//! `0002` a response end (v2); `0003` is invalid, and no line is longer than 65520 bytes.

use crate::advert::AdvertisedHead;
use crate::refs::{is_mirrored, RefMap};

/// The longest pkt-line git allows (its `LARGE_PACKET_MAX`), length digits included.
pub(crate) const MAX_PKT_LEN: usize = 65520;

/// What a listing may take from a server before it gives up on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes of the whole exchange read from the server.
    pub max_bytes: usize,
    /// Ref lines of an advertisement (all of them, also those a mirror does not keep).
    pub max_refs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_refs: 1_000_000,
        }
    }
}

/// Why a server's answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PktError {
    #[error("the server sent a malformed pkt-line ({0})")]
    Malformed(String),
    #[error("the server's advertisement is larger than the listing allows ({0})")]
    TooLarge(String),
    #[error("the server reported an error: {0}")]
    Remote(String),
    #[error("the server's answer ended early")]
    Truncated,
}

/// One pkt-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pkt<'a> {
    Data(&'a [u8]),
    Flush,
    Delim,
    ResponseEnd,
}

/// The first pkt-line of `buf`, with the number of bytes it takes; `None` when `buf` holds
/// only part of one.
pub(crate) fn next_pkt(buf: &[u8]) -> Result<Option<(Pkt<'_>, usize)>, PktError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let mut len = 0usize;
    for &b in &buf[..4] {
        let digit = (b as char)
            .to_digit(16)
            .ok_or_else(|| PktError::Malformed(format!("length {:?}", shown(&buf[..4]))))?;
        len = len * 16 + digit as usize;
    }
    let pkt = match len {
        0 => Pkt::Flush,
        1 => Pkt::Delim,
        2 => Pkt::ResponseEnd,
        3 => return Err(PktError::Malformed("length 3".into())),
        n if n > MAX_PKT_LEN => return Err(PktError::Malformed(format!("length {n}"))),
        n => {
            if buf.len() < n {
                return Ok(None);
            }
            Pkt::Data(&buf[4..n])
        }
    };
    Ok(Some((pkt, len.max(4))))
}

/// Writes one data pkt-line.
pub(crate) fn encode(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(payload.len() + 4 <= MAX_PKT_LEN);
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
}

pub(crate) const FLUSH: &[u8] = b"0000";
pub(crate) const DELIM: &[u8] = b"0001";

/// A pkt-line payload without its optional trailing newline, as text.
fn text(payload: &[u8]) -> Result<&str, PktError> {
    let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
    std::str::from_utf8(payload)
        .map_err(|_| PktError::Malformed(format!("a line that is not UTF-8: {}", shown(payload))))
}

/// Up to 60 bytes of a payload, escaped, for an error message.
fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(60)];
    cut.escape_ascii().to_string()
}

/// Packets read from a buffer one after the other.
pub(crate) struct PktCursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PktCursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next packet; [`PktError::Truncated`] at the end of the buffer.
    pub(crate) fn next(&mut self) -> Result<Pkt<'a>, PktError> {
        match next_pkt(&self.buf[self.pos..])? {
            Some((pkt, used)) => {
                self.pos += used;
                Ok(pkt)
            }
            None => Err(PktError::Truncated),
        }
    }
}

/// The start of a connection's answer: protocol v2's capabilities, or v0's ref advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// `version 2`, then these capability lines (`ls-refs=unborn`, `object-format=sha1`, …).
    V2 { capabilities: Vec<String> },
    /// A v0 (or v1) advertisement: the refs themselves.
    V0(Advertised),
}

/// What an advertisement says, kept to what a mirror compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Advertised {
    /// Branches and tags (peeled `^{}` lines left out).
    pub refs: RefMap,
    pub head: AdvertisedHead,
}

/// Reads a greeting from the start of `cursor`, up to and including its flush. Over smart
/// HTTP the `# service=git-upload-pack` line and its flush come first and are skipped.
pub(crate) fn read_greeting(
    cursor: &mut PktCursor<'_>,
    limits: Limits,
) -> Result<Greeting, PktError> {
    let mut first = cursor.next()?;
    if let Pkt::Data(payload) = first {
        if text(payload)?.starts_with("# service=") {
            match cursor.next()? {
                Pkt::Flush => {}
                _ => {
                    return Err(PktError::Malformed(
                        "no flush after the service line".into(),
                    ))
                }
            }
            first = cursor.next()?;
        }
    }
    let payload = match first {
        // An empty repository over v0 that sends nothing at all (old servers).
        Pkt::Flush => return Ok(Greeting::V0(Advertised::default())),
        Pkt::Data(payload) => payload,
        _ => {
            return Err(PktError::Malformed(
                "a delimiter where the advertisement starts".into(),
            ))
        }
    };
    let line = text(payload)?;
    if let Some(message) = line.strip_prefix("ERR ") {
        return Err(PktError::Remote(message.chars().take(200).collect()));
    }
    if line == "version 2" {
        let mut capabilities = Vec::new();
        loop {
            match cursor.next()? {
                Pkt::Flush => break,
                Pkt::Data(p) => {
                    if capabilities.len() >= 1000 {
                        return Err(PktError::TooLarge("more than 1000 capabilities".into()));
                    }
                    capabilities.push(text(p)?.to_owned());
                }
                _ => return Err(PktError::Malformed("a delimiter among capabilities".into())),
            }
        }
        return Ok(Greeting::V2 { capabilities });
    }
    let mut advertised = Advertised::default();
    let mut count = 0usize;
    // `version 1` is v0 with a version line first.
    let mut next_line = if line == "version 1" {
        None
    } else {
        Some(payload)
    };
    let mut first_ref = true;
    loop {
        let payload = match next_line.take() {
            Some(p) => p,
            None => match cursor.next()? {
                Pkt::Flush => break,
                Pkt::Data(p) => p,
                _ => {
                    return Err(PktError::Malformed(
                        "a delimiter in a v0 advertisement".into(),
                    ))
                }
            },
        };
        count += 1;
        if count > limits.max_refs {
            return Err(PktError::TooLarge(format!(
                "more than {} refs",
                limits.max_refs
            )));
        }
        let (line, capabilities) = match payload.iter().position(|b| *b == 0) {
            Some(nul) if first_ref => (&payload[..nul], Some(text(&payload[nul + 1..])?)),
            Some(_) => {
                return Err(PktError::Malformed(
                    "capabilities after the first ref".into(),
                ))
            }
            None => (payload, None),
        };
        first_ref = false;
        let line = text(line)?;
        if let Some(message) = line.strip_prefix("ERR ") {
            return Err(PktError::Remote(message.chars().take(200).collect()));
        }
        if line.starts_with("shallow ") {
            continue;
        }
        let (oid, name) = line
            .split_once(' ')
            .ok_or_else(|| PktError::Malformed(format!("ref line {}", shown(line.as_bytes()))))?;
        check_oid(oid)?;
        if name == "capabilities^{}" {
            // An empty repository's advertisement: capabilities only.
        } else if name == "HEAD" {
            let target = capabilities
                .into_iter()
                .flat_map(|caps| caps.split(' '))
                .find_map(|cap| cap.strip_prefix("symref=HEAD:"))
                .map(str::to_owned);
            advertised.head = match target {
                Some(t) => {
                    check_ref_name(&t)?;
                    AdvertisedHead::Symref(t)
                }
                None => AdvertisedHead::Detached,
            };
        } else {
            keep_ref(&mut advertised.refs, oid, name)?;
        }
    }
    Ok(Greeting::V0(advertised))
}

/// Reads an `ls-refs` answer up to its flush: `<oid> <name>[ symref-target:<t>][ peeled:<oid>]`
/// or `unborn HEAD symref-target:<t>`.
pub(crate) fn read_ls_refs(
    cursor: &mut PktCursor<'_>,
    limits: Limits,
) -> Result<Advertised, PktError> {
    let mut advertised = Advertised::default();
    let mut count = 0usize;
    loop {
        let payload = match cursor.next()? {
            Pkt::Flush => break,
            Pkt::Data(p) => p,
            _ => {
                return Err(PktError::Malformed(
                    "a delimiter in an ls-refs answer".into(),
                ))
            }
        };
        count += 1;
        if count > limits.max_refs {
            return Err(PktError::TooLarge(format!(
                "more than {} refs",
                limits.max_refs
            )));
        }
        let line = text(payload)?;
        if let Some(message) = line.strip_prefix("ERR ") {
            return Err(PktError::Remote(message.chars().take(200).collect()));
        }
        let mut words = line.split(' ');
        let (Some(oid), Some(name)) = (words.next(), words.next()) else {
            return Err(PktError::Malformed(format!("ref line {}", shown(payload))));
        };
        let mut symref = None;
        for attribute in words {
            if let Some(target) = attribute.strip_prefix("symref-target:") {
                check_ref_name(target)?;
                symref = Some(target.to_owned());
            } else if let Some(peeled) = attribute.strip_prefix("peeled:") {
                check_oid(peeled)?;
            }
            // Unknown attributes are a later protocol's: ignored, as git does.
        }
        if oid != "unborn" {
            check_oid(oid)?;
        }
        if name == "HEAD" {
            advertised.head = match symref {
                Some(t) => AdvertisedHead::Symref(t),
                None => AdvertisedHead::Detached,
            };
        } else if oid == "unborn" {
            return Err(PktError::Malformed(format!(
                "an unborn ref other than HEAD: {}",
                shown(name.as_bytes())
            )));
        } else {
            keep_ref(&mut advertised.refs, oid, name)?;
        }
    }
    Ok(advertised)
}

/// Records a branch or tag (a peeled `^{}` line names no ref of its own).
fn keep_ref(refs: &mut RefMap, oid: &str, name: &str) -> Result<(), PktError> {
    if name.ends_with("^{}") || !is_mirrored(name) {
        return Ok(());
    }
    check_ref_name(name)?;
    refs.insert(name.to_owned(), oid.to_ascii_lowercase());
    Ok(())
}

fn check_oid(oid: &str) -> Result<(), PktError> {
    if matches!(oid.len(), 40 | 64) && oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(PktError::Malformed(format!(
            "object id {}",
            shown(oid.as_bytes())
        )))
    }
}

/// A full ref name git itself would accept.
fn check_ref_name(name: &str) -> Result<(), PktError> {
    if name.starts_with("refs/") && git2::Reference::is_valid_name(name) {
        Ok(())
    } else {
        Err(PktError::Malformed(format!(
            "ref name {}",
            shown(name.as_bytes())
        )))
    }
}

/// The `ls-refs` command for a mirror's listing: HEAD (with its target), branches and tags.
pub(crate) fn ls_refs_request(capabilities: &[String], agent: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out, b"command=ls-refs\n");
    encode(&mut out, format!("agent={agent}\n").as_bytes());
    if let Some(format) = capabilities
        .iter()
        .find_map(|c| c.strip_prefix("object-format="))
    {
        encode(&mut out, format!("object-format={format}\n").as_bytes());
    }
    out.extend_from_slice(DELIM);
    encode(&mut out, b"symrefs\n");
    let unborn = capabilities.iter().any(|c| {
        c.strip_prefix("ls-refs=")
            .is_some_and(|features| features.split(' ').any(|f| f == "unborn"))
    });
    if unborn {
        encode(&mut out, b"unborn\n");
    }
    for prefix in ["HEAD", "refs/heads/", "refs/tags/"] {
        encode(&mut out, format!("ref-prefix {prefix}\n").as_bytes());
    }
    out.extend_from_slice(FLUSH);
    out
}

/// Whether a v2 server offers `ls-refs`.
pub(crate) fn offers_ls_refs(capabilities: &[String]) -> bool {
    capabilities
        .iter()
        .any(|c| c == "ls-refs" || c.starts_with("ls-refs="))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn pkts(lines: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            match *line {
                b"0000" | b"0001" | b"0002" => out.extend_from_slice(line),
                payload => encode(&mut out, payload),
            }
        }
        out
    }

    fn greeting(bytes: &[u8]) -> Result<Greeting, PktError> {
        read_greeting(&mut PktCursor::new(bytes), Limits::default())
    }

    #[test]
    fn frames_pkt_lines_strictly() {
        assert_eq!(next_pkt(b"0000rest").unwrap(), Some((Pkt::Flush, 4)));
        assert_eq!(next_pkt(b"0001").unwrap(), Some((Pkt::Delim, 4)));
        assert_eq!(next_pkt(b"0002").unwrap(), Some((Pkt::ResponseEnd, 4)));
        assert_eq!(next_pkt(b"0006ab").unwrap(), Some((Pkt::Data(b"ab"), 6)));
        assert_eq!(
            next_pkt(b"000Aabcdef").unwrap(),
            Some((Pkt::Data(b"abcdef"), 10))
        );
        assert_eq!(next_pkt(b"0004").unwrap(), Some((Pkt::Data(b""), 4)));
        assert_eq!(
            next_pkt(b"0006a").unwrap(),
            None,
            "half a line waits for more"
        );
        assert_eq!(next_pkt(b"00").unwrap(), None);
        for bad in [&b"0003"[..], b"zzzz", b"-001", b"fff1", b"ffff", b"+004"] {
            assert!(
                next_pkt(bad).is_err(),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
        let mut out = Vec::new();
        encode(&mut out, b"hello\n");
        assert_eq!(out, b"000ahello\n");
    }

    #[test]
    fn reads_a_v0_advertisement_over_http() {
        let first = format!("{A} HEAD\0multi_ack symref=HEAD:refs/heads/main agent=git/2.47\n");
        let bytes = pkts(&[
            b"# service=git-upload-pack\n",
            b"0000",
            first.as_bytes(),
            format!("{A} refs/heads/main\n").as_bytes(),
            format!("{B} refs/pull/1/head\n").as_bytes(),
            format!("{B} refs/tags/v1\n").as_bytes(),
            format!("{A} refs/tags/v1^{{}}\n").as_bytes(),
            b"0000",
        ]);
        let Greeting::V0(ad) = greeting(&bytes).unwrap() else {
            panic!("not v0")
        };
        assert_eq!(ad.head, AdvertisedHead::Symref("refs/heads/main".into()));
        let names: Vec<&str> = ad.refs.keys().map(String::as_str).collect();
        assert_eq!(names, ["refs/heads/main", "refs/tags/v1"]);
        assert_eq!(ad.refs["refs/tags/v1"], B);
    }

    #[test]
    fn reads_v0_edge_cases() {
        // An empty repository.
        let empty = format!("{} capabilities^{{}}\0agent=git/2.47\n", "0".repeat(40));
        let Greeting::V0(ad) = greeting(&pkts(&[empty.as_bytes(), b"0000"])).unwrap() else {
            panic!()
        };
        assert_eq!(ad, Advertised::default());
        assert_eq!(
            greeting(b"0000").unwrap(),
            Greeting::V0(Advertised::default())
        );
        // A detached HEAD: no symref capability.
        let detached = format!("{A} HEAD\0agent=x\n");
        let Greeting::V0(ad) = greeting(&pkts(&[detached.as_bytes(), b"0000"])).unwrap() else {
            panic!()
        };
        assert_eq!(ad.head, AdvertisedHead::Detached);
        // No HEAD at all.
        let no_head = format!("{A} refs/heads/x\0agent=x\n");
        let Greeting::V0(ad) = greeting(&pkts(&[no_head.as_bytes(), b"0000"])).unwrap() else {
            panic!()
        };
        assert_eq!(ad.head, AdvertisedHead::NotSeen);
        assert_eq!(ad.refs.len(), 1);
        // version 1 is v0 with a version line.
        let v1 = pkts(&[
            b"version 1\n",
            format!("{A} refs/heads/x\0agent=x\n").as_bytes(),
            b"0000",
        ]);
        assert!(matches!(greeting(&v1).unwrap(), Greeting::V0(ad) if ad.refs.len() == 1));
    }

    #[test]
    fn reads_v2_capabilities_and_ls_refs() {
        let bytes = pkts(&[
            b"version 2\n",
            b"agent=git/2.47.3\n",
            b"ls-refs=unborn\n",
            b"fetch=shallow wait-for-done\n",
            b"object-format=sha1\n",
            b"0000",
        ]);
        let Greeting::V2 { capabilities } = greeting(&bytes).unwrap() else {
            panic!("not v2")
        };
        assert!(offers_ls_refs(&capabilities));
        let request = ls_refs_request(&capabilities, "mirrorhub");
        let text = String::from_utf8(request).unwrap();
        assert!(text.contains("command=ls-refs\n") && text.contains("unborn\n"));
        assert!(
            text.contains("object-format=sha1\n") && text.ends_with("ref-prefix refs/tags/\n0000")
        );

        let answer = pkts(&[
            format!("{A} HEAD symref-target:refs/heads/main\n").as_bytes(),
            format!("{A} refs/heads/main\n").as_bytes(),
            format!("{B} refs/tags/v1 peeled:{A}\n").as_bytes(),
            b"0000",
        ]);
        let ad = read_ls_refs(&mut PktCursor::new(&answer), Limits::default()).unwrap();
        assert_eq!(ad.head, AdvertisedHead::Symref("refs/heads/main".into()));
        assert_eq!(ad.refs.len(), 2);
        let unborn = pkts(&[b"unborn HEAD symref-target:refs/heads/trunk\n", b"0000"]);
        let ad = read_ls_refs(&mut PktCursor::new(&unborn), Limits::default()).unwrap();
        assert_eq!(ad.head, AdvertisedHead::Symref("refs/heads/trunk".into()));
        assert!(ad.refs.is_empty());
    }

    #[test]
    fn refuses_hostile_answers() {
        let limits = Limits {
            max_bytes: 1 << 20,
            max_refs: 2,
        };
        let many = pkts(&[
            format!("{A} refs/heads/a\n").as_bytes(),
            format!("{A} refs/heads/b\n").as_bytes(),
            format!("{A} refs/heads/c\n").as_bytes(),
            b"0000",
        ]);
        assert!(matches!(
            read_ls_refs(&mut PktCursor::new(&many), limits),
            Err(PktError::TooLarge(_))
        ));
        for bad in [
            format!("{A} refs/heads/a..b\n"),
            format!("{A} refs/heads/ctl\u{1}\n"),
            format!("{A} refs/heads/lock.lock\n"),
            "zzzz refs/heads/x\n".to_owned(),
            format!("{A}0 refs/heads/x\n"),
            format!("{A}\n"),
            "unborn refs/heads/x\n".to_owned(),
            format!("{A} HEAD symref-target:../../etc\n"),
        ] {
            let bytes = pkts(&[bad.as_bytes(), b"0000"]);
            assert!(
                read_ls_refs(&mut PktCursor::new(&bytes), Limits::default()).is_err(),
                "{bad:?}"
            );
        }
        // v0 names run to the end of the line: a space in one is refused.
        let spaced = pkts(&[
            format!("{A} refs/heads/with space\0x\n").as_bytes(),
            b"0000",
        ]);
        assert!(greeting(&spaced).is_err());
        let error = pkts(&[b"ERR access denied\n"]);
        assert_eq!(
            greeting(&error),
            Err(PktError::Remote("access denied".into()))
        );
        // No flush: the answer was cut.
        let cut = pkts(&[format!("{A} refs/heads/a\n").as_bytes()]);
        assert_eq!(
            read_ls_refs(&mut PktCursor::new(&cut), Limits::default()),
            Err(PktError::Truncated)
        );
        // Capabilities on a later line.
        let late = pkts(&[
            format!("{A} refs/heads/a\0x\n").as_bytes(),
            format!("{A} refs/heads/b\0x\n").as_bytes(),
            b"0000",
        ]);
        assert!(greeting(&late).is_err());
        // Not UTF-8.
        let binary = pkts(&[b"\xff\xfe refs/heads/a\n", b"0000"]);
        assert!(greeting(&binary).is_err());
    }
}
