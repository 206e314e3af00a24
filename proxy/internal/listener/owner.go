package listener

import (
	"bufio"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PortOwner names the process listening on addr ("ip:port"), such as "pid 4242 (python3)",
// or returns "" when it cannot tell (not Linux, another network namespace, no permission). It
// reads /proc and is meant for error messages only.
func PortOwner(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ""
	}
	inode := listeningInode(ap)
	if inode == "" {
		return ""
	}
	target := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && link == target {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			return "pid " + pid + " (" + strings.TrimSpace(string(comm)) + ")"
		}
	}
	return ""
}

// listeningInode finds the socket inode of a TCP listener that conflicts with ap: one on the
// same port and the same address or a wildcard address.
func listeningInode(ap netip.AddrPort) string {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A is TCP_LISTEN
				continue
			}
			host, port, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			p, err := strconv.ParseUint(port, 16, 16)
			if err != nil || uint16(p) != ap.Port() {
				continue
			}
			ip := procIP(host)
			if ip.IsValid() && (ip.IsUnspecified() || ip.Unmap() == ap.Addr().Unmap()) {
				f.Close()
				return fields[9]
			}
		}
		f.Close()
	}
	return ""
}

// procIP decodes an address of /proc/net/tcp: 32-bit words in host (little-endian) order.
func procIP(s string) netip.Addr {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	ip, _ := netip.AddrFromSlice(net.IP(b))
	return ip
}
