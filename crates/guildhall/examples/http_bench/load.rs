//! The closed-loop keep-alive load generator, the same for Guildhall and the peer.
//!
//! `concurrency` workers, each on its own HTTP/1.1 keep-alive connection (TCP_NODELAY),
//! send one request, read the whole response, record the latency, and send the next,
//! until the duration has passed or `count` requests have been started. Everything runs
//! on this program's one thread, so the client's own CPU cost stays under one core and
//! is measured (`client_cpu_s`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::machine::{Server, Snapshot};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, String)>,
    pub json: Option<serde_json::Value>,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Self { method: Method::GET, path: path.into(), headers: Vec::new(), json: None }
    }

    pub fn post(path: impl Into<String>, json: serde_json::Value) -> Self {
        Self { method: Method::POST, path: path.into(), headers: Vec::new(), json: Some(json) }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A short label for a failed response: the status and the problem type or code.
    fn error_kind(&self) -> String {
        let json = self.json();
        let code = json
            .get("type")
            .or_else(|| json.get("code"))
            .and_then(serde_json::Value::as_str)
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_owned());
        match code {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

pub type MakeRequest = Arc<dyn Fn(usize) -> Req + Send + Sync>;
type Check = Arc<dyn Fn(usize, &Resp) -> bool + Send + Sync>;

/// One measured run.
#[derive(Clone)]
pub struct Load {
    pub name: String,
    pub concurrency: usize,
    pub duration: Option<Duration>,
    pub count: Option<usize>,
    pub make: MakeRequest,
    pub check: Check,
}

impl Load {
    pub fn timed(
        name: impl Into<String>,
        concurrency: usize,
        duration: Duration,
        make: impl Fn(usize) -> Req + Send + Sync + 'static,
        check: impl Fn(usize, &Resp) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            concurrency,
            duration: Some(duration),
            count: None,
            make: Arc::new(make),
            check: Arc::new(check),
        }
    }

    pub fn counted(mut self, count: usize) -> Self {
        self.duration = None;
        self.count = Some(count);
        self
    }

    /// The same requests for `duration`, unmeasured.
    pub fn warm_up(&self, duration: Duration) -> Self {
        Self { name: format!("{} (warm-up)", self.name), duration: Some(duration), count: None, ..self.clone() }
    }
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[index.clamp(1, samples.len()) - 1]
        };
        Self {
            p50: rank(50.0),
            p90: rank(90.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub name: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub error_kinds: BTreeMap<String, usize>,
    pub rps: f64,
    pub latency_ms: Latency,
    /// CPU seconds of the server's processes (PostgreSQL's included when it is the database).
    pub server_cpu_s: Option<f64>,
    pub server_cpu_ms_per_request: Option<f64>,
    pub server_rss_max_kib: u64,
    pub client_cpu_s: f64,
    /// Cores other processes used during the run.
    pub other_cores_during: f64,
    /// Cores other processes used just before it (the quiet gate's reading).
    pub other_cores_before: f64,
}

struct Worker {
    latencies: Vec<f64>,
    ok: usize,
    errors: BTreeMap<String, usize>,
}

/// Runs `load` against `address`, measuring `server` (CPU, RSS).
pub async fn run(address: SocketAddr, load: &Load, server: &Server) -> Run {
    run_many(address, std::slice::from_ref(load), server).await.remove(0)
}

/// Runs several loads at once (the interference scenarios); the server's CPU is then
/// shared, so no per-request CPU figure is given.
pub async fn run_many(address: SocketAddr, loads: &[Load], server: &Server) -> Vec<Run> {
    let before = Snapshot::take(Some(server));
    let rss_max = Arc::new(std::sync::atomic::AtomicU64::new(server.rss_kib()));
    let sampler = {
        let rss_max = rss_max.clone();
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                rss_max.fetch_max(server.rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let handles: Vec<_> = loads
        .iter()
        .map(|load| {
            let load = load.clone();
            tokio::spawn(async move {
                let counter = Arc::new(AtomicUsize::new(0));
                let deadline = load.duration.map(|d| Instant::now() + d);
                let workers: Vec<_> = (0..load.concurrency)
                    .map(|_| tokio::spawn(worker(address, load.clone(), counter.clone(), deadline)))
                    .collect();
                let mut results = Vec::new();
                for w in workers {
                    if let Ok(result) = w.await {
                        results.push(result);
                    }
                }
                (results, Instant::now())
            })
        })
        .collect();
    let mut finished = Vec::new();
    for handle in handles {
        finished.push(handle.await.unwrap_or_else(|_| (Vec::new(), Instant::now())));
    }
    sampler.abort();
    rss_max.fetch_max(server.rss_kib(), Ordering::Relaxed);
    let usage = before.until(&Snapshot::take(Some(server)));
    let shared = loads.len() > 1;
    loads
        .iter()
        .zip(finished)
        .map(|(load, (workers, ended))| {
            let seconds = ended.duration_since(started).as_secs_f64();
            let ok: usize = workers.iter().map(|w| w.ok).sum();
            let mut error_kinds = BTreeMap::new();
            for w in &workers {
                for (kind, n) in &w.errors {
                    *error_kinds.entry(kind.clone()).or_insert(0) += n;
                }
            }
            let errors: usize = error_kinds.values().sum();
            let requests = ok + errors;
            let latencies: Vec<f64> = workers.into_iter().flat_map(|w| w.latencies).collect();
            Run {
                name: load.name.clone(),
                concurrency: load.concurrency,
                seconds,
                requests,
                ok,
                errors,
                error_kinds,
                rps: requests as f64 / seconds.max(1e-9),
                latency_ms: Latency::of(latencies),
                server_cpu_s: (!shared).then_some(usage.server_cpu),
                server_cpu_ms_per_request: (!shared && requests > 0)
                    .then(|| usage.server_cpu * 1000.0 / requests as f64),
                server_rss_max_kib: rss_max.load(Ordering::Relaxed),
                client_cpu_s: usage.client_cpu,
                other_cores_during: usage.other_cores,
                other_cores_before: 0.0,
            }
        })
        .collect()
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(address: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn worker(address: SocketAddr, load: Load, counter: Arc<AtomicUsize>, deadline: Option<Instant>) -> Worker {
    let mut me = Worker { latencies: Vec::new(), ok: 0, errors: BTreeMap::new() };
    let mut sender: Option<Sender> = None;
    let host = HeaderValue::from_str(&address.to_string()).unwrap_or(HeaderValue::from_static("127.0.0.1"));
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let i = counter.fetch_add(1, Ordering::Relaxed);
        if load.count.is_some_and(|count| i >= count) {
            break;
        }
        let spec = (load.make)(i);
        let start = Instant::now();
        let outcome = send(address, &mut sender, &host, spec).await;
        me.latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        match outcome {
            Ok(resp) if (load.check)(i, &resp) => me.ok += 1,
            Ok(resp) => *me.errors.entry(resp.error_kind()).or_insert(0) += 1,
            Err(e) => {
                sender = None;
                *me.errors.entry(format!("network: {e}")).or_insert(0) += 1;
            }
        }
    }
    me
}

async fn send(address: SocketAddr, sender: &mut Option<Sender>, host: &HeaderValue, spec: Req) -> Result<Resp, String> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(address).await?);
    }
    let Some(connection) = sender.as_mut() else { return Err("no connection".into()) };
    connection.ready().await.map_err(|e| format!("connection: {e}"))?;
    let body = match &spec.json {
        Some(json) => Full::new(Bytes::from(serde_json::to_vec(json).map_err(|e| e.to_string())?)),
        None => Full::new(Bytes::new()),
    };
    let mut request = Request::builder().method(spec.method).uri(spec.path).header(HOST, host.clone());
    if spec.json.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    for (name, value) in spec.headers {
        request = request.header(name, value);
    }
    let request = request.body(body).map_err(|e| format!("request: {e}"))?;
    let response = connection.send_request(request).await.map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok(Resp { status, headers, body })
}

/// One request outside any measurement (seeding, sanity checks).
pub async fn once(address: SocketAddr, spec: Req) -> Result<Resp, String> {
    let host = HeaderValue::from_str(&address.to_string()).map_err(|e| e.to_string())?;
    send(address, &mut None, &host, spec).await
}
