//! SPEC §5: `COMMAND DOCS` and `COMMAND INFO` describe the commands and their arguments, the
//! server checks their arity, and (Redis 7.2+) they sit in the ACL categories a user would expect.
//! What needs a newer server than the one running is skipped, by version.

mod common;

use std::collections::BTreeMap;

use common::{server_binary, Server};
use redis::Value;

fn skip(why: &str) {
    eprintln!("skipped: {why} (server {})", server_binary());
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".into(),
        Value::Int(i) => i.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A RESP3 map or a RESP2 flat array of field, value pairs, by field name.
fn fields(v: &Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(flat) => {
            assert!(
                flat.len().is_multiple_of(2),
                "odd field-value array: {flat:?}"
            );
            flat.chunks(2)
                .map(|pair| (text(&pair[0]), pair[1].clone()))
                .collect()
        }
        other => panic!("expected a map, got {other:?}"),
    }
}

/// `COMMAND DOCS name`: the command's docs, or `None` if the server does not know it.
fn command_docs(con: &mut redis::Connection, name: &str) -> Option<BTreeMap<String, Value>> {
    let reply: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg(name)
        .query(con)
        .unwrap();
    let top = fields(&reply);
    top.get(name).map(fields)
}

/// `COMMAND INFO name`: the command's entry, or `None` if the server does not know it.
fn command_info(con: &mut redis::Connection, name: &str) -> Option<Vec<Value>> {
    let reply: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(con)
        .unwrap();
    match items(&reply).first()? {
        Value::Nil => None,
        entry => Some(items(entry).to_vec()),
    }
}

fn has_command_docs(server: &Server) -> bool {
    server.server_major_minor() >= (7, 0)
}

/// One argument of `COMMAND DOCS`, the fields that matter here.
#[derive(Debug, PartialEq)]
struct Arg {
    name: String,
    kind: String,
    token: Option<String>,
    optional: bool,
}

fn arg(name: &str, kind: &str, token: Option<&str>, optional: bool) -> Arg {
    Arg {
        name: name.into(),
        kind: kind.into(),
        token: token.map(String::from),
        optional,
    }
}

fn args_of(docs: &BTreeMap<String, Value>) -> Vec<Arg> {
    let Some(args) = docs.get("arguments") else {
        return Vec::new();
    };
    items(args)
        .iter()
        .map(|a| {
            let f = fields(a);
            Arg {
                name: text(&f["name"]),
                kind: text(&f["type"]),
                token: f.get("token").map(text),
                optional: f
                    .get("flags")
                    .is_some_and(|flags| items(flags).iter().any(|x| text(x) == "optional")),
            }
        })
        .collect()
}

#[test]
fn command_docs_describe_sweep_clear_and_every_argument() {
    let server = Server::start();
    if !has_command_docs(&server) {
        return skip("COMMAND DOCS needs Redis 7.0");
    }
    let mut con = server.conn();
    let docs = command_docs(&mut con, "sweep.clear").expect("no COMMAND DOCS for sweep.clear");
    assert_eq!(
        text(&docs["summary"]),
        "Deletes the keys whose names match a glob pattern, in slices that never block the server"
    );
    assert_eq!(
        text(&docs["complexity"]),
        "O(N) where N is the number of keys in the database"
    );
    assert_eq!(text(&docs["since"]), "1.0.0");
    assert_eq!(text(&docs["group"]), "module");
    assert_eq!(text(&docs["module"]), "sweep");
    assert_eq!(
        args_of(&docs),
        [
            arg("pattern", "string", None, false),
            arg("or", "string", Some("OR"), true),
            arg("except", "string", Some("EXCEPT"), true),
            arg("count", "integer", Some("COUNT"), true),
            arg("batch", "integer", Some("BATCH"), true),
            arg("type", "string", Some("TYPE"), true),
            arg("idle", "integer", Some("IDLE"), true),
            arg("minsize", "integer", Some("MINSIZE"), true),
            arg("ttl", "oneof", None, true),
            arg("limit", "integer", Some("LIMIT"), true),
            arg("dryrun", "pure-token", Some("DRYRUN"), true),
            arg("async", "pure-token", Some("ASYNC"), true),
        ]
    );
    // Every argument has a summary; IDLE shows as "seconds" where the server reports display
    // texts (7.2+; 7.0 takes them but leaves them out of the reply).
    for a in items(&docs["arguments"]) {
        let f = fields(a);
        assert!(f.contains_key("summary"), "{f:?}");
        let flags: Vec<String> = f
            .get("flags")
            .map(|v| items(v).iter().map(text).collect())
            .unwrap_or_default();
        let name = text(&f["name"]);
        // OR and EXCEPT repeat with their token (`OR a OR b`), as SORT's GET does.
        let repeats =
            flags.iter().any(|x| x == "multiple") && flags.iter().any(|x| x == "multiple_token");
        assert_eq!(
            repeats,
            name == "or" || name == "except",
            "{name}: {flags:?}"
        );
        if name == "ttl" {
            let choices: Vec<Arg> = args_of(&f);
            assert_eq!(
                choices,
                [
                    arg("persistent", "pure-token", Some("PERSISTENT"), false),
                    arg("volatile", "pure-token", Some("VOLATILE"), false),
                ]
            );
        }
        if text(&f["name"]) == "idle" && server.server_major_minor() >= (7, 2) {
            assert_eq!(f.get("display_text").map(text).as_deref(), Some("seconds"));
        }
    }
}

