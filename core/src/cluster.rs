//! The cluster protocol of SPEC §6, without a server: the messages primaries exchange over the
//! cluster bus, the slot a pattern pins, and the coordinator's bookkeeping of shares and
//! deadlines (time comes in as an argument, so every rule is tested with a settable clock).
//!
//! The bus is best effort: a message may be lost, duplicated by a retry, arrive late from an
//! earlier sweep, or come from a foreign module that shares the module id (every module whose
//! name is not 9 characters has id 0). So every message starts with a magic, a protocol version
//! and a request id, and [`Message::decode`] refuses anything that is not exactly a message of
//! this protocol: it never panics, whatever the bytes.

use std::time::{Duration, Instant};

use crate::sweep::Counts;

/// The first bytes of every message.
pub const MAGIC: [u8; 4] = *b"SWPc";
/// The protocol this build speaks. A node answers only messages of this version.
pub const VERSION: u16 = 1;
/// The message type registered with the server (never 255: the server's table has 255 slots).
pub const MESSAGE_TYPE: u8 = 0x53;
/// Most bytes one string field of a message may hold (a pattern, an option word, a user name).
const MAX_FIELD: usize = 1 << 20;
/// Most option words a request may carry.
const MAX_WORDS: usize = 4096;
/// How long a node id is (hex characters).
pub const NODE_ID_LEN: usize = 40;

/// How a share ended, as its node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareEnd {
    Done,
    Cancelled,
    Aborted,
    /// The node stopped being a primary (a failover): whoever took its slots must finish the
    /// share. Not an end for the coordinator.
    Handover,
}

impl ShareEnd {
    fn code(self) -> u8 {
        match self {
            ShareEnd::Done => 1,
            ShareEnd::Cancelled => 2,
            ShareEnd::Aborted => 3,
            ShareEnd::Handover => 4,
        }
    }

    fn from_code(code: u8) -> Option<ShareEnd> {
        Some(match code {
            1 => ShareEnd::Done,
            2 => ShareEnd::Cancelled,
            3 => ShareEnd::Aborted,
            4 => ShareEnd::Handover,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ShareEnd::Done => "done",
            ShareEnd::Cancelled => "cancelled",
            ShareEnd::Aborted => "aborted",
            ShareEnd::Handover => "handover",
        }
    }
}

/// What one message says. Every message also carries the request id of its sweep (see
/// [`Message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Coordinator → primary: the pre-check. "Could you run this share?" The receiver checks
    /// that it is a primary, that the user exists and that the options parse, and answers
    /// [`Body::Ready`]; it deletes nothing until [`Body::Start`].
    Prepare {
        /// The coordinator's node id (40 hex characters).
        coordinator: Vec<u8>,
        /// The coordinator's `host:port`, for the share's log line and `SWEEP.STATUS`.
        coordinator_addr: Vec<u8>,
        db: i32,
        /// The caller's ACL user name; `None` where the server has no per-key ACL.
        user: Option<Vec<u8>>,
        /// The arguments of `SWEEP.CLEAR` after its name (pattern first), re-parsed by the
        /// receiver, so that every option travels as the caller wrote it.
        words: Vec<Vec<u8>>,
    },
    /// Primary → coordinator: the answer to [`Body::Prepare`]; `reason` says why not.
    Ready { ok: bool, reason: Vec<u8> },
    /// Coordinator → primary: every share passed the pre-check; sweep now.
    Start,
    /// Primary → coordinator: a heartbeat with the share's counts so far.
    Progress { counts: Counts, elapsed_ms: u64 },
    /// Primary → coordinator: the share ended.
    Final {
        end: ShareEnd,
        counts: Counts,
        elapsed_ms: u64,
        reason: Vec<u8>,
    },
    /// Coordinator → primary: stop the share (`SWEEP.CANCEL`, the caller went away, or the
    /// pre-check failed elsewhere).
    Cancel,
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Prepare { .. } => 1,
            Body::Ready { .. } => 2,
            Body::Start => 3,
            Body::Progress { .. } => 4,
            Body::Final { .. } => 5,
            Body::Cancel => 6,
        }
    }
}

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chosen by the coordinator for each sweep; with the coordinator's node id it names the
    /// sweep on every node.
    pub request: u64,
    pub body: Body,
}

