//! NATS URLs as Weft's binaries take them: one URL or several separated by commas, with
//! credentials in them (`nats://user:password@host:4222`, or a token: `nats://token@host`).
//!
//! async-nats 0.51 parses the credentials of a URL but never sends them
//! (nats-io/nats.rs#1623), so they are moved into the connect options here, where they
//! also serve the servers a cluster advertises. URLs printed in logs and errors go through
//! [`redact`].

use async_nats::{ConnectOptions, ServerAddr};

/// The URLs in `urls`: one, or several separated by commas.
pub fn servers(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// `options` with the user and password (or the token) of the first of `urls` that
/// carries any; unchanged if none does.
pub fn with_credentials(options: ConnectOptions, urls: &str) -> ConnectOptions {
    for url in servers(urls) {
        let Ok(addr) = url.parse::<ServerAddr>() else { continue };
        match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => return options.user_and_password(decode(user), decode(password)),
            (Some(token), None) => return options.token(decode(token)),
            _ => {}
        }
    }
    options
}

/// `urls` with passwords and tokens replaced by `***`, for logs and messages.
pub fn redact(urls: &str) -> String {
    servers(urls)
        .into_iter()
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
            let authority = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority].rfind('@') else { return url.to_owned() };
            let masked = match rest[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `url` (the first of several) with `user:password@` (or a token alone) in its
/// authority, each percent-encoded, so [`with_credentials`] reads them back; an error if it
/// carries credentials already.
pub fn add_credentials(urls: &str, user: Option<&str>, password: Option<&str>) -> Result<String, String> {
    let (scheme, rest) = urls.split_once("://").ok_or_else(|| format!("{:?} is not a URL", redact(urls)))?;
    let authority = rest.find(['/', ',']).unwrap_or(rest.len());
    if rest[..authority].contains('@') {
        return Err("the URL has credentials already".to_owned());
    }
    let credentials = match (user, password) {
        (Some(user), Some(password)) => format!("{}:{}", encode(user), encode(password)),
        (Some(user), None) => encode(user),
        (None, Some(token)) => encode(token),
        (None, None) => return Ok(urls.to_owned()),
    };
    Ok(format!("{scheme}://{credentials}@{rest}"))
}

/// Percent-encodes all but URLs' unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Undoes the percent-encoding URLs apply to user names and passwords.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_credentials_read_back() {
        let url = add_credentials("tls://h:4222", Some("client"), Some("p@ss/w:rd")).expect("added");
        assert_eq!(url, "tls://client:p%40ss%2Fw%3Ard@h:4222");
        let addr: ServerAddr = url.parse().expect("a server address");
        assert_eq!(addr.password().map(decode).as_deref(), Some("p@ss/w:rd"));
        assert!(add_credentials("nats://u:p@h:4222", Some("client"), None).is_err());
    }

    #[test]
    fn urls_are_split_on_commas() {
        assert_eq!(servers("nats://a:4222, nats://b:4222,"), ["nats://a:4222", "nats://b:4222"]);
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(redact("nats://worker:s3cret@nats:4222"), "nats://worker:***@nats:4222");
        assert_eq!(redact("tls://tok@h:1,nats://h2:2"), "tls://***@h:1,nats://h2:2");
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("localhost"), "localhost");
    }

    #[test]
    fn percent_encoding_is_undone() {
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
