//! Plain data: MAC addresses, VLAN settings, link state, the VF settings a
//! caller asks for ([`VfSettings`]) and the VF configuration read back from
//! the PF ([`VfConfig`]). Parsing and validation live here; nothing in this
//! module touches the host.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Highest VLAN id Sluice accepts. 4095 is reserved by 802.1Q even though
/// igb and netdevsim accept it (lab §4 pitfall 9).
pub const VLAN_MAX: u16 = 4094;
/// Highest 802.1p priority.
pub const QOS_MAX: u8 = 7;
/// Highest rate accepted when the PF's link speed is unknown (Mbps, 1 Tbit/s).
pub const RATE_CEILING_MBPS: u32 = 1_000_000;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-zero address: "no administratively set MAC".
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for the all-zero address.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`). Refuses multicast and
    /// broadcast addresses, which no VF may own.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "mac",
                format!(
                    "must be six hex octets like 02:00:00:00:00:01 (unicast, or 00:00:00:00:00:00 to clear), got {s:?}"
                ),
            )
        };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        let mac = MacAddr(out);
        if mac.is_multicast() {
            return Err(Error::invalid(
                "mac",
                format!("must be a unicast address (first octet even), got multicast {mac}"),
            ));
        }
        Ok(mac)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// VLAN tag protocol of a VF port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VlanProto {
    /// 802.1Q (0x8100), the default.
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// 802.1ad (0x88a8), QinQ service tag.
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VlanProto::Dot1Q => "802.1Q",
            VlanProto::Dot1Ad => "802.1ad",
        })
    }
}

impl FromStr for VlanProto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" | "8021q" | "dot1q" => Ok(VlanProto::Dot1Q),
            "802.1ad" | "8021ad" | "dot1ad" => Ok(VlanProto::Dot1Ad),
            _ => Err(Error::invalid("vlan-proto", format!("must be 802.1Q or 802.1ad, got {s:?}"))),
        }
    }
}

/// Administrative link state of a VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Follow the PF's link.
    #[default]
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Auto => "auto",
            LinkState::Enable => "enable",
            LinkState::Disable => "disable",
        })
    }
}

impl FromStr for LinkState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(LinkState::Auto),
            "enable" | "up" => Ok(LinkState::Enable),
            "disable" | "down" => Ok(LinkState::Disable),
            _ => Err(Error::invalid("link-state", format!("must be auto, enable or disable, got {s:?}"))),
        }
    }
}

/// A VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vlan {
    /// VLAN id, 0 (no VLAN) ..= 4094.
    pub id: u16,
    /// 802.1p priority, 0..=7 (must be 0 when `id` is 0).
    pub qos: u8,
    /// Tag protocol.
    pub proto: VlanProto,
}

impl Vlan {
    /// Builds a VLAN setting from untrusted numbers, checking every range.
    pub fn new(id: u32, qos: u32, proto: VlanProto) -> Result<Self> {
        if id > u32::from(VLAN_MAX) {
            return Err(Error::invalid("vlan", format!("id must be 0..={VLAN_MAX}, got {id}")));
        }
        if qos > u32::from(QOS_MAX) {
            return Err(Error::invalid("qos", format!("must be 0..={QOS_MAX}, got {qos}")));
        }
        if id == 0 && qos != 0 {
            return Err(Error::invalid("qos", format!("must be 0 when vlan is 0 (no tag to carry it), got {qos}")));
        }
        if id == 0 && proto != VlanProto::Dot1Q {
            return Err(Error::invalid(
                "vlan-proto",
                "must be 802.1Q when vlan is 0 (no tag to carry it), got 802.1ad",
            ));
        }
        // Lossless: both values were range-checked above.
        Ok(Vlan { id: id as u16, qos: qos as u8, proto })
    }
}

/// The settings a caller wants on one VF. `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfSettings {
    /// Administrative MAC (zero clears it).
    pub mac: Option<MacAddr>,
    /// Port VLAN.
    pub vlan: Option<Vlan>,
    /// MAC anti-spoofing.
    pub spoofchk: Option<bool>,
    /// Trusted VF (may change its MAC, enter promiscuous mode).
    pub trust: Option<bool>,
    /// Minimum (guaranteed) TX rate in Mbps, 0 = none.
    pub min_tx_rate: Option<u32>,
    /// Maximum TX rate in Mbps, 0 = unlimited.
    pub max_tx_rate: Option<u32>,
    /// Administrative link state.
    pub link_state: Option<LinkState>,
    /// Allow the VF to query the PF's RSS configuration.
    pub query_rss: Option<bool>,
}

