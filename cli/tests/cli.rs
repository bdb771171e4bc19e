//! The `redis-sweep` binary against real servers with the module (the harness of the module's own
//! integration tests, `tests/common`): what `clear --json` reports and deletes is what
//! `SWEEP.CLEAR` does; exit codes; one-line errors; Ctrl-C (SIGINT) cancels.

#[path = "../../tests/common/mod.rs"]
mod common;

mod run;

use common::ops::{dbsize, populate, status};
use common::reply::{self, FIELDS};
use common::{Server, ServerOptions};
use redis::Value;
use run::{cli, Running};
use serde_json::Value as Json;

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

fn select(con: &mut redis::Connection, db: i64) {
    redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
}

/// The same mixed dataset in database `db`: strings, hashes, sets, keys with a TTL, and keys
/// outside every pattern the tests use.
fn load_dataset(con: &mut redis::Connection, db: i64) {
    select(con, db);
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("a:{i}")).arg(i).ignore();
        pipe.cmd("HSET")
            .arg(format!("h:{i}"))
            .arg("f")
            .arg(i)
            .ignore();
        if i % 3 == 0 {
            pipe.cmd("SADD").arg(format!("s:{i}")).arg(i).ignore();
            pipe.cmd("SET")
                .arg(format!("t:{i}"))
                .arg(i)
                .arg("EX")
                .arg(3600)
                .ignore();
        }
        pipe.cmd("SET").arg(format!("keep:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(con).unwrap();
}

fn all_keys(con: &mut redis::Connection, db: i64) -> Vec<Vec<u8>> {
    select(con, db);
    let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.sort();
    keys
}

fn json(stdout: &str) -> serde_json::Map<String, Json> {
    match serde_json::from_str::<Json>(stdout.trim()) {
        Ok(Json::Object(map)) => map,
        other => panic!("stdout is not one JSON object: {other:?}\n{stdout}"),
    }
}

/// `clear --json` on database 2 and `SWEEP.CLEAR` on database 1, both holding the same dataset:
/// the same counts, and the same keys left.
#[test]
fn clear_json_reports_and_deletes_what_sweep_clear_does() {
    let server = Server::start();
    let mut con = server.conn();
    let cases: &[&[&str]] = &[
        &["a:*"],
        &["*:1*", "--type", "hash"],
        &["*", "--dry-run"],
        &["[ah]:2?", "--count", "7", "--batch", "3"],
        &["t:*", "--type", "string"],
        &["a:*", "--limit", "100", "--batch", "10"],
        &["nothing:*"],
    ];
    for (n, case) in cases.iter().enumerate() {
        let case: Vec<&str> = case.to_vec();
        redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
        load_dataset(&mut con, 1);
        load_dataset(&mut con, 2);
        assert_eq!(all_keys(&mut con, 1), all_keys(&mut con, 2));
        let before = all_keys(&mut con, 2).len() as i64;

        // SWEEP.CLEAR itself, with the options the flags stand for.
        let mut module: Vec<String> = vec![case[0].to_string()];
        let mut i = 1;
        while i < case.len() {
            let (word, value) = (case[i], case.get(i + 1));
            let option = match word {
                "--type" => "TYPE",
                "--count" => "COUNT",
                "--batch" => "BATCH",
                "--limit" => "LIMIT",
                "--dry-run" => "DRYRUN",
                other => panic!("no mapping for {other}"),
            };
            module.push(option.into());
            if word != "--dry-run" {
                module.push(value.unwrap().to_string());
                i += 1;
            }
            i += 1;
        }
        select(&mut con, 1);
        let args: Vec<&[u8]> = module.iter().map(|s| s.as_bytes()).collect();
        let expected = reply::clear(&mut con, &args).unwrap();

        let mut line = vec!["clear", "-n", "2", "--json", "--yes"];
        line.extend(&case);
        let out = cli(&url(&server), &line);
        assert_eq!(out.code, 0, "case {n} {case:?}: {out:?}");
        let got = json(&out.stdout);
        for field in ["matched", "deleted", "denied", "expired"] {
            assert_eq!(
                got[field].as_i64(),
                Some(expected[field]),
                "case {n} {case:?}: {field}: cli {got:?} vs SWEEP.CLEAR {expected:?}"
            );
        }
        // Without LIMIT both visit the whole keyspace (`scanned` may differ by a few keys that a
        // rehash moved under the cursor, so it is not compared).
        if !case.contains(&"--limit") {
            assert!(
                got["scanned"].as_i64().unwrap() >= before,
                "case {n}: {got:?}"
            );
        }
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        let mut want = vec!["id", "state", "pattern", "or", "except", "db", "progress"];
        want.extend(FIELDS);
        assert_eq!(names, want, "case {n}: every reply field, in order");
        assert_eq!(got["state"], "done");
        assert_eq!(got["db"], 2);
        assert_eq!(got["pattern"], case[0]);
        assert_eq!(got["progress"], 1.0);
        if !case.contains(&"--limit") {
            // LIMIT stops at whichever keys the scan met first: only the counts must agree.
            assert_eq!(
                all_keys(&mut con, 1),
                all_keys(&mut con, 2),
                "case {n} {case:?}: keys left"
            );
        }
        // And the job the CLI followed is the one the server reports.
        select(&mut con, 0);
        let id = got["id"].as_i64().unwrap();
        let job = status(&mut con, id);
        assert_eq!(job["deleted"], got["deleted"].to_string());
    }
}

/// The same over RESP3 (a map reply, a double for `progress`), and the human summary.
#[test]
fn resp3_and_the_human_summary() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 5000, "x");
    populate(&mut con, 100, "y");
    let out = cli(
        &format!("{}/?protocol=resp3", url(&server)),
        &["clear", "x:*", "--json"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let got = json(&out.stdout);
    assert_eq!(got["deleted"], 5000);
    assert_eq!(got["progress"], 1.0);
    assert_eq!(dbsize(&mut con), 100);

    let out = cli(&url(&server), &["clear", "y:*"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("done: job ") && out.stdout.contains("'y:*' on db 0\n"),
        "{out:?}"
    );
    for line in [
        "deleted", "denied", "expired", "matched", "scanned", "elapsed",
    ] {
        assert!(
            out.stdout.contains(&format!("\n  {line} ")),
            "no {line}: {out:?}"
        );
    }
    // Not a terminal: the progress goes to stderr as plain lines, the summary alone to stdout.
    assert!(out.stderr.starts_with("redis-sweep: job "), "{out:?}");
    assert!(
        out.stderr
            .contains("started: SWEEP.CLEAR 'y:*' ASYNC on db 0"),
        "{out:?}"
    );
    assert_eq!(dbsize(&mut con), 0);
}

/// A pattern of every key, without a terminal on stdin (a script): no prompt, it runs.
#[test]
fn sweep_of_everything_without_a_terminal_does_not_ask() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 1000, "k");
    let out = cli(&url(&server), &["clear", "*", "-q"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "--quiet");
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn status_and_cancel_as_tables_and_json() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 300_000, "big");
    let out = cli(&url(&server), &["status"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no sweeps running or remembered\n")
    );

    let id: i64 = redis::cmd("SWEEP.CLEAR")
        .arg("big:*")
        .arg("BATCH")
        .arg(1)
        .arg("COUNT")
        .arg(1)
        .arg("ASYNC")
        .query(&mut con)
        .unwrap();
    let out = cli(&url(&server), &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID  STATE "), "{out:?}");
    assert!(lines[1].contains(" big:* "), "{out:?}");

    let out = cli(&url(&server), &["cancel", &id.to_string(), "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let cancelled = json(&out.stdout);
    assert_eq!(cancelled["state"], "cancelled");
    let deleted_at_cancel = cancelled["deleted"].as_i64().unwrap();
    assert!(deleted_at_cancel < 300_000);

    let out = cli(&url(&server), &["status", &id.to_string()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("\nstate       cancelled\n"), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("\ndeleted     {deleted_at_cancel}\n")),
        "{out:?}"
    );

    let out = cli(&url(&server), &["status", "--json"]);
    let all: Vec<Json> = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"], id);
    assert_eq!(dbsize(&mut con), 300_000 - deleted_at_cancel);
}

/// Starts `clear` on a job long enough to interrupt (one key per slice), and waits until it has
/// its id.
fn long_clear(server: &Server, extra: &[&str]) -> (Running, i64) {
    let mut con = server.conn();
    populate(&mut con, 300_000, "big");
    let mut line = vec!["clear", "big:*", "--batch", "1", "--count", "1", "--json"];
    line.extend(extra);
    let run = Running::start(&url(server), &line);
    let started = run.wait_stderr("started");
    let id: i64 = started
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {started:?}"));
    (run, id)
}

#[test]
fn ctrl_c_cancels_the_job_and_prints_the_counts_reached() {
    let server = Server::start();
    let mut con = server.conn();
    let (run, id) = long_clear(&server, &[]);
    run.signal("INT");
    let out = run.finish();
    assert_eq!(out.code, 5, "cancelled: {out:?}");
    assert!(
        out.stderr.contains(&format!("Ctrl-C: cancelling job {id}")),
        "{out:?}"
    );
    let got = json(&out.stdout);
    assert_eq!(got["state"], "cancelled");
    let deleted = got["deleted"].as_i64().unwrap();
    assert!(deleted < 300_000, "{got:?}");
    // The server agrees, and nothing more goes.
    let job = status(&mut con, id);
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["deleted"], deleted.to_string());
    assert_eq!(dbsize(&mut con), 300_000 - deleted);
}

/// While SWEEP.CANCEL cannot run (writes paused), a second Ctrl-C exits at once, naming the job.
#[test]
fn second_ctrl_c_exits_at_once() {
    let server = Server::start();
    let mut con = server.conn();
    let (run, id) = long_clear(&server, &[]);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query::<()>(&mut con)
        .unwrap();
    run.signal("INT");
    run.wait_stderr("cancelling job");
    run.signal("INT");
    let out = run.finish();
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(out.code, 130, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "interrupted again: exiting without waiting; job {id} may still be running"
        )),
        "{out:?}"
    );
    assert_eq!(out.stdout, "");
    let _ = redis::cmd("SWEEP.CANCEL").arg(id).query::<Value>(&mut con);
}

#[test]
fn a_job_cancelled_elsewhere_or_aborted_gives_its_own_exit_code() {
    let server = Server::start();
    let mut con = server.conn();
    let (run, id) = long_clear(&server, &[]);
    let _: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(&mut con).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(json(&out.stdout)["state"], "cancelled");

    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    let (run, _id) = long_clear(&server, &[]);
    redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 6, "aborted: {out:?}");
    assert_eq!(json(&out.stdout)["state"], "aborted");
}

