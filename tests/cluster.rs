//! SPEC §6: one `SWEEP.CLEAR` for the whole cluster, on real clusters (3 primaries, with and
//! without replicas), with the module on every node. Each test forms its own cluster and runs
//! several cases on it in turn; the tests run in parallel.

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use common::cluster::{Cluster, ClusterOptions};
use common::{reply, wait_until, Server};
use redis::Value;

fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A reply's fields, from a RESP3 map or a RESP2 field-value array, values left as they are.
fn map(v: &Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(items) => items
            .chunks(2)
            .map(|p| (text(&p[0]), p[1].clone()))
            .collect(),
        other => panic!("expected fields, got {other:?}"),
    }
}

fn int(m: &BTreeMap<String, Value>, field: &str) -> i64 {
    match m.get(field) {
        Some(Value::Int(i)) => *i,
        other => panic!("{field}: {other:?} in {m:?}"),
    }
}

fn status(con: &mut redis::Connection, id: i64) -> BTreeMap<String, Value> {
    let v: Value = redis::cmd("SWEEP.STATUS").arg(id).query(con).unwrap();
    map(&v)
}

fn wait_ended(con: &mut redis::Connection, id: i64) -> BTreeMap<String, Value> {
    let mut last = BTreeMap::new();
    wait_until("the cluster sweep to end", Duration::from_secs(60), || {
        last = status(con, id);
        text(&last["state"]) != "running"
    });
    last
}

fn shards(m: &BTreeMap<String, Value>) -> Vec<BTreeMap<String, Value>> {
    match &m["shards"] {
        Value::Array(items) => items.iter().map(map).collect(),
        other => panic!("shards: {other:?}"),
    }
}

