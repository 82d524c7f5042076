//! Datapath threads ("PMD" threads, after OVS's poll-mode drivers): each
//! busy-polls the rx queues assigned to it and runs its own [`Pipeline`]
//! (so its own caches) over what they return; when nothing has arrived for
//! a while it sleeps in `poll(2)` on the queues' file descriptors, so an
//! idle switch costs almost no CPU.
//!
//! [`Datapath`] owns the threads and the port table. Ports can be added and
//! removed while traffic flows: the table is replaced (copy on write) and
//! each thread picks the new one up between batches, so the other ports are
//! never paused. Each port sits behind its own mutex, taken once per
//! receive or transmit *batch* by whichever thread uses it (a thread that
//! receives on port A and sends to port B takes each briefly); with one
//! thread per core and rx queues spread over threads the locks are almost
//! never contended.
//!
//! A port whose device disappears ([`PortError::Closed`]) is marked closed
//! and no longer polled; traffic to it is dropped and counted; the other
//! ports carry on.
//!
//! This module is the datapath's I/O shell: threads, `poll(2)` and an
//! eventfd (through `rustix`, safe wrappers), and the monotonic clock. The
//! pipeline it drives stays sans-IO.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use sluice_packet::BufferPool;

use crate::pipeline::{Pipeline, PipelineConfig, PipelineStats, SlowPath, TxQueues};
use crate::port::{DropReason, MAX_BATCH, PacketBatch, Port, PortError, PortStats};

/// How a datapath runs.
#[derive(Debug, Clone, Copy)]
pub struct DatapathConfig {
    /// Datapath threads (at least 1).
    pub threads: usize,
    /// Cache sizes of each thread's pipeline.
    pub pipeline: PipelineConfig,
    /// Packet buffers per thread.
    pub buffers: usize,
    /// Port numbers run from 1 to this (inclusive).
    pub max_ports: u32,
    /// Megaflows unused for this long are removed (OVS: 10 s).
    pub max_idle_ms: u64,
    /// Empty polling rounds before a thread sleeps. 0 sleeps as soon as a
    /// round finds nothing.
    pub spin_rounds: u32,
    /// Longest sleep, in milliseconds (threads with ports that have no file
    /// descriptor nap at most 1 ms).
    pub max_sleep_ms: u64,
    /// Light-load sleep (OVS's `pmd-maxsleep`), in microseconds, 0 = off:
    /// after a round in which no queue filled half a batch, the thread
    /// sleeps a little (growing by 1 µs per such round up to this), so
    /// that packets gather into batches instead of the thread spinning
    /// for each one. Costs up to this much latency; saves most of the CPU
    /// at moderate rates. Under load (half-full batches) it never sleeps.
    pub pmd_max_sleep_us: u64,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            threads: 1,
            pipeline: PipelineConfig::default(),
            buffers: 8192,
            max_ports: 1023,
            max_idle_ms: 10_000,
            spin_rounds: 2000,
            max_sleep_ms: 100,
            pmd_max_sleep_us: 0,
        }
    }
}

/// Why a port operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatapathError {
    /// Every port number is in use.
    #[error("the datapath has no free port number (it holds at most {0} ports)")]
    Full(u32),
    /// The number asked for is taken or out of range.
    #[error("port number {no} is {why}")]
    BadNumber {
        /// The number.
        no: u32,
        /// "in use" or the allowed range.
        why: String,
    },
    /// A port of that name is attached already.
    #[error("a port named {0:?} is attached already")]
    Duplicate(String),
}

/// One attached port.
struct Entry {
    no: u32,
    name: String,
    port: Mutex<Box<dyn Port>>,
    /// Copies of the rx queues' poll descriptors (to sleep on without
    /// holding the port's lock).
    poll_fds: Vec<Option<OwnedFd>>,
    /// Which thread polls each rx queue.
    rxq_thread: Vec<usize>,
    closed: AtomicBool,
    /// Packets other threads could not send to it (closed).
    tx_dropped: AtomicU64,
}

