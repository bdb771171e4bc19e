//! Reading SWEEP.CLEAR replies the same way in RESP2 and RESP3.

use std::collections::BTreeMap;

use redis::Value;

/// The field names of SPEC §2's reply, in order.
pub const FIELDS: [&str; 7] = [
    "scanned",
    "matched",
    "deleted",
    "denied",
    "expired",
    "elapsed_ms",
    "slices",
];

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("expected a field name, got {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// The reply's fields in the order they came, from a RESP3 map or a RESP2 flat array.
pub fn ordered(v: &Value) -> Vec<(String, i64)> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), int(v))).collect(),
        Value::Array(items) => {
            assert!(items.len() % 2 == 0, "odd field-value array: {items:?}");
            items
                .chunks(2)
                .map(|pair| (text(&pair[0]), int(&pair[1])))
                .collect()
        }
        other => panic!("expected a map or a field-value array, got {other:?}"),
    }
}

/// The reply's fields by name.
pub fn fields(v: &Value) -> BTreeMap<String, i64> {
    ordered(v).into_iter().collect()
}

/// Runs `SWEEP.CLEAR` with raw arguments and returns its fields.
pub fn clear(
    con: &mut redis::Connection,
    args: &[&[u8]],
) -> redis::RedisResult<BTreeMap<String, i64>> {
    let mut cmd = redis::cmd("SWEEP.CLEAR");
    for a in args {
        cmd.arg(*a);
    }
    let v: Value = cmd.query(con)?;
    Ok(fields(&v))
}
