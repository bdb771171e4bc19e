//! Replies of SWEEP.CLEAR, SWEEP.STATUS and SWEEP.CANCEL, read the same way in RESP2 (a flat
//! array of field, value pairs) and RESP3 (a map), and kept whole: fields this tool does not know
//! (added by a newer module, such as a cluster's `nodes` and `shards`) pass through to `--json`
//! and to the human output.

use redis::Value;
use serde_json::{Map as JsonMap, Number, Value as Json};

/// One value of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Item>),
    Map(Fields),
}

/// A map-shaped reply: its fields in the order the server sent them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, Item)>);

/// Fields whose values are fractional: RESP2 carries a double as a bulk string (`"0.0285"`).
const FLOAT_FIELDS: &[&str] = &["progress"];
/// Fields whose values are lists of map-shaped entries (SPEC §6: one entry per primary).
const MAP_LIST_FIELDS: &[&str] = &["shards"];

#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected reply: {}", self.0)
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

impl Fields {
    /// A map-shaped reply: a RESP3 map, or a RESP2 array of an even number of items whose every
    /// other item is a field name.
    pub fn from_value(v: &Value) -> Result<Fields, ShapeError> {
        let pairs: Vec<(&Value, &Value)> = match v {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            Value::Attribute { data, .. } => return Fields::from_value(data),
            Value::Array(items) if items.len() % 2 == 0 => {
                items.chunks(2).map(|p| (&p[0], &p[1])).collect()
            }
            other => {
                return Err(ShapeError(format!(
                    "expected field-value pairs, got {other:?}"
                )))
            }
        };
        let mut fields = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let name = text_of(k)
                .ok_or_else(|| ShapeError(format!("expected a field name, got {k:?}")))?;
            let item = Item::of_field(&name, v)?;
            fields.push((name, item));
        }
        Ok(Fields(fields))
    }

    pub fn get(&self, name: &str) -> Option<&Item> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Item::Int(i) => Some(*i),
            Item::Float(f) => Some(*f as i64),
            Item::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Item::Float(f) => Some(*f),
            Item::Int(i) => Some(*i as f64),
            Item::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Item::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The entries of a list of maps (`shards`); empty when absent.
    pub fn maps(&self, name: &str) -> Vec<&Fields> {
        match self.get(name) {
            Some(Item::List(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Item::Map(f) => Some(f),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn to_json(&self) -> Json {
        let mut map = JsonMap::new();
        for (name, item) in &self.0 {
            map.insert(name.clone(), item.to_json());
        }
        Json::Object(map)
    }
}

impl Item {
    fn of_field(name: &str, v: &Value) -> Result<Item, ShapeError> {
        if FLOAT_FIELDS.contains(&name) {
            if let Some(f) = text_of(v).and_then(|t| t.parse::<f64>().ok()) {
                return Ok(Item::Float(f));
            }
        }
        if MAP_LIST_FIELDS.contains(&name) {
            if let Value::Array(items) | Value::Set(items) = v {
                let entries = items
                    .iter()
                    .map(|i| Fields::from_value(i).map(Item::Map))
                    .collect::<Result<_, _>>()?;
                return Ok(Item::List(entries));
            }
        }
        Ok(Item::of(v))
    }

    /// Any value, read as it comes: a RESP2 array stays a list (its shape cannot be told apart
    /// from a field-value array without knowing the field), a RESP3 map becomes a map.
    pub fn of(v: &Value) -> Item {
        match v {
            Value::Nil => Item::Null,
            Value::Int(i) => Item::Int(*i),
            Value::Double(f) => Item::Float(*f),
            Value::Boolean(b) => Item::Bool(*b),
            Value::BigNumber(n) => Item::Text(n.to_string()),
            Value::Array(items) | Value::Set(items) => {
                Item::List(items.iter().map(Item::of).collect())
            }
            Value::Map(_) => Fields::from_value(v)
                .map(Item::Map)
                .unwrap_or_else(|_| Item::Text(format!("{v:?}"))),
            Value::Attribute { data, .. } => Item::of(data),
            Value::Push { data, .. } => Item::List(data.iter().map(Item::of).collect()),
            Value::ServerError(e) => Item::Text(format!("{e:?}")),
            other => Item::Text(text_of(other).unwrap_or_default()),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Item::Null => Json::Null,
            Item::Bool(b) => Json::Bool(*b),
            Item::Int(i) => Json::Number((*i).into()),
            Item::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Item::Text(t) => Json::String(t.clone()),
            Item::List(items) => Json::Array(items.iter().map(Item::to_json).collect()),
            Item::Map(fields) => fields.to_json(),
        }
    }

    /// How the human output shows a value.
    pub fn display(&self) -> String {
        match self {
            Item::Null => "(nil)".into(),
            Item::Bool(b) => b.to_string(),
            Item::Int(i) => i.to_string(),
            Item::Float(f) => f.to_string(),
            Item::Text(t) => t.clone(),
            Item::List(items) => items
                .iter()
                .map(Item::display)
                .collect::<Vec<_>>()
                .join(", "),
            Item::Map(fields) => fields
                .0
                .iter()
                .map(|(n, v)| format!("{n}={}", v.display()))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// `SWEEP.STATUS` without an id: an array of jobs.
pub fn jobs_from_value(v: &Value) -> Result<Vec<Fields>, ShapeError> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(Fields::from_value).collect(),
        other => Err(ShapeError(format!(
            "expected an array of jobs, got {other:?}"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A job as SWEEP.STATUS sends it, in RESP2 (flat array, progress as a bulk string) or RESP3.
    pub fn job_value(resp3: bool, extra: Vec<(&str, Value)>) -> Value {
        let mut pairs: Vec<(Value, Value)> = vec![
            (bulk("id"), Value::Int(7)),
            (bulk("state"), bulk("done")),
            (bulk("pattern"), bulk("image_proxy:*")),
            (bulk("db"), Value::Int(0)),
            (
                bulk("progress"),
                if resp3 { Value::Double(1.0) } else { bulk("1") },
            ),
            (bulk("scanned"), Value::Int(2_000_000)),
            (bulk("matched"), Value::Int(1_000_000)),
            (bulk("deleted"), Value::Int(999_990)),
            (bulk("denied"), Value::Int(4)),
            (bulk("expired"), Value::Int(6)),
            (bulk("elapsed_ms"), Value::Int(2290)),
            (bulk("slices"), Value::Int(2134)),
        ];
        pairs.extend(extra.into_iter().map(|(k, v)| (bulk(k), v)));
        if resp3 {
            Value::Map(pairs)
        } else {
            Value::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
        }
    }

    fn shard(resp3: bool, node: &str, state: &str, scanned: i64) -> Value {
        let pairs = vec![
            (bulk("node"), bulk(node)),
            (bulk("state"), bulk(state)),
            (bulk("scanned"), Value::Int(scanned)),
            (bulk("deleted"), Value::Int(scanned / 2)),
            (bulk("flavour"), bulk("unknown-to-us")),
        ];
        if resp3 {
            Value::Map(pairs)
        } else {
            Value::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
        }
    }

    /// A cluster job: `nodes`, `shards`, and lists (`or`) that must stay lists in RESP2.
    pub fn cluster_job(resp3: bool) -> Value {
        job_value(
            resp3,
            vec![
                ("or", Value::Array(vec![bulk("a:*"), bulk("b:*")])),
                ("nodes", Value::Int(3)),
                (
                    "shards",
                    Value::Array(vec![
                        shard(resp3, "127.0.0.1:7000", "done", 10),
                        shard(resp3, "127.0.0.1:7001", "running", 20),
                    ]),
                ),
            ],
        )
    }

    #[test]
    fn resp2_and_resp3_read_the_same() {
        for extra in [vec![], vec![("future_field", Value::Int(1))]] {
            let two = Fields::from_value(&job_value(false, extra.clone())).unwrap();
            let three = Fields::from_value(&job_value(true, extra)).unwrap();
            assert_eq!(two, three);
            assert_eq!(two.float("progress"), Some(1.0));
            assert_eq!(two.int("deleted"), Some(999_990));
            assert_eq!(two.text("state"), Some("done"));
        }
    }

    #[test]
    fn cluster_fields_pass_through_in_both_protocols() {
        let two = Fields::from_value(&cluster_job(false)).unwrap();
        let three = Fields::from_value(&cluster_job(true)).unwrap();
        assert_eq!(two, three);
        assert_eq!(two.int("nodes"), Some(3));
        let shards = two.maps("shards");
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[1].text("node"), Some("127.0.0.1:7001"));
        assert_eq!(shards[1].text("flavour"), Some("unknown-to-us"));
        // `or` is a list of patterns, not mistaken for a field-value map.
        assert_eq!(
            two.get("or"),
            Some(&Item::List(vec![
                Item::Text("a:*".into()),
                Item::Text("b:*".into())
            ]))
        );
        let json = two.to_json();
        assert_eq!(json["shards"][1]["scanned"], 20);
        assert_eq!(json["shards"][0]["flavour"], "unknown-to-us");
        assert_eq!(json["or"], serde_json::json!(["a:*", "b:*"]));
        assert_eq!(json["nodes"], 3);
    }

    #[test]
    fn json_keeps_every_field_in_order_with_types() {
        let f = Fields::from_value(&job_value(false, vec![("reason", bulk("flushed"))])).unwrap();
        let text = serde_json::to_string(&f.to_json()).unwrap();
        assert_eq!(
            text,
            r#"{"id":7,"state":"done","pattern":"image_proxy:*","db":0,"progress":1.0,"scanned":2000000,"matched":1000000,"deleted":999990,"denied":4,"expired":6,"elapsed_ms":2290,"slices":2134,"reason":"flushed"}"#
        );
    }

    #[test]
    fn fractional_progress_in_resp2() {
        let f = Fields::from_value(&job_value(false, vec![])).unwrap();
        assert_eq!(f.float("progress"), Some(1.0));
        let v = Value::Array(vec![bulk("progress"), bulk("0.0285")]);
        assert_eq!(
            Fields::from_value(&v).unwrap().float("progress"),
            Some(0.0285)
        );
        assert_eq!(
            Fields::from_value(&v).unwrap().to_json()["progress"],
            0.0285
        );
    }

    #[test]
    fn binary_pattern_is_shown_lossily() {
        let v = Value::Array(vec![
            bulk("pattern"),
            Value::BulkString(vec![b'a', 0xff, b'*']),
        ]);
        assert_eq!(
            Fields::from_value(&v).unwrap().text("pattern"),
            Some("a\u{fffd}*")
        );
    }

    #[test]
    fn odd_or_foreign_shapes_are_errors_not_panics() {
        for v in [
            Value::Int(3),
            Value::Nil,
            Value::Array(vec![bulk("scanned")]),
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![bulk("shards"), Value::Array(vec![Value::Int(1)])]),
        ] {
            assert!(Fields::from_value(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn status_of_every_job() {
        let v = Value::Array(vec![job_value(false, vec![]), cluster_job(false)]);
        let jobs = jobs_from_value(&v).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].int("nodes"), Some(3));
        assert!(jobs_from_value(&Value::Int(1)).is_err());
        assert_eq!(jobs_from_value(&Value::Array(vec![])).unwrap(), vec![]);
    }
}