fn clear(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<BTreeMap<String, i64>> {
    let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    reply::clear(con, &words)
}

fn start_async(con: &mut redis::Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd("SWEEP.CLEAR");
    for a in args {
        cmd.arg(*a);
    }
    cmd.arg("ASYNC").query(con).unwrap()
}

/// Local jobs of `node` that are shares of a cluster sweep (they name their coordinator).
fn shares_on(node: &Server) -> Vec<BTreeMap<String, Value>> {
    let v: Value = redis::cmd("SWEEP.STATUS").query(&mut node.conn()).unwrap();
    let Value::Array(jobs) = v else {
        panic!("{v:?}")
    };
    jobs.iter()
        .map(map)
        .filter(|j| j.contains_key("coordinator") && !j.contains_key("shards"))
        .collect()
}

/// `CLIENT PAUSE … WRITE`: the node's sweeps make no progress (they wait while writes are
/// paused) but its share runs and reports, so a test can act "mid-sweep" on any machine.
fn pause(node: &Server) {
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(120_000)
        .arg("WRITE")
        .query::<()>(&mut node.conn())
        .unwrap();
}

fn unpause(node: &Server) {
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query::<()>(&mut node.conn())
        .unwrap();
}

fn signal(node: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(node.pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {}", node.pid);
}

/// A keyspace with many shapes of names: prefixes, hash tags, binary-ish and glob characters.
fn varied_keys() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for i in 0..400 {
        all.push(format!("user:{i}").into_bytes());
        all.push(format!("session:{}:{i}", i % 7).into_bytes());
        all.push(format!("{{tenant:{}}}:item:{i}", i % 5).into_bytes());
        all.push(format!("cache:{{{}}}:{i}", i % 3).into_bytes());
    }
    for k in [
        "a*b", "a?b", "[x]", "h\\llo", "", "tenant", "{}x", "{x", "x}",
    ] {
        all.push(k.as_bytes().to_vec());
    }
    all
}

fn patterns() -> Vec<String> {
    let mut p: Vec<String> = vec![
        "*",
        "user:*",
        "user:1*",
        "user:?",
        "user:??",
        "user:[0-3]*",
        "user:[^0-3]*",
        "session:*",
        "session:3:*",
        "session:[13]:1?",
        "*:1",
        "*1",
        "{tenant:1}:*",
        "{tenant:4}:item:1*",
        "{tenant:*",
        "*tenant*",
        "cache:*",
        "cache:{1}:*",
        "cache:{2}:2*",
        "a\\*b",
        "a?b",
        "a*b",
        "\\[x\\]",
        "[[]x]",
        "h\\\\llo",
        "{}*",
        "{x",
        "x}",
        "nomatch*",
        "tenant",
        "*:item:3?",
        "user:[z-a]*",
        "[",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for i in 0..40 {
        p.push(format!("user:{i}*"));
        p.push(format!("{{tenant:{}}}:item:{i}", i % 5));
    }
    p
}

/// Sweeps from every primary, DRYRUN and real, equal the union of `KEYS` over the primaries;
/// RESP2 and RESP3; LOCAL; a slot-pinned pattern sent to a node that does not own the slot;
/// two coordinators at once; ASYNC with `shards`; CANCEL; replicas digest-equal; INFO.
#[test]
fn sweeps_the_whole_cluster() {
    let c = Cluster::start(ClusterOptions::default());
    let primaries: Vec<&Server> = c.primaries();
    assert_eq!(primaries.len(), 3);
    c.load(&varied_keys());
    let total = c.dbsize();

    // DRYRUN over many patterns, from each primary in turn, in RESP2 and RESP3.
    let mut cons: Vec<redis::Connection> = primaries.iter().map(|p| p.conn()).collect();
    for (i, pattern) in patterns().iter().enumerate() {
        let expected = c.keys(pattern.as_bytes()).len() as i64;
        let con = &mut cons[i % 3];
        if i % 2 == 1 {
            redis::cmd("HELLO").arg(3).query::<Value>(con).unwrap();
        } else {
            redis::cmd("HELLO").arg(2).query::<Value>(con).unwrap();
        }
        let got = clear(con, &[pattern, "DRYRUN"]).unwrap();
        assert_eq!(got["matched"], expected, "DRYRUN {pattern:?}");
        assert_eq!(got["deleted"], 0);
        let pinned = sweep_core::cluster::pattern_slot(pattern.as_bytes()).is_some();
        assert_eq!(
            got["nodes"],
            if pinned { 1 } else { 3 },
            "{pattern:?}: {got:?}"
        );
        if !pinned {
            assert_eq!(got["scanned"], total, "{pattern:?}");
        }
    }
    assert_eq!(c.dbsize(), total, "DRYRUN deleted nothing");

    // Real deletions: what goes is exactly the union of KEYS.
    for (i, pattern) in [
        "user:1*",
        "{tenant:2}:*",
        "session:[13]:*",
        "a?b",
        "cache:*",
    ]
    .iter()
    .enumerate()
    {
        let before = c.dbsize();
        let expected = c.keys(pattern.as_bytes()).len() as i64;
        assert!(expected > 0, "{pattern}");
        let got = clear(&mut primaries[i % 3].conn(), &[pattern]).unwrap();
        assert_eq!(got["deleted"], expected, "{pattern}: {got:?}");
        assert!(c.keys(pattern.as_bytes()).is_empty(), "{pattern}");
        assert_eq!(
            c.dbsize(),
            before - expected,
            "{pattern}: nothing else went"
        );
    }

    // LOCAL: this node only, `nodes` 1.
    let p0 = primaries[0];
    let mine: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("user:*")
        .query(&mut p0.conn())
        .unwrap();
    let others = c.keys(b"user:*").len() - mine.len();
    let got = clear(&mut p0.conn(), &["user:*", "LOCAL"]).unwrap();
    assert_eq!(got["deleted"], mine.len() as i64);
    assert_eq!(got["nodes"], 1);
    assert_eq!(c.keys(b"user:*").len(), others);

    // A slot-pinned pattern sent to each node that does not own its slot.
    c.load(&keys("{tenant:42}:k", 300));
    let slot = sweep_core::cluster::key_slot(b"tenant:42");
    let owner_port = c
        .slot_map(p0)
        .iter()
        .find(|(a, b, _)| (*a..=*b).contains(&slot))
        .map(|(_, _, p)| *p)
        .unwrap();
    let before = c.dbsize();
    let stranger = primaries.iter().find(|p| p.port != owner_port).unwrap();
    let got = clear(&mut stranger.conn(), &["{tenant:42}:*", "DRYRUN"]).unwrap();
    assert_eq!((got["matched"], got["nodes"]), (300, 1), "{got:?}");
    let got = clear(&mut stranger.conn(), &["{tenant:42}:*"]).unwrap();
    assert_eq!((got["deleted"], got["nodes"]), (300, 1), "{got:?}");
    assert!(
        got["scanned"] < before,
        "only the owner scans: {got:?} of {before}"
    );
    assert_eq!(c.dbsize(), before - 300);

    // Two coordinators at once, each with its own pattern, plus ASYNC status with shards.
    c.load(&keys("left:", 3000));
    c.load(&keys("right:", 3000));
    let mut a = primaries[1].conn();
    let mut b = primaries[2].conn();
    let ja = start_async(&mut a, &["left:*", "BATCH", "10"]);
    let jb = start_async(&mut b, &["right:*", "BATCH", "10"]);
    let sa = wait_ended(&mut a, ja);
    let sb = wait_ended(&mut b, jb);
    for (s, what) in [(&sa, "left"), (&sb, "right")] {
        assert_eq!(text(&s["state"]), "done", "{what}: {s:?}");
        assert_eq!(int(s, "deleted"), 3000, "{what}");
        assert_eq!(int(s, "nodes"), 3, "{what}");
        let sh = shards(s);
        assert_eq!(sh.len(), 3);
        let sum: i64 = sh.iter().map(|x| int(x, "deleted")).sum();
        assert_eq!(sum, 3000);
        for x in &sh {
            assert_eq!(text(&x["state"]), "done");
            assert!(text(&x["node"]).starts_with("127.0.0.1:"));
        }
    }
    assert!(c.keys(b"left:*").is_empty() && c.keys(b"right:*").is_empty());
    // Each primary shows its share, with the coordinator it worked for.
    for p in &primaries {
        let coordinators: Vec<String> = shares_on(p)
            .iter()
            .map(|j| text(&j["coordinator"]))
            .collect();
        assert!(
            coordinators.contains(&primaries[1].addr()),
            "{}: {coordinators:?}",
            p.addr()
        );
    }

    // SWEEP.CANCEL on the coordinator cancels every share.
    c.load(&keys("slow:", 5000));
    let mut con = primaries[0].conn();
    pause(primaries[1]);
    pause(primaries[2]);
    let id = start_async(&mut con, &["slow:*", "COUNT", "1", "BATCH", "1"]);
    wait_until("the paused shares to run", Duration::from_secs(30), || {
        primaries[1..]
            .iter()
            .all(|p| shares_on(p).iter().any(|j| text(&j["state"]) == "running"))
    });
    let v: Value = redis::cmd("SWEEP.CANCEL").arg(id).query(&mut con).unwrap();
    assert_eq!(text(&map(&v)["state"]), "cancelled");
    // The cancel travels on the bus: unpausing before it lands would let the shares finish.
    wait_until(
        "the paused shares to be cancelled",
        Duration::from_secs(30),
        || {
            primaries[1..].iter().all(|p| {
                shares_on(p)
                    .iter()
                    .any(|j| text(&j["pattern"]) == "slow:*" && text(&j["state"]) == "cancelled")
            })
        },
    );
    unpause(primaries[1]);
    unpause(primaries[2]);
    wait_until("every share to stop", Duration::from_secs(30), || {
        primaries
            .iter()
            .all(|p| shares_on(p).iter().all(|j| text(&j["state"]) != "running"))
    });
    let left = c.keys(b"slow:*").len();
    assert!(left > 0, "cancelled before the end");
    let s = status(&mut con, id);
    assert_eq!(text(&s["state"]), "cancelled");
    wait_until(
        "final counts of every share",
        Duration::from_secs(10),
        || {
            let s = status(&mut con, id);
            let states: Vec<String> = shards(&s).iter().map(|x| text(&x["state"])).collect();
            states.iter().all(|st| st == "cancelled" || st == "done")
                && states.iter().filter(|st| *st == "cancelled").count() >= 2
        },
    );
    let s = status(&mut con, id);
    assert_eq!(int(&s, "deleted"), 5000 - left as i64, "{s:?}");

    // Replicas end digest-equal to their primaries after a sweep under concurrent writes.
    let writer_port = primaries[2].port;
    let map = c.slot_map(primaries[2]);
    let tag = (0..10_000)
        .map(|i| format!("w{i}"))
        .find(|t| {
            let slot = sweep_core::cluster::key_slot(t.as_bytes());
            map.iter()
                .any(|(a, b, p)| *p == writer_port && (*a..=*b).contains(&slot))
        })
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = thread::spawn(move || {
        let mut con = common::cluster::conn_to(writer_port);
        let mut i = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            // Keys of this node's slots only: a hash tag the node owns.
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("slow:{{{tag}}}{i}"))
                .arg(i)
                .query(&mut con);
            i += 1;
        }
    });
    let got = clear(&mut primaries[1].conn(), &["slow:*"]).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(got["nodes"], 3);
    c.sync_replicas();
    for r in c.replicas() {
        let primary_port: u16 = r
            .info_field("replication", "master_port")
            .unwrap()
            .parse()
            .unwrap();
        let p = c.node_on(primary_port);
        let dp: String = redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut p.conn())
            .unwrap();
        let dr: String = redis::cmd("DEBUG")
            .arg("DIGEST")
            .query(&mut r.conn())
            .unwrap();
        assert_eq!(dp, dr, "replica {} of {}", r.addr(), p.addr());
        // Replicas never sweep.
        assert!(shares_on(r).is_empty(), "{} ran a share", r.addr());
    }

    // INFO counters.
    let requested: i64 = primaries[0]
        .info_field("sweep", "sweep_cluster_shares_requested")
        .unwrap()
        .parse()
        .unwrap();
    let served: i64 = primaries[0]
        .info_field("sweep", "sweep_cluster_shares_served")
        .unwrap()
        .parse()
        .unwrap();
    assert!(requested > 0 && served > 0, "{requested} {served}");
}