/// Why bytes were not taken as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not this protocol at all (wrong magic, too short to tell).
    Foreign,
    /// This protocol, another version: the request id, if it could be read.
    Version { found: u16, request: Option<u64> },
    /// The right header, a body that does not parse (truncated, trailing bytes, bad values).
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Foreign => write!(f, "not a sweep message"),
            DecodeError::Version { found, .. } => {
                write!(f, "protocol version {found} (this node speaks {VERSION})")
            }
            DecodeError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

impl Message {
    pub fn new(request: u64, body: Body) -> Message {
        Message { request, body }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(self.body.kind());
        out.extend_from_slice(&self.request.to_be_bytes());
        match &self.body {
            Body::Prepare {
                coordinator,
                coordinator_addr,
                db,
                user,
                words,
            } => {
                put_bytes(&mut out, coordinator);
                put_bytes(&mut out, coordinator_addr);
                out.extend_from_slice(&db.to_be_bytes());
                match user {
                    Some(name) => {
                        out.push(1);
                        put_bytes(&mut out, name);
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&u32::try_from(words.len()).unwrap_or(0).to_be_bytes());
                for word in words {
                    put_bytes(&mut out, word);
                }
            }
            Body::Ready { ok, reason } => {
                out.push(u8::from(*ok));
                put_bytes(&mut out, reason);
            }
            Body::Start | Body::Cancel => {}
            Body::Progress { counts, elapsed_ms } => {
                put_counts(&mut out, counts, *elapsed_ms);
            }
            Body::Final {
                end,
                counts,
                elapsed_ms,
                reason,
            } => {
                out.push(end.code());
                put_counts(&mut out, counts, *elapsed_ms);
                put_bytes(&mut out, reason);
            }
        }
        out
    }

    /// Reads a message; anything that is not exactly one message of this protocol and version
    /// is an error (the caller ignores it).
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { rest: bytes };
        let magic = r.take(4).map_err(|_| DecodeError::Foreign)?;
        if magic != MAGIC {
            return Err(DecodeError::Foreign);
        }
        let version = r.u16().map_err(|_| DecodeError::Foreign)?;
        if version != VERSION {
            let request = r.u8().and_then(|_| r.u64()).ok();
            return Err(DecodeError::Version {
                found: version,
                request,
            });
        }
        let kind = r.u8()?;
        let request = r.u64()?;
        let body = match kind {
            1 => {
                let coordinator = r.bytes()?;
                if coordinator.len() != NODE_ID_LEN {
                    return Err(DecodeError::Malformed("coordinator id"));
                }
                let coordinator_addr = r.bytes()?;
                let db = r.i32()?;
                let user = match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes()?),
                    _ => return Err(DecodeError::Malformed("user flag")),
                };
                let n = usize::try_from(r.u32()?).map_err(|_| DecodeError::Malformed("words"))?;
                if n == 0 || n > MAX_WORDS {
                    return Err(DecodeError::Malformed("word count"));
                }
                let mut words = Vec::new();
                for _ in 0..n {
                    words.push(r.bytes()?);
                }
                Body::Prepare {
                    coordinator,
                    coordinator_addr,
                    db,
                    user,
                    words,
                }
            }
            2 => {
                let ok = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Malformed("ready flag")),
                };
                Body::Ready {
                    ok,
                    reason: r.bytes()?,
                }
            }
            3 => Body::Start,
            4 => {
                let (counts, elapsed_ms) = r.counts()?;
                Body::Progress { counts, elapsed_ms }
            }
            5 => {
                let end =
                    ShareEnd::from_code(r.u8()?).ok_or(DecodeError::Malformed("share end"))?;
                let (counts, elapsed_ms) = r.counts()?;
                Body::Final {
                    end,
                    counts,
                    elapsed_ms,
                    reason: r.bytes()?,
                }
            }
            6 => Body::Cancel,
            _ => return Err(DecodeError::Malformed("unknown kind")),
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok(Message { request, body })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len().min(MAX_FIELD)).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..bytes.len().min(MAX_FIELD)).unwrap_or_default());
}