impl Entry {
    fn lock(&self) -> MutexGuard<'_, Box<dyn Port>> {
        self.port.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Table {
    /// Indexed by port number.
    ports: Vec<Option<Arc<Entry>>>,
}

/// What a thread reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// The thread's index.
    pub thread: usize,
    /// Its pipeline's counters.
    pub pipeline: PipelineStats,
    /// Megaflows it holds now.
    pub megaflows: usize,
    /// Time spent processing received batches (parse to transmit), ns.
    pub busy_ns: u64,
    /// Polling rounds.
    pub rounds: u64,
    /// Times it went to sleep for lack of traffic.
    pub sleeps: u64,
    /// Light-load naps (see [`DatapathConfig::pmd_max_sleep_us`]).
    pub light_sleeps: u64,
    /// Rx queues it polls.
    pub rx_queues: usize,
}

impl ThreadStats {
    /// Average busy nanoseconds per packet.
    pub fn ns_per_packet(&self) -> f64 {
        if self.pipeline.packets == 0 { 0.0 } else { self.busy_ns as f64 / self.pipeline.packets as f64 }
    }
}

/// What the control side sees of a port.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Its number.
    pub no: u32,
    /// Its name.
    pub name: String,
    /// Its counters (plus packets the datapath could not send to it).
    pub stats: PortStats,
    /// True once its device is gone.
    pub closed: bool,
    /// The thread of each rx queue.
    pub rxq_threads: Vec<usize>,
}

struct ThreadShared {
    wake: OwnedFd,
    stats: Mutex<ThreadStats>,
    dump: Mutex<Option<mpsc::Sender<Vec<String>>>>,
    dump_requested: AtomicBool,
}

struct Shared {
    table: Mutex<Arc<Table>>,
    version: AtomicU64,
    stop: AtomicBool,
    slow: Arc<dyn SlowPath>,
    threads: Vec<ThreadShared>,
    config: DatapathConfig,
    start: Instant,
}

impl Shared {
    fn table(&self) -> Arc<Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn wake_all(&self) {
        for t in &self.threads {
            // A full eventfd counter (never here) only means it is awake.
            let _ = rustix::io::write(&t.wake, &1u64.to_ne_bytes());
        }
    }
}

/// The running datapath: threads, ports and the slow path they share.
pub struct Datapath {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    next_thread: Mutex<usize>,
}

