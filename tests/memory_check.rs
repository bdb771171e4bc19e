//! A sweep-heavy workload for the memory check (`make test-memory`, scripts/test-memory.sh): it
//! runs with `REDIS_SERVER=scripts/valgrind-server.sh`, so every server below runs under valgrind,
//! and the script reads the leak report each one writes when the harness shuts it down.
//!
//! It goes through every path of the module that allocates or frees: sync sweeps with every
//! option, both reply protocols, argument errors, refusals inside MULTI and scripts, expired keys,
//! ACL denials, ASYNC jobs with SWEEP.STATUS and SWEEP.CANCEL, too many jobs, a client that
//! disconnects mid-sweep, FLUSHALL and SWAPDB mid-sweep, MODULE UNLOAD / LOAD / UNLOAD (so what
//! the module still holds after unloading shows up as lost), and a SHUTDOWN with sweeps running.
//!
//! Valgrind makes the server 10-50 times slower, so nothing here asserts on timing, and it runs
//! only when `SWEEP_VALGRIND=1` (test-memory.sh sets it): under `make test` it returns at once.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::ops::{blocked_clients, dbsize, job, populate, start_async, status};
use common::reply::{clear, fields};
use common::{module_path, wait_until, Server, ServerOptions};
use redis::Value;

/// Generous: a server under valgrind is slow.
const WAIT: Duration = Duration::from_secs(120);

fn enabled() -> bool {
    if std::env::var("SWEEP_VALGRIND").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "memory_check: skipped; it runs under valgrind with SWEEP_VALGRIND=1 (make test-memory)"
    );
    false
}

/// A few hundred keys of every core type under `prefix`, some of them large enough that UNLINK
/// frees them on the lazy-free thread.
fn fill_types(con: &mut redis::Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET")
            .arg(format!("{prefix}s:{i}"))
            .arg(format!("value-{i}"))
            .ignore();
        pipe.cmd("RPUSH")
            .arg(format!("{prefix}l:{i}"))
            .arg(i)
            .arg("x")
            .ignore();
        pipe.cmd("HSET")
            .arg(format!("{prefix}h:{i}"))
            .arg("f")
            .arg(i)
            .ignore();
        pipe.cmd("SADD")
            .arg(format!("{prefix}e:{i}"))
            .arg(i)
            .arg("y")
            .ignore();
        pipe.cmd("ZADD")
            .arg(format!("{prefix}z:{i}"))
            .arg(i)
            .arg("m")
            .ignore();
        pipe.cmd("XADD")
            .arg(format!("{prefix}x:{i}"))
            .arg("*")
            .arg("f")
            .arg(i)
            .ignore();
    }
    for i in 0..5 {
        let big_hash: Vec<(String, usize)> = (0..300).map(|f| (format!("f{f}"), f)).collect();
        pipe.cmd("HSET")
            .arg(format!("{prefix}h:big{i}"))
            .arg(big_hash)
            .ignore();
        let big_list: Vec<usize> = (0..300).collect();
        pipe.cmd("RPUSH")
            .arg(format!("{prefix}l:big{i}"))
            .arg(big_list)
            .ignore();
    }
    pipe.query::<()>(con).unwrap();
}

fn sweep(con: &mut redis::Connection, args: &[&str]) -> BTreeMap<String, i64> {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    clear(con, &raw).unwrap_or_else(|e| panic!("SWEEP.CLEAR {args:?}: {e}"))
}

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

fn wait_done(con: &mut redis::Connection, id: i64) -> BTreeMap<String, String> {
    let mut last = BTreeMap::new();
    wait_until("the job to end", WAIT, || {
        last = status(con, id);
        last["state"] != "running"
    });
    last
}

/// Waits until no sweep runs (the module refuses to unload while one does).
fn wait_all_ended(con: &mut redis::Connection) {
    wait_until("every sweep to end", WAIT, || {
        let all: Vec<Value> = redis::cmd("SWEEP.STATUS").query(con).unwrap();
        all.iter().all(|j| job(j)["state"] != "running")
    });
}

/// A blocking sweep on its own connection, started once its client shows as blocked.
fn sweep_in_background(
    server: &Server,
    db: i64,
    args: &[&str],
) -> JoinHandle<redis::RedisResult<BTreeMap<String, i64>>> {
    let client = server.client();
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let handle = thread::spawn(move || {
        let mut con = client.get_connection().unwrap();
        con.set_read_timeout(Some(WAIT)).unwrap();
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        clear(&mut con, &refs)
    });
    wait_until("the sweep to block its client", WAIT, || {
        blocked_clients(server) >= 1 || handle.is_finished()
    });
    handle
}

