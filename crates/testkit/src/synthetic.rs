//! A deterministic, sizeable upstream repository, written as a `git fast-import` stream, and
//! the upstream changes a sync benchmark measures.
//!
//! The history: a long `main` whose commits each change a few lines in a few of the files of a
//! two-level tree (so there is real pack content, with deltas), branches forking off along the
//! way (some with commits of their own, some merged back), annotated and lightweight tags, and
//! tags on a blob, a tree and a tag. Every date and name is fixed: the same [`Spec`] always
//! makes the same object ids.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::repo::{for_each_ref, git, git_command, git_with_stdin, init_bare, RefSnapshot};

/// Bumped whenever the generator changes what it makes: a cached repository made by another
/// version is regenerated.
const GENERATOR_VERSION: u32 = 2;
/// Names the spec a cached repository was made from.
const MARKER_FILE: &str = "mirrorhub-synthetic.spec";
/// Every ref as generated, to put them back if a run ended before undoing its changes.
const REFS_FILE: &str = "mirrorhub-synthetic.refs";
/// Dates of generated commits start here and grow by [`SECONDS_PER_COMMIT`].
const EPOCH: u64 = 1_500_000_000;
const SECONDS_PER_COMMIT: u64 = 97;
const IDENTITY: &str = "Synthetic Author <synthetic@mirrorhub.invalid>";

/// What to generate. [`Spec::default`] is the benchmark's upstream (100,000 commits, 1,006 refs,
/// a pack of a few tens of MB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Commits in total, on `main` and on the branches.
    pub commits: usize,
    /// Branches besides `main`, named `feature/NNNN`.
    pub branches: usize,
    /// Annotated tags on `main`, named `v0.NNNN`.
    pub annotated_tags: usize,
    /// Lightweight tags on `main`, named `build-NNNN`.
    pub lightweight_tags: usize,
    /// Directories at the root of the tree.
    pub dirs: usize,
    /// Files in each directory.
    pub files_per_dir: usize,
    /// Lines in each file (about 60 bytes each).
    pub lines_per_file: usize,
    /// Files changed (one line each) by each commit.
    pub changes_per_commit: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            commits: 100_000,
            branches: 500,
            annotated_tags: 250,
            lightweight_tags: 250,
            dirs: 16,
            files_per_dir: 16,
            lines_per_file: 32,
            changes_per_commit: 3,
        }
    }
}

impl Spec {
    /// A small repository of the same shape, made in well under a second: for tests.
    pub fn small() -> Self {
        Self {
            commits: 300,
            branches: 12,
            annotated_tags: 5,
            lightweight_tags: 5,
            dirs: 3,
            files_per_dir: 4,
            lines_per_file: 8,
            changes_per_commit: 2,
        }
    }

    /// The default spec with another commit count.
    pub fn with_commits(commits: usize) -> Self {
        Self {
            commits,
            ..Self::default()
        }
    }

    fn marker(&self) -> String {
        format!("mirrorhub synthetic upstream, generator v{GENERATOR_VERSION}\n{self:?}\n")
    }

    fn own_commits(&self, branch: usize) -> usize {
        branch % 4
    }

    fn branch_commits(&self) -> usize {
        (0..self.branches).map(|b| self.own_commits(b)).sum()
    }

    fn main_commits(&self) -> usize {
        self.commits - self.branch_commits()
    }

    fn validate(&self) {
        assert!(
            self.dirs > 0 && self.files_per_dir > 0 && self.lines_per_file > 0,
            "empty tree in {self:?}"
        );
        assert!(
            self.changes_per_commit > 0,
            "commits must change something: {self:?}"
        );
        assert!(
            self.commits >= self.branch_commits() + self.branches + 2,
            "{self:?}: too few commits for this many branches"
        );
    }
}

/// A generated upstream: a bare repository, and what is in it.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The bare repository.
    pub path: PathBuf,
    pub spec: Spec,
    /// Whether an existing repository made from the same spec was reused.
    pub reused: bool,
}

