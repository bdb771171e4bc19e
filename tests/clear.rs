//! SWEEP.CLEAR against a real server: what it deletes, what it replies, what it refuses.

mod common;

use common::ops::dbsize;
use std::time::Duration;

use common::reply::{clear, ordered, FIELDS};
use common::{wait_until, Server};
use redis::Value;

/// Writes `n` string keys named `{prefix}{i}` in one pipeline.
fn fill(con: &mut redis::Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

#[test]
fn deletes_exactly_the_matching_keys_and_reports_counts() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "image_proxy:", 3000);
    fill(&mut con, "other:", 2000);
    fill(&mut con, "image_proxy", 5); // no colon: must stay

    let r = clear(&mut con, &[b"image_proxy:*"]).unwrap();
    assert_eq!(r["scanned"], 5005);
    assert_eq!(r["matched"], 3000);
    assert_eq!(r["deleted"], 3000);
    assert_eq!(r["denied"], 0);
    assert_eq!(r["expired"], 0);
    assert!(r["slices"] >= 6, "3000 deletions in batches of 500: {r:?}");
    assert_eq!(dbsize(&mut con), 2005);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("image_proxy:*")
        .query(&mut con)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let other: i64 = redis::cmd("EXISTS")
        .arg("other:0")
        .arg("other:1999")
        .arg("image_proxy0")
        .query(&mut con)
        .unwrap();
    assert_eq!(other, 3);
}

#[test]
fn reply_is_a_map_in_resp3_and_field_value_pairs_in_resp2() {
    let server = Server::start();
    let mut resp2 = server.conn();
    fill(&mut resp2, "a:", 10);
    let v: Value = redis::cmd("SWEEP.CLEAR")
        .arg("a:*")
        .query(&mut resp2)
        .unwrap();
    assert!(
        matches!(v, Value::Array(ref items) if items.len() == 14),
        "{v:?}"
    );
    let names: Vec<String> = ordered(&v).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, FIELDS);

    if server.server_major_minor() < (7, 0) {
        return; // no RedisModule_ReplyWithMap before 7.0: the flat array is all there is
    }
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).unwrap();
    let mut resp3 = client.get_connection().unwrap();
    fill(&mut resp3, "b:", 10);
    let v: Value = redis::cmd("SWEEP.CLEAR")
        .arg("b:*")
        .query(&mut resp3)
        .unwrap();
    assert!(
        matches!(v, Value::Map(ref pairs) if pairs.len() == 7),
        "{v:?}"
    );
    let names: Vec<String> = ordered(&v).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, FIELDS);
}

#[test]
fn batch_bounds_the_deletions_of_each_slice() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "k:", 1000);
    let r = clear(&mut con, &[b"k:*", b"BATCH", b"10", b"COUNT", b"50"]).unwrap();
    assert_eq!(r["deleted"], 1000);
    assert!(
        r["slices"] >= 100,
        "1000 deletions by 10 need 100 slices: {r:?}"
    );
}

#[test]
fn works_in_the_selected_database_only() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "k:", 100);
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    fill(&mut con, "k:", 40);
    let r = clear(&mut con, &[b"k:*"]).unwrap();
    assert_eq!(r["deleted"], 40);
    assert_eq!(dbsize(&mut con), 0);
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 100);
}

#[test]
fn binary_and_empty_key_names() {
    let server = Server::start();
    let mut con = server.conn();
    let names: [&[u8]; 5] = [b"", b"\x00bin\xff", b"\x00bin\x00", b"bin", b"\xff\xfe"];
    for n in names {
        redis::cmd("SET")
            .arg(n)
            .arg(1)
            .query::<()>(&mut con)
            .unwrap();
    }
    let r = clear(&mut con, &[b"\x00bin?"]).unwrap();
    assert_eq!(r["deleted"], 2);
    // `*` matches every key, the empty name included, as KEYS * does.
    let r = clear(&mut con, &[b"*"]).unwrap();
    assert_eq!(r["deleted"], 3);
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn expired_keys_are_counted_apart_from_deleted() {
    let server = Server::start();
    let mut con = server.conn();
    // Stop the server from reclaiming them on its own so the sweep finds them.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    fill(&mut con, "live:", 50);
    for i in 0..30 {
        redis::cmd("SET")
            .arg(format!("live:gone{i}"))
            .arg(1)
            .arg("PX")
            .arg(1)
            .query::<()>(&mut con)
            .unwrap();
    }
    // Reading an expired key reclaims it, so watch another key set last with the same TTL.
    redis::cmd("SET")
        .arg("probe")
        .arg(1)
        .arg("PX")
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    wait_until(
        "the keys to be past their expiry",
        Duration::from_secs(5),
        || {
            let ttl: i64 = redis::cmd("PTTL").arg("probe").query(&mut con).unwrap();
            ttl == -2
        },
    );
    let r = clear(&mut con, &[b"live:*"]).unwrap();
    assert_eq!(r["deleted"], 50, "{r:?}");
    assert_eq!(r["expired"], 30, "{r:?}");
    assert_eq!(r["matched"], 80, "{r:?}");
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn del_notifications_match_deleted() {
    let server = Server::start();
    let mut con = server.conn();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Eg")
        .query::<()>(&mut con)
        .unwrap();
    fill(&mut con, "n:", 700);
    fill(&mut con, "m:", 300);

    let mut sub_con = server.conn();
    let mut sub = sub_con.as_pubsub();
    sub.psubscribe("__keyevent@*__:del").unwrap();
    sub.subscribe("marker").unwrap();

    let r = clear(&mut con, &[b"n:*", b"BATCH", b"64"]).unwrap();
    assert_eq!(r["deleted"], 700);
    // Messages on one connection arrive in order: once the marker is here, every del
    // notification of the sweep has been delivered.
    redis::cmd("PUBLISH")
        .arg("marker")
        .arg("end")
        .query::<()>(&mut con)
        .unwrap();
    let mut dels = 0;
    loop {
        let msg = sub.get_message().unwrap();
        if msg.get_channel_name() == "marker" {
            break;
        }
        let key: Vec<u8> = msg.get_payload().unwrap();
        assert!(key.starts_with(b"n:"), "{}", String::from_utf8_lossy(&key));
        dels += 1;
    }
    assert_eq!(dels, 700);
}

#[test]
fn a_watched_key_that_a_sweep_deletes_fails_exec() {
    let server = Server::start();
    let mut watcher = server.conn();
    let mut sweeper = server.conn();
    fill(&mut sweeper, "w:", 10);
    redis::cmd("WATCH")
        .arg("w:3")
        .query::<()>(&mut watcher)
        .unwrap();
    clear(&mut sweeper, &[b"w:*"]).unwrap();
    redis::cmd("MULTI").query::<()>(&mut watcher).unwrap();
    redis::cmd("SET")
        .arg("x")
        .arg(1)
        .query::<()>(&mut watcher)
        .unwrap();
    let exec: Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
    assert_eq!(exec, Value::Nil);

    // A watched key the sweep does not match leaves the transaction alone.
    fill(&mut sweeper, "w:", 10);
    redis::cmd("WATCH")
        .arg("keep")
        .query::<()>(&mut watcher)
        .unwrap();
    clear(&mut sweeper, &[b"w:*"]).unwrap();
    redis::cmd("MULTI").query::<()>(&mut watcher).unwrap();
    redis::cmd("SET")
        .arg("x")
        .arg(2)
        .query::<()>(&mut watcher)
        .unwrap();
    let exec: Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
    assert_ne!(exec, Value::Nil);
}

/// Runs a command that must fail and returns its error text.
fn error_of(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(con) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} succeeded: {v:?}"),
    }
}

