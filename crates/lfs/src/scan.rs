//! Finding the LFS pointers a mirror's refs need, with git's own object walk: only blobs
//! under the pointer size limit, only those reachable from the new tips and not from the
//! old ones (a sync reads its new commits, not the whole history again).
//!
//! Git runs through a command the caller makes (the engine's hardened `git`, in the
//! repository), so this module never decides how git is run.

use std::collections::BTreeSet;
use std::io;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::{Pointer, MAX_POINTER_SIZE, POINTER_PREFIX};

/// The pointers in blobs reachable from `tips` but not from `exclude` (commit ids or ref
/// names). `git()` makes a git command running in the repository.
pub async fn pointers(
    git: impl Fn() -> Command,
    tips: &[String],
    exclude: &[String],
) -> io::Result<BTreeSet<Pointer>> {
    if tips.is_empty() {
        return Ok(BTreeSet::new());
    }
    // Blobs only, and only small ones: `--filter-provided-objects` keeps the tips themselves
    // out, the object type filter the commits and trees.
    let mut walk = git();
    walk.args([
        "rev-list",
        "--objects",
        "--no-object-names",
        "--filter=combine:object:type=blob+blob:limit=1024",
        "--filter-provided-objects",
        "--stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut input = String::new();
    for tip in tips {
        input.push_str(tip);
        input.push('\n');
    }
    for old in exclude {
        input.push('^');
        input.push_str(old);
        input.push('\n');
    }
    let blobs = run_with_input(walk, input.into_bytes()).await?;
    let ids: Vec<&[u8]> = blobs
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut read = git();
    read.args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = read.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let mut request = Vec::with_capacity(ids.len() * 41);
    for id in &ids {
        request.extend_from_slice(id);
        request.push(b'\n');
    }
    let writer = tokio::spawn(async move {
        let r = stdin.write_all(&request).await;
        drop(stdin);
        r
    });
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut reader = BufReader::new(stdout);
    let mut found = BTreeSet::new();
    let mut header = String::new();
    let mut blob = Vec::with_capacity(MAX_POINTER_SIZE);
    loop {
        header.clear();
        if reader.read_line(&mut header).await? == 0 {
            break;
        }
        // "<id> blob <size>" or "<id> missing"
        let mut parts = header.split_whitespace();
        let (Some(_), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let size: usize = size
            .parse()
            .map_err(|_| io::Error::other("git cat-file printed a malformed header"))?;
        blob.clear();
        blob.resize(size + 1, 0); // the content, then a newline
        reader.read_exact(&mut blob).await?;
        blob.truncate(size);
        if kind == "blob" && blob.starts_with(POINTER_PREFIX) {
            if let Some(pointer) = Pointer::parse(&blob) {
                found.insert(pointer);
            }
        }
    }
    writer.await.map_err(io::Error::other)??;
    let status = child.wait().await?;
    if !status.success() {
        return Err(io::Error::other(format!("git cat-file failed ({status})")));
    }
    Ok(found)
}

/// `lfs.url` of the `.lfsconfig` file at `rev` (the default branch), as git-lfs reads it.
pub async fn lfsconfig_url(git: impl Fn() -> Command, rev: &str) -> Option<String> {
    let mut cmd = git();
    cmd.args([
        "config",
        &format!("--blob={rev}:.lfsconfig"),
        "--get",
        "lfs.url",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let out = cmd.output().await.ok()?;
    if !out.status.success() {
        return None;
    }
    let url = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!url.is_empty()).then_some(url)
}

async fn run_with_input(mut cmd: Command, input: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut child = cmd.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let writer = tokio::spawn(async move {
        let r = stdin.write_all(&input).await;
        drop(stdin);
        r
    });
    let out = child.wait_with_output().await?;
    writer.await.map_err(io::Error::other)??;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(io::Error::other(format!(
            "git rev-list failed: {}",
            stderr.lines().next().unwrap_or_default()
        )));
    }
    Ok(out.stdout)
}