impl Synthetic {
    /// The default branch.
    pub const MAIN: &'static str = "main";

    /// Every branch but `main`.
    pub fn branches(&self) -> Vec<String> {
        (0..self.spec.branches).map(branch_name).collect()
    }

    /// Branches with commits of their own (not just a pointer into `main`'s history).
    pub fn branches_with_commits(&self) -> Vec<String> {
        (0..self.spec.branches)
            .filter(|&b| self.spec.own_commits(b) > 0)
            .map(branch_name)
            .collect()
    }

    /// The annotated tags on commits.
    pub fn annotated_tags(&self) -> Vec<String> {
        (0..self.spec.annotated_tags)
            .map(|t| format!("v0.{t:04}"))
            .collect()
    }

    /// The lightweight tags on commits.
    pub fn lightweight_tags(&self) -> Vec<String> {
        (0..self.spec.lightweight_tags)
            .map(|t| format!("build-{t:04}"))
            .collect()
    }

    /// Commits in the repository (as generated: the spec's count).
    pub fn commit_count(&self) -> usize {
        self.spec.commits
    }

    /// Branches and tags in the repository now.
    pub fn ref_count(&self) -> usize {
        for_each_ref(&self.path).lines().count()
    }

    /// Bytes of pack files in the repository.
    pub fn pack_bytes(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.path.join("objects/pack")) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|ext| ext == "pack"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Puts every ref back as generated, undoing the changes of a run that did not finish.
    pub fn reset_refs(&self) {
        let text =
            std::fs::read_to_string(self.path.join(REFS_FILE)).expect("read the generated refs");
        RefSnapshot::parse(&text).restore(&self.path);
    }
}

fn branch_name(b: usize) -> String {
    format!("feature/{b:04}")
}

/// Generates the repository `spec` describes at `path` (a bare repository, `main` as HEAD), or
/// reuses the one already there if it was made from the same spec by this generator version
/// (putting its refs back as generated). Anything else at `path` is replaced. Takes a `Spec` or a
/// `&Spec`. Panics on failure.
pub fn synthetic_upstream(path: &Path, spec: impl Borrow<Spec>) -> Synthetic {
    let spec = spec.borrow().clone();
    spec.validate();
    let marker = spec.marker();
    if std::fs::read_to_string(path.join(MARKER_FILE)).is_ok_and(|found| found == marker) {
        let synthetic = Synthetic {
            path: path.to_owned(),
            spec,
            reused: true,
        };
        synthetic.reset_refs();
        return synthetic;
    }
    // Build next to the final place and rename, so an interrupted run leaves no half repository
    // that looks finished.
    let partial = path.with_extension("partial");
    for dir in [path, partial.as_path()] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
        }
    }
    init_bare(&partial);
    fast_import(&partial, &spec).unwrap_or_else(|e| panic!("git fast-import: {e}"));
    special_tags(&partial);
    git(&partial, ["pack-refs", "--all"]);
    // fast-import deltifies a blob only against the blob written just before it (another path
    // here): search for deltas again (-f), as a server's gc would have.
    git(
        &partial,
        [
            "repack",
            "-a",
            "-d",
            "-f",
            "-b",
            "-q",
            "--window=10",
            "--depth=50",
        ],
    );
    git(&partial, ["commit-graph", "write", "--reachable"]);
    let refs = RefSnapshot::take(&partial);
    std::fs::write(partial.join(REFS_FILE), refs.to_text()).expect("write the generated refs");
    std::fs::write(partial.join(MARKER_FILE), marker).expect("write the marker");
    std::fs::rename(&partial, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
    Synthetic {
        path: path.to_owned(),
        spec,
        reused: false,
    }
}

