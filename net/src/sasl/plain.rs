//! SASL/PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`,
//! checked against the user's SCRAM credential (SCRAM-SHA-256 if the user
//! has one, else SCRAM-SHA-512): SaltedPassword again from the stored salt
//! and iterations, its StoredKey compared in constant time. So PLAIN users
//! are the SCRAM users, managed the same way, and no password is stored.
//! (Each attempt costs one PBKDF2, which also slows guessing.)

use super::scram::ScramMechanism;
use weir_shards::MetadataSnapshot;

/// Kafka's limit on each of the three fields.
const MAX_FIELD_BYTES: usize = 255 * 4;

/// The user a PLAIN token authenticates, or why not (a message that names no secret).
pub fn authenticate(token: &[u8], metadata: &MetadataSnapshot) -> Result<String, String> {
    let (user, password) = parse(token)?;
    let credential = ScramMechanism::ALL
        .into_iter()
        .find_map(|mechanism| metadata.scram_credential(&user, mechanism.name()).map(|c| (mechanism, c)));
    match credential {
        Some((mechanism, credential)) if mechanism.verify_password(credential, password) => Ok(user),
        _ => Err("Authentication failed: Invalid username or password".into()),
    }
}

/// The user and password of a PLAIN token; an authorization id, if given,
/// must be the user (as Kafka requires).
fn parse(token: &[u8]) -> Result<(String, &[u8]), String> {
    let mut fields = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens".into());
    };
    if [authzid, user, password].iter().any(|f| f.len() > MAX_FIELD_BYTES) {
        return Err("Invalid SASL/PLAIN response: a field is too long".into());
    }
    let user = std::str::from_utf8(user).map_err(|_| "Invalid SASL/PLAIN response: the username is not UTF-8")?;
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username".into()
        );
    }
    Ok((user.to_string(), password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_parsed_as_kafka_parses_them() {
        assert_eq!(parse(b"\0alice\0secret"), Ok(("alice".to_string(), &b"secret"[..])));
        assert_eq!(parse(b"alice\0alice\0secret"), Ok(("alice".to_string(), &b"secret"[..])));
        for bad in [&b""[..], b"\0", b"\0alice", b"\0alice\0", b"\0\0secret", b"bob\0alice\0secret", b"a\0b\0c\0d"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&[b"\0".as_slice(), &[b'x'; 2000], b"\0p"].concat()).is_err());
        assert!(parse(b"\0\xff\xfe\0p").is_err());
    }
}
