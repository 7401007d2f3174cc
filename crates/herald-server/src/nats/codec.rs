//! The NATS client protocol, sans I/O (compat/nats-fluxlib.md §1.1, §1.5, §1.12, §1.16).
//!
//! [`Parser::parse`] takes the bytes a connection has read so far and returns the next complete client operation,
//! `None` when more bytes are needed, or the protocol error that ends the connection. It never assumes alignment:
//! input may be split at any byte, and a test feeds every transcript one byte at a time. Payloads are handed out as
//! `Bytes` slices of the read buffer, without copying.
//!
//! The checks happen where the reference server makes them, because clients react to the difference between "-ERR
//! then close" and a silent close (§1.16): a PUB that announces more than `max_payload` is refused on its control
//! line, before its payload is read; a line that grows past `max_control_line` without a line end stops being
//! buffered; a wrong argument count closes silently.

use bytes::{Bytes, BytesMut};

/// One operation sent by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT <json>`: the JSON text, not yet parsed (a malformed one closes the connection silently).
    Connect(Bytes),
    /// `PUB` (`header_len == 0`, `hpub == false`) or `HPUB`. `body` is the header block followed by the payload,
    /// exactly as sent, so it can be relayed verbatim (§1.7).
    Pub {
        subject: Bytes,
        reply: Option<Bytes>,
        header_len: usize,
        body: Bytes,
        hpub: bool,
    },
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    },
    /// `UNSUB <sid> [max]`.
    Unsub {
        sid: Bytes,
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// `INFO`, `+OK` or `-ERR` from a client: the reference tolerates them, so Herald ignores them.
    Ignored,
}

/// Why a connection must end. [`ProtocolError::err_text`] says what, if anything, is written before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    UnknownOperation,
    ControlLineTooLong,
    PayloadTooLarge,
    /// Wrong argument count, a size that is not a number, header size above total size: the reference closes
    /// without a word, and so does Herald.
    Malformed,
}

impl ProtocolError {
    /// The `-ERR` text, or `None` for a silent close.
    pub fn err_text(self) -> Option<&'static str> {
        match self {
            ProtocolError::UnknownOperation => Some("Unknown Protocol Operation"),
            ProtocolError::ControlLineTooLong => Some("maximum control line exceeded"),
            ProtocolError::PayloadTooLarge => Some("Maximum Payload Violation"),
            ProtocolError::Malformed => None,
        }
    }
}

/// Operation names a client may send, upper case. Matching is case-insensitive.
const OPS: [&[u8]; 10] = [b"CONNECT", b"PUB", b"HPUB", b"SUB", b"UNSUB", b"PING", b"PONG", b"INFO", b"+OK", b"-ERR"];
const LONGEST_OP: usize = 7;

/// A publish whose control line has been read and whose body has not fully arrived yet.
#[derive(Debug)]
struct PendingBody {
    subject: Bytes,
    reply: Option<Bytes>,
    header_len: usize,
    body_len: usize,
    hpub: bool,
}

/// The incremental parser of one connection.
#[derive(Debug)]
pub struct Parser {
    max_control_line: usize,
    max_payload: usize,
    pending: Option<PendingBody>,
}

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits on runs of spaces and tabs, dropping empty fields: nats-py writes `PUB subj  5` and `UNSUB 1 `.
fn fields(line: &Bytes, from: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(4);
    let s = &line[..];
    let mut i = from;
    while i < s.len() {
        while i < s.len() && is_sep(s[i]) {
            i += 1;
        }
        let start = i;
        while i < s.len() && !is_sep(s[i]) {
            i += 1;
        }
        if i > start {
            out.push(line.slice(start..i));
        }
    }
    out
}

/// A non-negative decimal integer, digits only (no sign, no spaces), as the reference accepts.
fn parse_size(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| if c.is_ascii_digit() { Some(n * 10 + u64::from(c - b'0')) } else { None })
}

impl Parser {
    pub fn new(max_control_line: usize, max_payload: usize) -> Self {
        Parser { max_control_line, max_payload, pending: None }
    }