fn one_line_error(out: &run::Output, code: i32, wants: &[&str]) {
    assert_eq!(out.code, code, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert!(out.stderr.starts_with("redis-sweep: "), "{out:?}");
    for w in wants {
        assert!(out.stderr.contains(w), "{w:?} missing: {out:?}");
    }
}

#[test]
fn errors_are_one_line_with_their_exit_code() {
    let bare = Server::start_with(ServerOptions {
        load_module: false,
        ..ServerOptions::default()
    });
    for line in [&["clear", "a:*"][..], &["status"][..], &["cancel", "1"][..]] {
        let out = cli(&url(&bare), line);
        one_line_error(
            &out,
            3,
            &["the redis-sweep module is not loaded there", "MODULE LOAD"],
        );
    }
    drop(bare);

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = cli(&format!("redis://127.0.0.1:{port}"), &["status"]);
    one_line_error(&out, 4, &[&format!("cannot talk to 127.0.0.1:{port}")]);

    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 100, "k");
    let u = url(&server);
    one_line_error(&cli(&u, &["status", "99"]), 3, &["ERR no sweep with id 99"]);
    one_line_error(&cli(&u, &["cancel", "99"]), 3, &["ERR no sweep with id 99"]);
    one_line_error(&cli("http://x", &["status"]), 2, &["bad URL"]);
    let usage = cli(&u, &["clear", "k:*", "--persistent", "--volatile"]);
    assert_eq!(usage.code, 2, "{usage:?}");

    // ACL: a user without the command, and a wrong password.
    redis::cmd("ACL")
        .arg(&["SETUSER", "ops", "on", ">pw", "~*", "+@all", "-sweep.clear"])
        .query::<()>(&mut con)
        .unwrap();
    let out = cli(&u, &["clear", "k:*", "--user", "ops", "--pass", "pw"]);
    one_line_error(&out, 3, &["NOPERM", "ACL SETUSER ops +sweep.clear"]);
    // Allowed to start a sweep but not to follow it: the error says the job runs on.
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "blind",
            "on",
            ">pw",
            "~*",
            "+@all",
            "-sweep.status",
        ])
        .query::<()>(&mut con)
        .unwrap();
    let out = cli(
        &u,
        &["clear", "k:*", "-q", "--user", "blind", "--pass", "pw"],
    );
    one_line_error(
        &out,
        3,
        &[
            "NOPERM",
            "was started and may still be running (redis-sweep status",
        ],
    );
    let out = cli(&u, &["status", "--user", "ops", "--pass", "wrong"]);
    one_line_error(&out, 4, &["authentication to", "failed for user 'ops'"]);
    let out = cli(
        &format!("redis://ops:pw@127.0.0.1:{}", server.port),
        &["status"],
    );
    assert_eq!(out.code, 0, "credentials from the URL: {out:?}");

    // A read-only replica.
    let replica = Server::start_with(ServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            server.port.to_string(),
        ],
        ..ServerOptions::default()
    });
    let out = cli(&url(&replica), &["clear", "k:*"]);
    one_line_error(&out, 3, &["is a read-only replica", "on its primary"]);
    drop(replica);

    // A password the server wants and was not given.
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "secret"])
        .query::<()>(&mut con)
        .unwrap();
    let out = cli(&u, &["status"]);
    one_line_error(&out, 4, &["needs a password", "--pass"]);
    let out = cli(&u, &["status", "--pass", "secret"]);
    assert_eq!(out.code, 0, "{out:?}");
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", ""])
        .query::<()>(&mut con)
        .unwrap();
}