#[test]
fn bad_arguments_are_errors_that_delete_nothing() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "e:", 100);
    let cases: &[(&[&str], &str)] = &[
        (&["SWEEP.CLEAR"], "wrong number of arguments"),
        (&["SWEEP.CLEAR", "e:*", "FOO"], "unknown option 'FOO'"),
        (&["SWEEP.CLEAR", "e:*", "COUNT"], "COUNT needs a value"),
        (&["SWEEP.CLEAR", "e:*", "BATCH"], "BATCH needs a value"),
        (
            &["SWEEP.CLEAR", "e:*", "COUNT", "1", "COUNT", "2"],
            "COUNT given twice",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "batch", "1", "BATCH", "2"],
            "BATCH given twice",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "COUNT", "abc"],
            "COUNT must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "COUNT", "0"],
            "COUNT must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "COUNT", "-1"],
            "COUNT must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "BATCH", "0"],
            "BATCH must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "BATCH", "-7"],
            "BATCH must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "BATCH", "1.5"],
            "BATCH must be a positive integer",
        ),
        (
            &["SWEEP.CLEAR", "e:*", "BATCH", "99999999999999999999"],
            "BATCH must be a positive integer",
        ),
    ];
    for (args, expected) in cases {
        let err = error_of(&mut con, args);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(dbsize(&mut con), 100, "{args:?} deleted keys");
    }
}

#[test]
fn errors_reach_the_client_with_their_code() {
    let server = Server::start();
    let mut con = server.conn();
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("x")
        .arg("NOPE")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("ERR"), "{err:?}");
}

#[test]
fn refuses_to_block_inside_multi_and_scripts() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "t:", 100);

    redis::cmd("MULTI").query::<()>(&mut con).unwrap();
    redis::cmd("SWEEP.CLEAR")
        .arg("t:*")
        .query::<()>(&mut con)
        .unwrap();
    // The client library turns an EXEC reply holding an error into an error.
    let err = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert!(err.to_string().contains("MULTI"), "{err}");
    assert_eq!(dbsize(&mut con), 100);

    let err = error_of(
        &mut con,
        &["EVAL", "return redis.call('SWEEP.CLEAR', 't:*')", "0"],
    );
    assert!(err.contains("ASYNC"), "{err}");
    assert_eq!(dbsize(&mut con), 100);

    if server.server_major_minor() >= (7, 0) {
        let lib = "#!lua name=sweeplib\n\
                   redis.register_function('sw', function(keys, args) \
                   return redis.call('SWEEP.CLEAR', 't:*') end)";
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(lib)
            .query::<()>(&mut con)
            .unwrap();
        let err = error_of(&mut con, &["FCALL", "sw", "0"]);
        assert!(err.contains("ASYNC"), "{err}");
        assert_eq!(dbsize(&mut con), 100);
    }
}

#[test]
fn a_replica_answers_readonly() {
    let primary = Server::start();
    let replica = Server::start_with(common::ServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..Default::default()
    });
    let mut con = replica.conn();
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("*")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err:?}");
}

#[test]
fn the_log_has_one_line_per_sweep() {
    let server = Server::start();
    let mut con = server.conn();
    fill(&mut con, "log:", 20);
    clear(&mut con, &[b"log:*"]).unwrap();
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("of 'log:*'")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("done") && lines[0].contains("deleted 20"),
        "{}",
        lines[0]
    );
}
