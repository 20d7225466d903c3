//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks
//! them: no channel binding (gs2 header `n,,`, or `n,a=<the user>,`), the
//! password as its UTF-8 bytes (no SASLprep), a final nonce that ends with
//! the server's (librdkafka repeats its client nonce in front), the server's
//! credential kept as StoredKey, ServerKey, salt and iteration count, never
//! the password.
//!
//! [`ScramServer`] is the server's side of one exchange, a plain state
//! machine: it is given the client's messages and answers the next server
//! message or why the exchange failed; the credential lookup and the nonce
//! are given to it, so tests drive it with RFC 7677's example.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use weir_shards::metadata::ScramCredential;

/// Kafka's bounds on a SCRAM credential's iteration count.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// The longest client message taken (a user name and a nonce; Kafka's
/// clients send about a hundred bytes).
const MAX_MESSAGE_BYTES: usize = 4096;

/// The two SCRAM mechanisms, with the codes KIP-554 gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The code of DescribeUserScramCredentials and AlterUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The hash's output length: that of SaltedPassword, StoredKey and ServerKey.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => mac::<Hmac<Sha256>>(key, data),
            ScramMechanism::Sha512 => mac::<Hmac<Sha512>>(key, data),
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// SaltedPassword: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.hash_len()];
        match self {
            ScramMechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            ScramMechanism::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }

    /// The credential the server keeps for a SaltedPassword (what
    /// AlterUserScramCredentials carries).
    pub fn credential(self, salted_password: &[u8], salt: &[u8], iterations: u32) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of a clear password with a fresh random salt (the
    /// `weir users add` side; the password is not kept).
    pub fn new_credential(self, password: &str, iterations: u32) -> Result<ScramCredential, getrandom::Error> {
        let salt = random_salt()?;
        Ok(self.credential(&self.salted_password(password.as_bytes(), &salt, iterations), &salt, iterations))
    }

    /// Whether `password` is the one `credential` was made from (SASL/PLAIN
    /// against the SCRAM store): its StoredKey again from the stored salt,
    /// compared in constant time.
    pub fn verify_password(self, credential: &ScramCredential, password: &[u8]) -> bool {
        let salted = self.salted_password(password, &credential.salt, credential.iterations);
        let stored_key = self.hash(&self.hmac(&salted, b"Client Key"));
        bool::from(stored_key.ct_eq(&credential.stored_key))
    }
}

/// Why an exchange failed. `Malformed` and `Unsupported` are protocol errors,
/// `BadCredentials` a wrong password or unknown user; the broker answers all
/// SASL_AUTHENTICATION_FAILED, with a message that names no secret.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    BadCredentials(&'static str),
    #[error("SCRAM message after the exchange ended")]
    Finished,
}

/// Where a server exchange is.
enum Step {
    /// Waiting for client-first-message.
    ClientFirst,
    /// Waiting for client-final-message.
    ClientFinal {
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// The server's side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    step: Step,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer { mechanism, step: Step::ClientFirst }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Whether the next message is the client's first.
    pub fn awaits_client_first(&self) -> bool {
        matches!(self.step, Step::ClientFirst)
    }

    /// Takes client-first-message; answers server-first-message. `lookup`
    /// gives the user's credential for this mechanism, `server_nonce` is
    /// appended to the client's nonce (printable, no comma).
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<String, ScramError> {
        if !matches!(self.step, Step::ClientFirst) {
            return Err(ScramError::Finished);
        }
        self.step = Step::Done; // whatever happens next, this message is not taken twice
        let message = text(message)?;
        // gs2-header: channel-binding flag, optional authzid, then the bare message.
        let (flag, rest) = message.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        match flag {
            "n" => {}
            "y" | "p" => return Err(ScramError::Unsupported("channel binding")),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        let gs2_header = format!("n,{authzid},");
        let mut fields = bare.split(',');
        let user = match fields.next() {
            Some(field) if field.starts_with("m=") => return Err(ScramError::Unsupported("mandatory extension")),
            Some(field) => unescape_name(field.strip_prefix("n=").ok_or(ScramError::Malformed("no user name"))?)?,
            None => return Err(ScramError::Malformed("no user name")),
        };
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("no client nonce"))?;
        if !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ScramError::Malformed("bad client nonce"));
        }
        // Extensions (`key=value`); a delegation token is not served.
        for extension in fields {
            match extension.split_once('=') {
                Some(("tokenauth", value)) if value.eq_ignore_ascii_case("true") => {
                    return Err(ScramError::Unsupported("delegation tokens"))
                }
                Some((key, _)) if !key.is_empty() => {}
                _ => return Err(ScramError::Malformed("bad extension")),
            }
        }
        if !authzid.is_empty() {
            let authzid = unescape_name(authzid.strip_prefix("a=").ok_or(ScramError::Malformed("bad authzid"))?)?;
            if authzid != user {
                return Err(ScramError::Unsupported("an authorization id other than the user"));
            }
        }
        let credential = lookup(&user).ok_or(ScramError::BadCredentials(self.mechanism.name()))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&credential.salt), credential.iterations);
        self.step = Step::ClientFinal {
            user,
            credential,
            gs2_header,
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        };
        Ok(server_first)
    }

    /// Takes client-final-message; answers server-final-message and the
    /// authenticated user.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(String, String), ScramError> {
        let Step::ClientFinal { user, credential, gs2_header, nonce, client_first_bare, server_first } =
            std::mem::replace(&mut self.step, Step::Done)
        else {
            return Err(ScramError::Finished);
        };
        let message = text(message)?;
        let (without_proof, proof) = message.rsplit_once(",p=").ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(ScramError::Malformed("no binding"))?;
        let binding = BASE64.decode(binding).map_err(|_| ScramError::Malformed("binding is not base64"))?;
        if binding != gs2_header.as_bytes() {
            return Err(ScramError::Malformed("channel binding differs from the gs2 header"));
        }
        let their_nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("no nonce"))?;
        // Kafka takes a nonce that ends with the server's, and librdkafka
        // sends its client nonce once more in front of it (the signature
        // covers the message as sent, so it proves the same).
        if !their_nonce.ends_with(&nonce) {
            return Err(ScramError::Malformed("nonce differs from the server's"));
        }
        // Extensions may follow the nonce; they are signed with the rest.
        let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let mechanism = self.mechanism;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadCredentials(mechanism.name()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::BadCredentials(mechanism.name()));
        }
        let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", BASE64.encode(server_signature)), user))
    }
}