fn put_counts(out: &mut Vec<u8>, c: &Counts, elapsed_ms: u64) {
    for v in [
        c.scanned,
        c.matched,
        c.deleted,
        c.denied,
        c.expired,
        c.slices,
        c.slice_max_us,
        elapsed_ms,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

const TRUNCATED: DecodeError = DecodeError::Malformed("truncated");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(TRUNCATED)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| TRUNCATED)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = usize::try_from(self.u32()?).map_err(|_| TRUNCATED)?;
        if len > MAX_FIELD {
            return Err(DecodeError::Malformed("field too long"));
        }
        Ok(self.take(len)?.to_vec())
    }

    fn counts(&mut self) -> Result<(Counts, u64), DecodeError> {
        let counts = Counts {
            scanned: self.u64()?,
            matched: self.u64()?,
            deleted: self.u64()?,
            denied: self.u64()?,
            expired: self.u64()?,
            slices: self.u64()?,
            slice_max_us: self.u64()?,
        };
        Ok((counts, self.u64()?))
    }
}

/// Adds the counts of one share to a sum (the longest slice is the longest of any share).
pub fn add_counts(sum: &mut Counts, c: &Counts) {
    sum.scanned = sum.scanned.saturating_add(c.scanned);
    sum.matched = sum.matched.saturating_add(c.matched);
    sum.deleted = sum.deleted.saturating_add(c.deleted);
    sum.denied = sum.denied.saturating_add(c.denied);
    sum.expired = sum.expired.saturating_add(c.expired);
    sum.slices = sum.slices.saturating_add(c.slices);
    sum.slice_max_us = sum.slice_max_us.max(c.slice_max_us);
}

/// The CRC16 the cluster hashes keys with (XMODEM: polynomial 0x1021, initial value 0).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key, as the server computes it (`keyHashSlot`): the hash tag between the first
/// `{` and the first `}` after it, if not empty; otherwise the whole name.
pub fn key_slot(key: &[u8]) -> u16 {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let after = key.get(open + 1..).unwrap_or_default();
        if let Some(close) = after.iter().position(|&b| b == b'}') {
            if close > 0 {
                return crc16(after.get(..close).unwrap_or_default()) & 0x3FFF;
            }
        }
    }
    crc16(key) & 0x3FFF
}

/// The one slot every key a pattern can match lives in, read as the server's own `SCAN`
/// optimisation reads it (`patternHashSlot`, Redis 7.4): a non-empty hash tag closed before
/// any wildcard (`*`, `?`, `[`) or escape pins its slot; a pattern without wildcards is one
/// key name. `None` when the keys may be in any slot.
pub fn pattern_slot(pattern: &[u8]) -> Option<u16> {
    let mut open: Option<usize> = None;
    let mut empty_tag = false;
    for (i, &b) in pattern.iter().enumerate() {
        match b {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() && !empty_tag => open = Some(i),
            b'}' if !empty_tag => {
                if let Some(s) = open {
                    if i == s + 1 {
                        // `{}`: the whole key is hashed; keep looking for wildcards.
                        empty_tag = true;
                    } else {
                        return Some(crc16(pattern.get(s + 1..i).unwrap_or_default()) & 0x3FFF);
                    }
                }
            }
            _ => {}
        }
    }
    Some(crc16(pattern) & 0x3FFF)
}

/// The one slot every key that any of `patterns` can match lives in: each must pin a slot, and
/// all the same one (SPEC §9). `None` when there is no pattern or the keys may be anywhere.
pub fn patterns_slot<'a>(patterns: impl IntoIterator<Item = &'a [u8]>) -> Option<u16> {
    let mut slots = patterns.into_iter().map(pattern_slot);
    let first = slots.next()??;
    slots.all(|s| s == Some(first)).then_some(first)
}

/// Where a share stands, as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareState {
    /// Asked (`Prepare` sent), no answer yet.
    Asked,
    /// Answered the pre-check: it can run the share.
    Ready,
    /// Said no in the pre-check, with its reason.
    Refused(String),
    /// Sweeping (`Start` sent).
    Running,
    /// Reported its end.
    Ended(ShareEnd, String),
    /// Silent past the timeout, or failed, with nobody to take over.
    Lost(String),
}

