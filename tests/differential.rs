//! The strongest oracle there is: the server's own matcher. For hundreds of patterns over a
//! keyspace of thousands of keys (binary and empty names included), the keys SWEEP.CLEAR
//! deletes are exactly the keys `KEYS pattern` returned just before, and nothing else is touched.

mod common;

use std::collections::BTreeSet;

use common::reply::clear;
use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes that mean something to the matcher, plus binary ones.
const PATTERN_ALPHABET: &[u8] = b"*?[]^-\\ab:c!{}\x00\xff\x80z";
const KEY_ALPHABET: &[u8] = b"ab:c-]^[\\*?{}z\x00\xff\x80 ";

fn random_bytes(rng: &mut StdRng, alphabet: &[u8], max_len: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max_len);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

fn keyspace(rng: &mut StdRng) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    keys.insert(Vec::new()); // the empty name
    for i in 0..1500 {
        keys.insert(format!("user:{i}:session").into_bytes());
    }
    for i in 0..300 {
        keys.insert(format!("{{tenant{}}}.cache:{i}", i % 7).into_bytes());
        keys.insert(format!("image_proxy:{i:04x}").into_bytes());
    }
    for _ in 0..1500 {
        keys.insert(random_bytes(rng, KEY_ALPHABET, 8));
    }
    for _ in 0..200 {
        keys.insert(random_bytes(rng, &(0..=255).collect::<Vec<u8>>(), 6));
    }
    keys
}

fn patterns(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let fixed: &[&[u8]] = &[
        b"*",
        b"**",
        b"",
        b"?",
        b"??",
        b"*?",
        b"user:*",
        b"user:1*",
        b"user:*:session",
        b"user:?:session",
        b"user:[0-4]*",
        b"user:[^0-4]*",
        b"user:[4-0]*",
        b"user:1[0-9][0-9]:*",
        b"image_proxy:*",
        b"image_proxy:00[a-f]?",
        b"{tenant3}.*",
        b"{tenant[1-3]}.cache:1*",
        b"*:session",
        b"*session*",
        b"*a*a*",
        b"a",
        b"a*",
        b"*a",
        b"[a]",
        b"[ab]*",
        b"[^ab]*",
        b"[!a]*",
        b"[]",
        b"[]a]",
        b"[^]",
        b"[^]*",
        b"[",
        b"[a",
        b"[a-",
        b"[a-]",
        b"[a-]*",
        b"[-a]*",
        b"[\\]]*",
        b"[\\-]*",
        b"[z-a]*",
        b"\\*",
        b"\\**",
        b"*\\*",
        b"\\?*",
        b"\\[*",
        b"\\",
        b"*\\",
        b"a\\",
        b"[\\",
        b"[a\\",
        b"\x00*",
        b"*\x00",
        b"*\xff*",
        b"[\x00-\xff]*",
        b"[\xff-\x00]*",
        b"[a-\xff]*",
        b"[\x80-\xff]*",
        b"?\x80*",
        b"*[^a-z:0-9]*",
        b"user:*1*1*1*",
        b"*[",
        b"*[^",
    ];
    let mut all: Vec<Vec<u8>> = fixed.iter().map(|p| p.to_vec()).collect();
    while all.len() < 400 {
        all.push(random_bytes(rng, PATTERN_ALPHABET, 7));
    }
    all
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

#[test]
fn sweep_clear_deletes_what_keys_returns_for_hundreds_of_patterns() {
    let seed: u64 = std::env::var("SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = Server::start();
    let mut con = server.conn();
    let all = keyspace(&mut rng);
    set_all(&mut con, &all);
    let total = i64::try_from(all.len()).unwrap();

    let patterns = patterns(&mut rng);
    let mut compared = 0;
    let mut nonempty = 0;
    for pattern in &patterns {
        let expected = keys_of(&mut con, pattern);
        // Vary the step and batch sizes so sweeps take one slice or many.
        let count = rng.gen_range(1..=2000u32).to_string();
        let batch = rng.gen_range(1..=600u32).to_string();
        let r = clear(
            &mut con,
            &[
                pattern,
                b"COUNT",
                count.as_bytes(),
                b"BATCH",
                batch.as_bytes(),
            ],
        )
        .unwrap();
        let shown = String::from_utf8_lossy(pattern);
        let n = i64::try_from(expected.len()).unwrap();
        if r["deleted"] != n {
            // Name the keys in question before failing.
            let left = keys_of(&mut con, b"*");
            let deleted: BTreeSet<Vec<u8>> = all.difference(&left).cloned().collect();
            let extra: Vec<String> = deleted
                .difference(&expected)
                .map(|k| format!("{:?}", String::from_utf8_lossy(k)))
                .collect();
            let missed: Vec<String> = expected
                .difference(&deleted)
                .map(|k| format!("{:?}", String::from_utf8_lossy(k)))
                .collect();
            panic!("pattern {shown:?} (seed {seed}): {r:?}; deleted but not in KEYS: {extra:?}; in KEYS but not deleted: {missed:?}");
        }
        assert_eq!(r["matched"], n, "pattern {shown:?} (seed {seed}): {r:?}");
        // Every key is visited; a resize during the scan may report one twice (the SCAN
        // guarantee), which Valkey 8.1's hash table does when deletions shrink it.
        assert!(
            r["scanned"] >= total,
            "pattern {shown:?} (seed {seed}): {r:?}"
        );
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(
            size,
            total - n,
            "pattern {shown:?} (seed {seed}) touched other keys"
        );
        if !expected.is_empty() {
            let mut exists = redis::cmd("EXISTS");
            for k in &expected {
                exists.arg(k.as_slice());
            }
            let left: i64 = exists.query(&mut con).unwrap();
            assert_eq!(
                left, 0,
                "pattern {shown:?} (seed {seed}) left matching keys"
            );
            set_all(&mut con, &expected);
            nonempty += 1;
        }
        compared += 1;
    }
    assert!(compared >= 300, "{compared}");
    // The comparison means something only if many patterns matched some keys.
    assert!(nonempty >= 60, "only {nonempty} patterns matched anything");
    eprintln!("compared {compared} patterns ({nonempty} matched keys), seed {seed}");
}