/// A primary stopped (SIGSTOP) or killed (SIGKILL) mid-sweep: the coordinator ends with
/// `ERR sweep incomplete` naming it, with the counts, once `sweep.cluster-timeout` passed;
/// nothing hangs. Then a coordinator killed mid-sweep: the other shares finish on their own.
#[test]
fn a_silent_primary_ends_the_sweep_incomplete() {
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        sweep_timeout_ms: 1500,
        ..ClusterOptions::default()
    });
    let primaries: Vec<&Server> = c.primaries();
    let (coordinator, victim) = (primaries[0], primaries[2]);
    c.load(&keys("k:", 10000));

    for sig in ["STOP", "KILL"] {
        pause(victim);
        let port = coordinator.port;
        let sweeper = thread::spawn(move || {
            let mut con = common::cluster::conn_to(port);
            clear(&mut con, &["k:*", "COUNT", "1", "BATCH", "1"])
        });
        wait_until("the victim's share to run", Duration::from_secs(30), || {
            shares_on(victim)
                .iter()
                .any(|j| text(&j["state"]) == "running")
        });
        signal(victim, sig);
        let err = sweeper.join().unwrap().unwrap_err().to_string();
        assert!(err.contains("sweep incomplete"), "{sig}: {err}");
        assert!(err.contains(&victim.addr()), "{sig}: {err}");
        assert!(
            err.contains("deleted ") && err.contains("nodes 2"),
            "{sig}: {err}"
        );
        assert!(!err.contains(&coordinator.addr()), "{sig}: {err}");
        if sig == "STOP" {
            signal(victim, "CONT");
            unpause(victim);
            // Its share goes on; let it end before the next round.
            wait_until("the victim's share to end", Duration::from_secs(60), || {
                shares_on(victim)
                    .iter()
                    .all(|j| text(&j["state"]) != "running")
            });
            c.load(&keys("k:", 10000));
        }
    }
    // The timed-out share is counted.
    let timed_out: i64 = coordinator
        .info_field("sweep", "sweep_cluster_shares_timed_out")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(timed_out, 2);
}