    /// How many more bytes the current operation needs at least, so the reader can size its next read.
    pub fn wants(&self, buffered: usize) -> usize {
        match &self.pending {
            Some(p) => (p.body_len + 2).saturating_sub(buffered),
            None => 0,
        }
    }

    /// The next complete operation in `buf` (consuming it), `Ok(None)` if more input is needed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        loop {
            if let Some(p) = &self.pending {
                if buf.len() < p.body_len + 2 {
                    return Ok(None);
                }
                if &buf[p.body_len..p.body_len + 2] != b"\r\n" {
                    return Err(ProtocolError::UnknownOperation);
                }
                let p = self.pending.take().expect("checked above");
                let body = buf.split_to(p.body_len).freeze();
                let _ = buf.split_to(2);
                return Ok(Some(ClientOp::Pub {
                    subject: p.subject,
                    reply: p.reply,
                    header_len: p.header_len,
                    body,
                    hpub: p.hpub,
                }));
            }
            let Some(nl) = memchr::memchr(b'\n', buf) else {
                self.check_partial_line(buf)?;
                return Ok(None);
            };
            let line = buf.split_to(nl + 1).freeze();
            let end = if nl > 0 && line[nl - 1] == b'\r' { nl - 1 } else { nl };
            let line = line.slice(..end);
            if let Some(op) = self.control_line(line)? {
                return Ok(Some(op));
            }
            // A PUB/HPUB control line: its body follows.
        }
    }

    /// Input without a line end yet: fail early on an unknown operation name, and stop buffering a line that is
    /// already longer than the limit.
    ///
    /// Both checks are the ones [`Parser::control_line`] makes on the whole line, in the same order, so the outcome
    /// never depends on how the input was split (the fuzz property).
    fn check_partial_line(&self, buf: &[u8]) -> Result<(), ProtocolError> {
        // A CR at the very end may be the start of the line terminator; it is not part of the line.
        let buf = buf.strip_suffix(b"\r").unwrap_or(buf);
        let name_end = buf.iter().position(|&b| is_sep(b)).unwrap_or(buf.len());
        let name = &buf[..name_end.min(LONGEST_OP + 1)];
        if !OPS.iter().any(|op| op.len() >= name.len() && op[..name.len()].eq_ignore_ascii_case(name)) {
            return Err(ProtocolError::UnknownOperation);
        }
        if buf.len() - name_end > self.max_control_line {
            return Err(ProtocolError::ControlLineTooLong);
        }
        Ok(())
    }

    /// Interprets one control line (terminator removed). Returns `None` after a PUB/HPUB line, whose body is next.
    fn control_line(&mut self, line: Bytes) -> Result<Option<ClientOp>, ProtocolError> {
        let name_end = line.iter().position(|&b| is_sep(b)).unwrap_or(line.len());
        let name = &line[..name_end];
        if !OPS.iter().any(|op| name.eq_ignore_ascii_case(op)) {
            return Err(ProtocolError::UnknownOperation);
        }
        if line.len() - name_end > self.max_control_line {
            return Err(ProtocolError::ControlLineTooLong);
        }
        let is = |op: &[u8]| name.eq_ignore_ascii_case(op);
        if is(b"PUB") || is(b"HPUB") {
            let hpub = is(b"HPUB");
            let args = fields(&line, name_end);
            let (subject, reply, header_len, total) = match (hpub, args.len()) {
                (_, 0) => return Err(ProtocolError::UnknownOperation),
                (false, 2) => (&args[0], None, None, &args[1]),
                (false, 3) => (&args[0], Some(&args[1]), None, &args[2]),
                (true, 3) => (&args[0], None, Some(&args[1]), &args[2]),
                (true, 4) => (&args[0], Some(&args[1]), Some(&args[2]), &args[3]),
                _ => return Err(ProtocolError::Malformed),
            };
            let total = parse_size(total).ok_or(ProtocolError::Malformed)?;
            let header_len = match header_len {
                Some(h) => parse_size(h).filter(|&h| h <= total).ok_or(ProtocolError::Malformed)?,
                None => 0,
            };
            if total > self.max_payload as u64 {
                return Err(ProtocolError::PayloadTooLarge);
            }
            self.pending = Some(PendingBody {
                subject: subject.clone(),
                reply: reply.cloned(),
                header_len: header_len as usize,
                body_len: total as usize,
                hpub,
            });
            return Ok(None);
        }
        let op = if is(b"SUB") {
            let mut args = fields(&line, name_end).into_iter();
            match (args.next(), args.next(), args.next(), args.next()) {
                (None, ..) => return Err(ProtocolError::UnknownOperation),
                (Some(subject), Some(sid), None, _) => ClientOp::Sub { subject, queue: None, sid },
                (Some(subject), Some(queue), Some(sid), None) => ClientOp::Sub { subject, queue: Some(queue), sid },
                _ => return Err(ProtocolError::Malformed),
            }
        } else if is(b"UNSUB") {
            let args = fields(&line, name_end);
            match args.len() {
                0 => return Err(ProtocolError::UnknownOperation),
                1 => ClientOp::Unsub { sid: args[0].clone(), max: None },
                2 => ClientOp::Unsub {
                    sid: args[0].clone(),
                    max: Some(parse_size(&args[1]).ok_or(ProtocolError::Malformed)?),
                },
                _ => return Err(ProtocolError::Malformed),
            }
        } else if is(b"PING") {
            ClientOp::Ping
        } else if is(b"PONG") {
            ClientOp::Pong
        } else if is(b"CONNECT") {
            let s = &line[name_end..];
            let start = s.iter().position(|&b| !is_sep(b)).unwrap_or(s.len());
            let stop = s.iter().rposition(|&b| !is_sep(b)).map_or(start, |p| p + 1);
            ClientOp::Connect(line.slice(name_end + start..name_end + stop.max(start)))
        } else if is(b"INFO") || is(b"+OK") || is(b"-ERR") {
            ClientOp::Ignored
        } else {
            return Err(ProtocolError::UnknownOperation);
        };
        Ok(Some(op))
    }
}

