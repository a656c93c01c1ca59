//! Encryption at rest for upstream credentials: XChaCha20-Poly1305 with a random nonce per
//! write. A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext and tag`.
//! The associated data names what the value is, so a value sealed for one purpose cannot be
//! passed off as another.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mirrorhub_core::Credentials;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const CREDENTIALS_AAD: &[u8] = b"mirrorhub/credentials/v1";
const KEY_CHECK_AAD: &[u8] = b"mirrorhub/key-check/v1";
const WEBHOOK_SECRET_AAD: &[u8] = b"mirrorhub/webhook-secret/v1";
const SSH_KEY_AAD: &[u8] = b"mirrorhub/ssh-key/v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"mirrorhub";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the secret key must be 32 bytes written in base64 (44 characters)")]
    InvalidKey,
    #[error("the secret key is not the one this database's credentials were encrypted with")]
    WrongKey,
    #[error("stored credentials could not be decrypted: wrong key or damaged data")]
    Decrypt,
    #[error("credentials could not be encrypted")]
    Encrypt,
}

/// The 32-byte key that encrypts credentials at rest. Its `Debug` shows nothing of the key,
/// and its memory is wiped when dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    /// Reads a key written by [`SecretKey::to_base64`] (standard base64, surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::InvalidKey)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in standard base64. This is the secret itself: do not log it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_slice())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }

    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub(crate) fn open(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (&version, rest) = sealed.split_first().ok_or(CryptoError::Decrypt)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Seals credentials for the `credentials` column.
    pub(crate) fn seal_credentials(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, CryptoError> {
        let user = credentials.username.as_bytes();
        let secret = credentials.secret.expose_secret().as_bytes();
        let len = u32::try_from(user.len()).map_err(|_| CryptoError::Encrypt)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(4 + user.len() + secret.len()));
        plain.extend_from_slice(&len.to_be_bytes());
        plain.extend_from_slice(user);
        plain.extend_from_slice(secret);
        self.seal(CREDENTIALS_AAD, &plain)
    }

    /// Opens what [`SecretKey::seal_credentials`] sealed.
    pub(crate) fn open_credentials(&self, sealed: &[u8]) -> Result<Credentials, CryptoError> {
        let plain = self.open(CREDENTIALS_AAD, sealed)?;
        let (len, rest) = plain.split_first_chunk::<4>().ok_or(CryptoError::Decrypt)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| CryptoError::Decrypt)?;
        if rest.len() < len {
            return Err(CryptoError::Decrypt);
        }
        let (user, secret) = rest.split_at(len);
        let username = String::from_utf8(user.to_vec()).map_err(|_| CryptoError::Decrypt)?;
        let secret = String::from_utf8(secret.to_vec()).map_err(|_| CryptoError::Decrypt)?;
        Ok(Credentials {
            username,
            secret: SecretString::from(secret),
        })
    }

    /// A new random webhook secret (256 bits, hex), sealed for the `webhook_secret` column.
    pub(crate) fn new_sealed_webhook_secret(&self) -> Result<Vec<u8>, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, bytes.as_mut_slice());
        let hex: Zeroizing<String> =
            Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect());
        self.seal(WEBHOOK_SECRET_AAD, hex.as_bytes())
    }

    /// Opens a sealed webhook secret.
    pub(crate) fn open_webhook_secret(&self, sealed: &[u8]) -> Result<SecretString, CryptoError> {
        let plain = self.open(WEBHOOK_SECRET_AAD, sealed)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Decrypt)?;
        Ok(SecretString::from(text))
    }

    /// Seals an SSH private key (its OpenSSH text) for the `ssh_keys.private_key` column.
    pub(crate) fn seal_ssh_key(&self, private_key: &SecretString) -> Result<Vec<u8>, CryptoError> {
        self.seal(SSH_KEY_AAD, private_key.expose_secret().as_bytes())
    }

    /// Opens what [`SecretKey::seal_ssh_key`] sealed.
    pub(crate) fn open_ssh_key(&self, sealed: &[u8]) -> Result<SecretString, CryptoError> {
        let plain = self.open(SSH_KEY_AAD, sealed)?;
        // Copied once, from the buffer that is wiped when dropped, into the secret.
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Decrypt)?;
        Ok(SecretString::from(text))
    }

    /// A value sealed with this key, kept in the settings to recognise the key later.
    pub(crate) fn seal_check_value(&self) -> Result<String, CryptoError> {
        Ok(STANDARD.encode(self.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)?))
    }

    pub(crate) fn verify_check_value(&self, stored: &str) -> Result<(), CryptoError> {
        let sealed = STANDARD.decode(stored).map_err(|_| CryptoError::WrongKey)?;
        match self.open(KEY_CHECK_AAD, &sealed) {
            Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(CryptoError::WrongKey),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, secret: &str) -> Credentials {
        Credentials {
            username: user.into(),
            secret: SecretString::from(secret.to_owned()),
        }
    }

    #[test]
    fn credentials_round_trip_and_hide_their_text() {
        let key = SecretKey::generate();
        let c = creds("alice", "ghp_s3cr3t:with:colons");
        let sealed = key.seal_credentials(&c).unwrap();
        assert!(!sealed
            .windows(b"ghp_s3cr3t".len())
            .any(|w| w == b"ghp_s3cr3t"));
        assert!(!sealed.windows(b"alice".len()).any(|w| w == b"alice"));
        let back = key.open_credentials(&sealed).unwrap();
        assert_eq!(back.username, "alice");
        assert_eq!(back.expose_secret(), "ghp_s3cr3t:with:colons");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = SecretKey::generate();
        let c = creds("u", "s");
        assert_ne!(
            key.seal_credentials(&c).unwrap(),
            key.seal_credentials(&c).unwrap()
        );
    }

    #[test]
    fn a_wrong_key_or_a_flipped_bit_is_refused() {
        let key = SecretKey::generate();
        let sealed = key.seal_credentials(&creds("u", "secret")).unwrap();
        assert_eq!(
            SecretKey::generate().open_credentials(&sealed).unwrap_err(),
            CryptoError::Decrypt
        );
        for i in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[i] ^= 0x01;
            assert!(key.open_credentials(&damaged).is_err(), "byte {i}");
        }
        assert!(key.open_credentials(&sealed[..sealed.len() - 1]).is_err());
        assert!(key.open_credentials(&[]).is_err());
    }

    #[test]
    fn a_value_sealed_for_one_purpose_does_not_open_as_another() {
        let key = SecretKey::generate();
        let check = STANDARD.decode(key.seal_check_value().unwrap()).unwrap();
        assert!(key.open_credentials(&check).is_err());
        let sealed = key.seal_credentials(&creds("u", "s")).unwrap();
        assert_eq!(
            key.verify_check_value(&STANDARD.encode(sealed)),
            Err(CryptoError::WrongKey)
        );
    }

    const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
        b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
        -----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn ssh_keys_round_trip_and_hide_their_text() {
        let key = SecretKey::generate();
        let sealed = key
            .seal_ssh_key(&SecretString::from(SSH_KEY.to_owned()))
            .unwrap();
        for needle in [&b"OPENSSH PRIVATE KEY"[..], b"b3BlbnNzaC1rZXktdjEA"] {
            assert!(!sealed.windows(needle.len()).any(|w| w == needle));
        }
        assert!(sealed.len() >= 1 + NONCE_LEN + 16 + SSH_KEY.len());
        assert_eq!(key.open_ssh_key(&sealed).unwrap().expose_secret(), SSH_KEY);
        assert_ne!(
            sealed,
            key.seal_ssh_key(&SecretString::from(SSH_KEY.to_owned()))
                .unwrap(),
            "a fresh nonce"
        );
    }

    #[test]
    fn an_ssh_key_opens_only_with_its_key_and_for_its_purpose() {
        let key = SecretKey::generate();
        let sealed = key
            .seal_ssh_key(&SecretString::from(SSH_KEY.to_owned()))
            .unwrap();
        assert_eq!(
            SecretKey::generate().open_ssh_key(&sealed).unwrap_err(),
            CryptoError::Decrypt
        );
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 0x01;
        assert_eq!(
            key.open_ssh_key(&damaged).unwrap_err(),
            CryptoError::Decrypt
        );
        assert!(key.open_credentials(&sealed).is_err());
        assert!(key.open_webhook_secret(&sealed).is_err());
        let webhook = key.new_sealed_webhook_secret().unwrap();
        assert!(key.open_ssh_key(&webhook).is_err());
    }

    #[test]
    fn keys_round_trip_through_base64_and_never_show_in_debug() {
        let key = SecretKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let again = SecretKey::from_base64(&format!(" {text}\n")).unwrap();
        assert_eq!(again.to_base64(), text);
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
        assert_eq!(
            SecretKey::from_bytes([7; 32]).to_base64(),
            STANDARD.encode([7u8; 32])
        );
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert_eq!(
                SecretKey::from_base64(bad).unwrap_err(),
                CryptoError::InvalidKey,
                "{bad:?}"
            );
        }
    }
}