impl ShareState {
    pub fn name(&self) -> &'static str {
        match self {
            ShareState::Asked | ShareState::Ready => "pending",
            ShareState::Refused(_) => "refused",
            ShareState::Running => "running",
            ShareState::Ended(end, _) => end.name(),
            ShareState::Lost(_) => "lost",
        }
    }

    pub fn is_final(&self) -> bool {
        match self {
            ShareState::Ended(ShareEnd::Handover, _) => false,
            ShareState::Refused(_) | ShareState::Ended(..) | ShareState::Lost(_) => true,
            ShareState::Asked | ShareState::Ready | ShareState::Running => false,
        }
    }

    /// Running, or handed over by a node that stopped being a primary: waiting for news.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            ShareState::Running | ShareState::Ended(ShareEnd::Handover, _)
        )
    }
}

/// One primary's part of a cluster sweep.
#[derive(Debug, Clone)]
pub struct Share {
    /// The node running it now (it changes when a replica takes over).
    pub node: String,
    /// Its `host:port`.
    pub addr: String,
    pub state: ShareState,
    /// The counts the node reported last.
    pub counts: Counts,
    /// Counts of the nodes that held this share before a takeover (their work is not redone
    /// for keys already gone; it is added).
    pub carried: Counts,
    /// When the node was last heard from (or asked).
    pub heard: Instant,
    /// Set once a takeover node is asked: it starts as soon as it answers.
    pub start_when_ready: bool,
}

impl Share {
    /// Everything this share deleted and scanned so far, across takeovers.
    pub fn total(&self) -> Counts {
        let mut c = self.carried;
        add_counts(&mut c, &self.counts);
        c
    }
}

/// What the coordinator must do next about the pre-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// Some shares have not answered, and the deadline has not passed.
    Waiting,
    /// Every share can run: send `Start`.
    Go,
    /// At least one share cannot run (refused, or silent past the deadline): `(addr, why)`.
    Refused(Vec<(String, String)>),
}

/// The coordinator's bookkeeping of one cluster sweep.
#[derive(Debug, Clone)]
pub struct Coordination {
    pub shares: Vec<Share>,
    pub timeout: Duration,
    pub started: Instant,
    /// Whether every share has been told to start.
    pub running: bool,
}

impl Coordination {
    /// `nodes`: `(node id, host:port)` of every primary that must run a share.
    pub fn new(nodes: Vec<(String, String)>, timeout: Duration, now: Instant) -> Coordination {
        Coordination {
            shares: nodes
                .into_iter()
                .map(|(node, addr)| Share {
                    node,
                    addr,
                    state: ShareState::Asked,
                    counts: Counts::default(),
                    carried: Counts::default(),
                    heard: now,
                    start_when_ready: false,
                })
                .collect(),
            timeout,
            started: now,
            running: false,
        }
    }

    fn share_mut(&mut self, node: &str) -> Option<&mut Share> {
        self.shares.iter_mut().find(|s| s.node == node)
    }

    /// A pre-check answer from `node`. Returns true when the node is a takeover node that must
    /// be sent `Start` now. Answers from nodes that hold no share, or that already answered,
    /// are ignored (false).
    pub fn on_ready(&mut self, node: &str, ok: bool, reason: &str, now: Instant) -> bool {
        let Some(share) = self.share_mut(node) else {
            return false;
        };
        if share.state != ShareState::Asked {
            return false;
        }
        share.heard = now;
        if !ok {
            share.state = ShareState::Refused(reason.to_string());
            return false;
        }
        if share.start_when_ready {
            share.state = ShareState::Running;
            return true;
        }
        share.state = ShareState::Ready;
        false
    }

    /// Where the pre-check stands at `now`.
    pub fn precheck(&self, now: Instant) -> Precheck {
        let mut refused = Vec::new();
        let mut waiting = false;
        for s in &self.shares {
            match &s.state {
                ShareState::Refused(why) => refused.push((s.addr.clone(), why.clone())),
                ShareState::Asked if now.saturating_duration_since(s.heard) >= self.timeout => {
                    refused.push((
                        s.addr.clone(),
                        "no answer: the module is not loaded there, or speaks another protocol"
                            .to_string(),
                    ))
                }
                ShareState::Asked => waiting = true,
                _ => {}
            }
        }
        if !refused.is_empty() && !waiting {
            Precheck::Refused(refused)
        } else if waiting {
            Precheck::Waiting
        } else {
            Precheck::Go
        }
    }

