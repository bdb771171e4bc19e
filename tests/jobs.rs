//! ASYNC jobs, SWEEP.STATUS, SWEEP.CANCEL, max-jobs, history, INFO sweep, SLOWLOG.

mod common;

use common::ops::{dbsize, job, populate, start_async, status, text, wait_done};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::reply::clear;
use common::{wait_until, Server};
use redis::Value;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn async_replies_with_an_id_and_the_job_runs_to_the_end() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 50_000, "a");
    populate(&mut con, 1_000, "b");
    let id = start_async(&mut con, &["a:*"]);
    assert!(id >= 1);
    let done = wait_done(&mut con, id);
    assert_eq!(done["state"], "done");
    assert_eq!(done["deleted"], "50000");
    assert_eq!(done["pattern"], "a:*");
    assert_eq!(done["db"], "0");
    assert_eq!(done["progress"], "1");
    assert_eq!(done["id"], id.to_string());
    assert_eq!(dbsize(&mut con), 1_000);
    let names: Vec<&String> = done.keys().collect();
    for field in [
        "id",
        "state",
        "pattern",
        "or",
        "except",
        "db",
        "progress",
        "scanned",
        "matched",
        "deleted",
        "denied",
        "expired",
        "elapsed_ms",
        "slices",
    ] {
        assert!(done.contains_key(field), "{field} missing from {names:?}");
    }
}

#[test]
fn status_shapes_in_resp2_and_resp3() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100, "a");
    let id = start_async(&mut con, &["a:*"]);
    wait_done(&mut con, id);
    let v: Value = redis::cmd("SWEEP.STATUS").arg(id).query(&mut con).unwrap();
    assert!(matches!(v, Value::Array(ref a) if a.len() == 28), "{v:?}");
    let all: Value = redis::cmd("SWEEP.STATUS").query(&mut con).unwrap();
    assert!(
        matches!(all, Value::Array(ref a) if a.len() == 1),
        "{all:?}"
    );

    if server.server_major_minor() < (7, 0) {
        return; // no RedisModule_ReplyWithMap before 7.0
    }
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr())).unwrap();
    let mut resp3 = client.get_connection().unwrap();
    let v: Value = redis::cmd("SWEEP.STATUS")
        .arg(id)
        .query(&mut resp3)
        .unwrap();
    assert!(matches!(v, Value::Map(ref m) if m.len() == 14), "{v:?}");
    assert!(matches!(
        v,
        Value::Map(ref m) if m.iter().any(|(k, v)| text(k) == "progress" && matches!(v, Value::Double(_)))
    ));
    let all: Value = redis::cmd("SWEEP.STATUS").query(&mut resp3).unwrap();
    assert!(
        matches!(all, Value::Array(ref a) if matches!(a[0], Value::Map(_))),
        "{all:?}"
    );
}

#[test]
fn cancel_stops_a_job_and_replies_with_its_final_counts() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "c");
    let id = start_async(&mut con, &["c:*", "BATCH", "1"]);
    let v: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(&mut con).unwrap();
    let last = job(&v);
    assert_eq!(last["state"], "cancelled");
    let deleted: i64 = last["deleted"].parse().unwrap();
    // Nothing runs after the cancel: the keys left stay.
    assert_eq!(dbsize(&mut con), 200_000 - deleted);
    assert!(deleted < 200_000);
    assert_eq!(status(&mut con, id)["state"], "cancelled");

    let err = redis::cmd("SWEEP.CANCEL")
        .arg(id)
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
    let err = redis::cmd("SWEEP.CANCEL")
        .arg(987_654)
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("no sweep with id 987654"), "{err}");
    for bad in ["0", "-1", "x"] {
        let err = redis::cmd("SWEEP.CANCEL")
            .arg(bad)
            .query::<Value>(&mut con)
            .unwrap_err();
        assert!(err.to_string().contains("positive integer"), "{err}");
    }
    let err = redis::cmd("SWEEP.STATUS")
        .arg(987_654)
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("no sweep"), "{err}");
}

