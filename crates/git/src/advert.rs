//! What the upstream advertised during a fetch, read back from git's packet trace
//! (`GIT_TRACE_PACKET`): a sync makes one fetch, as `git fetch` does, and learns the upstream's
//! HEAD from that fetch's own ref advertisement instead of listing the upstream a second time.
//!
//! The trace prints every pkt-line git reads as `packet: <who>< <payload>`, with bytes outside
//! printable ASCII as `\<octal>`. HEAD is advertised as `<oid> HEAD symref-target:<ref>` in
//! protocol v2, and in v0 as the first ref line `<oid> HEAD\0<capabilities>`, where the
//! capabilities carry `symref=HEAD:<ref>`.

/// The upstream's HEAD as a fetch saw it advertised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum AdvertisedHead {
    /// HEAD is a symbolic ref to this branch (which need not exist: `unborn` in v2).
    Symref(String),
    /// HEAD was advertised, pointing at an object rather than a branch.
    Detached,
    /// The trace holds no advertisement of HEAD: a dumb HTTP server, or a server that left
    /// HEAD out. Only a listing can tell.
    #[default]
    NotSeen,
}

/// Finds HEAD's advertisement in a packet trace (a fetch lists the upstream's refs once).
pub(crate) fn head_from_trace(trace: &str) -> AdvertisedHead {
    trace
        .lines()
        .find_map(|line| received_payload(line).and_then(head_in_payload))
        .unwrap_or(AdvertisedHead::NotSeen)
}

/// The payload of a trace line for a packet git read (`<who>< <payload>`).
fn received_payload(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("packet: ")?;
    let rest = rest.trim_start();
    let (who, payload) = rest.split_once("< ")?;
    if who.is_empty() || who.contains(' ') {
        return None;
    }
    Some(unescape(payload))
}

/// HEAD's advertisement in one received packet, if it is one.
fn head_in_payload(payload: String) -> Option<AdvertisedHead> {
    // v2 ls-refs: `<oid> HEAD[ symref-target:<ref>][ peeled:<oid>]`, or `unborn HEAD ...`.
    // v0: `<oid> HEAD\0<capabilities>`.
    let (first, rest) = payload.split_once(' ')?;
    let is_object_id =
        matches!(first.len(), 40 | 64) && first.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_object_id && first != "unborn" {
        return None;
    }
    if let Some(caps) = rest.strip_prefix("HEAD\0") {
        let target = caps
            .split(' ')
            .find_map(|cap| cap.strip_prefix("symref=HEAD:"))
            .map(str::to_owned);
        return Some(target.map_or(AdvertisedHead::Detached, AdvertisedHead::Symref));
    }
    let mut words = rest.split(' ');
    if words.next() != Some("HEAD") {
        return None;
    }
    let target = words
        .find_map(|attr| attr.strip_prefix("symref-target:"))
        .map(str::to_owned);
    Some(target.map_or(AdvertisedHead::Detached, AdvertisedHead::Symref))
}

/// Undoes the trace's `\<octal>` escapes (ref names cannot contain a backslash, so every
/// backslash starts one). Bytes that do not form UTF-8 come out as U+FFFD, which no branch name
/// of the mirror matches.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            if digits > 0 {
                let value = bytes[i + 1..i + 1 + digits]
                    .iter()
                    .fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 1 + digits;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "be70e60aa2e9f49af7b2fb15f3e1f6faade8eb4b";

    fn line(who: &str, dir: char, payload: &str) -> String {
        format!("08:22:17.332903 pkt-line.c:86           packet: {who:>12}{dir} {payload}\n")
    }

    #[test]
    fn finds_head_in_a_v2_listing() {
        let trace = [
            line("fetch", '>', "ref-prefix HEAD"),
            line(
                "fetch",
                '<',
                &format!("{OID} HEAD symref-target:refs/heads/main"),
            ),
            line("fetch", '<', &format!("{OID} refs/heads/main")),
            line("fetch", '<', "0000"),
        ]
        .concat();
        assert_eq!(
            head_from_trace(&trace),
            AdvertisedHead::Symref("refs/heads/main".into())
        );
        let unborn = line("fetch", '<', "unborn HEAD symref-target:refs/heads/trunk");
        assert_eq!(
            head_from_trace(&unborn),
            AdvertisedHead::Symref("refs/heads/trunk".into())
        );
        let detached = line("fetch", '<', &format!("{OID} HEAD"));
        assert_eq!(head_from_trace(&detached), AdvertisedHead::Detached);
    }

    #[test]
    fn finds_head_in_a_v0_advertisement() {
        let caps = "multi_ack thin-pack side-band side-band-64k ofs-delta shallow \
                    symref=HEAD:refs/heads/dev agent=git/2.47.3";
        let trace = [
            line("git", '<', "# service=git-upload-pack"),
            line("git", '<', "0000"),
            line("git", '<', &format!("{OID} HEAD\\0{caps}")),
            line("git", '<', &format!("{OID} refs/heads/dev")),
        ]
        .concat();
        assert_eq!(
            head_from_trace(&trace),
            AdvertisedHead::Symref("refs/heads/dev".into())
        );
        let no_symref = line(
            "git",
            '<',
            &format!("{OID} HEAD\\0multi_ack agent=git/2.47.3"),
        );
        assert_eq!(head_from_trace(&no_symref), AdvertisedHead::Detached);
    }

    #[test]
    fn ignores_what_is_not_heads_advertisement() {
        let trace = [
            // Sent, not received.
            line(
                "fetch",
                '>',
                &format!("{OID} HEAD symref-target:refs/heads/evil"),
            ),
            // A branch called HEAD-something, a want line, progress.
            line("fetch", '<', &format!("{OID} refs/heads/HEAD")),
            line("fetch", '<', &format!("want {OID}")),
            line("sideband", '<', "\\2Counting objects: 100% (3/3), done."),
            "not a trace line at all\n".to_owned(),
        ]
        .concat();
        assert_eq!(head_from_trace(&trace), AdvertisedHead::NotSeen);
        assert_eq!(head_from_trace(""), AdvertisedHead::NotSeen);
    }

    #[test]
    fn unescapes_non_ascii_branch_names() {
        // "refs/heads/café": é is 0xc3 0xa9, traced as \303\251.
        let trace = line(
            "fetch",
            '<',
            &format!("{OID} HEAD symref-target:refs/heads/caf\\303\\251"),
        );
        assert_eq!(
            head_from_trace(&trace),
            AdvertisedHead::Symref("refs/heads/café".into())
        );
        assert_eq!(unescape("a\\0b\\"), "a\0b\\");
    }
}
