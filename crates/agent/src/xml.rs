//! libvirt XML for a bound port, in every form Nova, an operator or a
//! domain template needs (libvirt `formatdomain.rst`, `formatnetwork.rst`):
//!
//! - [`Form::Hostdev`]: `<interface type='hostdev' managed='yes'>` with MAC
//!   and VLAN (libvirt sets both through the PF);
//! - [`Form::PlainHostdev`]: `<hostdev>` (no MAC/VLAN; the agent sets them);
//! - [`pool_network`]: a `<network>` with `<forward mode='hostdev'>` listing
//!   the pool's PFs (a same-named network on every host keeps migration
//!   working although VF addresses differ);
//! - [`Form::Macvtap`]: `<interface type='direct'>` in passthrough mode on
//!   the VF netdev;
//! - [`Form::Ethernet`] / [`Form::VhostUser`]: switch ports;
//! - [`Form::Failover`]: the live-migration pair — a virtio NIC with
//!   `<teaming type='persistent'/>` and alias `ua-…`, and the VF with
//!   `<teaming type='transient' persistent='ua-…'/>`, with the same MAC.
//!
//! Pure string building; no I/O.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::model::{Pool, Port, VnicType};

/// The XML forms of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `<interface type='hostdev'>` (VF ports).
    Hostdev,
    /// `<hostdev mode='subsystem' type='pci'>` (VF ports).
    PlainHostdev,
    /// `<interface type='direct'>` macvtap passthrough (VF ports with a netdev).
    Macvtap,
    /// `<interface type='ethernet'>` on a TAP (normal ports).
    Ethernet,
    /// `<interface type='vhostuser'>` (normal and virtio-forwarder ports).
    VhostUser,
    /// The virtio + VF failover pair (VF ports).
    Failover,
}

impl Form {
    /// Every form, for tests and `--form` help.
    pub const ALL: [Form; 6] =
        [Form::Hostdev, Form::PlainHostdev, Form::Macvtap, Form::Ethernet, Form::VhostUser, Form::Failover];

    /// The name used by `sluice xml --form`.
    pub fn name(self) -> &'static str {
        match self {
            Form::Hostdev => "hostdev",
            Form::PlainHostdev => "plain-hostdev",
            Form::Macvtap => "macvtap",
            Form::Ethernet => "ethernet",
            Form::VhostUser => "vhostuser",
            Form::Failover => "failover",
        }
    }

    /// The form named `s`.
    pub fn parse(s: &str) -> Result<Form> {
        Form::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Form::ALL.iter().map(|f| f.name()).collect();
            Error::invalid("form", format!("must be one of {}, got {s:?}", names.join(", ")))
        })
    }

    /// The natural form of a vnic type.
    pub fn default_for(v: VnicType) -> Form {
        match v {
            VnicType::Normal => Form::Ethernet,
            VnicType::Direct | VnicType::DirectPhysical => Form::Hostdev,
            VnicType::Macvtap => Form::Macvtap,
            VnicType::VirtioForwarder => Form::VhostUser,
        }
    }
}

/// Directory of vhost-user sockets of switch ports.
pub const VHOST_DIR: &str = "/run/sluice/vhost";

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// `<address type='pci' .../>` from `dddd:bb:ss.f`.
pub fn pci_address(addr: &str) -> Result<String> {
    let bad = || Error::invalid("pci_addr", format!("must look like 0000:01:10.0, got {addr:?}"));
    let (dom, rest) = addr.split_once(':').ok_or_else(bad)?;
    let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
    let (slot, func) = rest.split_once('.').ok_or_else(bad)?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !(hex(dom, 4) && hex(bus, 2) && hex(slot, 2) && hex(func, 1)) {
        return Err(bad());
    }
    Ok(format!("<address type='pci' domain='0x{dom}' bus='0x{bus}' slot='0x{slot}' function='0x{func}'/>"))
}

/// TAP device name of a switch port (15 bytes at most).
pub fn tap_name(port_id: &str) -> String {
    let s: String = port_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(11).collect();
    format!("tap{s}")
}

