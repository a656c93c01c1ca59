//! How a mirror stands against a listing of its upstream: which refs a sync would change.
//! Pure: the listing and the mirror's refs come in, a comparison goes out. This is the no-op
//! check's rule, so it follows exactly what a sync makes of the mirror:
//!
//! - the mirror keeps the upstream's branches and tags that its [`RefFilter`] keeps, nothing
//!   else (pull-request refs are never listed as branches or tags);
//! - HEAD follows the upstream's HEAD when that names a branch; a detached or unadvertised
//!   HEAD leaves the mirror's as it is;
//! - a ref of the mirror that the upstream lacks (or the filter drops) differs, so an empty
//!   advertisement is never "nothing to do" for a mirror with refs: the sync then runs the
//!   fetch path, which has its own rule for an emptied upstream.

use mirrorhub_core::RefFilter;

use crate::advert::AdvertisedHead;
use crate::pkt::Advertised;
use crate::refs::{LocalState, RefMap};

/// What a sync would change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Comparison {
    /// Full names of the refs whose object differs, or that exist on one side only.
    pub differing: Vec<String>,
    /// The branch HEAD must point at, when it points elsewhere now.
    pub head: Option<String>,
}

impl Comparison {
    /// Nothing to do: the sync is a no-op.
    pub(crate) fn is_empty(&self) -> bool {
        self.differing.is_empty() && self.head.is_none()
    }

    /// How far behind the mirror is, in refs (a HEAD to follow counts as one).
    pub(crate) fn behind(&self) -> usize {
        self.differing.len() + usize::from(self.head.is_some())
    }
}

/// The upstream's refs the mirror keeps.
pub(crate) fn wanted(listed: &RefMap, filter: &RefFilter) -> RefMap {
    if filter.is_all() {
        return listed.clone();
    }
    listed
        .iter()
        .filter(|(name, _)| filter.keeps(name))
        .map(|(n, o)| (n.clone(), o.clone()))
        .collect()
}

pub(crate) fn compare(local: &LocalState, listed: &Advertised, filter: &RefFilter) -> Comparison {
    let wanted = wanted(&listed.refs, filter);
    let mut differing: Vec<String> = wanted
        .iter()
        .filter(|(name, oid)| local.refs.get(*name) != Some(*oid))
        .map(|(name, _)| name.clone())
        .chain(
            local
                .refs
                .keys()
                .filter(|name| !wanted.contains_key(*name))
                .cloned(),
        )
        .collect();
    differing.sort();
    let head = match &listed.head {
        // A HEAD naming no branch the upstream has (v2 lists it as unborn) is not followed:
        // the mirror keeps its own, as git's fetch does.
        AdvertisedHead::Symref(target)
            if target.starts_with("refs/heads/")
                && listed.refs.contains_key(target)
                && local.head.as_deref() != Some(target) =>
        {
            Some(target.clone())
        }
        _ => None,
    };
    Comparison { differing, head }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirrorhub_core::RefFilterSpec;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn refs(pairs: &[(&str, &str)]) -> RefMap {
        pairs
            .iter()
            .map(|(n, o)| (n.to_string(), o.to_string()))
            .collect()
    }

    fn local(pairs: &[(&str, &str)], head: &str) -> LocalState {
        LocalState {
            refs: refs(pairs),
            head: Some(head.to_owned()),
        }
    }

    fn listed(pairs: &[(&str, &str)], head: AdvertisedHead) -> Advertised {
        Advertised {
            refs: refs(pairs),
            head,
        }
    }

    fn main_head() -> AdvertisedHead {
        AdvertisedHead::Symref("refs/heads/main".into())
    }

    #[test]
    fn equal_is_a_no_op() {
        let l = local(
            &[("refs/heads/main", A), ("refs/tags/v1", B)],
            "refs/heads/main",
        );
        let up = listed(&[("refs/heads/main", A), ("refs/tags/v1", B)], main_head());
        assert!(compare(&l, &up, &RefFilter::default()).is_empty());
        // A detached or unadvertised HEAD leaves the mirror's alone.
        for head in [AdvertisedHead::Detached, AdvertisedHead::NotSeen] {
            let up = listed(&[("refs/heads/main", A), ("refs/tags/v1", B)], head);
            assert!(compare(&l, &up, &RefFilter::default()).is_empty());
        }
    }

    #[test]
    fn every_kind_of_change_is_seen() {
        let l = local(
            &[("refs/heads/main", A), ("refs/tags/v1", B)],
            "refs/heads/main",
        );
        let all = RefFilter::default();
        // HEAD moved only.
        let two = [
            ("refs/heads/dev", B),
            ("refs/heads/main", A),
            ("refs/tags/v1", B),
        ];
        let l2 = local(&two, "refs/heads/main");
        let up = listed(&two, AdvertisedHead::Symref("refs/heads/dev".into()));
        let c = compare(&l2, &up, &all);
        assert_eq!(c.head.as_deref(), Some("refs/heads/dev"));
        assert!(c.differing.is_empty());
        assert_eq!(c.behind(), 1);
        // To a branch that does not exist (v2's unborn HEAD): not followed.
        let up = listed(&two, AdvertisedHead::Symref("refs/heads/gone".into()));
        assert!(compare(&l2, &up, &all).is_empty());
        // A new tag only.
        let up = listed(
            &[
                ("refs/heads/main", A),
                ("refs/tags/v1", B),
                ("refs/tags/v2", A),
            ],
            main_head(),
        );
        assert_eq!(compare(&l, &up, &all).differing, ["refs/tags/v2"]);
        // A deleted ref only.
        let up = listed(&[("refs/heads/main", A)], main_head());
        assert_eq!(compare(&l, &up, &all).differing, ["refs/tags/v1"]);
        // A moved branch.
        let up = listed(&[("refs/heads/main", B), ("refs/tags/v1", B)], main_head());
        assert_eq!(compare(&l, &up, &all).differing, ["refs/heads/main"]);
        // An empty advertisement is never nothing to do.
        let up = listed(&[], AdvertisedHead::NotSeen);
        assert_eq!(compare(&l, &up, &all).behind(), 2);
    }

    #[test]
    fn the_filter_decides_what_the_mirror_should_hold() {
        let filter = RefFilter::parse(&RefFilterSpec {
            include: vec!["main".into()],
            exclude: vec![],
        })
        .unwrap();
        let up = listed(
            &[("refs/heads/main", A), ("refs/heads/dev", B)],
            main_head(),
        );
        // The upstream's dev is not wanted: no change.
        let l = local(&[("refs/heads/main", A)], "refs/heads/main");
        assert!(compare(&l, &up, &filter).is_empty());
        // A mirror still holding a ref the filter drops: it must go.
        let l = local(
            &[("refs/heads/main", A), ("refs/tags/old", B)],
            "refs/heads/main",
        );
        assert_eq!(compare(&l, &up, &filter).differing, ["refs/tags/old"]);
    }
}
