//! One named test per line: `Pattern` against Redis `KEYS` semantics (and the naive reference).

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::reference;
use sweep_core::glob::Pattern;

/// Checks `Pattern` and the reference agree with `expected`, plus the API invariants.
fn check(pattern: &[u8], key: &[u8], expected: bool) {
    let compiled = Pattern::new(pattern);
    assert_eq!(
        compiled.matches(key),
        expected,
        "Pattern {:?} vs key {:?}",
        pattern.escape_ascii().to_string(),
        key.escape_ascii().to_string()
    );
    assert_eq!(
        reference(pattern, key),
        expected,
        "reference {:?} vs key {:?}",
        pattern.escape_ascii().to_string(),
        key.escape_ascii().to_string()
    );
    if expected {
        assert!(key.starts_with(compiled.literal_prefix()));
    }
    if let Some(exact) = compiled.exact() {
        assert_eq!(exact == key, expected);
    }
    assert_eq!(compiled.matches_all(), pattern == b"*");
}

macro_rules! matches {
    ($name:ident, $pattern:expr, $key:expr) => {
        #[test]
        fn $name() {
            check($pattern, $key, true);
        }
    };
}

macro_rules! nomatch {
    ($name:ident, $pattern:expr, $key:expr) => {
        #[test]
        fn $name() {
            check($pattern, $key, false);
        }
    };
}

// `*` and the empty key: KEYS treats exactly `*` as match-all; stringmatchlen never enters its
// loop for an empty key, so only an empty pattern is "consumed" by it.
matches!(star_any, b"*", b"anything");
matches!(star_empty_key, b"*", b"");
matches!(star_binary, b"*", b"\x00\xff");
matches!(double_star_nonempty, b"**", b"x");
nomatch!(double_star_empty_key, b"**", b"");
nomatch!(triple_star_empty_key, b"***", b"");
nomatch!(question_star_empty_key, b"?*", b"");
nomatch!(star_a_empty_key, b"*a", b"");
nomatch!(star_q_empty_key, b"*?", b"");
nomatch!(caret_set_empty_key, b"[^]", b"");
matches!(empty_pattern_empty_key, b"", b"");
nomatch!(empty_pattern_nonempty_key, b"", b"a");
nomatch!(literal_empty_key, b"a", b"");

// Stars.
matches!(star_prefix, b"foo*", b"foobar");
matches!(star_prefix_exact, b"foo*", b"foo");
nomatch!(star_prefix_short, b"foo*", b"fo");
nomatch!(star_prefix_other, b"foo*", b"xfoo");
matches!(star_suffix, b"*bar", b"foobar");
matches!(star_suffix_exact, b"*bar", b"bar");
nomatch!(star_suffix_other, b"*bar", b"barx");
matches!(star_middle, b"a*c", b"abbbc");
matches!(star_middle_empty, b"a*c", b"ac");
nomatch!(star_middle_tail, b"a*c", b"acb");
nomatch!(star_middle_overlap, b"ab*ba", b"aba");
matches!(star_middle_min, b"ab*ba", b"abba");
matches!(stars_collapse, b"a***c", b"abc");
matches!(star_backtrack, b"*ab*ab", b"abxabab");
matches!(star_backtrack_retry, b"*aab", b"aaaab");
nomatch!(star_missing_segment, b"*x*y*z", b"xzy");
matches!(star_segments, b"*x*y*z", b"axbyczd_z");
nomatch!(star_parts_do_not_overlap, b"*ab*bc*", b"abc");
matches!(star_parts_adjacent, b"*ab*bc*", b"abbc");
nomatch!(star_parts_do_not_overlap_tail, b"x*aa*aa*y", b"xaaay");
matches!(star_parts_leftmost_then_more, b"x*aa*aa*y", b"xaaaay");
matches!(star_parts_wildcards, b"*a?*?b*", b"zaxyb");
nomatch!(star_parts_wildcards_overlap, b"*a?*?b*", b"zaxb");
matches!(star_between_wildcards, b"?*?", b"ab");
nomatch!(star_between_wildcards_short, b"?*?", b"a");
matches!(trailing_stars_after_key, b"abc**", b"abc");
matches!(star_then_set, b"*[xy]", b"aaay");
nomatch!(star_then_set_other, b"*[xy]", b"aaaz");

