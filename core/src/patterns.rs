//! Several patterns in one pass: `pattern [OR pattern …] [EXCEPT pattern …]` (SPEC §9).
//!
//! A key is a candidate when its name matches the first pattern or any `OR` pattern, and no
//! `EXCEPT` pattern. Each side is a [`Group`]: the literal prefixes of its patterns (the bytes
//! before the first wildcard) are laid out in a radix tree, so one walk down the key's first
//! bytes finds exactly the patterns whose prefix the key starts with; only those run their full
//! glob. With prefixes such as `image:*`, `thumb:*`, `avatar:*`, a key costs one child lookup
//! and one slice compare whatever the number of patterns, and a key under none of them is
//! rejected at the first byte that leaves the tree.
//!
//! Bounded cost (SPEC §2 guarantee 7): the walk compares each key byte at most once, and each
//! pattern it reaches costs at most `len(pattern) × len(key)` (glob.rs), so a key costs at most
//! `len(key) + Σ len(pattern) × len(key)` over the patterns, never more than the patterns one
//! by one.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::glob::Pattern;

/// The patterns of one sweep: what it takes (the first and `OR` patterns) minus what it leaves
/// (the `EXCEPT` patterns).
#[derive(Debug, Clone)]
pub struct PatternSet {
    take: Group,
    leave: Option<Group>,
}

impl PatternSet {
    /// The first pattern, the `OR` patterns and the `EXCEPT` patterns, as given.
    pub fn new<A: AsRef<[u8]>, B: AsRef<[u8]>>(first: &[u8], or: &[A], except: &[B]) -> PatternSet {
        let take: Vec<Pattern> = std::iter::once(first)
            .chain(or.iter().map(AsRef::as_ref))
            .map(Pattern::new)
            .collect();
        let leave: Vec<Pattern> = except.iter().map(|p| Pattern::new(p.as_ref())).collect();
        PatternSet {
            take: Group::new(take),
            leave: if leave.is_empty() {
                None
            } else {
                Some(Group::new(leave))
            },
        }
    }

    /// True when `KEYS` returns `key` for the first or an `OR` pattern and for no `EXCEPT` one.
    #[inline]
    pub fn matches(&self, key: &[u8]) -> bool {
        self.take.matches(key) && !self.leave.as_ref().is_some_and(|g| g.matches(key))
    }
}

impl From<Pattern> for PatternSet {
    fn from(pattern: Pattern) -> PatternSet {
        PatternSet {
            take: Group::new(vec![pattern]),
            leave: None,
        }
    }
}

/// Patterns of which a key must match one.
#[derive(Debug, Clone)]
enum Group {
    /// No pattern can match anything (`[]`, too many nested stars…).
    Nothing,
    /// One pattern (or one that matches every key): no tree to walk.
    One(Pattern),
    Tree(Tree),
}

impl Group {
    fn new(patterns: Vec<Pattern>) -> Group {
        // A pattern that never matches adds nothing; `*` makes the others irrelevant.
        let mut patterns: Vec<Pattern> = patterns.into_iter().filter(|p| !p.never()).collect();
        if let Some(all) = patterns.iter().position(Pattern::matches_all) {
            return Group::One(patterns.swap_remove(all));
        }
        match patterns.len() {
            0 => Group::Nothing,
            1 => match patterns.pop() {
                Some(p) => Group::One(p),
                None => Group::Nothing,
            },
            _ => Group::Tree(Tree::new(patterns)),
        }
    }

    #[inline]
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Group::Nothing => false,
            Group::One(p) => p.matches(key),
            Group::Tree(t) => t.matches(key),
        }
    }
}

/// A radix tree over the patterns' literal prefixes.
#[derive(Debug, Clone)]
struct Tree {
    patterns: Box<[Pattern]>,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The bytes from the parent to this node (empty only for the root).
    label: Box<[u8]>,
    /// First byte of each child's label, in the order of `children`: scanned as one slice.
    firsts: Vec<u8>,
    children: Vec<usize>,
    /// Patterns whose literal prefix ends exactly here.
    ends: Vec<End>,
}

