package testbed

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// addressing is a bed's address plan: the bridge's network, the load
// balancer's and each host's address, and the ranges kubeadm and the CNI
// bridge hand out. An IPv4 bed lives in a /24 (Subnet "10.99.0": hosts
// 10.99.0.11, .12, ...); an IPv6 single-stack bed in a /64 of fd00::/8
// (Subnet "fd00:99:0:10": hosts fd00:99:0:10::11, ::12, ...), and then no
// host, pod or service has an IPv4 address other than loopback's.
type addressing struct {
	subnet string
	ipv6   bool
}

// Default subnets of the two families.
const (
	DefaultSubnet     = "10.99.0"
	DefaultSubnetIPv6 = "fd00:99:0:0"
)

// validate refuses a subnet that is not of the bed's family and shape.
func (a addressing) validate() error {
	if a.ipv6 {
		ip, _, err := net.ParseCIDR(a.cidr())
		if err != nil || strings.Count(a.subnet, ":") != 3 || ip.To4() != nil {
			return fmt.Errorf("bad IPv6 subnet %q (want the first four groups of a /64, such as %s)", a.subnet, DefaultSubnetIPv6)
		}
		if _, ula, _ := net.ParseCIDR("fd00::/8"); !ula.Contains(ip) {
			return fmt.Errorf("IPv6 subnet %q is not in fd00::/8: the bed uses private addresses only", a.subnet)
		}
		return nil
	}
	ip, _, err := net.ParseCIDR(a.cidr())
	if err != nil || strings.Count(a.subnet, ".") != 2 || ip.To4() == nil {
		return fmt.Errorf("bad subnet %q (want three octets such as %s)", a.subnet, DefaultSubnet)
	}
	return nil
}

// prefixLen is the length of the bridge network's prefix.
func (a addressing) prefixLen() int {
	if a.ipv6 {
		return 64
	}
	return 24
}

// cidr is the bridge's network.
func (a addressing) cidr() string {
	if a.ipv6 {
		return a.subnet + "::/64"
	}
	return a.subnet + ".0/24"
}

// lb is the load balancer's address on the bridge (also the hosts' gateway).
func (a addressing) lb() string {
	if a.ipv6 {
		return canonical(a.subnet + "::1")
	}
	return a.subnet + ".1"
}

// host is the address of the i-th host (from 0): .11, .12, ... or ::11, ::12, ...
func (a addressing) host(i int) string {
	if a.ipv6 {
		return canonical(a.subnet + "::" + strconv.Itoa(11+i))
	}
	return a.subnet + "." + strconv.Itoa(11+i)
}

// canonical is an IPv6 address as Go, kubelet and kubeadm write it
// (fd00:99::11, not fd00:99:0:0::11): the form node addresses, etcd's
// advertised URLs and certificates show, so the bed's records compare equal.
func canonical(ip string) string {
	if p := net.ParseIP(ip); p != nil {
		return p.String()
	}
	return ip
}

// maxHosts is how many hosts the plan numbers: .11 to .210 of a /24; the
// same count for IPv6, whose host parts read like the IPv4 ones.
func (a addressing) maxHosts() int { return 200 }

// serviceSubnet and podSubnet are kubeadm's networking settings. An IPv6
// service range must be no larger than a /108 (the apiserver's limit).
func (a addressing) serviceSubnet() string {
	if a.ipv6 {
		return "fd00:10:96::/112"
	}
	return "10.96.0.0/16"
}

func (a addressing) podSubnet() string {
	if a.ipv6 {
		return "fd00:10:244::/56"
	}
	return "10.244.0.0/16"
}

// cniSubnet is the host-local range of the CNI bridge inside each host.
func (a addressing) cniSubnet() string {
	if a.ipv6 {
		return "fd00:85::/64"
	}
	return "10.85.0.0/24"
}
