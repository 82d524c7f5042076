//! Property tests: every implementation agrees with the bitwise reference on
//! random keys and inputs; linearity; symmetric keys.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use sluice_rss::{Implementation, Ipv4Tuple, Ipv6Tuple, RssKey, Toeplitz, reference_hash};

fn any_key() -> impl Strategy<Value = RssKey> {
    prop_oneof![prop::collection::vec(any::<u8>(), 40), prop::collection::vec(any::<u8>(), 52)]
        .prop_map(|bytes| RssKey::new(&bytes).unwrap())
}

fn v4() -> impl Strategy<Value = Ipv4Tuple> {
    (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>())
        .prop_map(|(s, d, sp, dp)| Ipv4Tuple::new(Ipv4Addr::from(s), Ipv4Addr::from(d), sp, dp))
}

fn v6() -> impl Strategy<Value = Ipv6Tuple> {
    (any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>())
        .prop_map(|(s, d, sp, dp)| Ipv6Tuple::new(Ipv6Addr::from(s), Ipv6Addr::from(d), sp, dp))
}

fn available() -> Vec<Implementation> {
    Implementation::ALL.into_iter().filter(|i| i.is_available()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn all_implementations_agree_on_ipv4(key in any_key(), tuples in prop::collection::vec(v4(), 1..50)) {
        let t = Toeplitz::new(&key);
        let want: Vec<u32> = tuples.iter().map(|x| reference_hash(key.as_bytes(), x.as_bytes())).collect();
        for imp in available() {
            for (tuple, w) in tuples.iter().zip(&want) {
                prop_assert_eq!(t.hash_v4_using(imp, tuple), *w, "{:?}", imp);
            }
            let mut batch = vec![0u32; tuples.len()];
            t.hash_v4_batch_using(imp, &tuples, &mut batch);
            prop_assert_eq!(&batch, &want, "{:?} batch of {}", imp, tuples.len());
        }
        let mut batch = vec![0u32; tuples.len()];
        t.hash_v4_batch(&tuples, &mut batch);
        prop_assert_eq!(&batch, &want);
        prop_assert_eq!(t.hash_v4(&tuples[0]), want[0]);
    }

    #[test]
    fn all_implementations_agree_on_ipv6(key in any_key(), tuples in prop::collection::vec(v6(), 1..50)) {
        let t = Toeplitz::new(&key);
        let want: Vec<u32> = tuples.iter().map(|x| reference_hash(key.as_bytes(), x.as_bytes())).collect();
        for imp in available() {
            for (tuple, w) in tuples.iter().zip(&want) {
                prop_assert_eq!(t.hash_v6_using(imp, tuple), *w, "{:?}", imp);
            }
            let mut batch = vec![0u32; tuples.len()];
            t.hash_v6_batch_using(imp, &tuples, &mut batch);
            prop_assert_eq!(&batch, &want, "{:?} batch of {}", imp, tuples.len());
        }
        let mut batch = vec![0u32; tuples.len()];
        t.hash_v6_batch(&tuples, &mut batch);
        prop_assert_eq!(&batch, &want);
    }

    /// Any length, including past the key (those bytes meet zero key bits).
    #[test]
    fn all_implementations_agree_on_any_length(key in any_key(), input in prop::collection::vec(any::<u8>(), 0..70)) {
        let t = Toeplitz::new(&key);
        let want = reference_hash(key.as_bytes(), &input);
        for imp in available() {
            prop_assert_eq!(t.hash_using(imp, &input), want, "{:?} len {}", imp, input.len());
        }
    }

    #[test]
    fn the_hash_is_linear(key in any_key(), a in prop::collection::vec(any::<u8>(), 36), b in prop::collection::vec(any::<u8>(), 36)) {
        let t = Toeplitz::new(&key);
        let x: Vec<u8> = a.iter().zip(&b).map(|(p, q)| p ^ q).collect();
        prop_assert_eq!(t.hash(&x), t.hash(&a) ^ t.hash(&b));
        prop_assert_eq!(t.hash(&[0u8; 36]), 0);
    }

    /// A 16-bit-periodic key makes the hash symmetric, and it then depends
    /// only on the XOR of the input's 16-bit words, with equal halves.
    #[test]
    fn symmetric_keys_are_symmetric_and_weak(pattern in any::<u16>(), long in any::<bool>(), t4 in v4(), t6 in v6()) {
        let key = RssKey::symmetric(pattern, if long { 52 } else { 40 });
        let t = Toeplitz::new(&key);
        let h4 = t.hash_v4(&t4);
        prop_assert_eq!(h4, t.hash_v4(&t4.reversed()));
        prop_assert_eq!(t.hash_v6(&t6), t.hash_v6(&t6.reversed()));
        prop_assert_eq!(h4 >> 16, h4 & 0xffff);
        let fold = t4.as_bytes()
            .chunks_exact(2)
            .fold(0u16, |acc, w| acc ^ u16::from_be_bytes([w[0], w[1]]));
        let mut folded = [0u8; 12];
        folded[..2].copy_from_slice(&fold.to_be_bytes());
        prop_assert_eq!(h4, t.hash(&folded));
    }

    /// With a general key the reply hash differs from the forward hash by
    /// exactly the hash of their XOR difference (linearity), which is why the
    /// reply's queue must be computed, not assumed.
    #[test]
    fn reply_hash_differs_by_the_hash_of_the_difference(key in any_key(), tuple in v4()) {
        let t = Toeplitz::new(&key);
        let x = tuple.as_bytes();
        let r = tuple.reversed();
        let diff: Vec<u8> = x.iter().zip(r.as_bytes()).map(|(p, q)| p ^ q).collect();
        prop_assert_eq!(t.hash_v4(&tuple) ^ t.hash_v4(&r), t.hash(&diff));
    }
}

#[test]
fn the_microsoft_key_is_not_symmetric_on_its_own_vector() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    let tuple = Ipv4Tuple::new("66.9.149.187".parse().unwrap(), "161.142.100.80".parse().unwrap(), 2794, 1766);
    assert_ne!(t.hash_v4(&tuple), t.hash_v4(&tuple.reversed()));
}

/// Batches of mismatched lengths hash `min(len)` tuples and leave the rest of
/// `out` alone, for every kernel.
#[test]
fn batch_lengths_are_respected() {
    let t = Toeplitz::new(&RssKey::MICROSOFT);
    let tuples: Vec<Ipv4Tuple> =
        (0..40u32).map(|i| Ipv4Tuple::new(Ipv4Addr::from(i * 7919), Ipv4Addr::from(!i), i as u16, 80)).collect();
    let tuples6: Vec<Ipv6Tuple> =
        (0..40u128).map(|i| Ipv6Tuple::new(Ipv6Addr::from(i << 70), Ipv6Addr::from(!i), i as u16, 443)).collect();
    for imp in available() {
        // Short output: only 19 hashed.
        let mut out = vec![0xdead_beefu32; 19];
        t.hash_v4_batch_using(imp, &tuples, &mut out);
        for (h, x) in out.iter().zip(&tuples) {
            assert_eq!(*h, t.hash_v4_using(Implementation::Reference, x), "{imp:?}");
        }
        // Long output: the tail stays untouched.
        let mut out = vec![0xdead_beefu32; 50];
        t.hash_v6_batch_using(imp, &tuples6[..33], &mut out);
        for (h, x) in out.iter().zip(&tuples6[..33]) {
            assert_eq!(*h, t.hash_v6_using(Implementation::Reference, x), "{imp:?}");
        }
        assert!(out[33..].iter().all(|&h| h == 0xdead_beef), "{imp:?}");
    }
}
