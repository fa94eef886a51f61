package peer

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// Peers are told a port to listen on, so a port is picked before the peer
// binds it. Picking with listen(":0") hands out ephemeral ports, which the
// kernel gives again to any other process's listen(":0") or outgoing
// connection in the meantime — on a loaded CI machine running many test
// binaries at once, often enough to fail a run ("address already in use").
// Ports are therefore picked at random below the ephemeral range
// (32768-60999 on Linux), checked free, and never handed out twice by one
// test process.
const portLow, portHigh = 20000, 32700

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a loopback TCP port that is free now, outside the
// ephemeral range and not returned before by this process.
func FreePort(t testing.TB) int {
	t.Helper()
	return pickPort(t, false)
}

// freeDNSPort is FreePort for a port free for both UDP and TCP.
func freeDNSPort(t testing.TB) int {
	t.Helper()
	return pickPort(t, true)
}

func pickPort(t testing.TB, udp bool) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 500 {
		port := portLow + rand.IntN(portHigh-portLow)
		if given[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		if udp {
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				l.Close()
				continue
			}
			u.Close()
		}
		l.Close()
		given[port] = true
		return port
	}
	t.Fatal("peer: no free loopback port found")
	return 0
}
