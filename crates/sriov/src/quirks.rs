//! What a driver's refusal means. Kernel errnos are terse ("Invalid
//! argument"); an operator needs to know *why* igb refused a rate. The facts
//! are from the lab (`reference/sriov-lab.md` §4, §8.3, §8.4).

use crate::netlink::devlink::EswitchMode;
use crate::netlink::rt::Field;

/// Context for explaining a refusal.
pub(crate) struct RefusalContext<'a> {
    pub driver: Option<&'a str>,
    pub eswitch: Option<EswitchMode>,
    pub carrier: Option<bool>,
    pub speed_mbps: Option<u32>,
    pub min_tx_rate: u32,
    pub vlan_proto_ad: bool,
}

/// A sentence explaining `errno` for `field`.
pub(crate) fn meaning(field: Field, errno: i32, cx: &RefusalContext<'_>) -> String {
    let drv = cx.driver.unwrap_or("the driver");
    match (cx.driver, field, errno) {
        (_, Field::Rate, libc::EOPNOTSUPP) if cx.eswitch == Some(EswitchMode::Switchdev) => {
            "VF rates cannot be set through the PF in switchdev mode; Sluice sets them with devlink port function rate instead".into()
        }
        (Some("igb"), Field::Rate, libc::EINVAL) if cx.min_tx_rate > 0 => {
            "igb does not support a minimum TX rate (min_tx_rate must be 0)".into()
        }
        (Some("igb"), Field::Rate, libc::EINVAL) => {
            let speed = cx
                .speed_mbps
                .map(|s| format!("{s} Mbps"))
                .unwrap_or_else(|| "the link speed".into());
            let carrier = match cx.carrier {
                Some(true) => "the PF has carrier now",
                Some(false) => "the PF has NO carrier now",
                None => "the PF is down",
            };
            format!("igb accepts max_tx_rate only while the PF has carrier and only up to {speed} ({carrier})")
        }
        (Some("igb"), Field::LinkState, libc::EOPNOTSUPP) => {
            "igb does not support setting a VF link state (it always follows the PF: auto)".into()
        }
        (Some("igb"), Field::Vlan, libc::EPROTONOSUPPORT) | (_, Field::Vlan, libc::EPROTONOSUPPORT)
            if cx.vlan_proto_ad =>
        {
            format!("{drv} supports only 802.1Q VLAN tags on VFs, not 802.1ad")
        }
        (Some("igb"), Field::QueryRss, libc::EOPNOTSUPP) => {
            "igb does not support letting a VF query the RSS configuration".into()
        }
        (_, Field::Mac, libc::EINVAL) => format!("{drv} refused the MAC address"),
        (_, Field::Mac, libc::EBUSY) => {
            "the VF's driver holds the MAC; unbind the VF or retry after it settles".into()
        }
        (_, _, libc::EOPNOTSUPP) => format!("{drv} does not support setting {} on VFs", field.name()),
        (_, _, libc::EINVAL) => format!("{drv} rejected the value of {}", field.name()),
        (_, _, libc::ERANGE) => format!("{drv} says {} is out of range", field.name()),
        _ => format!("{drv} refused {}", field.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(driver: &str) -> RefusalContext<'_> {
        RefusalContext {
            driver: Some(driver),
            eswitch: None,
            carrier: Some(true),
            speed_mbps: Some(1000),
            min_tx_rate: 0,
            vlan_proto_ad: false,
        }
    }

    #[test]
    fn igb_refusals_explained() {
        let mut c = cx("igb");
        assert!(meaning(Field::Rate, libc::EINVAL, &c).contains("up to 1000 Mbps"));
        c.min_tx_rate = 10;
        assert!(meaning(Field::Rate, libc::EINVAL, &c).contains("minimum TX rate"));
        assert!(meaning(Field::LinkState, libc::EOPNOTSUPP, &c).contains("link state"));
        c.vlan_proto_ad = true;
        assert!(meaning(Field::Vlan, libc::EPROTONOSUPPORT, &c).contains("802.1ad"));
        let mut n = cx("netdevsim");
        n.eswitch = Some(EswitchMode::Switchdev);
        assert!(meaning(Field::Rate, libc::EOPNOTSUPP, &n).contains("devlink"));
        assert!(meaning(Field::Trust, libc::EOPNOTSUPP, &cx("foo")).contains("foo does not support setting trust"));
    }
}
