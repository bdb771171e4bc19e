//! Parsing of the commands' arguments into typed structs, before anything runs.
//!
//! `SWEEP.CLEAR pattern [OR pattern …] [EXCEPT pattern …] [COUNT n] [BATCH m] [TYPE type]
//! [IDLE seconds] [MINSIZE bytes] [PERSISTENT | VOLATILE] [LIMIT max] [DRYRUN] [ASYNC]`:
//! keywords are case-insensitive and may come in any order; each may appear once, as in the
//! server's own commands, except `OR` and `EXCEPT`, which repeat. Integers follow the server's strict rules (`string2ll`): no
//! `+`, no spaces, no leading zeros.

use crate::error::SweepError;

const COUNT: &str = "COUNT";
const BATCH: &str = "BATCH";
const TYPE: &str = "TYPE";
const IDLE: &str = "IDLE";
const LIMIT: &str = "LIMIT";
const DRYRUN: &str = "DRYRUN";
const ASYNC: &str = "ASYNC";
const OR: &str = "OR";
const EXCEPT: &str = "EXCEPT";
const MINSIZE: &str = "MINSIZE";
const PERSISTENT: &str = "PERSISTENT";
const VOLATILE: &str = "VOLATILE";

/// `PERSISTENT` / `VOLATILE`: only keys without / with a time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// `TTL` answers -1.
    Persistent,
    /// The key has a time to live.
    Volatile,
}

/// What `SWEEP.CLEAR` was asked to do. `count` and `batch` left out are `None`: their defaults
/// come from the module's configuration at the time the command runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearArgs {
    pub pattern: Vec<u8>,
    pub count: Option<u64>,
    pub batch: Option<u64>,
    /// Only keys of this type (as `SCAN … TYPE` names it), compared case-insensitively.
    pub key_type: Option<Vec<u8>>,
    /// Only keys idle for at least this many seconds (as `OBJECT IDLETIME`).
    pub idle: Option<u64>,
    /// Stop after this many deletions.
    pub limit: Option<u64>,
    pub dryrun: bool,
    pub run_async: bool,
    /// More patterns (`OR`, repeatable), in the order given.
    pub or: Vec<Vec<u8>>,
    /// Patterns of keys to leave alone (`EXCEPT`, repeatable), in the order given.
    pub except: Vec<Vec<u8>>,
    /// Only keys whose `MEMORY USAGE` is at least this many bytes.
    pub minsize: Option<u64>,
    /// Only keys without (`PERSISTENT`) or with (`VOLATILE`) a time to live.
    pub ttl: Option<Ttl>,
}

impl ClearArgs {
    /// Parses the arguments after the command name.
    pub fn parse<A: AsRef<[u8]>>(args: &[A]) -> Result<ClearArgs, SweepError> {
        let mut rest = args.iter().map(AsRef::as_ref);
        let pattern = rest.next().ok_or(SweepError::WrongArity)?.to_vec();
        let mut parsed = ClearArgs {
            pattern,
            ..ClearArgs::default()
        };
        while let Some(word) = rest.next() {
            let is = |keyword: &str| word.eq_ignore_ascii_case(keyword.as_bytes());
            if is(COUNT) {
                parsed.count = Some(integer(&parsed.count, COUNT, 1, rest.next())?);
            } else if is(BATCH) {
                parsed.batch = Some(integer(&parsed.batch, BATCH, 1, rest.next())?);
            } else if is(IDLE) {
                parsed.idle = Some(integer(&parsed.idle, IDLE, 0, rest.next())?);
            } else if is(LIMIT) {
                parsed.limit = Some(integer(&parsed.limit, LIMIT, 0, rest.next())?);
            } else if is(TYPE) {
                if parsed.key_type.is_some() {
                    return Err(SweepError::Repeated(TYPE));
                }
                let value = rest.next().ok_or(SweepError::MissingValue(TYPE))?;
                parsed.key_type = Some(value.to_ascii_lowercase());
            } else if is(OR) {
                parsed
                    .or
                    .push(rest.next().ok_or(SweepError::MissingValue(OR))?.to_vec());
            } else if is(EXCEPT) {
                let value = rest.next().ok_or(SweepError::MissingValue(EXCEPT))?;
                parsed.except.push(value.to_vec());
            } else if is(MINSIZE) {
                parsed.minsize = Some(integer(&parsed.minsize, MINSIZE, 0, rest.next())?);
            } else if is(PERSISTENT) || is(VOLATILE) {
                let (this, keyword) = if is(PERSISTENT) {
                    (Ttl::Persistent, PERSISTENT)
                } else {
                    (Ttl::Volatile, VOLATILE)
                };
                match parsed.ttl {
                    None => parsed.ttl = Some(this),
                    Some(seen) if seen == this => return Err(SweepError::Repeated(keyword)),
                    Some(_) => return Err(SweepError::Exclusive(PERSISTENT, VOLATILE)),
                }
            } else if is(DRYRUN) {
                once(&mut parsed.dryrun, DRYRUN)?;
            } else if is(ASYNC) {
                once(&mut parsed.run_async, ASYNC)?;
            } else {
                return Err(SweepError::UnknownOption(printable(word)));
            }
        }
        Ok(parsed)
    }
}

