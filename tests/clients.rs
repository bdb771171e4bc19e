//! The client examples of `examples/` (TypeScript with ioredis and node-redis, Python with redis-py
//! sync and asyncio in RESP2 and RESP3, Rust with the `redis` crate), each run as a user would run
//! it against a server with the module, on a dataset made here; what it printed is checked against
//! `DBSIZE`. `make test-clients` installs the clients (npm ci, a Python venv, the Rust example)
//! and runs these; they are ignored by plain `make test`, which has no Node or venv to rely on.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ops::{dbsize, populate};
use common::{Server, ServerOptions};

const MATCHING: usize = 20_000;
const OTHERS: usize = 5_000;
/// For the cancel examples: large, and swept in small slices, so it cannot end before the cancel.
const MATCHING_FOR_CANCEL: usize = 200_000;
const EXAMPLE_DEADLINE: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("SWEEP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/py-venv/bin/python"))
}

fn node_runner() -> PathBuf {
    root().join("examples/typescript/dist/run.js")
}

fn rust_example() -> PathBuf {
    root().join("target/release/sweep-example")
}

/// Runs `cmd` to its end (within a deadline) and returns what it printed; fails on an error exit.
fn output_of(mut cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (run `make test-clients`)"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > EXAMPLE_DEADLINE {
            let _ = child.kill();
            panic!("{shown} did not end within {EXAMPLE_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value printed after `name` on the `result` line, whichever way the example prints it:
/// JSON (`"deleted": 12`, `"state":"cancelled"`) or words (`deleted 12 state cancelled`).
fn result_field(stdout: &str, name: &str) -> String {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("no `result` line in:\n{stdout}"));
    let after = line
        .split_once(name)
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .1;
    after
        .trim_start_matches(['"', ':', ' '])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn deleted(stdout: &str) -> i64 {
    let text = result_field(stdout, "deleted");
    text.parse()
        .unwrap_or_else(|_| panic!("deleted {text:?} is not a number in:\n{stdout}"))
}

/// Builds the command that runs one example (`clear`, `progress`, `cancel`) against a port.
type Runner = Box<dyn Fn(&str, u16) -> Command>;

/// How to run one client's examples.
struct Client {
    name: &'static str,
    command: Runner,
}

/// The three examples of a client: the drop-in `clearAllImageCaches`, the ASYNC sweep with
/// progress, and the sweep cancelled at a deadline; each checked against DBSIZE.
fn check_client(client: Client) {
    let server = Server::start();
    let mut con = server.conn();

    // The drop-in: deletes every image_proxy:* key, says how many.
    populate(&mut con, MATCHING, "image_proxy");
    populate(&mut con, OTHERS, "other");
    let before = dbsize(&mut con);
    let out = output_of((client.command)("clear", server.port));
    let after = dbsize(&mut con);
    assert_eq!(
        deleted(&out),
        before - after,
        "{}: clear said\n{out}",
        client.name
    );
    assert_eq!(
        after, OTHERS as i64,
        "{}: clear left image_proxy keys",
        client.name
    );

    // ASYNC + SWEEP.STATUS: at least one progress report, then the count.
    populate(&mut con, MATCHING, "image_proxy");
    let before = dbsize(&mut con);
    let out = output_of((client.command)("progress", server.port));
    let after = dbsize(&mut con);
    assert!(
        out.lines().any(|l| l.starts_with("progress ")),
        "{}: no progress line in\n{out}",
        client.name
    );
    assert_eq!(
        deleted(&out),
        MATCHING as i64,
        "{}: progress said\n{out}",
        client.name
    );
    assert_eq!(before - after, MATCHING as i64, "{}", client.name);
    drop(con);
    drop(server);

    // SWEEP.CANCEL at once (deadline 0) on a sweep of small slices: what it reports deleted is
    // exactly what went; the rest stays.
    let server = Server::start_with(ServerOptions {
        module_args: vec!["sweep.batch".into(), "50".into()],
        ..Default::default()
    });
    let mut con = server.conn();
    populate(&mut con, MATCHING_FOR_CANCEL, "image_proxy");
    let before = dbsize(&mut con);
    let out = output_of((client.command)("cancel", server.port));
    let after = dbsize(&mut con);
    assert_eq!(
        result_field(&out, "state"),
        "cancelled",
        "{}:\n{out}",
        client.name
    );
    let n = deleted(&out);
    assert_eq!(n, before - after, "{}: cancel said\n{out}", client.name);
    assert!(
        n < MATCHING_FOR_CANCEL as i64,
        "{}: nothing was left to cancel",
        client.name
    );
}

fn node(client: &'static str) -> Client {
    Client {
        name: client,
        command: Box::new(move |example, port| {
            let mut cmd = Command::new("node");
            cmd.arg(node_runner())
                .args([client, example, &port.to_string(), "image_proxy:*", "0"]);
            cmd
        }),
    }
}

fn python_script(name: &'static str, script: &'static str, protocol: u8) -> Client {
    Client {
        name,
        command: Box::new(move |example, port| {
            let mut cmd = Command::new(python());
            cmd.current_dir(root().join("examples/python"))
                .arg(script)
                .args([example, "image_proxy:*", "0"])
                .env(
                    "REDIS_URL",
                    format!("redis://127.0.0.1:{port}/?protocol={protocol}"),
                );
            cmd
        }),
    }
}

#[test]
#[ignore = "make test-clients (needs the npm packages of examples/typescript)"]
fn typescript_ioredis() {
    check_client(node("ioredis"));
}

#[test]
#[ignore = "make test-clients (needs the npm packages of examples/typescript)"]
fn typescript_node_redis_resp2() {
    check_client(node("node-redis"));
}

#[test]
#[ignore = "make test-clients (needs the npm packages of examples/typescript)"]
fn typescript_node_redis_resp3() {
    check_client(node("node-redis-resp3"));
}

#[test]
#[ignore = "make test-clients (needs the Python venv with redis-py)"]
fn python_sync_resp2_and_resp3() {
    check_client(python_script("redis-py sync RESP2", "sweep_sync.py", 2));
    check_client(python_script("redis-py sync RESP3", "sweep_sync.py", 3));
}

#[test]
#[ignore = "make test-clients (needs the Python venv with redis-py)"]
fn python_asyncio_resp2_and_resp3() {
    check_client(python_script("redis.asyncio RESP2", "sweep_async.py", 2));
    check_client(python_script("redis.asyncio RESP3", "sweep_async.py", 3));
}

/// The README's Python snippet, as a user pastes it: with redis-py's default protocol (RESP3,
/// where the reply is a dict) and with RESP2 (a flat list).
#[test]
#[ignore = "make test-clients (needs the Python venv with redis-py)"]
fn python_readme_quickstart_in_both_protocols() {
    let server = Server::start();
    let mut con = server.conn();
    for (url_tail, shape) in [("", "dict"), ("?protocol=2", "list")] {
        let url = format!("redis://127.0.0.1:{}/{url_tail}", server.port);
        // The default really is RESP3 with the pinned redis-py, and protocol=2 really is RESP2.
        let mut probe = Command::new(python());
        probe.env("REDIS_URL", &url).args([
            "-c",
            "import os, redis; r = redis.Redis.from_url(os.environ['REDIS_URL']); \
             print(type(r.execute_command('SWEEP.CLEAR', 'nothing:*')).__name__)",
        ]);
        assert_eq!(output_of(probe).trim(), shape, "reply shape for {url}");

        populate(&mut con, MATCHING, "image_proxy");
        populate(&mut con, OTHERS, "other");
        let before = dbsize(&mut con);
        let mut cmd = Command::new(python());
        cmd.current_dir(root().join("examples/python"))
            .arg("quickstart.py")
            .env("REDIS_URL", &url);
        let out = output_of(cmd);
        let after = dbsize(&mut con);
        // "deleted N of M keys in T ms": N is what went (M, the keys scanned, may count a key
        // twice while the table is resized, as SCAN may).
        let expected = format!("deleted {} of ", before - after);
        assert!(
            out.starts_with(&expected),
            "{url}: expected {expected:?}..., got {out:?}"
        );
    }
}

#[test]
#[ignore = "make test-clients (needs target/release/sweep-example)"]
fn rust_redis_crate_resp2_and_resp3() {
    for (name, url_tail) in [
        ("redis-rs RESP2", ""),
        ("redis-rs RESP3", "?protocol=resp3"),
    ] {
        check_client(Client {
            name,
            command: Box::new(move |example, port| {
                let mut cmd = Command::new(rust_example());
                cmd.args([example, "image_proxy:*", "0"])
                    .env("REDIS_URL", format!("redis://127.0.0.1:{port}/{url_tail}"));
                cmd
            }),
        });
    }
}