/// A pattern whose literal prefix ends at a node, and what reaching that node means for it.
#[derive(Debug, Clone, Copy)]
struct End {
    index: usize,
    kind: EndKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndKind {
    /// `prefix*`: a (non-empty) key that reaches the node matches.
    PrefixStar,
    /// No wildcard: the key matches when nothing is left of it.
    Exact,
    /// Anything else: run the glob.
    Glob,
}

impl Tree {
    fn new(patterns: Vec<Pattern>) -> Tree {
        let mut tree = Tree {
            patterns: Box::new([]),
            nodes: vec![Node::default()],
        };
        for (index, p) in patterns.iter().enumerate() {
            let kind = if p.is_prefix_star() {
                EndKind::PrefixStar
            } else if p.exact().is_some() {
                EndKind::Exact
            } else {
                EndKind::Glob
            };
            tree.insert(p.literal_prefix(), End { index, kind });
        }
        tree.patterns = patterns.into_boxed_slice();
        tree
    }

    /// Adds `prefix` (splitting a node's label where it diverges) and records `end` at its
    /// end.
    fn insert(&mut self, prefix: &[u8], end: End) {
        let mut at = 0usize;
        let mut rest = prefix;
        loop {
            let Some((&first, _)) = rest.split_first() else {
                if let Some(node) = self.nodes.get_mut(at) {
                    node.ends.push(end);
                }
                return;
            };
            let Some(node) = self.nodes.get(at) else {
                return;
            };
            let found = node
                .firsts
                .iter()
                .position(|&b| b == first)
                .and_then(|i| node.children.get(i).copied());
            let Some(child) = found else {
                let leaf = self.nodes.len();
                self.nodes.push(Node {
                    label: rest.into(),
                    ends: vec![end],
                    ..Node::default()
                });
                if let Some(node) = self.nodes.get_mut(at) {
                    node.firsts.push(first);
                    node.children.push(leaf);
                }
                return;
            };
            let label = self
                .nodes
                .get(child)
                .map(|n| n.label.clone())
                .unwrap_or_default();
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split `child` into `label[..common]` → `label[common..]`.
                let (head, tail) = label.split_at(common);
                let moved = self.nodes.len();
                let Some(old) = self.nodes.get_mut(child) else {
                    return;
                };
                let lower = Node {
                    label: tail.into(),
                    firsts: std::mem::take(&mut old.firsts),
                    children: std::mem::take(&mut old.children),
                    ends: std::mem::take(&mut old.ends),
                };
                old.label = head.into();
                old.firsts = tail.first().copied().into_iter().collect();
                old.children = vec![moved];
                self.nodes.push(lower);
            }
            at = child;
            rest = rest.get(common..).unwrap_or_default();
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        if key.is_empty() {
            // Only `` and `*` match the empty name (KEYS's special case): ask each pattern.
            return self.patterns.iter().any(|p| p.matches(key));
        }
        let mut at = 0usize;
        let mut rest = key;
        while let Some(node) = self.nodes.get(at) {
            if node.ends.iter().any(|end| match end.kind {
                EndKind::PrefixStar => true,
                EndKind::Exact => rest.is_empty(),
                EndKind::Glob => self.patterns.get(end.index).is_some_and(|p| p.matches(key)),
            }) {
                return true;
            }
            let Some((&first, _)) = rest.split_first() else {
                return false;
            };
            let Some(child) = node
                .firsts
                .iter()
                .position(|&b| b == first)
                .and_then(|i| node.children.get(i).copied())
            else {
                return false;
            };
            let label = self.nodes.get(child).map_or(&[][..], |n| &n.label[..]);
            match rest.split_at_checked(label.len()) {
                Some((start, after)) if start == label => rest = after,
                _ => return false,
            }
            at = child;
        }
        false
    }
}

/// The longest pattern [`scan_match`] hands to the server whole.
pub const MATCH_MAX_LEN: usize = 128;
/// The most stars of a pattern [`scan_match`] hands to the server whole.
pub const MATCH_MAX_STARS: usize = 4;

/// The `MATCH` argument for the server's own `SCAN`, so that the server skips most names that
/// cannot match without handing them over: a single short pattern itself (the server's matcher
/// is the one [`Pattern`] reproduces), else the literal prefix the first and `OR` patterns share,
/// escaped, then `*` (which alone tells the server not to match at all). The sweep's own matcher
/// still decides on every name the server returns. A long pattern, or one of many stars, is not
/// handed over whole: the server's matcher reads it afresh for every name (a long class, nested
/// stars), where the sweep's compiled one does not.
pub fn scan_match<A: AsRef<[u8]>>(first: &[u8], or: &[A]) -> Vec<u8> {
    let cheap = first.len() <= MATCH_MAX_LEN
        && first.iter().filter(|&&b| b == b'*').count() <= MATCH_MAX_STARS;
    if or.is_empty() && cheap {
        return first.to_vec();
    }
    let first_pattern = Pattern::new(first);
    let mut common: &[u8] = first_pattern.literal_prefix();
    let others: Vec<Pattern> = or.iter().map(|p| Pattern::new(p.as_ref())).collect();
    for p in &others {
        let shared = common
            .iter()
            .zip(p.literal_prefix())
            .take_while(|(a, b)| a == b)
            .count();
        common = common.get(..shared).unwrap_or_default();
    }
    let mut arg = Vec::with_capacity(common.len() * 2 + 1);
    for &b in common {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            arg.push(b'\\');
        }
        arg.push(b);
    }
    arg.push(b'*');
    arg
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn set(first: &str, or: &[&str], except: &[&str]) -> PatternSet {
        PatternSet::new(first.as_bytes(), or, except)
    }