impl Datapath {
    /// Starts `config.threads` datapath threads with no ports.
    pub fn start(config: DatapathConfig, slow: Arc<dyn SlowPath>) -> std::io::Result<Datapath> {
        let n = config.threads.max(1);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            threads.push(ThreadShared {
                wake: rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?,
                stats: Mutex::new(ThreadStats { thread: i, ..ThreadStats::default() }),
                dump: Mutex::new(None),
                dump_requested: AtomicBool::new(false),
            });
        }
        let shared = Arc::new(Shared {
            table: Mutex::new(Arc::new(Table::default())),
            version: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            slow,
            threads,
            config: DatapathConfig { threads: n, ..config },
            start: Instant::now(),
        });
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let s = shared.clone();
            handles.push(std::thread::Builder::new().name(format!("sluice-dp{i}")).spawn(move || run_thread(s, i))?);
        }
        Ok(Datapath { shared, handles, next_thread: Mutex::new(0) })
    }

    /// Milliseconds since the datapath started (the clock its caches use).
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// The shared slow path.
    pub fn slow_path(&self) -> &Arc<dyn SlowPath> {
        &self.shared.slow
    }

    /// Attaches `port` at the lowest free number, spreading its rx queues
    /// over the threads; returns the number.
    pub fn add_port(&self, port: Box<dyn Port>) -> Result<u32, DatapathError> {
        self.add_port_at(None, port)
    }

    /// Attaches `port` at number `no` (or the lowest free one).
    pub fn add_port_at(&self, no: Option<u32>, port: Box<dyn Port>) -> Result<u32, DatapathError> {
        let max = self.shared.config.max_ports;
        let mut guard = self.shared.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = &**guard;
        if table.ports.iter().flatten().any(|e| e.name == port.name()) {
            return Err(DatapathError::Duplicate(port.name().to_string()));
        }
        let taken = |n: u32| table.ports.get(n as usize).is_some_and(Option::is_some);
        let no = match no {
            Some(n) if n == 0 || n > max => {
                return Err(DatapathError::BadNumber { no: n, why: format!("out of the range 1..={max}") });
            }
            Some(n) if taken(n) => return Err(DatapathError::BadNumber { no: n, why: "in use".into() }),
            Some(n) => n,
            None => (1..=max).find(|&n| !taken(n)).ok_or(DatapathError::Full(max))?,
        };
        let queues = port.capabilities().rx_queues.max(1);
        let poll_fds = (0..queues).map(|q| port.poll_fd(q).and_then(|fd| fd.try_clone_to_owned().ok())).collect();
        let rxq_thread = {
            let mut next = self.next_thread.lock().unwrap_or_else(|e| e.into_inner());
            (0..queues)
                .map(|_| {
                    let t = *next % self.shared.config.threads;
                    *next += 1;
                    t
                })
                .collect()
        };
        let entry = Arc::new(Entry {
            no,
            name: port.name().to_string(),
            port: Mutex::new(port),
            poll_fds,
            rxq_thread,
            closed: AtomicBool::new(false),
            tx_dropped: AtomicU64::new(0),
        });
        let mut ports = table.ports.clone();
        if ports.len() <= no as usize {
            ports.resize(no as usize + 1, None);
        }
        ports[no as usize] = Some(entry);
        *guard = Arc::new(Table { ports });
        drop(guard);
        self.shared.version.fetch_add(1, Ordering::Release);
        self.shared.wake_all();
        Ok(no)
    }

    /// Detaches port `no`; returns its name. The port is closed once every
    /// thread has let go of it (between two of its batches).
    pub fn remove_port(&self, no: u32) -> Option<String> {
        let mut guard = self.shared.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = guard.ports.get(no as usize).cloned().flatten()?;
        let mut ports = guard.ports.clone();
        ports[no as usize] = None;
        *guard = Arc::new(Table { ports });
        drop(guard);
        self.shared.version.fetch_add(1, Ordering::Release);
        self.shared.wake_all();
        Some(entry.name.clone())
    }

    /// The number of the port called `name`.
    pub fn port_no(&self, name: &str) -> Option<u32> {
        self.shared.table().ports.iter().flatten().find(|e| e.name == name).map(|e| e.no)
    }

    /// Every attached port with its counters.
    pub fn ports(&self) -> Vec<PortInfo> {
        self.shared
            .table()
            .ports
            .iter()
            .flatten()
            .map(|e| {
                let mut stats = e.lock().stats();
                stats.count_drop(DropReason::PortClosed, e.tx_dropped.load(Ordering::Relaxed));
                PortInfo {
                    no: e.no,
                    name: e.name.clone(),
                    stats,
                    closed: e.closed.load(Ordering::Relaxed),
                    rxq_threads: e.rxq_thread.clone(),
                }
            })
            .collect()
    }

    /// Each thread's counters (refreshed by the threads about every 100 ms
    /// and whenever they sleep).
    pub fn thread_stats(&self) -> Vec<ThreadStats> {
        self.shared.threads.iter().map(|t| *t.stats.lock().unwrap_or_else(|e| e.into_inner())).collect()
    }

    /// Every thread's megaflows, one `dump-flows` line each, per thread.
    /// A thread that does not answer within `timeout` is left out.
    pub fn dump_flows(&self, timeout: Duration) -> Vec<(usize, Vec<String>)> {
        let mut rxs = Vec::new();
        for (i, t) in self.shared.threads.iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            *t.dump.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
            t.dump_requested.store(true, Ordering::Release);
            rxs.push((i, rx));
        }
        self.shared.wake_all();
        let deadline = Instant::now() + timeout;
        rxs.into_iter()
            .filter_map(|(i, rx)| {
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok().map(|v| (i, v))
            })
            .collect()
    }

    /// Stops the threads and waits for them. Ports close as they drop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        *self.shared.table.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(Table::default());
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One thread's loop.
fn run_thread(shared: Arc<Shared>, me: usize) {
    let cfg = shared.config;
    let mut pipe = Pipeline::new(PipelineConfig { seed: cfg.pipeline.seed ^ me as u64, ..cfg.pipeline });
    let mut pool = BufferPool::with_defaults(cfg.buffers.max(4 * MAX_BATCH));
    let mut txq = TxQueues::new(cfg.max_ports as usize + 1);
    let mut batch = PacketBatch::new();
    let mut version = 0;
    let mut table = Arc::new(Table::default());
    let mut rxqs: Vec<(Arc<Entry>, usize)> = Vec::new();
    let mut stats = ThreadStats { thread: me, ..ThreadStats::default() };
    let mut idle_rounds = 0u32;
    let mut light_sleep_us = 0u64;
    let mut last_tick = Instant::now();
    let mut last_housekeep = shared.now_ms();
    let me_shared = &shared.threads[me];
    if cfg.pmd_max_sleep_us > 0 {
        // Light-load naps are a few microseconds; the default 50 µs timer
        // slack would stretch each one by up to that much and let the rx
        // rings overflow.
        if let Err(e) = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1000)) {
            tracing::debug!("cannot shorten the timer slack: {e}");
        }
    }

    while !shared.stop.load(Ordering::Acquire) {
        let v = shared.version.load(Ordering::Acquire);
        if v != version {
            version = v;
            let old = std::mem::replace(&mut table, shared.table());
            // Forget flows of ports that went away (their numbers may be
            // reused); an added port needs no flush (the slow path's
            // generation covers its decisions).
            let removed =
                old.ports.iter().flatten().any(|e| {
                    !table.ports.get(e.no as usize).and_then(Option::as_ref).is_some_and(|n| Arc::ptr_eq(n, e))
                });
            if removed {
                pipe.flush();
            }
            rxqs = table
                .ports
                .iter()
                .flatten()
                .flat_map(|e| e.rxq_thread.iter().enumerate().filter(|(_, t)| **t == me).map(|(q, _)| (e.clone(), q)))
                .collect();
            stats.rx_queues = rxqs.len();
        }
        if me_shared.dump_requested.swap(false, Ordering::AcqRel) {
            let lines = pipe.cache().megaflows.iter().map(|m| m.to_string()).collect();
            if let Some(tx) = me_shared.dump.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(lines);
            }
        }
        stats.rounds += 1;
        let mut got = 0;
        let mut fullest = 0;
        for (entry, q) in &rxqs {
            if entry.closed.load(Ordering::Relaxed) {
                continue;
            }
            let r = entry.lock().rx_batch(*q, &mut pool, &mut batch);
            match r {
                Ok(0) => continue,
                Ok(n) => {
                    got += n;
                    fullest = fullest.max(n);
                }
                Err(e) => {
                    handle_port_error(entry, &e);
                    batch.recycle(&mut pool);
                    continue;
                }
            }
            let t0 = Instant::now();
            let now = shared.now_ms();
            pipe.process(entry.no, &mut batch, &mut pool, &*shared.slow, &mut txq, now);
            flush(&table, &mut txq, &mut pool);
            stats.busy_ns += t0.elapsed().as_nanos() as u64;
        }
        if got > 0 {
            idle_rounds = 0;
        } else {
            idle_rounds = idle_rounds.saturating_add(1);
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let now = shared.now_ms();
            if now.saturating_sub(last_housekeep) >= 1000 {
                let stations = pipe.active_stations(last_housekeep);
                if !stations.is_empty() {
                    shared.slow.refresh(&stations, now);
                }
                if me == 0 {
                    shared.slow.housekeep(now);
                }
                pipe.expire(now, cfg.max_idle_ms);
                last_housekeep = now;
            }
            publish(me_shared, &mut stats, &pipe);
        }
        if cfg.pmd_max_sleep_us > 0 {
            if got > 0 && fullest < MAX_BATCH / 2 {
                light_sleep_us = (light_sleep_us + 1).min(cfg.pmd_max_sleep_us);
                stats.light_sleeps += 1;
                std::thread::sleep(Duration::from_micros(light_sleep_us));
            } else if fullest >= MAX_BATCH / 2 {
                light_sleep_us = 0;
            }
        }
        if idle_rounds > cfg.spin_rounds {
            publish(me_shared, &mut stats, &pipe);
            stats.sleeps += 1;
            sleep(&shared, me, &rxqs, cfg.max_sleep_ms);
            idle_rounds = 0;
        }
    }
    publish(me_shared, &mut stats, &pipe);
    txq.recycle_all(&mut pool);
}