fn module(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("MODULE");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(con)
}

/// Sync sweeps with every option and both protocols, on keys of every type.
fn sync_sweeps(server: &Server, con: &mut redis::Connection) {
    fill_types(con, "m:", 400);
    let total = dbsize(con);
    assert_eq!(total, 6 * 400 + 10);

    // DRYRUN first: counts without deleting.
    let r = sweep(con, &["m:*", "DRYRUN"]);
    assert_eq!(r["matched"], total, "{r:?}");
    assert_eq!(dbsize(con), total);
    let r = sweep(con, &["m:*", "DRYRUN", "LIMIT", "77", "TYPE", "hash"]);
    assert_eq!(r["matched"], 77, "{r:?}");

    // TYPE, with small COUNT and BATCH so there are many slices.
    let r = sweep(con, &["m:*", "TYPE", "string", "COUNT", "7", "BATCH", "3"]);
    assert_eq!(r["deleted"], 400, "{r:?}");
    let r = sweep(con, &["m:?:*", "type", "LIST", "count", "50"]);
    assert_eq!(r["deleted"], 405, "{r:?}");
    let r = sweep(con, &["m:*", "TYPE", "nosuchtype"]);
    assert_eq!(r["deleted"], 0, "{r:?}");

    // LIMIT.
    let r = sweep(con, &["m:h:*", "LIMIT", "100", "BATCH", "9"]);
    assert_eq!(r["deleted"], 100, "{r:?}");

    // Patterns with classes, escapes, a trailing backslash, an unclosed class.
    for pattern in [
        "m:[ez]:1*",
        "m:[^x]:2?",
        "m:\\x:3*",
        "m:x:[",
        "m:x:\\",
        "m:[a-",
    ] {
        sweep(con, &[pattern, "COUNT", "13"]);
    }

    // RESP3: the reply is a map.
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).unwrap();
    let mut resp3 = client.get_connection().unwrap();
    resp3.set_read_timeout(Some(WAIT)).unwrap();
    let v: Value = redis::cmd("SWEEP.CLEAR")
        .arg("m:z:*")
        .arg("BATCH")
        .arg(1)
        .query(&mut resp3)
        .unwrap();
    assert!(matches!(v, Value::Map(_)), "{v:?}");
    assert!(fields(&v)["deleted"] > 0);

    // The rest, including the large values freed lazily.
    sweep(con, &["m:*"]);
    assert_eq!(dbsize(con), 0);

    // Binary names and the empty name.
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(b"bin:\x00\xff\x80".as_slice())
        .arg(1)
        .ignore();
    pipe.cmd("SET").arg(b"".as_slice()).arg(1).ignore();
    pipe.cmd("SET")
        .arg(b"bin:\xc3\xa9".as_slice())
        .arg(1)
        .ignore();
    pipe.query::<()>(con).unwrap();
    let r = clear(con, &[b"bin:\x00*"]).unwrap();
    assert_eq!(r["deleted"], 1, "{r:?}");
    let r = sweep(con, &["*"]);
    assert_eq!(r["deleted"], 2, "{r:?}");
}

/// IDLE: keys aged with RESTORE … IDLETIME.
fn idle_sweeps(con: &mut redis::Connection) {
    redis::cmd("SET")
        .arg("tmp")
        .arg("v")
        .query::<()>(con)
        .unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("tmp").query(con).unwrap();
    redis::cmd("DEL").arg("tmp").query::<()>(con).unwrap();
    for i in 0..50 {
        redis::cmd("RESTORE")
            .arg(format!("i:old{i}"))
            .arg(0)
            .arg(&dump)
            .arg("IDLETIME")
            .arg(1000)
            .query::<()>(con)
            .unwrap();
        redis::cmd("SET")
            .arg(format!("i:new{i}"))
            .arg(1)
            .query::<()>(con)
            .unwrap();
    }
    let r = sweep(con, &["i:*", "IDLE", "500"]);
    assert_eq!(r["deleted"], 50, "{r:?}");
    let r = sweep(con, &["i:*", "IDLE", "0", "DRYRUN"]);
    assert_eq!(r["matched"], 50, "{r:?}");
    sweep(con, &["i:*"]);
}