    macro_rules! yes {
        ($name:ident, $set:expr, $key:expr) => {
            #[test]
            fn $name() {
                assert!($set.matches($key));
            }
        };
    }
    macro_rules! no {
        ($name:ident, $set:expr, $key:expr) => {
            #[test]
            fn $name() {
                assert!(!$set.matches($key));
            }
        };
    }

    yes!(first_pattern, set("image:*", &["thumb:*"], &[]), b"image:1");
    yes!(or_pattern, set("image:*", &["thumb:*"], &[]), b"thumb:1");
    no!(neither, set("image:*", &["thumb:*"], &[]), b"avatar:1");
    no!(
        except_wins,
        set("image:*", &["thumb:*"], &["*:pinned"]),
        b"thumb:1:pinned"
    );
    yes!(
        except_elsewhere,
        set("image:*", &["thumb:*"], &["*:pinned"]),
        b"thumb:1:pinned2"
    );
    yes!(nested_prefixes, set("a*", &["ab*", "abc*"], &[]), b"a");
    yes!(
        shorter_prefix_after_a_longer_one_fails,
        set("abc?", &["ab*"], &[]),
        b"abd"
    );
    yes!(
        split_label,
        set("tmp:alpha:*", &["tmp:beta:*", "tmp:al*x"], &[]),
        b"tmp:also-x"
    );
    no!(
        split_label_miss,
        set("tmp:alpha:*", &["tmp:beta:*", "tmp:al*x"], &[]),
        b"tmp:also-y"
    );
    yes!(star_takes_all, set("a*", &["*", "b*"], &[]), b"");
    yes!(empty_pattern_matches_empty_key, set("x*", &[""], &[]), b"");
    no!(never_patterns_are_dropped, set("[]", &["a[]*"], &[]), b"a");
    no!(except_everything, set("*", &[], &["*"]), b"k");
    yes!(wildcard_first, set("?x", &["[ab]y", "cz"], &[]), b"by");
    yes!(
        binary_prefixes,
        set("\u{0}a*", &["\u{0}b*"], &[]),
        b"\x00bz"
    );