#[test]
fn cancelling_a_blocking_sweep_answers_its_client() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "c");
    let client = server.client();
    let sweeper = std::thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        clear(&mut c, &[b"c:*", b"BATCH", b"1"])
    });
    let mut id = 0;
    wait_until("the blocking sweep to show in SWEEP.STATUS", WAIT, || {
        let all: Vec<Value> = redis::cmd("SWEEP.STATUS").query(&mut con).unwrap();
        if let Some(first) = all.first() {
            id = job(first)["id"].parse().unwrap();
        }
        id > 0
    });
    let v: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(&mut con).unwrap();
    assert_eq!(job(&v)["state"], "cancelled");
    let r = sweeper.join().unwrap().unwrap();
    assert!(r["deleted"] < 200_000);
}

#[test]
fn an_async_job_survives_its_clients_disconnect() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100_000, "d");
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(
        b"*5\r\n$11\r\nSWEEP.CLEAR\r\n$3\r\nd:*\r\n$5\r\nBATCH\r\n$2\r\n50\r\n$5\r\nASYNC\r\n",
    )
    .unwrap();
    let mut reply = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply[..n]).into_owned();
    let id: i64 = text
        .trim()
        .strip_prefix(':')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("expected an id, got {text:?}"));
    drop(raw);
    let done = wait_done(&mut con, id);
    assert_eq!(done["state"], "done");
    assert_eq!(done["deleted"], "100000");
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn async_is_allowed_inside_multi_and_scripts() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 1_000, "m");
    redis::cmd("MULTI").query::<()>(&mut con).unwrap();
    redis::cmd("SWEEP.CLEAR")
        .arg("m:*")
        .arg("ASYNC")
        .query::<()>(&mut con)
        .unwrap();
    let ids: Vec<i64> = redis::cmd("EXEC").query(&mut con).unwrap();
    wait_done(&mut con, ids[0]);
    assert_eq!(dbsize(&mut con), 0);

    if server.server_major_minor() < (7, 0) {
        // Before 7.0 the module cannot tell a script's user, so it cannot check its keys.
        return;
    }
    populate(&mut con, 1_000, "s");
    let id: i64 = redis::cmd("EVAL")
        .arg("return redis.call('SWEEP.CLEAR', 's:*', 'ASYNC')")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(wait_done(&mut con, id)["deleted"], "1000");
}

#[test]
fn max_jobs_is_enforced() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100_000, "j");
    let ids: Vec<i64> = (0..16)
        .map(|_| start_async(&mut con, &["j:*", "BATCH", "1", "DRYRUN"]))
        .collect();
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("j:*")
        .arg("ASYNC")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("sweep.max-jobs"), "{err}");
    for id in ids {
        redis::cmd("SWEEP.CANCEL")
            .arg(id)
            .query::<Value>(&mut con)
            .unwrap();
    }
    // Room again.
    let id = start_async(&mut con, &["nothing:*"]);
    wait_done(&mut con, id);
}

#[test]
fn status_lists_running_and_recent_jobs_newest_first() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100_000, "h");
    let mut finished = Vec::new();
    for _ in 0..70 {
        let id = start_async(&mut con, &["none:*"]);
        wait_done(&mut con, id);
        finished.push(id);
    }
    let running = start_async(&mut con, &["h:*", "BATCH", "1", "DRYRUN"]);
    let all: Vec<Value> = redis::cmd("SWEEP.STATUS").query(&mut con).unwrap();
    let ids: Vec<i64> = all.iter().map(|j| job(j)["id"].parse().unwrap()).collect();
    // The running job, then the 64 most recent finished ones (sweep.history).
    assert_eq!(ids.len(), 65, "{ids:?}");
    assert_eq!(ids[0], running);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(job(&all[0])["state"], "running");
    let oldest_kept = finished[70 - 64];
    assert_eq!(*ids.last().unwrap(), oldest_kept);
    redis::cmd("SWEEP.CANCEL")
        .arg(running)
        .query::<Value>(&mut con)
        .unwrap();
}

