//! Dot sets: the updates that keep one entry of a causal type alive, and the rule that merges
//! them.

use std::cmp::Ordering;

use super::{Dot, VersionVector};

/// A non-empty set of dots, sorted by actor then counter.
///
/// An entry of a causal type (an element of an [`OrSet`](crate::OrSet), a key of an
/// [`OrMap`](crate::OrMap), an enabled [`EnableWinsFlag`](crate::EnableWinsFlag)) is alive while
/// at least one of the updates that wrote it has not been seen removed. Almost always that is one
/// dot, so one dot is stored inline without a heap allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DotSet(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    One(Dot),
    /// At least two dots, strictly increasing.
    Many(Box<[Dot]>),
}

impl DotSet {
    /// Returns the set holding just `dot`.
    pub fn single(dot: Dot) -> Self {
        DotSet(Repr::One(dot))
    }

    /// Builds a set from dots sorted strictly increasing, or `None` when `dots` is empty.
    pub(crate) fn from_sorted(mut dots: Vec<Dot>) -> Option<Self> {
        debug_assert!(dots.windows(2).all(|w| w[0] < w[1]));
        match dots.len() {
            0 => None,
            1 => Some(DotSet(Repr::One(dots.pop().expect("len is 1")))),
            _ => Some(DotSet(Repr::Many(dots.into_boxed_slice()))),
        }
    }

    /// Returns the dots, sorted.
    pub fn as_slice(&self) -> &[Dot] {
        match &self.0 {
            Repr::One(dot) => std::slice::from_ref(dot),
            Repr::Many(dots) => dots,
        }
    }

    /// Returns the number of dots (at least 1).
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Always false: a dot set holds at least one dot.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Returns whether `dot` is in the set.
    pub fn contains(&self, dot: Dot) -> bool {
        self.as_slice().binary_search(&dot).is_ok()
    }

    /// Returns the dots that `seen` has not seen: what survives when this entry is absent from a
    /// replica whose causal context is `seen` (it either removed the rest, or never had them).
    pub(crate) fn unseen_by(self, seen: &VersionVector) -> Option<DotSet> {
        match self.0 {
            Repr::One(dot) => (!seen.contains(dot)).then_some(self),
            Repr::Many(dots) => {
                let kept: Vec<Dot> = dots
                    .iter()
                    .copied()
                    .filter(|&d| !seen.contains(d))
                    .collect();
                if kept.len() == dots.len() {
                    Some(DotSet(Repr::Many(dots)))
                } else {
                    DotSet::from_sorted(kept)
                }
            }
        }
    }

    /// Merges the dots of one entry held by two replicas, given each replica's causal context.
    ///
    /// A dot both sides hold survives. A dot only one side holds survives unless the other side
    /// has seen it: having seen it and no longer holding it means that side removed it. This is
    /// the observed-remove rule, and why no tombstone is needed.
    pub(crate) fn join(
        mine: DotSet,
        mine_seen: &VersionVector,
        theirs: DotSet,
        theirs_seen: &VersionVector,
    ) -> Option<DotSet> {
        if let (Repr::One(a), Repr::One(b)) = (&mine.0, &theirs.0)
            && a == b
        {
            return Some(mine);
        }
        let (a, b) = (mine.as_slice(), theirs.as_slice());
        let mut kept = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let order = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Equal => {
                    kept.push(a[i]);
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    if !theirs_seen.contains(a[i]) {
                        kept.push(a[i]);
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if !mine_seen.contains(b[j]) {
                        kept.push(b[j]);
                    }
                    j += 1;
                }
            }
        }
        DotSet::from_sorted(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActorId;

    fn dot(a: u64, n: u64) -> Dot {
        Dot::new(ActorId::new(a), n)
    }

    fn ctx(pairs: &[(u64, u64)]) -> VersionVector {
        pairs.iter().map(|&(a, n)| (ActorId::new(a), n)).collect()
    }

    #[test]
    fn a_dot_the_other_side_saw_and_dropped_is_removed() {
        let mine = DotSet::single(dot(1, 1));
        assert!(mine.clone().unseen_by(&ctx(&[(1, 1)])).is_none());
        assert_eq!(mine.clone().unseen_by(&ctx(&[(2, 5)])), Some(mine));
    }

    #[test]
    fn join_keeps_shared_and_unseen_dots() {
        let mine = DotSet::from_sorted(vec![dot(1, 1), dot(2, 1)]).unwrap();
        let theirs = DotSet::from_sorted(vec![dot(2, 1), dot(3, 4)]).unwrap();
        // They saw 1:1 and dropped it; we never saw 3:4.
        let joined = DotSet::join(
            mine,
            &ctx(&[(1, 1), (2, 1)]),
            theirs,
            &ctx(&[(1, 1), (2, 1), (3, 4)]),
        );
        assert_eq!(joined.unwrap().as_slice(), &[dot(2, 1), dot(3, 4)]);
    }

    #[test]
    fn join_of_fully_observed_dots_is_empty() {
        let seen = ctx(&[(1, 2)]);
        let joined = DotSet::join(
            DotSet::single(dot(1, 1)),
            &seen,
            DotSet::single(dot(1, 2)),
            &seen,
        );
        assert!(joined.is_none());
    }
}
