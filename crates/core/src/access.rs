//! Who may do what: access levels, the kinds of owners, and the one rule that decides a
//! caller's access to a repository. Pure data, so the rule is tested as a table.

use serde::{Deserialize, Serialize};

use crate::model::Visibility;

string_enum! {
    /// A level of access, cumulative: `write` includes `read`, `admin` includes `write`. It is
    /// both a token's scope and an organization member's role.
    Access {
        /// Clone, fetch and see the repository and its syncs.
        Read => "read",
        /// Also create repositories under the owner, sync them and push to primaries.
        Write => "write",
        /// Also change settings, promote and delete repositories, manage members and tokens.
        Admin => "admin",
    }
}

impl Access {
    /// The order of the levels: `Read < Write < Admin`.
    const fn rank(self) -> u8 {
        match self {
            Access::Read => 0,
            Access::Write => 1,
            Access::Admin => 2,
        }
    }

    /// Whether this level includes `other`.
    pub const fn includes(self, other: Access) -> bool {
        self.rank() >= other.rank()
    }

    /// The lower of two levels.
    pub const fn min(self, other: Access) -> Access {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }

    /// The levels this one includes, lowest first (as the API lists a token's scopes).
    pub fn implied(self) -> Vec<Access> {
        Access::ALL
            .iter()
            .copied()
            .filter(|a| self.includes(*a))
            .collect()
    }

    /// The highest of `levels`; `None` when there are none.
    pub fn highest(levels: impl IntoIterator<Item = Access>) -> Option<Access> {
        levels.into_iter().fold(None, |best, a| match best {
            Some(b) if Access::includes(b, a) => Some(b),
            _ => Some(a),
        })
    }
}

string_enum! {
    /// What an owner name stands for. Users and organizations share one namespace.
    AccountKind {
        User => "user",
        Org => "org",
    }
}

/// Who is asking, once their credentials were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No credentials: public repositories only, read only.
    Anonymous,
    /// The hub's admin token (`MIRRORHUB_ADMIN_TOKEN`): everything, like a site admin.
    AdminToken,
    /// A user, through one of their personal access tokens (or a web session).
    User {
        id: i64,
        name: String,
        site_admin: bool,
        /// What the token may do at most, whatever the user's own rights.
        scope: Access,
    },
}

impl Actor {
    /// Whether the actor administers the whole hub (and how far the credentials let them).
    pub fn site_access(&self) -> Option<Access> {
        match self {
            Actor::AdminToken => Some(Access::Admin),
            Actor::User {
                site_admin: true,
                scope,
                ..
            } => Some(*scope),
            _ => None,
        }
    }

    /// The user's name, for a user.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Actor::User { name, .. } => Some(name),
            _ => None,
        }
    }

    /// What the actor may do under `owner`, given the actor's role in it when `owner` is an
    /// organization they belong to (`org_role`). Owning a name (a user's own) gives admin.
    pub fn owner_access(&self, owner: &str, org_role: Option<Access>) -> Option<Access> {
        if let Some(site) = self.site_access() {
            return Some(site);
        }
        match self {
            Actor::User { name, scope, .. } => {
                let own = name.eq_ignore_ascii_case(owner).then_some(Access::Admin);
                Access::highest(own.into_iter().chain(org_role)).map(|a| a.min(*scope))
            }
            _ => None,
        }
    }

    /// What the actor may do with a repository of `owner` with `visibility`. `None` means the
    /// repository must look as if it did not exist.
    pub fn repo_access(
        &self,
        owner: &str,
        visibility: Visibility,
        org_role: Option<Access>,
    ) -> Option<Access> {
        let public = (visibility == Visibility::Public).then_some(Access::Read);
        Access::highest(public.into_iter().chain(self.owner_access(owner, org_role)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::*;

    fn user(name: &str, scope: Access) -> Actor {
        Actor::User {
            id: 7,
            name: name.into(),
            site_admin: false,
            scope,
        }
    }

    #[test]
    fn levels_are_cumulative() {
        assert!(Admin.includes(Write) && Admin.includes(Read) && Write.includes(Read));
        assert!(!Read.includes(Write) && !Write.includes(Admin));
        assert_eq!(Write.implied(), vec![Read, Write]);
        assert_eq!(Access::highest([Read, Admin, Write]), Some(Admin));
        assert_eq!(Access::highest([]), None);
        assert_eq!(Admin.min(Read), Read);
    }

    /// (actor, owner, visibility, the actor's role in the owner, the access expected)
    type Case = (
        Actor,
        &'static str,
        Visibility,
        Option<Access>,
        Option<Access>,
    );

    #[test]
    fn repository_access_table() {
        use Visibility::{Private, Public};
        let cases: &[Case] = &[
            (Actor::Anonymous, "team", Public, None, Some(Read)),
            (Actor::Anonymous, "team", Private, None, None),
            (Actor::AdminToken, "team", Private, None, Some(Admin)),
            // A user's own repositories, limited by the token's scope.
            (user("ana", Admin), "ana", Private, None, Some(Admin)),
            (user("ana", Read), "ANA", Private, None, Some(Read)),
            // Someone else's: public ones to read, private ones not at all.
            (user("ana", Admin), "bob", Public, None, Some(Read)),
            (user("ana", Admin), "bob", Private, None, None),
            // An organization's: the member's role, limited by the scope.
            (
                user("ana", Admin),
                "team",
                Private,
                Some(Write),
                Some(Write),
            ),
            (user("ana", Read), "team", Private, Some(Admin), Some(Read)),
            (user("ana", Write), "team", Public, Some(Read), Some(Read)),
            // A site admin's token is as strong as its scope, everywhere.
            (
                Actor::User {
                    id: 1,
                    name: "root".into(),
                    site_admin: true,
                    scope: Write,
                },
                "team",
                Private,
                None,
                Some(Write),
            ),
        ];
        for (actor, owner, visibility, role, want) in cases {
            assert_eq!(
                actor.repo_access(owner, *visibility, *role),
                *want,
                "{actor:?} on {owner} ({visibility}) as {role:?}"
            );
        }
    }
}
