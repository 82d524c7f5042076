//! devlink over generic netlink: eswitch mode, ports (representor mapping)
//! and port function rates.
//!
//! Why hand-written: rust-netlink has no devlink crate (sriov-control.md
//! §5.5); `nlink` lacks `ESWITCH_GET/SET` and is async. The messages are
//! small: a 4-byte genl header and flat attributes. They are framed with
//! `netlink-packet-generic` (`GenlMessage`, family resolution through its
//! `ctrl` types) and `netlink-packet-core` (`DefaultNla`); replies are read
//! with the total walker in [`super::walk`]. Constants are from
//! `include/uapi/linux/devlink.h`.

use std::fmt;

use netlink_packet_core::{
    DefaultNla, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlMessage};
use serde::Serialize;

use super::walk::{attrs, messages};
use super::{NlSocket, attr_u16, attr_u32, attr_u64, c_string};
use crate::error::{Error, Result};

const CMD_PORT_GET: u8 = 5;
const CMD_ESWITCH_GET: u8 = 29;
const CMD_ESWITCH_SET: u8 = 30;
const CMD_RATE_GET: u8 = 74;
const CMD_RATE_SET: u8 = 75;

const ATTR_BUS_NAME: u16 = 1;
const ATTR_DEV_NAME: u16 = 2;
const ATTR_PORT_INDEX: u16 = 3;
const ATTR_PORT_NETDEV_IFINDEX: u16 = 6;
const ATTR_PORT_NETDEV_NAME: u16 = 7;
const ATTR_ESWITCH_MODE: u16 = 25;
const ATTR_PORT_FLAVOUR: u16 = 77;
const ATTR_PORT_PCI_PF_NUMBER: u16 = 127;
const ATTR_PORT_PCI_VF_NUMBER: u16 = 128;
const ATTR_RATE_TYPE: u16 = 165;
const ATTR_RATE_TX_SHARE: u16 = 166;
const ATTR_RATE_TX_MAX: u16 = 167;

const CTRL_ATTR_FAMILY_ID: u16 = 1;
const GENL_HDRLEN: usize = 4;

/// Bytes per second in one Mbit/s.
pub const BYTES_PER_MBIT: u64 = 125_000;

/// Eswitch mode of a devlink device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EswitchMode {
    /// Legacy SR-IOV (VF settings through the PF netdev).
    Legacy,
    /// switchdev: representors, TC offload, devlink rates.
    Switchdev,
}

impl fmt::Display for EswitchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EswitchMode::Legacy => "legacy",
            EswitchMode::Switchdev => "switchdev",
        })
    }
}

impl std::str::FromStr for EswitchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "legacy" => Ok(EswitchMode::Legacy),
            "switchdev" => Ok(EswitchMode::Switchdev),
            _ => Err(Error::invalid("eswitch mode", format!("must be legacy or switchdev, got {s:?}"))),
        }
    }
}

/// A devlink port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DevlinkPort {
    /// Port index (`netdevsim/netdevsim1/128`).
    pub index: u32,
    /// Flavour: physical, pcipf, pcivf, ...
    pub flavour: String,
    /// Netdev of the port (the representor for VF ports).
    pub netdev: Option<String>,
    /// Its ifindex.
    pub ifindex: Option<u32>,
    /// PF number.
    pub pf_number: Option<u16>,
    /// VF number (VF ports only).
    pub vf_number: Option<u16>,
}

/// A devlink rate object (leaf = a port function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PortRate {
    /// Port index for leaves.
    pub port_index: Option<u32>,
    /// Guaranteed rate, bytes/s.
    pub tx_share: u64,
    /// Maximum rate, bytes/s.
    pub tx_max: u64,
}

/// A generic devlink request: command plus flat attributes.
#[derive(Debug, Clone)]
struct DevlinkMsg {
    cmd: u8,
    attrs: Vec<DefaultNla>,
}

