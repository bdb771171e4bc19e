//! SPEC §9 filters against the server's own answers: `MINSIZE` against `MEMORY USAGE`,
//! `PERSISTENT`/`VOLATILE` against `TTL`, and every new option combined with `TYPE`, `IDLE`,
//! `LIMIT`, `DRYRUN` and `ASYNC` against an oracle built from `KEYS`, `TYPE`, `TTL`,
//! `OBJECT IDLETIME` and `MEMORY USAGE` of each key.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::ops::{dbsize, start_async, wait_done};
use common::reply::clear;
use common::{wait_until, Server};

fn keys(con: &mut redis::Connection, pattern: &str) -> BTreeSet<String> {
    let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    found.into_iter().collect()
}

fn usage(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .query(con)
        .unwrap()
}

fn encoding(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(con)
        .unwrap()
}

fn run(con: &mut redis::Connection, args: &[&str]) -> BTreeMap<String, i64> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    clear(con, &bytes).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Strings of many sizes and encodings (int, embstr, raw, grown by APPEND and SETRANGE), and
/// collections on both sides of their encoding changes (listpack/intset to hashtable,
/// skiplist, quicklist; stream sizes).
fn fill_sizes(con: &mut redis::Connection) -> Vec<String> {
    let mut names = Vec::new();
    let mut pipe = redis::pipe();
    for n in [
        0usize, 1, 5, 20, 21, 31, 32, 33, 40, 44, 45, 46, 60, 64, 100, 200, 500, 1000, 4000, 4096,
        10_000, 65_536, 100_000, 1_000_000, 1_048_576, 1_200_000,
    ] {
        let k = format!("m:s:{n}");
        pipe.cmd("SET").arg(&k).arg("x".repeat(n)).ignore();
        names.push(k);
    }
    for v in [
        "7",
        "12345",
        "123456789012",
        "-9223372036854775808",
        "9223372036854775807",
        "99999999999999999999",
    ] {
        let k = format!("m:i:{v}");
        pipe.cmd("SET").arg(&k).arg(v).ignore();
        names.push(k);
    }
    // APPEND grows the allocation greedily (twice the length below 1 MB, +1 MB above).
    for (start, add) in [(10, 100), (100, 1000), (50_000, 70_000), (900_000, 300_000)] {
        let k = format!("m:a:{start}+{add}");
        pipe.cmd("SET").arg(&k).arg("y".repeat(start)).ignore();
        pipe.cmd("APPEND").arg(&k).arg("z".repeat(add)).ignore();
        names.push(k);
    }
    pipe.cmd("SETRANGE")
        .arg("m:r:5000")
        .arg(5000)
        .arg("r")
        .ignore();
    names.push("m:r:5000".into());
    pipe.query::<()>(con).unwrap();

    let mut collection = |kind: &str, n: usize, value: usize| {
        let k = format!("m:{kind}:{n}x{value}");
        let mut pipe = redis::pipe();
        for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
            let mut cmd = redis::cmd(match kind {
                "list" => "RPUSH",
                "hash" => "HSET",
                "set" => "SADD",
                "zset" => "ZADD",
                _ => unreachable!(),
            });
            cmd.arg(&k);
            for &i in chunk {
                let v = format!("{i:0value$}");
                match kind {
                    "hash" => cmd.arg(format!("f{i}")).arg(v),
                    "zset" => cmd.arg(i).arg(v),
                    _ => cmd.arg(v),
                };
            }
            pipe.add_command(cmd).ignore();
        }
        pipe.query::<()>(con).unwrap();
        k
    };
    for (kind, n, value) in [
        ("list", 5, 10),
        ("list", 1000, 10),
        ("list", 20, 10_000),
        ("hash", 5, 10),
        ("hash", 5, 100),
        ("hash", 200, 10),
        ("hash", 2000, 30),
        ("set", 5, 10),
        ("set", 200, 10),
        ("set", 2000, 30),
        // Members of width 0 are plain integers: an intset.
        ("set", 5, 0),
        ("set", 1000, 0),
        ("zset", 5, 10),
        ("zset", 200, 10),
        ("zset", 2000, 30),
    ] {
        names.push(collection(kind, n, value));
    }
    for n in [5usize, 1000] {
        let k = format!("m:stream:{n}");
        let mut pipe = redis::pipe();
        for i in 0..n {
            pipe.cmd("XADD")
                .arg(&k)
                .arg("*")
                .arg("f")
                .arg(i)
                .arg("g")
                .arg("v".repeat(i % 50))
                .ignore();
        }
        pipe.query::<()>(con).unwrap();
        names.push(k);
    }
    names
}