/// `CLUSTER FAILOVER` of a primary mid-sweep: its replica, promoted, finishes the share and
/// the sweep succeeds. Then the coordinator is killed mid-sweep: the others finish alone.
#[test]
fn failover_and_a_lost_coordinator() {
    let c = Cluster::start(ClusterOptions::default());
    let primaries: Vec<&Server> = c.primaries();
    c.load(&keys("f:", 10000));
    c.load(&keys("keep:", 1000));
    c.sync_replicas();
    let coordinator = primaries[0];
    let target = primaries[1];
    let replica = c
        .replicas()
        .into_iter()
        .find(|r| {
            r.info_field("replication", "master_port").as_deref()
                == Some(target.port.to_string().as_str())
        })
        .unwrap();
    let mut con = coordinator.conn();
    pause(target);
    let id = start_async(&mut con, &["f:*", "COUNT", "1", "BATCH", "1"]);
    wait_until("the target's share to run", Duration::from_secs(30), || {
        shares_on(target)
            .iter()
            .any(|j| text(&j["state"]) == "running")
    });
    // A manual failover the server does not complete within its own 5 s window is dropped
    // silently (on a loaded machine the offsets may not meet in time): ask again until it takes.
    let mut asked = std::time::Instant::now() - Duration::from_secs(60);
    wait_until("the failover", Duration::from_secs(90), || {
        if replica.info_field("replication", "role").as_deref() == Some("master") {
            return true;
        }
        if asked.elapsed() > Duration::from_secs(8) {
            redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .query::<()>(&mut replica.conn())
                .unwrap();
            asked = std::time::Instant::now();
        }
        false
    });
    unpause(target);
    let s = wait_ended(&mut con, id);
    assert_eq!(text(&s["state"]), "done", "{s:?}");
    assert_eq!(int(&s, "nodes"), 3, "{s:?}");
    let nodes: Vec<String> = shards(&s).iter().map(|x| text(&x["node"])).collect();
    assert!(nodes.contains(&replica.addr()), "{nodes:?}");
    c.wait_ok();
    c.wait_agree();
    assert!(c.keys(b"f:*").is_empty(), "every matching key went");
    assert_eq!(c.keys(b"keep:*").len(), 1000);
    assert!(int(&s, "deleted") >= 10000, "{s:?}");

    // The coordinator killed mid-sweep: the other shares run to their end.
    c.load(&keys("g:", 10000));
    let primaries: Vec<&Server> = c.primaries();
    let coordinator = primaries[0];
    let others: Vec<&Server> = primaries[1..].to_vec();
    let mut con = coordinator.conn();
    for p in &others {
        pause(p);
    }
    start_async(&mut con, &["g:*", "COUNT", "1", "BATCH", "1"]);
    wait_until("the shares to run", Duration::from_secs(30), || {
        others.iter().all(|p| {
            shares_on(p)
                .iter()
                .any(|j| text(&j["state"]) == "running" && text(&j["pattern"]) == "g:*")
        })
    });
    signal(coordinator, "KILL");
    for p in &others {
        unpause(p);
    }
    for p in &others {
        wait_until("the share to finish alone", Duration::from_secs(60), || {
            shares_on(p)
                .iter()
                .any(|j| text(&j["pattern"]) == "g:*" && text(&j["state"]) == "done")
        });
        let share = shares_on(p)
            .into_iter()
            .find(|j| text(&j["pattern"]) == "g:*")
            .unwrap();
        assert_eq!(text(&share["coordinator"]), coordinator.addr());
        let left: Vec<Vec<u8>> = redis::cmd("KEYS").arg("g:*").query(&mut p.conn()).unwrap();
        assert!(left.is_empty(), "{}", p.addr());
    }
}

