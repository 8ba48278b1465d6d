//! Sealing what clients carry back to the proxy (an input-required `requestState`, a
//! session token): ChaCha20-Poly1305 under a key of `session_keys`, with the key's id in
//! clear so keys can rotate — the first key seals, every key opens.
//!
//! Each use has its own purpose and associated data: the key it seals with is derived from
//! the configured key and the purpose, so what one use sealed never opens as another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::config::StateKey;

/// Why a sealed text does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// Not of our format (wrong prefix, no key id, not base64).
    Malformed,
    /// Sealed under a key id none of the configured keys has (retired, or foreign).
    UnknownKey,
    /// The key is known but the text was not sealed by it, or was changed since.
    Forged,
}

/// The keys of one purpose: the first seals, all open.
pub(crate) struct Keys {
    keys: Vec<(String, LessSafeKey)>,
    prefix: &'static str,
    aad: &'static [u8],
    pub(crate) rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keys")
            .field("ids", &ids)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys for `purpose`, sealing with associated data `aad` texts that start with
    /// `prefix`. Without configured keys, a key made now serves this process only.
    pub(crate) fn new(
        configured: &[StateKey],
        purpose: &'static str,
        aad: &'static [u8],
        prefix: &'static str,
    ) -> Self {
        let rng = SystemRandom::new();
        let mut keys: Vec<(String, LessSafeKey)> = configured
            .iter()
            .map(|k| (k.id.clone(), derive(purpose, &k.key)))
            .collect();
        if keys.is_empty() {
            let mut key = [0u8; 32];
            rng.fill(&mut key)
                .expect("the system random source is available");
            keys.push(("local".to_owned(), derive(purpose, &key)));
        }
        Self {
            keys,
            prefix,
            aad,
            rng,
        }
    }

    /// `{prefix}{key id}.{base64url(nonce ‖ ciphertext ‖ tag)}` of `claims`.
    pub(crate) fn seal<T: Serialize>(&self, claims: &T) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random source is available");
        let mut data = serde_json::to_vec(claims).expect("claims serialize");
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.aad),
            &mut data,
        )
        .expect("sealing fits");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        format!("{}{id}.{}", self.prefix, URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The claims sealed in `text`.
    pub(crate) fn open<T: DeserializeOwned>(&self, text: &str) -> Result<T, Unsealed> {
        let rest = text.strip_prefix(self.prefix).ok_or(Unsealed::Malformed)?;
        let (id, body) = rest.split_once('.').ok_or(Unsealed::Malformed)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or(Unsealed::UnknownKey)?;
        let mut sealed = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Unsealed::Malformed)?;
        if sealed.len() < NONCE_LEN {
            return Err(Unsealed::Malformed);
        }
        let mut data = sealed.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&sealed).map_err(|_| Unsealed::Malformed)?;
        let plain = key
            .open_in_place(nonce, Aad::from(self.aad), &mut data)
            .map_err(|_| Unsealed::Forged)?;
        serde_json::from_slice(plain).map_err(|_| Unsealed::Forged)
    }

    /// 16 random bytes, hex.
    pub(crate) fn random_id(&self) -> String {
        let mut id = [0u8; 16];
        self.rng
            .fill(&mut id)
            .expect("the system random source is available");
        hex(&id)
    }
}

/// The key one purpose seals with: derived from the configured one, so the same
/// configured key never serves two purposes as it is.
fn derive(purpose: &str, key: &[u8; 32]) -> LessSafeKey {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(key);
    let derived: [u8; 32] = h.finalize().into();
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &derived).expect("a 32-byte key"))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
