//! SPEC §9 against the server's own matcher: for random sets of 1-4 patterns and 0-2 `EXCEPT`
//! patterns over a keyspace with binary names, what `DRYRUN` counts and what a real run deletes
//! is exactly the union of `KEYS` over the patterns minus the union of `KEYS` over the
//! exceptions, and one pass visits the keyspace once whatever the number of patterns.

mod common;

use std::collections::BTreeSet;

use common::ops::{dbsize, start_async, status, wait_done};
use common::reply::clear;
use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PATTERN_ALPHABET: &[u8] = b"*?[]^-\\ab:c{}\x00\xff\x80z1";
const KEY_ALPHABET: &[u8] = b"ab:c-]^[\\*?{}z\x00\xff\x801 ";

fn random_bytes(rng: &mut StdRng, alphabet: &[u8], max_len: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max_len);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

fn keyspace(rng: &mut StdRng) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    keys.insert(Vec::new());
    for i in 0..600 {
        keys.insert(format!("user:{i}:session").into_bytes());
        keys.insert(format!("image:{i}").into_bytes());
    }
    for i in 0..200 {
        keys.insert(format!("thumb:{i}").into_bytes());
        keys.insert(format!("avatar:{i}").into_bytes());
        keys.insert(format!("tmp:{}:{i}", ["a", "b", "c", "d", "e"][i % 5]).into_bytes());
        keys.insert(format!("{{tenant{}}}.cache:{i}", i % 7).into_bytes());
    }
    for i in 0..40 {
        keys.insert(format!("image:{i}:pinned").into_bytes());
        keys.insert(format!("thumb:{i}:pinned").into_bytes());
    }
    for _ in 0..600 {
        keys.insert(random_bytes(rng, KEY_ALPHABET, 8));
    }
    for _ in 0..100 {
        keys.insert(random_bytes(rng, &(0..=255).collect::<Vec<u8>>(), 6));
    }
    keys
}

/// Patterns that overlap, nest and share prefixes, plus random ones.
fn pattern(rng: &mut StdRng) -> Vec<u8> {
    const POOL: &[&[u8]] = &[
        b"*",
        b"",
        b"?",
        b"image:*",
        b"image:1*",
        b"image:1?",
        b"thumb:*",
        b"avatar:*",
        b"avatar:[0-4]*",
        b"tmp:a:*",
        b"tmp:b:*",
        b"tmp:[a-c]:*",
        b"tmp:*",
        b"user:*",
        b"user:1*",
        b"user:*:session",
        b"{tenant3}.*",
        b"*:pinned",
        b"*1",
        b"*[",
        b"[]",
        b"a*",
        b"\\*",
        b"*\x00*",
        b"[\x80-\xff]*",
    ];
    if rng.gen_bool(0.6) {
        POOL[rng.gen_range(0..POOL.len())].to_vec()
    } else {
        random_bytes(rng, PATTERN_ALPHABET, 6)
    }
}

fn keys_of(con: &mut redis::Connection, pattern: &[u8]) -> BTreeSet<Vec<u8>> {
    let found: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    found.into_iter().collect()
}