/// A fresh salt: 32 random bytes.
pub fn random_salt() -> Result<Vec<u8>, getrandom::Error> {
    let mut salt = vec![0u8; 32];
    getrandom::getrandom(&mut salt)?;
    Ok(salt)
}

/// A fresh server nonce: 24 random bytes, base64 (printable, no comma).
pub fn server_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)?;
    Ok(BASE64.encode(bytes))
}

fn text(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ScramError::Malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// A saslname: `=2C` is a comma, `=3D` an equals sign, any other `=` is malformed.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mechanism = ScramMechanism::Sha256;
        mechanism.credential(&mechanism.salted_password(b"pencil", &salt, 4096), &salt, 4096)
    }

    fn lookup(user: &str) -> Option<ScramCredential> {
        (user == "user").then(rfc_credential)
    }

    #[test]
    fn rfc_7677_example() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert_eq!(server.client_first(CLIENT_FIRST.as_bytes(), lookup, SERVER_NONCE).unwrap(), SERVER_FIRST);
        let (server_final, user) = server.client_final(CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(server_final, SERVER_FINAL);
        assert_eq!(user, "user");
        assert_eq!(server.client_final(CLIENT_FINAL.as_bytes()), Err(ScramError::Finished));
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server.client_first(CLIENT_FIRST.as_bytes(), lookup, SERVER_NONCE).unwrap();
        let wrong = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        assert_eq!(server.client_final(wrong.as_bytes()), Err(ScramError::BadCredentials("SCRAM-SHA-256")));

        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let unknown = server.client_first(b"n,,n=nobody,r=abc", lookup, SERVER_NONCE);
        assert_eq!(unknown, Err(ScramError::BadCredentials("SCRAM-SHA-256")));
        // The message names the mechanism and nothing secret.
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let firsts: [&[u8]; 14] = [
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"y,,n=user,r=abc",
            b"x,,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,a=other,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=abc,tokenauth=true",
            &[0xff, 0xfe, b',', b','],
        ];
        for first in firsts {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            assert!(server.client_first(first, lookup, SERVER_NONCE).is_err(), "{first:?}");
        }
        let oversized = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE_BYTES));
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.client_first(oversized.as_bytes(), lookup, SERVER_NONCE).is_err());

        let finals: [&[u8]; 8] = [
            b"",
            b"c=biws",
            b"c=biws,r=x,p=",
            b"c=!!,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=###",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            &CLIENT_FINAL.as_bytes()[..CLIENT_FINAL.len() - 6],
        ];
        for last in finals {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            server.client_first(CLIENT_FIRST.as_bytes(), lookup, SERVER_NONCE).unwrap();
            assert!(server.client_final(last).is_err(), "{:?}", String::from_utf8_lossy(last));
        }
        // librdkafka's final nonce: its client nonce again, then the server's nonce.
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server.client_first(b"n,,n=user,r=abc", lookup, "xyz").unwrap();
        let other = server.client_final(b"c=biws,r=abcxyzz,p=AAAA");
        assert_eq!(other, Err(ScramError::Malformed("nonce differs from the server's")));

        let mut fresh = ScramServer::new(ScramMechanism::Sha256);
        assert_eq!(fresh.client_final(CLIENT_FINAL.as_bytes()), Err(ScramError::Finished));
    }

    #[test]
    fn escaped_names_and_an_authzid_equal_to_the_user() {
        assert_eq!(unescape_name("a=2Cb=3Dc").unwrap(), "a,b=c");
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.client_first(b"n,a=user,n=user,r=abc", lookup, "xyz").is_ok());
    }

    #[test]
    fn plain_passwords_check_against_the_stored_credential() {
        for mechanism in ScramMechanism::ALL {
            let credential = mechanism.new_credential("s3cret", MIN_ITERATIONS).unwrap();
            assert!(mechanism.verify_password(&credential, b"s3cret"));
            assert!(!mechanism.verify_password(&credential, b"s3cret "));
            assert_eq!(credential.stored_key.len(), credential.server_key.len());
        }
    }
}
