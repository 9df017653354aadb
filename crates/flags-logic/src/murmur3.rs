//! MurmurHash3, x86 32-bit variant.
//!
//! **Job:** the hash behind flagd's `fractional` operator. flagd hashes the
//! UTF-8 bytes of the bucketing string with `murmur3_x86_32` and seed `0`
//! (Go: `murmur3.StringSum32`, Java: `MurmurHash3.hash32x86(bytes, 0, len, 0)`),
//! so every provider must reproduce the exact same 32-bit value.
//!
//! **Standard followed:** Austin Appleby's reference `MurmurHash3_x86_32`
//! (smhasher, `MurmurHash3.cpp`): little-endian 4-byte blocks, constants
//! `c1 = 0xcc9e2d51`, `c2 = 0x1b873593`, tail mixing, `fmix32` finaliser.
//!
//! **Choices:** hand-written (about 40 lines) instead of a crate dependency so
//! the wasm component stays small and the function is auditable; the result is
//! returned as `u32` (flagd's newer bucketing treats the hash as unsigned — no
//! sign games are needed). Inputs longer than `u32::MAX` bytes hash their length
//! modulo 2^32, exactly like the reference (which takes an `int len`).

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3 x86 32-bit of `data` with the given `seed`.
///
/// flagd's `fractional` uses `murmur3_x86_32(bucketing_string.as_bytes(), 0)`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= mix_k(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= mix_k(k);
    }
    // The reference takes `int len`; truncation to 32 bits is the defined behaviour.
    h ^= data.len() as u32;
    fmix32(h)
}

/// Convenience: hash a `str`'s UTF-8 bytes with seed 0, as flagd does.
pub fn hash_str(s: &str) -> u32 {
    murmur3_x86_32(s.as_bytes(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors cross-checked against an independent Python transcription of
    // the smhasher reference and the commonly published table.
    #[test]
    fn published_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514E_28B7),
            (b"", 0xffff_ffff, 0x81F1_6F39),
            (b"\0\0\0\0", 0, 0x2362_F9DE),
            (b"test", 0, 0xba6b_d213),
            (b"abc", 0, 0xb3dd_93fa),
            (b"Hello, world!", 0, 0xc036_3e43),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (b"aaaa", 0x9747_b28c, 0x5A97_808A),
            (b"a", 0x9747_b28c, 0x7FA0_9EA6),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"abc", 0x9747_b28c, 0xC84A_62DD),
            (b"abcd", 0x9747_b28c, 0xF047_8627),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4CBA),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2FA8_26CD,
            ),
        ];
        for (data, seed, want) in cases {
            assert_eq!(
                murmur3_x86_32(data, *seed),
                *want,
                "data={:?} seed={seed:#x}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn utf8_input() {
        // "ππππππππ" (16 UTF-8 bytes), published vector.
        assert_eq!(
            murmur3_x86_32("ππππππππ".as_bytes(), 0x9747_b28c),
            0xD580_63C1
        );
        assert_eq!(hash_str("test"), 0xba6b_d213);
    }
}
