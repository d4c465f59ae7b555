//! The VirtualIP health checks, tokio side: one task per check connects, asks and reports
//! each result with the time; the verdicts are [`crate::health::Monitor`]'s.
//!
//! A check is set up (CA and client certificate read, TLS configured) before anything of the
//! configuration that names it is applied, so an unreadable file is one error naming the
//! field, and at start nothing starts.

use crate::config::vip::{HealthCheck, Target, Tls, join_host_port};
use crate::config::{VipHealth, World};
use crate::health::{Monitor, Outcome};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A check ready to run.
#[derive(Clone)]
pub struct Probe {
    target: Target,
    expected_status: u16,
    timeout: Duration,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

/// Accepts any server certificate (`insecureSkipVerify`), still checking the handshake's
/// signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client of an HTTPS check; errors name the field (`tls.caFile: ...`).
fn client_config(t: &Tls) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match &t.ca_file {
        _ if t.insecure_skip_verify => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        }
        Some(f) => {
            let bad = |e: &dyn std::fmt::Display| format!("tls.caFile: {}: {e}", f.display());
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(f).map_err(|e| bad(&e))? {
                roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
            builder.with_root_certificates(roots)
        }
        None => return Err("tls.caFile: is required unless insecureSkipVerify".into()),
    };
    match &t.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.clientCertFile: {}: {e}", cert.display()))?;
            let k =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.clientKeyFile: {}: {e}", key.display()))?;
            builder.with_client_auth_cert(certs, k).map_err(|e| format!("tls.clientKeyFile: {e}"))
        }
    }
}

impl Probe {
    /// Sets up `check`: reads its files, builds its TLS client.
    pub fn new(check: &HealthCheck) -> Result<Probe, String> {
        let tls = match &check.target {
            Target::Http { tls: Some(t), .. } => {
                let name = ServerName::try_from(t.server_name.clone()).map_err(|e| format!("tls.serverName: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(client_config(t)?)), name))
            }
            _ => None,
        };
        Ok(Probe {
            target: check.target.clone(),
            expected_status: check.expected_status,
            timeout: check.policy.timeout,
            tls,
        })
    }

    /// One check: `Ok` when it passed, else why not. Bounded by the check's timeout.
    pub async fn run(&self) -> (Outcome, bool) {
        match self.fetch().await {
            Ok(_) if matches!(self.target, Target::Tcp { .. }) => (Outcome::Pass, false),
            Ok((status, _)) if status == self.expected_status => (Outcome::Pass, false),
            Ok((status, _)) => {
                (Outcome::Fail(format!("HTTP status {status}, expected {}", self.expected_status)), false)
            }
            Err(Fetch::TimedOut) => (Outcome::Fail(format!("timed out after {} ms", self.timeout.as_millis())), true),
            Err(Fetch::Failed(e)) => (Outcome::Fail(e), false),
        }
    }

    /// One request, bounded by the check's timeout: the HTTP status and up to 64 KiB of the
    /// body (a TCP check that connects is status 0, no body). The lab's client reuses it.
    pub async fn fetch(&self) -> Result<(u16, Bytes), Fetch> {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(r) => r.map_err(Fetch::Failed),
            Err(_) => Err(Fetch::TimedOut),
        }
    }

    async fn attempt(&self) -> Result<(u16, Bytes), String> {
        let (host, port) = match &self.target {
            Target::Http { host, port, .. } | Target::Tcp { host, port } => (host.as_str(), *port),
        };
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect {}: {e}", join_host_port(host, port)))?;
        let Target::Http { path, .. } = &self.target else { return Ok((0, Bytes::new())) };
        let authority = join_host_port(host, port);
        match &self.tls {
            None => get(tcp, path, &authority).await,
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS: {e}"))?;
                get(tls, path, &authority).await
            }
        }
    }
}

/// Why a [`Probe::fetch`] got no answer.
#[derive(Debug)]
pub enum Fetch {
    TimedOut,
    Failed(String),
}

/// The most of a body a check reads.
const BODY_LIMIT: usize = 64 * 1024;

async fn get<S>(io: S, path: &str, authority: &str) -> Result<(u16, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, concat!("kbgp/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let answer = async {
        let res = sender.send_request(req).await.map_err(|e| format!("HTTP: {e}"))?;
        let status = res.status().as_u16();
        let body = http_body_util::Limited::new(res.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("HTTP body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    answer
}

/// One result, from a checker task.
struct Report {
    name: String,
    generation: u64,
    outcome: Outcome,
    timed_out: bool,
    latency: Duration,
    at: Instant,
}

/// Runs `probe` every `interval` (from the start of one check to the next) until aborted.
fn spawn_checker(
    name: String,
    generation: u64,
    probe: Probe,
    interval: Duration,
    tx: mpsc::Sender<Report>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            let start = tokio::time::Instant::now();
            let (outcome, timed_out) = probe.run().await;
            let at = tokio::time::Instant::now();
            let r =
                Report { name: name.clone(), generation, outcome, timed_out, latency: at - start, at: at.into_std() };
            if tx.send(r).await.is_err() {
                return;
            }
            next += interval;
            if next < at {
                next = at;
            }
            tokio::time::sleep_until(next).await;
        }
    })
}