#[test]
fn minsize_agrees_with_memory_usage_key_by_key() {
    let server = Server::start();
    let mut con = server.conn();
    let names = fill_sizes(&mut con);
    let mut encodings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut usages = BTreeMap::new();
    for k in &names {
        let kind = k.split(':').nth(1).unwrap().to_string();
        encodings
            .entry(kind)
            .or_default()
            .insert(encoding(&mut con, k));
        usages.insert(k.clone(), usage(&mut con, k));
    }
    // The collections were built across their encoding changes.
    for kind in ["hash", "set", "zset", "s"] {
        assert!(encodings[kind].len() >= 2, "{kind}: {:?}", encodings[kind]);
    }
    // The module's number equals MEMORY USAGE exactly: each key passes MINSIZE at its usage and
    // fails it one byte above.
    for (k, &u) in &usages {
        let at = u.to_string();
        let above = (u + 1).to_string();
        let r = run(&mut con, &[k, "MINSIZE", &at, "DRYRUN"]);
        assert_eq!(
            r["matched"], 1,
            "{k} (MEMORY USAGE {u}) fails MINSIZE {u}: {r:?}"
        );
        let r = run(&mut con, &[k, "MINSIZE", &above, "DRYRUN"]);
        assert_eq!(
            r["matched"], 0,
            "{k} (MEMORY USAGE {u}) passes MINSIZE {above}: {r:?}"
        );
    }
    // And a real run deletes exactly the keys at or above the threshold.
    let mut sorted: Vec<i64> = usages.values().copied().collect();
    sorted.sort();
    let threshold = sorted[sorted.len() / 2];
    let expected: BTreeSet<String> = usages
        .iter()
        .filter(|(_, &u)| u >= threshold)
        .map(|(k, _)| k.clone())
        .collect();
    let before = keys(&mut con, "*");
    let r = run(&mut con, &["m:*", "MINSIZE", &threshold.to_string()]);
    let after = keys(&mut con, "*");
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, expected, "{r:?}");
    assert_eq!(r["deleted"], expected.len() as i64);
    let r = run(&mut con, &["m:*", "MINSIZE", "0"]);
    assert_eq!(r["deleted"], (names.len() - expected.len()) as i64);
    eprintln!("encodings seen: {encodings:?}");
}

/// Waits until the server's clock has passed `ms` milliseconds after `since` (from `TIME`).
fn server_ms(con: &mut redis::Connection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(con).unwrap();
    s * 1000 + us / 1000
}

