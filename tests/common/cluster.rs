//! A real Redis/Valkey Cluster for the tests: primaries and replicas on free loopback ports, each
//! a `Server` of the shared harness started with `--cluster-enabled yes`, joined with `CLUSTER
//! MEET`, slots given with `CLUSTER ADDSLOTSRANGE`, replicas attached with `CLUSTER REPLICATE`,
//! and ready once every node says `cluster_state:ok`. Keys are written through their owners.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Value;

use super::{wait_until, Server, ServerOptions};

const FORM_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// `sweep.cluster-timeout` on every node, in milliseconds.
    pub sweep_timeout_ms: u64,
    /// `cluster-node-timeout`, in milliseconds.
    pub node_timeout_ms: u64,
    /// Nodes (by index: primaries first, then replicas) started without the module.
    pub without_module: Vec<usize>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            primaries: 3,
            replicas_per_primary: 1,
            sweep_timeout_ms: 2000,
            node_timeout_ms: 15000,
            without_module: Vec::new(),
        }
    }
}

pub struct Cluster {
    /// Every node: the first `primaries` were primaries when the cluster formed.
    pub nodes: Vec<Server>,
    pub ids: Vec<String>,
    pub opts: ClusterOptions,
}

/// `(first, last, primary port)` of each slot range.
type SlotMap = Vec<(u16, u16, u16)>;

