//! Module configs (SPEC §4): `CONFIG GET/SET sweep.*`, the `loadmodule` arguments, `MODULE LOADEX`
//! and config lines, and that a changed value takes effect. Module configs need Redis 7.0+; on 6.x
//! only the `loadmodule` arguments exist, and the tests that need more skip themselves.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::reply::clear;
use common::{binary_version, module_path, server_binary, Server, ServerOptions};
use redis::Value;

/// Name, default, smallest and largest value of every config.
const CONFIGS: [(&str, i64, i64, i64); 7] = [
    ("sweep.count", 1000, 1, 1_000_000),
    ("sweep.batch", 500, 1, 1_000_000),
    ("sweep.slice-us", 1000, 50, 1_000_000),
    ("sweep.max-jobs", 16, 1, 1024),
    ("sweep.history", 64, 0, 10_000),
    ("sweep.busy-share", 20, 1, 100),
    ("sweep.cluster-timeout", 10_000, 100, 3_600_000),
];

/// Whether the running server has module configs (Redis 7.0+; Valkey reports 7.2.4).
fn has_module_configs(server: &Server) -> bool {
    server.server_major_minor() >= (7, 0)
}

fn skip(why: &str) {
    eprintln!("skipped: {why} (server {})", server_binary());
}

/// `CONFIG GET pattern` as name -> value.
fn config_get(con: &mut redis::Connection, pattern: &str) -> BTreeMap<String, String> {
    let flat: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(pattern)
        .query(con)
        .unwrap_or_else(|e| panic!("CONFIG GET {pattern}: {e}"));
    assert!(
        flat.len().is_multiple_of(2),
        "odd CONFIG GET reply: {flat:?}"
    );
    flat.chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

fn config_value(con: &mut redis::Connection, name: &str) -> Option<String> {
    config_get(con, name).remove(name)
}

fn config_set(con: &mut redis::Connection, name: &str, value: &str) -> redis::RedisResult<()> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(con)
}