/// Every check of the node, their tasks and their verdicts.
pub struct Checks {
    monitor: Monitor,
    tasks: HashMap<String, JoinHandle<()>>,
    tx: mpsc::Sender<Report>,
    rx: mpsc::Receiver<Report>,
    metrics: Arc<Metrics>,
}

impl Drop for Checks {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

impl Checks {
    pub fn new(metrics: Arc<Metrics>) -> Checks {
        let (tx, rx) = mpsc::channel(64);
        Checks { monitor: Monitor::default(), tasks: HashMap::new(), tx, rx, metrics }
    }

    /// Runs the checks of the VirtualIPs `world` has for `node`. Every check is set up
    /// before anything changes: on error (a file that cannot be read) nothing does.
    pub fn sync(&mut self, world: &World, node: &str) -> Result<(), String> {
        let Some(n) = world.node(node) else { return Ok(()) };
        let wanted: Vec<(&str, &HealthCheck)> =
            world.virtual_ips_for(n).filter_map(|v| Some((v.name.as_str(), v.health_check.as_ref()?))).collect();
        let mut probes = BTreeMap::new();
        for (name, check) in &wanted {
            let p = Probe::new(check).map_err(|e| format!("VirtualIP {name}: spec.healthCheck.{e}"))?;
            probes.insert(name.to_string(), p);
        }
        let s = self.monitor.sync(now(), wanted);
        for name in s.stop {
            if let Some(t) = self.tasks.remove(&name) {
                t.abort();
            }
            let _ = self.metrics.vip_healthy.remove_label_values(&[&name]);
            info!(vip = %name, "health check stopped");
        }
        for (name, generation, check) in s.start {
            let Some(p) = probes.remove(&name) else { continue };
            if let Some(t) = self.tasks.remove(&name) {
                t.abort();
            }
            info!(vip = %name, check = %check.target.describe(), "health check started");
            self.metrics
                .vip_healthy
                .with_label_values(&[&name])
                .set(self.monitor.get(&name).is_some_and(|c| c.verdict.healthy()) as i64);
            let t = spawn_checker(name.clone(), generation, p, check.policy.interval, self.tx.clone());
            self.tasks.insert(name, t);
        }
        Ok(())
    }

    /// The verdicts, for the World.
    pub fn health(&self, draining: bool) -> VipHealth {
        VipHealth { healthy: self.monitor.healthy(), draining }
    }

    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Every check as `kbgp why` shows it, at `now`.
    pub fn views(&self, now: Instant) -> Vec<crate::plan::why::HealthView> {
        use crate::plan::why::{HealthResult, HealthView};
        let ms = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
        self.monitor
            .iter()
            .map(|(name, c)| HealthView {
                virtual_ip: name.clone(),
                check: c.spec.target.describe(),
                healthy: c.verdict.healthy(),
                reason: c.verdict.reason().to_string(),
                since_ms: ms(now.saturating_duration_since(c.verdict.since())),
                transitions: c.verdict.transitions(),
                results: c
                    .verdict
                    .recent()
                    .map(|r| HealthResult {
                        ago_ms: ms(now.saturating_duration_since(r.at)),
                        ok: r.outcome == Outcome::Pass,
                        text: match &r.outcome {
                            Outcome::Pass => "passed".into(),
                            Outcome::Fail(why) => why.clone(),
                        },
                        latency_ms: ms(r.latency),
                        in_grace: r.in_grace,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Waits for the next result or stall; says whether a verdict changed. Never returns
    /// while there is no check.
    pub async fn next(&mut self) -> bool {
        let deadline = self.monitor.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(r) = self.rx.recv() => {
                let result = match (&r.outcome, r.timed_out) {
                    (Outcome::Pass, _) => "pass",
                    (_, true) => "timeout",
                    _ => "fail",
                };
                self.metrics.vip_checks.with_label_values(&[&r.name, result]).inc();
                self.metrics.vip_check_duration.with_label_values(&[&r.name]).observe(r.latency.as_secs_f64());
                match self.monitor.record(r.at, &r.name, r.generation, r.outcome, r.latency) {
                    Some(c) => {
                        self.changed(&r.name, &c);
                        true
                    }
                    None => false,
                }
            }
            _ = async { tokio::time::sleep_until(deadline?).await; Some(()) }, if deadline.is_some() => {
                let changes = self.monitor.handle_timeout(now());
                for (name, c) in &changes {
                    self.changed(name, c);
                }
                !changes.is_empty()
            }
        }
    }

    fn changed(&self, name: &str, c: &crate::health::Change) {
        let to = if c.healthy { "healthy" } else { "unhealthy" };
        self.metrics.vip_healthy.with_label_values(&[name]).set(c.healthy as i64);
        self.metrics.vip_transitions.with_label_values(&[name, to]).inc();
        if c.healthy {
            info!(vip = %name, "healthy: {}; announcing", c.reason);
        } else {
            warn!(vip = %name, "unhealthy: {}; withdrawing", c.reason);
        }
    }
}

#[cfg(test)]
mod tests;
