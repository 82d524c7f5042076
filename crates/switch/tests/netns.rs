//! The whole switch on real kernel interfaces: network-namespace "VMs"
//! attached by AF_XDP, AF_PACKET and TAP ports on two VLANs, driven through
//! the same control socket `sluice dp` uses. Needs root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_switch::control::{ControlServer, Request, request};
use sluice_switch::{PortConfig, PortType, Switch, SwitchConfig, VlanConfig};
use sluice_testbed::Netns;

fn port(name: &str, kind: PortType, vlan: u16) -> PortConfig {
    PortConfig {
        name: name.into(),
        kind,
        bridge: None,
        number: None,
        queues: None,
        vlan: Some(vlan),
        trunks: None,
        native: None,
    }
}

/// vm1 (AF_XDP, VLAN 10), vm2 (TAP, VLAN 10), vm3 (AF_PACKET, VLAN 10),
/// vm4 (TAP, VLAN 20, same subnet: only the VLAN keeps it apart).
struct Bed {
    sw: Netns,
    vms: Vec<Netns>,
    switch: Arc<Switch>,
    _ctl: ControlServer,
    sock: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let sw = Netns::new().unwrap();
        let vms: Vec<Netns> = (0..4).map(|_| Netns::new().unwrap()).collect();
        vms[0].add_veth("eth0", &sw, "p1").unwrap();
        vms[2].add_veth("eth0", &sw, "p3").unwrap();
        for (vm, p) in [(&vms[0], "p1"), (&vms[2], "p3")] {
            // No TSO/GSO; no tx checksum offload for the AF_XDP VM (XDP has
            // no partial-checksum flag); no GRO on the switch ends.
            vm.run(&["ethtool", "-K", "eth0", "tso", "off", "gso", "off", "tx", "off"]).unwrap();
            sw.run(&["ethtool", "-K", p, "gro", "off"]).unwrap();
        }
        let config = SwitchConfig {
            ports: vec![
                port("p1", PortType::Afxdp, 10),
                port("t2", PortType::Tap, 10),
                port("p3", PortType::Afpacket, 10),
            ],
            datapath: sluice_switch::config::DatapathSection { spin_rounds: 200, ..Default::default() },
            ..SwitchConfig::default()
        };
        let switch = Arc::new(sw.enter(|| Switch::start(config)).unwrap().unwrap());
        // The TAP opened by the switch moves into its VM, as libvirt's would be in the guest.
        sw.ip(&["link", "set", "t2", "netns", vms[1].name()]).unwrap();
        vms[1].ip(&["link", "set", "t2", "name", "eth0"]).unwrap();
        vms[1].ip(&["link", "set", "eth0", "up"]).unwrap();
        for (i, vm) in vms.iter().enumerate().take(3) {
            vm.addr_add("eth0", &format!("10.66.0.{}/24", i + 1)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("dp.sock");
        // The control thread opens ports in the switch's namespace: start it there.
        let ctl = sw.enter(|| ControlServer::start(&sock, switch.clone())).unwrap().unwrap();
        Bed { sw, vms, switch, _ctl: ctl, sock, _dir: dir }
    }

    fn ctl(&self, req: Request) -> Result<Value, String> {
        request(&self.sock, &req)
    }

    fn port_stat(&self, name: &str, field: &str) -> u64 {
        let show = self.ctl(Request::Show).unwrap();
        for ports in show["bridges"].as_object().unwrap().values() {
            for p in ports.as_array().unwrap() {
                if p["name"] == name {
                    return p[field].as_u64().unwrap();
                }
            }
        }
        panic!("no port {name} in {show}");
    }
}

fn ping(from: &Netns, to: &str) -> bool {
    from.exec(&["ping", "-c", "1", "-W", "1", to]).map(|o| o.status.success()).unwrap_or(false)
}

/// Pings until one answers (ARP, XDP attach settle), at most `tries` seconds.
fn ping_settled(from: &Netns, to: &str, tries: u32) -> bool {
    (0..tries).any(|_| ping(from, to))
}

fn udp_roundtrip(c: &Netns, cip: &str, s: &Netns, sip: &str) {
    let server = s.enter(|| UdpSocket::bind((sip, 9100)).unwrap()).unwrap();
    let client = c.enter(|| UdpSocket::bind((cip, 0)).unwrap()).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    client.send_to(b"ping over udp", (sip, 9100)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).expect("UDP datagram did not cross the switch");
    assert_eq!(&buf[..n], b"ping over udp");
    server.send_to(b"pong", from).unwrap();
    let n = client.recv(&mut buf).expect("UDP reply did not cross the switch");
    assert_eq!(&buf[..n], b"pong");
}

fn tcp_roundtrip(c: &Netns, s: &Netns, sip: &str) {
    let listener = s.enter(|| TcpListener::bind((sip, 9200)).unwrap()).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 100_000];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf[..1000]).unwrap();
        buf
    });
    let mut conn = c
        .enter(|| TcpStream::connect_timeout(&format!("{sip}:9200").parse().unwrap(), Duration::from_secs(3)).unwrap())
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    conn.write_all(&data).unwrap();
    let mut back = vec![0u8; 1000];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(server.join().unwrap(), data, "100 kB over TCP arrive intact");
    assert_eq!(back, data[..1000]);
}