/// The `ua-` alias of a port's persistent failover NIC.
pub fn failover_alias(port_id: &str) -> String {
    let s: String = port_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("ua-{s}")
}

fn vf_addr(port: &Port) -> Result<String> {
    if let Some(pf) = &port.pf_binding {
        // direct-physical: the whole PF is the host device.
        return pci_address(&pf.pf_bus_id);
    }
    let b = port.binding.as_ref().ok_or_else(|| {
        Error::invalid("vnic_type", format!("{} ports have no VF to render", port.spec.vnic_type.as_str()))
    })?;
    pci_address(b.pci_addr.as_deref().ok_or_else(|| {
        Error::invalid("binding.pci_addr", format!("VF {} of {} has no PCI address (netdevsim?)", b.vf, b.pf))
    })?)
}

fn vlan(port: &Port) -> String {
    if port.vlan == 0 { String::new() } else { format!("  <vlan>\n    <tag id='{}'/>\n  </vlan>\n", port.vlan) }
}

/// Renders `port` in `form`: one or two `<interface>`/`<hostdev>`
/// elements for a domain's `<devices>`.
pub fn render(port: &Port, form: Form) -> Result<String> {
    let mac = port.spec.effective_mac();
    let id = &port.spec.id;
    let mut x = String::new();
    match form {
        Form::Hostdev => {
            let a = vf_addr(port)?;
            let _ = write!(
                x,
                "<interface type='hostdev' managed='yes'>\n  <mac address='{mac}'/>\n  <driver name='vfio'/>\n  <source>\n    {a}\n  </source>\n{}</interface>\n",
                vlan(port)
            );
        }
        Form::PlainHostdev => {
            // `<hostdev>`'s source address takes no `type` (domaincommon.rng).
            let a = vf_addr(port)?.replacen(" type='pci'", "", 1);
            let _ = write!(
                x,
                "<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    {a}\n  </source>\n</hostdev>\n"
            );
        }
        Form::Macvtap => {
            let nd = port.binding.as_ref().and_then(|b| b.netdev.as_deref()).ok_or_else(|| {
                Error::invalid("binding.netdev", "the VF has no netdev (bound to vfio-pci?); macvtap needs one")
            })?;
            let _ = write!(
                x,
                "<interface type='direct'>\n  <mac address='{mac}'/>\n  <source dev='{}' mode='passthrough'/>\n  <model type='virtio'/>\n</interface>\n",
                esc(nd)
            );
        }
        Form::Ethernet => {
            let _ = write!(
                x,
                "<interface type='ethernet'>\n  <mac address='{mac}'/>\n  <target dev='{}' managed='no'/>\n  <model type='virtio'/>\n</interface>\n",
                tap_name(id)
            );
        }
        Form::VhostUser => {
            let _ = write!(
                x,
                "<interface type='vhostuser'>\n  <mac address='{mac}'/>\n  <source type='unix' path='{VHOST_DIR}/{}.sock' mode='server'/>\n  <model type='virtio'/>\n</interface>\n",
                esc(id)
            );
        }
        Form::Failover => {
            let a = vf_addr(port)?;
            let alias = failover_alias(id);
            let _ = write!(
                x,
                "<interface type='ethernet'>\n  <mac address='{mac}'/>\n  <target dev='{}' managed='no'/>\n  <model type='virtio'/>\n  <teaming type='persistent'/>\n  <alias name='{alias}'/>\n</interface>\n",
                tap_name(id)
            );
            let _ = write!(
                x,
                "<interface type='hostdev' managed='yes'>\n  <mac address='{mac}'/>\n  <driver name='vfio'/>\n  <source>\n    {a}\n  </source>\n{}  <teaming type='transient' persistent='{alias}'/>\n</interface>\n",
                vlan(port)
            );
        }
    }
    Ok(x)
}