// `?`.
matches!(question_one, b"?", b"a");
matches!(question_nul, b"?", b"\x00");
matches!(question_high, b"a?c", b"a\xffc");
nomatch!(question_two, b"?", b"ab");
nomatch!(question_short, b"a??", b"ab");
matches!(question_star, b"?*", b"x");

// Escapes outside sets.
matches!(escape_star, b"a\\*", b"a*");
nomatch!(escape_star_is_literal, b"a\\*", b"ab");
matches!(escape_question, b"\\?", b"?");
nomatch!(escape_question_is_literal, b"\\?", b"x");
matches!(escape_bracket, b"\\[a]", b"[a]");
nomatch!(escape_bracket_is_literal, b"\\[a]", b"a");
matches!(escape_plain_byte, b"\\a", b"a");
matches!(escape_backslash, b"\\\\", b"\\");
nomatch!(escape_backslash_single, b"\\\\", b"\\\\");
matches!(escape_nul, b"\\\x00", b"\x00");
matches!(trailing_backslash, b"a\\", b"a\\");
nomatch!(trailing_backslash_not_dropped, b"a\\", b"a");
matches!(lone_backslash, b"\\", b"\\");
matches!(star_trailing_backslash, b"*\\", b"x\\");

// Sets.
matches!(set_member, b"[abc]", b"b");
nomatch!(set_non_member, b"[abc]", b"d");
nomatch!(set_one_byte_only, b"[abc]", b"ab");
matches!(set_in_word, b"h[ae]llo", b"hallo");
nomatch!(set_in_word_other, b"h[ae]llo", b"hillo");
matches!(negated_set, b"[^abc]", b"d");
nomatch!(negated_set_member, b"[^abc]", b"a");
matches!(bang_is_literal, b"[!a]", b"!");
matches!(bang_set_member, b"[!a]", b"a");
nomatch!(bang_does_not_negate, b"[!a]", b"b");
matches!(caret_later_is_literal, b"[a^]", b"^");
matches!(caret_negated_caret, b"[^^]", b"a");
nomatch!(caret_negated_caret_member, b"[^^]", b"^");
matches!(set_star_is_literal, b"[*]", b"*");
nomatch!(set_star_not_wild, b"[*]", b"a");
matches!(set_question_is_literal, b"[?]", b"?");
nomatch!(set_question_not_wild, b"[?]", b"a");
matches!(set_open_bracket_member, b"[[]", b"[");

// Escapes inside sets.
matches!(set_escaped_close, b"[\\]]", b"]");
matches!(set_escaped_close_unclosed, b"[\\]", b"]");
nomatch!(set_escaped_close_not_backslash, b"[\\]", b"\\");
matches!(set_escaped_dash, b"[a\\-z]", b"-");
nomatch!(set_escaped_dash_no_range, b"[a\\-z]", b"m");
matches!(set_escape_before_dash, b"[\\a-c]", b"-");
matches!(set_escape_before_dash_end, b"[\\a-c]", b"c");
nomatch!(set_escape_cannot_start_range, b"[\\a-c]", b"b");
matches!(set_escaped_caret_literal, b"[\\^a]", b"^");
matches!(set_trailing_backslash, b"[\\", b"\\");
matches!(set_trailing_backslash_after, b"[ab\\", b"\\");
nomatch!(set_trailing_backslash_other, b"[ab\\", b"c");
matches!(set_escaped_backslash, b"[\\\\]", b"\\");

