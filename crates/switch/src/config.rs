//! The switch's configuration: what `sluice serve --switch-config FILE`
//! reads (TOML), and what the control socket's `add-port` takes (JSON).
//! Same types for both, unknown fields refused, and every value checked by
//! [`SwitchConfig::validate`] with a message naming the field and its range.
//!
//! ```toml
//! [datapath]
//! threads = 1
//!
//! [[bridge]]
//! name = "br0"
//!
//! [[port]]
//! name = "vm1"
//! type = "tap"
//! vlan = 10            # access port of VLAN 10
//!
//! [[port]]
//! name = "uplink"
//! type = "afxdp"
//! trunks = [10, 20]    # trunk; untagged frames go to `native` if given
//! ```

use serde::{Deserialize, Serialize};
use sluice_datapath::bridge::{VlanMode, VlanSet};

/// Why a configuration was refused: a sentence naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// Datapath threads and cache sizes.
    #[serde(default)]
    pub datapath: DatapathSection,
    /// Bridges (default: one called `br0`).
    #[serde(default, rename = "bridge")]
    pub bridges: Vec<BridgeConfig>,
    /// Ports.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
}

/// `[datapath]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatapathSection {
    /// Datapath threads, 1..=64.
    pub threads: usize,
    /// Megaflows per thread, 1000..=10_000_000.
    pub flow_limit: usize,
    /// Packet buffers per thread, 256..=1_048_576.
    pub buffers: usize,
    /// Empty polling rounds before a thread sleeps, 0..=10_000_000.
    pub spin_rounds: u32,
    /// Light-load sleep in microseconds (OVS's `pmd-maxsleep`), 0..=10000;
    /// 0 (the default) is off.
    pub pmd_max_sleep_us: u64,
}

impl Default for DatapathSection {
    fn default() -> Self {
        let d = sluice_datapath::DatapathConfig::default();
        DatapathSection {
            threads: d.threads,
            flow_limit: d.pipeline.flow_limit,
            buffers: d.buffers,
            spin_rounds: d.spin_rounds,
            pmd_max_sleep_us: d.pmd_max_sleep_us,
        }
    }
}

/// `[[bridge]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Its name, 1 to 15 characters of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// Seconds an unseen station is remembered, 10..=86400 (default 300).
    #[serde(default = "default_age")]
    pub mac_max_age_s: u64,
    /// Stations the bridge learns, 16..=1_000_000 (default 8192).
    #[serde(default = "default_macs")]
    pub mac_limit: usize,
    /// Stations one port may hold, 1..=1_000_000 (default 1024).
    #[serde(default = "default_per_port")]
    pub mac_per_port: usize,
}

fn default_age() -> u64 {
    300
}
fn default_macs() -> usize {
    8192
}
fn default_per_port() -> usize {
    1024
}

impl BridgeConfig {
    /// A bridge with OVS's defaults.
    pub fn named(name: &str) -> BridgeConfig {
        BridgeConfig {
            name: name.into(),
            mac_max_age_s: default_age(),
            mac_limit: default_macs(),
            mac_per_port: default_per_port(),
        }
    }
}

/// How a port reaches packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// A TAP device (created if missing), with virtio-net headers.
    Tap,
    /// An existing interface through AF_PACKET (TPACKET_V3).
    Afpacket,
    /// An existing interface through AF_XDP (native XDP where the driver
    /// has it, else generic; copy mode where zero-copy is missing).
    Afxdp,
}

impl PortType {
    /// Its name in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Tap => "tap",
            PortType::Afpacket => "afpacket",
            PortType::Afxdp => "afxdp",
        }
    }
}

/// A port's VLAN settings (OVS's `tag`, `trunks`, `vlan_mode=native-untagged`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanConfig {
    /// Access port of this VLAN, 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Trunk port carrying these VLANs, each 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<u16>>,
    /// On a trunk: the VLAN of untagged frames, 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
}

