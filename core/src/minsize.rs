//! `MINSIZE bytes`: what can be decided about a key's `MEMORY USAGE` without asking the server.
//!
//! The number `MINSIZE` compares with is the one `MEMORY USAGE key` replies (default sampling),
//! and no module API computes it for the server's own types (`RedisModule_MallocSize*` measure
//! a module's own allocations, not a core value; `RedisModule_StringDMA` would re-encode the
//! value). So the module asks the server, `MEMORY USAGE` through `RedisModule_Call`, for the
//! keys that passed every other filter, except where a string's length settles the answer:
//!
//! - at least: a string value of more than 20 bytes cannot be stored as an integer, so its
//!   bytes are all in memory and counted: usage ≥ length;
//! - at most: whatever the server and allocator (jemalloc or libc), usage is the value's
//!   allocation (at most about 2.5 × its length once `APPEND` has grown it greedily, rounded
//!   to a size class), the key name's, and fixed headers (object, dict entry, sds headers:
//!   well under a kilobyte). `4 × (value + name) + 4096` bounds that with room to spare.
//!
//! Between those bounds (or for any other type) the server is asked.

/// Strings up to this length may be stored as integers (Redis's `LONG_STR_SIZE` is 21).
const MAY_BE_INTEGER: u64 = 32;

/// The verdict on `usage ≥ min` for a string key with a value of `value_len` bytes and a name
/// of `key_len` bytes, when the lengths settle it; `None` when only the server can tell.
pub fn string_verdict(value_len: u64, key_len: u64, min: u64) -> Option<bool> {
    if value_len > MAY_BE_INTEGER && value_len >= min {
        return Some(true);
    }
    let most = value_len
        .saturating_add(key_len)
        .saturating_mul(4)
        .saturating_add(4096);
    if most < min {
        return Some(false);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_pass_on_their_length() {
        assert_eq!(string_verdict(2_000_000, 10, 1 << 20), Some(true));
        assert_eq!(string_verdict(33, 1, 33), Some(true));
    }

    #[test]
    fn short_strings_may_be_integers_so_the_server_is_asked() {
        assert_eq!(string_verdict(20, 1, 20), None);
        assert_eq!(string_verdict(32, 1, 1), None);
    }

    #[test]
    fn small_strings_fail_a_large_minimum() {
        assert_eq!(string_verdict(100, 20, 1 << 20), Some(false));
        assert_eq!(string_verdict(100, 20, 4576), None);
        assert_eq!(string_verdict(100, 20, 4577), Some(false));
    }

    #[test]
    fn no_overflow() {
        assert_eq!(string_verdict(u64::MAX, u64::MAX, u64::MAX), Some(true));
        assert_eq!(string_verdict(0, u64::MAX, u64::MAX), None);
    }
}