/// Appends a decimal number without allocating.
pub fn put_decimal(out: &mut BytesMut, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a `MSG` (no headers, or headers stripped for a client that did not negotiate them) or an `HMSG`.
/// `body` is the header block followed by the payload; `header_len` its header part (0: none).
pub fn put_msg(
    out: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    header_len: usize,
    body: &[u8],
    with_headers: bool,
) {
    let hmsg = with_headers && header_len > 0;
    let body = if hmsg { body } else { &body[header_len..] };
    out.reserve(subject.len() + sid.len() + reply.map_or(0, <[u8]>::len) + body.len() + 40);
    out.extend_from_slice(if hmsg { b"HMSG " } else { b"MSG " });
    out.extend_from_slice(subject);
    out.extend_from_slice(b" ");
    out.extend_from_slice(sid);
    out.extend_from_slice(b" ");
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.extend_from_slice(b" ");
    }
    if hmsg {
        put_decimal(out, header_len);
        out.extend_from_slice(b" ");
    }
    put_decimal(out, body.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// Appends `-ERR '<text>'`.
pub fn put_err(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

/// Parses `pieces` as successive reads: every operation, and the error that ended parsing, if any.
fn parse_pieces<'a>(
    mut parser: Parser,
    pieces: impl Iterator<Item = &'a [u8]>,
) -> (Vec<ClientOp>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e)),
            }
        }
    }
    (ops, None)
}

