//! What happens around a running sweep: other clients keep being served, and a disconnect,
//! FLUSHALL, SWAPDB, CLIENT PAUSE WRITE or a role change never crash the server nor make a
//! sweep touch keys it must not.

mod common;

use common::ops::{blocked_clients, dbsize, populate};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::reply::clear;
use common::{wait_until, Server};

const WAIT: Duration = Duration::from_secs(30);

type SweepResult = redis::RedisResult<BTreeMap<String, i64>>;

/// Starts a sweep on its own connection (in database `db`) and waits until it is running.
fn sweep_in_background(server: &Server, db: i64, args: &[&str]) -> JoinHandle<SweepResult> {
    let client = server.client();
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let handle = thread::spawn(move || {
        let mut con = client.get_connection().unwrap();
        con.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        clear(&mut con, &refs)
    });
    wait_until("the sweep to block its client", WAIT, || {
        blocked_clients(server) == 1 || handle.is_finished()
    });
    assert!(
        !handle.is_finished(),
        "the sweep ended before the test could interrupt it"
    );
    handle
}

#[test]
fn other_clients_are_served_while_a_large_sweep_runs() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 300_000, "big:");
    populate(&mut con, 50_000, "keep:");
    let sweep = sweep_in_background(&server, 0, &["big:*"]);
    let mut pings = 0u32;
    let mut slowest = Duration::ZERO;
    while !sweep.is_finished() {
        let t = Instant::now();
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
        slowest = slowest.max(t.elapsed());
        pings += 1;
    }
    let r = sweep.join().unwrap().unwrap();
    assert_eq!(r["deleted"], 300_000);
    assert_eq!(dbsize(&mut con), 50_000);
    // A guard against a server that stops answering, not a latency goal (that is `make bench`).
    assert!(pings >= 10, "only {pings} PINGs answered during the sweep");
    assert!(
        slowest < Duration::from_secs(1),
        "a PING waited {slowest:?}"
    );
    eprintln!("{pings} PINGs during the sweep, slowest {slowest:?}");
}

#[test]
fn a_client_that_disconnects_cancels_its_sweep() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 300_000, "d:");
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(b"*4\r\n$11\r\nSWEEP.CLEAR\r\n$3\r\nd:*\r\n$5\r\nBATCH\r\n$1\r\n1\r\n")
        .unwrap();
    wait_until("the sweep to block its client", WAIT, || {
        blocked_clients(&server) == 1
    });
    drop(raw);
    wait_until("the cancelled sweep to release its client", WAIT, || {
        blocked_clients(&server) == 0
    });
    wait_until("the log line of the cancelled sweep", WAIT, || {
        server.log().contains("cancelled")
    });
    let left = dbsize(&mut con);
    assert!(left > 0, "the sweep went on after its client left");
    // Nothing deletes keys any more.
    let again = dbsize(&mut con);
    assert_eq!(left, again);
}

#[test]
fn flushall_during_a_sweep_ends_it() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "f:");
    let sweep = sweep_in_background(&server, 0, &["f:*", "BATCH", "1"]);
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    let err = sweep.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("flushed"), "{err}");
    // The server is fine and new keys are left alone.
    redis::cmd("SET")
        .arg("f:new")
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(dbsize(&mut con), 1);
}

#[test]
fn flushall_async_during_a_sweep_ends_it() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "f:");
    let sweep = sweep_in_background(&server, 0, &["f:*", "BATCH", "1"]);
    redis::cmd("FLUSHALL")
        .arg("ASYNC")
        .query::<()>(&mut con)
        .unwrap();
    let err = sweep.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("flushed"), "{err}");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn swapdb_during_a_sweep_never_touches_the_other_dataset() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "a:");
    redis::cmd("SELECT").arg(1).query::<()>(&mut con).unwrap();
    populate(&mut con, 1_000, "a:");
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();

    let sweep = sweep_in_background(&server, 0, &["a:*", "BATCH", "1"]);
    redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    let err = sweep.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("swapped"), "{err}");
    // Database 0 now holds what database 1 held: all of it is still there.
    assert_eq!(dbsize(&mut con), 1_000);
}

#[test]
fn a_sweep_writes_nothing_while_writes_are_paused() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100_000, "p:");
    let sweep = sweep_in_background(&server, 0, &["p:*", "BATCH", "5"]);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .arg("WRITE")
        .query::<()>(&mut con)
        .unwrap();
    // The slice running when the pause came may still end; from then on nothing changes.
    let first = dbsize(&mut con);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(250) {
        assert_eq!(
            dbsize(&mut con),
            first,
            "a key was deleted during CLIENT PAUSE WRITE"
        );
    }
    assert!(first > 0);
    let r = sweep.join().unwrap().unwrap();
    assert_eq!(r["deleted"], 100_000);
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn a_node_that_becomes_a_replica_ends_its_sweeps() {
    let other = Server::start();
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "r:");
    let sweep = sweep_in_background(&server, 0, &["r:*", "BATCH", "1"]);
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port)
        .query::<()>(&mut con)
        .unwrap();
    // The server itself unblocks blocked clients when it turns into a replica (-UNBLOCKED);
    // either way the sweep must end.
    let err = sweep.join().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("aborted") || err.contains("UNBLOCKED"),
        "{err}"
    );
    wait_until("the sweep to end", WAIT, || {
        let log = server.log();
        log.contains("of 'r:*' on db 0 cancelled") || log.contains("of 'r:*' on db 0 aborted")
    });
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_flush_before_a_sweep_starts_does_not_end_it() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 1_000, "old:");
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    populate(&mut con, 1_000, "new:");
    let r = clear(&mut con, &[b"new:*"]).unwrap();
    assert_eq!(r["deleted"], 1_000);
}

#[test]
fn several_sweeps_run_at_once() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 20_000, "x:");
    populate(&mut con, 20_000, "y:");
    populate(&mut con, 20_000, "z:");
    let handles: Vec<_> = ["x:*", "y:*", "z:*"]
        .into_iter()
        .map(|p| {
            let client = server.client();
            thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                clear(&mut c, &[p.as_bytes(), b"BATCH", b"50"]).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap()["deleted"], 20_000);
    }
    assert_eq!(dbsize(&mut con), 0);
}
