// Package brokertest starts MQTT brokers for tests of the client. Each
// broker has a Starter; tests that should hold against every broker loop
// over Brokers: the Vigil broker (in process) and Debian's mosquitto.
package brokertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options asks for optional listeners and settings.
type Options struct {
	// WebSocket adds a WebSocket listener (path-agnostic, subprotocol mqtt).
	WebSocket bool
	// TLS adds a TLS listener with a certificate for 127.0.0.1 signed by a
	// test CA (Broker.CAPool).
	TLS bool
	// Extra lines for the broker's configuration (mosquitto syntax).
	Extra []string
}

// Broker is a running broker. Stop is also registered with t.Cleanup.
type Broker struct {
	Name    string
	Addr    string         // host:port of the MQTT/TCP listener
	WSAddr  string         // host:port of the WebSocket listener, when asked for
	TLSAddr string         // host:port of the TLS listener, when asked for
	CAPool  *x509.CertPool // trusts the TLS listener's certificate
	Stop    func()
	Log     func() string // the broker's output so far
}

// Starter starts a broker for a test, or skips the test when it cannot.
type Starter func(t testing.TB, opt Options) *Broker

// Brokers lists every broker the interop tests run against.
var Brokers = []struct {
	Name  string
	Start Starter
}{
	{"vigil", Vigil},
	{"mosquitto", Mosquitto},
}

// RequireTool returns the path of an external program. When it is missing
// the test is skipped, unless the environment has VIGIL_INTEROP=1 (as CI
// should), where a missing tool is a failure.
func RequireTool(t testing.TB, name string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (apt-get install %s); interop test skipped", name, name)
	if os.Getenv("VIGIL_INTEROP") == "1" {
		t.Fatalf("%s, and VIGIL_INTEROP=1 requires it", msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Mosquitto starts Debian's mosquitto on 127.0.0.1 with a free port,
// anonymous access and no persistence. It is killed (by PID) when the
// test ends.
func Mosquitto(t testing.TB, opt Options) *Broker {
	t.Helper()
	bin := RequireTool(t, "mosquitto", "/usr/sbin/mosquitto")
	var lastErr error
	for range 3 { // a free port can be taken between FreePort and bind
		b, err := startMosquitto(t, bin, opt)
		if err == nil {
			return b
		}
		lastErr = err
	}
	t.Fatalf("mosquitto: %v", lastErr)
	return nil
}

func startMosquitto(t testing.TB, bin string, opt Options) (*Broker, error) {
	port := FreePort(t)
	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"max_keepalive 65535",
	}
	b := &Broker{Name: "mosquitto", Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if opt.WebSocket {
		wsPort := FreePort(t)
		conf = append(conf, fmt.Sprintf("listener %d 127.0.0.1", wsPort), "protocol websockets", "allow_anonymous true")
		b.WSAddr = fmt.Sprintf("127.0.0.1:%d", wsPort)
	}
	dir := t.TempDir()
	// mosquitto started as root drops to its own user: let it read.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	if opt.TLS {
		tlsPort := FreePort(t)
		pool, files, err := writeCerts(dir)
		if err != nil {
			return nil, err
		}
		conf = append(conf, fmt.Sprintf("listener %d 127.0.0.1", tlsPort), "allow_anonymous true",
			"cafile "+files[0], "certfile "+files[1], "keyfile "+files[2])
		b.TLSAddr = fmt.Sprintf("127.0.0.1:%d", tlsPort)
		b.CAPool = pool
	}
	conf = append(conf, opt.Extra...)
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = out, out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	b.Stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			<-exited
		})
	}
	b.Log = out.String
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range []string{b.Addr, b.WSAddr, b.TLSAddr} {
		if addr == "" {
			continue
		}
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return nil, fmt.Errorf("exited at start: %s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				b.Stop()
				return nil, fmt.Errorf("not listening on %s after 10 s: %s", addr, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	return b, nil
}

// writeCerts writes a test CA and a server certificate for 127.0.0.1 into
// dir; it returns the CA pool and the CA, certificate and key file names.
func writeCerts(dir string) (*x509.CertPool, [3]string, error) {
	var files [3]string
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, files, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, files, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, files, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, files, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, files, err
	}
	blocks := []*pem.Block{{Type: "CERTIFICATE", Bytes: caDER}, {Type: "CERTIFICATE", Bytes: der}, {Type: "EC PRIVATE KEY", Bytes: keyDER}}
	for i, name := range []string{"ca.pem", "server.pem", "server.key"} {
		files[i] = filepath.Join(dir, name)
		if err := os.WriteFile(files[i], pem.EncodeToMemory(blocks[i]), 0o644); err != nil {
			return nil, files, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, files, nil
}