/// Tags on objects other than commits, made after the import with plain git.
fn special_tags(repo: &Path) {
    git(
        repo,
        [
            "tag",
            "-a",
            "-m",
            "A tag on a blob",
            "blob-tag",
            "main:README",
        ],
    );
    git(
        repo,
        [
            "tag",
            "-a",
            "-m",
            "A tag on a tree",
            "tree-tag",
            "main^{tree}",
        ],
    );
    git(repo, ["tag", "lightweight-blob", "main:README"]);
    git(repo, ["tag", "lightweight-tree", "main:d00"]);
    git(
        repo,
        [
            "-c",
            "advice.nestedTag=false",
            "tag",
            "-a",
            "-m",
            "A tag on a tag",
            "nested-tag",
            "v0.0000",
        ],
    );
}

fn fast_import(repo: &Path, spec: &Spec) -> io::Result<()> {
    let mut child = git_command(repo)
        .args([
            "fast-import",
            "--quiet",
            "--done",
            "--depth=50",
            "--active-branches=16",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let written = Generator::new(spec, BufWriter::with_capacity(1 << 20, stdin)).run();
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    written
}

/// splitmix64: a tiny deterministic generator, so the history never depends on a crate's RNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Files = Vec<Vec<String>>;

struct Generator<'a, W: Write> {
    spec: &'a Spec,
    out: W,
    rng: Rng,
    next_mark: usize,
}

impl<'a, W: Write> Generator<'a, W> {
    fn new(spec: &'a Spec, out: W) -> Self {
        Self {
            spec,
            out,
            rng: Rng(0x6d69_7272_6f72_6875),
            next_mark: 1,
        }
    }

    fn file_count(&self) -> usize {
        self.spec.dirs * self.spec.files_per_dir
    }

    fn file_path(&self, file: usize) -> String {
        format!(
            "d{:02}/f{:03}.txt",
            file / self.spec.files_per_dir,
            file % self.spec.files_per_dir
        )
    }

    fn line(&mut self, file: usize, line: usize, commit: Option<usize>) -> String {
        let (a, b) = (self.rng.next(), self.rng.next());
        match commit {
            None => format!("file {file} line {line}: {a:016x} {b:016x}"),
            Some(c) => format!("file {file} line {line}: {a:016x} {b:016x} changed by {c}"),
        }
    }

    /// Changes one random line in `changes_per_commit` random files of `files`; returns them.
    fn mutate(&mut self, files: &mut Files, commit: usize, dirty: &mut Vec<usize>) {
        for _ in 0..self.spec.changes_per_commit {
            let file = self.rng.below(files.len());
            let line = self.rng.below(self.spec.lines_per_file);
            files[file][line] = self.line(file, line, Some(commit));
            if !dirty.contains(&file) {
                dirty.push(file);
            }
        }
    }

    fn run(mut self) -> io::Result<()> {
        let spec = self.spec;
        let main_len = spec.main_commits();
        let mut forks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for b in 0..spec.branches {
            forks
                .entry((b + 1) * main_len / (spec.branches + 1))
                .or_default()
                .push(b);
        }
        let mut files: Files = (0..self.file_count())
            .map(|f| {
                (0..spec.lines_per_file)
                    .map(|l| self.line(f, l, None))
                    .collect()
            })
            .collect();
        let mut main_marks = Vec::with_capacity(main_len);
        let mut pending_merges: Vec<(usize, BTreeMap<usize, Vec<String>>)> = Vec::new();
        let mut commit_number = 0;

        for i in 0..main_len {
            let mut dirty = Vec::new();
            let mut merges = Vec::new();
            for (tip, overlay) in pending_merges.drain(..) {
                for (file, content) in overlay {
                    files[file] = content;
                    if !dirty.contains(&file) {
                        dirty.push(file);
                    }
                }
                merges.push(tip);
            }
            if i == 0 {
                dirty = (0..files.len()).collect();
            } else {
                self.mutate(&mut files, commit_number, &mut dirty);
            }
            let changes: Vec<(String, &Vec<String>)> = dirty
                .iter()
                .map(|&f| (self.file_path(f), &files[f]))
                .collect();
            let readme = (i == 0).then_some("Synthetic upstream for mirrorhub's sync benchmark.\n");
            let message = if merges.is_empty() {
                format!(
                    "Change {} files (commit {commit_number})\n\nGenerated history.\n",
                    dirty.len()
                )
            } else {
                format!(
                    "Merge {} branch(es) (commit {commit_number})\n",
                    merges.len()
                )
            };
            let time = EPOCH + commit_number as u64 * SECONDS_PER_COMMIT;
            let mark = self.commit(
                "refs/heads/main",
                time,
                &message,
                None,
                &merges,
                &changes,
                readme,
            )?;
            main_marks.push(mark);
            commit_number += 1;

            for b in forks.remove(&i).unwrap_or_default() {
                let name = format!("refs/heads/{}", branch_name(b));
                let own = spec.own_commits(b);
                if own == 0 {
                    writeln!(self.out, "reset {name}\nfrom :{mark}\n")?;
                    continue;
                }
                let mut overlay: BTreeMap<usize, Vec<String>> = BTreeMap::new();
                let mut tip = mark;
                for k in 0..own {
                    let mut branch_files = files.clone_subset(&overlay);
                    let mut touched = Vec::new();
                    self.mutate(&mut branch_files, commit_number, &mut touched);
                    for &f in &touched {
                        overlay.insert(f, branch_files[f].clone());
                    }
                    let changes: Vec<(String, &Vec<String>)> = touched
                        .iter()
                        .map(|&f| (self.file_path(f), &overlay[&f]))
                        .collect();
                    let message = format!(
                        "Work on {} ({}/{own}, commit {commit_number})\n",
                        branch_name(b),
                        k + 1
                    );
                    let time = EPOCH + i as u64 * SECONDS_PER_COMMIT + 1 + k as u64;
                    let from = (k == 0).then_some(mark);
                    tip = self.commit(&name, time, &message, from, &[], &changes, None)?;
                    commit_number += 1;
                }
                if b % 5 == 1 && i + 1 < main_len {
                    pending_merges.push((tip, overlay));
                }
            }
        }

        for t in 0..spec.annotated_tags {
            let mark = main_marks[(t + 1) * main_len / (spec.annotated_tags + 1)];
            let time = EPOCH + commit_number as u64 * SECONDS_PER_COMMIT + t as u64;
            writeln!(
                self.out,
                "tag v0.{t:04}\nfrom :{mark}\ntagger {IDENTITY} {time} +0000"
            )?;
            self.data(format!("Release v0.{t:04}\n").as_bytes())?;
        }
        for t in 0..spec.lightweight_tags {
            let mark = main_marks[(2 * t + 1) * main_len / (2 * spec.lightweight_tags)];
            writeln!(self.out, "reset refs/tags/build-{t:04}\nfrom :{mark}\n")?;
        }
        writeln!(self.out, "done")?;
        self.out.flush()?;
        debug_assert_eq!(commit_number, spec.commits);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        refname: &str,
        time: u64,
        message: &str,
        from: Option<usize>,
        merges: &[usize],
        changes: &[(String, &Vec<String>)],
        readme: Option<&str>,
    ) -> io::Result<usize> {
        let mark = self.next_mark;
        self.next_mark += 1;
        writeln!(self.out, "commit {refname}\nmark :{mark}")?;
        writeln!(
            self.out,
            "author {IDENTITY} {time} +0000\ncommitter {IDENTITY} {time} +0000"
        )?;
        self.data(message.as_bytes())?;
        if let Some(from) = from {
            writeln!(self.out, "from :{from}")?;
        }
        for merge in merges {
            writeln!(self.out, "merge :{merge}")?;
        }
        if let Some(readme) = readme {
            writeln!(self.out, "M 100644 inline README")?;
            self.data(readme.as_bytes())?;
        }
        let mut content = Vec::new();
        for (path, lines) in changes {
            content.clear();
            for line in lines.iter() {
                content.extend_from_slice(line.as_bytes());
                content.push(b'\n');
            }
            writeln!(self.out, "M 100644 inline {path}")?;
            self.data(&content)?;
        }
        writeln!(self.out)?;
        Ok(mark)
    }

    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        writeln!(self.out, "data {}", bytes.len())?;
        self.out.write_all(bytes)?;
        writeln!(self.out)
    }
}