    /// Every share is told to start (the pre-check passed).
    pub fn start(&mut self, now: Instant) {
        self.running = true;
        for s in &mut self.shares {
            if s.state == ShareState::Ready {
                s.state = ShareState::Running;
                s.heard = now;
            }
        }
    }

    /// A heartbeat. Ignored from nodes without a running share.
    pub fn on_progress(&mut self, node: &str, counts: Counts, now: Instant) -> bool {
        match self.share_mut(node) {
            Some(s) if s.state == ShareState::Running => {
                s.counts = counts;
                s.heard = now;
                true
            }
            _ => false,
        }
    }

    /// A share's end. Ignored (false) from nodes without a running share, so a duplicate or a
    /// late report changes nothing.
    pub fn on_final(
        &mut self,
        node: &str,
        end: ShareEnd,
        counts: Counts,
        reason: &str,
        now: Instant,
    ) -> bool {
        match self.share_mut(node) {
            Some(s) if s.state == ShareState::Running => {
                s.counts = counts;
                s.heard = now;
                s.state = ShareState::Ended(end, reason.to_string());
                true
            }
            _ => false,
        }
    }

    /// Running shares whose node has been silent for the timeout: `(node id)`.
    pub fn overdue(&self, now: Instant) -> Vec<String> {
        self.shares
            .iter()
            .filter(|s| s.state.is_live() && now.saturating_duration_since(s.heard) >= self.timeout)
            .map(|s| s.node.clone())
            .collect()
    }

    /// Another node (a promoted replica) takes over the share of `old`: what `old` reported is
    /// kept, and the new node is asked afresh. False if `old` holds no unfinished share.
    pub fn take_over(&mut self, old: &str, node: String, addr: String, now: Instant) -> bool {
        let Some(s) = self.share_mut(old) else {
            return false;
        };
        if matches!(s.state, ShareState::Refused(_) | ShareState::Lost(_))
            || matches!(
                s.state,
                ShareState::Ended(ShareEnd::Done | ShareEnd::Cancelled, _)
            )
        {
            return false;
        }
        let counts = s.counts;
        add_counts(&mut s.carried, &counts);
        s.counts = Counts::default();
        s.node = node;
        s.addr = addr;
        s.state = ShareState::Asked;
        s.heard = now;
        s.start_when_ready = true;
        true
    }

    /// The share of `node` is given up.
    pub fn lose(&mut self, node: &str, why: &str) {
        if let Some(s) = self.share_mut(node) {
            if !s.state.is_final() {
                s.state = ShareState::Lost(why.to_string());
            }
        }
    }

    /// A takeover node that has not answered within the timeout is given up too.
    pub fn expire_takeovers(&mut self, now: Instant) {
        let timeout = self.timeout;
        for s in &mut self.shares {
            if s.start_when_ready
                && s.state == ShareState::Asked
                && now.saturating_duration_since(s.heard) >= timeout
            {
                s.state = ShareState::Lost("the node that took over did not answer".into());
            }
        }
    }

    /// Every share has ended one way or another.
    pub fn is_finished(&self) -> bool {
        self.shares.iter().all(|s| s.state.is_final())
    }

    /// The summed counts of every share.
    pub fn sum(&self) -> Counts {
        let mut sum = Counts::default();
        for s in &self.shares {
            add_counts(&mut sum, &s.total());
        }
        sum
    }

    /// How many shares ran to their end (`nodes`).
    pub fn nodes_done(&self) -> u64 {
        self.shares
            .iter()
            .filter(|s| matches!(s.state, ShareState::Ended(ShareEnd::Done, _)))
            .count() as u64
    }

    /// Shares that did not finish: `(addr, why)`; empty when the sweep is complete (a share
    /// cancelled by the caller is not a failure).
    pub fn failures(&self) -> Vec<(String, String)> {
        self.shares
            .iter()
            .filter_map(|s| match &s.state {
                ShareState::Lost(why) => Some((s.addr.clone(), format!("lost: {why}"))),
                ShareState::Ended(ShareEnd::Aborted, why) => {
                    Some((s.addr.clone(), format!("aborted: {why}")))
                }
                ShareState::Refused(why) => Some((s.addr.clone(), format!("refused: {why}"))),
                _ => None,
            })
            .collect()
    }