// Ranges.
matches!(range_low, b"[a-c]", b"a");
matches!(range_mid, b"[a-c]", b"b");
matches!(range_high, b"[a-c]", b"c");
nomatch!(range_outside, b"[a-c]", b"d");
matches!(range_digits, b"user:[0-9]*", b"user:7abc");
nomatch!(range_digits_other, b"user:[0-9]*", b"user:x7");
matches!(range_reversed, b"[z-a]", b"m");
matches!(range_reversed_end, b"[z-a]", b"z");
nomatch!(range_reversed_outside, b"[z-a]", b"{");
matches!(range_negated_outside, b"[^a-c]", b"d");
nomatch!(range_negated_inside, b"[^a-c]", b"b");
matches!(range_two, b"[a-cx-z]", b"y");
nomatch!(range_two_gap, b"[a-cx-z]", b"m");
matches!(range_dash_first, b"[-a]", b"-");
matches!(range_dash_first_other, b"[-a]", b"a");
nomatch!(range_dash_first_none, b"[-a]", b"0");
matches!(range_dash_to_bracket, b"[--/]", b".");
matches!(range_end_backslash, b"[Z-\\]", b"[");
nomatch!(range_cannot_start_with_close, b"[]-a]", b"]-a");

// Ranges compare signed `char`s (x86-64): bytes >= 0x80 are negative.
matches!(signed_full_range_nul, b"[\x00-\xff]", b"\x00");
matches!(signed_full_range_ff, b"[\x00-\xff]", b"\xff");
nomatch!(signed_full_range_one, b"[\x00-\xff]", b"\x01");
nomatch!(signed_full_range_80, b"[\x00-\xff]", b"\x80");
nomatch!(signed_full_range_a, b"[\x00-\xff]", b"a");
matches!(signed_a_ff_ff, b"[a-\xff]", b"\xff");
matches!(signed_a_ff_nul, b"[a-\xff]", b"\x00");
matches!(signed_a_ff_a, b"[a-\xff]", b"a");
nomatch!(signed_a_ff_b, b"[a-\xff]", b"b");
nomatch!(signed_a_ff_fe, b"[a-\xff]", b"\xfe");
nomatch!(signed_a_ff_80, b"[a-\xff]", b"\x80");
matches!(signed_high_range, b"[\x80-\xff]", b"\xc0");
matches!(signed_high_range_end, b"[\x80-\xff]", b"\x80");
nomatch!(signed_high_range_ascii, b"[\x80-\xff]", b"\x7f");
matches!(signed_wrapping_range_a, b"[\x7f-\x80]", b"a");
matches!(signed_wrapping_range_high, b"[\x7f-\x80]", b"\xaa");
matches!(signed_negated, b"[^\x00-\xff]", b"a");
nomatch!(signed_negated_ff, b"[^\x00-\xff]", b"\xff");

// `x-]` is a range ending in `]`, and the set goes on.
matches!(dash_close_range_bracket, b"[a-]", b"]");
matches!(dash_close_range_underscore, b"[a-]", b"_");
matches!(dash_close_range_a, b"[a-]", b"a");
nomatch!(dash_close_no_dash, b"[a-]", b"-");
nomatch!(dash_close_no_b, b"[a-]", b"b");
matches!(dash_close_set_continues, b"[a-]x", b"x");
nomatch!(dash_close_not_two_tokens, b"[a-]x", b"_x");
matches!(dash_close_then_closed, b"[a-]]", b"^");
matches!(dash_close_then_closed_more, b"[a-]]b", b"^b");
matches!(dash_close_two_items, b"[ab-]", b"^");

// `[]` is empty, `[^]` is any byte.
nomatch!(empty_set, b"[]", b"a");
nomatch!(empty_set_bracket, b"[]", b"]");
nomatch!(empty_set_then_literals, b"[]a]", b"a]");
nomatch!(empty_set_then_literals_short, b"[]a]", b"]");
nomatch!(empty_set_star, b"*[]*", b"abc");
matches!(caret_empty_set_any, b"[^]", b"x");
matches!(caret_empty_set_nul, b"[^]", b"\x00");
nomatch!(caret_empty_set_one_byte, b"[^]", b"xy");
matches!(caret_empty_set_then_literals, b"[^]a]", b"za]");

