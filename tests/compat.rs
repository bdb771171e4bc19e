//! What the module says about itself and where it refuses to run (SPEC §7): `MODULE LIST` shows
//! the crate's version encoded as Redis modules do, and a server older than 7.0 refuses the
//! module with a log line that names its version.
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{module_path, Server};

/// `MAJOR.MINOR.PATCH` as `major * 10000 + minor * 100 + patch`, computed apart from the module's
/// own `sweep_core::version::encode`.
fn expected_version() -> i64 {
    let parts: Vec<i64> = env!("CARGO_PKG_VERSION")
        .split(['-', '+'])
        .next()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    parts[0] * 10_000 + parts[1] * 100 + parts[2]
}

#[test]
fn module_list_reports_the_crate_version() {
    let server = Server::start();
    let modules: Vec<HashMap<String, redis::Value>> = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut server.conn())
        .unwrap();
    let sweep = modules
        .iter()
        .find(|m| m.get("name") == Some(&redis::Value::BulkString(b"sweep".to_vec())))
        .expect("the module is not in MODULE LIST");
    let ver: i64 = redis::from_redis_value(&sweep["ver"]).unwrap();
    assert_eq!(ver, expected_version(), "{}", env!("CARGO_PKG_VERSION"));
}

/// The server to try: `REDIS_SERVER` when it is older than 7.0, else `REDIS_SERVER_6` if set
/// (`make test-matrix` sets it to its Redis 6.2, or to nothing when it runs no 6.x server),
/// else there is none and the test says so.
fn old_server() -> Option<String> {
    if common::binary_version().0 < 7 {
        return Some(common::server_binary());
    }
    std::env::var("REDIS_SERVER_6")
        .ok()
        .filter(|path| !path.trim().is_empty())
}

#[test]
fn refuses_to_load_before_redis_7_0_naming_the_version() {
    let Some(bin) = old_server() else {
        eprintln!("skipped: no Redis 6 server (set REDIS_SERVER_6 or run make test-matrix)");
        return;
    };
    let out = Command::new(&bin).arg("--version").output().unwrap();
    let banner = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or_else(|| panic!("no v= in {banner:?}"))
        .to_string();
    assert!(version.starts_with('6'), "{bin} is {version}, not a 6.x");

    // No TCP port (a socket in a directory of its own) and the log on stdout: the server either
    // exits (module refused) or runs on, which is the failure this test looks for.
    let dir = std::env::temp_dir().join(format!("redis-sweep-compat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(&bin)
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .arg("--unixsocket")
        .arg(dir.join("redis.sock"))
        .args(["--logfile", "", "--loglevel", "notice"])
        .arg("--loadmodule")
        .arg(module_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{bin} ({version}) is still running with the module loaded:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(!status.success(), "{bin} exited with success:\n{log}");
    let line = format!(
        "redis-sweep cannot load: it needs Redis 7.0 or later (the 7.0 module API), \
         and this server is Redis {version}"
    );
    assert!(log.contains(&line), "no line {line:?} in the log:\n{log}");
}