#[test]
fn persistent_and_volatile_agree_with_ttl() {
    let server = Server::start();
    let mut con = server.conn();
    // Expired keys stay in the keyspace until something reaches them.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("p:{i}")).arg(i).ignore();
        pipe.cmd("SET")
            .arg(format!("v:{i}"))
            .arg(i)
            .arg("EX")
            .arg(1000)
            .ignore();
        // TTL set, then removed.
        pipe.cmd("SET")
            .arg(format!("x:{i}"))
            .arg(i)
            .arg("EX")
            .arg(1000)
            .ignore();
        pipe.cmd("PERSIST").arg(format!("x:{i}")).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    // The oracle: TTL of every key that is not about to expire (TTL would reclaim those).
    let mut with_ttl = BTreeSet::new();
    let mut without = BTreeSet::new();
    for k in keys(&mut con, "[pvx]:*") {
        let ttl: i64 = redis::cmd("TTL").arg(&k).query(&mut con).unwrap();
        if ttl == -1 {
            without.insert(k);
        } else {
            assert!(ttl > 0, "{k}: {ttl}");
            with_ttl.insert(k);
        }
    }
    assert_eq!((with_ttl.len(), without.len()), (100, 200));

    // DRYRUN counts what TTL says.
    let r = run(&mut con, &["[pvx]:*", "VOLATILE", "DRYRUN"]);
    assert_eq!(r["matched"], 100, "{r:?}");
    let r = run(&mut con, &["[pvx]:*", "PERSISTENT", "DRYRUN"]);
    assert_eq!(r["matched"], 200, "{r:?}");

    // Keys about to expire, made after the DRYRUNs: a SCAN may reclaim every expired key it
    // walks past, matching or not (Redis 8.2 does), and those walked the whole keyspace.
    let set_at = server_ms(&mut con);
    let mut pipe = redis::pipe();
    for i in 0..50 {
        // Gone by the time the sweep reaches them.
        pipe.cmd("SET")
            .arg(format!("e:{i}"))
            .arg(i)
            .arg("PX")
            .arg(1)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("f:{i}"))
            .arg(i)
            .arg("PX")
            .arg(1)
            .ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    wait_until("the short TTLs to pass", Duration::from_secs(10), || {
        server_ms(&mut con) > set_at + 5
    });
    assert_eq!(dbsize(&mut con), 400, "the expired keys are still there");

    let before = keys(&mut con, "[pvx]:*");
    let r = run(&mut con, &["[pvxe]:*", "VOLATILE"]);
    assert_eq!(
        (r["deleted"], r["expired"], r["matched"]),
        (100, 50, 150),
        "{r:?}"
    );
    let after = keys(&mut con, "[pvx]:*");
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, with_ttl);

    // Under PERSISTENT a key found expired had a TTL: not a candidate, not counted (on a
    // server whose SCAN reclaims every expired key it walks past, the last sweep already
    // reclaimed the f:* keys, uncounted as they did not match it: the same counts).
    let r = run(&mut con, &["[pvxf]:*", "PERSISTENT"]);
    assert_eq!(
        (r["deleted"], r["expired"], r["matched"]),
        (200, 0, 200),
        "{r:?}"
    );
    assert_eq!(dbsize(&mut con), 0);
}

/// One key of the combination keyspace and what the server says about it.
#[derive(Debug, Clone)]
struct Facts {
    kind: String,
    ttl: bool,
    idle: i64,
    usage: i64,
}

/// Prefixes a:, b:, c:; the five core types; small and large values; with and without a TTL;
/// fresh and idle for 1000 s; some named `…:keep`.
fn fill_combinations(con: &mut redis::Connection) {
    redis::cmd("FLUSHALL").query::<()>(con).unwrap();
    let mut n = 0;
    for prefix in ["a", "b", "c"] {
        for kind in ["string", "hash", "list", "set", "zset"] {
            for large in [false, true] {
                for ttl in [false, true] {
                    for aged in [false, true] {
                        for keep in [false, true] {
                            n += 1;
                            let name = format!(
                                "{prefix}:{kind}:{}:{n}{}",
                                if large { "large" } else { "small" },
                                if keep { ":keep" } else { "" }
                            );
                            let items = if large { 300 } else { 3 };
                            let mut cmd = redis::cmd(match kind {
                                "string" => "SET",
                                "hash" => "HSET",
                                "list" => "RPUSH",
                                "set" => "SADD",
                                _ => "ZADD",
                            });
                            cmd.arg("tmp");
                            if kind == "string" {
                                cmd.arg("s".repeat(items * 20));
                            }
                            for i in (0..items).filter(|_| kind != "string") {
                                match kind {
                                    "hash" => cmd.arg(format!("f{i}")).arg(format!("v{i:016}")),
                                    "zset" => cmd.arg(i).arg(format!("m{i:016}")),
                                    _ => cmd.arg(format!("m{i:016}")),
                                };
                            }
                            cmd.query::<()>(con).unwrap();
                            let dump: Vec<u8> = redis::cmd("DUMP").arg("tmp").query(con).unwrap();
                            redis::cmd("DEL").arg("tmp").query::<()>(con).unwrap();
                            let mut restore = redis::cmd("RESTORE");
                            restore
                                .arg(&name)
                                .arg(if ttl { 1_000_000 } else { 0 })
                                .arg(dump);
                            if aged {
                                restore.arg("IDLETIME").arg(1000);
                            }
                            restore.query::<()>(con).unwrap();
                        }
                    }
                }
            }
        }
    }
}

