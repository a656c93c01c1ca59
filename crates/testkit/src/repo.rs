//! Running git with a clean, deterministic environment, and building repositories with it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// Author and committer name of every commit and tag the testkit makes.
pub const AUTHOR_NAME: &str = "Mirrorhub Test";
/// Author and committer email of every commit and tag the testkit makes.
pub const AUTHOR_EMAIL: &str = "test@mirrorhub.invalid";
/// Author and committer date of every commit and tag the testkit makes (git's internal format).
pub const FIXED_DATE: &str = "1700000000 +0000";

/// Makes `cmd` independent of the machine it runs on: no inherited `GIT_*` variables, no system
/// or global config, a fixed identity and fixed dates (so the same steps make the same object
/// ids), never a terminal prompt, and C locale messages.
pub fn clean_git_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_AUTHOR_DATE", FIXED_DATE)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_DATE", FIXED_DATE)
        .env("LC_ALL", "C")
}

/// A `git` command run in `dir` with [`clean_git_env`] applied, for callers that need more
/// control than [`git`] gives (extra environment, stdin, async via `tokio::process::Command::from`).
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir);
    clean_git_env(&mut cmd);
    cmd
}

/// A `git` command for `git lfs` work in `dir`: [`git_command`], with `HOME` (and the global
/// config, `$HOME/.gitconfig`) in `home` instead of the machine's, so git-lfs sees only the
/// filter settings and credentials a test put there. See [`LfsHome`].
pub fn lfs_git_command(dir: &Path, home: &Path) -> Command {
    let mut cmd = git_command(dir);
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"));
    cmd
}

/// A throwaway `HOME` in which `git lfs install --skip-repo` has run: git commands from
/// [`command`](Self::command) have git-lfs's filters (clean, smudge, process; required) and
/// nothing else from the machine. `git lfs install` in a work tree adds its hooks (pre-push
/// uploads objects).
pub struct LfsHome {
    dir: TempDir,
}

impl Default for LfsHome {
    fn default() -> Self {
        Self::new()
    }
}

impl LfsHome {
    /// Panics if git-lfs is not installed.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-lfs-home")
            .tempdir()
            .expect("create LFS home");
        let home = Self { dir };
        let version = home.try_git(home.path(), ["lfs", "version"]);
        assert!(
            version.status.success(),
            "git-lfs is not installed (Debian: apt-get install git-lfs): {}",
            String::from_utf8_lossy(&version.stderr)
        );
        home.git(home.path(), ["lfs", "install", "--skip-repo"]);
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A git command in `dir` that uses this home ([`lfs_git_command`]).
    pub fn command(&self, dir: &Path) -> Command {
        lfs_git_command(dir, self.path())
    }

    /// Runs git in `dir` with this home and returns its stdout; panics with git's stderr when
    /// it fails.
    pub fn git<I, S>(&self, dir: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(dir);
        cmd.args(args);
        let output = run_with_stdin(&mut cmd, &[]);
        check(&cmd, &output);
        String::from_utf8(output.stdout).expect("git printed non-UTF-8 output")
    }

    /// Runs git in `dir` with this home and returns its output whatever its exit status.
    pub fn try_git<I, S>(&self, dir: &Path, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(dir);
        cmd.args(args);
        run_with_stdin(&mut cmd, &[])
    }
}

impl LfsHome {
    /// Runs git with this home in `dir` on the tokio runtime, never prompting, killed past
    /// `deadline` (then it panics); returns its output whatever its exit status.
    pub async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        deadline: std::time::Duration,
    ) -> Output {
        let mut cmd = self.command(dir);
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(env.iter().copied());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
        tokio::time::timeout(deadline, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("git {args:?} took more than {deadline:?}"))
            .unwrap_or_else(|e| panic!("run git {args:?}: {e}"))
    }
}