    /// Shares not yet final (for `SWEEP.CANCEL`: to whom the cancel goes).
    pub fn unfinished(&self) -> Vec<String> {
        self.shares
            .iter()
            .filter(|s| !s.state.is_final())
            .map(|s| s.node.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(deleted: u64) -> Counts {
        Counts {
            scanned: deleted * 2,
            matched: deleted,
            deleted,
            slices: 1,
            slice_max_us: deleted,
            ..Counts::default()
        }
    }

    fn prepare() -> Message {
        Message::new(
            7,
            Body::Prepare {
                coordinator: vec![b'a'; 40],
                coordinator_addr: b"127.0.0.1:7000".to_vec(),
                db: 0,
                user: Some(b"default".to_vec()),
                words: vec![b"k:*".to_vec(), b"DRYRUN".to_vec()],
            },
        )
    }

    fn every_kind() -> Vec<Message> {
        vec![
            prepare(),
            Message::new(
                u64::MAX,
                Body::Prepare {
                    coordinator: vec![b'0'; 40],
                    coordinator_addr: Vec::new(),
                    db: -1,
                    user: None,
                    words: vec![Vec::new()],
                },
            ),
            Message::new(
                1,
                Body::Ready {
                    ok: false,
                    reason: b"no user".to_vec(),
                },
            ),
            Message::new(2, Body::Start),
            Message::new(
                3,
                Body::Progress {
                    counts: counts(5),
                    elapsed_ms: 9,
                },
            ),
            Message::new(
                4,
                Body::Final {
                    end: ShareEnd::Aborted,
                    counts: counts(u64::MAX),
                    elapsed_ms: 1,
                    reason: b"why".to_vec(),
                },
            ),
            Message::new(5, Body::Cancel),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for m in every_kind() {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for m in every_kind() {
            let bytes = m.encode();
            for n in 0..bytes.len() {
                assert!(Message::decode(&bytes[..n]).is_err(), "{m:?} cut at {n}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = prepare().encode();
        bytes.push(0);
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::Malformed("trailing bytes"))
        );
    }

    #[test]
    fn foreign_and_other_versions_are_told_apart() {
        assert_eq!(Message::decode(b""), Err(DecodeError::Foreign));
        assert_eq!(
            Message::decode(b"hello world, not ours"),
            Err(DecodeError::Foreign)
        );
        let mut bytes = Message::new(42, Body::Start).encode();
        bytes[5] = 2;
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::Version {
                found: 2,
                request: Some(42)
            })
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let mut start = Message::new(1, Body::Start).encode();
        start[6] = 99;
        assert!(Message::decode(&start).is_err());
        let mut ready = Message::new(
            1,
            Body::Ready {
                ok: true,
                reason: Vec::new(),
            },
        )
        .encode();
        ready[15] = 2;
        assert!(Message::decode(&ready).is_err());
        // A coordinator id that is not 40 bytes.
        let short = Message::new(
            1,
            Body::Prepare {
                coordinator: b"abc".to_vec(),
                coordinator_addr: Vec::new(),
                db: 0,
                user: None,
                words: vec![b"*".to_vec()],
            },
        );
        assert!(Message::decode(&short.encode()).is_err());
        // No words at all: there is no pattern.
        let empty = Message::new(
            1,
            Body::Prepare {
                coordinator: vec![b'a'; 40],
                coordinator_addr: Vec::new(),
                db: 0,
                user: None,
                words: Vec::new(),
            },
        );
        assert!(Message::decode(&empty.encode()).is_err());
    }

    #[test]
    fn huge_lengths_do_not_allocate() {
        let mut bytes = Message::new(
            1,
            Body::Ready {
                ok: true,
                reason: Vec::new(),
            },
        )
        .encode();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Message::decode(&bytes).is_err());
    }

    // Slots as `CLUSTER KEYSLOT` gives them (checked against Redis 7.0.15).
    #[test]
    fn key_slots_match_the_server() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 0x3FFF);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn several_patterns_pin_a_slot_only_when_all_pin_the_same() {
        let t = pattern_slot(b"{t}:a*");
        assert!(t.is_some());
        assert_eq!(patterns_slot([&b"{t}:a*"[..], b"{t}:b*"]), t);
        assert_eq!(patterns_slot([&b"{t}:a*"[..], b"{u}:b*"]), None);
        assert_eq!(patterns_slot([&b"{t}:a*"[..], b"b*"]), None);
        assert_eq!(patterns_slot([&b"*"[..]]), None);
        assert_eq!(patterns_slot(std::iter::empty::<&[u8]>()), None);
    }

    #[test]
    fn pattern_slots_follow_the_scan_optimisation() {
        assert_eq!(pattern_slot(b"{tenant:42}:*"), Some(key_slot(b"tenant:42")));
        assert_eq!(pattern_slot(b"a{t}b*"), Some(key_slot(b"t")));
        assert_eq!(pattern_slot(b"exact-key"), Some(key_slot(b"exact-key")));
        assert_eq!(pattern_slot(b"{x}"), Some(key_slot(b"x")));
        assert_eq!(pattern_slot(b"*"), None);
        assert_eq!(pattern_slot(b"{ten*}:x"), None);
        assert_eq!(pattern_slot(b"a?{t}"), None);
        assert_eq!(pattern_slot(b"[ab]{t}"), None);
        assert_eq!(pattern_slot(b"\\{t}"), None);
        assert_eq!(pattern_slot(b"{t"), Some(key_slot(b"{t")));
        // `{}`: the whole name is hashed, so a wildcard after it unpins it.
        assert_eq!(pattern_slot(b"{}{t}*"), None);
        assert_eq!(pattern_slot(b"{}{t}"), Some(key_slot(b"{}{t}")));
    }

    fn t0() -> Instant {
        Instant::now()
    }

    const TIMEOUT: Duration = Duration::from_millis(1000);

    fn three(now: Instant) -> Coordination {
        Coordination::new(
            vec![
                ("a".into(), "h:1".into()),
                ("b".into(), "h:2".into()),
                ("c".into(), "h:3".into()),
            ],
            TIMEOUT,
            now,
        )
    }

    #[test]
    fn precheck_waits_then_goes() {
        let now = t0();
        let mut c = three(now);
        assert_eq!(c.precheck(now), Precheck::Waiting);
        c.on_ready("a", true, "", now);
        c.on_ready("b", true, "", now);
        assert_eq!(c.precheck(now), Precheck::Waiting);
        c.on_ready("c", true, "", now);
        assert_eq!(c.precheck(now), Precheck::Go);
        c.start(now);
        assert!(c.shares.iter().all(|s| s.state == ShareState::Running));
    }

    #[test]
    fn precheck_names_refusing_and_silent_nodes() {
        let now = t0();
        let mut c = three(now);
        c.on_ready("a", true, "", now);
        c.on_ready("b", false, "no user 'bob'", now);
        assert_eq!(c.precheck(now), Precheck::Waiting);
        let later = now + TIMEOUT;
        match c.precheck(later) {
            Precheck::Refused(nodes) => {
                assert_eq!(nodes.len(), 2);
                assert_eq!(nodes[0], ("h:2".into(), "no user 'bob'".into()));
                assert_eq!(nodes[1].0, "h:3");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_sum_and_nodes_count_finished_shares() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        assert!(c.on_progress("a", counts(1), now));
        assert!(c.on_final("a", ShareEnd::Done, counts(2), "", now));
        assert!(c.on_final("b", ShareEnd::Done, counts(3), "", now));
        // A duplicate final and a late heartbeat change nothing.
        assert!(!c.on_final("b", ShareEnd::Done, counts(100), "", now));
        assert!(!c.on_progress("b", counts(100), now));
        assert!(!c.on_progress("zz", counts(100), now));
        assert!(!c.is_finished());
        c.on_final("c", ShareEnd::Done, counts(4), "", now);
        assert!(c.is_finished());
        assert_eq!(c.sum().deleted, 9);
        assert_eq!(c.sum().slice_max_us, 4);
        assert_eq!(c.nodes_done(), 3);
        assert!(c.failures().is_empty());
    }

    #[test]
    fn silent_shares_are_overdue_after_the_timeout() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        let half = now + TIMEOUT / 2;
        c.on_progress("a", counts(1), half);
        c.on_final("b", ShareEnd::Done, counts(1), "", half);
        assert!(c.overdue(half).is_empty());
        assert_eq!(c.overdue(now + TIMEOUT), vec!["c".to_string()]);
        c.lose("c", "silent");
        c.on_final("a", ShareEnd::Done, counts(2), "", now + TIMEOUT);
        assert!(c.is_finished());
        assert_eq!(c.nodes_done(), 2);
        assert_eq!(c.failures(), vec![("h:3".into(), "lost: silent".into())]);
        assert_eq!(c.sum().deleted, 3);
    }

    #[test]
    fn a_takeover_node_finishes_the_share() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        c.on_progress("c", counts(5), now);
        assert!(c.take_over("c", "d".into(), "h:4".into(), now));
        // The old node's late messages are ignored.
        assert!(!c.on_final("c", ShareEnd::Done, counts(9), "", now));
        assert!(c.on_ready("d", true, "", now), "start it at once");
        c.on_final("d", ShareEnd::Done, counts(2), "", now);
        c.on_final("a", ShareEnd::Done, counts(1), "", now);
        c.on_final("b", ShareEnd::Done, counts(1), "", now);
        assert!(c.is_finished());
        assert_eq!(c.sum().deleted, 9);
        assert_eq!(c.nodes_done(), 3);
    }

    #[test]
    fn a_takeover_node_that_stays_silent_is_lost() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        c.take_over("a", "d".into(), "h:4".into(), now);
        c.expire_takeovers(now + TIMEOUT / 2);
        assert_eq!(c.shares[0].state, ShareState::Asked);
        c.expire_takeovers(now + TIMEOUT);
        assert_eq!(c.shares[0].state.name(), "lost");
    }

    #[test]
    fn a_handed_over_share_waits_for_its_heir() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        c.on_final("a", ShareEnd::Done, counts(1), "", now);
        c.on_final("b", ShareEnd::Done, counts(1), "", now);
        assert!(c.on_final("c", ShareEnd::Handover, counts(4), "role", now));
        assert!(!c.is_finished(), "a handover is not an end");
        assert!(c.overdue(now + TIMEOUT / 2).is_empty());
        assert_eq!(c.overdue(now + TIMEOUT), vec!["c".to_string()]);
        assert!(c.take_over("c", "d".into(), "h:4".into(), now + TIMEOUT));
        assert!(c.on_ready("d", true, "", now + TIMEOUT));
        c.on_final("d", ShareEnd::Done, counts(2), "", now + TIMEOUT);
        assert!(c.is_finished());
        assert_eq!(c.sum().deleted, 8);
        assert_eq!(c.nodes_done(), 3);
    }