impl VfSettings {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == VfSettings::default()
    }

    /// The clean state a released VF returns to: `mac` (zero or the pool's
    /// default), VLAN 0, spoofchk on, trust off, rates 0, link state auto,
    /// RSS query off.
    pub fn clean(mac: MacAddr) -> Self {
        VfSettings {
            mac: Some(mac),
            vlan: Some(Vlan::default()),
            spoofchk: Some(true),
            trust: Some(false),
            min_tx_rate: Some(0),
            max_tx_rate: Some(0),
            link_state: Some(LinkState::Auto),
            query_rss: Some(false),
        }
    }

    /// Checks the rates against the PF's link speed (Mbps, if known) and
    /// against each other, after merging with the VF's current rates. The
    /// kernel sets min and max together, so a partial change is completed
    /// from `current`.
    pub fn check_rates(&self, current: Option<&VfConfig>, link_speed_mbps: Option<u32>) -> Result<()> {
        let (ceiling, why) = match link_speed_mbps {
            Some(s) if s > 0 => (s, "the PF's link speed"),
            _ => (RATE_CEILING_MBPS, "the ceiling used when the link speed is unknown"),
        };
        for (field, v) in [("max_tx_rate", self.max_tx_rate), ("min_tx_rate", self.min_tx_rate)] {
            if let Some(v) = v
                && v > ceiling
            {
                return Err(Error::invalid(field, format!("must be 0..={ceiling} Mbps ({why}), got {v}")));
            }
        }
        let min = self.min_tx_rate.or(current.map(|c| c.min_tx_rate)).unwrap_or(0);
        let max = self.max_tx_rate.or(current.map(|c| c.max_tx_rate)).unwrap_or(0);
        if max != 0 && min > max {
            return Err(Error::invalid(
                "min_tx_rate",
                format!("must be 0..={max} Mbps (not above max_tx_rate {max}), got {min}"),
            ));
        }
        Ok(())
    }

    /// The fields of `self` that differ from `current` (everything if
    /// `current` is unknown).
    pub fn diff(&self, current: &VfConfig) -> VfSettings {
        fn keep<T: PartialEq + Copy>(want: Option<T>, have: T) -> Option<T> {
            want.filter(|w| *w != have)
        }
        let rates_differ = self.min_tx_rate.is_some_and(|m| m != current.min_tx_rate)
            || self.max_tx_rate.is_some_and(|m| m != current.max_tx_rate);
        VfSettings {
            mac: keep(self.mac, current.mac),
            vlan: keep(self.vlan, current.vlan),
            spoofchk: self.spoofchk.filter(|w| Some(*w) != current.spoofchk),
            trust: keep_unreported(self.trust, current.trust, false),
            // Rates go to the kernel as a pair: keep both if either changes.
            min_tx_rate: if rates_differ { Some(self.min_tx_rate.unwrap_or(current.min_tx_rate)) } else { None },
            max_tx_rate: if rates_differ { Some(self.max_tx_rate.unwrap_or(current.max_tx_rate)) } else { None },
            link_state: keep_unreported(self.link_state, current.link_state, LinkState::Auto),
            query_rss: keep_unreported(self.query_rss, current.query_rss, false),
        }
    }
}

/// Keeps `want` unless the VF already has it. A driver that does not report
/// a field (igb: query_rss, trust unsupported) is taken to be in the field's
/// default state, so resetting it to the default sends nothing the driver
/// would refuse.
fn keep_unreported<T: PartialEq + Copy>(want: Option<T>, have: Option<T>, default: T) -> Option<T> {
    want.filter(|w| match have {
        Some(h) => *w != h,
        None => *w != default,
    })
}

/// A VF's configuration as the PF reports it (`IFLA_VF_INFO`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfConfig {
    /// VF index on its PF.
    pub index: u32,
    /// Administrative MAC (zero when none is set).
    pub mac: MacAddr,
    /// Port VLAN (id 0 = none).
    pub vlan: Vlan,
    /// Minimum TX rate, Mbps.
    pub min_tx_rate: u32,
    /// Maximum TX rate, Mbps.
    pub max_tx_rate: u32,
    /// MAC anti-spoofing; `None` if the driver does not report it.
    pub spoofchk: Option<bool>,
    /// Trust; `None` if the driver does not report it.
    pub trust: Option<bool>,
    /// Link state; `None` if not reported.
    pub link_state: Option<LinkState>,
    /// RSS query; `None` if the driver does not report it.
    pub query_rss: Option<bool>,
}

