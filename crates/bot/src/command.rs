//! The commands, their grammar, and their usage lines.

use std::fmt;

use crate::markdown::Piece;
use crate::text::{code_span, shorten};

/// One command, as typed: syntax only. Names, URLs and durations are checked by the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Mirror `url` (this repository's when `None`) into `target` (a name the hub picks when
    /// `None`) and keep it in sync.
    Mirror {
        url: Option<String>,
        target: Option<Target>,
        visibility: Option<Visibility>,
        /// As typed (`90m`, `24h`); the hub parses it.
        interval: Option<String>,
    },
    /// Copy `url` once; the copy becomes the primary.
    Migrate {
        url: Option<String>,
        target: Option<Target>,
        visibility: Option<Visibility>,
    },
    /// Sync `target` now (this repository's mirror when `None`).
    Sync {
        target: Option<Target>,
    },
    /// Show `target`'s state (this repository's mirror when `None`).
    Status {
        target: Option<Target>,
    },
    /// Mirror every repository of a forge namespace (this repository's when `None`) under
    /// hub owner `owner` (the operator's mapping of the namespace when `None`), and the new
    /// ones as they appear: a mirror set.
    MirrorOrg {
        namespace: Option<String>,
        owner: Option<String>,
    },
    Help,
}

impl Command {
    /// The command word, lower case, without the `/`: `mirror`, `migrate`, `sync`, `status`,
    /// `mirror-org`, `help`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Mirror { .. } => "mirror",
            Command::Migrate { .. } => "migrate",
            Command::Sync { .. } => "sync",
            Command::Status { .. } => "status",
            Command::MirrorOrg { .. } => "mirror-org",
            Command::Help => "help",
        }
    }
}

/// `<owner>/<name>`: two non-empty segments without whitespace (the hub validates them fully).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub owner: String,
    pub name: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    Private,
}

/// Why a line that looks like a command is not a valid one. `Display` says what was wrong,
/// then (on a second line) the usage of the command, or the list of commands for an unknown one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `/<word>` where `<word>` is none of the six commands (`word` as typed).
    #[error("unknown command `/{}`\ncommands: {}", shorten(word, 40), COMMAND_LIST)]
    Unknown { word: String },
    /// A known command with arguments that do not fit its grammar. `command` is the command
    /// word in lower case (`mirror`); `problem` is a short Markdown sentence (user text in it
    /// is in inline code).
    #[error("{problem}\nusage: {}", usage(command).unwrap_or(""))]
    Usage {
        command: &'static str,
        problem: String,
    },
}

impl CommandError {
    /// The usage line of the command, or `None` for an unknown command.
    pub fn usage(&self) -> Option<&'static str> {
        match self {
            CommandError::Unknown { .. } => None,
            CommandError::Usage { command, .. } => usage(command),
        }
    }
}

const COMMAND_LIST: &str = "/mirror, /migrate, /sync, /status, /mirror-org, /help";

pub(crate) const COMMANDS: [(&str, &str); 6] = [
    (
        "mirror",
        "/mirror [<url>] [as <owner>/<name>] [--private | --public] [--interval <duration>]",
    ),
    (
        "migrate",
        "/migrate [<url>] [as <owner>/<name>] [--private | --public]",
    ),
    ("sync", "/sync [<owner>/<name>]"),
    ("status", "/status [<owner>/<name>]"),
    ("mirror-org", "/mirror-org [<namespace>] [as <owner>]"),
    ("help", "/help"),
];

/// The usage line of a command, given its word with or without the `/`, in any case:
/// `usage("mirror")`, `usage("/Sync")`. `None` for anything else.
pub fn usage(command: &str) -> Option<&'static str> {
    let word = command.strip_prefix('/').unwrap_or(command);
    COMMANDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, usage)| *usage)
}

