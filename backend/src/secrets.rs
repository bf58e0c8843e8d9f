//! Node API keys and the master key that seals them.
//!
//! Keys are 32 random bytes, base64url. The primary stores a SHA-256 hash to verify a key
//! (a fast hash is right for 256-bit random secrets: there is nothing to brute-force) and the
//! key sealed with AES-256-GCM under the master key, because it must present the key back
//! when it calls the node. Every comparison is constant-time.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fresh random bytes as base64url: the shape of every generated secret.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A node's API key. Never printed: `Debug` is redacted.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// A new key of 32 random bytes.
    pub fn generate() -> ApiKey {
        ApiKey(SecretString::from(random_token(32)))
    }

    /// Accepts an operator-supplied key: 32 to 256 visible ASCII characters.
    pub fn parse(raw: &str) -> Result<ApiKey, String> {
        if raw.len() < 32 {
            return Err("must be at least 32 characters (use `fleetdeck keygen`)".into());
        }
        if raw.len() > 256 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be at most 256 visible ASCII characters".into());
        }
        Ok(ApiKey(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(self.expose())
    }

    /// Constant-time equality with a presented key.
    pub fn matches(&self, presented: &str) -> bool {
        self.hash().matches(presented)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

/// SHA-256 of a secret; what the primary keeps to verify it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<KeyHash> {
        bytes.try_into().ok().map(KeyHash)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `presented` hashes to this value; constant-time in the comparison.
    pub fn matches(&self, presented: &str) -> bool {
        KeyHash::of(presented).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// Lowercase hex of `bytes` (digests, checksums, signatures).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Constant-time equality of two secrets of any length (compares their hashes).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    KeyHash::of(a).matches(b)
}

/// The AES-256-GCM key that seals node keys at rest.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

const MASTER_KEY_FILE: &str = "master.key";
const NONCE_LEN: usize = 12;

impl MasterKey {
    /// Decodes 32 bytes of base64 (url-safe or standard, padding optional).
    pub fn decode(text: &str) -> Result<MasterKey, String> {
        let text = text.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| "must be 32 bytes of base64 (use `fleetdeck keygen`)".to_string())?;
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| "must decode to exactly 32 bytes".to_string())?;
        Ok(MasterKey(cipher))
    }

    /// The configured key, or the one in `DATA_DIR/master.key`, created (mode 0600) at first
    /// start.
    pub fn load_or_create(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(key) = configured {
            return MasterKey::decode(key.expose_secret()).map_err(anyhow::Error::msg);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let text = crate::data_dir::read_or_create_file(&path, || random_token(32))?;
        MasterKey::decode(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{} is corrupt", path.display()))
    }

    /// Nonce || ciphertext.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and a fresh nonce cannot fail for inputs this size.
        let sealed = self.0.encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes()).unwrap_or_default();
        out.extend(sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_verify_by_hash() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert!(a.hash().matches(a.expose()));
        assert!(!a.hash().matches(b.expose()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn short_or_odd_keys_are_refused() {
        assert!(ApiKey::parse("short").is_err());
        assert!(ApiKey::parse(&"a b".repeat(20)).is_err());
        assert!(ApiKey::parse(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn sealing_round_trips_and_detects_tampering() {
        let key = MasterKey::decode(&random_token(32)).unwrap();
        let mut sealed = key.seal("node-secret");
        assert_eq!(key.open(&sealed).as_deref(), Some("node-secret"));
        let other = MasterKey::decode(&random_token(32)).unwrap();
        assert_eq!(other.open(&sealed), None);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(key.open(&sealed), None);
    }

    #[test]
    fn master_key_needs_32_bytes() {
        assert!(MasterKey::decode("c2hvcnQ").is_err());
    }
}