fn info(server: &Server, field: &str) -> i64 {
    server
        .info_field("sweep", field)
        .unwrap_or_else(|| panic!("INFO sweep has no {field}"))
        .parse()
        .unwrap()
}

#[test]
fn info_sweep_moves_as_sweeps_run() {
    let server = Server::start();
    let mut con = server.conn();
    assert_eq!(info(&server, "sweep_jobs_running"), 0);
    assert_eq!(info(&server, "sweep_jobs_finished"), 0);
    assert_eq!(info(&server, "sweep_keys_deleted"), 0);
    populate(&mut con, 30_000, "i");
    let r = clear(&mut con, &[b"i:*"]).unwrap();
    assert_eq!(info(&server, "sweep_jobs_finished"), 1);
    assert_eq!(info(&server, "sweep_keys_scanned"), r["scanned"]);
    assert_eq!(info(&server, "sweep_keys_deleted"), 30_000);
    assert_eq!(info(&server, "sweep_slices"), r["slices"]);
    assert!(info(&server, "sweep_slice_max_us") > 0);

    populate(&mut con, 200_000, "k");
    let id = start_async(&mut con, &["k:*", "BATCH", "1"]);
    assert_eq!(info(&server, "sweep_jobs_running"), 1);
    redis::cmd("SWEEP.CANCEL")
        .arg(id)
        .query::<Value>(&mut con)
        .unwrap();
    assert_eq!(info(&server, "sweep_jobs_running"), 0);
    assert_eq!(info(&server, "sweep_jobs_finished"), 2);
}

#[test]
fn time_in_slices_shows_in_slowlog_and_commandstats() {
    let server = Server::start();
    let mut con = server.conn();
    if server.server_major_minor() < (6, 2) {
        return; // no BlockedClientMeasureTime before 6.2
    }
    populate(&mut con, 300_000, "s");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(20_000)
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query::<()>(&mut con)
        .unwrap();
    let r = clear(&mut con, &[b"s:*"]).unwrap();
    assert!(r["elapsed_ms"] >= 20, "too fast to tell: {r:?}");
    let log: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    let entries = format!("{log:?}");
    assert!(entries.to_lowercase().contains("sweep.clear"), "{entries}");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_sweep.clear:"))
        .unwrap_or_else(|| panic!("{stats}"));
    let total: i64 = line
        .split(&[':', ','][..])
        .find_map(|f| f.strip_prefix("usec=").and_then(|v| v.parse().ok()))
        .unwrap();
    assert!(total >= 20_000, "{line}");
}

#[test]
fn slices_longer_than_the_latency_threshold_are_latency_events() {
    let server = Server::start();
    let mut con = server.conn();
    if server.server_major_minor() < (7, 0) {
        return; // no module configs to lengthen the slices
    }
    populate(&mut con, 300_000, "l");
    for (name, value) in [
        ("sweep.slice-us", "5000"),
        ("sweep.batch", "1000000"),
        ("latency-monitor-threshold", "2"),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut con)
            .unwrap();
    }
    let r = clear(&mut con, &[b"l:*"]).unwrap();
    assert_eq!(r["deleted"], 300_000);
    let latest: Vec<Value> = redis::cmd("LATENCY").arg("LATEST").query(&mut con).unwrap();
    let events = format!("{latest:?}");
    assert!(events.contains("sweep-slice"), "{events}");

    // With the monitor off (threshold 0) nothing is recorded.
    redis::cmd("LATENCY")
        .arg("RESET")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-monitor-threshold")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    populate(&mut con, 300_000, "m");
    clear(&mut con, &[b"m:*"]).unwrap();
    let latest: Vec<Value> = redis::cmd("LATENCY").arg("LATEST").query(&mut con).unwrap();
    assert!(!format!("{latest:?}").contains("sweep-slice"), "{latest:?}");
}