/// A primary without the module, and nodes without the caller's user: refused before anything
/// is deleted, naming the nodes; blocking and ASYNC.
#[test]
fn refused_when_a_primary_cannot_take_part() {
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        sweep_timeout_ms: 1000,
        without_module: vec![2],
        ..ClusterOptions::default()
    });
    let primaries: Vec<&Server> = c.primaries();
    c.load(&keys("r:", 3000));
    let bare = &c.nodes[2];
    let coordinator = &c.nodes[0];
    let err = clear(&mut coordinator.conn(), &["r:*"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sweep refused"), "{err}");
    assert!(err.contains(&bare.addr()), "{err}");
    assert!(!err.contains(&c.nodes[1].addr()), "{err}");
    assert_eq!(c.dbsize(), 3000, "nothing deleted");

    // A user that only the coordinator knows: the other primaries refuse, named.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("bob")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .query::<()>(&mut coordinator.conn())
        .unwrap();
    let mut con = coordinator.conn();
    redis::cmd("AUTH")
        .arg("bob")
        .arg("pw")
        .query::<()>(&mut con)
        .unwrap();
    let id = start_async(&mut con, &["r:*"]);
    let s = wait_ended(&mut con, id);
    assert_eq!(text(&s["state"]), "aborted");
    let why = text(&s["reason"]);
    assert!(
        why.contains(&format!("{} (no user 'bob' here)", c.nodes[1].addr())),
        "{why}"
    );
    assert!(why.contains(&bare.addr()), "{why}");
    assert_eq!(c.dbsize(), 3000, "nothing deleted");

    // LOCAL needs nobody else.
    let got = clear(&mut coordinator.conn(), &["r:*", "LOCAL"]).unwrap();
    assert_eq!(got["nodes"], 1);
    assert!(got["deleted"] > 0);
    let _ = primaries;
}

/// Resharding mid-sweep: a slot holding matching and other keys moves (`CLUSTER SETSLOT` +
/// `MIGRATE`) from one primary to another while the sweep runs. Nothing crashes, nothing outside
/// the pattern is touched, and a second sweep leaves no matching key anywhere.
#[test]
fn resharding_mid_sweep() {
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        ..ClusterOptions::default()
    });
    let primaries: Vec<&Server> = c.primaries();
    let (from, to) = (primaries[1], primaries[2]);
    let map = c.slot_map(from);
    let tag = (0..10_000)
        .map(|i| format!("m{i}"))
        .find(|t| {
            let slot = sweep_core::cluster::key_slot(t.as_bytes());
            map.iter()
                .any(|(a, b, p)| *p == from.port && (*a..=*b).contains(&slot))
        })
        .unwrap();
    let slot = sweep_core::cluster::key_slot(tag.as_bytes());
    c.load(&keys(&format!("f:{{{tag}}}:"), 2000));
    c.load(&keys(&format!("keep:{{{tag}}}:"), 2000));
    c.load(&keys("f:", 30000));
    let (from_id, to_id) = (
        c.ids[c.nodes.iter().position(|n| n.port == from.port).unwrap()].clone(),
        c.ids[c.nodes.iter().position(|n| n.port == to.port).unwrap()].clone(),
    );
    let mut con = primaries[0].conn();
    let id = start_async(&mut con, &["f:*", "COUNT", "1", "BATCH", "1"]);
    let setslot = |node: &Server, args: &[&str]| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot);
        for a in args {
            cmd.arg(*a);
        }
        cmd.query::<()>(&mut node.conn()).unwrap();
    };
    setslot(to, &["IMPORTING", &from_id]);
    setslot(from, &["MIGRATING", &to_id]);
    let mut src = from.conn();
    loop {
        let batch: Vec<Vec<u8>> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query(&mut src)
            .unwrap();
        if batch.is_empty() {
            break;
        }
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to.port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&batch)
            .query::<()>(&mut src)
            .unwrap();
    }
    for node in &primaries {
        setslot(node, &["NODE", &to_id]);
    }
    let s = wait_ended(&mut con, id);
    let state = text(&s["state"]);
    assert!(state == "done" || state == "aborted", "{s:?}");
    c.wait_ok();
    let kept: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("keep:{{{tag}}}:*"))
        .query(&mut to.conn())
        .unwrap();
    assert_eq!(
        kept.len(),
        2000,
        "keys outside the pattern moved, untouched"
    );
    let again = clear(&mut primaries[0].conn(), &["f:*"]).unwrap();
    assert_eq!(again["nodes"], 3);
    assert!(c.keys(b"f:*").is_empty());
    assert_eq!(c.keys(b"keep:*").len(), 2000);
}