/// The options other work adds to the module (OR, EXCEPT, MINSIZE, PERSISTENT, VOLATILE,
/// LOCAL): a module that has them runs the sweep; one that lacks them gets a clean one-line
/// error naming the flag. Either way nothing breaks, before and after those land.
#[test]
fn newer_options_run_or_are_refused_cleanly() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 1000, "k");
    let flags: &[(&[&str], &str)] = &[
        (&["--or", "j:*"], "OR"),
        (&["--except", "k:1*"], "EXCEPT"),
        (&["--min-size", "1"], "MINSIZE"),
        (&["--persistent"], "PERSISTENT"),
        (&["--volatile"], "VOLATILE"),
        (&["--local"], "LOCAL"),
    ];
    for (flag, option) in flags {
        let mut line = vec!["clear", "k:*", "--dry-run", "--json"];
        line.extend(*flag);
        let out = cli(&url(&server), &line);
        if out.code == 0 {
            assert_eq!(json(&out.stdout)["state"], "done", "{flag:?}");
        } else {
            one_line_error(
                &out,
                3,
                &[
                    &format!("does not support {option} ({})", flag[0]),
                    "upgrade the module",
                ],
            );
        }
    }
    assert_eq!(dbsize(&mut con), 1000, "dry runs delete nothing");
}

