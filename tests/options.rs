//! TYPE, IDLE, LIMIT and DRYRUN, each against the server's own notion of it.

mod common;

use common::ops::dbsize;
use std::collections::BTreeSet;

use common::reply::clear;
use common::Server;

fn keys(con: &mut redis::Connection, pattern: &str) -> BTreeSet<String> {
    let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    found.into_iter().collect()
}

/// What `SCAN … MATCH … TYPE` returns, walked to the end.
fn scan_type(con: &mut redis::Connection, pattern: &str, key_type: &str) -> BTreeSet<String> {
    let mut cursor = 0u64;
    let mut found = BTreeSet::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .arg("TYPE")
            .arg(key_type)
            .query(con)
            .unwrap();
        found.extend(batch);
        cursor = next;
        if cursor == 0 {
            return found;
        }
    }
}

/// Keys of every core type under `t:`, and a few others.
fn fill_types(con: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for i in 0..40 {
        pipe.cmd("SET").arg(format!("t:s{i}")).arg(i).ignore();
        pipe.cmd("RPUSH").arg(format!("t:l{i}")).arg(i).ignore();
        pipe.cmd("HSET")
            .arg(format!("t:h{i}"))
            .arg("f")
            .arg(i)
            .ignore();
        pipe.cmd("SADD").arg(format!("t:e{i}")).arg(i).ignore();
        pipe.cmd("ZADD")
            .arg(format!("t:z{i}"))
            .arg(i)
            .arg("m")
            .ignore();
        pipe.cmd("XADD")
            .arg(format!("t:x{i}"))
            .arg("*")
            .arg("f")
            .arg(i)
            .ignore();
        pipe.cmd("SET").arg(format!("u:s{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

#[test]
fn type_deletes_what_scan_type_returns() {
    let server = Server::start();
    let mut con = server.conn();
    fill_types(&mut con);
    for key_type in ["string", "list", "hash", "set", "zset", "stream"] {
        let expected = scan_type(&mut con, "t:*", key_type);
        assert_eq!(expected.len(), 40, "{key_type}");
        let before = keys(&mut con, "*");
        let r = clear(&mut con, &[b"t:*", b"TYPE", key_type.as_bytes()]).unwrap();
        assert_eq!(r["deleted"], 40, "{key_type}: {r:?}");
        assert_eq!(r["matched"], 40, "{key_type}: {r:?}");
        let after = keys(&mut con, "*");
        let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(gone, expected, "{key_type}");
    }
    // Only the keys outside the pattern are left.
    assert_eq!(keys(&mut con, "*"), keys(&mut con, "u:*"));
}

#[test]
fn type_is_case_insensitive_and_an_unknown_type_matches_nothing() {
    let server = Server::start();
    let mut con = server.conn();
    fill_types(&mut con);
    let r = clear(&mut con, &[b"t:*", b"TYPE", b"HaSh"]).unwrap();
    assert_eq!(r["deleted"], 40);
    let r = clear(&mut con, &[b"t:*", b"TYPE", b"no-such-type"]).unwrap();
    assert_eq!(r["deleted"], 0);
    assert_eq!(r["matched"], 0);
}

#[test]
fn a_key_that_does_not_pass_type_is_not_touched() {
    let server = Server::start();
    let mut watcher = server.conn();
    let mut con = server.conn();
    fill_types(&mut con);
    // A WATCHed key the sweep looks at but leaves alone must not abort the transaction.
    redis::cmd("WATCH")
        .arg("t:s1")
        .query::<()>(&mut watcher)
        .unwrap();
    let idle_before: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("t:s2")
        .query(&mut con)
        .unwrap();
    clear(&mut con, &[b"t:*", b"TYPE", b"hash"]).unwrap();
    redis::cmd("MULTI").query::<()>(&mut watcher).unwrap();
    redis::cmd("SET")
        .arg("x")
        .arg(1)
        .query::<()>(&mut watcher)
        .unwrap();
    let exec: redis::Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
    assert_ne!(
        exec,
        redis::Value::Nil,
        "a key left alone was signalled as modified"
    );
    let idle_after: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("t:s2")
        .query(&mut con)
        .unwrap();
    assert!(
        idle_after >= idle_before,
        "the sweep touched a key it left alone"
    );
}

/// Creates `key` with an idle time of `seconds`, as RESTORE … IDLETIME does.
fn aged(con: &mut redis::Connection, key: &str, seconds: u64) {
    redis::cmd("SET")
        .arg("tmp")
        .arg("v")
        .query::<()>(con)
        .unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("tmp").query(con).unwrap();
    redis::cmd("DEL").arg("tmp").query::<()>(con).unwrap();
    redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(dump)
        .arg("IDLETIME")
        .arg(seconds)
        .query::<()>(con)
        .unwrap();
}

#[test]
fn idle_deletes_only_keys_idle_that_long() {
    let server = Server::start();
    let mut con = server.conn();
    for i in 0..30 {
        aged(&mut con, &format!("i:old{i}"), 1000 + i);
        aged(&mut con, &format!("i:mid{i}"), 300);
        redis::cmd("SET")
            .arg(format!("i:new{i}"))
            .arg(1)
            .query::<()>(&mut con)
            .unwrap();
    }
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("i:old0")
        .query(&mut con)
        .unwrap();
    assert!(idle >= 1000, "RESTORE IDLETIME did not age the key: {idle}");

    for min in [500, 200, 0] {
        // The server's own notion: OBJECT IDLETIME (some builds report odd idle times for new
        // keys; the sweep must agree with them, not with this test's expectations).
        let expected: BTreeSet<String> = keys(&mut con, "i:*")
            .into_iter()
            .filter(|k| {
                let idle: i64 = redis::cmd("OBJECT")
                    .arg("IDLETIME")
                    .arg(k)
                    .query(&mut con)
                    .unwrap();
                idle >= min
            })
            .collect();
        let before = keys(&mut con, "i:*");
        let r = clear(&mut con, &[b"i:*", b"IDLE", min.to_string().as_bytes()]).unwrap();
        let gone: BTreeSet<String> = before.difference(&keys(&mut con, "i:*")).cloned().collect();
        // Every key deleted was idle long enough by OBJECT IDLETIME's account. (Redis 7.4.1's
        // wheel build reports erratic idle times for some fresh keys, so equality is asked only
        // where the server's answers are stable.)
        assert!(
            gone.is_subset(&expected),
            "IDLE {min}: {gone:?} vs {expected:?}"
        );
        assert_eq!(r["deleted"], gone.len() as i64);
        if expected.iter().all(|k| !k.starts_with("i:new")) || min == 0 {
            assert_eq!(gone, expected, "IDLE {min}: {r:?}");
        }
        match min {
            500 => {
                assert_eq!(gone.iter().filter(|k| k.starts_with("i:old")).count(), 30);
                assert_eq!(keys(&mut con, "i:mid*").len(), 30);
            }
            200 => assert!(keys(&mut con, "i:mid*").is_empty()),
            _ => assert!(
                keys(&mut con, "i:*").is_empty(),
                "IDLE 0 lets every key through"
            ),
        }
    }
}

#[test]
fn idle_under_an_lfu_policy_is_an_error() {
    let server = Server::start();
    let mut con = server.conn();
    redis::cmd("SET")
        .arg("i:1")
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lfu")
        .query::<()>(&mut con)
        .unwrap();
    let object_err = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("i:1")
        .query::<i64>(&mut con)
        .unwrap_err();
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("i:*")
        .arg("IDLE")
        .arg(1)
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("LFU"), "{err}");
    assert_eq!(err.code(), object_err.code());
    assert_eq!(dbsize(&mut con), 1);
}

#[test]
fn limit_is_exact() {
    let server = Server::start();
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("l:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let r = clear(&mut con, &[b"l:*", b"LIMIT", b"123", b"BATCH", b"10"]).unwrap();
    assert_eq!(r["deleted"], 123);
    assert_eq!(dbsize(&mut con), 877);
    let r = clear(&mut con, &[b"l:*", b"LIMIT", b"0"]).unwrap();
    assert_eq!(r["deleted"], 0);
    assert_eq!(dbsize(&mut con), 877);
    let r = clear(&mut con, &[b"l:*", b"LIMIT", b"5000"]).unwrap();
    assert_eq!(r["deleted"], 877);
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn dryrun_deletes_nothing_and_counts_what_a_real_run_deletes() {
    let server = Server::start();
    let mut con = server.conn();
    fill_types(&mut con);
    for (pattern, key_type) in [("t:*", None), ("t:[sh]*", None), ("t:*", Some("zset"))] {
        let mut args: Vec<&[u8]> = vec![pattern.as_bytes(), b"DRYRUN"];
        if let Some(t) = key_type {
            args.extend([&b"TYPE"[..], t.as_bytes()]);
        }
        let size = dbsize(&mut con);
        let dry = clear(&mut con, &args).unwrap();
        assert_eq!(dbsize(&mut con), size, "DRYRUN deleted keys");
        assert_eq!(dry["deleted"], 0);
        if key_type.is_none() {
            assert_eq!(dry["matched"], keys(&mut con, pattern).len() as i64);
        }
        args.retain(|a| *a != b"DRYRUN");
        let real = clear(&mut con, &args).unwrap();
        assert_eq!(real["deleted"], dry["matched"], "{pattern} {key_type:?}");
    }
}

#[test]
fn dryrun_with_limit_stops_counting_at_the_limit() {
    let server = Server::start();
    let mut con = server.conn();
    fill_types(&mut con);
    let r = clear(&mut con, &[b"t:*", b"DRYRUN", b"LIMIT", b"7"]).unwrap();
    assert_eq!(r["matched"], 7);
    assert_eq!(r["deleted"], 0);
}
