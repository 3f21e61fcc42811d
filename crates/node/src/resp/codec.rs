//! RESP on the wire: commands in (arrays of bulk strings, or inline lines as a terminal sends
//! them), replies out in RESP2 or RESP3.
//!
//! Parsing is incremental and bounded: a command is taken only once all its bytes are in the
//! buffer, and every length is checked against a limit before anything is allocated for it.

/// The most arguments of one command (the command's name included).
pub(crate) const MAX_ARGS: usize = 4096 + 2;
/// The longest inline command.
const MAX_INLINE: usize = 64 * 1024;

/// Why a client's bytes are not RESP: the connection is answered with the error and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub(crate) String);

/// A whole command's arguments and how many bytes it took, or `None` until all are there.
pub(crate) type Parsed = Option<(Vec<Vec<u8>>, usize)>;

/// The longest header line (`*` or `$`, a length, CRLF) taken before it must have ended.
const MAX_HEADER: usize = 32;

/// Reads the header line at `buf[at..]`: `prefix`, a decimal length (`-` allowed), CRLF.
/// Returns the length and where the line ends (after its CRLF), or `None` while the line is
/// incomplete. One pass, no allocation: this runs twice or more per request.
fn header(
    buf: &[u8],
    at: usize,
    prefix: u8,
    what: &str,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let invalid = || ProtocolError(format!("invalid {what} length"));
    match buf.get(at) {
        None => return Ok(None),
        Some(&b) if b != prefix => {
            return Err(ProtocolError(format!(
                "expected '{}', got '{}'",
                char::from(prefix),
                char::from(b).escape_default()
            )));
        }
        Some(_) => {}
    }
    let line = &buf[at + 1..buf.len().min(at + MAX_HEADER)];
    let (negative, digits) = match line.first() {
        Some(b'-') => (true, &line[1..]),
        _ => (false, line),
    };
    let mut n: i64 = 0;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(b - b'0')))
                    .ok_or_else(invalid)?;
            }
            b'\r' if i > 0 => {
                return match digits.get(i + 1) {
                    Some(b'\n') => {
                        let end = at + 1 + usize::from(negative) + i + 2;
                        Ok(Some((if negative { -n } else { n }, end)))
                    }
                    Some(_) => Err(invalid()),
                    None if buf.len() >= at + MAX_HEADER => Err(never_ends()),
                    None => Ok(None),
                };
            }
            _ => return Err(invalid()),
        }
    }
    if buf.len() >= at + MAX_HEADER {
        Err(never_ends())
    } else {
        Ok(None)
    }
}

fn never_ends() -> ProtocolError {
    ProtocolError("a length line that never ends".into())
}

/// Parses one command from the front of `buf`: `Ok(None)` until all its bytes are there, else
/// its arguments and how many bytes it took. `max_bulk` bounds each argument.
pub(crate) fn parse(buf: &[u8], max_bulk: usize) -> Result<Parsed, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return inline(buf);
    }
    let Some((count, mut pos)) = header(buf, 0, b'*', "multibulk")? else {
        return Ok(None);
    };
    if count <= 0 {
        return Ok(Some((Vec::new(), pos)));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_ARGS {
        return Err(ProtocolError(format!(
            "a command of {count} arguments (at most {MAX_ARGS})"
        )));
    }
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((len, data)) = header(buf, pos, b'$', "bulk")? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| ProtocolError("invalid bulk length".into()))?;
        if len > max_bulk {
            return Err(ProtocolError(format!(
                "an argument of {len} bytes (at most {max_bulk})"
            )));
        }
        if buf.len() < data + len + 2 {
            return Ok(None);
        }
        if &buf[data + len..data + len + 2] != b"\r\n" {
            return Err(ProtocolError("a bulk string not ended by CRLF".into()));
        }
        args.push(buf[data..data + len].to_vec());
        pos = data + len + 2;
    }
    Ok(Some((args, pos)))
}

