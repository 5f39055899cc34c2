//! The test stand-ins speak HTTP as real clients send it: a chunked request body, then a
//! second request on the same keep-alive connection; and dropping one closes its connections,
//! idle and hung alike. The client here is written by hand, byte by byte, so that the framing
//! on the wire is exactly the one under test.

use crate::support::git_http::{GitHttp, HUNG};
use crate::support::receiver::Receiver;
use crate::support::wait;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Long enough for any answer on loopback; a read that waits this long has failed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the stand-in");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

/// `body` as chunks of at most `size` bytes, the first with a chunk extension, ended by a
/// trailer field (RFC 9112, section 7.1).
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, piece) in body.chunks(size).enumerate() {
        let extension = if i == 0 { ";note=first" } else { "" };
        out.extend_from_slice(format!("{:x}{extension}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-trailer: end\r\n\r\n");
    out
}

/// One response read off a connection that stays open: (status, lower-cased head, body).
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, String, String) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .expect("reading the response head");
        assert!(n > 0, "the connection closed inside the head: {head:?}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("reading the body");
    (status, head, String::from_utf8(body).unwrap())
}

#[test]
fn a_stand_in_reads_a_chunked_body_then_a_second_request_on_the_same_connection() {
    let receiver = Receiver::start();
    let stream = connect(receiver.port());
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    let first = br#"{"text":"sent in pieces, as a streaming client does"}"#;
    let mut request = format!(
        "POST /first HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        receiver.port()
    )
    .into_bytes();
    request.extend(chunked(first, 7));
    writer.write_all(&request).unwrap();
    let (status, head, body) = read_response(&mut reader);
    assert_eq!((status, body.as_str()), (200, "ok"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    // The same socket: a server that closed after one answer fails this read.
    let second = br#"{"text":"framed by length"}"#;
    write!(
        writer,
        "POST /second HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        receiver.port(),
        second.len()
    )
    .unwrap();
    writer.write_all(second).unwrap();
    let (status, head, body) = read_response(&mut reader);
    assert_eq!((status, body.as_str()), (200, "ok"), "{head}");

    let requests = receiver.requests();
    let seen: Vec<(&str, &[u8])> = requests
        .iter()
        .map(|r| (r.target.as_str(), r.body.as_slice()))
        .collect();
    assert_eq!(
        seen,
        [("/first", first.as_slice()), ("/second", second.as_slice())]
    );
}

#[test]
fn dropping_a_stand_in_closes_its_idle_keep_alive_connection() {
    let receiver = Receiver::start();
    let stream = connect(receiver.port());
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    write!(
        writer,
        "GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        receiver.port()
    )
    .unwrap();
    let (status, head, _) = read_response(&mut reader);
    assert_eq!(status, 200, "{head}");

    drop(receiver);
    assert_closed_without_a_byte(reader);
}

#[test]
fn a_hanging_git_host_never_answers_and_dropping_it_closes_the_connection() {
    let server = GitHttp::start_hanging();
    let port = server.port();
    let mut stream = connect(port);
    let mut request = format!(
        "POST /remote.git/git-upload-pack HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-git-upload-pack-request\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    request.extend(chunked(
        b"0032want 0000000000000000000000000000000000000000\n",
        16,
    ));
    stream.write_all(&request).unwrap();
    let hung = format!("POST /remote.git/git-upload-pack {HUNG}");
    wait::until(
        "the hanging server to log the request",
        READ_TIMEOUT,
        || server.requests().contains(&hung),
    );

    drop(server);
    assert_closed_without_a_byte(stream);
}

/// The server closed `stream` without sending anything more: end of stream (or a reset, when
/// it closed with request bytes unread), not the read timeout.
fn assert_closed_without_a_byte(mut stream: impl Read) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was not closed by the server: {e}"),
    }
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}
