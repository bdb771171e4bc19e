//! Small steps the integration tests share: loading keys, reading sizes and jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Value;

use super::{wait_until, Server};

/// `DEBUG POPULATE n prefix`: keys `prefix:0` … `prefix:{n-1}`, fast (and not replicated).
pub fn populate(con: &mut redis::Connection, n: usize, prefix: &str) {
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg(prefix)
        .query::<()>(con)
        .unwrap();
}

pub fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

/// `blocked_clients` from `INFO clients`.
pub fn blocked_clients(server: &Server) -> i64 {
    server
        .info_field("clients", "blocked_clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Starts `SWEEP.CLEAR args… ASYNC` and returns the job id.
pub fn start_async(con: &mut redis::Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd("SWEEP.CLEAR");
    for a in args {
        cmd.arg(*a);
    }
    cmd.arg("ASYNC").query(con).unwrap()
}

/// A reply value as text (names, states, numbers, lists of names).
pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        // A list of names (a job's `or` and `except` patterns): `["a*", "b*"]`.
        Value::Array(items) => format!("{:?}", items.iter().map(text).collect::<Vec<_>>()),
        other => panic!("unexpected {other:?}"),
    }
}

/// A job's fields as text, from a RESP3 map or a RESP2 field-value array.
pub fn job(v: &Value) -> BTreeMap<String, String> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|p| (text(&p[0]), text(&p[1])))
            .collect(),
        other => panic!("expected a job, got {other:?}"),
    }
}

/// `SWEEP.STATUS id`.
pub fn status(con: &mut redis::Connection, id: i64) -> BTreeMap<String, String> {
    let v: Value = redis::cmd("SWEEP.STATUS").arg(id).query(con).unwrap();
    job(&v)
}

/// Polls `SWEEP.STATUS id` until the job is no longer running; returns its last fields.
pub fn wait_done(con: &mut redis::Connection, id: i64) -> BTreeMap<String, String> {
    let mut last = BTreeMap::new();
    wait_until("the job to end", Duration::from_secs(60), || {
        last = status(con, id);
        last["state"] != "running"
    });
    last
}