fn publish(me: &ThreadShared, stats: &mut ThreadStats, pipe: &Pipeline) {
    stats.pipeline = pipe.stats();
    stats.megaflows = pipe.cache().megaflows.len();
    *me.stats.lock().unwrap_or_else(|e| e.into_inner()) = *stats;
}

fn handle_port_error(entry: &Entry, e: &PortError) {
    if matches!(e, PortError::Closed { .. }) {
        if !entry.closed.swap(true, Ordering::AcqRel) {
            tracing::warn!(port = %entry.name, "port closed: {e}; the other ports carry on");
        }
    } else {
        tracing::debug!(port = %entry.name, "port error: {e}");
    }
}

/// Transmits every dirty queue to its port.
fn flush(table: &Table, txq: &mut TxQueues, pool: &mut BufferPool) {
    for i in 0..txq.dirty().len() {
        let p = txq.dirty()[i];
        let Some(batch) = txq.batch_mut(p) else { continue };
        match table.ports.get(p as usize).and_then(Option::as_ref) {
            Some(e) if !e.closed.load(Ordering::Relaxed) => {
                let r = e.lock().tx_batch(0, pool, batch);
                if let Err(err) = r {
                    handle_port_error(e, &err);
                }
                // A port that failed part-way leaves nothing behind it must
                // own; recycle what is left.
                batch.recycle(pool);
            }
            Some(e) => {
                e.tx_dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.recycle(pool);
            }
            None => batch.recycle(pool),
        }
    }
    txq.clear_dirty();
}

/// Sleeps until a polled queue is readable, the thread is woken, or the
/// timeout passes.
fn sleep(shared: &Shared, me: usize, rxqs: &[(Arc<Entry>, usize)], max_sleep_ms: u64) {
    let wake = &shared.threads[me].wake;
    let mut all_fds = true;
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(rxqs.len() + 1);
    fds.push(PollFd::new(wake, PollFlags::IN));
    for (e, q) in rxqs {
        if e.closed.load(Ordering::Relaxed) {
            continue;
        }
        match e.poll_fds.get(*q).and_then(Option::as_ref) {
            Some(fd) => fds.push(PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN)),
            None => all_fds = false,
        }
    }
    let ms = if all_fds { max_sleep_ms } else { max_sleep_ms.min(1) };
    let timeout = rustix::event::Timespec { tv_sec: (ms / 1000) as i64, tv_nsec: ((ms % 1000) * 1_000_000) as i64 };
    let _ = rustix::event::poll(&mut fds, Some(&timeout));
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(wake, &mut buf);
}