impl GenlFamily for DevlinkMsg {
    fn family_name() -> &'static str {
        "devlink"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for DevlinkMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

fn str_attr(kind: u16, s: &str) -> DefaultNla {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    DefaultNla::new(kind, v)
}

/// A devlink generic-netlink socket.
pub struct Devlink {
    sock: NlSocket,
    family: u16,
}

fn serialize<F>(payload: F, family: Option<u16>, flags: u16, seq: u32) -> Vec<u8>
where
    F: GenlFamily + Emitable + fmt::Debug,
{
    let mut g = GenlMessage::from_payload(payload);
    if let Some(id) = family {
        g.set_resolved_family_id(id);
    }
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(g));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

impl Devlink {
    /// Opens a generic netlink socket and resolves the devlink family.
    pub fn open() -> Result<Self> {
        let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_GENERIC)?;
        let seq = sock.next_seq();
        let req = GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName("devlink".into())] };
        let buf = serialize(req, None, NLM_F_REQUEST, seq);
        let replies = sock
            .request(&buf, seq, false, "resolving the devlink generic netlink family")
            .map_err(|e| Error::Unsupported(format!("devlink is not available in this kernel: {e}")))?;
        let family = parse_family_id(&replies)
            .ok_or_else(|| Error::Decode { op: "CTRL_CMD_GETFAMILY devlink".into(), detail: "no family id".into() })?;
        Ok(Devlink { sock, family })
    }

    fn handle_attrs(bus: &str, dev: &str) -> Vec<DefaultNla> {
        vec![str_attr(ATTR_BUS_NAME, bus), str_attr(ATTR_DEV_NAME, dev)]
    }

    fn call(&mut self, cmd: u8, attrs: Vec<DefaultNla>, flags: u16, op: &str) -> Result<Vec<Vec<u8>>> {
        let seq = self.sock.next_seq();
        let buf = serialize(DevlinkMsg { cmd, attrs }, Some(self.family), flags, seq);
        self.sock.request(&buf, seq, flags & NLM_F_DUMP != 0, op)
    }

    /// The eswitch mode of `bus/dev`.
    pub fn eswitch_mode(&mut self, bus: &str, dev: &str) -> Result<EswitchMode> {
        let op = format!("devlink eswitch show {bus}/{dev}");
        let replies = self.call(CMD_ESWITCH_GET, Self::handle_attrs(bus, dev), NLM_F_REQUEST, &op)?;
        parse_eswitch(&replies).map_err(|detail| Error::Decode { op, detail })
    }

    /// Sets the eswitch mode.
    pub fn set_eswitch_mode(&mut self, bus: &str, dev: &str, mode: EswitchMode) -> Result<()> {
        let mut a = Self::handle_attrs(bus, dev);
        let m: u16 = match mode {
            EswitchMode::Legacy => 0,
            EswitchMode::Switchdev => 1,
        };
        a.push(DefaultNla::new(ATTR_ESWITCH_MODE, m.to_ne_bytes().to_vec()));
        self.call(
            CMD_ESWITCH_SET,
            a,
            NLM_F_REQUEST | NLM_F_ACK,
            &format!("devlink eswitch set {bus}/{dev} mode {mode}"),
        )
        .map(|_| ())
    }

    /// The ports of `bus/dev`.
    pub fn ports(&mut self, bus: &str, dev: &str) -> Result<Vec<DevlinkPort>> {
        let replies = self.call(
            CMD_PORT_GET,
            Self::handle_attrs(bus, dev),
            NLM_F_REQUEST | NLM_F_DUMP,
            &format!("devlink port show {bus}/{dev}"),
        )?;
        Ok(parse_ports(&replies, bus, dev))
    }

    /// Sets a port function rate (bytes/s); `None` leaves a value as is.
    pub fn set_port_rate(
        &mut self,
        bus: &str,
        dev: &str,
        port: u32,
        tx_share: Option<u64>,
        tx_max: Option<u64>,
    ) -> Result<()> {
        let mut a = Self::handle_attrs(bus, dev);
        a.push(DefaultNla::new(ATTR_PORT_INDEX, port.to_ne_bytes().to_vec()));
        if let Some(s) = tx_share {
            a.push(DefaultNla::new(ATTR_RATE_TX_SHARE, s.to_ne_bytes().to_vec()));
        }
        if let Some(m) = tx_max {
            a.push(DefaultNla::new(ATTR_RATE_TX_MAX, m.to_ne_bytes().to_vec()));
        }
        self.call(
            CMD_RATE_SET,
            a,
            NLM_F_REQUEST | NLM_F_ACK,
            &format!("devlink port function rate set {bus}/{dev}/{port}"),
        )
        .map(|_| ())
    }

    /// All rate objects of `bus/dev`.
    pub fn rates(&mut self, bus: &str, dev: &str) -> Result<Vec<PortRate>> {
        let replies = self.call(
            CMD_RATE_GET,
            Self::handle_attrs(bus, dev),
            NLM_F_REQUEST | NLM_F_DUMP,
            &format!("devlink port function rate show {bus}/{dev}"),
        )?;
        Ok(parse_rates(&replies, bus, dev))
    }
}

/// Top-level attributes of every generic-netlink data message in a datagram.
fn genl_attrs(d: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for m in messages(d) {
        if m.kind < 16 {
            continue;
        }
        if let Some(body) = m.payload.get(GENL_HDRLEN..) {
            out.extend(attrs(body).map(|a| (a.kind, a.value.to_vec())));
        }
    }
    out
}

