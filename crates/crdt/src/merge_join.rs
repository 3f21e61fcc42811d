//! Walking two sorted sequences side by side: the core of every linear-time merge here.

use std::cmp::Ordering;
use std::iter::Peekable;

/// Where a key of a merge-join was found.
#[derive(Debug)]
pub(crate) enum Side<A, B> {
    /// Only in the first sequence.
    Mine(A),
    /// Only in the second sequence.
    Theirs(B),
    /// In both.
    Both(A, B),
}

/// Joins two sequences of `(key, value)` pairs, each sorted by key with no duplicates, into one
/// sorted sequence that says where each key was found.
#[derive(Debug)]
pub(crate) struct MergeJoin<K, A, B, I: Iterator<Item = (K, A)>, J: Iterator<Item = (K, B)>> {
    mine: Peekable<I>,
    theirs: Peekable<J>,
}

impl<K: Ord, A, B, I: Iterator<Item = (K, A)>, J: Iterator<Item = (K, B)>>
    MergeJoin<K, A, B, I, J>
{
    pub(crate) fn new(mine: I, theirs: J) -> Self {
        MergeJoin {
            mine: mine.peekable(),
            theirs: theirs.peekable(),
        }
    }
}

impl<K: Ord, A, B, I: Iterator<Item = (K, A)>, J: Iterator<Item = (K, B)>> Iterator
    for MergeJoin<K, A, B, I, J>
{
    type Item = (K, Side<A, B>);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.mine.peek(), self.theirs.peek()) {
            (Some((a, _)), Some((b, _))) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return None,
        };
        Some(match order {
            Ordering::Less => {
                let (k, a) = self.mine.next()?;
                (k, Side::Mine(a))
            }
            Ordering::Greater => {
                let (k, b) = self.theirs.next()?;
                (k, Side::Theirs(b))
            }
            Ordering::Equal => {
                let (k, a) = self.mine.next()?;
                let (_, b) = self.theirs.next()?;
                (k, Side::Both(a, b))
            }
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (a, a_max) = self.mine.size_hint();
        let (b, b_max) = self.theirs.size_hint();
        (a.max(b), a_max.zip(b_max).map(|(x, y)| x + y))
    }
}