#[test]
fn ping_udp_and_tcp_cross_every_port_type_and_vlans_stay_apart() {
    let bed = Bed::new();
    let v = &bed.vms;
    assert!(ping_settled(&v[0], "10.66.0.2", 10), "AF_XDP -> TAP ping");
    assert!(ping_settled(&v[1], "10.66.0.3", 10), "TAP -> AF_PACKET ping");
    assert!(ping_settled(&v[2], "10.66.0.1", 10), "AF_PACKET -> AF_XDP ping");
    udp_roundtrip(&v[0], "10.66.0.1", &v[1], "10.66.0.2");
    udp_roundtrip(&v[1], "10.66.0.2", &v[2], "10.66.0.3");
    udp_roundtrip(&v[2], "10.66.0.3", &v[0], "10.66.0.1");
    tcp_roundtrip(&v[0], &v[1], "10.66.0.2");
    tcp_roundtrip(&v[1], &v[2], "10.66.0.3");
    tcp_roundtrip(&v[2], &v[0], "10.66.0.1");

    // A fourth VM on VLAN 20 with an address in the same subnet, added at
    // run time over the control socket.
    bed.ctl(Request::AddPort { port: port("t4", PortType::Tap, 20) }).unwrap();
    bed.sw.ip(&["link", "set", "t4", "netns", v[3].name()]).unwrap();
    v[3].ip(&["link", "set", "t4", "up"]).unwrap();
    v[3].addr_add("t4", "10.66.0.4/24").unwrap();
    let t4_before = bed.port_stat("t4", "tx_packets");
    assert!(!ping_settled(&v[0], "10.66.0.4", 2), "VLAN 10 must not reach VLAN 20");
    assert!(!ping_settled(&v[3], "10.66.0.1", 2), "VLAN 20 must not reach VLAN 10");
    assert_eq!(bed.port_stat("t4", "tx_packets"), t4_before, "not one frame of VLAN 10 (not even ARP) left on t4");
    // Moving t4 to VLAN 10 at run time connects it.
    bed.ctl(Request::SetVlan { name: "t4".into(), vlan: VlanConfig { vlan: Some(10), trunks: None, native: None } })
        .unwrap();
    assert!(ping_settled(&v[3], "10.66.0.1", 10), "t4 on VLAN 10 now");

    // Learning: after the stations are known, a UDP burst from vm1 to vm2
    // is not flooded to vm3 or t4.
    let p3_before = bed.port_stat("p3", "tx_packets");
    let t2_before = bed.port_stat("t2", "tx_packets");
    let s = v[1].enter(|| UdpSocket::bind(("10.66.0.2", 9300)).unwrap()).unwrap();
    let c = v[0].enter(|| UdpSocket::bind(("10.66.0.1", 0)).unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // Read while sending: 1000 queued datagrams overflow a default socket buffer.
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = [0u8; 16];
        while s.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    for i in 0..1000u32 {
        c.send_to(&i.to_be_bytes(), ("10.66.0.2", 9300)).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let got = reader.join().unwrap();
    assert!(got >= 990, "the burst crossed: {got}/1000");
    assert!(bed.port_stat("t2", "tx_packets") - t2_before >= 1000);
    let flooded = bed.port_stat("p3", "tx_packets") - p3_before;
    assert!(flooded < 10, "learned stations are not flooded: {flooded} frames reached p3");

    // Ports and VLANs change at run time without disturbing the others:
    // a ping stream vm1 -> vm2 loses nothing meanwhile.
    let stream = v[0].spawn(&["ping", "-q", "-i", "0.005", "-c", "400", "-W", "1", "10.66.0.2"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    bed.ctl(Request::AddPort { port: port("t5", PortType::Tap, 10) }).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    bed.ctl(Request::SetVlan { name: "t4".into(), vlan: VlanConfig { vlan: Some(20), trunks: None, native: None } })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    bed.ctl(Request::DelPort { name: "t5".into() }).unwrap();
    let out = stream.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0% packet loss"), "run-time changes disturbed vm1 -> vm2: {text}");

    let flows = bed.ctl(Request::DumpFlows).unwrap();
    let text = flows.to_string();
    assert!(text.contains("in_port=1") && text.contains("actions:"), "{text}");
    let trace = bed
        .ctl(Request::Trace { packet: "in_port=t2,eth_src=02:aa:00:00:00:04,eth_dst=ff:ff:ff:ff:ff:ff".into() })
        .unwrap();
    assert!(trace["steps"].to_string().contains("flood"), "{trace}");
    let show = bed.ctl(Request::Show).unwrap();
    eprintln!("show: {show:#}");
    assert!(show["threads"][0]["upcalls"].as_u64().unwrap() < 200, "the caches serve the burst: {show}");
    drop(bed.switch.clone());
}

#[test]
fn a_port_that_vanishes_under_load_closes_alone() {
    let bed = Bed::new();
    let v = &bed.vms;
    assert!(ping_settled(&v[0], "10.66.0.2", 10));
    assert!(ping_settled(&v[0], "10.66.0.3", 10));
    let mut flood = v[0].spawn(&["ping", "-q", "-i", "0.002", "-w", "5", "10.66.0.2"]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    bed.sw.ip(&["link", "del", "p3"]).unwrap();
    let t = Instant::now();
    let closed = || {
        let show = bed.ctl(Request::Show).unwrap();
        show["bridges"]["br0"].as_array().unwrap().iter().any(|p| p["name"] == "p3" && p["closed"] == true)
    };
    // p3 closes when something is sent to it or it is polled: a broadcast does both.
    while !closed() && t.elapsed() < Duration::from_secs(3) {
        let _ = v[0].exec(&["ping", "-b", "-c", "1", "-W", "1", "10.66.0.255"]);
        let _ = ping(&v[0], "10.66.0.3");
    }
    let t2_mid = bed.port_stat("t2", "tx_packets");
    std::thread::sleep(Duration::from_millis(500));
    assert!(bed.port_stat("t2", "tx_packets") > t2_mid, "traffic to t2 carries on");
    let _ = flood.wait();
    assert!(ping(&v[0], "10.66.0.2"), "vm1 still reaches vm2");
    assert!(closed(), "p3 reports closed");
    bed.ctl(Request::DelPort { name: "p3".into() }).unwrap();
    let e = bed.ctl(Request::DelPort { name: "p3".into() }).unwrap_err();
    assert!(e.contains("no port is called \"p3\""), "{e}");
    let e = bed.ctl(Request::AddPort { port: port("x", PortType::Tap, 5000) }).unwrap_err();
    assert!(e.contains("`vlan` must be in 1..=4094, got 5000"), "{e}");
}