fn facts(con: &mut redis::Connection) -> BTreeMap<String, Facts> {
    keys(con, "*")
        .into_iter()
        .map(|k| {
            let kind: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(con).unwrap();
            let idle: i64 = redis::cmd("OBJECT")
                .arg("IDLETIME")
                .arg(&k)
                .query(con)
                .unwrap();
            let usage = usage(con, &k);
            (
                k,
                Facts {
                    kind,
                    ttl: ttl >= 0,
                    idle,
                    usage,
                },
            )
        })
        .collect()
}

/// What a sweep with these options should match, from the facts.
fn oracle(
    con: &mut redis::Connection,
    all: &BTreeMap<String, Facts>,
    args: &[&str],
) -> BTreeSet<String> {
    let mut take = BTreeSet::new();
    let mut leave = BTreeSet::new();
    take.extend(keys(con, args[0]));
    let mut i = 1;
    let (mut kind, mut idle, mut minsize, mut ttl) = (None, None, None, None);
    while i < args.len() {
        let value = args.get(i + 1).copied().unwrap_or("");
        match args[i] {
            "OR" => take.extend(keys(con, value)),
            "EXCEPT" => leave.extend(keys(con, value)),
            "TYPE" => kind = Some(value),
            "IDLE" => idle = Some(value.parse::<i64>().unwrap()),
            "MINSIZE" => minsize = Some(value.parse::<i64>().unwrap()),
            "PERSISTENT" => ttl = Some(false),
            "VOLATILE" => ttl = Some(true),
            _ => {}
        }
        i += if matches!(args[i], "PERSISTENT" | "VOLATILE" | "DRYRUN" | "ASYNC") {
            1
        } else {
            2
        };
    }
    take.difference(&leave)
        .filter(|k| {
            let f = &all[*k];
            kind.is_none_or(|t| f.kind == t)
                && idle.is_none_or(|s| f.idle >= s)
                && minsize.is_none_or(|m| f.usage >= m)
                && ttl.is_none_or(|t| f.ttl == t)
        })
        .cloned()
        .collect()
}

