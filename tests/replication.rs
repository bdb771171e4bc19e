//! A sweep's deletions reach replicas and the AOF as `UNLINK`s: a replica that follows the
//! primary ends with the same dataset, and so does the primary restarted from its AOF.

mod common;

use common::ops::dbsize;
use std::time::Duration;

use common::reply::clear;
use common::{wait_until, Server, ServerOptions};

fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
}

/// Keys of every core type, in two databases, written with real commands (so they replicate).
fn fill(con: &mut redis::Connection) {
    for db in [0, 2] {
        redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
        let mut pipe = redis::pipe();
        for i in 0..3000 {
            pipe.cmd("SET").arg(format!("cache:{i}")).arg(i).ignore();
            pipe.cmd("SET").arg(format!("keep:{i}")).arg(i).ignore();
        }
        for i in 0..300 {
            pipe.cmd("HSET")
                .arg(format!("cache:h{i}"))
                .arg("f")
                .arg(i)
                .ignore();
            pipe.cmd("RPUSH").arg(format!("cache:l{i}")).arg(i).ignore();
            pipe.cmd("SADD").arg(format!("keep:s{i}")).arg(i).ignore();
            pipe.cmd("ZADD")
                .arg(format!("session:{i}"))
                .arg(i)
                .arg("m")
                .ignore();
        }
        // Large values go through lazy free.
        for i in 0..5 {
            let members: Vec<String> = (0..2000).map(|m| m.to_string()).collect();
            pipe.cmd("SADD")
                .arg(format!("cache:big{i}"))
                .arg(members)
                .ignore();
        }
        pipe.query::<()>(con).unwrap();
    }
    redis::cmd("SELECT").arg(0).query::<()>(con).unwrap();
}

fn sweep_some(con: &mut redis::Connection) {
    for db in [0, 2] {
        redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
        let r = clear(con, &[b"cache:*", b"BATCH", b"100"]).unwrap();
        assert_eq!(r["deleted"], 3000 + 300 + 300 + 5, "{r:?}");
        let r = clear(con, &[b"session:[0-4]*"]).unwrap();
        assert!(r["deleted"] > 0);
        let r = clear(con, &[b"nothing:*"]).unwrap();
        assert_eq!(r["deleted"], 0);
        // Several patterns and the filters that call into the server (MEMORY USAGE).
        let r = clear(
            con,
            &[
                b"keep:2[0-4]?",
                b"OR",
                b"session:*",
                b"EXCEPT",
                b"session:9*",
                b"MINSIZE",
                b"1",
                b"PERSISTENT",
                b"BATCH",
                b"7",
            ],
        )
        .unwrap();
        assert!(r["deleted"] > 50, "{r:?}");
    }
    redis::cmd("SELECT").arg(0).query::<()>(con).unwrap();
}

#[test]
fn a_replica_ends_with_the_primarys_digest() {
    let primary = Server::start();
    let replica = Server::start_with(ServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..Default::default()
    });
    wait_until("the replica to sync", Duration::from_secs(30), || {
        replica
            .info_field("replication", "master_link_status")
            .as_deref()
            == Some("up")
    });
    let mut p = primary.conn();
    let mut r = replica.conn();
    fill(&mut p);
    sweep_some(&mut p);
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    let expected = digest(&mut p);
    wait_until(
        "the replica's digest to match",
        Duration::from_secs(30),
        || digest(&mut r) == expected,
    );
    assert_eq!(dbsize(&mut r), dbsize(&mut p));
    assert!(
        dbsize(&mut p) > 3000,
        "the sweeps must leave data to compare"
    );
}

#[test]
fn a_primary_restarted_from_its_aof_has_the_same_digest() {
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec!["--appendonly".into(), "yes".into()],
        ..Default::default()
    });
    let mut con = server.conn();
    fill(&mut con);
    sweep_some(&mut con);
    let before = digest(&mut con);
    let size = dbsize(&mut con);
    drop(con);
    server.restart();
    let mut con = server.conn();
    assert_eq!(digest(&mut con), before);
    assert_eq!(dbsize(&mut con), size);
}