#[test]
fn command_docs_describe_status_and_cancel_when_registered() {
    let server = Server::start();
    if !has_command_docs(&server) {
        return skip("COMMAND DOCS needs Redis 7.0");
    }
    let mut con = server.conn();
    let expected = [
        (
            "sweep.status",
            "Shows running and recent sweeps, or one sweep by id",
            -1,
            arg("id", "integer", None, true),
        ),
        (
            "sweep.cancel",
            "Stops a running sweep after its current slice",
            2,
            arg("id", "integer", None, false),
        ),
    ];
    for (name, summary, arity, id) in expected {
        let Some(info) = command_info(&mut con, name) else {
            skip(&format!("{name} is not registered"));
            continue;
        };
        assert_eq!(info[1], Value::Int(arity), "{name}: {info:?}");
        let docs = command_docs(&mut con, name).expect("COMMAND INFO but no COMMAND DOCS");
        assert_eq!(text(&docs["summary"]), summary);
        assert_eq!(args_of(&docs), [id]);
    }
}

#[test]
fn command_info_shows_arity_and_flags() {
    let server = Server::start();
    let mut con = server.conn();
    let info = command_info(&mut con, "sweep.clear").expect("no COMMAND INFO for sweep.clear");
    assert_eq!(text(&info[0]), "sweep.clear");
    let flags: Vec<String> = items(&info[2]).iter().map(text).collect();
    // `write`: replicas answer -READONLY. Not `denyoom`: deleting is how memory comes back.
    assert!(flags.iter().any(|f| f == "write"), "{flags:?}");
    assert!(!flags.iter().any(|f| f == "denyoom"), "{flags:?}");
    // No key arguments: first key, last key and step are 0.
    assert_eq!(info[3..6], [Value::Int(0), Value::Int(0), Value::Int(0)]);
    if has_command_docs(&server) {
        // 6.x shows -1 (any number of arguments) for every module command.
        assert_eq!(info[1], Value::Int(-2), "{info:?}");
    }
}

#[test]
fn the_server_checks_arity_before_the_module_runs() {
    let server = Server::start();
    let mut con = server.conn();
    let err = redis::cmd("SWEEP.CLEAR")
        .query::<Value>(&mut con)
        .expect_err("SWEEP.CLEAR without a pattern succeeded");
    let message = err.to_string().to_lowercase();
    assert!(
        message.contains("wrong number of arguments for 'sweep.clear' command"),
        "{err}"
    );
    if has_command_docs(&server) {
        // Rejected by the server: counted as a rejected call, never a call of the module.
        let stats = server
            .info_field("commandstats", "cmdstat_sweep.clear")
            .expect("no commandstats for sweep.clear");
        assert!(stats.contains("rejected_calls=1"), "{stats}");
        assert!(stats.starts_with("calls=0,"), "{stats}");
    }
}

