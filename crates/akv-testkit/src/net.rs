//! Loopback networking for tests: free ports and one-shot plain HTTP/1.0 requests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound, then released: good enough on a test machine).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One plain HTTP/1.0 request to `127.0.0.1:port` with an optional JSON body, reading
/// for at most `timeout`: (status, body). The status is 0 when the answer is not HTTP.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_status_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            // The request may come in several reads; answering (and closing) before all of
            // it is read makes the kernel reset the connection under the client.
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n{}") {
                let n = s.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8_lossy(&got).into_owned();
            s.write_all(b"HTTP/1.0 201 Created\r\nContent-Length: 2\r\n\r\nok")
                .expect("write");
            request
        });
        let got = http_request(port, "POST", "/x", Some("{}"), Duration::from_secs(5));
        assert_eq!(got.expect("request"), (201, "ok".to_string()));
        let request = server.join().expect("server");
        assert!(request.starts_with("POST /x HTTP/1.0\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{}"), "{request}");
    }
}
