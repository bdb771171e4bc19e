//! Every way the module can visit and delete (`REDIS_SWEEP_VISIT` × `REDIS_SWEEP_DELETE`, which
//! override the choice made at load time for the benches) gives the same counts and the same
//! dataset: matched keys deleted and counted exactly (expired ones apart), OR/EXCEPT patterns,
//! DRYRUN, LIMIT and BATCH honoured, keys visited counted once, `del` notifications one per key.
//! One test only: it sets the environment the servers it starts inherit.

mod common;

use std::time::Duration;

use common::ops::{dbsize, populate};
use common::reply::clear;
use common::{wait_until, Server, ServerOptions};

const MECHANISMS: [(&str, &str); 4] = [
    ("module-scan", "per-key"),
    ("module-scan", "unlink-call"),
    ("scan-command", "per-key"),
    ("scan-command", "unlink-call"),
];

fn keys(con: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut k: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    k.sort();
    k
}

#[test]
fn every_mechanism_deletes_and_counts_the_same() {
    for (visit, delete) in MECHANISMS {
        let what = format!("{visit}/{delete}");
        std::env::set_var("REDIS_SWEEP_VISIT", visit);
        std::env::set_var("REDIS_SWEEP_DELETE", delete);
        let server = Server::start();
        assert!(
            server
                .log()
                .contains(&format!("visit: {visit}, delete: {delete}")),
            "{what}: the load log names the mechanism"
        );
        let mut con = server.conn();
        populate(&mut con, 3000, "img");
        populate(&mut con, 2000, "other");
        populate(&mut con, 500, "imgx");
        let total = dbsize(&mut con);

        // DRYRUN of a single pattern: nothing deleted, every key visited once.
        let r = clear(&mut con, &[b"img:*", b"DRYRUN"]).unwrap();
        assert_eq!(r["matched"], 3000, "{what}: {r:?}");
        assert_eq!(r["deleted"], 0, "{what}: {r:?}");
        assert_eq!(r["scanned"], total, "{what}: {r:?}");
        assert_eq!(dbsize(&mut con), total, "{what}");

        // LIMIT stops exactly; BATCH bounds each slice.
        let r = clear(&mut con, &[b"img:*", b"LIMIT", b"777", b"BATCH", b"100"]).unwrap();
        assert_eq!(r["deleted"], 777, "{what}: {r:?}");
        assert!(
            r["slices"] >= 8,
            "{what}: 777 deletions in batches of 100: {r:?}"
        );
        assert_eq!(keys(&mut con, "img:*").len(), 3000 - 777, "{what}");

        // OR and EXCEPT (no shared literal prefix with `other`): exactly KEYS' answer.
        let mut expected = keys(&mut con, "img:*");
        expected.extend(keys(&mut con, "other:1*"));
        expected.retain(|k| !k.ends_with('7'));
        let before = dbsize(&mut con);
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Eg")
            .query::<()>(&mut con)
            .unwrap();
        let mut sub = server.client().get_connection().unwrap();
        let mut pubsub = sub.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:del").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let r = clear(&mut con, &[b"img:*", b"OR", b"other:1*", b"EXCEPT", b"*7"]).unwrap();
        assert_eq!(r["deleted"], expected.len() as i64, "{what}: {r:?}");
        assert_eq!(r["scanned"], before, "{what}: {r:?}");
        assert_eq!(dbsize(&mut con), before - expected.len() as i64, "{what}");
        let mut notified = Vec::new();
        while notified.len() < expected.len() {
            match pubsub.get_message() {
                Ok(m) => notified.push(m.get_payload::<String>().unwrap()),
                Err(_) => break,
            }
        }
        notified.sort();
        assert_eq!(
            notified, expected,
            "{what}: one del notification per deleted key"
        );
        drop(pubsub);

        // Expired keys are counted apart, whether the scan or the deletion reaches them.
        let mut pipe = redis::pipe();
        for i in 0..40 {
            pipe.cmd("SET")
                .arg(format!("tmp:{i}"))
                .arg(i)
                .arg("PX")
                .arg(1)
                .ignore();
        }
        for i in 0..60 {
            pipe.cmd("SET").arg(format!("tmp:live:{i}")).arg(i).ignore();
        }
        pipe.cmd("SET")
            .arg("probe")
            .arg(1)
            .arg("PX")
            .arg(1)
            .ignore();
        pipe.query::<()>(&mut con).unwrap();
        wait_until("the keys to expire", Duration::from_secs(5), || {
            let ttl: i64 = redis::cmd("PTTL").arg("probe").query(&mut con).unwrap();
            ttl == -2
        });
        let r = clear(&mut con, &[b"tmp:*"]).unwrap();
        assert_eq!(r["deleted"], 60, "{what}: {r:?}");
        assert_eq!(r["expired"], 40, "{what}: {r:?}");
        assert_eq!(r["matched"], 100, "{what}: {r:?}");
        assert!(keys(&mut con, "tmp:*").is_empty(), "{what}");
    }
    std::env::remove_var("REDIS_SWEEP_VISIT");
    std::env::remove_var("REDIS_SWEEP_DELETE");

    // A server that renamed SCAN and UNLINK away: the module scan API and per-key deletion
    // take over, with the same counts.
    let server = Server::start_with(ServerOptions {
        extra_args: [
            "--rename-command",
            "SCAN",
            "",
            "--rename-command",
            "UNLINK",
            "",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let mut con = server.conn();
    assert!(redis::cmd("SCAN")
        .arg(0)
        .query::<redis::Value>(&mut con)
        .is_err());
    populate(&mut con, 3000, "img");
    populate(&mut con, 2000, "other");
    let r = clear(&mut con, &[b"img:*", b"OR", b"other:1*"]).unwrap();
    let expected = 3000 + 1 + 10 + 100 + 1000;
    assert_eq!(r["deleted"], expected, "renamed commands: {r:?}");
    assert_eq!(r["scanned"], 5000, "renamed commands: {r:?}");
    assert_eq!(dbsize(&mut con), 5000 - expected, "renamed commands");
}