/// The files of a branch: `main`'s at the fork, with the branch's own changes on top.
trait CloneSubset {
    fn clone_subset(&self, overlay: &BTreeMap<usize, Vec<String>>) -> Files;
}

impl CloneSubset for Files {
    fn clone_subset(&self, overlay: &BTreeMap<usize, Vec<String>>) -> Files {
        self.iter()
            .enumerate()
            .map(|(f, lines)| overlay.get(&f).unwrap_or(lines).clone())
            .collect()
    }
}

/// The file [`add_commit`] and [`rewrite_branch`] write at the root of the tree.
pub const MUTATION_FILE: &str = "mirrorhub-bench.txt";

/// A commit on `parent` whose tree is the parent's with [`MUTATION_FILE`] set to `contents`.
fn commit_on(repo: &Path, parent: &str, contents: &str, message: &str) -> String {
    let blob = git_with_stdin(repo, ["hash-object", "-w", "--stdin"], contents.as_bytes());
    let listing = git(repo, ["ls-tree", &format!("{parent}^{{tree}}")]);
    let mut entries: Vec<String> = listing
        .lines()
        .filter(|entry| entry.split_once('\t').map(|(_, name)| name) != Some(MUTATION_FILE))
        .map(str::to_owned)
        .collect();
    entries.push(format!("100644 blob {}\t{MUTATION_FILE}", blob.trim()));
    let tree = git_with_stdin(repo, ["mktree"], (entries.join("\n") + "\n").as_bytes());
    git(
        repo,
        ["commit-tree", tree.trim(), "-p", parent, "-m", message],
    )
    .trim()
    .to_owned()
}