impl VlanConfig {
    /// Checks the ranges; `what` names the port in messages.
    pub fn validate(&self, what: &str) -> Result<(), ConfigError> {
        let ok = |v: u16| (1..=4094).contains(&v);
        match (&self.vlan, &self.trunks, &self.native) {
            (Some(_), Some(_), _) => {
                err(format!("{what}: `vlan` (access) and `trunks` (trunk) exclude each other; give one"))
            }
            (Some(_), None, Some(_)) => {
                err(format!("{what}: `native` applies to trunks only; drop it or use `trunks`"))
            }
            (Some(v), None, None) if !ok(*v) => err(format!("{what}: `vlan` must be in 1..=4094, got {v}")),
            (None, Some(t), n) => {
                if t.is_empty() {
                    return err(format!("{what}: `trunks` must list at least one VLAN (1..=4094)"));
                }
                if let Some(v) = t.iter().find(|v| !ok(**v)) {
                    return err(format!("{what}: every VLAN in `trunks` must be in 1..=4094, got {v}"));
                }
                match n {
                    Some(n) if !ok(*n) => err(format!("{what}: `native` must be in 1..=4094, got {n}")),
                    _ => Ok(()),
                }
            }
            (None, None, Some(_)) => err(format!("{what}: `native` needs `trunks`")),
            _ => Ok(()),
        }
    }

    /// The bridge's VLAN mode. No settings: OVS's default, a trunk of every
    /// VLAN whose untagged frames form VLAN 0.
    pub fn mode(&self) -> VlanMode {
        match (&self.vlan, &self.trunks) {
            (Some(v), _) => VlanMode::Access { vid: *v },
            (None, Some(t)) => VlanMode::Trunk { allowed: VlanSet::of(t.iter().copied()), native: self.native },
            (None, None) => VlanMode::Trunk { allowed: VlanSet::all(), native: Some(0) },
        }
    }

    /// How `show` prints it.
    pub fn describe(&self) -> String {
        match (&self.vlan, &self.trunks) {
            (Some(v), _) => format!("access {v}"),
            (None, Some(t)) => {
                let list: Vec<String> = t.iter().map(u16::to_string).collect();
                match self.native {
                    Some(n) => format!("trunk {} native {n}", list.join(",")),
                    None => format!("trunk {}", list.join(",")),
                }
            }
            (None, None) => "trunk all".into(),
        }
    }
}

/// `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The interface (or TAP device) name, 1 to 15 characters.
    pub name: String,
    /// How to open it.
    #[serde(rename = "type")]
    pub kind: PortType,
    /// Its bridge (default: the first bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Port number, 1..=1023 (default: the lowest free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// TAP queues, 1..=256 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<usize>,
    /// Access port of this VLAN, 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Trunk port carrying these VLANs, each 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<u16>>,
    /// On a trunk: the VLAN of untagged frames, 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
}

/// Checks an interface name the way the kernel does (`dev_valid_name`).
pub fn check_ifname(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        err(format!("`{field}` must be 1 to 15 characters of letters, digits, '_', '.' or '-'; got {name:?}"))
    }
}

impl PortConfig {
    /// Checks every field.
    pub fn validate(&self, max_ports: u32) -> Result<(), ConfigError> {
        check_ifname("name", &self.name)?;
        let what = format!("port {:?}", self.name);
        if let Some(n) = self.number
            && !(1..=max_ports).contains(&n)
        {
            return err(format!("{what}: `number` must be in 1..={max_ports}, got {n}"));
        }
        match (self.kind, self.queues) {
            (PortType::Tap, Some(q)) if !(1..=256).contains(&q) => {
                return err(format!("{what}: `queues` must be in 1..=256, got {q}"));
            }
            (PortType::Afpacket | PortType::Afxdp, Some(_)) => {
                return err(format!("{what}: `queues` applies to TAP ports only"));
            }
            _ => {}
        }
        self.vlan_config().validate(&what)
    }

    /// Its VLAN settings.
    pub fn vlan_config(&self) -> VlanConfig {
        VlanConfig { vlan: self.vlan, trunks: self.trunks.clone(), native: self.native }
    }
}