// Unclosed sets take the rest of the pattern.
matches!(unclosed_member, b"[abc", b"b");
nomatch!(unclosed_non_member, b"[abc", b"d");
nomatch!(unclosed_one_byte, b"[abc", b"bc");
matches!(unclosed_star_member, b"a[b*", b"a*");
nomatch!(unclosed_star_not_wild, b"a[b*", b"abx");
nomatch!(open_bracket_at_end, b"x[", b"x");
nomatch!(open_bracket_at_end_bracket, b"x[", b"x[");
nomatch!(open_bracket_alone, b"[", b"[");
matches!(open_caret_at_end, b"x[^", b"xq");
nomatch!(open_caret_at_end_needs_byte, b"x[^", b"x");
matches!(open_caret_alone, b"[^", b"]");
matches!(open_negated_range, b"[^a-", b"b");
nomatch!(open_negated_range_member, b"[^a-", b"-");

// Binary keys.
matches!(binary_exact, b"a\x00b", b"a\x00b");
nomatch!(binary_exact_other, b"a\x00b", b"a\x00c");
matches!(binary_prefix, b"a\x00*", b"a\x00zz");
matches!(binary_inner, b"*\x00*", b"x\x00y");
nomatch!(binary_inner_missing, b"*\x00*", b"xy");
matches!(binary_question, b"??", b"\x00\x00");
matches!(binary_set, b"[\x00\xff]", b"\xff");
matches!(binary_high_literal, b"\xe2\x82\xac*", b"\xe2\x82\xacs");

// Cluster hash tags are plain bytes to the matcher.
matches!(hash_tag_prefix, b"{user1000}.*", b"{user1000}.following");
nomatch!(
    hash_tag_missing_dot,
    b"{user1000}.*",
    b"{user1000}following"
);
nomatch!(
    hash_tag_other_user,
    b"{user1000}.*",
    b"{user1001}.following"
);
matches!(hash_tag_wild, b"{user*}.*", b"{user42}.x");
matches!(hash_tag_set, b"{user[0-9]}:*", b"{user7}:a");

// From Redis's keyspace tests.
matches!(redis_keys_foo, b"foo*", b"foo_a");
nomatch!(redis_keys_foo_key, b"foo*", b"key_x");
matches!(redis_keys_question, b"key_?", b"key_y");
matches!(redis_keys_set, b"key_[xz]", b"key_z");
nomatch!(redis_keys_set_y, b"key_[xz]", b"key_y");
matches!(redis_keys_all, b"*", b"key_x");
matches!(
    realistic_session,
    b"user:[0-9]*:session?",
    b"user:42:session7"
);
nomatch!(
    realistic_session_short,
    b"user:[0-9]*:session?",
    b"user:42:session"
);
matches!(image_proxy, b"image_proxy:*", b"image_proxy:abc");
nomatch!(image_proxy_other, b"image_proxy:*", b"image_proxz:abc");

/// Runs `f` and fails if it took longer than the generous bound used for the pathological cases.
fn within_bound<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    out
}

#[test]
fn redis_long_key_matched_twice() {
    let mut key = b"prefix:".to_vec();
    key.extend(std::iter::repeat_n(b'x', 100_000));
    key.extend_from_slice(b":suffix");
    let p = Pattern::new(b"prefix:*x*:suf?ix");
    within_bound("long key", || {
        assert!(p.matches(&key));
        assert!(p.matches(&key), "compiled pattern must be reusable");
        assert!(!p.matches(&key[..key.len() - 1]));
    });
}