#[test]
fn every_new_option_combines_with_the_old_ones() {
    let server = Server::start();
    let mut con = server.conn();
    let mut watcher = server.conn();
    let cases: &[&[&str]] = &[
        &["a:*", "OR", "b:*", "TYPE", "hash"],
        &["a:*", "OR", "c:*", "IDLE", "500"],
        &["*", "EXCEPT", "*:keep", "TYPE", "zset"],
        &[
            "a:*",
            "EXCEPT",
            "*:keep",
            "EXCEPT",
            "*:large:*",
            "IDLE",
            "500",
        ],
        &["*", "MINSIZE", "2000", "TYPE", "string"],
        &["*", "MINSIZE", "2000", "IDLE", "500"],
        &["b:*", "MINSIZE", "2000"],
        &["*", "PERSISTENT", "TYPE", "list"],
        &["*", "PERSISTENT", "IDLE", "500"],
        &["*", "VOLATILE", "TYPE", "set", "MINSIZE", "1000"],
        &[
            "a:*", "OR", "b:*", "EXCEPT", "*:keep", "VOLATILE", "IDLE", "500",
        ],
        &[
            "a:*", "OR", "b:*", "OR", "c:*", "EXCEPT", "*:keep", "TYPE", "hash", "IDLE", "500",
            "MINSIZE", "2000", "VOLATILE",
        ],
    ];
    let mut compared = 0;
    for case in cases {
        for mode in ["blocking", "limit", "async"] {
            fill_combinations(&mut con);
            let all = facts(&mut con);
            let expected = oracle(&mut con, &all, case);
            let total = all.len() as i64;
            let what = format!("{case:?} {mode}");
            assert!(!expected.is_empty(), "{what}: the case matches nothing");

            let mut dry: Vec<&str> = case.to_vec();
            dry.push("DRYRUN");
            let r = run(&mut con, &dry);
            assert_eq!(r["matched"], expected.len() as i64, "DRYRUN {what}: {r:?}");
            assert_eq!(dbsize(&mut con), total, "DRYRUN {what}");

            // A key left alone is not touched: no WATCH signal, no access time.
            let left_alone = all
                .keys()
                .find(|k| !expected.contains(*k) && all[*k].idle >= 1000)
                .cloned()
                .unwrap();
            redis::cmd("WATCH")
                .arg(&left_alone)
                .query::<()>(&mut watcher)
                .unwrap();

            let limit = (expected.len() / 2).max(1);
            let deleted = match mode {
                "blocking" => run(&mut con, case)["deleted"],
                "limit" => {
                    let mut args = case.to_vec();
                    let l = limit.to_string();
                    args.extend(["LIMIT", &l]);
                    run(&mut con, &args)["deleted"]
                }
                _ => {
                    let id = start_async(&mut con, case);
                    wait_done(&mut con, id)["deleted"].parse().unwrap()
                }
            };
            let after = keys(&mut con, "*");
            let gone: BTreeSet<String> = all
                .keys()
                .filter(|k| !after.contains(*k))
                .cloned()
                .collect();
            if mode == "limit" {
                assert_eq!(deleted, limit.min(expected.len()) as i64, "{what}");
                assert!(gone.is_subset(&expected), "{what}: {gone:?}");
                assert_eq!(gone.len() as i64, deleted, "{what}");
            } else {
                assert_eq!(gone, expected, "{what}");
                assert_eq!(deleted, expected.len() as i64, "{what}");
            }
            redis::cmd("MULTI").query::<()>(&mut watcher).unwrap();
            redis::cmd("PING").query::<()>(&mut watcher).unwrap();
            let exec: redis::Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
            assert_ne!(
                exec,
                redis::Value::Nil,
                "{what}: {left_alone} was signalled"
            );
            let idle: i64 = redis::cmd("OBJECT")
                .arg("IDLETIME")
                .arg(&left_alone)
                .query(&mut con)
                .unwrap();
            assert!(idle >= 1000, "{what}: {left_alone} was touched");
            compared += 1;
        }
    }
    assert_eq!(compared, cases.len() * 3);
}

#[test]
fn minsize_is_refused_where_memory_usage_is_renamed_away() {
    let server = Server::start_with(common::ServerOptions {
        extra_args: vec!["--rename-command".into(), "MEMORY".into(), "".into()],
        ..Default::default()
    });
    let mut con = server.conn();
    common::ops::populate(&mut con, 10, "k");
    let e = clear(&mut con, &[b"k:*", b"MINSIZE", b"10"]).unwrap_err();
    assert_eq!(
        e.detail(),
        Some("MINSIZE needs the MEMORY USAGE command, which this server refuses"),
        "{e}"
    );
    assert_eq!(dbsize(&mut con), 10);
    // MINSIZE 0 filters nothing, so it needs no MEMORY USAGE.
    let r = run(&mut con, &["k:*", "MINSIZE", "0"]);
    assert_eq!(r["deleted"], 10, "{r:?}");
}
