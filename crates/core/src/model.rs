//! The small closed vocabularies of the domain, each with one string form used by the
//! database, the API and the CLI.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the exact string form (as stored and as shown in the API).
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// How the hub relates to the upstream.
    Mode {
        /// The upstream stays the source of truth; the hub follows it.
        Mirror => "mirror",
        /// One full copy, then the hub is the primary remote and is never synced again.
        Migrate => "migrate",
    }
}

string_enum! {
    Visibility {
        Public => "public",
        Private => "private",
    }
}

string_enum! {
    /// Where a repository is in its life.
    RepoState {
        /// The initial copy is queued or running.
        Cloning => "cloning",
        /// A full copy exists and can be served.
        Ready => "ready",
        /// The initial copy failed; `last_error` says why. A sync retries it.
        Failed => "failed",
    }
}

string_enum! {
    /// The one word every way in (API, web UI, CLI, bot, metrics) says about a repository
    /// now. Worked out by [`crate::schedule::repo_status`] alone.
    RepoStatus {
        /// The first copy is queued or running (or running again after it failed).
        Cloning => "cloning",
        /// A later sync of a mirror is running.
        Syncing => "syncing",
        /// The last sync succeeded within the mirror's interval plus the grace period; for a
        /// primary (migrated or promoted), its copy is complete.
        Synced => "synced",
        /// The last success is older than the interval plus `MIRRORHUB_STALE_GRACE`.
        Stale => "stale",
        /// The last sync failed; more retries are coming.
        Failed => "failed",
        /// Scheduled syncs stopped after repeated permanent failures; `paused_reason` says why.
        Paused => "paused",
    }
}

string_enum! {
    /// What asked for a sync.
    Trigger {
        /// The initial copy after creation.
        Create => "create",
        /// Someone asked through the API, the CLI or the UI's sync button.
        Manual => "manual",
        /// The fallback scheduler found the mirror due.
        Schedule => "schedule",
        /// An upstream push webhook.
        Webhook => "webhook",
        /// A bot command in a comment.
        Bot => "bot",
        /// A job interrupted by a crash or restart, taken up again.
        Recovery => "recovery",
        /// A person promoted the mirror to primary: a final sync, a check that every branch
        /// and tag equals the upstream's, then the hub is the primary and never syncs again.
        Promote => "promote",
        /// A `git push` to a primary (migrated or promoted) repository on the hub.
        Push => "push",
    }
}

string_enum! {
    Outcome {
        Running => "running",
        Success => "success",
        /// The upstream had nothing new: no transfer was needed.
        Unchanged => "unchanged",
        Failed => "failed",
    }
}

string_enum! {
    /// How one ref moved during a sync.
    RefChangeKind {
        Created => "created",
        Deleted => "deleted",
        FastForward => "fast_forward",
        /// Moved to a commit that does not contain the old one (force-push), or a tag moved.
        Forced => "forced",
    }
}

/// One entry of a sync's journal: a ref and the object ids it moved between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    /// Full ref name, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub name: String,
    /// The object id before the sync; `None` when the ref was created.
    pub old: Option<String>,
    /// The object id after the sync; `None` when the ref was deleted.
    pub new: Option<String>,
    pub kind: RefChangeKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(*m));
        }
        for s in RepoState::ALL {
            assert_eq!(RepoState::parse(s.as_str()), Some(*s));
        }
        for s in RepoStatus::ALL {
            assert_eq!(RepoStatus::parse(s.as_str()), Some(*s));
        }
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()), Some(*t));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        for k in RefChangeKind::ALL {
            assert_eq!(RefChangeKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(Visibility::parse("internal"), None);
    }
}