/// Fuzzing property (used by `fuzz/fuzz_targets/nats_parse.rs` and the tests): whatever the bytes, parsing never
/// panics, and parsing them in one read or split into two reads at any point gives the same operations and the same
/// error. The first byte picks the split point; small limits make the limit paths reachable.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else { return };
    let run = |pieces: &[&[u8]]| parse_pieces(Parser::new(64, 256), pieces.iter().copied());
    let cut = usize::from(cut).min(input.len());
    let whole = run(&[input]);
    let split = run(&[&input[..cut], &input[cut..]]);
    // An error can surface earlier with less input (an unknown operation name is recognised from its first bytes),
    // but never differently: the operations before it and the error itself agree.
    assert_eq!(whole, split, "parsing depends on how the input is split");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], chunk: usize) -> (Vec<ClientOp>, Option<ProtocolError>) {
        parse_pieces(Parser::new(4096, 1 << 20), input.chunks(chunk.max(1)))
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    const SESSION: &[u8] =
        b"CONNECT {\"verbose\": false, \"headers\": true}\r\nPING\r\nSUB demo.>  1\r\nsub demo.q workers 2\r\n\
PUB demo.a  5\r\nhello\r\nHPUB demo.h  56 58\r\nNATS/1.0\r\nX-Trace: 1\r\nContent-Type: application/json\r\n\r\nhi\r\n\
PUB svc.echo _INBOX.x.y 4\r\nping\r\nPUB empty.payload 0\r\n\r\nUNSUB 2 \r\nUNSUB 5 1\r\npong\r\nPING \n+OK\r\n";

    fn session_ops() -> Vec<ClientOp> {
        vec![
            ClientOp::Connect(b("{\"verbose\": false, \"headers\": true}")),
            ClientOp::Ping,
            ClientOp::Sub { subject: b("demo.>"), queue: None, sid: b("1") },
            ClientOp::Sub { subject: b("demo.q"), queue: Some(b("workers")), sid: b("2") },
            ClientOp::Pub { subject: b("demo.a"), reply: None, header_len: 0, body: b("hello"), hpub: false },
            ClientOp::Pub {
                subject: b("demo.h"),
                reply: None,
                header_len: 56,
                body: b("NATS/1.0\r\nX-Trace: 1\r\nContent-Type: application/json\r\n\r\nhi"),
                hpub: true,
            },
            ClientOp::Pub {
                subject: b("svc.echo"),
                reply: Some(b("_INBOX.x.y")),
                header_len: 0,
                body: b("ping"),
                hpub: false,
            },
            ClientOp::Pub { subject: b("empty.payload"), reply: None, header_len: 0, body: Bytes::new(), hpub: false },
            ClientOp::Unsub { sid: b("2"), max: None },
            ClientOp::Unsub { sid: b("5"), max: Some(1) },
            ClientOp::Pong,
            ClientOp::Ping,
            ClientOp::Ignored,
        ]
    }

    #[test]
    fn a_session_parses_the_same_whatever_the_split() {
        for chunk in [SESSION.len(), 1, 2, 3, 7, 64] {
            let (ops, err) = parse_all(SESSION, chunk);
            assert_eq!(err, None, "chunk {chunk}");
            assert_eq!(ops, session_ops(), "chunk {chunk}");
        }
    }

    #[test]
    fn a_session_split_at_every_byte_into_two_reads_parses_the_same() {
        for cut in 0..=SESSION.len() {
            let mut p = Parser::new(4096, 1 << 20);
            let mut buf = BytesMut::new();
            let mut ops = Vec::new();
            for piece in [&SESSION[..cut], &SESSION[cut..]] {
                buf.extend_from_slice(piece);
                while let Some(op) = p.parse(&mut buf).unwrap() {
                    ops.push(op);
                }
            }
            assert_eq!(ops, session_ops(), "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn errors_are_the_references() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"FOO\r\n", ProtocolError::UnknownOperation),
            (b"FOO", ProtocolError::UnknownOperation),
            (b"MSG a 1 1\r\n", ProtocolError::UnknownOperation),
            (b"PUBX a 1\r\n", ProtocolError::UnknownOperation),
            (b"PUB\r\n", ProtocolError::UnknownOperation),
            (b"SUB\r\n", ProtocolError::UnknownOperation),
            (b"UNSUB\r\n", ProtocolError::UnknownOperation),
            (b"PUB foo 3\r\nabcdef\r\n", ProtocolError::UnknownOperation),
            (b"PUB foo 1048577\r\n", ProtocolError::PayloadTooLarge),
            (b"HPUB foo 12 1048577\r\n", ProtocolError::PayloadTooLarge),
            (b"PUB a b c 1\r\n", ProtocolError::Malformed),
            (b"PUB a x\r\n", ProtocolError::Malformed),
            (b"PUB a -1\r\n", ProtocolError::Malformed),
            (b"HPUB a 5 4\r\n", ProtocolError::Malformed),
            (b"HPUB a 5\r\n", ProtocolError::Malformed),
            (b"SUB a\r\n", ProtocolError::Malformed),
            (b"SUB a b c d\r\n", ProtocolError::Malformed),
            (b"UNSUB 1 x\r\n", ProtocolError::Malformed),
            (b"UNSUB 1 2 3\r\n", ProtocolError::Malformed),
        ];
        for (input, want) in cases {
            for chunk in [input.len(), 1] {
                let (_, err) = parse_all(input, chunk);
                assert_eq!(err, Some(*want), "{:?} in chunks of {chunk}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn payload_at_max_payload_is_accepted() {
        let mut p = Parser::new(4096, 4);
        let mut buf = BytesMut::from(&b"PUB a 4\r\nabcd\r\n"[..]);
        assert!(matches!(p.parse(&mut buf), Ok(Some(ClientOp::Pub { .. }))));
        let mut buf = BytesMut::from(&b"PUB a 5\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Err(ProtocolError::PayloadTooLarge));
    }

    #[test]
    fn control_line_limit_applies_with_and_without_a_line_end() {
        let long = format!("SUB {} 1", "a".repeat(5000));
        let (_, err) = parse_all(format!("{long}\r\n").as_bytes(), 1);
        assert_eq!(err, Some(ProtocolError::ControlLineTooLong));
        // No line end at all: the parser stops buffering once the limit is passed.
        let mut p = Parser::new(4096, 1 << 20);
        let mut buf = BytesMut::from(long.as_bytes());
        assert_eq!(p.parse(&mut buf), Err(ProtocolError::ControlLineTooLong));
        let mut buf = BytesMut::from(&long.as_bytes()[..4000]);
        assert_eq!(p.parse(&mut buf), Ok(None));
    }

    #[test]
    fn truncated_input_waits_and_tolerates_separators() {
        let (ops, err) = parse_all(b"PUB a 5\r\nhel", 1);
        assert!(ops.is_empty() && err.is_none());
        let (ops, _) = parse_all(b"sub\t a \t 7 \r\nping\t\r\nCONNECT\r\n", 1);
        assert_eq!(
            ops,
            vec![
                ClientOp::Sub { subject: b("a"), queue: None, sid: b("7") },
                ClientOp::Ping,
                ClientOp::Connect(Bytes::new())
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random stream of bytes biased towards protocol characters.
        let alphabet = b"PUBSHNCOTIGpubsh \t\r\n0123456789.*>{}-+";
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for round in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(round % 97 + 1) * 3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                input.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for chunk in [1, 5, input.len()] {
                let _ = parse_all(&input, chunk);
            }
            let mut data = vec![(x % 256) as u8];
            data.extend_from_slice(&input);
            fuzz_parse(&data);
        }
    }

    #[test]
    fn msg_frames_are_formatted_exactly() {
        let mut out = BytesMut::new();
        put_msg(&mut out, b"demo.a", b"1", None, 0, b"hello", true);
        put_msg(&mut out, b"svc.echo", b"3", Some(b"_INBOX.a.b"), 0, b"ping", false);
        let hb = b"NATS/1.0\r\nA: b\r\n\r\nping2";
        put_msg(&mut out, b"svc.echo", b"3", Some(b"_INBOX.c"), 18, hb, true);
        put_msg(&mut out, b"hh", b"1", None, 12, b"NATS/1.0\r\n\r\nhi", false);
        put_err(&mut out, "Invalid Subject");
        assert_eq!(
            &out[..],
            &b"MSG demo.a 1 5\r\nhello\r\nMSG svc.echo 3 _INBOX.a.b 4\r\nping\r\n\
HMSG svc.echo 3 _INBOX.c 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nping2\r\nMSG hh 1 2\r\nhi\r\n-ERR 'Invalid Subject'\r\n"[..]
        );
    }
}
