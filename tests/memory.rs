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
