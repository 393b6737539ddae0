//! akv-env behind an egress HTTP proxy (HTTPS_PROXY, as AKS's HTTP proxy feature sets it
//! in every pod): the vault is reached through the proxy's CONNECT tunnel, not directly,
//! and NO_PROXY keeps the hosts it names direct. The proxy is a small CONNECT tunnel on
//! loopback that records what it was asked for.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;

/// A CONNECT proxy on 127.0.0.1: tunnels to whatever `host:port` it is asked for (only
/// loopback addresses here) and records each target.
struct ConnectProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                thread::spawn(move || tunnel(client, &seen));
            }
        });
        ConnectProxy { port, targets }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("lock").clone()
    }
}

fn tunnel(client: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["CONNECT", target, _] => target.to_string(),
        _ => return,
    };
    // The rest of the request head, up to the empty line.
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    seen.lock().expect("lock").push(target.clone());
    assert!(
        target.starts_with("127.") || target.starts_with("localhost:"),
        "the test proxy only tunnels to loopback, not {target}"
    );
    let Ok(upstream) = TcpStream::connect(&target) else {
        return;
    };
    let mut client_w = client;
    if client_w
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    // Whatever the reader buffered past the head is the start of the TLS handshake.
    let buffered = reader.buffer().to_vec();
    let mut up_w = upstream.try_clone().expect("clone");
    if up_w.write_all(&buffered).is_err() {
        return;
    }
    let mut up_r = upstream;
    let mut client_r = reader.into_inner();
    let to_client = thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut client_r, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = to_client.join();
}

#[test]
fn the_vault_is_reached_through_the_https_proxy_and_no_proxy_stays_direct() {
    let tb = testbed();
    let proxy = ConnectProxy::start();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let name = unique("proxied");
    tb.secret("a", &name, "through-the-proxy");
    // The token endpoint (localhost) stays direct; the vault (127.0.0.1) goes through.
    pod.set("HTTPS_PROXY", Some(&proxy.url()))
        .set("NO_PROXY", Some("localhost"));
    let r = format!("akv:{name}");
    let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = seen.expect("the app ran");
    assert_eq!(seen["env"]["S"].as_str(), Some("through-the-proxy"));
    let vault = tb.vault_url("a");
    let vault = vault.trim_start_matches("https://");
    let targets = proxy.targets();
    assert!(
        targets.iter().any(|t| t == vault),
        "the vault {vault} was not reached through the proxy: {targets:?}"
    );
    assert!(
        targets.iter().all(|t| !t.starts_with("localhost")),
        "NO_PROXY=localhost was tunnelled anyway: {targets:?}"
    );

    // NO_PROXY naming the vault: nothing goes through the proxy.
    let before = proxy.targets().len();
    pod.set("NO_PROXY", Some("localhost,127.0.0.1"));
    let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        seen.expect("the app ran")["env"]["S"].as_str(),
        Some("through-the-proxy")
    );
    assert_eq!(proxy.targets().len(), before, "{:?}", proxy.targets());
}
