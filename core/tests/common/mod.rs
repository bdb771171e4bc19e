//! A deliberately naive reference for Redis glob matching, used to check `Pattern`.
//!
//! It interprets the raw pattern bytes directly, recursing on every star split, exactly as the
//! rules read (Redis 7.0.15 `stringmatchlen` with nocase = 0, plus the `KEYS *` special case and
//! the 1000-level nesting guard). It is exponential on purpose-built patterns: keep inputs small.

#![allow(dead_code, clippy::indexing_slicing, clippy::unwrap_used)]

/// Redis's nesting guard: a call nested deeper than this returns "no match".
pub const MAX_NESTING: usize = 1000;

/// Whether `KEYS pattern` returns `key`.
pub fn reference(pattern: &[u8], key: &[u8]) -> bool {
    // KEYS and SCAN treat the one-byte pattern `*` as "everything" without matching.
    if pattern == b"*" {
        return true;
    }
    // stringmatchlen's loop needs a non-empty key; otherwise only an empty pattern is left over.
    if key.is_empty() {
        return pattern.is_empty();
    }
    rec(pattern, key, 0)
}

fn rec(p: &[u8], k: &[u8], nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    if p.is_empty() {
        return k.is_empty();
    }
    if p[0] == b'*' {
        let mut rest = p;
        while !rest.is_empty() && rest[0] == b'*' {
            rest = &rest[1..];
        }
        if rest.is_empty() {
            return true;
        }
        // Try every split that leaves a non-empty key for the rest; an empty key can't match a
        // rest that starts with a one-byte token anyway.
        return (0..k.len()).any(|i| rec(rest, &k[i..], nesting + 1));
    }
    if k.is_empty() {
        return false;
    }
    let (ok, rest) = one_token(p, k[0]);
    ok && rec(rest, &k[1..], nesting)
}

/// Reads the one-byte token at the start of `p` (not a star): whether it accepts `c`, and the
/// pattern after it.
pub fn one_token(p: &[u8], c: u8) -> (bool, &[u8]) {
    match p[0] {
        b'?' => (true, &p[1..]),
        b'\\' if p.len() >= 2 => (p[1] == c, &p[2..]),
        b'\\' => (c == b'\\', &p[1..]),
        b'[' => {
            let mut i = 1;
            let negated = p.len() > 1 && p[1] == b'^';
            if negated {
                i = 2;
            }
            let mut hit = false;
            loop {
                if i >= p.len() {
                    break; // unclosed set: it took the rest of the pattern
                }
                if p[i] == b'\\' && i + 1 < p.len() {
                    hit |= p[i + 1] == c;
                    i += 2;
                } else if p[i] == b']' {
                    i += 1;
                    break;
                } else if i + 2 < p.len() && p[i + 1] == b'-' {
                    // C `char` is signed on x86-64.
                    let mut lo = p[i] as i8;
                    let mut hi = p[i + 2] as i8;
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let v = c as i8;
                    hit |= lo <= v && v <= hi;
                    i += 3;
                } else {
                    hit |= p[i] == c;
                    i += 1;
                }
            }
            (hit != negated, &p[i..])
        }
        other => (other == c, &p[1..]),
    }
}

/// Builds a key the pattern should match (ignoring the nesting guard), using `seed` to pick
/// star fillers and set members; `None` when some token accepts no byte.
pub fn instantiate(pattern: &[u8], seed: &[u8]) -> Option<Vec<u8>> {
    let mut seed = seed.iter().copied().cycle();
    let mut key = Vec::new();
    let mut p = pattern;
    while !p.is_empty() {
        if p[0] == b'*' {
            let n = seed.next().unwrap_or(0) % 3;
            for _ in 0..n {
                key.push(seed.next().unwrap_or(b'a'));
            }
            p = &p[1..];
            continue;
        }
        let start = seed.next().unwrap_or(0);
        let c = (0..=255u8)
            .map(|d| start.wrapping_add(d))
            .find(|&c| one_token(p, c).0)?;
        key.push(c);
        p = one_token(p, c).1;
    }
    Some(key)
}

/// Number of star groups that are followed by a one-byte token.
pub fn nested_star_groups(pattern: &[u8]) -> usize {
    let mut groups = 0;
    let mut p = pattern;
    let mut pending_star = false;
    while !p.is_empty() {
        if p[0] == b'*' {
            pending_star = true;
            p = &p[1..];
        } else {
            groups += usize::from(pending_star);
            pending_star = false;
            p = one_token(p, 0).1;
        }
    }
    groups
}