fn set_all<'a>(con: &mut redis::Connection, keys: impl IntoIterator<Item = &'a Vec<u8>>) {
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("SET").arg(k.as_slice()).arg(1).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

fn shown(patterns: &[Vec<u8>]) -> Vec<String> {
    patterns
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[test]
fn or_and_except_delete_the_union_of_keys_minus_the_exceptions() {
    let seed: u64 = std::env::var("SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = Server::start();
    let mut con = server.conn();
    let all = keyspace(&mut rng);
    set_all(&mut con, &all);
    let total = i64::try_from(all.len()).unwrap();

    let mut nonempty = 0;
    let mut with_exceptions = 0;
    let trials = 150;
    for trial in 0..trials {
        let take: Vec<Vec<u8>> = (0..rng.gen_range(1..=4))
            .map(|_| pattern(&mut rng))
            .collect();
        let leave: Vec<Vec<u8>> = (0..rng.gen_range(0..=2))
            .map(|_| pattern(&mut rng))
            .collect();
        let mut expected = BTreeSet::new();
        for p in &take {
            expected.extend(keys_of(&mut con, p));
        }
        let mut excepted = BTreeSet::new();
        for p in &leave {
            excepted.extend(keys_of(&mut con, p));
        }
        if expected.iter().any(|k| excepted.contains(k)) {
            with_exceptions += 1;
        }
        let expected: BTreeSet<Vec<u8>> = expected.difference(&excepted).cloned().collect();
        let n = i64::try_from(expected.len()).unwrap();
        let what = format!(
            "trial {trial} (seed {seed}): take {:?} except {:?}",
            shown(&take),
            shown(&leave)
        );

        let mut args: Vec<&[u8]> = vec![&take[0]];
        for p in &take[1..] {
            args.extend([&b"OR"[..], p]);
        }
        for p in &leave {
            args.extend([&b"EXCEPT"[..], p]);
        }
        let count = rng.gen_range(1..=2000u32).to_string();
        let batch = rng.gen_range(1..=600u32).to_string();
        args.extend([&b"COUNT"[..], count.as_bytes(), b"BATCH", batch.as_bytes()]);

        let mut dry = args.clone();
        dry.push(b"DRYRUN");
        let r = clear(&mut con, &dry).unwrap();
        assert_eq!(r["matched"], n, "DRYRUN {what}: {r:?}");
        assert_eq!(r["deleted"], 0, "DRYRUN {what}: {r:?}");
        assert_eq!(dbsize(&mut con), total, "DRYRUN deleted keys: {what}");

        let r = clear(&mut con, &args).unwrap();
        let left = keys_of(&mut con, b"*");
        let deleted: BTreeSet<Vec<u8>> = all.difference(&left).cloned().collect();
        assert_eq!(
            deleted,
            expected,
            "{what}: {r:?}; deleted but not expected: {:?}; expected but left: {:?}",
            shown(&deleted.difference(&expected).cloned().collect::<Vec<_>>()),
            shown(&expected.difference(&deleted).cloned().collect::<Vec<_>>()),
        );
        assert_eq!(r["deleted"], n, "{what}: {r:?}");
        assert_eq!(r["matched"], n, "{what}: {r:?}");
        // One pass: every key visited once (a resize may report one twice, as SCAN may), not
        // once per pattern.
        assert!(r["scanned"] >= total, "{what}: {r:?}");
        assert!(
            r["scanned"] < 2 * total,
            "{what}: scanned more than one pass: {r:?}"
        );
        if !expected.is_empty() {
            set_all(&mut con, &expected);
            nonempty += 1;
        }
    }
    assert!(
        nonempty >= trials / 3,
        "only {nonempty} trials matched anything"
    );
    assert!(
        with_exceptions >= 20,
        "only {with_exceptions} trials had an exception that mattered"
    );
    eprintln!("{trials} trials, {nonempty} that deleted keys, {with_exceptions} with exceptions that mattered, seed {seed}");
}

#[test]
fn four_prefixes_in_one_pass_scan_the_keyspace_once() {
    let server = Server::start();
    let mut con = server.conn();
    for p in ["tmp:a", "tmp:b", "tmp:c", "tmp:d", "keep:x", "keep:y"] {
        common::ops::populate(&mut con, 5_000, p);
    }
    let total = dbsize(&mut con);
    let id = start_async(
        &mut con,
        &["tmp:a:*", "OR", "tmp:b:*", "OR", "tmp:c:*", "or", "tmp:d:*"],
    );
    let done = wait_done(&mut con, id);
    assert_eq!(done["state"], "done");
    assert_eq!(done["deleted"], "20000");
    let scanned: i64 = done["scanned"].parse().unwrap();
    assert!(scanned >= total && scanned < total + total / 10, "{done:?}");
    assert_eq!(dbsize(&mut con), 10_000);
    assert_eq!(done["pattern"], "tmp:a:*");
    assert_eq!(done["or"], r#"["tmp:b:*", "tmp:c:*", "tmp:d:*"]"#);
    assert_eq!(done["except"], "[]");
}

#[test]
fn status_and_log_name_every_pattern() {
    let server = Server::start();
    let mut con = server.conn();
    common::ops::populate(&mut con, 100, "image");
    common::ops::populate(&mut con, 100, "thumb");
    redis::cmd("SET")
        .arg("image:pinned")
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    let id = start_async(
        &mut con,
        &[
            "image:*", "OR", "thumb:*", "EXCEPT", "*:pinned", "EXCEPT", "thumb:9?",
        ],
    );
    let done = wait_done(&mut con, id);
    assert_eq!(done["deleted"], "190", "{done:?}");
    assert_eq!(done["pattern"], "image:*");
    assert_eq!(done["or"], r#"["thumb:*"]"#);
    assert_eq!(done["except"], r#"["*:pinned", "thumb:9?"]"#);
    assert_eq!(status(&mut con, id)["except"], done["except"]);
    let line = format!(
        "sweep {id} of 'image:*' or 'thumb:*' except '*:pinned' except 'thumb:9?' on db 0 done"
    );
    common::wait_until("the log line", std::time::Duration::from_secs(10), || {
        server.log().contains(&line)
    });
}

#[test]
fn option_errors_name_the_option_and_delete_nothing() {
    let server = Server::start();
    let mut con = server.conn();
    common::ops::populate(&mut con, 10, "k");
    for (args, message) in [
        (&["k:*", "OR"][..], "ERR OR needs a value"),
        (&["k:*", "EXCEPT"][..], "ERR EXCEPT needs a value"),
        (&["k:*", "MINSIZE"][..], "ERR MINSIZE needs a value"),
        (
            &["k:*", "MINSIZE", "-1"][..],
            "ERR MINSIZE must be an integer of 0 or more",
        ),
        (
            &["k:*", "MINSIZE", "1k"][..],
            "ERR MINSIZE must be an integer of 0 or more",
        ),
        (
            &["k:*", "MINSIZE", "1", "MINSIZE", "2"][..],
            "ERR MINSIZE given twice",
        ),
        (
            &["k:*", "PERSISTENT", "VOLATILE"][..],
            "ERR PERSISTENT and VOLATILE cannot be used together",
        ),
        (
            &["k:*", "volatile", "ASYNC", "persistent"][..],
            "ERR PERSISTENT and VOLATILE cannot be used together",
        ),
        (
            &["k:*", "VOLATILE", "VOLATILE"][..],
            "ERR VOLATILE given twice",
        ),
    ] {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let e = clear(&mut con, &bytes).unwrap_err();
        assert_eq!(
            e.detail(),
            Some(message.trim_start_matches("ERR ")),
            "{args:?}: {e}"
        );
        assert_eq!(e.code(), Some("ERR"), "{args:?}: {e}");
    }
    assert_eq!(dbsize(&mut con), 10);
}

#[test]
fn pathological_or_and_except_patterns_keep_their_bound() {
    let server = Server::start();
    let mut con = server.conn();
    let long_a = vec![b'a'; 5_000];
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(vec![b'a'; 40]).arg(1).ignore();
    pipe.cmd("SET").arg(&long_a).arg(1).ignore();
    pipe.cmd("SET").arg("ab").arg(1).ignore();
    pipe.cmd("SET").arg("aaaaaaaaaab").arg(1).ignore();
    pipe.cmd("SET").arg("zzc").arg(1).ignore();
    pipe.query::<()>(&mut con).unwrap();
    let star_q = b"*?".repeat(25_000);
    let nested = b"*a"
        .repeat(10)
        .into_iter()
        .chain(*b"*b")
        .collect::<Vec<u8>>();
    let too_deep = b"a*".repeat(1001);
    let mut class = b"*[".to_vec();
    class.extend((0..40_000u32).map(|i| b'c' + (i % 20) as u8));
    class.push(b']');
    let mut expected = BTreeSet::new();
    for p in [&nested, &star_q, &too_deep, &class] {
        expected.extend(keys_of(&mut con, p));
    }
    expected.retain(|k| !keys_of(&mut con, b"a[b]").contains(k));
    let r = clear(
        &mut con,
        &[
            &nested, b"OR", &star_q, b"OR", &too_deep, b"OR", &class, b"EXCEPT", b"a[b]",
            b"EXCEPT", &star_q,
        ],
    )
    .unwrap();
    // `EXCEPT "*?"×25000` leaves alone what it matches, as KEYS would say.
    let left_alone = keys_of(&mut con, &star_q);
    let expected: BTreeSet<Vec<u8>> = expected.difference(&left_alone).cloned().collect();
    // The 5,000 `a`s (1000 nested stars: still allowed), the ten `a`s and a `b`, and `zzc`.
    let lengths: Vec<usize> = expected.iter().map(Vec::len).collect();
    assert_eq!(lengths, [5000, 11, 3]);
    assert_eq!(r["deleted"], 3, "{r:?}");
    assert_eq!(dbsize(&mut con), 2);
}
