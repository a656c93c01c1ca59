//! A small SMTP server on 127.0.0.1 (plain SMTP as RFC 5321 has it: EHLO/HELO, MAIL, RCPT,
//! DATA with dot-stuffing, RSET, NOOP, QUIT; no STARTTLS, no AUTH) that records every message
//! it accepts, for tests of a client that sends mail. It can be told to refuse recipients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpMessage {
    /// The EHLO (or HELO) name the client gave.
    pub hello: String,
    /// The envelope sender (`MAIL FROM:<…>`), without the brackets.
    pub from: String,
    /// The envelope recipients, in order.
    pub to: Vec<String>,
    /// The message (headers and body) as sent, dot-stuffing undone, CRLF line ends.
    pub data: String,
}

impl SmtpMessage {
    /// The first header with this name (any case), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    found = Some(v.trim().to_owned());
                }
            }
        }
        found
    }

    /// The body, after the first empty line.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<SmtpMessage>>,
    /// `Some(code)`: every RCPT is answered with this code (e.g. 550).
    reject_rcpt: Mutex<Option<u16>>,
}

/// The server; stopped on drop.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SmtpServer {
    /// Starts the server on a free port of 127.0.0.1, in the current tokio runtime.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpServer {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT?tls=none`, as mirrorhub's `MIRRORHUB_SMTP_URL` takes it.
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.shared.messages.lock().expect("messages").clone()
    }

    /// Answers every `RCPT` with `code` (a 4xx or 5xx refusal), or accepts again (`None`).
    pub fn reject_recipients(&self, code: Option<u16>) {
        *self.shared.reject_rcpt.lock().expect("reject") = code;
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    sessions.spawn(session(stream, Arc::clone(&shared)));
                }
            }
            Some(_) = sessions.join_next() => {}
        }
    }
}

/// The longest line or message the server reads.
const MAX_LINE: usize = 4096;
const MAX_DATA: usize = 10 << 20;

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let _ = write
        .write_all(&reply("220 testkit ESMTP ready".into()))
        .await;
    let mut hello = String::new();
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut reader).await else {
            return;
        };
        let upper = line.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO ") || upper.starts_with("HELO ") {
            hello = line[5..].trim().to_owned();
            from = None;
            to.clear();
            if upper.starts_with("EHLO") {
                "250-testkit greets you\r\n250-8BITMIME\r\n250 SMTPUTF8".to_owned()
            } else {
                "250 testkit".to_owned()
            }
        } else if upper.starts_with("MAIL FROM:") {
            from = Some(angle(&line[10..]));
            to.clear();
            "250 sender ok".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                "503 MAIL first".to_owned()
            } else if let Some(code) = *shared.reject_rcpt.lock().expect("reject") {
                format!("{code} recipient refused by testkit")
            } else {
                to.push(angle(&line[8..]));
                "250 recipient ok".to_owned()
            }
        } else if upper == "DATA" {
            if from.is_none() || to.is_empty() {
                "503 MAIL and RCPT first".to_owned()
            } else {
                let _ = write
                    .write_all(&reply("354 end with <CRLF>.<CRLF>".into()))
                    .await;
                let Some(data) = read_data(&mut reader).await else {
                    return;
                };
                shared.messages.lock().expect("messages").push(SmtpMessage {
                    hello: hello.clone(),
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                "250 queued".to_owned()
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            "250 reset".to_owned()
        } else if upper == "NOOP" {
            "250 ok".to_owned()
        } else if upper == "QUIT" {
            let _ = write.write_all(&reply("221 bye".into())).await;
            return;
        } else {
            "502 command not implemented".to_owned()
        };
        if write.write_all(&reply(answer)).await.is_err() {
            return;
        }
    }
}

fn reply(text: String) -> Vec<u8> {
    format!("{text}\r\n").into_bytes()
}

/// `<a@b> SIZE=1` → `a@b`.
fn angle(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(open), Some(close)) if open < close => arg[open + 1..close].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

/// One line without its CRLF; `None` at the end of the stream or past the limit.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = Vec::new();
    let n = reader.read_until(b'\n', &mut line).await.ok()?;
    if n == 0 || line.len() > MAX_LINE {
        return None;
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// The DATA section up to the lone `.` line, dot-stuffing undone.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    loop {
        let line = read_line(reader).await?;
        if line == "." {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push_str("\r\n");
        if data.len() > MAX_DATA {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn records_a_message_and_undoes_dot_stuffing() {
        let server = SmtpServer::start().await;
        let mut c = TcpStream::connect(server.addr()).await.unwrap();
        let script = "EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n";
        c.write_all(script.as_bytes()).await.unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.contains("250 queued") && answer.ends_with("221 bye\r\n"),
            "{answer}"
        );
        let m = &server.messages()[0];
        assert_eq!(
            (m.hello.as_str(), m.from.as_str()),
            ("client.example", "a@example.org")
        );
        assert_eq!(m.to, vec!["b@example.org".to_owned()]);
        assert_eq!(m.header("subject").as_deref(), Some("hi"));
        assert_eq!(m.body(), ".dot\r\nline\r\n");
    }
}