fn fill(con: &mut redis::Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

#[test]
fn config_get_lists_every_config_with_its_default() {
    let server = Server::start();
    let mut con = server.conn();
    let all = config_get(&mut con, "sweep.*");
    if !has_module_configs(&server) {
        assert!(all.is_empty(), "no module configs before 7.0: {all:?}");
        return skip("no module configs before Redis 7.0");
    }
    let expected: BTreeMap<String, String> = CONFIGS
        .iter()
        .map(|(name, default, _, _)| (name.to_string(), default.to_string()))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn config_set_takes_every_value_in_range() {
    let server = Server::start();
    if !has_module_configs(&server) {
        return skip("no module configs before Redis 7.0");
    }
    let mut con = server.conn();
    for (name, default, min, max) in CONFIGS {
        for value in [min, max, (min + max) / 2, default + 1] {
            config_set(&mut con, name, &value.to_string())
                .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
            assert_eq!(
                config_value(&mut con, name),
                Some(value.to_string()),
                "{name}"
            );
        }
    }
}

#[test]
fn config_set_refuses_bad_values_and_keeps_the_old_one() {
    let server = Server::start();
    if !has_module_configs(&server) {
        return skip("no module configs before Redis 7.0");
    }
    let mut con = server.conn();
    for (name, _, min, max) in CONFIGS {
        let kept = (min + max) / 2;
        config_set(&mut con, name, &kept.to_string()).unwrap();
        let bad = [
            (min - 1).to_string(),
            (max + 1).to_string(),
            "abc".to_string(),
            "1.5".to_string(),
            format!("+{kept}"),
            format!(" {kept}"),
            format!("{kept} "),
            format!("0{kept}"),
            String::new(),
            "99999999999999999999999".to_string(),
        ];
        for value in &bad {
            let err = config_set(&mut con, name, value)
                .expect_err(&format!("CONFIG SET {name} {value:?} was accepted"));
            let text = err.to_string();
            assert!(text.contains(name), "{name} {value:?}: {text}");
            assert_eq!(
                config_value(&mut con, name),
                Some(kept.to_string()),
                "{name} changed by the refused {value:?}"
            );
        }
        let err = config_set(&mut con, name, &(max + 1).to_string()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("between {min} and {max}")),
            "{name}: {err}"
        );
    }
}

#[test]
fn loadmodule_arguments_set_the_values() {
    // Both spellings, any case.
    let server = Server::start_with(ServerOptions {
        module_args: ["sweep.count", "7", "BATCH", "10", "Sweep.History", "0"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let mut con = server.conn();
    if has_module_configs(&server) {
        let all = config_get(&mut con, "sweep.*");
        assert_eq!(all.get("sweep.count").map(String::as_str), Some("7"));
        assert_eq!(all.get("sweep.batch").map(String::as_str), Some("10"));
        assert_eq!(all.get("sweep.history").map(String::as_str), Some("0"));
        assert_eq!(all.get("sweep.max-jobs").map(String::as_str), Some("16"));
        // They are the starting values, not a lock: CONFIG SET still changes them.
        config_set(&mut con, "sweep.count", "8").unwrap();
        assert_eq!(config_value(&mut con, "sweep.count"), Some("8".into()));
    }
    // On every server (the only check on 6.x): sweep.batch 10 bounds every slice to 10 deletions.
    fill(&mut con, "k:", 1000);
    let reply = clear(&mut con, &[b"k:*"]).unwrap();
    assert_eq!(reply["deleted"], 1000, "{reply:?}");
    assert!(reply["slices"] >= 100, "{reply:?}");
}

/// Runs the server binary with the module and `module_args` on its `--loadmodule`, expecting it
/// to refuse to start; returns everything it printed (it logs to stdout).
fn start_expecting_failure(module_args: &[&str]) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir =
        std::env::temp_dir().join(format!("redis-sweep-badarg-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("out.log");
    let out = fs::File::create(&out_path).unwrap();
    let mut child = Command::new(server_binary())
        // Port 0: no TCP listener, nothing to clash with; a unix socket, since a server that
        // listens nowhere exits before it loads its modules.
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--logfile", ""])
        .arg("--unixsocket")
        .arg(dir.join("s.sock"))
        .arg("--dir")
        .arg(&dir)
        .arg("--loadmodule")
        .arg(module_path())
        .args(module_args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            let _ = fs::remove_dir_all(&dir);
            panic!("the server started with {module_args:?}:\n{text}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    assert!(
        !status.success(),
        "exit {status} with {module_args:?}:\n{text}"
    );
    text
}

#[test]
fn a_bad_loadmodule_argument_stops_the_server_with_a_clear_message() {
    let cases: [(&[&str], &str); 6] = [
        (&["bad.name", "1"], "unknown module argument 'bad.name'"),
        (
            &["sweep.count", "0"],
            "sweep.count must be an integer from 1 to 1000000, not '0'",
        ),
        (
            &["slice-us", "49"],
            "sweep.slice-us must be an integer from 50 to 1000000, not '49'",
        ),
        (
            &["sweep.batch", "+5"],
            "sweep.batch must be an integer from 1 to 1000000, not '+5'",
        ),
        (
            &["sweep.history", "ten"],
            "sweep.history must be an integer from 0 to 10000, not 'ten'",
        ),
        (
            &["sweep.max-jobs"],
            "module argument 'sweep.max-jobs' has no value",
        ),
    ];
    for (args, message) in cases {
        let out = start_expecting_failure(args);
        assert!(out.contains(message), "{args:?}: no {message:?} in\n{out}");
        assert!(out.contains("redis-sweep cannot load"), "{args:?}:\n{out}");
    }
}

fn without_module() -> Server {
    Server::start_with(ServerOptions {
        load_module: false,
        ..Default::default()
    })
}

fn module_cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd("MODULE");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(con)
}

#[test]
fn module_load_with_a_bad_argument_fails_and_logs_why() {
    let server = without_module();
    let mut con = server.conn();
    let path = module_path();
    let path = path.to_str().unwrap();
    let err = module_cmd(&mut con, &["LOAD", path, "sweep.history", "10001"])
        .expect_err("MODULE LOAD with sweep.history 10001 succeeded");
    assert!(err.to_string().contains("Error loading"), "{err}");
    let log = server.log();
    assert!(
        log.contains("sweep.history must be an integer from 0 to 10000, not '10001'"),
        "{log}"
    );
    // Nothing was left behind: the module loads cleanly afterwards, with the defaults.
    module_cmd(&mut con, &["LOAD", path]).unwrap();
    if has_module_configs(&server) {
        assert_eq!(config_value(&mut con, "sweep.history"), Some("64".into()));
    }
}

#[test]
fn module_loadex_config_sets_the_value_and_wins_over_args() {
    let server = without_module();
    if !has_module_configs(&server) {
        return skip("MODULE LOADEX needs Redis 7.0");
    }
    let mut con = server.conn();
    let path = module_path();
    let path = path.to_str().unwrap();
    let loadex = [
        "LOADEX",
        path,
        "CONFIG",
        "sweep.batch",
        "77",
        "CONFIG",
        "sweep.busy-share",
        "35",
        "ARGS",
        "sweep.batch",
        "5",
        "sweep.count",
        "3",
    ];
    module_cmd(&mut con, &loadex).unwrap();
    assert_eq!(config_value(&mut con, "sweep.batch"), Some("77".into()));
    assert_eq!(
        config_value(&mut con, "sweep.busy-share"),
        Some("35".into())
    );
    assert_eq!(config_value(&mut con, "sweep.count"), Some("3".into()));
    assert_eq!(config_value(&mut con, "sweep.history"), Some("64".into()));
}

#[test]
fn module_loadex_with_a_bad_config_fails() {
    let server = without_module();
    if !has_module_configs(&server) {
        return skip("MODULE LOADEX needs Redis 7.0");
    }
    let mut con = server.conn();
    let path = module_path();
    let path = path.to_str().unwrap();
    let err = module_cmd(&mut con, &["LOADEX", path, "CONFIG", "sweep.batch", "0"])
        .expect_err("MODULE LOADEX with sweep.batch 0 succeeded");
    assert!(err.to_string().contains("Error loading"), "{err}");
    let log = server.log();
    assert!(log.contains("sweep.batch"), "{log}");
    assert!(log.contains("redis-sweep cannot load"), "{log}");
    // Not loaded: then it loads with a good value.
    module_cmd(&mut con, &["LOADEX", path, "CONFIG", "sweep.batch", "9"]).unwrap();
    assert_eq!(config_value(&mut con, "sweep.batch"), Some("9".into()));
}

#[test]
fn a_reloaded_module_starts_from_the_defaults() {
    let server = Server::start_with(ServerOptions {
        module_args: vec!["sweep.count".into(), "9".into()],
        ..Default::default()
    });
    if !has_module_configs(&server) {
        return skip("CONFIG GET of module configs needs Redis 7.0");
    }
    let mut con = server.conn();
    config_set(&mut con, "sweep.batch", "5").unwrap();
    module_cmd(&mut con, &["UNLOAD", "sweep"]).unwrap();
    assert!(config_get(&mut con, "sweep.*").is_empty());
    let path = module_path();
    module_cmd(&mut con, &["LOAD", path.to_str().unwrap()]).unwrap();
    assert_eq!(config_value(&mut con, "sweep.count"), Some("1000".into()));
    assert_eq!(config_value(&mut con, "sweep.batch"), Some("500".into()));
}

#[test]
fn config_lines_after_loadmodule_apply_and_win_over_args() {
    if binary_version().0 < 7 {
        return skip("module config lines need Redis 7.0");
    }
    let server = Server::start_with(ServerOptions {
        module_args: vec!["sweep.batch".into(), "5".into()],
        extra_args: ["--sweep.batch", "33", "--sweep.max-jobs", "2"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let mut con = server.conn();
    assert_eq!(config_value(&mut con, "sweep.batch"), Some("33".into()));
    assert_eq!(config_value(&mut con, "sweep.max-jobs"), Some("2".into()));
    assert_eq!(config_value(&mut con, "sweep.count"), Some("1000".into()));
}

#[test]
fn a_changed_batch_takes_effect_on_the_next_sweep() {
    let server = Server::start();
    if !has_module_configs(&server) {
        return skip("CONFIG SET of module configs needs Redis 7.0");
    }
    let mut con = server.conn();
    config_set(&mut con, "sweep.batch", "10").unwrap();
    fill(&mut con, "k:", 1000);
    let reply = clear(&mut con, &[b"k:*"]).unwrap();
    assert_eq!(reply["deleted"], 1000, "{reply:?}");
    assert!(reply["slices"] >= 100, "{reply:?}");

    // An explicit BATCH still overrides the config (with slices long enough that time never
    // ends one first, so the count of slices depends on BATCH alone).
    config_set(&mut con, "sweep.slice-us", "1000000").unwrap();
    fill(&mut con, "k:", 1000);
    let reply = clear(&mut con, &[b"k:*", b"BATCH", b"1000"]).unwrap();
    assert_eq!(reply["deleted"], 1000, "{reply:?}");
    assert!(reply["slices"] < 100, "{reply:?}");
}

#[test]
fn max_jobs_bounds_the_sweeps_running_at_once() {
    let server = Server::start();
    if !has_module_configs(&server) {
        return skip("CONFIG SET of module configs needs Redis 7.0");
    }
    let mut con = server.conn();
    config_set(&mut con, "sweep.max-jobs", "1").unwrap();
    config_set(&mut con, "sweep.slice-us", "50").unwrap();
    fill(&mut con, "long:", 50_000);
    // A sweep of one key per slice runs for thousands of event-loop turns.
    let mut first = server.conn();
    let running = thread::spawn(move || clear(&mut first, &[b"long:*", b"BATCH", b"1"]));
    common::wait_until(
        "the first sweep to block its client",
        Duration::from_secs(10),
        || {
            server
                .info_field("clients", "blocked_clients")
                .is_some_and(|n| n != "0")
        },
    );
    let err = clear(&mut con, &[b"other:*"]).expect_err("a second sweep started");
    assert!(err.to_string().contains("sweep.max-jobs"), "{err}");
    let reply = running.join().unwrap().unwrap();
    assert_eq!(reply["deleted"], 50_000, "{reply:?}");
    // Once it is over, a sweep may start again.
    clear(&mut con, &[b"other:*"]).unwrap();
}
