//! Runs one git process: in its own process group (so a timeout or a cancelled future kills git
//! and every helper it started), with a deadline, progress parsed from stderr, and only a
//! bounded tail of stderr kept for error messages.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::progress::{parse_line, ProgressFn, Throttle};

/// The most stderr kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;
/// The most stdout kept by default (a ref listing of a very large repository fits many times
/// over).
pub(crate) const STDOUT_MAX: usize = 256 * 1024 * 1024;

pub(crate) struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment: nothing is inherited.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Stdout is kept up to this many bytes (the rest read and dropped); `None`: discarded.
    pub stdout_cap: Option<usize>,
    /// Written to git's stdin, which is then closed.
    pub stdin: Option<Vec<u8>>,
}

pub(crate) struct Finished {
    pub success: bool,
    pub stdout: Vec<u8>,
    /// The last lines git printed on stderr that were not progress (not yet redacted).
    pub stderr_tail: String,
    pub timed_out: bool,
}

/// Kills the process group on drop unless disarmed: the future running git may be dropped at
/// any await point.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The process group of a git process started from [`crate::GitEngine::local_command`]
/// (which makes the child the leader of its own group): killing it kills git and every helper
/// it started (`pack-objects` under `upload-pack`). Killed on drop unless disarmed; disarm
/// once the leader is reaped, since its group id may be reused from then on.
pub struct ProcessGroup(GroupGuard);

impl ProcessGroup {
    /// The group led by `child` (nothing, if the child has already been reaped).
    pub fn of(child: &tokio::process::Child) -> Self {
        Self(GroupGuard(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        ))
    }

    /// Sends SIGKILL to the whole group (once).
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Forgets the group without signalling it: call after the leader has been reaped.
    pub fn disarm(&mut self) {
        self.0 .0 = None;
    }
}

pub(crate) async fn run(
    inv: Invocation,
    deadline: Instant,
    progress: Option<ProgressFn>,
) -> io::Result<Finished> {
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .env_clear()
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&inv.cwd)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if inv.stdout_cap.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", inv.program.display()),
        )
    })?;
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );

    if let (Some(input), Some(mut pipe)) = (inv.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&input).await;
        });
    }
    let stdout_task = child
        .stdout
        .take()
        .map(|out| tokio::spawn(read_capped(out, inv.stdout_cap.unwrap_or_default())));
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(read_stderr(stderr, progress));

    let mut timed_out = false;
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = tokio::time::sleep_until(deadline) => {
            timed_out = true;
            guard.kill();
            child.wait().await?
        }
    };
    // The leader is reaped: its process group id may be reused from now on, so never signal it.
    guard.0 = None;

    let stdout = match stdout_task {
        Some(task) => join_reader(task).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let stderr_tail = join_reader(stderr_task).await.unwrap_or_default();
    Ok(Finished {
        success: status.success() && !timed_out,
        stdout,
        stderr_tail,
        timed_out,
    })
}

/// Waits for a pipe reader; a helper that outlived git and holds the pipe open is not waited
/// for long.
async fn join_reader<T: Default>(task: tokio::task::JoinHandle<T>) -> Option<T> {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(v)) => Some(v),
        _ => {
            abort.abort();
            None
        }
    }
}

async fn read_capped<R: AsyncRead + Unpin>(mut r: R, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                if out.len() < max {
                    out.extend_from_slice(&buf[..n.min(max - out.len())]);
                }
            }
        }
    }
}

async fn read_stderr<R: AsyncRead + Unpin>(mut r: R, progress: Option<ProgressFn>) -> String {
    let mut throttle = progress.map(Throttle::new);
    let mut tail = Tail::default();
    let mut line = Vec::new();
    let mut buf = [0u8; 8 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\r' || b == b'\n' {
                handle_line(&line, &mut throttle, &mut tail);
                line.clear();
            } else if line.len() < 4096 {
                line.push(b);
            }
        }
    }
    handle_line(&line, &mut throttle, &mut tail);
    tail.text()
}

fn handle_line(line: &[u8], throttle: &mut Option<Throttle>, tail: &mut Tail) {
    if line.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(line);
    match parse_line(&text) {
        Some(p) => {
            if let Some(t) = throttle {
                t.report(p);
            }
        }
        None => tail.push(text.trim_end().to_owned()),
    }
}

/// The last lines of a stream, at most [`STDERR_TAIL`] bytes.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn sh(script: &str, capture_stdout: bool) -> Invocation {
        Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: std::env::temp_dir(),
            stdout_cap: capture_stdout.then_some(STDOUT_MAX),
            stdin: None,
        }
    }

    #[tokio::test]
    async fn captures_output_tail_and_progress() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let progress: ProgressFn = Arc::new(move |p| s.lock().unwrap().push(p));
        let script = "echo out; printf 'Receiving objects:  10%% (1/10)\\rReceiving objects: 100%% (10/10), done.\\n' >&2; \
                      i=0; while [ $i -lt 2000 ]; do echo noise $i >&2; i=$((i+1)); done; echo 'fatal: the end' >&2; exit 3";
        let done = run(
            sh(script, true),
            Instant::now() + Duration::from_secs(20),
            Some(progress),
        )
        .await
        .unwrap();
        assert!(!done.success && !done.timed_out);
        assert_eq!(done.stdout, b"out\n");
        assert!(
            done.stderr_tail.len() <= STDERR_TAIL + 64,
            "{}",
            done.stderr_tail.len()
        );
        assert!(done.stderr_tail.ends_with("fatal: the end"));
        assert!(!done.stderr_tail.contains("Receiving"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.first().map(|p| p.percent), Some(10));
        assert_eq!(seen.last().map(|p| p.percent), Some(100));
    }

    #[tokio::test]
    async fn keeps_stdout_up_to_its_cap_and_still_reads_the_rest() {
        let mut inv = sh(
            "i=0; while [ $i -lt 5000 ]; do echo 0123456789; i=$((i+1)); done",
            true,
        );
        inv.stdout_cap = Some(25);
        let done = run(inv, Instant::now() + Duration::from_secs(20), None)
            .await
            .unwrap();
        // The writer was never blocked on a full pipe: it finished.
        assert!(done.success && !done.timed_out);
        assert_eq!(done.stdout, b"0123456789\n0123456789\n012");
    }

    #[tokio::test]
    async fn a_deadline_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The grandchild would write the marker after 2 s if it survived the kill.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let done = run(
            sh(&script, false),
            Instant::now() + Duration::from_millis(300),
            None,
        )
        .await
        .unwrap();
        assert!(done.timed_out && !done.success);
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a process of the group outlived the timeout"
        );
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let fut = run(
            sh(&script, false),
            Instant::now() + Duration::from_secs(60),
            None,
        );
        assert!(tokio::time::timeout(Duration::from_millis(300), fut)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a process of the group outlived the cancelled future"
        );
    }
}
