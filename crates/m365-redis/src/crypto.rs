//! Client-side encryption and keyed name hashing (see the crate docs).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::{RngCore, TryRngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::RedisCacheError;

/// HKDF `info` of the Redis subkeys.
pub(crate) const HKDF_INFO: &[u8] = b"m365-mcp redis cache v1";
/// First byte of every sealed value: the format.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes of HMAC kept in names (hex doubles it).
const NAME_BYTES: usize = 16;

/// The two subkeys derived from the cache key.
pub(crate) struct Crypto {
    aead: Aes256Gcm,
    names: Hmac<Sha256>,
}

impl Crypto {
    pub(crate) fn new(cache_key: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, cache_key);
        let mut okm = Zeroizing::new([0u8; 64]);
        hk.expand(HKDF_INFO, okm.as_mut())
            .expect("64 bytes is a valid HKDF-SHA256 output length");
        let aead = Aes256Gcm::new_from_slice(&okm[..32]).expect("AES-256 takes a 32-byte key");
        let names =
            <Hmac<Sha256> as Mac>::new_from_slice(&okm[32..]).expect("HMAC takes any key length");
        Crypto { aead, names }
    }

    /// Encrypts `plain`, binding `ad` (the Redis key and field it goes to).
    pub(crate) fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        if rand::rngs::OsRng.try_fill_bytes(&mut nonce).is_err() {
            // ThreadRng is a CSPRNG seeded from the OS; it only stands in
            // when the OS source fails after having worked at start.
            rand::rng().fill_bytes(&mut nonce);
        }
        let sealed = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: ad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`Crypto::seal`] made with the same `ad`.
    pub(crate) fn open(&self, ad: &[u8], blob: &[u8]) -> Result<Vec<u8>, RedisCacheError> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(RedisCacheError::corrupt("sealed value too short"));
        }
        if blob[0] != FORMAT_V1 {
            return Err(RedisCacheError::corrupt("unknown sealed-value format"));
        }
        let nonce = Nonce::from_slice(&blob[1..1 + NONCE_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &blob[1 + NONCE_LEN..],
                    aad: ad,
                },
            )
            .map_err(|_| {
                RedisCacheError::corrupt(
                    "decryption failed (another cache key, or a value altered or moved)",
                )
            })
    }

    /// Decrypts to UTF-8 text.
    pub(crate) fn open_text(&self, ad: &[u8], blob: &[u8]) -> Result<String, RedisCacheError> {
        String::from_utf8(self.open(ad, blob)?)
            .map_err(|_| RedisCacheError::corrupt("decrypted text is not UTF-8"))
    }

    /// A name for `parts` under `label`: HMAC-SHA256 over the label and the
    /// length-prefixed parts, 128 bits in hex.
    pub(crate) fn name(&self, label: &str, parts: &[&[u8]]) -> String {
        let mut mac = self.names.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        hex::encode(&digest[..NAME_BYTES])
    }
}

/// Associated data: the parts joined with NUL.
pub(crate) fn ad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let c = Crypto::new(&[7u8; 32]);
        let blob = c.seal(b"ns:e:1\0p", b"hello");
        assert_eq!(c.open(b"ns:e:1\0p", &blob).unwrap(), b"hello");
        assert!(c.open(b"ns:e:2\0p", &blob).is_err());
        let other = Crypto::new(&[8u8; 32]);
        assert!(other.open(b"ns:e:1\0p", &blob).is_err());
        // Fresh nonce each time.
        assert_ne!(blob, c.seal(b"ns:e:1\0p", b"hello"));
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(c.open(b"ns:e:1\0p", &tampered).is_err());
    }

    #[test]
    fn names_are_keyed_and_separated() {
        let c = Crypto::new(&[7u8; 32]);
        let a = c.name("account", &[b"alice"]);
        assert_eq!(a.len(), 32);
        assert_eq!(a, c.name("account", &[b"alice"]));
        assert_ne!(a, c.name("tag", &[b"alice"]));
        assert_ne!(a, Crypto::new(&[8u8; 32]).name("account", &[b"alice"]));
        assert_ne!(c.name("tag", &[b"ab", b"c"]), c.name("tag", &[b"a", b"bc"]));
    }
}