/// A libvirt `<network>` with `<forward mode='hostdev'>` over the pool's
/// PFs (listed by `<pf dev>`, which libvirt expands to their VFs).
pub fn pool_network(pool: &Pool) -> String {
    let mut pfs: Vec<&str> = pool.vfs.iter().map(|v| v.pf.as_str()).collect();
    pfs.dedup();
    let mut x = format!(
        "<network>\n  <name>{}</name>\n  <forward mode='hostdev' managed='yes'>\n    <driver name='vfio'/>\n",
        esc(&pool.name)
    );
    for pf in pfs.iter().take(1) {
        let _ = writeln!(x, "    <pf dev='{}'/>", esc(pf));
    }
    x.push_str("  </forward>\n</network>\n");
    x
}

/// Wraps device XML in a minimal `<domain>` (for validation and examples).
pub fn in_domain(devices: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>sluice-xml-check</name>\n  <memory unit='MiB'>512</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n{devices}  </devices>\n</domain>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRequest, PortState, PortStatus, VfBinding, VfSlot};

    fn port(vnic: VnicType) -> Port {
        Port {
            spec: PortRequest {
                id: "port.1".into(),
                network: "n".into(),
                vnic_type: vnic,
                mac: Some("fa:16:3e:00:00:01".parse().unwrap()),
                fixed_ips: vec![],
                allowed_address_pairs: vec![],
                security_groups: vec![],
                qos_policy: None,
                owner: "vm".into(),
                numa_node: None,
                binding_profile: Default::default(),
            },
            physnet: Some("phys".into()),
            vlan: 42,
            binding: vnic.needs_vf().then(|| VfBinding {
                pool: "phys".into(),
                pf: "eth0".into(),
                pf_bus_id: "0000:01:00.0".into(),
                vf: 3,
                pci_addr: Some("0000:01:10.3".into()),
                netdev: Some("eth0v3".into()),
                numa_node: None,
                generation: 1,
                host_claim: None,
            }),
            pf_binding: None,
            status: PortStatus { state: PortState::Bound, reason: None },
        }
    }

    fn validate(xml: &str, kind: &str) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.xml");
        std::fs::write(&f, xml).unwrap();
        let out = std::process::Command::new("virt-xml-validate")
            .arg(&f)
            .arg(kind)
            .output()
            .expect("virt-xml-validate (Debian package libvirt-clients) must be installed");
        assert!(
            out.status.success(),
            "{kind} does not validate:\n{xml}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn every_form_validates_with_virt_xml_validate() {
        for form in Form::ALL {
            let vnic = match form {
                Form::Ethernet => VnicType::Normal,
                Form::VhostUser => VnicType::VirtioForwarder,
                Form::Macvtap => VnicType::Macvtap,
                _ => VnicType::Direct,
            };
            let x = render(&port(vnic), form).unwrap();
            validate(&in_domain(&x), "domain");
        }
        let pool = Pool {
            name: "phys".into(),
            vfs: vec![VfSlot {
                pf: "eth0".into(),
                pf_bus_id: "0000:01:00.0".into(),
                vf: 0,
                pci_addr: None,
                netdev: None,
                numa_node: None,
                generation: 0,
                holder: None,
            }],
            pfs: vec![],
        };
        validate(&pool_network(&pool), "network");
        // And the validator does reject broken XML, so the test can fail.
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("bad.xml");
        std::fs::write(&f, in_domain("<interface type='hostdev'><teaming type='bogus'/></interface>\n")).unwrap();
        let st = std::process::Command::new("virt-xml-validate").arg(&f).arg("domain").output().unwrap().status;
        assert!(!st.success());
    }

    #[test]
    fn failover_pair_shares_mac_and_alias() {
        let x = render(&port(VnicType::Direct), Form::Failover).unwrap();
        assert_eq!(x.matches("<mac address='fa:16:3e:00:00:01'/>").count(), 2);
        assert!(x.contains("<alias name='ua-port-1'/>"));
        assert!(x.contains("<teaming type='transient' persistent='ua-port-1'/>"));
        assert!(x.contains("<tag id='42'/>"));
        assert!(x.contains("bus='0x01' slot='0x10' function='0x3'"));
        assert!(render(&port(VnicType::Normal), Form::Hostdev).is_err());
        assert!(pci_address("0000:01:10").is_err());
        assert!(Form::parse("nope").unwrap_err().to_string().contains("failover"));
    }
}
