//! Parsing of the commands' arguments into typed structs, before anything runs.
//!
//! `SWEEP.CLEAR pattern [COUNT n] [BATCH m] [TYPE type] [IDLE seconds] [LIMIT max] [DRYRUN]
//! [ASYNC] [LOCAL]`: keywords are case-insensitive, may come in any order and each may appear once, as
//! in the server's own commands. Integers follow the server's strict rules (`string2ll`): no
//! `+`, no spaces, no leading zeros.

use crate::error::SweepError;

const COUNT: &str = "COUNT";
const BATCH: &str = "BATCH";
const TYPE: &str = "TYPE";
const IDLE: &str = "IDLE";
const LIMIT: &str = "LIMIT";
const DRYRUN: &str = "DRYRUN";
const ASYNC: &str = "ASYNC";
const LOCAL: &str = "LOCAL";

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
    /// `LOCAL`: in a cluster, this node only (SPEC §6); ignored outside cluster mode.
    pub local: bool,
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
            } else if is(DRYRUN) {
                once(&mut parsed.dryrun, DRYRUN)?;
            } else if is(ASYNC) {
                once(&mut parsed.run_async, ASYNC)?;
            } else if is(LOCAL) {
                once(&mut parsed.local, LOCAL)?;
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
        local_twice,
        ["a*", "LOCAL", "local"],
        "ERR LOCAL given twice"
    );
    #[test]
    fn local_is_a_flag() {
        assert!(parse(&["a*", "local"]).unwrap().local);
        assert!(!parse(&["a*"]).unwrap().local);
    }
    err!(
        async_twice,
        ["a*", "ASYNC", "ASYNC"],
        "ERR ASYNC given twice"
    );

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
                local: false,
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

        #[test]
        fn parse_i64_agrees_with_display(n in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        }
    }
}
