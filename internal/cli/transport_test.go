package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigilmq/vigil/broker"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1, usable as
// CA, server and client certificate, and its key; it returns their paths.
func writeTestCert(t *testing.T) (certFile, keyFile string, cert tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return certFile, keyFile, cert, pool
}

// pub and sub over every transport: -l mqtt, ws (with --path), mqtts
// (with --ca, and a client certificate the broker requires) and wss
// (--insecure); and MQTT 3.1.1 and 3.1 with -V.
func TestTransports(t *testing.T) {
	t.Parallel()
	certFile, keyFile, cert, pool := writeTestCert(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { srv.Close() })
	ports := map[string]string{}
	for _, l := range []broker.Listener{
		{Type: broker.ListenerTCP, Addr: "127.0.0.1:0"},
		{Type: broker.ListenerWS, Addr: "127.0.0.1:0", Path: "/ws"},
		{Type: broker.ListenerTLS, Addr: "127.0.0.1:0", TLS: tlsCfg},
		{Type: broker.ListenerWSS, Addr: "127.0.0.1:0", TLS: tlsCfg},
	} {
		nl, err := l.Listen()
		if err != nil {
			t.Fatal(err)
		}
		go srv.ServeListener(nl)
		ports[l.Type] = strconv.Itoa(nl.Addr().(*net.TCPAddr).Port)
	}
	withCert := []string{"--cert", certFile, "--key", keyFile}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"mqtt 3.1.1", []string{"-p", ports[broker.ListenerTCP], "-V", "3.1.1"}},
		{"mqtt 3.1", []string{"-p", ports[broker.ListenerTCP], "-V", "3.1"}},
		{"ws", []string{"-l", "ws", "-p", ports[broker.ListenerWS], "--path", "/ws"}},
		{"mqtts", append([]string{"-l", "mqtts", "-p", ports[broker.ListenerTLS], "--ca", certFile}, withCert...)},
		{"tls implied by --ca", append([]string{"-p", ports[broker.ListenerTLS], "--ca", certFile}, withCert...)},
		{"wss insecure", append([]string{"-l", "wss", "-p", ports[broker.ListenerWSS], "--insecure"}, withCert...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-h", "127.0.0.1"}, tt.args...)
			topic := "tr/" + tt.name
			sub := start(t, append([]string{"sub", "-t", topic, "-q", "1", "-C", "1"}, args...)...)
			sub.waitErr(t, "granted QoS 1")
			mustRun(t, "", append([]string{"pub", "-t", topic, "-m", "over " + tt.name, "-q", "1"}, args...)...)
			if code := sub.exit(t, 10*time.Second); code != 0 || sub.out.String() != topic+" over "+tt.name+"\n" {
				t.Fatalf("exit %d, got %q", code, sub.out)
			}
		})
	}
	// Without the CA the broker's certificate is refused: one line, exit 1.
	_, stderr, code := run(t, "", "pub", "-h", "127.0.0.1", "-l", "mqtts", "-p", ports[broker.ListenerTLS], "-t", "x", "-m", "y")
	if code != 1 || !regexpMatch(`^vigil: pub: client: connect to mqtts://127\.0\.0\.1:\d+: tls handshake .*certificate signed by unknown authority\n$`, stderr) {
		t.Fatalf("exit %d: %q", code, stderr)
	}
}
