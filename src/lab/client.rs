//! The lab's client (`kbgp-lab client`): a new HTTPS connection to a URL every few
//! milliseconds, as kubelets and controllers reach the API server VIP, with one line per
//! request in a log the control-plane VIP test reads:
//!
//! ```text
//! <start, ms since the epoch> <duration ms> ok <body's first word>
//! <start, ms since the epoch> <duration ms> fail <why>
//! ```
//!
//! Requests run concurrently (one that hangs does not hold back the next), each with the same
//! TLS client as a kbgp health check ([`crate::daemon::health::Probe`]).

use crate::config::vip::{HealthCheck, Target, Tls};
use crate::daemon::health::{Fetch, Probe};
use crate::health::Policy;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Options {
    pub url: String,
    pub ca_file: PathBuf,
    pub server_name: String,
    pub every: Duration,
    pub timeout: Duration,
    pub out: PathBuf,
}

fn probe(o: &Options) -> Result<Probe, String> {
    let uri: hyper::Uri = o.url.parse().map_err(|e| format!("{}: {e}", o.url))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{}: only https:// URLs", o.url));
    }
    let host = uri.host().ok_or_else(|| format!("{}: no host", o.url))?.trim_matches(['[', ']']).to_string();
    let check = HealthCheck {
        target: Target::Http {
            url: o.url.clone(),
            host,
            port: uri.port_u16().unwrap_or(443),
            path: uri.path_and_query().map_or("/".into(), |p| p.as_str().to_string()),
            tls: Some(Tls {
                ca_file: Some(o.ca_file.clone()),
                server_name: o.server_name.clone(),
                insecure_skip_verify: false,
                client_cert: None,
            }),
        },
        expected_status: 200,
        policy: Policy { timeout: o.timeout, ..Policy::default() },
    };
    Probe::new(&check)
}

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Runs until killed.
pub fn run(o: Options) -> Result<(), String> {
    let probe = probe(&o)?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.out)
        .map_err(|e| format!("{}: {e}", o.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
        });
        let mut tick = tokio::time::interval(o.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            let (probe, tx) = (probe.clone(), tx.clone());
            tokio::spawn(async move {
                let start = SystemTime::now();
                let r = probe.fetch().await;
                let ms = start.elapsed().map_or(0, |d| d.as_millis());
                let what = match r {
                    Ok((200, body)) => {
                        let body = String::from_utf8_lossy(&body);
                        format!("ok {}", body.split_whitespace().next().unwrap_or("-"))
                    }
                    Ok((status, _)) => format!("fail HTTP status {status}"),
                    Err(Fetch::TimedOut) => "fail timed out".to_string(),
                    Err(Fetch::Failed(e)) => format!("fail {}", e.replace('\n', " ")),
                };
                let _ = tx.send(format!("{} {ms} {what}\n", epoch_ms(start)));
            });
        }
        drop(tx);
        let _ = writer.await;
        Ok(())
    })
}