    #[test]
    fn a_single_pattern_is_kept_as_it_is() {
        assert!(matches!(set("a*", &[], &[]).take, Group::One(_)));
        assert!(matches!(set("a*", &["*"], &[]).take, Group::One(_)));
        assert!(matches!(set("[]", &[], &[]).take, Group::Nothing));
        assert!(matches!(set("a*", &["b*"], &[]).take, Group::Tree(_)));
        assert!(set("a*", &[], &[]).leave.is_none());
    }

    #[test]
    fn the_tree_shares_prefixes() {
        let Group::Tree(t) = set("tmp:a:*", &["tmp:b:*", "tmp:c:*", "tmp:d:*"], &[]).take else {
            panic!()
        };
        // root → "tmp:" → a:, b:, c:, d:
        assert_eq!(t.nodes.len(), 6);
        assert_eq!(t.nodes[0].children.len(), 1);
        let shared = &t.nodes[t.nodes[0].children[0]];
        assert_eq!(&*shared.label, b"tmp:");
        assert_eq!(shared.firsts, b"abcd");
    }

    fn bytes(max: usize) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        // A small alphabet so prefixes overlap and patterns match often.
        proptest::collection::vec(
            proptest::sample::select(b"ab:*?[]^-\\\x00\xff".to_vec()),
            0..max,
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The set is exactly "some take pattern matches and no leave pattern does", pattern
        /// by pattern.
        #[test]
        fn agrees_with_the_patterns_one_by_one(
            first in bytes(6),
            or in proptest::collection::vec(bytes(6), 0..5),
            except in proptest::collection::vec(bytes(6), 0..3),
            keys in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(b"ab:\x00\xff".to_vec()), 0..7),
                1..20,
            ),
        ) {
            let s = PatternSet::new(&first, &or, &except);
            let take: Vec<Pattern> = std::iter::once(&first).chain(&or).map(|p| Pattern::new(p)).collect();
            let leave: Vec<Pattern> = except.iter().map(|p| Pattern::new(p)).collect();
            for k in &keys {
                let expected = take.iter().any(|p| p.matches(k)) && !leave.iter().any(|p| p.matches(k));
                proptest::prop_assert_eq!(s.matches(k), expected, "key {:?}", k);
            }
        }
    }
}

#[cfg(test)]
mod scan_match_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_pattern_is_passed_as_is() {
        assert_eq!(scan_match::<&[u8]>(b"a[bc]*", &[]), b"a[bc]*");
    }

    #[test]
    fn a_costly_pattern_is_not() {
        let stars = "a*".repeat(20);
        assert_eq!(scan_match::<&[u8]>(stars.as_bytes(), &[]), b"a*");
        let class = format!("k{}[{}]", "x".repeat(10), "cd".repeat(100));
        assert_eq!(scan_match::<&[u8]>(class.as_bytes(), &[]), b"kxxxxxxxxxx*");
    }

    #[test]
    fn several_share_their_literal_prefix() {
        assert_eq!(scan_match(b"img:a*", &[b"img:b*"]), b"img:*");
        assert_eq!(scan_match(b"a*", &[b"b*"]), b"*");
        assert_eq!(scan_match(b"a\\*x*", &[b"a\\*y"]), b"a\\**");
        assert_eq!(scan_match(b"k[1]", &[b"k[2]"]), b"k*");
    }

    proptest! {
        /// Whatever the patterns, a key any of them matches also matches the MATCH argument.
        #[test]
        fn never_hides_a_match(
            pats in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab*?[]\\^-".to_vec()), 0..6), 1..4),
            key in prop::collection::vec(prop::sample::select(b"ab*?[]\\^-".to_vec()), 0..8),
        ) {
            let Some((first, or)) = pats.split_first() else { return Ok(()) };
            let arg = Pattern::new(&scan_match(first, or));
            let any = std::iter::once(first).chain(or).any(|p| Pattern::new(p).matches(&key));
            prop_assert!(!any || arg.matches(&key));
        }
    }
}