/// The family id in a CTRL_CMD_GETFAMILY reply.
pub(crate) fn parse_family_id(replies: &[Vec<u8>]) -> Option<u16> {
    replies
        .iter()
        .flat_map(|d| genl_attrs(d))
        .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, v)| v.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])))
}

/// The mode in an ESWITCH_GET reply.
pub(crate) fn parse_eswitch(replies: &[Vec<u8>]) -> std::result::Result<EswitchMode, String> {
    let mode = replies
        .iter()
        .flat_map(|d| genl_attrs(d))
        .find(|(k, _)| *k == ATTR_ESWITCH_MODE)
        .and_then(|(_, v)| v.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])));
    match mode {
        Some(0) => Ok(EswitchMode::Legacy),
        Some(1) => Ok(EswitchMode::Switchdev),
        other => Err(format!("eswitch mode attribute is {other:?}")),
    }
}

/// Decodes RATE_GET dump replies: the leaf rates of `bus/dev`.
pub(crate) fn parse_rates(replies: &[Vec<u8>], bus: &str, dev: &str) -> Vec<PortRate> {
    let mut out = Vec::new();
    for d in replies {
        for m in messages(d) {
            if m.kind < 16 {
                continue;
            }
            let Some(body) = m.payload.get(GENL_HDRLEN..) else { continue };
            let mut r = PortRate::default();
            let mut leaf = true;
            let mut mine = (false, false);
            for a in attrs(body) {
                match a.kind {
                    ATTR_BUS_NAME => mine.0 = c_string(a.value) == bus,
                    ATTR_DEV_NAME => mine.1 = c_string(a.value) == dev,
                    ATTR_PORT_INDEX => r.port_index = attr_u32(&a),
                    ATTR_RATE_TYPE => leaf = attr_u16(&a) == Some(0),
                    ATTR_RATE_TX_SHARE => r.tx_share = attr_u64(&a).unwrap_or(0),
                    ATTR_RATE_TX_MAX => r.tx_max = attr_u64(&a).unwrap_or(0),
                    _ => {}
                }
            }
            if leaf && mine == (true, true) {
                out.push(r);
            }
        }
    }
    out
}