#[test]
fn acl_categories_gate_the_commands() {
    let server = Server::start();
    if server.server_major_minor() < (7, 2) {
        // Before 7.2 module commands have no ACL categories at all (COMMAND INFO shows none),
        // so `-@write` or `-@dangerous` does not keep a user from them: only `-sweep.clear` does.
        return skip("ACL categories of module commands need Redis 7.2");
    }
    let mut con = server.conn();
    let info = command_info(&mut con, "sweep.clear").unwrap();
    let categories: Vec<String> = items(&info[6]).iter().map(text).collect();
    for category in ["@write", "@slow", "@keyspace", "@dangerous"] {
        assert!(
            categories.iter().any(|c| c == category),
            "{category} not in {categories:?}"
        );
    }
    let mut denied_with = |category: &str| -> bool {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("probe")
            .arg("reset")
            .arg("on")
            .arg(">pw")
            .arg("~*")
            .arg("+@all")
            .arg(format!("-@{category}"))
            .query::<()>(&mut con)
            .unwrap();
        let mut user = server.conn();
        redis::cmd("AUTH")
            .arg("probe")
            .arg("pw")
            .query::<()>(&mut user)
            .unwrap();
        match redis::cmd("SWEEP.CLEAR")
            .arg("x:*")
            .query::<Value>(&mut user)
        {
            Err(e) if e.code() == Some("NOPERM") => true,
            Err(e) => panic!("-@{category}: unexpected error {e}"),
            Ok(_) => false,
        }
    };
    for category in ["write", "dangerous", "keyspace"] {
        assert!(denied_with(category), "-@{category} let SWEEP.CLEAR run");
    }
    assert!(!denied_with("read"), "-@read kept SWEEP.CLEAR from running");
    // Redis leaves module commands out of ACL CAT's lists; Valkey lists them.
    if server.server_name() == "valkey" {
        let listed: Vec<String> = redis::cmd("ACL")
            .arg("CAT")
            .arg("dangerous")
            .query(&mut con)
            .unwrap();
        assert!(listed.iter().any(|c| c == "sweep.clear"), "{listed:?}");
    }
    for (name, expected) in [
        ("sweep.status", &["@read", "@fast"][..]),
        ("sweep.cancel", &["@write", "@fast", "@dangerous"][..]),
    ] {
        if let Some(info) = command_info(&mut con, name) {
            let categories: Vec<String> = items(&info[6]).iter().map(text).collect();
            for category in expected {
                assert!(
                    categories.iter().any(|c| c == category),
                    "{name}: {category} not in {categories:?}"
                );
            }
        }
    }
}

/// The server gives its own commands `@write` for the `write` flag, `@read` for `readonly` and
/// `@fast` for `fast` (else `@slow`), but module commands only the categories the module sets:
/// those must agree with the flags, as they do for the server's commands.
#[test]
fn acl_categories_agree_with_the_command_flags() {
    let server = Server::start();
    if server.server_major_minor() < (7, 2) {
        return skip("ACL categories of module commands need Redis 7.2");
    }
    let mut con = server.conn();
    for name in ["sweep.clear", "sweep.status", "sweep.cancel"] {
        let Some(info) = command_info(&mut con, name) else {
            skip(&format!("{name} is not registered"));
            continue;
        };
        let flags: Vec<String> = items(&info[2]).iter().map(text).collect();
        let categories: Vec<String> = items(&info[6]).iter().map(text).collect();
        let has_flag = |f: &str| flags.iter().any(|x| x == f);
        let has_category = |c: &str| categories.iter().any(|x| x == c);
        let pairs = [
            (has_flag("write"), "@write"),
            (has_flag("readonly"), "@read"),
            (has_flag("fast"), "@fast"),
            (!has_flag("fast"), "@slow"),
        ];
        for (expected, category) in pairs {
            assert_eq!(
                has_category(category),
                expected,
                "{name}: flags {flags:?}, categories {categories:?}"
            );
        }
    }
}