impl SwitchConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<SwitchConfig, ConfigError> {
        let mut c: SwitchConfig =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_string()))?;
        if c.bridges.is_empty() {
            c.bridges.push(BridgeConfig::named("br0"));
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every field (bridges default to one `br0` if none).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.datapath;
        if !(1..=64).contains(&d.threads) {
            return err(format!("`datapath.threads` must be in 1..=64, got {}", d.threads));
        }
        if !(1000..=10_000_000).contains(&d.flow_limit) {
            return err(format!("`datapath.flow_limit` must be in 1000..=10000000, got {}", d.flow_limit));
        }
        if !(256..=1_048_576).contains(&d.buffers) {
            return err(format!("`datapath.buffers` must be in 256..=1048576, got {}", d.buffers));
        }
        if d.spin_rounds > 10_000_000 {
            return err(format!("`datapath.spin_rounds` must be in 0..=10000000, got {}", d.spin_rounds));
        }
        if d.pmd_max_sleep_us > 10_000 {
            return err(format!("`datapath.pmd_max_sleep_us` must be in 0..=10000, got {}", d.pmd_max_sleep_us));
        }
        let mut names = std::collections::HashSet::new();
        for b in &self.bridges {
            check_ifname("bridge.name", &b.name)?;
            if !names.insert(b.name.as_str()) {
                return err(format!("bridge {:?} is defined twice", b.name));
            }
            if !(10..=86400).contains(&b.mac_max_age_s) {
                return err(format!(
                    "bridge {:?}: `mac_max_age_s` must be in 10..=86400, got {}",
                    b.name, b.mac_max_age_s
                ));
            }
            if !(16..=1_000_000).contains(&b.mac_limit) {
                return err(format!("bridge {:?}: `mac_limit` must be in 16..=1000000, got {}", b.name, b.mac_limit));
            }
            if !(1..=1_000_000).contains(&b.mac_per_port) {
                return err(format!(
                    "bridge {:?}: `mac_per_port` must be in 1..=1000000, got {}",
                    b.name, b.mac_per_port
                ));
            }
        }
        let mut ports = std::collections::HashSet::new();
        for p in &self.ports {
            p.validate(sluice_datapath::DatapathConfig::default().max_ports)?;
            if !ports.insert(p.name.as_str()) {
                return err(format!("port {:?} is defined twice", p.name));
            }
            if let Some(b) = &p.bridge
                && !names.contains(b.as_str())
            {
                return err(format!("port {:?}: `bridge` names {b:?}, which is not defined", p.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_bad_values_name_their_field() {
        let c = SwitchConfig::from_toml(
            r#"
            [datapath]
            threads = 2
            [[bridge]]
            name = "br0"
            [[port]]
            name = "vm1"
            type = "tap"
            vlan = 10
            [[port]]
            name = "up"
            type = "afxdp"
            trunks = [10, 20]
            native = 10
            "#,
        )
        .unwrap();
        assert_eq!(c.datapath.threads, 2);
        assert_eq!(c.ports[1].vlan_config().describe(), "trunk 10,20 native 10");
        assert!(matches!(c.ports[0].vlan_config().mode(), VlanMode::Access { vid: 10 }));
        let empty = SwitchConfig::from_toml("").unwrap();
        assert_eq!(empty.bridges[0].name, "br0");

        for (text, needle) in [
            ("[[port]]\nname = \"a\"\ntype = \"tap\"\nvlan = 5000", "`vlan` must be in 1..=4094, got 5000"),
            ("[[port]]\nname = \"a\"\ntype = \"tap\"\ntrunks = []", "`trunks` must list at least one"),
            ("[[port]]\nname = \"a\"\ntype = \"tap\"\nvlan = 1\ntrunks = [2]", "exclude each other"),
            ("[[port]]\nname = \"a\"\ntype = \"bogus\"", "unknown variant `bogus`"),
            ("[[port]]\nname = \"a\"\ntype = \"tap\"\ncolour = 1", "unknown field `colour`"),
            ("[datapath]\nthreads = 0", "`datapath.threads` must be in 1..=64, got 0"),
            ("[[port]]\nname = \"this-name-is-too-long\"\ntype = \"tap\"", "`name` must be 1 to 15"),
            ("[[port]]\nname = \"a\"\ntype = \"afxdp\"\nqueues = 2", "`queues` applies to TAP ports only"),
            ("[[port]]\nname = \"a\"\ntype = \"tap\"\nbridge = \"nope\"", "which is not defined"),
        ] {
            let e = SwitchConfig::from_toml(text).unwrap_err().0;
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
