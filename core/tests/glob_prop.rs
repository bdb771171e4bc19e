//! `Pattern` against the naive reference matcher, on random and exhaustive small inputs.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

mod common;

use common::{instantiate, reference};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use sweep_core::glob::Pattern;

const PATTERN_BYTES: &[u8] = b"*?[]^-\\abc!\x00\xff\x80";
const KEY_BYTES: &[u8] = b"abc-][\\\x00\xff\x80*";

fn pattern_strategy() -> impl Strategy<Value = Vec<u8>> {
    vec(select(PATTERN_BYTES), 0..12)
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    vec(select(KEY_BYTES), 0..12)
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Every claim `Pattern` makes about `key`, checked against the reference.
fn check(compiled: &Pattern, pattern: &[u8], key: &[u8]) -> Result<(), TestCaseError> {
    let got = compiled.matches(key);
    prop_assert_eq!(
        got,
        reference(pattern, key),
        "pattern {} key {}",
        show(pattern),
        show(key)
    );
    if got {
        prop_assert!(key.starts_with(compiled.literal_prefix()));
    }
    if let Some(exact) = compiled.exact() {
        prop_assert_eq!(got, key == exact);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn agrees_with_reference(
        pattern in pattern_strategy(),
        keys in vec(key_strategy(), 1..16),
        seeds in vec(vec(any::<u8>(), 1..8), 1..8),
    ) {
        let compiled = Pattern::new(&pattern);
        for key in &keys {
            check(&compiled, &pattern, key)?;
        }
        // Keys built to match, so both outcomes are well covered.
        for seed in &seeds {
            if let Some(key) = instantiate(&pattern, seed) {
                check(&compiled, &pattern, &key)?;
                prop_assert!(key.is_empty() || compiled.matches(&key), "{} {}", show(&pattern), show(&key));
            }
        }
        prop_assert_eq!(compiled.matches_all(), pattern == b"*");
        if let Some(exact) = compiled.exact() {
            prop_assert!(compiled.matches(exact));
        }
    }

    /// Many star groups over a tiny alphabet, so the parts between stars overlap and repeat.
    #[test]
    fn star_heavy_agrees_with_reference(
        pattern in vec(select(&b"***?ab[]"[..]), 0..14),
        keys in vec(vec(select(&b"ab"[..]), 0..14), 1..16),
        seeds in vec(vec(any::<u8>(), 1..8), 1..4),
    ) {
        let compiled = Pattern::new(&pattern);
        for key in &keys {
            check(&compiled, &pattern, key)?;
        }
        for seed in &seeds {
            if let Some(key) = instantiate(&pattern, seed) {
                check(&compiled, &pattern, &key)?;
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        pattern in vec(any::<u8>(), 0..64),
        keys in vec(vec(any::<u8>(), 0..64), 1..8),
        seed in vec(any::<u8>(), 1..8),
    ) {
        let compiled = Pattern::new(&pattern);
        let _ = format!("{:?}", compiled.clone());
        for key in &keys {
            let got = compiled.matches(key);
            if got {
                prop_assert!(key.starts_with(compiled.literal_prefix()));
            }
            if let Some(exact) = compiled.exact() {
                prop_assert_eq!(got, key == exact);
            }
        }
        if let Some(key) = instantiate(&pattern, &seed) {
            // At most 32 star groups here, far under the nesting guard.
            prop_assert_eq!(compiled.matches(&key), !key.is_empty() || pattern.is_empty() || pattern == b"*");
            check(&compiled, &pattern, &key)?;
        }
    }
}

/// Calls `f` with every string of length `0..=max_len` over `alphabet`.
fn for_all_strings(alphabet: &[u8], max_len: usize, mut f: impl FnMut(&[u8])) {
    let mut current = Vec::new();
    fn go(alphabet: &[u8], left: usize, current: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) {
        f(current);
        if left == 0 {
            return;
        }
        for &b in alphabet {
            current.push(b);
            go(alphabet, left - 1, current, f);
            current.pop();
        }
    }
    go(alphabet, max_len, &mut current, &mut f);
}

#[test]
fn exhaustive_small_patterns_and_keys() {
    let mut keys = Vec::new();
    for_all_strings(KEY_BYTES, 3, |k| keys.push(k.to_vec()));
    let (mut checked, mut matched) = (0usize, 0usize);
    for_all_strings(PATTERN_BYTES, 3, |pattern| {
        let compiled = Pattern::new(pattern);
        for key in &keys {
            let got = compiled.matches(key);
            assert_eq!(
                got,
                reference(pattern, key),
                "pattern {} key {}",
                show(pattern),
                show(key)
            );
            checked += 1;
            matched += usize::from(got);
        }
    });
    assert!(checked > 4_000_000, "{checked}");
    assert!(matched > checked / 100, "{matched} of {checked}");
}
