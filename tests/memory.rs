//! SPEC §2 guarantee 5: a sweep holds about COUNT + BATCH names, never the whole set of
//! matches, and leaves nothing behind.

mod common;

use std::time::{Duration, Instant};

use common::reply::clear;
use common::Server;

fn used_memory(server: &Server) -> i64 {
    server
        .info_field("memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// `used_memory` once the server's cron has finished resizing its tables: three equal readings
/// in a row.
fn settled_memory(server: &Server) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = used_memory(server);
    let mut same = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = used_memory(server);
        if now == last {
            same += 1;
            if same == 3 {
                return now;
            }
        } else {
            same = 0;
            last = now;
        }
    }
    last
}

fn populate_and_sweep(server: &Server) {
    let mut con = server.conn();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(200_000)
        .arg("m:")
        .query::<()>(&mut con)
        .unwrap();
    let r = clear(&mut con, &[b"m:*"]).unwrap();
    assert_eq!(r["deleted"], 200_000);
}

#[test]
fn sweeping_the_same_keys_twice_leaves_memory_where_it_was() {
    let server = Server::start();
    populate_and_sweep(&server);
    let first = settled_memory(&server);
    populate_and_sweep(&server);
    let second = settled_memory(&server);
    // A leak of even a few bytes per key would show as megabytes here.
    let grew = second - first;
    assert!(
        grew.abs() < 256 * 1024,
        "used_memory went from {first} to {second} ({grew:+} bytes) over 200,000 swept keys"
    );
}

fn module(con: &mut redis::Connection, verb: &str, arg: &str) {
    redis::cmd("MODULE")
        .arg(verb)
        .arg(arg)
        .query::<()>(con)
        .unwrap_or_else(|e| panic!("MODULE {verb} {arg}: {e}"));
}

/// Upgrading without a restart is `MODULE UNLOAD` then `MODULE LOAD`: whatever the module's load
/// path allocates must go back at unload, or every cycle leaks it (a detached context and its
/// fake client were about 17 KB each).
#[test]
fn load_and_unload_fifty_times_leaves_memory_where_it_was() {
    let server = Server::start();
    let mut con = server.conn();
    let path = common::module_path();
    let path = path.to_str().unwrap();
    let cycle = |con: &mut redis::Connection| {
        module(con, "UNLOAD", "sweep");
        module(con, "LOAD", path);
    };
    // A few cycles first: the server's own tables (commands, configs) reach their size.
    for _ in 0..5 {
        cycle(&mut con);
    }
    let before = settled_memory(&server);
    for _ in 0..50 {
        cycle(&mut con);
    }
    let after = settled_memory(&server);
    let r = clear(&mut con, &[b"nothing:*"]).unwrap();
    assert_eq!(r["deleted"], 0, "the module works after 55 reloads");
    let grew = after - before;
    eprintln!("used_memory over 50 unload/load cycles: {before} -> {after} ({grew:+} bytes)");
    // 50 cycles leaking 17 KB each would be 850 KB; allow a few KB of allocator noise.
    assert!(
        grew < 16 * 1024,
        "used_memory went from {before} to {after} ({grew:+} bytes) over 50 unload/load cycles"
    );
}