fn rev_parse(repo: &Path, rev: &str) -> String {
    git(repo, ["rev-parse", "--verify", "--quiet", rev])
        .trim()
        .to_owned()
}

/// Adds one commit on top of `branch` in the bare `repo` (as a push would), changing one file;
/// returns its id. The same message on the same tip always makes the same commit.
pub fn add_commit(repo: &Path, branch: &str, message: &str) -> String {
    let refname = format!("refs/heads/{branch}");
    let parent = rev_parse(repo, &format!("{refname}^{{commit}}"));
    let commit = commit_on(repo, &parent, &format!("{message}\n"), message);
    git(repo, ["update-ref", &refname, &commit, &parent]);
    commit
}

/// Replaces the tip of `branch` with a different commit on the tip's first parent, as a
/// force-push of a rewritten history would; returns the new tip.
pub fn rewrite_branch(repo: &Path, branch: &str, message: &str) -> String {
    let refname = format!("refs/heads/{branch}");
    let old = rev_parse(repo, &format!("{refname}^{{commit}}"));
    let base = rev_parse(repo, &format!("{old}^1"));
    let commit = commit_on(repo, &base, &format!("rewritten: {message}\n"), message);
    assert_ne!(commit, old, "the rewrite made the same commit");
    git(repo, ["update-ref", &refname, &commit, &old]);
    commit
}

/// Deletes `branch` from `repo`.
pub fn delete_branch(repo: &Path, branch: &str) {
    git(repo, ["update-ref", "-d", &format!("refs/heads/{branch}")]);
}

/// Deletes `tag` from `repo`.
pub fn delete_tag(repo: &Path, tag: &str) {
    git(repo, ["update-ref", "-d", &format!("refs/tags/{tag}")]);
}
