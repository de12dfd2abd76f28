//! What the machine is doing, read from `/proc`: CPU time of processes and of the whole
//! machine, resident memory, and the quiet-machine gate.

use std::time::{Duration, Instant};

/// `USER_HZ`, the unit of the CPU times in `/proc/<pid>/stat` and `/proc/stat` (100 on
/// every Linux ABI; `getconf CLK_TCK`).
const USER_HZ: f64 = 100.0;

/// The processes that count as "the server" under test: its own process and, for a
/// server on PostgreSQL, every `postgres` process (the backends do the server's work).
#[derive(Debug, Clone)]
pub struct Server {
    pub pid: u32,
    pub with_postgres: bool,
}

impl Server {
    /// CPU seconds used so far by the server's processes.
    pub fn cpu_seconds(&self) -> f64 {
        let own = process_cpu_seconds(self.pid).unwrap_or(0.0);
        if self.with_postgres { own + postgres_cpu_seconds() } else { own }
    }

    /// Resident memory of the server's own process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    /// Peak resident memory of the server's own process, in KiB.
    pub fn hwm_kib(&self) -> u64 {
        status_kib(self.pid, "VmHWM").unwrap_or(0)
    }
}

/// User + system CPU seconds of one process (all its threads).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// This process's CPU seconds.
pub fn own_cpu_seconds() -> f64 {
    process_cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(process_cpu_seconds)
        .sum()
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Busy CPU seconds of the whole machine so far (all but idle and iowait).
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(cpu) = stat.lines().next() else { return 0.0 };
    let ticks: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / USER_HZ
}

/// A reading of everything, to subtract from a later one.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    machine: f64,
    server: f64,
    own: f64,
}

impl Snapshot {
    pub fn take(server: Option<&Server>) -> Self {
        Self {
            at: Instant::now(),
            machine: machine_busy_seconds(),
            server: server.map_or(0.0, Server::cpu_seconds),
            own: own_cpu_seconds(),
        }
    }

    /// What happened since `self`, up to `later`.
    pub fn until(&self, later: &Self) -> Usage {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let server = (later.server - self.server).max(0.0);
        let client = (later.own - self.own).max(0.0);
        let other = (later.machine - self.machine - server - client).max(0.0);
        Usage { server_cpu: server, client_cpu: client, other_cores: other / wall }
    }
}

/// CPU use over an interval.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub server_cpu: f64,
    pub client_cpu: f64,
    /// Cores used by every other process on the machine.
    pub other_cores: f64,
}

/// Cores that processes other than the server and this program use, over `window`.
pub async fn other_cores(server: Option<&Server>, window: Duration) -> f64 {
    let before = Snapshot::take(server);
    tokio::time::sleep(window).await;
    before.until(&Snapshot::take(server)).other_cores
}

/// Waits until the rest of the machine uses at most `limit` cores, looking every few
/// seconds for at most `patience`. Returns the last figure, or an error saying how busy
/// the machine stayed: figures from a busy machine are not figures.
pub async fn wait_until_quiet(server: Option<&Server>, limit: f64, patience: Duration) -> Result<f64, String> {
    let started = Instant::now();
    loop {
        let load = other_cores(server, Duration::from_secs(2)).await;
        if load <= limit {
            return Ok(load);
        }
        if started.elapsed() >= patience {
            return Err(format!(
                "the machine stayed busy: other processes used {load:.2} cores (limit {limit}) for {} s; \
                 nothing is reported from a busy machine",
                patience.as_secs()
            ));
        }
        eprintln!("[quiet] other processes use {load:.2} cores (limit {limit}); waiting");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