impl VfConfig {
    /// Applies `s` on top of this configuration (what a successful set
    /// should read back as).
    pub fn merged(&self, s: &VfSettings) -> VfConfig {
        VfConfig {
            index: self.index,
            mac: s.mac.unwrap_or(self.mac),
            vlan: s.vlan.unwrap_or(self.vlan),
            min_tx_rate: s.min_tx_rate.unwrap_or(self.min_tx_rate),
            max_tx_rate: s.max_tx_rate.unwrap_or(self.max_tx_rate),
            spoofchk: s.spoofchk.or(self.spoofchk),
            trust: s.trust.or(self.trust),
            link_state: s.link_state.or(self.link_state),
            query_rss: s.query_rss.or(self.query_rss),
        }
    }

    /// The VF settings that would recreate this configuration (used to
    /// re-apply after VFs are re-created).
    pub fn as_settings(&self) -> VfSettings {
        VfSettings {
            mac: Some(self.mac),
            vlan: Some(self.vlan),
            spoofchk: self.spoofchk,
            trust: self.trust,
            min_tx_rate: Some(self.min_tx_rate),
            max_tx_rate: Some(self.max_tx_rate),
            link_state: self.link_state,
            query_rss: self.query_rss,
        }
    }
}

/// Parses `on`/`off` style booleans for a named field.
pub fn parse_on_off(field: &'static str, s: &str) -> Result<bool> {
    match s {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(Error::invalid(field, format!("must be on or off, got {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_refuses_multicast_and_junk() {
        let m: MacAddr = "02:00:00:00:00:0A".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 10]);
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("00:00:00:00:00:00".parse::<MacAddr>().unwrap().is_zero());
        for bad in ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff"] {
            let e = bad.parse::<MacAddr>().unwrap_err().to_string();
            assert!(e.contains("mac") && e.contains("unicast"), "{e}");
        }
        for bad in ["02:00:00:00:00", "02:00:00:00:00:0g", "02:00:00:00:00:100", "", "02::00:00:00:00"] {
            let e = bad.parse::<MacAddr>().unwrap_err().to_string();
            assert!(e.starts_with("mac must be six hex octets"), "{e}");
        }
    }

    #[test]
    fn vlan_ranges_named_in_errors() {
        assert!(Vlan::new(4094, 7, VlanProto::Dot1Ad).is_ok());
        let e = Vlan::new(5000, 0, VlanProto::Dot1Q).unwrap_err().to_string();
        assert_eq!(e, "vlan id must be 0..=4094, got 5000");
        let e = Vlan::new(4095, 0, VlanProto::Dot1Q).unwrap_err().to_string();
        assert!(e.contains("0..=4094"), "{e}");
        let e = Vlan::new(10, 8, VlanProto::Dot1Q).unwrap_err().to_string();
        assert_eq!(e, "qos must be 0..=7, got 8");
        assert!(Vlan::new(0, 3, VlanProto::Dot1Q).is_err());
    }

    #[test]
    fn rates_checked_against_speed_and_each_other() {
        let s = VfSettings { max_tx_rate: Some(1001), ..Default::default() };
        let e = s.check_rates(None, Some(1000)).unwrap_err().to_string();
        assert!(e.contains("max_tx_rate must be 0..=1000"), "{e}");
        assert!(s.check_rates(None, None).is_ok());
        // min above an existing max: the merge with current finds it.
        let cur = VfConfig { max_tx_rate: 100, ..Default::default() };
        let s = VfSettings { min_tx_rate: Some(500), ..Default::default() };
        let e = s.check_rates(Some(&cur), Some(1000)).unwrap_err().to_string();
        assert!(e.contains("min_tx_rate must be 0..=100"), "{e}");
    }

    #[test]
    fn diff_keeps_rate_pair_and_drops_equal_fields() {
        let cur = VfConfig { min_tx_rate: 5, max_tx_rate: 100, spoofchk: Some(true), ..Default::default() };
        let want = VfSettings { max_tx_rate: Some(200), spoofchk: Some(true), ..Default::default() };
        let d = want.diff(&cur);
        assert_eq!(d.min_tx_rate, Some(5));
        assert_eq!(d.max_tx_rate, Some(200));
        assert_eq!(d.spoofchk, None);
        assert!(VfSettings::default().diff(&cur).is_empty());
        let merged = cur.merged(&want);
        assert_eq!(merged.max_tx_rate, 200);
        assert_eq!(merged.min_tx_rate, 5);
    }

    proptest::proptest! {
        #[test]
        fn mac_display_roundtrips(bytes in proptest::array::uniform6(0u8..)) {
            let mut b = bytes;
            b[0] &= 0xfe;
            let m = MacAddr(b);
            proptest::prop_assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
        }

        #[test]
        fn mac_parser_total(s in ".{0,40}") {
            let _ = s.parse::<MacAddr>();
        }
    }
}