/// Valkey 9's atomic slot migration (`CLUSTER MIGRATESLOTS`) mid-sweep: allowed with the module
/// loaded (it declares it handles it), and nothing outside the pattern is touched.
#[test]
fn atomic_slot_migration_on_valkey_9() {
    if common::binary_version().0 < 9 || !common::server_binary().contains("valkey") {
        eprintln!("skipped: CLUSTER MIGRATESLOTS needs Valkey 9");
        return;
    }
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        ..ClusterOptions::default()
    });
    let primaries: Vec<&Server> = c.primaries();
    let (from, to) = (primaries[0], primaries[1]);
    let map = c.slot_map(from);
    let tag = (0..10_000)
        .map(|i| format!("m{i}"))
        .find(|t| {
            let slot = sweep_core::cluster::key_slot(t.as_bytes());
            map.iter()
                .any(|(a, b, p)| *p == from.port && (*a..=*b).contains(&slot))
        })
        .unwrap();
    let slot = sweep_core::cluster::key_slot(tag.as_bytes());
    c.load(&keys(&format!("f:{{{tag}}}:"), 2000));
    c.load(&keys(&format!("keep:{{{tag}}}:"), 2000));
    c.load(&keys("f:", 30000));
    let to_id = c.ids[c.nodes.iter().position(|n| n.port == to.port).unwrap()].clone();
    let mut con = primaries[2].conn();
    let id = start_async(&mut con, &["f:*", "COUNT", "1", "BATCH", "1"]);
    redis::cmd("CLUSTER")
        .arg("MIGRATESLOTS")
        .arg("SLOTSRANGE")
        .arg(slot)
        .arg(slot)
        .arg("NODE")
        .arg(&to_id)
        .query::<()>(&mut from.conn())
        .unwrap();
    wait_until("the slot to move", Duration::from_secs(60), || {
        c.slot_map(from)
            .iter()
            .any(|(a, b, p)| *p == to.port && (*a..=*b).contains(&slot))
    });
    let s = wait_ended(&mut con, id);
    let state = text(&s["state"]);
    assert!(state == "done" || state == "aborted", "{s:?}");
    c.wait_ok();
    let kept: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("keep:{{{tag}}}:*"))
        .query(&mut to.conn())
        .unwrap();
    assert_eq!(
        kept.len(),
        2000,
        "keys outside the pattern moved, untouched"
    );
    clear(&mut primaries[2].conn(), &["f:*"]).unwrap();
    assert!(c.keys(b"f:*").is_empty());
}