/// The word of a command attempt on a line whose first piece is text starting with `/`:
/// `/` followed by ASCII letters (words joined by single hyphens: `mirror-org`), followed by
/// whitespace, the end of the line, or something
/// that shows no text (an HTML comment). Anything else (`/mirror:`, `/usr/bin`, `/mirror`code``)
/// is not a command attempt. Returns the word and the number of bytes it takes with the `/`.
pub(crate) fn command_word(pieces: &[Piece]) -> Option<(&str, usize)> {
    let Some(Piece::Text(first)) = pieces.first() else {
        return None;
    };
    let rest = first.strip_prefix('/')?;
    let bytes = rest.as_bytes();
    let mut len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if len == 0 {
        return None;
    }
    while bytes.get(len) == Some(&b'-') && bytes.get(len + 1).is_some_and(u8::is_ascii_alphabetic) {
        len += 1 + bytes[len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
    }
    let word = &rest[..len];
    let ends_word = match rest[len..].chars().next() {
        Some(c) => c.is_whitespace(),
        None => matches!(pieces.get(1), None | Some(Piece::Gap)),
    };
    ends_word.then_some((word, len + 1))
}

/// Parses one command attempt. `pieces` start with `/<word>` as found by [`command_word`].
pub(crate) fn parse_command(pieces: &[Piece]) -> Option<Result<Command, CommandError>> {
    let (word, skip) = command_word(pieces)?;
    let lower = word.to_ascii_lowercase();
    let Some(&(name, _)) = COMMANDS.iter().find(|(name, _)| *name == lower) else {
        return Some(Err(CommandError::Unknown {
            word: word.to_owned(),
        }));
    };
    if name == "help" {
        // Help takes nothing and ignores what follows: whoever asks for help gets it.
        return Some(Ok(Command::Help));
    }
    let usage_error = |problem: String| CommandError::Usage {
        command: name,
        problem,
    };
    let tokens = match tokenize(pieces, skip) {
        Ok(tokens) => tokens,
        Err(problem) => return Some(Err(usage_error(problem))),
    };
    let result = match name {
        "mirror" => parse_create(&tokens, true).map(|c| Command::Mirror {
            url: c.url,
            target: c.target,
            visibility: c.visibility,
            interval: c.interval,
        }),
        "migrate" => parse_create(&tokens, false).map(|c| Command::Migrate {
            url: c.url,
            target: c.target,
            visibility: c.visibility,
        }),
        "sync" => parse_optional_target(&tokens).map(|target| Command::Sync { target }),
        "mirror-org" => parse_mirror_org(&tokens),
        _ => parse_optional_target(&tokens).map(|target| Command::Status { target }),
    };
    Some(result.map_err(usage_error))
}

/// One argument. A quoted token (`"…"`, `'…'`, or starting with inline code) is always a
/// value: never `as`, never a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
}

impl Token {
    /// The token's text if it is a bare word (so possibly a keyword or a flag).
    fn bare(&self) -> Option<&str> {
        (!self.quoted).then_some(self.text.as_str())
    }

    fn is_option(&self) -> bool {
        !self.quoted && self.text.starts_with('-')
    }

    fn shown(&self) -> String {
        code_span(&shorten(&self.text, 60))
    }
}