/// Decodes PORT_GET dump replies, keeping the ports of `bus/dev`.
pub(crate) fn parse_ports(replies: &[Vec<u8>], bus: &str, dev: &str) -> Vec<DevlinkPort> {
    let mut out = Vec::new();
    for d in replies {
        for m in messages(d) {
            if m.kind < 16 {
                continue;
            }
            let Some(body) = m.payload.get(GENL_HDRLEN..) else { continue };
            let mut p = DevlinkPort::default();
            let mut mine = (false, false);
            for a in attrs(body) {
                match a.kind {
                    ATTR_BUS_NAME => mine.0 = c_string(a.value) == bus,
                    ATTR_DEV_NAME => mine.1 = c_string(a.value) == dev,
                    ATTR_PORT_INDEX => p.index = attr_u32(&a).unwrap_or(0),
                    ATTR_PORT_NETDEV_IFINDEX => p.ifindex = attr_u32(&a),
                    ATTR_PORT_NETDEV_NAME => p.netdev = Some(c_string(a.value)),
                    ATTR_PORT_FLAVOUR => {
                        p.flavour = match attr_u16(&a) {
                            Some(0) => "physical".into(),
                            Some(1) => "cpu".into(),
                            Some(2) => "dsa".into(),
                            Some(3) => "pcipf".into(),
                            Some(4) => "pcivf".into(),
                            Some(5) => "virtual".into(),
                            Some(6) => "unused".into(),
                            Some(7) => "pcisf".into(),
                            other => format!("{other:?}"),
                        }
                    }
                    ATTR_PORT_PCI_PF_NUMBER => p.pf_number = attr_u16(&a),
                    ATTR_PORT_PCI_VF_NUMBER => p.vf_number = attr_u16(&a),
                    _ => {}
                }
            }
            if mine == (true, true) {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_framed() {
        let msg = DevlinkMsg { cmd: CMD_ESWITCH_GET, attrs: Devlink::handle_attrs("netdevsim", "netdevsim1") };
        let b = serialize(msg, Some(0x15), NLM_F_REQUEST, 9);
        let m: Vec<_> = messages(&b).collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, 0x15);
        assert_eq!(m[0].seq, 9);
        assert_eq!(m[0].payload[0], CMD_ESWITCH_GET);
        let a: Vec<_> = attrs(&m[0].payload[GENL_HDRLEN..]).collect();
        assert_eq!(a.len(), 2);
        assert_eq!(c_string(a[1].value), "netdevsim1");
    }

    /// Real replies captured in the QEMU lab from netdevsim1 in switchdev
    /// mode with 256 VFs (VF 7 rate set to 20/300 Mbit through devlink).
    const PORTS: &[u8] = include_bytes!("../../testdata/devlink-ports-256vf.bin");
    const RATES: &[u8] = include_bytes!("../../testdata/devlink-rates-256vf.bin");
    const ESW_SD: &[u8] = include_bytes!("../../testdata/devlink-eswitch-switchdev.bin");
    const ESW_LEGACY: &[u8] = include_bytes!("../../testdata/devlink-eswitch-legacy.bin");
    const CTRL: &[u8] = include_bytes!("../../testdata/genl-ctrl-devlink.bin");
    /// ESWITCH_GET on igb: ENODEV.
    const ENODEV: &[u8] = include_bytes!("../../testdata/devlink-ack-enodev.bin");

    #[test]
    fn captured_port_dump_maps_every_vf() {
        let ports = parse_ports(&[PORTS.to_vec()], "netdevsim", "netdevsim1");
        assert_eq!(ports.len(), 257);
        let phys: Vec<_> = ports.iter().filter(|p| p.flavour == "physical").collect();
        assert_eq!(phys.len(), 1);
        assert_eq!(phys[0].index, 0);
        let vfs: Vec<_> = ports.iter().filter(|p| p.flavour == "pcivf").collect();
        assert_eq!(vfs.len(), 256);
        for p in &vfs {
            let vf = u32::from(p.vf_number.unwrap());
            assert_eq!(p.index, 128 + vf);
            assert_eq!(p.pf_number, Some(0));
            assert!(p.netdev.as_deref().is_some_and(|n| n.starts_with("eth")));
        }
        let names: std::collections::BTreeSet<_> = vfs.iter().map(|p| p.netdev.clone()).collect();
        assert_eq!(names.len(), 256);
        // Another device's name filters everything out.
        assert!(parse_ports(&[PORTS.to_vec()], "netdevsim", "netdevsim2").is_empty());
    }

    #[test]
    fn captured_rates_eswitch_and_family() {
        let rates = parse_rates(&[RATES.to_vec()], "netdevsim", "netdevsim1");
        assert_eq!(rates.len(), 256);
        let r7 = rates.iter().find(|r| r.port_index == Some(135)).unwrap();
        assert_eq!((r7.tx_share, r7.tx_max), (20 * BYTES_PER_MBIT, 300 * BYTES_PER_MBIT));
        assert!(rates.iter().filter(|r| r.port_index != Some(135)).all(|r| r.tx_max == 0));
        assert_eq!(parse_eswitch(&[ESW_SD.to_vec()]), Ok(EswitchMode::Switchdev));
        assert_eq!(parse_eswitch(&[ESW_LEGACY.to_vec()]), Ok(EswitchMode::Legacy));
        assert!(parse_family_id(&[CTRL.to_vec()]).is_some_and(|id| id >= 16));
        let m: Vec<_> = messages(ENODEV).collect();
        assert_eq!(super::super::parse_ack(&m[0]).errno, libc::ENODEV);
        assert!(parse_eswitch(&[ENODEV.to_vec()]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn captured_replies_survive_mutation(pos in 0usize..40_000, byte in proptest::num::u8::ANY, cut in 0usize..40_000) {
            for base in [PORTS, RATES, ESW_SD, CTRL] {
                let mut b = base.to_vec();
                let p = pos % b.len();
                b[p] = byte;
                let _ = parse_ports(std::slice::from_ref(&b), "netdevsim", "netdevsim1");
                let _ = parse_rates(std::slice::from_ref(&b), "netdevsim", "netdevsim1");
                let _ = parse_eswitch(std::slice::from_ref(&b));
                let _ = parse_family_id(std::slice::from_ref(&b));
                b.truncate(cut % (b.len() + 1));
                let _ = parse_ports(std::slice::from_ref(&b), "netdevsim", "netdevsim1");
                let _ = parse_rates(std::slice::from_ref(&b), "netdevsim", "netdevsim1");
            }
        }

        #[test]
        fn port_parser_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse_ports(std::slice::from_ref(&bytes), "netdevsim", "netdevsim1");
            let _ = parse_rates(std::slice::from_ref(&bytes), "netdevsim", "netdevsim1");
            let _ = parse_eswitch(std::slice::from_ref(&bytes));
            let _ = genl_attrs(&bytes);
        }
    }
}
