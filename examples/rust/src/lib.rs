//! SWEEP.CLEAR from Rust with the `redis` crate: the drop-in for a client-side SCAN + UNLINK
//! loop, a background sweep with progress, and one cancelled at a deadline.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};

/// A reply's fields by name, from a RESP3 map or a RESP2 `[field, value, ...]` array. Integers
/// stay integers; `progress` (a double) and texts (`state`, `pattern`) become `Field::Float` or
/// `Field::Text`; arrays (`or`, `except`, a cluster job's `shards`) become `Field::List`.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Field>),
}

pub type Fields = BTreeMap<String, Field>;

pub fn sweep_fields(reply: &Value) -> RedisResult<Fields> {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        other => return Err(unexpected(other)),
    };
    pairs
        .into_iter()
        .map(|(k, v)| Ok((text(k)?, field(v)?)))
        .collect()
}

fn text(v: &Value) -> RedisResult<String> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        other => Err(unexpected(other)),
    }
}

fn field(v: &Value) -> RedisResult<Field> {
    Ok(match v {
        Value::Int(i) => Field::Int(*i),
        Value::Double(d) => Field::Float(*d),
        Value::Array(items) => Field::List(items.iter().map(field).collect::<RedisResult<_>>()?),
        Value::Map(pairs) => Field::List(
            pairs
                .iter()
                .flat_map(|(k, v)| [k, v])
                .map(field)
                .collect::<RedisResult<_>>()?,
        ),
        other => {
            let t = text(other)?;
            match t.parse::<f64>() {
                Ok(d) => Field::Float(d), // RESP2 sends a double as text
                Err(_) => Field::Text(t),
            }
        }
    })
}

fn unexpected(v: &Value) -> redis::RedisError {
    (
        redis::ErrorKind::TypeError,
        "not a sweep reply",
        format!("{v:?}"),
    )
        .into()
}

/// An integer field, 0 when absent.
pub fn int(fields: &Fields, name: &str) -> i64 {
    match fields.get(name) {
        Some(Field::Int(i)) => *i,
        _ => 0,
    }
}

/// A text field (`state`, `pattern`), "" when absent.
pub fn state(fields: &Fields) -> &str {
    match fields.get("state") {
        Some(Field::Text(s)) => s,
        _ => "",
    }
}

/// Deletes every `image_proxy:*` key in the server; returns how many were deleted.
pub fn clear_all_image_caches(con: &mut Connection) -> RedisResult<i64> {
    let reply: Value = redis::cmd("SWEEP.CLEAR").arg("image_proxy:*").query(con)?;
    Ok(int(&sweep_fields(&reply)?, "deleted"))
}

/// Runs the sweep as a background job (`ASYNC`), handing each `SWEEP.STATUS` to `on_progress`
/// until it ends; returns the number of keys deleted.
pub fn clear_with_progress(
    con: &mut Connection,
    pattern: &str,
    mut on_progress: impl FnMut(&Fields),
    poll: Duration,
) -> RedisResult<i64> {
    let job: i64 = redis::cmd("SWEEP.CLEAR")
        .arg(pattern)
        .arg("ASYNC")
        .query(con)?;
    loop {
        let status = sweep_fields(&redis::cmd("SWEEP.STATUS").arg(job).query(con)?)?;
        on_progress(&status);
        match state(&status) {
            "done" => return Ok(int(&status, "deleted")),
            "running" => thread::sleep(poll),
            other => {
                return Err((
                    redis::ErrorKind::ResponseError,
                    "sweep did not finish",
                    format!("sweep {job} ended {other}"),
                )
                    .into())
            }
        }
    }
}

/// Runs a background sweep for at most `limit`, then cancels it; returns its last fields (state
/// `done` if it finished in time, else `cancelled`; what was deleted stays deleted).
pub fn clear_with_deadline(
    con: &mut Connection,
    pattern: &str,
    limit: Duration,
    poll: Duration,
) -> RedisResult<Fields> {
    let job: i64 = redis::cmd("SWEEP.CLEAR")
        .arg(pattern)
        .arg("ASYNC")
        .query(con)?;
    let deadline = Instant::now() + limit;
    loop {
        let status = sweep_fields(&redis::cmd("SWEEP.STATUS").arg(job).query(con)?)?;
        if state(&status) != "running" {
            return Ok(status);
        }
        if Instant::now() < deadline {
            thread::sleep(poll);
            continue;
        }
        match redis::cmd("SWEEP.CANCEL").arg(job).query::<Value>(con) {
            Ok(reply) => return sweep_fields(&reply),
            // It ended between STATUS and CANCEL: the next STATUS says how.
            Err(e) if e.to_string().contains("has already ended") => {}
            Err(e) => return Err(e),
        }
    }
}