/// OR, EXCEPT, MINSIZE (MEMORY USAGE through RedisModule_Call), PERSISTENT and VOLATILE, and a
/// job whose status carries the pattern lists.
fn selective_sweeps(con: &mut redis::Connection) {
    fill_types(con, "s:", 100);
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET")
            .arg(format!("t:{i}"))
            .arg("x".repeat(i * 10))
            .arg("EX")
            .arg(1000)
            .ignore();
        pipe.cmd("SET").arg(format!("t:p{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
    let r = sweep(
        con,
        &[
            "s:h:*", "OR", "s:z:*", "EXCEPT", "*1", "MINSIZE", "0", "DRYRUN",
        ],
    );
    assert_eq!(r["matched"], 184, "{r:?}");
    let r = sweep(
        con,
        &[
            "s:*", "OR", "t:*", "MINSIZE", "500", "COUNT", "11", "BATCH", "5",
        ],
    );
    assert!(r["deleted"] > 0, "{r:?}");
    let r = sweep(con, &["t:*", "VOLATILE", "TYPE", "string"]);
    assert!(r["deleted"] > 0, "{r:?}");
    let id = start_async(con, &["t:*", "OR", "s:*", "EXCEPT", "s:l:*", "PERSISTENT"]);
    let done = wait_done(con, id);
    assert_eq!(done["state"], "done", "{done:?}");
    let v: Value = redis::cmd("SWEEP.STATUS").query(con).unwrap();
    assert!(format!("{v:?}").contains("s:l:*"), "{v:?}");
    sweep(con, &["*"]);
}

/// Keys past their expiry that the server has not reclaimed yet.
fn expired_keys(con: &mut redis::Connection) {
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(con)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET")
            .arg(format!("x:gone{i}"))
            .arg(i)
            .arg("PX")
            .arg(1)
            .ignore();
        pipe.cmd("SET").arg(format!("x:live{i}")).arg(i).ignore();
    }
    pipe.cmd("SET")
        .arg("probe")
        .arg(1)
        .arg("PX")
        .arg(1)
        .ignore();
    pipe.query::<()>(con).unwrap();
    wait_until("the keys to be past their expiry", WAIT, || {
        redis::cmd("PTTL").arg("probe").query::<i64>(con).unwrap() == -2
    });
    let r = sweep(con, &["x:*", "BATCH", "17"]);
    assert_eq!(r["deleted"], 200, "{r:?}");
    assert_eq!(r["expired"], 200, "{r:?}");
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query::<()>(con)
        .unwrap();
}

/// Argument errors, and the refusals where a client cannot be blocked.
fn errors(con: &mut redis::Connection) {
    for (args, expected) in [
        (&["SWEEP.CLEAR"][..], "wrong number of arguments"),
        (&["SWEEP.CLEAR", "e:*", "FOO"], "unknown option"),
        (&["SWEEP.CLEAR", "e:*", "COUNT"], "needs a value"),
        (&["SWEEP.CLEAR", "e:*", "COUNT", "1", "COUNT", "2"], "twice"),
        (&["SWEEP.CLEAR", "e:*", "BATCH", "0"], "positive integer"),
        (&["SWEEP.CLEAR", "e:*", "LIMIT", "-1"], "LIMIT"),
        (&["SWEEP.CLEAR", "e:*", "IDLE", "x"], "IDLE"),
        (&["SWEEP.CLEAR", "e:*", "TYPE"], "TYPE"),
        (&["SWEEP.STATUS", "0"], "positive integer"),
        (&["SWEEP.STATUS", "987654"], "no sweep"),
        (&["SWEEP.STATUS", "1", "2"], "wrong number of arguments"),
        (&["SWEEP.CANCEL"], "wrong number of arguments"),
        (&["SWEEP.CANCEL", "x"], "positive integer"),
        (&["SWEEP.CANCEL", "987654"], "no sweep"),
        (
            &["EVAL", "return redis.call('SWEEP.CLEAR', 'e:*')", "0"],
            "ASYNC",
        ),
    ] {
        let err = error_of(con, args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    redis::cmd("MULTI").query::<()>(con).unwrap();
    redis::cmd("SWEEP.CLEAR")
        .arg("e:*")
        .query::<()>(con)
        .unwrap();
    let err = redis::cmd("EXEC").query::<Value>(con).unwrap_err();
    assert!(err.to_string().contains("MULTI"), "{err}");
    // ASYNC is allowed in a script.
    let id: i64 = redis::cmd("EVAL")
        .arg("return redis.call('SWEEP.CLEAR', 'e:*', 'ASYNC')")
        .arg(0)
        .query(con)
        .unwrap();
    wait_done(con, id);
}

/// A user that may write only some keys: the others are denied.
fn acl_denials(server: &Server, con: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET").arg(format!("a:cache:{i}")).arg(i).ignore();
        pipe.cmd("SET").arg(format!("a:user:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("limited")
        .arg("on")
        .arg(">pw")
        .arg("%W~a:cache:*")
        .arg("%R~*")
        .arg("+@all")
        .query::<()>(con)
        .unwrap();
    let mut limited = server.conn();
    redis::cmd("AUTH")
        .arg("limited")
        .arg("pw")
        .query::<()>(&mut limited)
        .unwrap();
    let r = sweep(&mut limited, &["a:*", "BATCH", "11"]);
    assert_eq!(r["deleted"], 300, "{r:?}");
    assert_eq!(r["denied"], 300, "{r:?}");
    // A user deleted while its ASYNC sweep runs.
    populate(con, 20_000, "a:big");
    let id = start_async(&mut limited, &["a:*", "BATCH", "1"]);
    redis::cmd("ACL")
        .arg("DELUSER")
        .arg("limited")
        .query::<()>(con)
        .unwrap();
    wait_done(con, id);
    sweep(con, &["a:*"]);
}

/// ASYNC jobs, SWEEP.STATUS in both protocols, SWEEP.CANCEL, too many jobs.
fn jobs(server: &Server, con: &mut redis::Connection) {
    populate(con, 30_000, "j");
    let id = start_async(con, &["j:*", "COUNT", "100", "BATCH", "50"]);
    let all: Vec<Value> = redis::cmd("SWEEP.STATUS").query(con).unwrap();
    assert!(!all.is_empty());
    let done = wait_done(con, id);
    assert_eq!(done["deleted"], "30000", "{done:?}");

    populate(con, 30_000, "j");
    let id = start_async(con, &["j:*", "BATCH", "1"]);
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).unwrap();
    let mut resp3 = client.get_connection().unwrap();
    resp3.set_read_timeout(Some(WAIT)).unwrap();
    let v: Value = redis::cmd("SWEEP.STATUS")
        .arg(id)
        .query(&mut resp3)
        .unwrap();
    assert!(matches!(v, Value::Map(_)), "{v:?}");
    let v: Value = redis::cmd("SWEEP.STATUS").query(&mut resp3).unwrap();
    assert!(matches!(v, Value::Array(_)), "{v:?}");
    let v: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(con).unwrap();
    assert_eq!(job(&v)["state"], "cancelled");
    let err = error_of(con, &["SWEEP.CANCEL", &id.to_string()]);
    assert!(err.contains("already ended"), "{err}");

    // More jobs than sweep.max-jobs (16 by default), then cancel them all.
    let ids: Vec<i64> = (0..16)
        .map(|_| start_async(con, &["j:*", "BATCH", "1", "DRYRUN"]))
        .collect();
    let err = error_of(con, &["SWEEP.CLEAR", "j:*", "ASYNC"]);
    assert!(err.contains("too many sweeps"), "{err}");
    for id in ids {
        redis::cmd("SWEEP.CANCEL")
            .arg(id)
            .query::<Value>(con)
            .unwrap();
    }

    // A blocking sweep cancelled from another client.
    let sweeper = sweep_in_background(server, 0, &["j:*", "BATCH", "1"]);
    let mut running = 0;
    wait_until("the blocking sweep to show in SWEEP.STATUS", WAIT, || {
        let all: Vec<Value> = redis::cmd("SWEEP.STATUS").query(con).unwrap();
        if let Some(j) = all.iter().map(job).find(|j| j["state"] == "running") {
            running = j["id"].parse().unwrap();
        }
        running > 0 || sweeper.is_finished()
    });
    if running > 0 {
        let _ = redis::cmd("SWEEP.CANCEL").arg(running).query::<Value>(con);
    }
    sweeper.join().unwrap().unwrap();

    // An ASYNC job outlives the client that started it.
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(b"*3\r\n$11\r\nSWEEP.CLEAR\r\n$3\r\nj:*\r\n$5\r\nASYNC\r\n")
        .unwrap();
    let mut reply = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut reply).unwrap();
    let id: i64 = String::from_utf8_lossy(&reply[..n])
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    drop(raw);
    assert_eq!(wait_done(con, id)["state"], "done");
    wait_all_ended(con);
    assert_eq!(dbsize(con), 0);
}

/// A client that disconnects, FLUSHALL (sync and ASYNC) and SWAPDB, each during a sweep.
fn interruptions(server: &Server, con: &mut redis::Connection) {
    populate(con, 30_000, "d");
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(b"*4\r\n$11\r\nSWEEP.CLEAR\r\n$3\r\nd:*\r\n$5\r\nBATCH\r\n$1\r\n1\r\n")
        .unwrap();
    wait_until("the sweep to block its client", WAIT, || {
        blocked_clients(server) == 1
    });
    drop(raw);
    wait_until("the cancelled sweep to release its client", WAIT, || {
        blocked_clients(server) == 0
    });
    wait_all_ended(con);

    // FLUSHALL with a blocking and an ASYNC sweep running.
    populate(con, 30_000, "f");
    let id = start_async(con, &["f:*", "BATCH", "1", "DRYRUN"]);
    let sweeper = sweep_in_background(server, 0, &["f:*", "BATCH", "1"]);
    redis::cmd("FLUSHALL").query::<()>(con).unwrap();
    let r = sweeper.join().unwrap();
    assert!(r.is_ok() || r.unwrap_err().to_string().contains("flushed"));
    wait_done(con, id);

    populate(con, 30_000, "f");
    let sweeper = sweep_in_background(server, 0, &["f:*", "BATCH", "1"]);
    redis::cmd("FLUSHALL")
        .arg("ASYNC")
        .query::<()>(con)
        .unwrap();
    let r = sweeper.join().unwrap();
    assert!(r.is_ok() || r.unwrap_err().to_string().contains("flushed"));

    // SWAPDB of the sweep's database.
    populate(con, 30_000, "w");
    let sweeper = sweep_in_background(server, 0, &["w:*", "BATCH", "1"]);
    redis::cmd("SWAPDB").arg(0).arg(1).query::<()>(con).unwrap();
    let _ = sweeper.join().unwrap();
    redis::cmd("FLUSHALL").query::<()>(con).unwrap();
    wait_all_ended(con);
}

#[test]
fn every_sweep_path_then_unload_and_reload() {
    if !enabled() {
        return;
    }
    let server = Server::start();
    let mut con = server.conn();
    con.set_read_timeout(Some(WAIT)).unwrap();
    sync_sweeps(&server, &mut con);
    idle_sweeps(&mut con);
    selective_sweeps(&mut con);
    expired_keys(&mut con);
    errors(&mut con);
    if server.server_major_minor() >= (7, 0) {
        acl_denials(&server, &mut con);
    }
    jobs(&server, &mut con);
    interruptions(&server, &mut con);

    // Unload with a job history, load again, sweep, unload again: what the module does not give
    // back at unload is then unreachable and valgrind reports it as lost at exit.
    wait_all_ended(&mut con);
    module(&mut con, &["UNLOAD", "sweep"]).unwrap();
    module(&mut con, &["LOAD", module_path().to_str().unwrap()]).unwrap();
    populate(&mut con, 5_000, "r");
    let r = sweep(&mut con, &["r:*", "BATCH", "100"]);
    assert_eq!(r["deleted"], 5_000, "{r:?}");
    let id = start_async(&mut con, &["nothing:*"]);
    wait_done(&mut con, id);
    module(&mut con, &["UNLOAD", "sweep"]).unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    // Dropping the server sends SHUTDOWN NOSAVE: valgrind writes its report then.
}

#[test]
fn loaded_at_run_time_and_shut_down_with_sweeps_running() {
    if !enabled() {
        return;
    }
    let server = Server::start_with(ServerOptions {
        load_module: false,
        ..Default::default()
    });
    let mut con = server.conn();
    con.set_read_timeout(Some(WAIT)).unwrap();
    module(&mut con, &["LOAD", module_path().to_str().unwrap()]).unwrap();
    populate(&mut con, 50_000, "s");
    start_async(&mut con, &["s:*", "BATCH", "1"]);
    start_async(&mut con, &["s:*", "BATCH", "1", "DRYRUN", "TYPE", "string"]);
    let sweeper = sweep_in_background(&server, 0, &["s:*", "BATCH", "1"]);
    // The server exits with three sweeps running (SHUTDOWN NOSAVE from the harness's Drop); the
    // blocked client sees its connection close.
    drop(con);
    drop(server);
    let _ = sweeper.join().unwrap();
}