#[test]
fn redis_nested_stars_no_b() {
    let key = vec![b'a'; 40];
    let p = Pattern::new(b"*a*a*a*a*a*a*a*a*a*a*b");
    within_bound("a*...*b", || assert!(!p.matches(&key)));
    let p = Pattern::new(b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
    let key = vec![b'a'; 66];
    within_bound("redis regression", || assert!(!p.matches(&key)));
}

#[test]
fn redis_nested_stars_slow_paths_still_bounded() {
    // No literal tail to reject on: the middle search has to do the work.
    let key = vec![b'a'; 5_000];
    let mut pattern = b"*".to_vec();
    for _ in 0..100 {
        pattern.extend_from_slice(b"a?b*");
    }
    let p = Pattern::new(&pattern);
    within_bound("middle search", || assert!(!p.matches(&key)));
}

#[test]
fn redis_star_question_50000() {
    let key = vec![b'a'; 50_000];
    let pattern = b"*?".repeat(50_000);
    let p = within_bound("compile", || Pattern::new(&pattern));
    within_bound("*? x 50000", || assert!(!p.matches(&key)));
}

#[test]
fn star_question_under_guard_matches_fast() {
    // 1000 nested groups is allowed, and still linear.
    let key = vec![b'a'; 50_000];
    let pattern = b"*?".repeat(1000);
    let p = Pattern::new(&pattern);
    within_bound("*? x 1000", || assert!(p.matches(&key)));
    assert!(!p.matches(&key[..999]));
}

fn star_groups(n: usize, trailing: bool) -> Vec<u8> {
    let mut pattern = b"*a".repeat(n);
    if trailing {
        pattern.push(b'*');
    }
    pattern
}

#[test]
fn nesting_guard_1000_groups_match() {
    let key = vec![b'a'; 1000];
    let pattern = star_groups(1000, false);
    assert!(Pattern::new(&pattern).matches(&key));
    assert!(reference(&pattern, &key));
}

#[test]
fn nesting_guard_1000_groups_plus_trailing_star_match() {
    let mut key = vec![b'a'; 1000];
    key.extend_from_slice(b"tail");
    let pattern = star_groups(1000, true);
    assert!(Pattern::new(&pattern).matches(&key));
    assert!(reference(&pattern, &key));
    // `**a**a...**` collapses to the same 1000 groups.
    let mut doubled = b"**a".repeat(1000);
    doubled.extend_from_slice(b"**");
    assert!(Pattern::new(&doubled).matches(&key));
}

#[test]
fn nesting_guard_1001_groups_never_match() {
    for trailing in [false, true] {
        let pattern = star_groups(1001, trailing);
        let p = Pattern::new(&pattern);
        for key in [vec![b'a'; 1001], vec![b'a'; 3000], b"x".to_vec()] {
            assert!(!p.matches(&key));
        }
        assert!(p.exact().is_none());
        assert_eq!(common::nested_star_groups(&pattern), 1001);
    }
    // A literal prefix does not count as a star group.
    let mut pattern = b"x".to_vec();
    pattern.extend(star_groups(1000, true));
    let mut key = b"x".to_vec();
    key.extend(vec![b'a'; 1000]);
    assert!(Pattern::new(&pattern).matches(&key));
}

#[test]
fn huge_set_is_constant_per_byte() {
    let mut pattern = b"*[".to_vec();
    pattern.extend((0..40_000u32).map(|i| b'a' + (i % 20) as u8));
    pattern.push(b']');
    let p = within_bound("compile 40k set", || Pattern::new(&pattern));
    let mut key = vec![b'z'; 100_000];
    within_bound("40k set", || {
        assert!(!p.matches(&key));
        *key.last_mut().unwrap() = b'c';
        assert!(p.matches(&key));
    });
    // The same set in the middle of a pattern, searched across the whole key.
    let mut pattern = pattern.clone();
    pattern.extend_from_slice(b"*!");
    let p = Pattern::new(&pattern);
    let mut key = vec![b'z'; 100_000];
    key.push(b'!');
    within_bound("40k set in the middle", || {
        assert!(!p.matches(&key));
        key[50_000] = b't';
        assert!(p.matches(&key));
    });
}