/// Splits the line after the command word into tokens: words separated by whitespace; a quote
/// (`"` or `'`) opens a quoted value at the start of a word or right after the `=` of a
/// `--flag=`, and closes at the next same quote (no escapes: use the other quote, or inline
/// code); a quote inside a word is a plain character (`it's`). Inline code is literal text.
fn tokenize(pieces: &[Piece], skip: usize) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut current: Option<Token> = None;
    let mut quote: Option<char> = None;
    let mut just_closed = false;

    fn finish(tokens: &mut Vec<Token>, current: &mut Option<Token>) {
        if let Some(t) = current.take() {
            tokens.push(t);
        }
    }

    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => {
                let text = if i == 0 { &text[skip..] } else { text.as_str() };
                for c in text.chars() {
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                            just_closed = true;
                        } else if let Some(t) = current.as_mut() {
                            t.text.push(c);
                        }
                        continue;
                    }
                    if c.is_whitespace() {
                        just_closed = false;
                        finish(&mut tokens, &mut current);
                        continue;
                    }
                    if just_closed {
                        return Err("put a space after a closing quote".to_owned());
                    }
                    if c == '"' || c == '\'' {
                        match current.as_ref() {
                            None => {
                                current = Some(Token {
                                    text: String::new(),
                                    quoted: true,
                                });
                                quote = Some(c);
                                continue;
                            }
                            Some(t)
                                if !t.quoted
                                    && t.text.starts_with("--")
                                    && t.text.ends_with('=') =>
                            {
                                quote = Some(c);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    current
                        .get_or_insert_with(|| Token {
                            text: String::new(),
                            quoted: false,
                        })
                        .text
                        .push(c);
                }
            }
            Piece::Code(code) => {
                if quote.is_none() && just_closed {
                    return Err("put a space after a closing quote".to_owned());
                }
                current
                    .get_or_insert_with(|| Token {
                        text: String::new(),
                        quoted: true,
                    })
                    .text
                    .push_str(code);
            }
            Piece::Gap => {
                if quote.is_none() {
                    just_closed = false;
                    finish(&mut tokens, &mut current);
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "the quote {} is never closed",
            code_span(&q.to_string())
        ));
    }
    finish(&mut tokens, &mut current);
    Ok(tokens)
}

#[derive(Default)]
struct Create {
    url: Option<String>,
    target: Option<Target>,
    visibility: Option<Visibility>,
    interval: Option<String>,
}

/// `/mirror` and `/migrate`: at most one URL, `as <owner>/<name>`, `--private`/`--public`,
/// and for `/mirror` `--interval <d>` or `--interval=<d>`, in any order.
fn parse_create(tokens: &[Token], is_mirror: bool) -> Result<Create, String> {
    let mut c = Create::default();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        i += 1;
        let bare = token.bare().map(str::to_ascii_lowercase);
        match bare.as_deref() {
            Some("as") => {
                if c.target.is_some() {
                    return Err("`as` given twice".to_owned());
                }
                let Some(next) = tokens.get(i).filter(|t| !t.is_option()) else {
                    return Err("`as` needs `<owner>/<name>` after it".to_owned());
                };
                i += 1;
                c.target = Some(parse_target(next)?);
            }
            Some(flag @ ("--private" | "--public")) => {
                let v = if flag == "--private" {
                    Visibility::Private
                } else {
                    Visibility::Public
                };
                match c.visibility {
                    None => c.visibility = Some(v),
                    Some(old) if old == v => return Err(format!("`{flag}` given twice")),
                    Some(_) => return Err("`--private` and `--public` together".to_owned()),
                }
            }
            Some(flag) if flag == "--interval" || flag.starts_with("--interval=") => {
                if !is_mirror {
                    return Err(
                        "`/migrate` takes no `--interval`: a migration copies the repository once"
                            .to_owned(),
                    );
                }
                if c.interval.is_some() {
                    return Err("`--interval` given twice".to_owned());
                }
                let value = match flag.strip_prefix("--interval=") {
                    // Take the value from the token as typed (the match above lower-cased it).
                    Some(_) => token.text["--interval=".len()..].to_owned(),
                    None => match tokens.get(i).filter(|t| !t.is_option()) {
                        Some(next) => {
                            i += 1;
                            next.text.clone()
                        }
                        None => String::new(),
                    },
                };
                if value.trim().is_empty() {
                    return Err("`--interval` needs a duration, such as `24h` or `90m`".to_owned());
                }
                c.interval = Some(value);
            }
            Some(_) if token.is_option() => {
                return Err(format!("unknown option {}", token.shown()));
            }
            _ => {
                if c.url.is_some() {
                    return Err(format!("unexpected {}: one URL at most", token.shown()));
                }
                if token.text.trim().is_empty() {
                    return Err("the URL is empty".to_owned());
                }
                if token.text.starts_with('-') {
                    return Err("a URL cannot start with `-`".to_owned());
                }
                c.url = Some(token.text.clone());
            }
        }
    }
    Ok(c)
}