/// `len` deterministic bytes that do not compress (xorshift), for LFS objects in tests and
/// benches.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Where git keeps its programs (`git --exec-path`): `git-http-backend`, `git-daemon`.
pub(crate) fn git_exec_path() -> PathBuf {
    let output = git_command(&std::env::temp_dir())
        .arg("--exec-path")
        .output()
        .expect("run git --exec-path");
    assert!(output.status.success(), "git --exec-path failed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Runs git in `dir` with a clean environment and returns its stdout. Panics with git's stderr
/// when it fails.
pub fn git<I, S>(dir: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git_with_stdin(dir, args, &[])
}

/// Like [`git`], feeding `input` to git's stdin.
pub fn git_with_stdin<I, S>(dir: &Path, args: I, input: &[u8]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git_command(dir);
    cmd.args(args);
    let output = run_with_stdin(&mut cmd, input);
    check(&cmd, &output);
    String::from_utf8(output.stdout).expect("git printed non-UTF-8 output")
}

/// Runs git and returns its output whatever its exit status (for tests of failures).
pub fn try_git<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git_command(dir);
    cmd.args(args);
    run_with_stdin(&mut cmd, &[])
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(if input.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !input.is_empty() {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A writer thread: git may fill its stdout pipe before reading all of its stdin.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("wait for git");
        writer
            .join()
            .expect("stdin writer")
            .unwrap_or_else(|e| panic!("writing to {cmd:?}: {e}"));
        return output;
    }
    child.wait_with_output().expect("wait for git")
}

fn check(cmd: &Command, output: &Output) {
    if !output.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// Creates an empty bare repository at `path` (parents included) whose HEAD is `refs/heads/main`.
pub fn init_bare(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    git(path, ["init", "--quiet", "--bare", "--initial-branch=main"]);
}

/// The branches and tags of `repo`, one `objectname objecttype refname` line each, sorted by
/// refname: two repositories whose lists are equal hold the same branches and tags.
pub fn for_each_ref(repo: &Path) -> String {
    git(
        repo,
        [
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
}

/// Every ref of a repository (name to object id), taken to put the refs back later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSnapshot(BTreeMap<String, String>);

impl RefSnapshot {
    /// Reads every ref under `refs/` of `repo`.
    pub fn take(repo: &Path) -> Self {
        Self::parse(&git(
            repo,
            ["for-each-ref", "--format=%(objectname) %(refname)", "refs/"],
        ))
    }

    /// Reads a snapshot written by [`to_text`](Self::to_text).
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(oid, name)| (name.to_owned(), oid.to_owned()))
                .collect(),
        )
    }

    /// One `objectname refname` line per ref.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|(name, oid)| format!("{oid} {name}\n"))
            .collect()
    }

    /// The refs, by name.
    pub fn refs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Makes the refs of `repo` what they were when this snapshot was taken, in one transaction:
    /// refs made since are deleted, moved refs are put back, deleted refs are recreated (their
    /// objects are still in the repository).
    pub fn restore(&self, repo: &Path) {
        let now = Self::take(repo);
        let mut script = String::new();
        for name in now.0.keys().filter(|name| !self.0.contains_key(*name)) {
            script.push_str(&format!("delete {name}\n"));
        }
        for (name, oid) in &self.0 {
            if now.0.get(name) != Some(oid) {
                script.push_str(&format!("update {name} {oid}\n"));
            }
        }
        if !script.is_empty() {
            git_with_stdin(repo, ["update-ref", "--stdin"], script.as_bytes());
        }
    }
}

/// A throwaway working tree to write files, commit them and push to an upstream.
///
/// ```no_run
/// # use mirrorhub_testkit::{init_bare, Scratch};
/// # let upstream = std::path::Path::new("/tmp/up.git");
/// init_bare(upstream);
/// let scratch = Scratch::new();
/// scratch.write("README.md", "hello\n");
/// scratch.commit("first");
/// scratch.push(upstream.to_str().unwrap(), &["main"]);
/// ```
pub struct Scratch {
    dir: TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// An empty repository with a work tree, on branch `main`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-scratch")
            .tempdir()
            .expect("create scratch dir");
        git(dir.path(), ["init", "--quiet", "--initial-branch=main"]);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the work tree.
    pub fn git<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        git(self.path(), args)
    }

    /// Writes `contents` to `file` (a `/`-separated path relative to the work tree).
    pub fn write(&self, file: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path: PathBuf = self.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Stages everything and commits it (an empty commit when nothing changed); returns the new
    /// commit's id.
    pub fn commit(&self, message: &str) -> String {
        self.git(["add", "--all"]);
        self.git([
            "commit",
            "--quiet",
            "--allow-empty",
            "--no-verify",
            "-m",
            message,
        ]);
        self.head()
    }

    /// Writes one file and commits it.
    pub fn commit_file(&self, file: &str, contents: impl AsRef<[u8]>, message: &str) -> String {
        self.write(file, contents);
        self.commit(message)
    }

    /// The id of the commit checked out.
    pub fn head(&self) -> String {
        self.git(["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Checks out `branch`, creating it at the current commit or resetting it there.
    pub fn branch(&self, branch: &str) -> &Self {
        self.git(["checkout", "--quiet", "-B", branch]);
        self
    }

    /// Checks out an existing branch.
    pub fn checkout(&self, branch: &str) -> &Self {
        self.git(["checkout", "--quiet", branch]);
        self
    }

    /// Makes a lightweight tag on the current commit.
    pub fn tag(&self, name: &str) -> &Self {
        self.git(["tag", name]);
        self
    }

    /// Makes an annotated tag on the current commit.
    pub fn tag_annotated(&self, name: &str, message: &str) -> &Self {
        self.git(["tag", "-a", "-m", message, name]);
        self
    }

    /// Pushes `refspecs` to `remote` (a path or a URL), forcing nothing unless a refspec says so
    /// with a leading `+`.
    pub fn push(&self, remote: &str, refspecs: &[&str]) {
        let mut args = vec!["push", "--quiet", remote];
        args.extend_from_slice(refspecs);
        self.git(args);
    }

    /// Pushes every branch and tag to `remote`, force-updating and pruning: the remote ends up
    /// with exactly this repository's branches and tags.
    pub fn push_mirror(&self, remote: &str) {
        self.git([
            "push",
            "--quiet",
            "--force",
            "--prune",
            remote,
            "refs/heads/*:refs/heads/*",
            "refs/tags/*:refs/tags/*",
        ]);
    }
}

/// Makes a tiny real bare repository at `{root}/{path}.git` for each of `paths` (`acme/api`),
/// cheaply enough for thousands: one template (branch `main`, one commit of a `README.md`,
/// packed, its ref in `packed-refs`) is made with git, then each repository is four
/// directories and five files, the pack hard-linked (git never rewrites a pack in place). Each
/// is a repository of its own: pushing to one changes no other. Returns the commit id `main`
/// points at in every one.
pub fn tiny_repos<S: AsRef<str>>(root: &Path, paths: &[S]) -> String {
    let template = tempfile::Builder::new()
        .prefix("mirrorhub-tiny")
        .tempdir()
        .expect("create template dir");
    let bare = template.path().join("template.git");
    let commit = tiny_template(&bare);
    let read = |name: &str| {
        std::fs::read(bare.join(name)).unwrap_or_else(|e| panic!("template {name}: {e}"))
    };
    let (head, config, packed_refs) = (read("HEAD"), read("config"), read("packed-refs"));
    let packs: Vec<PathBuf> = std::fs::read_dir(bare.join("objects/pack"))
        .expect("template packs")
        .map(|entry| entry.expect("pack entry").path())
        .collect();
    for path in paths {
        let repo = root.join(format!("{}.git", path.as_ref()));
        let pack_dir = repo.join("objects/pack");
        std::fs::create_dir_all(&pack_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", pack_dir.display()));
        std::fs::create_dir(repo.join("refs")).expect("create refs");
        for (name, contents) in [
            ("HEAD", &head),
            ("config", &config),
            ("packed-refs", &packed_refs),
        ] {
            std::fs::write(repo.join(name), contents).expect("write repository file");
        }
        for pack in &packs {
            let target = pack_dir.join(pack.file_name().expect("pack file name"));
            if std::fs::hard_link(pack, &target).is_err() {
                std::fs::copy(pack, &target).expect("copy pack");
            }
        }
    }
    commit
}

/// Like [`tiny_repos`], cheaper still (one symbolic link a path, for benches of thousands):
/// one tiny repository at `{root}/.tiny.git`, and every `{root}/{path}.git` a symbolic link to
/// it. They are one repository: a push to one is seen at every path.
pub fn tiny_repo_aliases<S: AsRef<str>>(root: &Path, paths: &[S]) -> String {
    let shared = root.join(".tiny.git");
    let commit = tiny_template(&shared);
    for path in paths {
        let alias = root.join(format!("{}.git", path.as_ref()));
        if let Some(parent) = alias.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::os::unix::fs::symlink(&shared, &alias)
            .unwrap_or_else(|e| panic!("link {}: {e}", alias.display()));
    }
    commit
}

/// A bare repository at `bare` with branch `main` at one commit of a `README.md`, its objects
/// in one pack and its ref in `packed-refs`; returns the commit id.
fn tiny_template(bare: &Path) -> String {
    std::fs::create_dir_all(bare).expect("create tiny repository");
    // No template directory: no hooks or sample files.
    git(
        bare,
        [
            "init",
            "--quiet",
            "--bare",
            "--template=",
            "--initial-branch=main",
        ],
    );
    let blob = git_with_stdin(bare, ["hash-object", "-w", "--stdin"], b"tiny\n");
    let tree = git_with_stdin(
        bare,
        ["mktree"],
        format!("100644 blob {}\tREADME.md\n", blob.trim()).as_bytes(),
    );
    let commit = git(bare, ["commit-tree", tree.trim(), "-m", "tiny"]);
    let commit = commit.trim().to_owned();
    git(bare, ["update-ref", "refs/heads/main", commit.as_str()]);
    git(bare, ["pack-refs", "--all", "--prune"]);
    git(bare, ["repack", "-a", "-d", "-q"]);
    commit
}