/// Makes a CA and a certificate for 127.0.0.1 signed by it, with `openssl`, in `dir`.
fn make_certificates(dir: &std::path::Path) -> bool {
    let sh = |script: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
          -subj /CN=redis-sweep-test-ca \
        && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
          -subj /CN=localhost \
        && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext \
        && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
          -out server.pem -days 2 -extfile ext",
    )
}

/// `rediss://`: the CLI speaks TLS (rustls), checks the server's certificate against the
/// system's roots or SSL_CERT_FILE, and `#insecure` skips the check.
#[test]
fn rediss_urls_connect_over_tls() {
    let dir = std::env::temp_dir().join(format!("redis-sweep-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if !make_certificates(&dir) {
        eprintln!("SKIPPED: openssl could not make test certificates");
        return;
    }
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = |name: &str| dir.join(name).display().to_string();
    let server = std::panic::catch_unwind(|| {
        Server::start_with(ServerOptions {
            extra_args: vec![
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            ..ServerOptions::default()
        })
    });
    let Ok(server) = server else {
        eprintln!(
            "SKIPPED: {} does not start with TLS",
            common::server_binary()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let mut con = server.conn();
    populate(&mut con, 1000, "tls");
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");

    // The test CA is in no trust store: refused, with what to do.
    let out = cli(&tls_url, &["status"]);
    one_line_error(&out, 4, &["TLS with 127.0.0.1:", "SSL_CERT_FILE"]);

    let trusted = run::cli_env(
        &tls_url,
        &["clear", "tls:*", "--json"],
        &[("SSL_CERT_FILE", &file("ca.pem"))],
    );
    assert_eq!(trusted.code, 0, "{trusted:?}");
    assert_eq!(json(&trusted.stdout)["deleted"], 1000);

    let out = cli(&format!("{tls_url}/#insecure"), &["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The connection drops while the job runs: the tool reconnects and follows it to its end.
#[test]
fn a_dropped_connection_is_reopened() {
    let server = Server::start();
    let mut con = server.conn();
    let (run, id) = long_clear(&server, &[]);
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut con)
        .unwrap();
    assert!(killed >= 1);
    run.wait_stderr("reconnecting");
    // Still following: it sees the job end (cancelled here, so the test need not wait for it).
    let _: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(&mut con).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 5, "{out:?}");
    let got = json(&out.stdout);
    assert_eq!(
        (got["id"].as_i64(), got["state"].as_str()),
        (Some(id), Some("cancelled"))
    );
}

/// With `sweep.history 0` a finished job is forgotten at once: the tool cannot tell how it
/// ended, and says so (exit code 1).
#[test]
fn a_forgotten_job_is_an_unknown_outcome() {
    // On the loadmodule line: Redis 6.2 has no module configs for CONFIG SET.
    let server = Server::start_with(ServerOptions {
        module_args: vec!["sweep.history".into(), "0".into()],
        ..ServerOptions::default()
    });
    let mut con = server.conn();
    populate(&mut con, 1000, "k");
    let out = cli(&url(&server), &["clear", "k:*", "-q"]);
    one_line_error(&out, 1, &["no longer lists it (is sweep.history 0?)"]);
    assert_eq!(dbsize(&mut con), 0, "the sweep itself ran");
}