impl Cluster {
    pub fn start(opts: ClusterOptions) -> Cluster {
        let total = opts.primaries * (1 + opts.replicas_per_primary);
        let nodes: Vec<Server> = (0..total)
            .map(|i| {
                Server::start_with(ServerOptions {
                    extra_args: vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-node-timeout".into(),
                        opts.node_timeout_ms.to_string(),
                    ],
                    load_module: !opts.without_module.contains(&i),
                    module_args: vec![
                        "sweep.cluster-timeout".into(),
                        opts.sweep_timeout_ms.to_string(),
                    ],
                })
            })
            .collect();
        let ids: Vec<String> = nodes
            .iter()
            .map(|n| {
                redis::cmd("CLUSTER")
                    .arg("MYID")
                    .query(&mut n.conn())
                    .unwrap()
            })
            .collect();
        let slots_each = 16384 / opts.primaries;
        for (i, node) in nodes.iter().enumerate().take(opts.primaries) {
            let first = i * slots_each;
            let last = if i + 1 == opts.primaries {
                16383
            } else {
                first + slots_each - 1
            };
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query::<()>(&mut node.conn())
                .unwrap();
        }
        let mut first = nodes[0].conn();
        for node in &nodes[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .query::<()>(&mut first)
                .unwrap();
        }
        // Every node must know every other before a replica can follow its primary.
        for node in &nodes {
            let mut con = node.conn();
            wait_until("every node to know every other", FORM_DEADLINE, || {
                let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con).unwrap();
                text.lines().count() == total && !text.contains("handshake")
            });
        }
        for (r, node) in nodes.iter().enumerate().skip(opts.primaries) {
            let primary = (r - opts.primaries) / opts.replicas_per_primary.max(1);
            redis::cmd("CLUSTER")
                .arg("REPLICATE")
                .arg(&ids[primary])
                .query::<()>(&mut node.conn())
                .unwrap();
        }
        let cluster = Cluster { nodes, ids, opts };
        cluster.wait_ok();
        for node in cluster.nodes.iter().skip(cluster.opts.primaries) {
            wait_until("replicas to sync", FORM_DEADLINE, || {
                node.info_field("replication", "master_link_status")
                    .as_deref()
                    == Some("up")
            });
        }
        cluster
    }

    /// Waits until every node that is up says `cluster_state:ok` and agrees on the slot map.
    pub fn wait_ok(&self) {
        for node in &self.nodes {
            wait_until("cluster_state:ok", FORM_DEADLINE, || {
                node.info_field_cluster("cluster_state").as_deref() == Some("ok")
            });
        }
    }

    /// Waits until every node that answers reports the same owner for every slot (after a
    /// failover or a slot move, the news takes a moment to reach every node).
    pub fn wait_agree(&self) {
        wait_until("every node to agree on the slot map", FORM_DEADLINE, || {
            let maps: Vec<SlotMap> = self
                .nodes
                .iter()
                .filter_map(|n| {
                    let mut con = super::connect(n.port, Duration::from_secs(1)).ok()?;
                    let v: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).ok()?;
                    let _ = v;
                    Some(self.slot_map(n))
                })
                .map(|mut m| {
                    m.sort();
                    m
                })
                .collect();
            maps.windows(2).all(|w| w[0] == w[1])
        });
    }

    /// The slot map as `CLUSTER SLOTS` on `node` gives it.
    pub fn slot_map(&self, node: &Server) -> SlotMap {
        let v: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut node.conn())
            .unwrap();
        let Value::Array(ranges) = v else {
            panic!("CLUSTER SLOTS: {v:?}")
        };
        ranges
            .iter()
            .map(|r| {
                let Value::Array(parts) = r else {
                    panic!("{r:?}")
                };
                let int = |v: &Value| match v {
                    Value::Int(i) => *i,
                    other => panic!("{other:?}"),
                };
                let Value::Array(primary) = &parts[2] else {
                    panic!("{parts:?}")
                };
                (
                    int(&parts[0]) as u16,
                    int(&parts[1]) as u16,
                    int(&primary[1]) as u16,
                )
            })
            .collect()
    }

    pub fn node_on(&self, port: u16) -> &Server {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The primaries that own slots now, as `via` sees them, in slot order.
    pub fn primaries_via(&self, via: &Server) -> Vec<&Server> {
        let mut ports: Vec<u16> = Vec::new();
        for (_, _, port) in self.slot_map(via) {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        ports.into_iter().map(|p| self.node_on(p)).collect()
    }

    pub fn primaries(&self) -> Vec<&Server> {
        self.primaries_via(&self.nodes[0])
    }

    /// The replicas (nodes that are not slot-owning primaries).
    pub fn replicas(&self) -> Vec<&Server> {
        let primaries: Vec<u16> = self.primaries().iter().map(|p| p.port).collect();
        self.nodes
            .iter()
            .filter(|n| !primaries.contains(&n.port))
            .collect()
    }

    /// Writes every key through its owner, pipelined per owner.
    pub fn load(&self, keys: &[Vec<u8>]) {
        let map = self.slot_map(&self.nodes[0]);
        let mut by_owner: BTreeMap<u16, Vec<&Vec<u8>>> = BTreeMap::new();
        for key in keys {
            let slot = sweep_core::cluster::key_slot(key);
            let port = map
                .iter()
                .find(|(a, b, _)| (*a..=*b).contains(&slot))
                .map(|(_, _, p)| *p)
                .expect("every slot is served");
            by_owner.entry(port).or_default().push(key);
        }
        for (port, keys) in by_owner {
            let mut con = self.node_on(port).conn();
            for chunk in keys.chunks(1000) {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.cmd("SET").arg(key.as_slice()).arg("v").ignore();
                }
                pipe.query::<()>(&mut con).unwrap();
            }
        }
    }

    /// `KEYS pattern` over the primaries.
    pub fn keys(&self, pattern: &[u8]) -> BTreeSet<Vec<u8>> {
        let mut all = BTreeSet::new();
        for p in self.primaries() {
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut p.conn())
                .unwrap();
            all.extend(keys);
        }
        all
    }

    /// Keys on every primary together.
    pub fn dbsize(&self) -> i64 {
        self.primaries()
            .iter()
            .map(|p| redis::cmd("DBSIZE").query::<i64>(&mut p.conn()).unwrap())
            .sum()
    }

    /// Waits until every replica has processed everything its primary has written. Not `WAIT`:
    /// it waits only for the calling client's own last write, and a sweep's deletions are
    /// propagated by no client at all.
    pub fn sync_replicas(&self) {
        for r in self.replicas() {
            let port: u16 = r
                .info_field("replication", "master_port")
                .and_then(|p| p.parse().ok())
                .expect("a replica knows its primary's port");
            let p = self.node_on(port);
            wait_until("a replica to catch up", FORM_DEADLINE, || {
                let primary = p.info_field("replication", "master_repl_offset");
                let replica = r.info_field("replication", "master_repl_offset");
                primary.is_some() && primary == replica
            });
        }
    }

    /// Empties every primary (replicas follow).
    pub fn flush(&self) {
        for p in self.primaries() {
            redis::cmd("FLUSHALL").query::<()>(&mut p.conn()).unwrap();
        }
    }
}

impl Server {
    /// A field of `INFO cluster` / `CLUSTER INFO`.
    pub fn info_field_cluster(&self, field: &str) -> Option<String> {
        let text: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut self.conn())
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_string())
    }
}

/// A connection to any node by port (for threads that cannot borrow a `Server`).
pub fn conn_to(port: u16) -> redis::Connection {
    let con = super::connect(port, Duration::from_secs(5)).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    con
}
