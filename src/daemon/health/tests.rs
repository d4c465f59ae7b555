use super::*;
use crate::health::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on 127.0.0.1 answering every request with `status`, or never answering.
async fn server(status: Option<u16>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                match status {
                    Some(code) => {
                        let r = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                        let _ = s.write_all(r.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            });
        }
    });
    port
}

fn http(port: u16) -> HealthCheck {
    HealthCheck {
        target: Target::Http {
            url: format!("http://127.0.0.1:{port}/readyz"),
            host: "127.0.0.1".into(),
            port,
            path: "/readyz".into(),
            tls: None,
        },
        expected_status: 200,
        policy: Policy { timeout: Duration::from_millis(300), ..Policy::default() },
    }
}

#[tokio::test]
async fn http_and_tcp_checks_pass_fail_and_time_out() {
    let ok = server(Some(200)).await;
    assert_eq!(Probe::new(&http(ok)).unwrap().run().await, (Outcome::Pass, false));
    let bad = server(Some(500)).await;
    assert_eq!(
        Probe::new(&http(bad)).unwrap().run().await,
        (Outcome::Fail("HTTP status 500, expected 200".into()), false)
    );
    let hung = server(None).await;
    assert_eq!(Probe::new(&http(hung)).unwrap().run().await, (Outcome::Fail("timed out after 300 ms".into()), true));
    // TCP: the hung server accepts, so it passes; a closed port does not.
    let tcp = |port| HealthCheck { target: Target::Tcp { host: "127.0.0.1".into(), port }, ..http(port) };
    assert_eq!(Probe::new(&tcp(hung)).unwrap().run().await.0, Outcome::Pass);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (o, timed_out) = Probe::new(&tcp(closed)).unwrap().run().await;
    assert!(!timed_out && matches!(&o, Outcome::Fail(e) if e.contains("refused")), "{o:?}");
}

#[test]
fn a_missing_ca_file_is_an_error_naming_the_field() {
    let mut c = http(1);
    if let Target::Http { tls, .. } = &mut c.target {
        *tls = Some(Tls {
            ca_file: Some("/nonexistent/ca.crt".into()),
            server_name: "kubernetes".into(),
            ..Tls::default()
        });
    }
    let e = Probe::new(&c).err().unwrap();
    assert!(e.starts_with("tls.caFile: /nonexistent/ca.crt: "), "{e}");
}

#[tokio::test]
async fn results_reach_the_verdict_and_the_metrics() {
    let ok = server(Some(200)).await;
    let mut check = http(ok);
    check.policy =
        Policy { interval: Duration::from_millis(50), timeout: Duration::from_millis(40), ..Policy::default() };
    let vip = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\n---\napiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: api}}\nspec:\n  addresses: [10.0.0.100]\n  healthCheck: {{type: HTTP, url: 'http://127.0.0.1:{ok}/readyz', intervalMilliseconds: 50, timeoutMilliseconds: 40}}\n"
    );
    let world = crate::config::load_str(&vip, "t").unwrap().world;
    let metrics = Arc::new(Metrics::new());
    let mut checks = Checks::new(metrics.clone());
    checks.sync(&world, "n1").unwrap();
    // rise 2: the second result turns it healthy.
    let mut results = 0;
    while !checks.next().await {
        results += 1;
        assert!(results < 5, "never healthy");
    }
    assert_eq!(results, 1);
    assert!(checks.health(false).healthy.contains("api"));
    let text = metrics.render();
    assert!(text.contains("kbgp_vip_healthy{vip=\"api\"} 1"), "{text}");
    assert!(text.contains("kbgp_vip_checks_total{result=\"pass\",vip=\"api\"} 2"), "{text}");
    // Removed from the World: the check stops and its gauge goes.
    let mut none = world.clone();
    none.virtual_ips.clear();
    checks.sync(&none, "n1").unwrap();
    assert!(checks.health(false).healthy.is_empty());
    assert!(!metrics.render().contains("kbgp_vip_healthy{"));
}
