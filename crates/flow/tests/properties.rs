//! Property tests: the classifier against a linear scan, and the megaflow
//! invariant (a packet hitting an installed megaflow gets the classifier's
//! decision), before and after rule changes with revalidation.

use proptest::prelude::*;
use sluice_flow::{Actions, Classifier, Field, FlowKey, Mask, Match, MegaflowCache, Revalidation, RuleId};

/// A small universe so that rules overlap and packets hit them.
fn field_value(f: Field) -> impl Strategy<Value = u128> {
    match f {
        Field::InPort => (0u128..3).boxed(),
        Field::EthType => prop_oneof![Just(0x0800u128), Just(0x86dd)].boxed(),
        Field::Ipv4Dst => (0u128..4).prop_map(|v| 0x0a00_0000 | (v << 6) | v).boxed(),
        Field::TpDst => (0u128..3).boxed(),
        Field::Vlan0 => prop_oneof![Just(0u128), Just(0x8100_0064)].boxed(),
        _ => Just(0u128).boxed(),
    }
}

const FIELDS: [Field; 5] = [Field::InPort, Field::EthType, Field::Ipv4Dst, Field::TpDst, Field::Vlan0];

fn key() -> impl Strategy<Value = FlowKey> {
    (
        field_value(FIELDS[0]),
        field_value(FIELDS[1]),
        field_value(FIELDS[2]),
        field_value(FIELDS[3]),
        field_value(FIELDS[4]),
    )
        .prop_map(|(a, b, c, d, e)| {
            FlowKey::ZERO
                .with(Field::InPort, a)
                .with(Field::EthType, b)
                .with(Field::Ipv4Dst, c)
                .with(Field::TpDst, d)
                .with(Field::Vlan0, e)
        })
}

/// A mask over a random subset of the fields; `Ipv4Dst` sometimes as a prefix.
fn mask() -> impl Strategy<Value = Mask> {
    (0u32..32, 0u32..3).prop_map(|(bits, prefix)| {
        let mut m = Mask::CATCH_ALL;
        for (i, f) in FIELDS.iter().enumerate() {
            if bits & (1 << i) != 0 {
                m.set(*f, u128::MAX);
            }
        }
        if bits & (1 << 2) != 0 {
            m.set(Field::Ipv4Dst, [0xffff_ffffu128, 0xffff_ffc0, 0xffff_ff00][prefix as usize]);
        }
        m
    })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Box<(FlowKey, Mask)>, u32),
    Remove(usize),
    Modify(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            6 => (key(), mask(), 0u32..4).prop_map(|(k, m, p)| Op::Insert(Box::new((k, m)), p)),
            2 => any::<usize>().prop_map(Op::Remove),
            1 => any::<usize>().prop_map(Op::Modify),
        ],
        1..60,
    )
}

/// The reference: a list in insertion order, best = highest priority, then earliest.
#[derive(Default)]
struct Linear {
    rules: Vec<(RuleId, u32, Match, u32)>,
}

impl Linear {
    fn lookup(&self, k: &FlowKey) -> Option<(RuleId, u32)> {
        let mut best: Option<&(RuleId, u32, Match, u32)> = None;
        for r in &self.rules {
            if r.2.matches(k) && best.is_none_or(|b| r.1 > b.1) {
                best = Some(r);
            }
        }
        best.map(|r| (r.0, r.3))
    }
}

/// Applies `ops` to both; returns the matches that changed.
fn apply(c: &mut Classifier<u32>, lin: &mut Linear, ops: &[Op], next: &mut u32) -> Vec<Match> {
    let mut changed = Vec::new();
    for op in ops {
        match op {
            Op::Insert(km, p) => {
                let mm = Match::new(&km.0, &km.1);
                let dup = lin.rules.iter().any(|r| r.1 == *p && r.2 == mm);
                *next += 1;
                match c.insert(mm, *p, *next) {
                    Ok(id) => {
                        assert!(!dup, "duplicate accepted");
                        lin.rules.push((id, *p, mm, *next));
                        changed.push(mm);
                    }
                    Err(_) => assert!(dup, "insert refused without a duplicate"),
                }
            }
            Op::Remove(i) if !lin.rules.is_empty() => {
                let r = lin.rules.remove(i % lin.rules.len());
                let got = c.remove(r.0).expect("a live rule must delete");
                assert_eq!(got.data, r.3);
                assert!(c.remove(r.0).is_err());
                changed.push(r.2);
            }
            Op::Modify(i) if !lin.rules.is_empty() => {
                let n = lin.rules.len();
                let r = &mut lin.rules[i % n];
                *next += 1;
                c.modify(r.0, *next).expect("a live rule must modify");
                r.3 = *next;
                changed.push(r.2);
            }
            _ => {}
        }
    }
    assert_eq!(c.len(), lin.rules.len());
    changed
}

fn decision(c: &Classifier<u32>, k: &FlowKey) -> (Actions, Mask) {
    let mut wc = Mask::CATCH_ALL;
    let a = c.lookup(k, &mut wc).map_or_else(Actions::drop_all, |r| Actions::output(r.data));
    (a, wc)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn classifier_agrees_with_linear_scan(ops in ops(), packets in prop::collection::vec(key(), 1..40)) {
        let mut c = Classifier::new();
        let mut lin = Linear::default();
        let mut next = 0;
        apply(&mut c, &mut lin, &ops, &mut next);
        for k in &packets {
            let mut wc = Mask::CATCH_ALL;
            let got = c.lookup(k, &mut wc).map(|r| (r.id(), r.data));
            prop_assert_eq!(got, lin.lookup(k));
            // Un-wildcarding what was consulted must be enough: every key
            // equal on `wc` gets the same answer from the reference.
            if let Some((id, _)) = got {
                let r = c.get(id).unwrap();
                prop_assert!(wc.covers(r.matching().mask()));
            }
        }
    }

    #[test]
    fn megaflows_give_the_classifiers_decision(
        ops in ops(),
        more in ops(),
        installs in prop::collection::vec(key(), 1..40),
        probes in prop::collection::vec(key(), 1..60),
    ) {
        let mut c = Classifier::new();
        let mut lin = Linear::default();
        let mut next = 0;
        apply(&mut c, &mut lin, &ops, &mut next);
        let mut mf = MegaflowCache::new(1 << 16);
        for k in &installs {
            if mf.lookup(k).is_none() {
                let (a, wc) = decision(&c, k);
                mf.install(k, &wc, a, 0).unwrap();
            }
        }
        let check = |c: &Classifier<u32>, mf: &mut MegaflowCache| -> Result<(), TestCaseError> {
            for k in probes.iter().chain(&installs) {
                if let Some(id) = mf.lookup(k) {
                    let (want, _) = decision(c, k);
                    prop_assert_eq!(mf.actions(id).unwrap(), &want, "key {} megaflow {}", k, mf.get(id).unwrap());
                }
            }
            Ok(())
        };
        check(&c, &mut mf)?;
        // Change the rules, revalidate only what overlaps, and check again.
        let changed = apply(&mut c, &mut lin, &more, &mut next);
        mf.revalidate(&changed, |m, actions| {
            let (a, wc) = decision(&c, m.key());
            if !m.mask().covers(&wc) {
                Revalidation::Remove
            } else if &a != actions {
                Revalidation::Update(a)
            } else {
                Revalidation::Keep
            }
        });
        check(&c, &mut mf)?;
    }
}
