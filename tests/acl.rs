//! SPEC §2 guarantee 6: the caller's ACL is honoured, key by key, and looked up again in every
//! slice.

mod common;

use common::ops::dbsize;
use std::time::Duration;

use common::reply::clear;
use common::{wait_until, Server};
use redis::Value;

fn fill(con: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET").arg(format!("cache:{i}")).arg(i).ignore();
        pipe.cmd("SET").arg(format!("user:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

fn acl_setuser(con: &mut redis::Connection, rules: &[&str]) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER");
    for r in rules {
        cmd.arg(*r);
    }
    cmd.query::<()>(con).unwrap();
}

fn login(server: &Server, user: &str) -> redis::Connection {
    let mut con = server.conn();
    redis::cmd("AUTH")
        .arg(user)
        .arg("pw")
        .query::<()>(&mut con)
        .unwrap();
    con
}

fn has_key_acl(server: &Server) -> bool {
    server.server_major_minor() >= (7, 0)
}

#[test]
fn keys_the_user_may_not_write_are_denied_and_stay() {
    let server = Server::start();
    if !has_key_acl(&server) {
        return;
    }
    let mut admin = server.conn();
    fill(&mut admin);
    // Three ways of allowing writes to cache:* only.
    let rule_sets: [&[&str]; 3] = [
        &["on", ">pw", "~cache:*", "+@all"],
        &["on", ">pw", "%W~cache:*", "%R~*", "+@all"],
        &["on", ">pw", "%RW~cache:*", "+@all"],
    ];
    for (n, rules) in rule_sets.iter().enumerate() {
        let name = format!("u{n}");
        let mut all = vec![name.as_str()];
        all.extend_from_slice(rules);
        acl_setuser(&mut admin, &all);
        let mut con = login(&server, &name);
        let r = clear(&mut con, &[b"*", b"BATCH", b"50"]).unwrap();
        assert_eq!(r["deleted"], 300, "{rules:?}: {r:?}");
        assert_eq!(r["denied"], 300, "{rules:?}: {r:?}");
        assert_eq!(r["matched"], 600, "{rules:?}: {r:?}");
        assert_eq!(dbsize(&mut admin), 300);
        let left: Vec<String> = redis::cmd("KEYS").arg("cache:*").query(&mut admin).unwrap();
        assert!(left.is_empty());
        fill(&mut admin);
    }
}

#[test]
fn a_read_only_user_deletes_nothing() {
    let server = Server::start();
    if !has_key_acl(&server) {
        return;
    }
    let mut admin = server.conn();
    fill(&mut admin);
    acl_setuser(&mut admin, &["reader", "on", ">pw", "%R~*", "+@all"]);
    let mut con = login(&server, "reader");
    let r = clear(&mut con, &[b"*"]).unwrap();
    assert_eq!(r["deleted"], 0);
    assert_eq!(r["denied"], 600);
    assert_eq!(dbsize(&mut admin), 600);
    // DRYRUN reports the same.
    let r = clear(&mut con, &[b"*", b"DRYRUN"]).unwrap();
    assert_eq!(r["denied"], 600);
}

#[test]
fn a_user_without_the_command_gets_noperm() {
    let server = Server::start();
    let mut admin = server.conn();
    fill(&mut admin);
    acl_setuser(
        &mut admin,
        &["nosweep", "on", ">pw", "~*", "+@all", "-sweep.clear"],
    );
    let mut con = login(&server, "nosweep");
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("*")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err:?}");
    assert_eq!(dbsize(&mut admin), 600);
}

fn job_state(con: &mut redis::Connection, id: i64) -> (String, Vec<Value>) {
    let v: Vec<Value> = redis::cmd("SWEEP.STATUS").arg(id).query(con).unwrap();
    let state = v
        .chunks(2)
        .find(|p| matches!(&p[0], Value::BulkString(k) if k == b"state"))
        .map(|p| match &p[1] {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default();
    (state, v)
}

#[test]
fn a_user_deleted_mid_sweep_ends_the_sweep() {
    let server = Server::start();
    if !has_key_acl(&server) {
        return;
    }
    let mut admin = server.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(200_000)
        .arg("big")
        .query::<()>(&mut admin)
        .unwrap();
    acl_setuser(&mut admin, &["temp", "on", ">pw", "~*", "+@all"]);
    let mut con = login(&server, "temp");
    let id: i64 = redis::cmd("SWEEP.CLEAR")
        .arg("big:*")
        .arg("BATCH")
        .arg(1)
        .arg("ASYNC")
        .query(&mut con)
        .unwrap();
    redis::cmd("ACL")
        .arg("DELUSER")
        .arg("temp")
        .query::<()>(&mut admin)
        .unwrap();
    let mut last = String::new();
    wait_until("the sweep to end", Duration::from_secs(30), || {
        last = job_state(&mut admin, id).0;
        last != "running"
    });
    assert_eq!(last, "aborted");
    assert!(dbsize(&mut admin) > 0);
    assert!(
        server.log().contains("no longer exists"),
        "{}",
        server.log()
    );
}

#[test]
fn a_user_narrowed_mid_sweep_deletes_only_what_it_may_from_then_on() {
    let server = Server::start();
    if !has_key_acl(&server) {
        return;
    }
    let mut admin = server.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(200_000)
        .arg("big")
        .query::<()>(&mut admin)
        .unwrap();
    acl_setuser(&mut admin, &["narrow", "on", ">pw", "~*", "+@all"]);
    let mut con = login(&server, "narrow");
    let id: i64 = redis::cmd("SWEEP.CLEAR")
        .arg("big:*")
        .arg("BATCH")
        .arg(10)
        .arg("ASYNC")
        .query(&mut con)
        .unwrap();
    acl_setuser(&mut admin, &["narrow", "resetkeys", "~other:*"]);
    let mut fields = Vec::new();
    wait_until("the sweep to end", Duration::from_secs(60), || {
        let (state, v) = job_state(&mut admin, id);
        fields = v;
        state == "done"
    });
    let get = |name: &[u8]| -> i64 {
        fields
            .chunks(2)
            .find(|p| matches!(&p[0], Value::BulkString(k) if k == name))
            .and_then(|p| match p[1] {
                Value::Int(i) => Some(i),
                _ => None,
            })
            .unwrap()
    };
    let (deleted, denied) = (get(b"deleted"), get(b"denied"));
    assert!(
        denied > 0,
        "no key denied after the user lost its permissions"
    );
    assert_eq!(deleted + denied, 200_000);
    assert_eq!(dbsize(&mut admin), 200_000 - deleted);
}
