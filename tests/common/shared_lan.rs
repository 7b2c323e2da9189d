//! Two gateways on one LAN: a second lab's gateway joined to the first lab's LAN segment, so that
//! one client (one namespace, one kernel, one address per host) can leave through either gateway
//! by changing its default route. Both labs are built by `ftwall lab up` as usual (each gateway
//! with the shipped rules on its own LAN interface, each with its own `wan`); [`Lab::share_lan_of`]
//! then rewires the second:
//!
//! ```text
//!                    A-lan (the one client: 192.0.2.10-14, 2001:db8:1::10-12)
//!                    Abr (bridge) ── Al0 ==veth== Ag0  A-gw 192.0.2.1, 2001:db8:1::1 ── A-wan
//!                                 └─ Bl0 ==veth== Bg0  B-gw 192.0.2.2, 2001:db8:1::2 ── B-wan
//! ```
//!
//! Invariants:
//! - The client's addresses move from `Al0` to the bridge `Abr` (in A's `lan` namespace), `Al0`
//!   and B's LAN veth end `Bl0` become its ports; B's now empty `lan` namespace is deleted and B's
//!   [`Lab::ns`]`("lan")` is A's. The LAN ranges stay those of `lab up` and the daemons' config
//!   (192.0.2.0/24, 2001:db8:1::/64); only B's gateway address changes, to .2 / ::2.
//! - Return traffic is symmetric per gateway: each gateway has its own WAN namespace (the same
//!   addresses behind each), so a connection leaves and comes back through the gateway the
//!   client's default route named when it started.
//! - Nothing outlives the labs: the bridge and `Bl0` live in A's `lan` namespace (deleted when A
//!   drops, taking `Bl0`'s peer `Bg0` with it), everything else in B's own namespaces (deleted
//!   when B drops, in any order, on panic too).

use super::{must, run, Lab};
use serde_json::Value;

/// The first gateway's LAN addresses (as `ftwall lab up` assigns them).
pub const FIRST_GATEWAY: [&str; 2] = ["192.0.2.1", "2001:db8:1::1"];
/// The second gateway's LAN addresses on the shared LAN.
pub const SECOND_GATEWAY: [&str; 2] = ["192.0.2.2", "2001:db8:1::2"];

impl Lab {
    /// Makes this lab's gateway a second gateway on `first`'s LAN (see the module docs). The
    /// client's default route still goes through `first`'s gateway.
    pub fn share_lan_of(&mut self, first: &Self) {
        assert!(first.lan_ns.is_none() && self.lan_ns.is_none(), "a LAN is shared by two gateways at most");
        let lan = first.ns("lan");
        let (port_a, port_b, bridge) =
            (format!("{}l0", first.prefix), format!("{}l0", self.prefix), format!("{}br", first.prefix));
        // The bridge takes over the client's global addresses (IPv4 and IPv6) from its veth end.
        let out = run("ip", &["-n", &lan, "-j", "addr", "show", "dev", &port_a]);
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let addrs: Vec<String> = shown[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        assert!(addrs.iter().any(|a| a.starts_with("192.0.2.")), "client addresses on {port_a}: {shown}");
        must("ip", &["-n", &lan, "link", "add", &bridge, "type", "bridge"]);
        must("ip", &["-n", &lan, "addr", "flush", "dev", &port_a, "scope", "global"]);
        must("ip", &["-n", &lan, "link", "set", &port_a, "master", &bridge]);
        must("ip", &["-n", &self.ns("lan"), "link", "set", &port_b, "netns", &lan]);
        must("ip", &["-n", &lan, "link", "set", &port_b, "master", &bridge]);
        for addr in &addrs {
            let mut args = vec!["-n", &lan, "addr", "add", addr, "dev", &bridge];
            if addr.contains(':') {
                args.push("nodad");
            }
            must("ip", &args);
        }
        for dev in [&port_b, &bridge] {
            must("ip", &["-n", &lan, "link", "set", dev, "up"]);
        }
        must("ip", &["netns", "del", &self.ns("lan")]);
        // The second gateway's LAN address: .2 and ::2 on the same prefixes.
        let (gw, g0) = (self.ns("gw"), format!("{}g0", self.prefix));
        for (old, new, len) in
            [(FIRST_GATEWAY[0], SECOND_GATEWAY[0], "24"), (FIRST_GATEWAY[1], SECOND_GATEWAY[1], "64")]
        {
            must("ip", &["-n", &gw, "addr", "del", &format!("{old}/{len}"), "dev", &g0]);
            let new = format!("{new}/{len}");
            let mut args = vec!["-n", &gw, "addr", "add", &new, "dev", &g0];
            if new.contains(':') {
                args.push("nodad");
            }
            must("ip", &args);
        }
        self.lan_ns = Some(lan);
        first.route_lan_here();
    }

    /// This lab's LAN addresses (IPv4, IPv6) of its gateway.
    pub fn gateway_lan_addrs(&self) -> [&'static str; 2] {
        if self.lan_ns.is_some() {
            SECOND_GATEWAY
        } else {
            FIRST_GATEWAY
        }
    }

    /// The route switch: the (shared) LAN's default routes, IPv4 and IPv6, now go through this
    /// lab's gateway. Connections opened before keep their path back through the other gateway
    /// (each has its own WAN); new ones leave through this one.
    pub fn route_lan_here(&self) {
        let lan = self.ns("lan");
        let [v4, v6] = self.gateway_lan_addrs();
        must("ip", &["-n", &lan, "route", "replace", "default", "via", v4]);
        must("ip", &["-n", &lan, "-6", "route", "replace", "default", "via", v6]);
    }

    /// The IPv4 gateway the LAN's default route goes through now.
    pub fn lan_default_route(&self) -> String {
        let out = run("ip", &["-n", &self.ns("lan"), "-j", "route", "show", "default"]);
        let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
        routes[0]["gateway"].as_str().unwrap_or_default().to_string()
    }
}