/// An inline command: one line, arguments split on spaces (what `telnet` sends).
fn inline(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError("an inline command that never ends".into()))
        } else {
            Ok(None)
        };
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args: Vec<Vec<u8>> = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if args.len() > MAX_ARGS {
        return Err(ProtocolError("too many arguments".into()));
    }
    Ok(Some((args, newline + 1)))
}

/// A reply, encoded for the connection's protocol version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `+OK`.
    Simple(&'static str),
    /// `-ERR ...`: the text after the `-`, its first word the error's kind.
    Error(String),
    /// `:n`.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// Nothing (RESP2 `$-1`, RESP3 `_`).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A set (RESP3 `~`; an array in RESP2).
    Set(Vec<Reply>),
    /// A map (RESP3 `%`; a flat array of keys and values in RESP2).
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `-ERR message`.
    pub(crate) fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// A bulk string of text.
    pub(crate) fn text(text: impl Into<String>) -> Reply {
        Reply::Bulk(text.into().into_bytes())
    }

    /// Appends the reply to `out` in RESP `version` (2 or 3).
    pub(crate) fn encode(&self, version: u8, out: &mut Vec<u8>) {
        fn header(out: &mut Vec<u8>, prefix: u8, n: usize) {
            out.push(prefix);
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match self {
            Reply::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(e) => {
                out.push(b'-');
                // A reply line cannot hold a line break.
                out.extend(
                    e.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
                out.extend_from_slice(b"\r\n");
            }
            Reply::Int(n) => {
                out.push(b':');
                out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                header(out, b'$', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Null if version >= 3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|i| i.encode(version, out));
            }
            Reply::Set(items) => {
                header(out, if version >= 3 { b'~' } else { b'*' }, items.len());
                items.iter().for_each(|i| i.encode(version, out));
            }
            Reply::Map(pairs) => {
                if version >= 3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(version, out);
                    v.encode(version, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_are_taken_whole_or_not_at_all() {
        let cmd = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..cmd.len() {
            assert_eq!(parse(&cmd[..cut], 1024), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(cmd, 1024), Ok(Some((args(&["GET", "k"]), cmd.len()))));
        let two = [&cmd[..], b"*1\r\n$4\r\nPING\r\n"].concat();
        assert_eq!(
            parse(&two, 1024),
            Ok(Some((args(&["GET", "k"]), cmd.len())))
        );
        assert_eq!(
            parse(b"PING hello\r\n", 1024),
            Ok(Some((args(&["PING", "hello"]), 12)))
        );
    }

    #[test]
    fn lengths_are_checked_before_anything_is_allocated() {
        assert!(parse(b"*99999999\r\n", 1024).is_err());
        assert!(parse(b"*1\r\n$99999999\r\n", 1024).is_err());
        assert!(parse(b"*1\r\n$-5\r\n", 1024).is_err());
        assert!(parse(b"*1\r\n$x\r\n", 1024).is_err());
        assert!(parse(b"*1\r\n:1\r\n", 1024).is_err());
        assert!(parse(b"*1\r\n$1\r\nab\r\n", 1024).is_err());
        assert!(parse(&[b'*'; 100], 1024).is_err());
        assert!(parse(&vec![b'a'; MAX_INLINE + 1], 1024).is_err());
    }

    #[test]
    fn replies_take_each_version_s_shapes() {
        let encode = |r: &Reply, v| {
            let mut out = Vec::new();
            r.encode(v, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(encode(&Reply::Null, 2), "$-1\r\n");
        assert_eq!(encode(&Reply::Null, 3), "_\r\n");
        let set = Reply::Set(vec![Reply::text("a")]);
        assert_eq!(encode(&set, 2), "*1\r\n$1\r\na\r\n");
        assert_eq!(encode(&set, 3), "~1\r\n$1\r\na\r\n");
        let map = Reply::Map(vec![(Reply::text("k"), Reply::Int(1))]);
        assert_eq!(encode(&map, 2), "*2\r\n$1\r\nk\r\n:1\r\n");
        assert_eq!(encode(&map, 3), "%1\r\n$1\r\nk\r\n:1\r\n");
        assert_eq!(encode(&Reply::err("a\r\nb"), 2), "-ERR a  b\r\n");
    }
}