/// `/sync` and `/status`: nothing, or one `<owner>/<name>`.
fn parse_optional_target(tokens: &[Token]) -> Result<Option<Target>, String> {
    match tokens {
        [] => Ok(None),
        [t, ..] if t.is_option() => Err(format!("unknown option {}", t.shown())),
        [t, rest @ ..] => {
            let target = parse_target(t)?;
            match rest.first() {
                None => Ok(Some(target)),
                Some(extra) => Err(format!(
                    "unexpected {}: one `<owner>/<name>` at most",
                    extra.shown()
                )),
            }
        }
    }
}

/// `/mirror-org`: at most one namespace (`acme`, a GitLab group path `acme/platform`) and
/// `as <owner>`, in any order.
fn parse_mirror_org(tokens: &[Token]) -> Result<Command, String> {
    let mut namespace: Option<String> = None;
    let mut owner: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        i += 1;
        if token.bare().is_some_and(|w| w.eq_ignore_ascii_case("as")) {
            if owner.is_some() {
                return Err("`as` given twice".to_owned());
            }
            let Some(next) = tokens.get(i).filter(|t| !t.is_option()) else {
                return Err("`as` needs a hub `<owner>` after it".to_owned());
            };
            i += 1;
            if !plain_segment(&next.text) {
                return Err(format!(
                    "expected a hub `<owner>` (one name, no `/`), got {}",
                    next.shown()
                ));
            }
            owner = Some(next.text.clone());
        } else if token.is_option() {
            return Err(format!("unknown option {}", token.shown()));
        } else if namespace.is_some() {
            return Err(format!(
                "unexpected {}: one namespace at most",
                token.shown()
            ));
        } else {
            let path = token.text.trim_matches('/');
            if path.is_empty() || !path.split('/').all(plain_segment) {
                return Err(format!(
                    "expected a namespace such as `acme` or `acme/platform`, got {}",
                    token.shown()
                ));
            }
            namespace = Some(path.to_owned());
        }
    }
    Ok(Command::MirrorOrg { namespace, owner })
}

fn plain_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && !s.chars().any(char::is_whitespace)
}

fn parse_target(token: &Token) -> Result<Target, String> {
    let bad = || format!("expected `<owner>/<name>`, got {}", token.shown());
    let (owner, name) = token.text.split_once('/').ok_or_else(bad)?;
    let fine = |s: &str| !s.is_empty() && !s.contains('/') && !s.chars().any(char::is_whitespace);
    if fine(owner) && fine(name) {
        Ok(Target {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    } else {
        Err(bad())
    }
}

/// The Markdown help: every command with one sentence.
pub fn help() -> String {
    let sentences = [
        "mirrors a repository (this one when no URL is given) and keeps it in sync: on every push when a webhook can be set up, and on its interval (`24h` unless `--interval` says otherwise).",
        "copies a repository once; the copy becomes the primary and is never synced again.",
        "syncs a mirror now (this repository's mirror when no name is given).",
        "shows a mirror's state, its last and next sync, and its last error.",
        "mirrors every repository of an organization, group or account (this repository's when none is given), and the new ones as they appear; for the namespace's owners.",
        "shows this list.",
    ];
    let mut out = String::from(
        "**Commands**: write one at the start of a line of a comment (several may follow, one per line, at most 10):\n\n",
    );
    for ((_, usage), sentence) in COMMANDS.iter().zip(sentences) {
        out.push_str("- ");
        out.push_str(&code_span(usage));
        out.push(' ');
        out.push_str(sentence);
        out.push('\n');
    }
    out.push_str(
        "\nArguments may be quoted (`\"…\"`, `'…'` or in inline code); flags and `as` may come in any order. \
         Commands in code, quotes and HTML comments are ignored.\n",
    );
    crate::defuse(&out)
}