    #[test]
    fn a_done_share_is_not_taken_over() {
        let now = t0();
        let mut c = three(now);
        for n in ["a", "b", "c"] {
            c.on_ready(n, true, "", now);
        }
        c.start(now);
        c.on_final("a", ShareEnd::Done, counts(1), "", now);
        assert!(!c.take_over("a", "d".into(), "h:4".into(), now));
        // An aborted one is (the node stopped being a primary).
        c.on_final("b", ShareEnd::Aborted, counts(1), "role", now);
        assert!(c.take_over("b", "e".into(), "h:5".into(), now));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn any_bytes_after_our_header_decode_without_panic(
            kind in 0u8..8,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&VERSION.to_be_bytes());
            bytes.push(kind);
            bytes.extend_from_slice(&tail);
            if let Ok(m) = Message::decode(&bytes) {
                // Whatever is accepted encodes back to the very same bytes.
                proptest::prop_assert_eq!(m.encode(), bytes);
            }
        }

        #[test]
        fn flipping_a_byte_never_panics(index in 0usize..200, value in proptest::num::u8::ANY) {
            for m in every_kind() {
                let mut bytes = m.encode();
                let n = bytes.len();
                bytes[index % n] = value;
                let _ = Message::decode(&bytes);
            }
        }
    }
}