/// A primary the cluster marks failed, with no replica to take over, is given up at once (not
/// after `sweep.cluster-timeout`, set here far above the cluster's node timeout). `ASYNC`: once
/// the cluster state is `fail`, the server itself unblocks a blocking caller with `-CLUSTERDOWN`
/// (which cancels the sweep), so only a job can show the outcome.
#[test]
fn a_failed_primary_without_replica_is_lost_at_once() {
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        sweep_timeout_ms: 600_000,
        node_timeout_ms: 2000,
        ..ClusterOptions::default()
    });
    let primaries: Vec<&Server> = c.primaries();
    let (coordinator, victim) = (primaries[0], primaries[2]);
    c.load(&keys("k:", 10000));
    pause(victim);
    let mut con = coordinator.conn();
    let id = start_async(&mut con, &["k:*", "COUNT", "1", "BATCH", "1"]);
    wait_until("the victim's share to run", Duration::from_secs(30), || {
        shares_on(victim)
            .iter()
            .any(|j| text(&j["state"]) == "running")
    });
    signal(victim, "STOP");
    let s = wait_ended(&mut con, id);
    signal(victim, "CONT");
    assert_eq!(text(&s["state"]), "aborted", "{s:?}");
    let why = text(&s["reason"]);
    assert!(why.contains("sweep incomplete"), "{why}");
    assert!(
        why.contains(&format!(
            "{} (lost: the cluster marked it failed and it has no replica)",
            victim.addr()
        )),
        "{why}"
    );
    assert_eq!(int(&s, "nodes"), 2, "{s:?}");
    let lost: Vec<String> = shards(&s)
        .iter()
        .filter(|x| text(&x["state"]) == "lost")
        .map(|x| text(&x["node"]))
        .collect();
    assert_eq!(lost, vec![victim.addr()]);
}