/// `SWEEP.STATUS [id]` and `SWEEP.CANCEL id`: a job id, a positive integer.
pub fn job_id(value: &[u8]) -> Result<u64, SweepError> {
    match parse_i64(value) {
        Some(n) if n >= 1 => u64::try_from(n).map_err(|_| SweepError::BadJobId),
        _ => Err(SweepError::BadJobId),
    }
}

fn once(flag: &mut bool, option: &'static str) -> Result<(), SweepError> {
    if *flag {
        return Err(SweepError::Repeated(option));
    }
    *flag = true;
    Ok(())
}

/// The value of an option that takes an integer of `min` or more and may be given once.
fn integer(
    seen: &Option<u64>,
    option: &'static str,
    min: i64,
    value: Option<&[u8]>,
) -> Result<u64, SweepError> {
    if seen.is_some() {
        return Err(SweepError::Repeated(option));
    }
    let value = value.ok_or(SweepError::MissingValue(option))?;
    let bad = SweepError::BadInteger { option, min };
    match parse_i64(value) {
        Some(n) if n >= min => u64::try_from(n).map_err(|_| bad),
        _ => Err(bad),
    }
}

/// Parses a signed 64-bit integer with the server's rules: an optional `-`, then `0` alone or a
/// digit 1-9 followed by digits, nothing else, no overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// An argument made safe to quote in an error line: at most 64 bytes, control and non-ASCII
/// bytes escaped as `\xNN` (a raw CR or LF would break the protocol).
pub fn printable(word: &[u8]) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    for &b in word.iter().take(MAX) {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if word.len() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn parse(words: &[&str]) -> Result<ClearArgs, SweepError> {
        ClearArgs::parse(words)
    }

    macro_rules! ok {
        ($name:ident, $words:expr, $count:expr, $batch:expr) => {
            #[test]
            fn $name() {
                let a = parse(&$words).unwrap();
                assert_eq!(a.pattern, $words[0].as_bytes());
                assert_eq!((a.count, a.batch), ($count, $batch));
            }
        };
    }

    macro_rules! err {
        ($name:ident, $words:expr, $msg:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse(&$words).unwrap_err().to_string(), $msg);
            }
        };
    }

    ok!(pattern_only, ["a*"], None, None);
    ok!(count, ["a*", "COUNT", "10"], Some(10), None);
    ok!(batch, ["a*", "BATCH", "7"], None, Some(7));
    ok!(
        both_any_order,
        ["a*", "batch", "7", "Count", "3"],
        Some(3),
        Some(7)
    );
    ok!(pattern_that_looks_like_a_keyword, ["COUNT"], None, None);
    ok!(
        huge_count,
        ["*", "COUNT", "9223372036854775807"],
        Some(9_223_372_036_854_775_807),
        None
    );

    err!(
        no_arguments,
        [] as [&str; 0],
        "ERR wrong number of arguments for 'sweep.clear' command"
    );
    err!(unknown, ["a*", "FOO"], "ERR unknown option 'FOO'");
    err!(
        unknown_binary,
        ["a*", "F\r\n\u{7f}"],
        "ERR unknown option 'F\\x0d\\x0a\\x7f'"
    );
    err!(
        missing_count_value,
        ["a*", "COUNT"],
        "ERR COUNT needs a value"
    );
    err!(
        missing_batch_value,
        ["a*", "BATCH"],
        "ERR BATCH needs a value"
    );
    err!(
        count_twice,
        ["a*", "COUNT", "1", "count", "2"],
        "ERR COUNT given twice"
    );
    err!(
        count_zero,
        ["a*", "COUNT", "0"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_negative,
        ["a*", "COUNT", "-5"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_text,
        ["a*", "COUNT", "ten"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_plus,
        ["a*", "COUNT", "+5"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_leading_zero,
        ["a*", "COUNT", "05"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_space,
        ["a*", "COUNT", " 5"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_float,
        ["a*", "COUNT", "1.5"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        count_overflow,
        ["a*", "COUNT", "9223372036854775808"],
        "ERR COUNT must be a positive integer"
    );
    err!(
        batch_zero,
        ["a*", "BATCH", "0"],
        "ERR BATCH must be a positive integer"
    );
    err!(
        batch_empty,
        ["a*", "BATCH", ""],
        "ERR BATCH must be a positive integer"
    );

    err!(
        idle_negative,
        ["a*", "IDLE", "-1"],
        "ERR IDLE must be an integer of 0 or more"
    );
    err!(
        idle_text,
        ["a*", "IDLE", "x"],
        "ERR IDLE must be an integer of 0 or more"
    );
    err!(
        limit_negative,
        ["a*", "LIMIT", "-1"],
        "ERR LIMIT must be an integer of 0 or more"
    );
    err!(
        limit_twice,
        ["a*", "LIMIT", "1", "LIMIT", "1"],
        "ERR LIMIT given twice"
    );
    err!(
        missing_limit_value,
        ["a*", "LIMIT"],
        "ERR LIMIT needs a value"
    );
    err!(missing_idle_value, ["a*", "IDLE"], "ERR IDLE needs a value");
    err!(missing_type_value, ["a*", "TYPE"], "ERR TYPE needs a value");
    err!(
        type_twice,
        ["a*", "TYPE", "hash", "type", "set"],
        "ERR TYPE given twice"
    );
    err!(
        dryrun_twice,
        ["a*", "DRYRUN", "dryrun"],
        "ERR DRYRUN given twice"
    );
    err!(
        async_twice,
        ["a*", "ASYNC", "ASYNC"],
        "ERR ASYNC given twice"
    );

    err!(missing_or_value, ["a*", "OR"], "ERR OR needs a value");
    err!(
        missing_except_value,
        ["a*", "OR", "b*", "EXCEPT"],
        "ERR EXCEPT needs a value"
    );
    err!(
        missing_minsize_value,
        ["a*", "MINSIZE"],
        "ERR MINSIZE needs a value"
    );
    err!(
        minsize_negative,
        ["a*", "MINSIZE", "-1"],
        "ERR MINSIZE must be an integer of 0 or more"
    );
    err!(
        minsize_text,
        ["a*", "MINSIZE", "1MB"],
        "ERR MINSIZE must be an integer of 0 or more"
    );
    err!(
        minsize_twice,
        ["a*", "MINSIZE", "1", "minsize", "2"],
        "ERR MINSIZE given twice"
    );
    err!(
        persistent_and_volatile,
        ["a*", "PERSISTENT", "volatile"],
        "ERR PERSISTENT and VOLATILE cannot be used together"
    );
    err!(
        volatile_and_persistent,
        ["a*", "VOLATILE", "DRYRUN", "Persistent"],
        "ERR PERSISTENT and VOLATILE cannot be used together"
    );
    err!(
        persistent_twice,
        ["a*", "PERSISTENT", "PERSISTENT"],
        "ERR PERSISTENT given twice"
    );
    err!(
        volatile_twice,
        ["a*", "volatile", "VOLATILE"],
        "ERR VOLATILE given twice"
    );

    #[test]
    fn or_and_except_repeat_and_keep_their_order() {
        let a = parse(&[
            "image:*", "OR", "thumb:*", "except", "*:pinned", "or", "OR", "EXCEPT", "",
        ])
        .unwrap();
        assert_eq!(a.pattern, b"image:*");
        assert_eq!(a.or, [&b"thumb:*"[..], b"OR"]);
        assert_eq!(a.except, [&b"*:pinned"[..], b""]);
    }

    #[test]
    fn ttl_and_minsize() {
        let a = parse(&["s:*", "persistent", "MINSIZE", "0"]).unwrap();
        assert_eq!((a.ttl, a.minsize), (Some(Ttl::Persistent), Some(0)));
        let a = parse(&["s:*", "MinSize", "1048576", "VOLATILE"]).unwrap();
        assert_eq!((a.ttl, a.minsize), (Some(Ttl::Volatile), Some(1_048_576)));
        let a = parse(&["s:*"]).unwrap();
        assert_eq!((a.ttl, a.minsize), (None, None));
    }

    #[test]
    fn every_option_at_once() {
        let a = parse(&[
            "k:*", "dryrun", "TYPE", "Hash", "IDLE", "0", "LIMIT", "0", "async", "COUNT", "5",
            "BATCH", "6",
        ])
        .unwrap();
        assert_eq!(
            a,
            ClearArgs {
                pattern: b"k:*".to_vec(),
                count: Some(5),
                batch: Some(6),
                key_type: Some(b"hash".to_vec()),
                idle: Some(0),
                limit: Some(0),
                dryrun: true,
                run_async: true,
                ..ClearArgs::default()
            }
        );
    }

    #[test]
    fn job_ids_are_positive_integers() {
        assert_eq!(job_id(b"1"), Ok(1));
        assert_eq!(
            job_id(b"9223372036854775807"),
            Ok(9_223_372_036_854_775_807)
        );
        for bad in [&b"0"[..], b"-1", b"x", b"", b"01", b"1.0"] {
            assert_eq!(job_id(bad), Err(SweepError::BadJobId));
        }
    }

    #[test]
    fn integers_follow_the_servers_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b"1 ",
            b"1e3",
            b"0x10",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn long_unknown_options_are_cut() {
        let long = "X".repeat(1000);
        let msg = parse(&["a*", &long]).unwrap_err().to_string();
        assert!(msg.len() < 100, "{msg}");
    }

    proptest::proptest! {
        #[test]
        fn any_arguments_give_a_result_not_a_panic(
            words in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..12), 0..8)
        ) {
            if let Err(e) = ClearArgs::parse(&words) {
                let text = e.to_string();
                proptest::prop_assert!(text.starts_with("ERR "));
                proptest::prop_assert!(!text.contains('\r') && !text.contains('\n'));
            }
        }

        /// Well-formed commands of the whole grammar, options in any order and any case, parse
        /// to exactly what they say.
        #[test]
        fn the_grammar_round_trips(
            pattern in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
            or in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..6), 0..4),
            except in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..6), 0..3),
            count in proptest::option::of(1u64..1_000_000),
            batch in proptest::option::of(1u64..1_000_000),
            idle in proptest::option::of(0u64..1_000_000),
            minsize in proptest::option::of(proptest::num::u64::ANY.prop_map(|n| n >> 1)),
            limit in proptest::option::of(0u64..1_000_000),
            key_type in proptest::option::of(proptest::sample::select(vec!["string", "hash", "zset", "MyType"])),
            ttl in proptest::option::of(proptest::bool::ANY.prop_map(|v| if v { Ttl::Volatile } else { Ttl::Persistent })),
            dryrun in proptest::bool::ANY,
            run_async in proptest::bool::ANY,
            order in proptest::collection::vec(proptest::num::usize::ANY, 32),
            lower in proptest::collection::vec(proptest::bool::ANY, 32),
        ) {
            use proptest::prelude::*;
            let kw = |w: &str, i: usize| -> Vec<u8> {
                if lower.get(i % 32).copied().unwrap_or(false) { w.to_ascii_lowercase().into_bytes() } else { w.as_bytes().to_vec() }
            };
            let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
            for (i, p) in or.iter().enumerate() { groups.push(vec![kw("OR", i), p.clone()]); }
            for (i, p) in except.iter().enumerate() { groups.push(vec![kw("EXCEPT", i + 8), p.clone()]); }
            let int = |name: &str, v: Option<u64>, i: usize, groups: &mut Vec<Vec<Vec<u8>>>| {
                if let Some(v) = v { groups.push(vec![kw(name, i), v.to_string().into_bytes()]); }
            };
            int("COUNT", count, 16, &mut groups);
            int("BATCH", batch, 17, &mut groups);
            int("IDLE", idle, 18, &mut groups);
            int("MINSIZE", minsize, 19, &mut groups);
            int("LIMIT", limit, 20, &mut groups);
            if let Some(t) = key_type { groups.push(vec![kw("TYPE", 21), t.as_bytes().to_vec()]); }
            match ttl {
                Some(Ttl::Persistent) => groups.push(vec![kw("PERSISTENT", 22)]),
                Some(Ttl::Volatile) => groups.push(vec![kw("VOLATILE", 22)]),
                None => {}
            }
            if dryrun { groups.push(vec![kw("DRYRUN", 23)]); }
            if run_async { groups.push(vec![kw("ASYNC", 24)]); }
            // Shuffle the groups, keeping OR and EXCEPT in their own relative order.
            let mut keyed: Vec<(usize, usize, Vec<Vec<u8>>)> = groups
                .into_iter()
                .enumerate()
                .map(|(i, g)| (order.get(i % 32).copied().unwrap_or(0), i, g))
                .collect();
            let is_repeatable = |g: &Vec<Vec<u8>>| g.first().is_some_and(|w| w.eq_ignore_ascii_case(b"OR") || w.eq_ignore_ascii_case(b"EXCEPT"));
            keyed.sort_by_key(|(k, i, g)| if is_repeatable(g) { (0, *i) } else { (*k, *i) });
            let mut words = vec![pattern.clone()];
            for (_, _, g) in keyed { words.extend(g); }
            let parsed = ClearArgs::parse(&words);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", words, parsed);
            let parsed = parsed.unwrap_or_default();
            prop_assert_eq!(parsed, ClearArgs {
                pattern,
                count,
                batch,
                key_type: key_type.map(|t| t.to_ascii_lowercase().into_bytes()),
                idle,
                limit,
                dryrun,
                run_async,
                or,
                except,
                minsize,
                ttl,
            });
        }

        /// Sequences made mostly of the command's own keywords, in any order and number: a
        /// result or an `ERR` line, never a panic.
        #[test]
        fn keyword_soup_gives_a_result_not_a_panic(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "OR", "except", "MINSIZE", "persistent", "VOLATILE", "COUNT", "BATCH",
                        "TYPE", "IDLE", "LIMIT", "DRYRUN", "ASYNC", "0", "-1", "7", "a*", "",
                    ]).prop_map(|w| w.as_bytes().to_vec()),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..4),
                ],
                0..12,
            )
        ) {
            use proptest::prelude::*;
            match ClearArgs::parse(&words) {
                Ok(a) => prop_assert!(a.or.len() + a.except.len() < words.len()),
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.starts_with("ERR "));
                    prop_assert!(!text.contains('\r') && !text.contains('\n'));
                }
            }
        }

        #[test]
        fn parse_i64_agrees_with_display(n in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        }
    }
}
